/* Image resizing, separable: one table of source taps and weights per axis,
 * then a horizontal pass (h_in, w_out, C) and a vertical pass (h_out, w_out, C).
 *   nearest  cv2 INTER_NEAREST: src = floor(dst * in/out)
 *   bilinear half-pixel centres, no antialiasing: cv2 INTER_LINEAR,
 *            torch interpolate(mode='bilinear', align_corners=False)
 *   area     box average with fractional coverage on a shrinking axis (cv2
 *            INTER_AREA, torch adaptive_avg_pool2d for integer factors); an
 *            axis that grows uses bilinear
 *   bicubic  PIL Image.resize(BICUBIC): a = -0.5, support widened by the
 *            shrink factor (antialiasing), weights normalised; kept in float */
#include "featviz/preprocess.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct axis_tab {
    int ksize;    /* taps per output pixel (table stride) */
    int *start;   /* (out) first source index */
    int *len;     /* (out) taps used, <= ksize */
    float *w;     /* (out, ksize) weights */
};

static void tab_free(struct axis_tab *t) {
    free(t->start);
    free(t->len);
    free(t->w);
    memset(t, 0, sizeof *t);
}

static int tab_alloc(struct axis_tab *t, int out, int ksize, struct fv_error *err) {
    t->ksize = ksize;
    t->start = fv_calloc((size_t)out, sizeof(int), err);
    t->len = fv_calloc((size_t)out, sizeof(int), err);
    t->w = fv_calloc((size_t)out * (size_t)ksize, sizeof(float), err);
    if (!t->start || !t->len || !t->w) {
        tab_free(t);
        return FV_ERR_NOMEM;
    }
    return FV_OK;
}

static void tab_nearest(struct axis_tab *t, int in, int out) {
    double inv = 1.0 / ((double)out / (double)in); /* as cv2 computes it */
    for (int o = 0; o < out; o++) {
        int s = (int)floor((double)o * inv);
        t->start[o] = s < in - 1 ? s : in - 1;
        t->len[o] = 1;
        t->w[o] = 1.0f;
    }
}

static void tab_bilinear(struct axis_tab *t, int in, int out) {
    double scale = (double)in / (double)out;
    for (int o = 0; o < out; o++) {
        double src = ((double)o + 0.5) * scale - 0.5;
        if (src < 0) src = 0;
        int x0 = (int)src;
        if (x0 > in - 1) x0 = in - 1;
        double lam = src - (double)x0;
        t->start[o] = x0;
        if (x0 < in - 1) {
            t->len[o] = 2;
            t->w[2 * o] = (float)(1.0 - lam);
            t->w[2 * o + 1] = (float)lam;
        } else {
            t->len[o] = 1;
            t->w[2 * o] = 1.0f;
        }
    }
}

/* Shrinking axis (out <= in): output pixel o covers [o*s, (o+1)*s) of the source. */
static void tab_area(struct axis_tab *t, int in, int out) {
    double s = (double)in / (double)out;
    for (int o = 0; o < out; o++) {
        double lo = (double)o * s, hi = lo + s;
        if (hi > in) hi = in;
        int i0 = (int)floor(lo), i1 = (int)ceil(hi);
        if (i1 > in) i1 = in;
        if (i1 - i0 > t->ksize) i1 = i0 + t->ksize;
        t->start[o] = i0;
        t->len[o] = i1 - i0;
        for (int i = i0; i < i1; i++) {
            double a = (double)i > lo ? (double)i : lo;
            double b = (double)(i + 1) < hi ? (double)(i + 1) : hi;
            t->w[(size_t)o * (size_t)t->ksize + (size_t)(i - i0)] = (float)((b - a) / s);
        }
    }
}

static double cubic_pil(double x) {
    const double a = -0.5;
    x = fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

/* PIL's precompute_coeffs (libImaging/Resample.c) for the bicubic filter. */
static void tab_bicubic(struct axis_tab *t, int in, int out, double support) {
    double scale = (double)in / (double)out;
    double fscale = scale < 1.0 ? 1.0 : scale;
    for (int o = 0; o < out; o++) {
        double center = ((double)o + 0.5) * scale;
        double ss = 1.0 / fscale, ww = 0.0;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in) xmax = in;
        xmax -= xmin;
        if (xmax > t->ksize) xmax = t->ksize;
        for (int x = 0; x < xmax; x++) ww += cubic_pil(((double)(x + xmin) - center + 0.5) * ss);
        if (ww == 0.0) ww = 1.0;
        t->start[o] = xmin;
        t->len[o] = xmax;
        for (int x = 0; x < xmax; x++) {
            double k = cubic_pil(((double)(x + xmin) - center + 0.5) * ss);
            t->w[(size_t)o * (size_t)t->ksize + (size_t)x] = (float)(k / ww);
        }
    }
}

