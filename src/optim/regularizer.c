/* Penalties on the display image u (n, h, w, c) and the Gaussian blur
 * operation. Each penalty R is per image; du += -weight * dR/du (ascent on
 * f - weight * R). Values are accumulated in double. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "featviz/optim.h"

static float signf(float x) {
    return x > 0.f ? 1.f : x < 0.f ? -1.f : 0.f;
}

void fv_reg_lp(const float *u, int n, size_t count, float p, float center, float weight,
               float *du, float *values) {
    float inv_n = 1.f / (float)count;
#pragma omp parallel for schedule(static) if ((size_t)n * count >= FV_OPTIM_PAR_MIN)
    for (int b = 0; b < n; b++) {
        const float *ub = u + (size_t)b * count;
        float *dub = du ? du + (size_t)b * count : NULL;
        double r = 0;
        if (p == 2.f) { /* the same numbers without powf: a^2 = d*d, 2 a sign(d) = 2 d */
            for (size_t i = 0; dub && i < count; i++) {
                float d = ub[i] - center;
                dub[i] -= d != 0.f ? weight * 2.f * d * inv_n : 0.f;
            }
            for (size_t i = 0; values && i < count; i++) {
                float d = ub[i] - center;
                r += (double)(d * d);
            }
            if (values) values[b] = (float)(r / (double)count);
            continue;
        }
        for (size_t i = 0; i < count; i++) {
            float d = ub[i] - center, a = fabsf(d);
            /* R = mean |d|^p;  dR/du = p |d|^(p-1) sign(d) / N */
            r += (double)powf(a, p);
            if (dub && a > 0.f) dub[i] -= weight * p * powf(a, p - 1.f) * signf(d) * inv_n;
        }
        if (values) values[b] = (float)(r / (double)count);
    }
}

void fv_reg_tv_l1(const float *u, int n, int h, int w, int c, float weight, float *du,
                  float *values) {
    size_t hwc = (size_t)h * w * c;
    float g = weight / (float)hwc; /* -weight * d(|d|/N)/d(d) = -g sign(d) */
#pragma omp parallel for schedule(static) if ((size_t)n * hwc >= FV_OPTIM_PAR_MIN)
    for (int b = 0; b < n; b++) {
        const float *ub = u + (size_t)b * hwc; /* (h, w, c) */
        float *dub = du ? du + (size_t)b * hwc : NULL;
        double r = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int k = 0; k < c; k++) {
                    size_t i = ((size_t)y * w + x) * c + k;
                    if (y + 1 < h) {
                        size_t j = i + (size_t)w * c; /* (y+1, x) */
                        float d = ub[j] - ub[i];
                        r += (double)fabsf(d);
                        if (dub) {
                            dub[j] -= g * signf(d);
                            dub[i] += g * signf(d);
                        }
                    }
                    if (x + 1 < w) {
                        size_t j = i + (size_t)c; /* (y, x+1) */
                        float d = ub[j] - ub[i];
                        r += (double)fabsf(d);
                        if (dub) {
                            dub[j] -= g * signf(d);
                            dub[i] += g * signf(d);
                        }
                    }
                }
        if (values) values[b] = (float)(r / (double)hwc);
    }
}

