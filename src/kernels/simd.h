/* Portable SIMD for elementwise kernels: GCC vector types of 16 lanes (one
 * AVX-512 register, two AVX2 ones, four SSE ones, whatever the function was
 * built for), and FV_CLONES, which builds a function for AVX-512, AVX2 and
 * baseline x86-64 and lets the CPU pick at load time (the same arithmetic
 * lane by lane: results do not change). */
#ifndef FEATVIZ_KERNELS_SIMD_H
#define FEATVIZ_KERNELS_SIMD_H

#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(FV_GEMM_PORTABLE)
#define FV_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FV_CLONES
#endif

typedef float fv_vf __attribute__((vector_size(64)));
typedef int fv_vi __attribute__((vector_size(64)));
enum { FV_VL = 16 };

/* (vectors travel by pointer: passing them by value would depend on the ABI) */
static inline void fv_vload(fv_vf *v, const float *p) { memcpy(v, p, sizeof *v); }
static inline void fv_vstore(float *p, const fv_vf *v) { memcpy(p, v, sizeof *v); }

/* Comparisons and selects, lane by lane: `v < w` on these 16-lane types is
 * split into scalar compares by gcc when the clone has no 512-bit registers
 * (AVX2: 30% of a class optimization's time went there), while the same
 * select written as a loop over the lanes becomes vcmpps + vandps on ymm
 * (or xmm) registers. Same values as the vector expressions, NaN included. */
static inline void fv_vrelu(fv_vf *v) { /* lanes below 0 to +0 */
    float t[FV_VL];
    memcpy(t, v, sizeof t);
    for (int i = 0; i < FV_VL; i++) t[i] = t[i] < 0.0f ? 0.0f : t[i];
    memcpy(v, t, sizeof t);
}
static inline void fv_vgate(fv_vf *v, const float *g) { /* v where g > 0, else +0 */
    float t[FV_VL];
    memcpy(t, v, sizeof t);
    for (int i = 0; i < FV_VL; i++) t[i] = g[i] > 0.0f ? t[i] : 0.0f;
    memcpy(v, t, sizeof t);
}

#endif