static int tab_build(struct axis_tab *t, int in, int out, enum fv_resize how,
                     struct fv_error *err) {
    double scale = (double)in / (double)out;
    int rc;
    if (how == FV_RESIZE_NEAREST) {
        if ((rc = tab_alloc(t, out, 1, err)) != FV_OK) return rc;
        tab_nearest(t, in, out);
    } else if (how == FV_RESIZE_BILINEAR || (how == FV_RESIZE_AREA && out > in)) {
        if ((rc = tab_alloc(t, out, 2, err)) != FV_OK) return rc;
        tab_bilinear(t, in, out);
    } else if (how == FV_RESIZE_AREA) {
        if ((rc = tab_alloc(t, out, (int)ceil(scale) + 1, err)) != FV_OK) return rc;
        tab_area(t, in, out);
    } else {
        double support = 2.0 * (scale < 1.0 ? 1.0 : scale);
        if ((rc = tab_alloc(t, out, (int)ceil(support) * 2 + 1, err)) != FV_OK) return rc;
        tab_bicubic(t, in, out, support);
    }
    return FV_OK;
}

int fv_image_resize(const struct fv_image *src, int h, int w, enum fv_resize how,
                    struct fv_image *dst, struct fv_error *err) {
    if (!src->data || src->h <= 0 || src->w <= 0 || src->c <= 0)
        return fv_error_set(err, FV_ERR_USAGE, "resize: empty source image");
    if (h <= 0 || w <= 0)
        return fv_error_set(err, FV_ERR_USAGE, "resize: bad target size %dx%d", h, w);
    if ((unsigned)how > FV_RESIZE_BICUBIC)
        return fv_error_set(err, FV_ERR_USAGE, "resize: unknown method %d", (int)how);
    size_t c = (size_t)src->c, n_tmp, n_out;
    if (!fv_mul_size((size_t)src->h * (size_t)w, c, &n_tmp) ||
        !fv_mul_size((size_t)h * (size_t)w, c, &n_out) || n_tmp > SIZE_MAX / sizeof(float) ||
        n_out > SIZE_MAX / sizeof(float))
        return fv_error_set(err, FV_ERR_SHAPE, "resize: %dx%d image too large", h, w);

    if (h == src->h && w == src->w) { /* PIL returns a copy */
        if (!(dst->data = fv_malloc(n_out * sizeof(float), err))) return FV_ERR_NOMEM;
        memcpy(dst->data, src->data, n_out * sizeof(float));
        dst->h = h, dst->w = w, dst->c = src->c;
        return FV_OK;
    }
    struct axis_tab tx = {0}, ty = {0};
    float *tmp = NULL, *out = NULL;
    int rc;
    if ((rc = tab_build(&tx, src->w, w, how, err)) != FV_OK ||
        (rc = tab_build(&ty, src->h, h, how, err)) != FV_OK)
        goto done;
    tmp = fv_malloc(n_tmp * sizeof(float), err); /* (src->h, w, C) */
    out = fv_malloc(n_out * sizeof(float), err); /* (h, w, C) */
    if (!tmp || !out) {
        rc = FV_ERR_NOMEM;
        goto done;
    }
    /* horizontal: tmp[y, o, k] = sum_j tx.w[o, j] * src[y, tx.start[o] + j, k] */
    for (int y = 0; y < src->h; y++) {
        const float *row = src->data + (size_t)y * (size_t)src->w * c;
        for (int o = 0; o < w; o++) {
            float *d = tmp + ((size_t)y * (size_t)w + (size_t)o) * c;
            const float *wt = tx.w + (size_t)o * (size_t)tx.ksize;
            for (size_t k = 0; k < c; k++) {
                float s = 0.0f;
                for (int j = 0; j < tx.len[o]; j++)
                    s += wt[j] * row[(size_t)(tx.start[o] + j) * c + k];
                d[k] = s;
            }
        }
    }
    /* vertical: out[o, x, k] = sum_j ty.w[o, j] * tmp[ty.start[o] + j, x, k] */
    size_t stride = (size_t)w * c;
    for (int o = 0; o < h; o++) {
        float *d = out + (size_t)o * stride;
        const float *wt = ty.w + (size_t)o * (size_t)ty.ksize;
        for (size_t i = 0; i < stride; i++) {
            float s = 0.0f;
            for (int j = 0; j < ty.len[o]; j++)
                s += wt[j] * tmp[(size_t)(ty.start[o] + j) * stride + i];
            d[i] = s;
        }
    }
    dst->h = h;
    dst->w = w;
    dst->c = src->c;
    dst->data = out;
    out = NULL;
done:
    tab_free(&tx);
    tab_free(&ty);
    free(tmp);
    free(out);
    return rc;
}