void fv_reg_tv_beta(const float *u, int n, int h, int w, int c, float beta, float weight,
                    float *du, float *values) {
    size_t hwc = (size_t)h * w * c;
    float inv_n = 1.f / (float)hwc;
#pragma omp parallel for schedule(static) if ((size_t)n * hwc >= FV_OPTIM_PAR_MIN)
    for (int b = 0; b < n; b++) {
        const float *ub = u + (size_t)b * hwc; /* (h, w, c) */
        float *dub = du ? du + (size_t)b * hwc : NULL;
        double r = 0;
        for (int y = 0; y + 1 < h; y++)
            for (int x = 0; x + 1 < w; x++)
                for (int k = 0; k < c; k++) {
                    size_t i = ((size_t)y * w + x) * c + k;
                    size_t iy = i + (size_t)w * c, ix = i + (size_t)c;
                    float dy = ub[iy] - ub[i], dx = ub[ix] - ub[i];
                    float t = dy * dy + dx * dx;
                    /* R += t^(beta/2) / N */
                    r += (double)powf(t, 0.5f * beta);
                    if (!dub || (t == 0.f && beta < 2.f)) continue;
                    /* dR/dt = beta/2 t^(beta/2 - 1) / N; dt/d(dy) = 2 dy, dt/d(dx) = 2 dx */
                    float gt = weight * beta * powf(t, 0.5f * beta - 1.f) * inv_n;
                    dub[iy] -= gt * dy;
                    dub[ix] -= gt * dx;
                    dub[i] += gt * (dy + dx);
                }
        if (values) values[b] = (float)(r / (double)hwc);
    }
}

/* ---- Gaussian blur ---- */

size_t fv_blur_ws_floats(int n, int h, int w, int c) {
    return (size_t)n * h * w * c;
}

/* scipy.ndimage 'reflect' (half-sample symmetric): d c b a | a b c d | d c b a */
static int reflect_half(int i, int n) {
    int period = 2 * n, m = i % period;
    if (m < 0) m += period;
    return m < n ? m : period - 1 - m;
}

/* dst[i] = sum_k kern[k + r] src[reflect(i + k)] along an axis of `len`
 * points with element stride `stride` (in floats), for `lines` lines whose
 * starts are `line_stride` apart and `c` interleaved channels. */
static void blur_axis(const float *src, float *dst, int len, size_t stride, int lines,
                      size_t line_stride, int c, const float *kern, int r) {
    for (int l = 0; l < lines; l++) {
        const float *s = src + (size_t)l * line_stride;
        float *d = dst + (size_t)l * line_stride;
        for (int i = 0; i < len; i++)
            for (int k = 0; k < c; k++) {
                float acc = 0.f;
                for (int j = -r; j <= r; j++)
                    acc += kern[j + r] * s[(size_t)reflect_half(i + j, len) * stride + k];
                d[(size_t)i * stride + k] = acc;
            }
    }
}

int fv_blur_gaussian(float *u, int n, int h, int w, int c, float sigma, float *ws,
                     struct fv_error *err) {
    if (!(sigma > 0.f) || n < 1) return FV_OK;
    int r = (int)(4.f * sigma + 0.5f);
    if (r == 0) return FV_OK;
    float *own = NULL;
    if (!ws) {
        ws = own = fv_malloc(fv_blur_ws_floats(n, h, w, c) * sizeof(float), err);
        if (!ws) return FV_ERR_NOMEM;
    }
    float *kern = fv_malloc((size_t)(2 * r + 1) * sizeof(float), err);
    if (!kern) {
        free(own);
        return FV_ERR_NOMEM;
    }
    double sum = 0, s2 = (double)sigma * (double)sigma;
    for (int j = -r; j <= r; j++) sum += exp(-0.5 * (double)(j * j) / s2);
    for (int j = -r; j <= r; j++) kern[j + r] = (float)(exp(-0.5 * (double)(j * j) / s2) / sum);
    size_t hwc = (size_t)h * w * c;
#pragma omp parallel for schedule(static) if ((size_t)n * hwc >= FV_OPTIM_PAR_MIN)
    for (int b = 0; b < n; b++) {
        float *ub = u + (size_t)b * hwc, *tb = ws + (size_t)b * hwc; /* (h, w, c) */
        /* along x: h lines of w points, stride c */
        blur_axis(ub, tb, w, (size_t)c, h, (size_t)w * c, c, kern, r);
        /* along y: w lines of h points, stride w*c */
        blur_axis(tb, ub, h, (size_t)w * c, w, (size_t)c, c, kern, r);
    }
    free(kern);
    free(own);
    return FV_OK;
}
