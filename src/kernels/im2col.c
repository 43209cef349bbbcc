/* im2col for NHWC batches (see im2col.h for the layout). */
#include "kernels/im2col.h"

#include "kernels/gemm.h" /* FV_OMP */

#include <string.h>

long long fv_conv_out_size(long long in, long long k, long long s, long long d, int same,
                           int *pad_before) {
    long long span = d * (k - 1) + 1; /* extent of the dilated kernel */
    *pad_before = 0;
    if (!same) return in < span ? 0 : (in - span) / s + 1;
    long long out = (in + s - 1) / s;
    long long total = (out - 1) * s + span - in;
    if (total > 0) *pad_before = (int)(total / 2);
    return out;
}

/* dst[0..n) = src[0..n): short runs inline, long ones through memcpy */
static inline void copy_floats(float *restrict dst, const float *restrict src, size_t n) {
    if (n >= 32) {
        memcpy(dst, src, n * sizeof(float));
        return;
    }
    for (size_t i = 0; i < n; i++) dst[i] = src[i];
}

static inline void zero_floats(float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = 0.0f;
}

void fv_im2col(float *restrict col, const float *restrict x, const struct fv_conv_geom *g,
               size_t m0, size_t rows, int c0, int cg) {
    size_t kdim = (size_t)g->kh * (size_t)g->kw * (size_t)cg;
    size_t C = (size_t)g->c, W = (size_t)g->w;
    /* a whole kernel row is one contiguous run of the input when it reads
     * every channel of KW adjacent pixels */
    int rowrun = g->dw == 1 && cg == g->c;
    size_t m = m0;
    int ox = (int)(m % (size_t)g->ow);
    int oy = (int)(m / (size_t)g->ow % (size_t)g->oh);
    size_t img = m / ((size_t)g->ow * (size_t)g->oh);
    for (size_t r = 0; r < rows; r++) {
        const float *xi = x + img * (size_t)g->h * W * C + (size_t)c0; /* (H, W, C) */
        float *dst = col + r * kdim;                                     /* (KH, KW, cg) */
        int ix0 = ox * g->sw - g->pl;
        int inside = ix0 >= 0 && ix0 + (g->kw - 1) * g->dw < g->w;
        for (int ky = 0; ky < g->kh; ky++) {
            int iy = oy * g->sh - g->pt + ky * g->dh;
            if (iy < 0 || iy >= g->h) {
                zero_floats(dst, (size_t)g->kw * (size_t)cg);
                dst += (size_t)g->kw * (size_t)cg;
                continue;
            }
            const float *xrow = xi + (size_t)iy * W * C;
            if (inside && rowrun) {
                copy_floats(dst, xrow + (size_t)ix0 * C, (size_t)g->kw * C);
                dst += (size_t)g->kw * C;
                continue;
            }
            for (int kx = 0; kx < g->kw; kx++, dst += cg) {
                int ix = ix0 + kx * g->dw;
                if (ix < 0 || ix >= g->w)
                    zero_floats(dst, (size_t)cg);
                else
                    copy_floats(dst, xrow + (size_t)ix * C, (size_t)cg);
            }
        }
        if (++ox == g->ow) {
            ox = 0;
            if (++oy == g->oh) {
                oy = 0;
                img++;
            }
        }
    }
}

