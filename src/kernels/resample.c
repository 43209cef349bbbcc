/* Separable resampling tables and their application (see resample.h). */
#include "kernels/resample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Loops run in parallel only with this many floats of work (thread wake-ups
 * cost more than small resizes). */
#define RS_PAR_MIN ((size_t)1 << 15)

/* Taps per output (table stride) of filter f for in -> out. */
static int ksize_of(int in, int out, enum fv_resample_filter f) {
    double scale = (double)in / (double)out, fs = scale < 1.0 ? 1.0 : scale;
    switch (f) {
    case FV_RS_NEAREST:
        return 1;
    case FV_RS_AREA:
        return out <= in ? (int)ceil(scale) + 1 : 2;
    case FV_RS_CUBIC_PIL:
        return (int)ceil(2.0 * fs) * 2 + 1;
    case FV_RS_LINEAR_AA:
        return (int)ceil(fs) * 2 + 1;
    default:
        return 2;
    }
}

static size_t axis_floats(int in, int out, enum fv_resample_filter f) {
    return (size_t)out * (2 + (size_t)ksize_of(in, out, f));
}

/* The axis' arrays in mem (ints and floats are both 4 bytes): start, len, w. */
static void axis_place(struct fv_resample_axis *a, int in, int out, enum fv_resample_filter f,
                       float *mem) {
    a->in = in, a->out = out, a->ksize = ksize_of(in, out, f);
    a->start = (int *)(void *)mem;
    a->len = (int *)(void *)(mem + out);
    a->w = mem + 2 * (size_t)out;
    memset(a->w, 0, (size_t)out * (size_t)a->ksize * sizeof(float));
}

/* Two taps lo, hi with weight t on hi; one tap when they coincide. */
static void set2(struct fv_resample_axis *a, int o, int lo, int hi, double t) {
    float *w = a->w + (size_t)o * (size_t)a->ksize;
    a->start[o] = lo;
    if (hi == lo) {
        a->len[o] = 1;
        w[0] = 1.0f;
    } else {
        a->len[o] = 2;
        w[0] = (float)(1.0 - t);
        w[1] = (float)t;
    }
}

static void tab_nearest(struct fv_resample_axis *a) {
    double inv = 1.0 / ((double)a->out / (double)a->in); /* as cv2 computes it */
    for (int o = 0; o < a->out; o++) {
        int s = (int)floor((double)o * inv);
        a->start[o] = s < a->in - 1 ? s : a->in - 1;
        a->len[o] = 1;
        a->w[o] = 1.0f;
    }
}

static void tab_linear(struct fv_resample_axis *a, enum fv_resample_filter f) {
    int in = a->in;
    double scale = (double)in / (double)a->out;
    for (int o = 0; o < a->out; o++) {
        if (f == FV_RS_LINEAR_ASYM) {
            double src = (double)o * scale;
            int lo = (int)floor(src);
            if (lo > in - 1) lo = in - 1;
            set2(a, o, lo, lo + 1 < in ? lo + 1 : in - 1, src - floor(src));
        } else if (f == FV_RS_LINEAR_TF) {
            double src = ((double)o + 0.5) * scale - 0.5, fl = floor(src);
            int lo = fl < 0 ? 0 : (int)fl, hi = (int)ceil(src);
            if (lo > in - 1) lo = in - 1;
            if (hi > in - 1) hi = in - 1;
            if (hi < 0) hi = 0;
            set2(a, o, lo, hi, src - fl);
        } else {
            double src = ((double)o + 0.5) * scale - 0.5;
            if (src < 0) src = 0;
            int lo = (int)src;
            if (lo > in - 1) lo = in - 1;
            set2(a, o, lo, lo < in - 1 ? lo + 1 : lo, src - (double)lo);
        }
    }
}

/* Shrinking axis (out <= in): output pixel o covers [o*s, (o+1)*s) of the source. */
static void tab_area(struct fv_resample_axis *a) {
    int in = a->in;
    double s = (double)in / (double)a->out;
    for (int o = 0; o < a->out; o++) {
        double lo = (double)o * s, hi = lo + s;
        if (hi > in) hi = in;
        int i0 = (int)floor(lo), i1 = (int)ceil(hi);
        if (i1 > in) i1 = in;
        if (i1 - i0 > a->ksize) i1 = i0 + a->ksize;
        a->start[o] = i0;
        a->len[o] = i1 - i0;
        for (int i = i0; i < i1; i++) {
            double x0 = (double)i > lo ? (double)i : lo;
            double x1 = (double)(i + 1) < hi ? (double)(i + 1) : hi;
            a->w[(size_t)o * (size_t)a->ksize + (size_t)(i - i0)] = (float)((x1 - x0) / s);
        }
    }
}

