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

/* ---- Winograd F(2x2, 3x3) (see im2col.h) ---- */

/* The transforms are plain loops over channels that the compiler vectorizes;
 * on x86 with GCC they are also built for AVX-512 and AVX2 and the CPU picks
 * at load time (the same arithmetic, elementwise: results do not change). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(FV_GEMM_PORTABLE)
#define WINO_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WINO_CLONES
#endif

WINO_CLONES void fv_wino_input(float *restrict v, size_t ldv, const float *restrict x,
                   const struct fv_conv_geom *g, size_t t0, size_t rows, const float *zero) {
    int th = (g->oh + 1) / 2, tw = (g->ow + 1) / 2;
    size_t C = (size_t)g->c;
    for (size_t r = 0; r < rows; r++) {
        size_t t = t0 + r;
        int tx = (int)(t % (size_t)tw), ty = (int)(t / (size_t)tw % (size_t)th);
        size_t img = t / ((size_t)tw * (size_t)th);
        int iy0 = 2 * ty - g->pt, ix0 = 2 * tx - g->pl;
        const float *d[16]; /* the patch's pixels, (C) each */
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) {
                int iy = iy0 + i, ix = ix0 + j;
                d[4 * i + j] = iy < 0 || iy >= g->h || ix < 0 || ix >= g->w
                                   ? zero
                                   : x + ((img * (size_t)g->h + (size_t)iy) * (size_t)g->w + (size_t)ix) * C;
            }
        float *o = v + r * C;
        enum { CH = 64 };
        for (size_t c0 = 0; c0 < C; c0 += CH) {
            size_t nc = C - c0 < CH ? C - c0 : CH;
            float tb[16][CH]; /* t = B^T d, row i column j at tb[4*i + j] */
            for (int j = 0; j < 4; j++) {
                const float *d0 = d[j] + c0, *d1 = d[4 + j] + c0, *d2 = d[8 + j] + c0, *d3 = d[12 + j] + c0;
                for (size_t c = 0; c < nc; c++) {
                    tb[j][c] = d0[c] - d2[c];
                    tb[4 + j][c] = d1[c] + d2[c];
                    tb[8 + j][c] = d2[c] - d1[c];
                    tb[12 + j][c] = d1[c] - d3[c];
                }
            }
            for (int i = 0; i < 4; i++) { /* V = t B */
                float *restrict o0 = o + (size_t)(4 * i) * ldv + c0;
                float *restrict o1 = o + (size_t)(4 * i + 1) * ldv + c0;
                float *restrict o2 = o + (size_t)(4 * i + 2) * ldv + c0;
                float *restrict o3 = o + (size_t)(4 * i + 3) * ldv + c0;
                const float *q0 = tb[4 * i], *q1 = tb[4 * i + 1], *q2 = tb[4 * i + 2], *q3 = tb[4 * i + 3];
                for (size_t c = 0; c < nc; c++) {
                    o0[c] = q0[c] - q2[c];
                    o1[c] = q1[c] + q2[c];
                    o2[c] = q2[c] - q1[c];
                    o3[c] = q1[c] - q3[c];
                }
            }
        }
    }
}

