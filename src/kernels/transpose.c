/* Blocks are transposed in vector registers, in rounds of two-vector
 * shuffles (in round b, rows i and i + b swap their off-diagonal b x b
 * blocks); edges that do not fill a block go element by element.
 *
 * AVX-512 takes 16 x 16 blocks (one register a row, four rounds); AVX2 and
 * baseline x86-64 take 8 x 8 blocks of 8-lane vectors (three rounds): a
 * 16-lane two-input shuffle has no AVX2 instruction, and gcc built it one
 * lane at a time through the stack (a fifth of the activation export). */
#include "kernels/transpose.h"

#include "kernels/simd.h"

typedef float vf8 __attribute__((vector_size(32)));
typedef int vi8 __attribute__((vector_size(32)));
typedef vf8 vf8_unaligned __attribute__((aligned(4), may_alias));

/* Round b: lo[j] = row i's j, or row i+b's j-b where bit b of j is set;
 * hi[j] = row i's j+b, or row i+b's j where it is set (L + k: row i+b's k). */
#define LO(L, b, j) ((j) & (b) ? (j) - (b) + (L) : (j))
#define HI(L, b, j) ((j) & (b) ? (j) + (L) : (j) + (b))
#define MASK8(F, b) {F(8, b, 0), F(8, b, 1), F(8, b, 2), F(8, b, 3), F(8, b, 4), F(8, b, 5), F(8, b, 6), F(8, b, 7)}
#define MASK16(F, b)                                                                                         \
    {F(16, b, 0), F(16, b, 1), F(16, b, 2),  F(16, b, 3),  F(16, b, 4),  F(16, b, 5),  F(16, b, 6),  F(16, b, 7), \
     F(16, b, 8), F(16, b, 9), F(16, b, 10), F(16, b, 11), F(16, b, 12), F(16, b, 13), F(16, b, 14), F(16, b, 15)}

/* The 8 x 8 round: constant masks, so that the compiler picks the shuffles. */
#ifdef __clang__
#define SHUF8(a, c, F, b) \
    __builtin_shufflevector(a, c, F(8, b, 0), F(8, b, 1), F(8, b, 2), F(8, b, 3), F(8, b, 4), F(8, b, 5), F(8, b, 6), F(8, b, 7))
#else
#define SHUF8(a, c, F, b) __builtin_shuffle(a, c, (vi8)MASK8(F, b))
#endif
#define ROUND8(r, b)                                  \
    for (int i = 0; i < 8; i++) {                     \
        if (i & (b)) continue;                        \
        vf8 a = r[i], c = r[i + (b)];                 \
        r[i] = SHUF8(a, c, LO, b);                    \
        r[i + (b)] = SHUF8(a, c, HI, b);              \
    }

static void edges(const float *src, float *dst, size_t rows, size_t cols, size_t rb, size_t cb) {
    for (size_t i = 0; i < rows; i++)
        for (size_t j = i < rb ? cb : 0; j < cols; j++) dst[j * rows + i] = src[i * cols + j];
}

FV_BODY void transpose8_body(const float *src, float *dst, size_t rows, size_t cols) {
    size_t r8 = rows / 8 * 8, c8 = cols / 8 * 8;
    for (size_t i0 = 0; i0 < r8; i0 += 8)
        for (size_t j0 = 0; j0 < c8; j0 += 8) {
            vf8 r[8];
            for (int i = 0; i < 8; i++) r[i] = *(const vf8_unaligned *)(src + (i0 + (size_t)i) * cols + j0);
            ROUND8(r, 1)
            ROUND8(r, 2)
            ROUND8(r, 4)
            for (int j = 0; j < 8; j++) *(vf8_unaligned *)(dst + (j0 + (size_t)j) * rows + i0) = r[j];
        }
    edges(src, dst, rows, cols, r8, c8);
}

#ifdef FV_ISA_X86
/* (masks by pointer: vectors passed by value would depend on the ABI) */
static inline void swap_blocks16(fv_vf *r, int b, const fv_vi *lo, const fv_vi *hi) {
    for (int i = 0; i < FV_VL; i++) {
        if (i & b) continue;
        fv_vf a = r[i], c = r[i + b];
        r[i] = __builtin_shuffle(a, c, *lo);
        r[i + b] = __builtin_shuffle(a, c, *hi);
    }
}

FV_TARGET_AVX512 static void transpose16(const float *src, float *dst, size_t rows, size_t cols) {
    const fv_vi lo1 = MASK16(LO, 1), hi1 = MASK16(HI, 1), lo2 = MASK16(LO, 2), hi2 = MASK16(HI, 2);
    const fv_vi lo4 = MASK16(LO, 4), hi4 = MASK16(HI, 4), lo8 = MASK16(LO, 8), hi8 = MASK16(HI, 8);
    size_t r16 = rows / FV_VL * FV_VL, c16 = cols / FV_VL * FV_VL;
    for (size_t i0 = 0; i0 < r16; i0 += FV_VL)
        for (size_t j0 = 0; j0 < c16; j0 += FV_VL) {
            fv_vf r[FV_VL];
            for (int i = 0; i < FV_VL; i++) fv_vload(&r[i], src + (i0 + (size_t)i) * cols + j0);
            swap_blocks16(r, 1, &lo1, &hi1);
            swap_blocks16(r, 2, &lo2, &hi2);
            swap_blocks16(r, 4, &lo4, &hi4);
            swap_blocks16(r, 8, &lo8, &hi8);
            for (int j = 0; j < FV_VL; j++) fv_vstore(dst + (j0 + (size_t)j) * rows + i0, &r[j]);
        }
    edges(src, dst, rows, cols, r16, c16);
}
FV_TARGET_AVX2 static void transpose8_avx2(const float *src, float *dst, size_t rows, size_t cols) {
    transpose8_body(src, dst, rows, cols);
}
static void transpose8_base(const float *src, float *dst, size_t rows, size_t cols) {
    transpose8_body(src, dst, rows, cols);
}

void fv_transpose(const float *src, float *dst, size_t rows, size_t cols) {
    switch (fv_isa()) {
    case FV_ISA_AVX512: transpose16(src, dst, rows, cols); break;
    case FV_ISA_AVX2: transpose8_avx2(src, dst, rows, cols); break;
    default: transpose8_base(src, dst, rows, cols); break;
    }
}
#else /* clang (the fuzzing build) and other compilers: no run-time dispatch */
void fv_transpose(const float *src, float *dst, size_t rows, size_t cols) {
    transpose8_body(src, dst, rows, cols);
}
#endif
