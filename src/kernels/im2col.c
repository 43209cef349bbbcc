/* im2col for NHWC batches (see im2col.h for the layout). */
#include "kernels/im2col.h"

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

void fv_im2col(float *restrict col, const float *restrict x, const struct fv_conv_geom *g,
               size_t m0, size_t rows, int c0, int cg) {
    size_t kdim = (size_t)g->kh * (size_t)g->kw * (size_t)cg;
    size_t bytes = (size_t)cg * sizeof(float);
    for (size_t r = 0; r < rows; r++) {
        size_t m = m0 + r;
        int ox = (int)(m % (size_t)g->ow);
        int oy = (int)(m / (size_t)g->ow % (size_t)g->oh);
        size_t img = m / ((size_t)g->ow * (size_t)g->oh);
        const float *xi = x + img * (size_t)g->h * (size_t)g->w * (size_t)g->c; /* (H, W, C) */
        float *dst = col + r * kdim;                                            /* (KH, KW, cg) */
        for (int ky = 0; ky < g->kh; ky++) {
            int iy = oy * g->sh - g->pt + ky * g->dh;
            for (int kx = 0; kx < g->kw; kx++, dst += cg) {
                int ix = ox * g->sw - g->pl + kx * g->dw;
                if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w)
                    memset(dst, 0, bytes);
                else
                    memcpy(dst,
                           xi + ((size_t)iy * (size_t)g->w + (size_t)ix) * (size_t)g->c +
                               (size_t)c0,
                           bytes);
            }
        }
    }
}
