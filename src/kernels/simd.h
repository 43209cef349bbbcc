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

#endif