static double cubic_pil(double x) {
    const double c = -0.5;
    x = fabs(x);
    if (x < 1.0) return ((c + 2.0) * x - (c + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * c;
    return 0.0;
}

static double triangle(double x) {
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* PIL's precompute_coeffs (libImaging/Resample.c) for a filter of the given
 * support (in source pixels at scale 1). */
static void tab_pil(struct fv_resample_axis *a, double (*filter)(double), double support) {
    int in = a->in;
    double scale = (double)in / (double)a->out;
    double fscale = scale < 1.0 ? 1.0 : scale, ss = 1.0 / fscale;
    support *= fscale;
    for (int o = 0; o < a->out; o++) {
        double center = ((double)o + 0.5) * scale, ww = 0.0;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in) xmax = in;
        xmax -= xmin;
        if (xmax > a->ksize) xmax = a->ksize;
        for (int x = 0; x < xmax; x++) ww += filter(((double)(x + xmin) - center + 0.5) * ss);
        if (ww == 0.0) ww = 1.0;
        a->start[o] = xmin;
        a->len[o] = xmax;
        for (int x = 0; x < xmax; x++) {
            double k = filter(((double)(x + xmin) - center + 0.5) * ss);
            a->w[(size_t)o * (size_t)a->ksize + (size_t)x] = (float)(k / ww);
        }
    }
}

static void axis_fill(struct fv_resample_axis *a, enum fv_resample_filter f) {
    switch (f) {
    case FV_RS_NEAREST:
        tab_nearest(a);
        return;
    case FV_RS_AREA:
        if (a->out <= a->in) tab_area(a);
        else tab_linear(a, FV_RS_LINEAR);
        return;
    case FV_RS_CUBIC_PIL:
        tab_pil(a, cubic_pil, 2.0);
        return;
    case FV_RS_LINEAR_AA:
        tab_pil(a, triangle, 1.0);
        return;
    default:
        tab_linear(a, f);
    }
}

size_t fv_resample_table_floats(int h, int w, int oh, int ow, enum fv_resample_filter f) {
    return axis_floats(h, oh, f) + axis_floats(w, ow, f);
}

void fv_resample_init_at(struct fv_resample *r, int h, int w, int oh, int ow,
                         enum fv_resample_filter f, float *mem) {
    memset(r, 0, sizeof *r);
    r->h = h, r->w = w, r->oh = oh, r->ow = ow;
    axis_place(&r->y, h, oh, f, mem);
    axis_place(&r->x, w, ow, f, mem + axis_floats(h, oh, f));
    axis_fill(&r->y, f);
    axis_fill(&r->x, f);
}

int fv_resample_init(struct fv_resample *r, int h, int w, int oh, int ow,
                     enum fv_resample_filter f, struct fv_error *err) {
    memset(r, 0, sizeof *r);
    const int max = 1 << 24;
    if (h < 1 || w < 1 || oh < 1 || ow < 1 || h > max || w > max || oh > max || ow > max)
        return fv_error_set(err, FV_ERR_USAGE, "resample: bad sizes %dx%d -> %dx%d", h, w, oh, ow);
    if ((unsigned)f > FV_RS_LINEAR_AA)
        return fv_error_set(err, FV_ERR_USAGE, "resample: unknown filter %d", (int)f);
    float *mem = fv_malloc(fv_resample_table_floats(h, w, oh, ow, f) * sizeof(float), err);
    if (!mem) return FV_ERR_NOMEM;
    fv_resample_init_at(r, h, w, oh, ow, f, mem);
    r->own = mem;
    return FV_OK;
}

void fv_resample_free(struct fv_resample *r) {
    if (!r) return;
    free(r->own);
    memset(r, 0, sizeof *r);
}

size_t fv_resample_ws_floats(const struct fv_resample *r, int c) {
    return (size_t)r->h * (size_t)r->ow * (size_t)c;
}

/* One output row oy of one image, no scratch. */
static void row_direct(const struct fv_resample *r, const float *s, float *d, int c, int oy) {
    const struct fv_resample_axis *ax = &r->x, *ay = &r->y;
    const float *wy = ay->w + (size_t)oy * (size_t)ay->ksize;
    int sy = ay->start[oy], ny = ay->len[oy];
    for (int ox = 0; ox < r->ow; ox++) {
        const float *wx = ax->w + (size_t)ox * (size_t)ax->ksize;
        int sx = ax->start[ox], nx = ax->len[ox];
        float *o = d + (size_t)ox * (size_t)c;
        for (int k = 0; k < c; k++) {
            float acc = 0.0f;
            for (int j = 0; j < ny; j++) {
                const float *row = s + ((size_t)(sy + j) * (size_t)r->w + (size_t)sx) * (size_t)c + k;
                float h = 0.0f;
                for (int i = 0; i < nx; i++) h += wx[i] * row[(size_t)i * (size_t)c];
                acc += wy[j] * h;
            }
            o[k] = acc;
        }
    }
}

/* One image through the horizontal pass into ws (h, ow, c), then the vertical one. */
static void image_separable(const struct fv_resample *r, const float *s, float *d, int c,
                            float *ws) {
    const struct fv_resample_axis *ax = &r->x, *ay = &r->y;
    size_t C = (size_t)c;
    for (int y = 0; y < r->h; y++) {
        const float *row = s + (size_t)y * (size_t)r->w * C;
        for (int ox = 0; ox < r->ow; ox++) {
            const float *wx = ax->w + (size_t)ox * (size_t)ax->ksize;
            float *t = ws + ((size_t)y * (size_t)r->ow + (size_t)ox) * C;
            for (size_t k = 0; k < C; k++) {
                float h = 0.0f;
                for (int i = 0; i < ax->len[ox]; i++) h += wx[i] * row[(size_t)(ax->start[ox] + i) * C + k];
                t[k] = h;
            }
        }
    }
    size_t stride = (size_t)r->ow * C;
    for (int oy = 0; oy < r->oh; oy++) {
        const float *wy = ay->w + (size_t)oy * (size_t)ay->ksize;
        float *o = d + (size_t)oy * stride;
        for (size_t i = 0; i < stride; i++) {
            float acc = 0.0f;
            for (int j = 0; j < ay->len[oy]; j++) acc += wy[j] * ws[(size_t)(ay->start[oy] + j) * stride + i];
            o[i] = acc;
        }
    }
}

void fv_resample_forward(const struct fv_resample *r, const float *src, float *dst, int c, int n,
                         float *ws) {
    size_t in_img = (size_t)r->h * (size_t)r->w * (size_t)c;
    size_t out_row = (size_t)r->ow * (size_t)c, out_img = (size_t)r->oh * out_row;
    size_t work = (size_t)n * out_img * (size_t)r->x.ksize * (size_t)r->y.ksize;
    if (ws) {
        size_t wsi = fv_resample_ws_floats(r, c);
#pragma omp parallel for schedule(static) if (work >= RS_PAR_MIN && n > 1)
        for (int b = 0; b < n; b++)
            image_separable(r, src + (size_t)b * in_img, dst + (size_t)b * out_img, c,
                            ws + (size_t)b * wsi);
        return;
    }
    long rows = (long)n * r->oh;
#pragma omp parallel for schedule(static) if (work >= RS_PAR_MIN)
    for (long q = 0; q < rows; q++) {
        long b = q / r->oh;
        int oy = (int)(q % r->oh);
        row_direct(r, src + (size_t)b * in_img, dst + (size_t)b * out_img + (size_t)oy * out_row, c, oy);
    }
}

void fv_resample_backward(const struct fv_resample *r, const float *ddst, float *dsrc, int c,
                          int n) {
    const struct fv_resample_axis *ax = &r->x, *ay = &r->y;
    size_t C = (size_t)c, in_img = (size_t)r->h * (size_t)r->w * C;
    size_t out_img = (size_t)r->oh * (size_t)r->ow * C;
    size_t work = (size_t)n * out_img * (size_t)ax->ksize * (size_t)ay->ksize;
#pragma omp parallel for schedule(static) if (work >= RS_PAR_MIN && n > 1)
    for (int b = 0; b < n; b++) {
        const float *g = ddst + (size_t)b * out_img;
        float *d = dsrc + (size_t)b * in_img;
        for (int oy = 0; oy < r->oh; oy++) {
            const float *wy = ay->w + (size_t)oy * (size_t)ay->ksize;
            for (int ox = 0; ox < r->ow; ox++) {
                const float *wx = ax->w + (size_t)ox * (size_t)ax->ksize;
                const float *go = g + ((size_t)oy * (size_t)r->ow + (size_t)ox) * C;
                for (int j = 0; j < ay->len[oy]; j++) {
                    float *row = d + ((size_t)(ay->start[oy] + j) * (size_t)r->w + (size_t)ax->start[ox]) * C;
                    for (int i = 0; i < ax->len[ox]; i++) {
                        float wgt = wy[j] * wx[i];
                        float *t = row + (size_t)i * C;
                        for (size_t k = 0; k < C; k++) t[k] += wgt * go[k];
                    }
                }
            }
        }
    }
}