void fv_wino_kernel(float *u, const float *k, int c, int oc) {
    size_t C = (size_t)c, OC = (size_t)oc;
    int par = (double)c * (double)oc >= 4096.0;
    (void)par; /* only read by the OpenMP clause */
    FV_OMP("omp parallel for schedule(static) if(par)")
    for (int ch = 0; ch < c; ch++) {
        const float *g[9]; /* the 9 taps of channel ch, (OC) each */
        for (int t = 0; t < 9; t++) g[t] = k + ((size_t)t * C + (size_t)ch) * OC;
        float *uo[16];
        for (int xi = 0; xi < 16; xi++) uo[xi] = u + ((size_t)xi * C + (size_t)ch) * OC;
        for (size_t o = 0; o < OC; o++) {
            double tmp[4][3]; /* G g */
            for (int j = 0; j < 3; j++) {
                double g0 = (double)g[j][o], g1 = (double)g[3 + j][o], g2 = (double)g[6 + j][o];
                tmp[0][j] = g0;
                tmp[1][j] = 0.5 * (g0 + g1 + g2);
                tmp[2][j] = 0.5 * (g0 - g1 + g2);
                tmp[3][j] = g2;
            }
            for (int i = 0; i < 4; i++) { /* (G g) G^T */
                uo[4 * i][o] = (float)tmp[i][0];
                uo[4 * i + 1][o] = (float)(0.5 * (tmp[i][0] + tmp[i][1] + tmp[i][2]));
                uo[4 * i + 2][o] = (float)(0.5 * (tmp[i][0] - tmp[i][1] + tmp[i][2]));
                uo[4 * i + 3][o] = (float)tmp[i][2];
            }
        }
    }
}

WINO_CLONES void fv_wino_output(float *restrict y, const float *restrict m, size_t ldm,
                    const struct fv_conv_geom *g, int oc, size_t t0, size_t rows,
                    const float *bias, int accumulate, int relu) {
    int th = (g->oh + 1) / 2, tw = (g->ow + 1) / 2;
    size_t OC = (size_t)oc;
    for (size_t r = 0; r < rows; r++) {
        size_t t = t0 + r;
        int tx = (int)(t % (size_t)tw), ty = (int)(t / (size_t)tw % (size_t)th);
        size_t img = t / ((size_t)tw * (size_t)th);
        int oy0 = 2 * ty, ox0 = 2 * tx;
        float *out[4] = {NULL, NULL, NULL, NULL}; /* (OC) each; NULL outside the image */
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++)
                if (oy0 + i < g->oh && ox0 + j < g->ow)
                    out[2 * i + j] = y + ((img * (size_t)g->oh + (size_t)(oy0 + i)) * (size_t)g->ow +
                                          (size_t)(ox0 + j)) * OC;
        const float *mr = m + r * OC;
        enum { CH = 64 };
        for (size_t o0 = 0; o0 < OC; o0 += CH) {
            size_t nc = OC - o0 < CH ? OC - o0 : CH;
            float res[4][CH];
            for (size_t o = 0; o < nc; o++) {
                const float *mo = mr + o0 + o;
                float s0[4], s1[4];
                for (int j = 0; j < 4; j++) { /* s = A^T M */
                    s0[j] = mo[(size_t)j * ldm] + mo[(size_t)(4 + j) * ldm] + mo[(size_t)(8 + j) * ldm];
                    s1[j] = mo[(size_t)(4 + j) * ldm] - mo[(size_t)(8 + j) * ldm] - mo[(size_t)(12 + j) * ldm];
                }
                res[0][o] = s0[0] + s0[1] + s0[2]; /* y = s A */
                res[1][o] = s0[1] - s0[2] - s0[3];
                res[2][o] = s1[0] + s1[1] + s1[2];
                res[3][o] = s1[1] - s1[2] - s1[3];
            }
            for (int q = 0; q < 4; q++) {
                if (!out[q]) continue;
                float *restrict oq = out[q] + o0;
                const float *rq = res[q];
                if (accumulate)
                    for (size_t o = 0; o < nc; o++) oq[o] += rq[o];
                else if (bias && relu)
                    for (size_t o = 0; o < nc; o++) {
                        float v = rq[o] + bias[o0 + o];
                        oq[o] = v > 0.0f ? v : 0.0f;
                    }
                else if (bias)
                    for (size_t o = 0; o < nc; o++) oq[o] = rq[o] + bias[o0 + o];
                else if (relu)
                    for (size_t o = 0; o < nc; o++) oq[o] = rq[o] > 0.0f ? rq[o] : 0.0f;
                else
                    for (size_t o = 0; o < nc; o++) oq[o] = rq[o];
            }
        }
    }
}
