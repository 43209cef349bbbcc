/* Blocks of 16 x 16 are transposed in vector registers (four rounds of
 * two-vector shuffles: in round b, rows i and i + b swap their off-diagonal
 * b x b blocks); edges that do not fill a block go element by element. */
#include "kernels/transpose.h"

#include "kernels/simd.h"

/* Round b: lo[j] = row i's j, or row i+b's j-b where bit b of j is set;
 * hi[j] = row i's j+b, or row i+b's j where it is set (16 + k: row i+b's k). */
#define LO(b, j) ((j) & (b) ? (j) - (b) + 16 : (j))
#define HI(b, j) ((j) & (b) ? (j) + 16 : (j) + (b))
#define MASK(F, b)                                                                                 \
    {F(b, 0), F(b, 1), F(b, 2), F(b, 3), F(b, 4), F(b, 5), F(b, 6), F(b, 7),                       \
     F(b, 8), F(b, 9), F(b, 10), F(b, 11), F(b, 12), F(b, 13), F(b, 14), F(b, 15)}

/* (masks by pointer: vectors passed by value would depend on the ABI) */
static inline void swap_blocks(fv_vf *r, int b, const fv_vi *lo, const fv_vi *hi) {
    for (int i = 0; i < FV_VL; i++) {
        if (i & b) continue;
        fv_vf a = r[i], c = r[i + b];
#ifdef __clang__ /* no run-time-mask shuffle (the FEATVIZ_FUZZ build): one lane at a time */
        for (int j = 0; j < FV_VL; j++) {
            r[i][j] = (*lo)[j] < FV_VL ? a[(*lo)[j]] : c[(*lo)[j] - FV_VL];
            r[i + b][j] = (*hi)[j] < FV_VL ? a[(*hi)[j]] : c[(*hi)[j] - FV_VL];
        }
#else
        r[i] = __builtin_shuffle(a, c, *lo);
        r[i + b] = __builtin_shuffle(a, c, *hi);
#endif
    }
}

FV_BODY void fv_transpose_body(const float *src, float *dst, size_t rows, size_t cols) {
    const fv_vi lo1 = MASK(LO, 1), hi1 = MASK(HI, 1), lo2 = MASK(LO, 2), hi2 = MASK(HI, 2);
    const fv_vi lo4 = MASK(LO, 4), hi4 = MASK(HI, 4), lo8 = MASK(LO, 8), hi8 = MASK(HI, 8);
    size_t r16 = rows / FV_VL * FV_VL, c16 = cols / FV_VL * FV_VL;
    for (size_t i0 = 0; i0 < r16; i0 += FV_VL)
        for (size_t j0 = 0; j0 < c16; j0 += FV_VL) {
            fv_vf r[FV_VL];
            for (int i = 0; i < FV_VL; i++) fv_vload(&r[i], src + (i0 + (size_t)i) * cols + j0);
            swap_blocks(r, 1, &lo1, &hi1);
            swap_blocks(r, 2, &lo2, &hi2);
            swap_blocks(r, 4, &lo4, &hi4);
            swap_blocks(r, 8, &lo8, &hi8);
            for (int j = 0; j < FV_VL; j++) fv_vstore(dst + (j0 + (size_t)j) * rows + i0, &r[j]);
        }
    for (size_t i = 0; i < rows; i++) /* the edges */
        for (size_t j = i < r16 ? c16 : 0; j < cols; j++) dst[j * rows + i] = src[i * cols + j];
}
FV_ISA_VERSIONS(, fv_transpose, (const float *src, float *dst, size_t rows, size_t cols),
                (src, dst, rows, cols))
