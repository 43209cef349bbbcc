/* Real 2-D DFT as two separable matrix products with precomputed cos/sin
 * tables, matching numpy.fft.irfft2 / rfft2 on (h, w) arrays, plus the exact
 * adjoint of irfft2 for backpropagation.
 *
 * irfft2 (numpy irfftn): Z = ifft along h of every column (complex), then a
 * real irfft along w of every row, which reads only the real part of the DC
 * bin and (w even) of the Nyquist bin:
 *   Z[y][k]  = sum_ky S[ky][k] exp(+2 pi i ky y / h)
 *   x[y][j]  = f * sum_k g_k (Re Z[y][k] cos(2 pi k j / w) - Im Z[y][k] sin(2 pi k j / w))
 *   f = alpha / (h w), g_k = 1 for DC and Nyquist (sine term 0 there), 2 otherwise.
 * Work per call O(h w (h + w)) as three matrix products (the GEMM kernel),
 * serial: callers parallelize over images.
 *
 * spec (h, wf, 2) with wf = w/2 + 1, (re, im) innermost; x (h, w) with stride xs.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "featviz/optim.h"
#include "kernels/gemm.h"

static const double two_pi = 6.283185307179586;

int fv_dft2_init(struct fv_dft2 *d, int h, int w, struct fv_error *err) {
    memset(d, 0, sizeof *d);
    if (h < 1 || w < 1 || h > 65536 || w > 65536)
        return fv_error_set(err, FV_ERR_USAGE, "fourier: bad image size %dx%d", h, w);
    int wf = w / 2 + 1;
    d->h = h;
    d->w = w;
    d->wf = wf;
    d->ch = fv_malloc((size_t)h * (size_t)h * sizeof(float), err);
    d->sh = fv_malloc((size_t)h * (size_t)h * sizeof(float), err);
    d->cw = fv_malloc((size_t)wf * (size_t)w * sizeof(float), err);
    d->sw = fv_malloc((size_t)wf * (size_t)w * sizeof(float), err);
    d->b2 = fv_malloc((size_t)2 * wf * (size_t)w * sizeof(float), err);
    if (!d->ch || !d->sh || !d->cw || !d->sw || !d->b2) {
        fv_dft2_free(d);
        return FV_ERR_NOMEM;
    }
    for (int ky = 0; ky < h; ky++)
        for (int y = 0; y < h; y++) {
            /* exact angle index: (ky*y) mod h */
            double a = two_pi * (double)(((long long)ky * y) % h) / (double)h;
            d->ch[(size_t)ky * h + y] = (float)cos(a);
            d->sh[(size_t)ky * h + y] = (float)sin(a);
        }
    for (int k = 0; k < wf; k++) {
        int edge = k == 0 || (w % 2 == 0 && k == w / 2);
        double g = edge ? 1.0 : 2.0;
        for (int x = 0; x < w; x++) {
            double a = two_pi * (double)(((long long)k * x) % w) / (double)w;
            d->cw[(size_t)k * w + x] = (float)(g * cos(a));
            d->sw[(size_t)k * w + x] = edge ? 0.f : (float)(-g * sin(a));
        }
    }
    for (int k = 0; k < wf; k++) { /* rows cw[0], sw[0], cw[1], sw[1], ... */
        memcpy(d->b2 + (size_t)(2 * k) * w, d->cw + (size_t)k * w, (size_t)w * sizeof(float));
        memcpy(d->b2 + (size_t)(2 * k + 1) * w, d->sw + (size_t)k * w, (size_t)w * sizeof(float));
    }
    return FV_OK;
}

void fv_dft2_free(struct fv_dft2 *d) {
    if (!d) return;
    free(d->ch);
    free(d->sh);
    free(d->cw);
    free(d->sw);
    free(d->b2);
    d->ch = d->sh = d->cw = d->sw = d->b2 = NULL;
}

size_t fv_dft2_ws_floats(const struct fv_dft2 *d) {
    /* three (h, 2 wf) matrices and one (h, w); rfft2 needs less */
    return (size_t)6 * d->h * d->wf + (size_t)d->h * d->w + (size_t)2 * d->wf + (size_t)d->w;
}

