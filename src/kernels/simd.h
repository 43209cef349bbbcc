/* Portable SIMD for elementwise kernels: GCC vector types of 16 lanes (one
 * AVX-512 register, two AVX2 ones, four SSE ones, whatever the function was
 * built for), and FV_ISA_VERSIONS, which builds a function for AVX-512, AVX2
 * and baseline x86-64 and runs the one of the SIMD path featviz chose (the
 * same arithmetic lane by lane: results do not change). */
#ifndef FEATVIZ_KERNELS_SIMD_H
#define FEATVIZ_KERNELS_SIMD_H

#include <string.h>

#include "kernels/isa.h"

/* FV_ISA_VERSIONS(linkage, name, params, args): `linkage void name params`
 * runs name##_body (a static FV_BODY function: always inlined) built for the
 * SIMD path fv_isa() chose: AVX-512, AVX2 + FMA, or baseline x86-64. Unlike
 * gcc's target_clones, which pick by the CPU, the path follows FEATVIZ_ISA,
 * so that forcing AVX2 on an AVX-512 machine runs what an AVX2-only CPU runs.
 * FV_TARGET_AVX512 / FV_TARGET_AVX2: the same targets for other functions. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(FV_GEMM_PORTABLE)
#define FV_ISA_X86 1
#define FV_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define FV_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define FV_BODY static inline __attribute__((always_inline))
#define FV_ISA_VERSIONS(linkage, name, params, args)                                   \
    FV_TARGET_AVX512 static void name##_avx512 params { name##_body args; }             \
    FV_TARGET_AVX2 static void name##_avx2 params { name##_body args; }                 \
    static void name##_base params { name##_body args; }                                \
    linkage void name params {                                                          \
        switch (fv_isa()) {                                                             \
        case FV_ISA_AVX512: name##_avx512 args; break;                                  \
        case FV_ISA_AVX2: name##_avx2 args; break;                                      \
        default: name##_base args; break;                                               \
        }                                                                               \
    }
#else
#define FV_BODY static inline
#define FV_ISA_VERSIONS(linkage, name, params, args) \
    linkage void name params { name##_body args; }
#endif

typedef float fv_vf __attribute__((vector_size(64)));
typedef int fv_vi __attribute__((vector_size(64)));
enum { FV_VL = 16 };

/* (vectors travel by pointer: passing them by value would depend on the ABI)
 * Loads and stores go through a vector type of float alignment: memcpy into a
 * vector went through the stack in pieces on AVX2 (as in winograd_width.h),
 * two thirds of the picked-channel forward's time. */
typedef fv_vf fv_vf_unaligned __attribute__((aligned(4), may_alias));
static inline void fv_vload(fv_vf *v, const float *p) { *v = *(const fv_vf_unaligned *)p; }
static inline void fv_vstore(float *p, const fv_vf *v) { *(fv_vf_unaligned *)p = *v; }

#endif