/* ws: S (h, 2wf) the scaled spectrum, R (h, 2wf) it times i, Z (h, 2wf), X (h, w). */
void fv_irfft2(const struct fv_dft2 *d, const float *spec, const float *scale, float alpha,
               float *x, int xs, float *ws) {
    int h = d->h, w = d->w, wf = d->wf, n2 = 2 * wf;
    float f = alpha / ((float)h * (float)w);
    size_t hz = (size_t)h * (size_t)n2;
    float *S = ws, *R = S + hz, *Z = R + hz, *X = Z + hz;
    for (size_t i = 0; i < (size_t)h * (size_t)wf; i++) {
        float sc = scale ? scale[i] : 1.f, sr = spec[2 * i] * sc, si = spec[2 * i + 1] * sc;
        S[2 * i] = sr, S[2 * i + 1] = si;
        R[2 * i] = -si, R[2 * i + 1] = sr; /* i S */
    }
    /* Z = C S + Sn (i S): Re Z = C Sr - Sn Si, Im Z = C Si + Sn Sr (C, Sn symmetric) */
    fv_gemm((size_t)h, n2, h, d->ch, (size_t)h, S, (size_t)n2, 0, Z, (size_t)n2, 0);
    fv_gemm((size_t)h, n2, h, d->sh, (size_t)h, R, (size_t)n2, 0, Z, (size_t)n2, 1);
    /* X[y][j] = sum_k Re Z[y][k] cw[k][j] + Im Z[y][k] sw[k][j] */
    fv_gemm((size_t)h, w, n2, Z, (size_t)n2, d->b2, (size_t)w, 0, X, (size_t)w, 0);
    for (int y = 0; y < h; y++) {
        float *xr = x + (size_t)y * w * xs;
        const float *r = X + (size_t)y * w;
        for (int j = 0; j < w; j++) xr[(size_t)j * xs] = f * r[j];
    }
}

void fv_irfft2_adjoint(const struct fv_dft2 *d, const float *dx, int xs, const float *scale,
                       float alpha, float *dspec, float *ws) {
    int h = d->h, w = d->w, wf = d->wf, n2 = 2 * wf;
    float f = alpha / ((float)h * (float)w);
    size_t hz = (size_t)h * (size_t)n2;
    float *S = ws, *T = S + hz, *Z = T + hz, *X = Z + hz;
    for (int y = 0; y < h; y++) {
        const float *xr = dx + (size_t)y * w * xs;
        float *r = X + (size_t)y * w;
        for (int j = 0; j < w; j++) r[j] = f * xr[(size_t)j * xs];
    }
    /* the transposes of the three products of fv_irfft2, last first */
    fv_gemm((size_t)h, n2, w, X, (size_t)w, d->b2, (size_t)w, 1, Z, (size_t)n2, 0);
    fv_gemm((size_t)h, n2, h, d->ch, (size_t)h, Z, (size_t)n2, 0, S, (size_t)n2, 0);
    fv_gemm((size_t)h, n2, h, d->sh, (size_t)h, Z, (size_t)n2, 0, T, (size_t)n2, 0);
    for (size_t i = 0; i < (size_t)h * (size_t)wf; i++) {
        /* R = i S: R_re = -S_im, R_im = S_re, so dS_re += dR_im, dS_im -= dR_re */
        float sc = scale ? scale[i] : 1.f;
        dspec[2 * i] += sc * (S[2 * i] + T[2 * i + 1]);
        dspec[2 * i + 1] += sc * (S[2 * i + 1] - T[2 * i]);
    }
}

void fv_rfft2(const struct fv_dft2 *d, const float *x, int xs, float *spec, float *ws) {
    int h = d->h, w = d->w, wf = d->wf;
    float *rr = ws;           /* (wf) Re R[y][.] */
    float *ri = ws + wf;      /* (wf) Im R[y][.] */
    float *row = ws + 2 * wf; /* (w) */
    memset(spec, 0, (size_t)2 * h * wf * sizeof(float));
    for (int y = 0; y < h; y++) {
        const float *xr = x + (size_t)y * w * xs;
        for (int j = 0; j < w; j++) row[j] = xr[(size_t)j * xs];
        /* R[y][k] = sum_j x[y][j] exp(-2 pi i k j / w) */
        for (int k = 0; k < wf; k++) {
            const float *cr = d->cw + (size_t)k * w, *sr = d->sw + (size_t)k * w;
            int edge = k == 0 || (w % 2 == 0 && k == w / 2);
            float a = 0.f, b = 0.f;
            for (int j = 0; j < w; j++) {
                a += row[j] * cr[j];
                b += row[j] * sr[j];
            }
            /* cw = g cos, sw = -g sin: Re R = sum x cos, Im R = -sum x sin */
            rr[k] = edge ? a : 0.5f * a;
            ri[k] = edge ? b : 0.5f * b;
        }
        /* X[ky][k] += R[y][k] exp(-2 pi i ky y / h) */
        for (int ky = 0; ky < h; ky++) {
            float c = d->ch[(size_t)ky * h + y], s = d->sh[(size_t)ky * h + y];
            float *sp = spec + (size_t)ky * wf * 2;
            for (int k = 0; k < wf; k++) {
                sp[2 * k] += rr[k] * c + ri[k] * s;
                sp[2 * k + 1] += ri[k] * c - rr[k] * s;
            }
        }
    }
}
