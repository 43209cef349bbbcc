/* Conv2D, DepthwiseConv2D, SeparableConv2D and Dense (src/layers/conv2d.c,
 * depthwise.c, separable.c, dense.c; kernels gemm.c, im2col.c).
 *
 * - forward against naive double-precision direct loops written below with
 *   Keras' padding rule, over many configurations (kernel sizes, strides,
 *   'same'/'valid', dilation, groups, bias, batch, odd and non-square sizes);
 * - a few outputs computed by hand (TF's asymmetric 'same' padding);
 * - backward against central finite differences (gradcheck_layer) for every
 *   configuration, backward accumulating into dx and skipping a NULL dx;
 * - bit-identical results with 1 and 2 OpenMP threads;
 * - shape errors (FV_ERR_SHAPE naming the layer) and flops.
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "layers/layers.h"

/* One test configuration. oc: filters (conv, separable); mult: depth multiplier
 * (depthwise, separable); groups: Conv2D groups. */
struct cfg {
    int h, w, c, oc;
    int kh, kw, sh, sw, dh, dw;
    int same, groups, mult, bias, n;
};

static void cfg_str(const struct cfg *c, char *buf, size_t cap) {
    snprintf(buf, cap,
             "in %dx%dx%d oc %d k %dx%d s %dx%d d %dx%d %s groups %d mult %d bias %d n %d", c->h,
             c->w, c->c, c->oc, c->kh, c->kw, c->sh, c->sw, c->dh, c->dw,
             c->same ? "same" : "valid", c->groups, c->mult, c->bias, c->n);
}

/* ---- building layers by hand ---- */

static float *rand_buf(size_t n, uint64_t seed) {
    float *p = malloc(n * sizeof(float));
    assert_non_null(p);
    fill_uniform(p, n, seed, -1.f, 1.f);
    return p;
}

static void set_weight(struct fv_layer *l, int i, size_t len, uint64_t seed) {
    l->w[i] = rand_buf(len, seed);
    l->w_len[i] = len;
    if (l->n_w < i + 1) l->n_w = i + 1;
}

static void free_layer(struct fv_layer *l) {
    for (int i = 0; i < l->n_w; i++) free(l->w[i]);
}

enum kind { CONV, DEPTHWISE, SEPARABLE };

static void make_spatial(struct fv_layer *l, enum kind k, const struct cfg *c, uint64_t seed) {
    memset(l, 0, sizeof *l);
    static const char *names[] = {"conv_under_test", "dw_under_test", "sep_under_test"};
    static const struct fv_layer_ops *ops[] = {&fv_conv2d_ops, &fv_depthwise_ops,
                                               &fv_separable_ops};
    snprintf(l->name, sizeof l->name, "%s", names[k]);
    l->ops = ops[k];
    l->n_in = 1;
    struct fv_conv_params *p = &l->p.conv;
    p->filters = c->oc;
    p->kh = c->kh;
    p->kw = c->kw;
    p->sh = c->sh;
    p->sw = c->sw;
    p->dh = c->dh;
    p->dw = c->dw;
    p->same = c->same;
    p->multiplier = c->mult;
    p->use_bias = c->bias;
    p->groups = c->groups;
    size_t taps = (size_t)c->kh * (size_t)c->kw;
    if (k == CONV) {
        set_weight(l, 0, taps * (size_t)(c->c / c->groups) * (size_t)c->oc, seed);
        if (c->bias) set_weight(l, 1, (size_t)c->oc, seed + 1);
    } else if (k == DEPTHWISE) {
        set_weight(l, 0, taps * (size_t)c->c * (size_t)c->mult, seed);
        if (c->bias) set_weight(l, 1, (size_t)c->c * (size_t)c->mult, seed + 1);
    } else {
        set_weight(l, 0, taps * (size_t)c->c * (size_t)c->mult, seed);
        set_weight(l, 1, (size_t)c->c * (size_t)c->mult * (size_t)c->oc, seed + 2);
        if (c->bias) set_weight(l, 2, (size_t)c->oc, seed + 1);
    }
}

static struct fv_shape shape3(int h, int w, int c) {
    struct fv_shape s = {3, {h, w, c, 0}};
    return s;
}

/* Runs shape + forward; returns y (malloc'd) and the output shape. */
static float *run_forward(const struct fv_layer *l, int n, const struct fv_shape *in,
                          const float *x, struct fv_shape *out) {
    struct fv_io io;
    memset(&io, 0, sizeof io);
    io.n = n;
    io.n_in = 1;
    io.in[0] = *in;
    struct fv_error err = {0};
    int rc = l->ops->shape(l, &io, &err);
    if (rc != FV_OK) fprintf(stderr, "shape failed: %s\n", err.msg);
    assert_int_equal(rc, FV_OK);
    size_t ny = (size_t)n * fv_shape_count(&io.out);
    io.x[0] = x;
    io.y = malloc(ny * sizeof(float));
    io.ws = io.ws_floats ? malloc(io.ws_floats * sizeof(float)) : NULL;
    assert_int_equal(fv_layer_prepare(l, &io), FV_OK);
    l->ops->forward(l, &io);
    free(io.ws);
    free(io.cache);
    *out = io.out;
    return io.y;
}

/* ---- naive references (double) ---- */

/* Keras/TF: 'valid' floor((in - d(k-1) - 1)/s) + 1; 'same' ceil(in/s) with the
 * smaller half of the total padding before. */
static int ref_size(int in, int k, int s, int d, int same, int *pad_before) {
    int span = d * (k - 1) + 1;
    if (!same) {
        *pad_before = 0;
        return (in - span) / s + 1;
    }
    int out = (in + s - 1) / s;
    int total = (out - 1) * s + span - in;
    *pad_before = total > 0 ? total / 2 : 0;
    return out;
}

/* x value at (img, iy, ix, ch) or 0 outside the image */
static double xat(const float *x, const struct cfg *c, int img, int iy, int ix, int ch) {
    if (iy < 0 || iy >= c->h || ix < 0 || ix >= c->w) return 0.0;
    return (double)x[(((size_t)img * (size_t)c->h + (size_t)iy) * (size_t)c->w + (size_t)ix) *
                         (size_t)c->c +
                     (size_t)ch];
}

static double *ref_conv(const struct cfg *c, const float *x, const float *k, const float *b,
                        int *oh_out, int *ow_out) {
    int pt, pl;
    int oh = ref_size(c->h, c->kh, c->sh, c->dh, c->same, &pt);
    int ow = ref_size(c->w, c->kw, c->sw, c->dw, c->same, &pl);
    int cg = c->c / c->groups, ocg = c->oc / c->groups;
    double *y = malloc((size_t)c->n * (size_t)oh * (size_t)ow * (size_t)c->oc * sizeof(double));
    size_t i = 0;
    for (int img = 0; img < c->n; img++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int o = 0; o < c->oc; o++) {
                    int g = o / ocg;
                    double s = b ? (double)b[o] : 0.0;
                    for (int ky = 0; ky < c->kh; ky++)
                        for (int kx = 0; kx < c->kw; kx++)
                            for (int ci = 0; ci < cg; ci++) {
                                double xv = xat(x, c, img, oy * c->sh - pt + ky * c->dh,
                                                ox * c->sw - pl + kx * c->dw, g * cg + ci);
                                double kv = (double)k[(((size_t)ky * (size_t)c->kw + (size_t)kx) *
                                                           (size_t)cg +
                                                       (size_t)ci) *
                                                          (size_t)c->oc +
                                                      (size_t)o];
                                s += xv * kv;
                            }
                    y[i++] = s;
                }
    *oh_out = oh;
    *ow_out = ow;
    return y;
}

/* out channel ch*mult + m */
static double *ref_depthwise(const struct cfg *c, const float *x, const float *k, const float *b,
                             int *oh_out, int *ow_out) {
    int pt, pl;
    int oh = ref_size(c->h, c->kh, c->sh, c->dh, c->same, &pt);
    int ow = ref_size(c->w, c->kw, c->sw, c->dw, c->same, &pl);
    int cm = c->c * c->mult;
    double *y = malloc((size_t)c->n * (size_t)oh * (size_t)ow * (size_t)cm * sizeof(double));
    size_t i = 0;
    for (int img = 0; img < c->n; img++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int ch = 0; ch < c->c; ch++)
                    for (int m = 0; m < c->mult; m++) {
                        double s = b ? (double)b[ch * c->mult + m] : 0.0;
                        for (int ky = 0; ky < c->kh; ky++)
                            for (int kx = 0; kx < c->kw; kx++) {
                                double xv = xat(x, c, img, oy * c->sh - pt + ky * c->dh,
                                                ox * c->sw - pl + kx * c->dw, ch);
                                s += xv * (double)k[((size_t)ky * (size_t)c->kw + (size_t)kx) *
                                                        (size_t)cm +
                                                    (size_t)ch * (size_t)c->mult + (size_t)m];
                            }
                        y[i++] = s;
                    }
    *oh_out = oh;
    *ow_out = ow;
    return y;
}

static double *ref_separable(const struct cfg *c, const float *x, const float *dk,
                             const float *pk, const float *b, int *oh, int *ow) {
    double *mid = ref_depthwise(c, x, dk, NULL, oh, ow);
    size_t pix = (size_t)c->n * (size_t)*oh * (size_t)*ow, cm = (size_t)c->c * (size_t)c->mult;
    double *y = malloc(pix * (size_t)c->oc * sizeof(double));
    for (size_t p = 0; p < pix; p++)
        for (int o = 0; o < c->oc; o++) {
            double s = b ? (double)b[o] : 0.0;
            for (size_t j = 0; j < cm; j++)
                s += mid[p * cm + j] * (double)pk[j * (size_t)c->oc + (size_t)o];
            y[p * (size_t)c->oc + (size_t)o] = s;
        }
    free(mid);
    return y;
}

/* ---- configurations ---- */

/* h  w  c  oc kh kw sh sw dh dw same groups mult bias n */
static const struct cfg conv_cfgs[] = {
    {7, 9, 4, 5, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 3},   /* 1x1: direct path */
    {7, 9, 4, 6, 1, 1, 1, 1, 1, 1, 0, 2, 0, 0, 3},   /* 1x1 groups 2: direct path */
    {7, 9, 4, 5, 1, 1, 2, 2, 1, 1, 0, 1, 0, 1, 3},   /* 1x1 stride 2: im2col */
    {7, 9, 3, 5, 3, 3, 1, 1, 1, 1, 1, 1, 0, 1, 3},
    {7, 9, 3, 5, 3, 3, 1, 1, 1, 1, 0, 1, 0, 0, 3},
    {7, 9, 3, 5, 3, 3, 2, 2, 1, 1, 1, 1, 0, 1, 3},
    {7, 9, 3, 5, 3, 3, 2, 2, 1, 1, 0, 1, 0, 0, 3},
    {7, 9, 3, 4, 2, 2, 1, 1, 1, 1, 1, 1, 0, 1, 3},   /* even kernel: pad after only */
    {7, 9, 3, 4, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 3},
    {8, 6, 3, 4, 2, 2, 2, 2, 1, 1, 1, 1, 0, 1, 2},
    {7, 9, 2, 3, 5, 3, 1, 1, 1, 1, 0, 1, 0, 1, 3},   /* 5x3 */
    {7, 9, 2, 3, 5, 3, 2, 1, 1, 1, 1, 1, 0, 1, 3},
    {9, 7, 2, 3, 5, 3, 2, 2, 1, 1, 1, 1, 0, 0, 3},
    {7, 9, 3, 4, 3, 3, 1, 1, 2, 2, 1, 1, 0, 1, 3},   /* dilation 2 */
    {9, 7, 3, 4, 3, 3, 1, 1, 2, 2, 0, 1, 0, 0, 3},
    {7, 9, 3, 5, 3, 3, 3, 2, 1, 2, 1, 1, 0, 1, 3},   /* mixed strides / dilation */
    {7, 9, 4, 6, 3, 3, 1, 1, 1, 1, 1, 2, 0, 1, 3},   /* groups 2 */
    {7, 9, 4, 6, 3, 3, 2, 2, 1, 1, 0, 2, 0, 0, 3},
    {9, 7, 6, 9, 2, 2, 2, 1, 1, 1, 1, 3, 0, 1, 2},   /* groups 3, even kernel */
    {3, 3, 2, 3, 5, 5, 2, 2, 1, 1, 1, 1, 0, 1, 1},   /* kernel larger than the input */
    {1, 1, 3, 4, 3, 3, 1, 1, 1, 1, 1, 1, 0, 1, 2},   /* 1x1 input */
    {6, 5, 40, 20, 3, 3, 1, 1, 1, 1, 1, 1, 0, 1, 2}, /* K = 360 > one K block, ragged N */
    {23, 21, 3, 9, 3, 3, 1, 1, 1, 1, 1, 1, 0, 1, 2}, /* several M tiles, 4-row remainder */
    {9, 7, 64, 64, 3, 3, 1, 1, 1, 1, 1, 1, 0, 1, 2}, /* 3x3 stride 1, >= 32 channels: Winograd */
    {8, 11, 64, 72, 3, 3, 1, 1, 1, 1, 0, 1, 0, 0, 2},/* Winograd, 'valid', odd width */
};
#define N_CONV (sizeof conv_cfgs / sizeof conv_cfgs[0])

static const struct cfg dw_cfgs[] = {
    {7, 9, 3, 0, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3},
    {7, 9, 3, 0, 3, 3, 2, 2, 1, 1, 0, 1, 1, 0, 3},
    {7, 9, 3, 0, 3, 3, 2, 2, 1, 1, 1, 1, 2, 1, 3},   /* multiplier 2 */
    {7, 9, 3, 0, 2, 2, 1, 1, 1, 1, 1, 1, 2, 0, 3},
    {7, 9, 5, 0, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 3},
    {7, 9, 2, 0, 5, 3, 1, 1, 1, 1, 0, 1, 2, 1, 3},
    {9, 7, 6, 0, 3, 3, 1, 1, 2, 2, 1, 1, 1, 1, 3},   /* dilation 2; C = 6: vector + tail */
    {9, 7, 3, 0, 3, 3, 1, 1, 2, 2, 0, 1, 3, 0, 2},
    {3, 3, 4, 0, 5, 5, 2, 2, 1, 1, 1, 1, 1, 1, 1},
    {9, 11, 40, 0, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2}, /* C = 40: 32 at a time + 8 (SIMD paths) */
    {8, 7, 37, 0, 3, 3, 2, 2, 1, 1, 1, 1, 1, 0, 2},  /* C = 37, stride 2: a masked tail of 5 */
};
#define N_DW (sizeof dw_cfgs / sizeof dw_cfgs[0])

static const struct cfg sep_cfgs[] = {
    {7, 9, 3, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3},
    {7, 9, 3, 5, 3, 3, 2, 2, 1, 1, 0, 1, 1, 0, 3},
    {7, 9, 3, 4, 3, 3, 2, 2, 1, 1, 1, 1, 2, 1, 3},
    {7, 9, 4, 6, 2, 2, 1, 1, 1, 1, 1, 1, 2, 0, 3},
    {9, 7, 3, 5, 3, 3, 1, 1, 2, 2, 1, 1, 1, 1, 3},
    {7, 9, 2, 3, 5, 3, 1, 1, 1, 1, 0, 1, 2, 1, 2},
};
#define N_SEP (sizeof sep_cfgs / sizeof sep_cfgs[0])

static void check_spatial_forward(enum kind k, const struct cfg *cfgs, size_t ncfg) {
    for (size_t t = 0; t < ncfg; t++) {
        const struct cfg *c = &cfgs[t];
        char desc[256];
        cfg_str(c, desc, sizeof desc);
        struct fv_layer l;
        make_spatial(&l, k, c, 100 + t);
        struct fv_shape in = shape3(c->h, c->w, c->c), out;
        size_t nx = (size_t)c->n * fv_shape_count(&in);
        float *x = rand_buf(nx, 7 + t);
        float *y = run_forward(&l, c->n, &in, x, &out);
        int oh, ow, oc;
        double *ref;
        if (k == CONV) {
            ref = ref_conv(c, x, l.w[0], c->bias ? l.w[1] : NULL, &oh, &ow);
            oc = c->oc;
        } else if (k == DEPTHWISE) {
            ref = ref_depthwise(c, x, l.w[0], c->bias ? l.w[1] : NULL, &oh, &ow);
            oc = c->c * c->mult;
        } else {
            ref = ref_separable(c, x, l.w[0], l.w[1], c->bias ? l.w[2] : NULL, &oh, &ow);
            oc = c->oc;
        }
        if (out.rank != 3 || out.d[0] != oh || out.d[1] != ow || out.d[2] != oc)
            fail_msg("%s: output %dx%dx%d, expected %dx%dx%d", desc, out.d[0], out.d[1],
                     out.d[2], oh, ow, oc);
        double e = rel_err_f64(y, ref, (size_t)c->n * fv_shape_count(&out));
        if (!(e < 1e-5)) fail_msg("%s: forward rel err %g", desc, e);
        free(ref);
        free(y);
        free(x);
        free_layer(&l);
    }
}

static void check_spatial_backward(enum kind k, const struct cfg *cfgs, size_t ncfg) {
    for (size_t t = 0; t < ncfg; t++) {
        const struct cfg *c = &cfgs[t];
        char desc[256];
        cfg_str(c, desc, sizeof desc);
        struct fv_layer l;
        make_spatial(&l, k, c, 300 + t);
        struct fv_shape in = shape3(c->h, c->w, c->c);
        /* batch 2 is enough to catch image offsets, and a sample of points
         * for big inputs keeps the test fast (under ASan too) */
        int n = c->n < 2 ? c->n : 2;
        size_t nx = (size_t)n * fv_shape_count(&in);
        /* linear layers: any step is exact up to rounding, and a large one
         * keeps the forward's rounding (Winograd's is ~1e-5) out of the quotient */
        double e = gradcheck_layer(&l, n, 1, &in, NULL, 0.25, nx > 1000 ? 64 : 0, 11 + t);
        if (!(e < 1e-3)) fail_msg("%s: gradcheck rel err %g", desc, e);
        free_layer(&l);
    }
}

static void test_conv_forward(void **state) {
    (void)state;
    check_spatial_forward(CONV, conv_cfgs, N_CONV);
}
static void test_conv_backward(void **state) {
    (void)state;
    check_spatial_backward(CONV, conv_cfgs, N_CONV);
}
static void test_depthwise_forward(void **state) {
    (void)state;
    check_spatial_forward(DEPTHWISE, dw_cfgs, N_DW);
}
static void test_depthwise_backward(void **state) {
    (void)state;
    check_spatial_backward(DEPTHWISE, dw_cfgs, N_DW);
}
static void test_separable_forward(void **state) {
    (void)state;
    check_spatial_forward(SEPARABLE, sep_cfgs, N_SEP);
}
static void test_separable_backward(void **state) {
    (void)state;
    check_spatial_backward(SEPARABLE, sep_cfgs, N_SEP);
}

/* ---- hand-computed outputs: TF's 'same' puts the odd padding pixel after ---- */

static void ones_conv(struct fv_layer *l, int k, int s, float *kernel) {
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "hand");
    l->ops = &fv_conv2d_ops;
    l->n_in = 1;
    l->p.conv = (struct fv_conv_params){.filters = 1, .kh = k, .kw = k, .sh = s, .sw = s,
                                        .dh = 1, .dw = 1, .same = 1, .groups = 1};
    for (int i = 0; i < k * k; i++) kernel[i] = 1.0f;
    l->n_w = 1;
    l->w[0] = kernel;
    l->w_len[0] = (size_t)(k * k);
}

static void test_same_padding_by_hand(void **state) {
    (void)state;
    struct fv_layer l;
    float kernel[9];
    struct fv_shape out;

    /* 3x3 input 1..9, 2x2 ones, stride 1: pad 0 before, 1 after */
    float x3[9];
    for (int i = 0; i < 9; i++) x3[i] = (float)(i + 1);
    ones_conv(&l, 2, 1, kernel);
    struct fv_shape in3 = shape3(3, 3, 1);
    float *y = run_forward(&l, 1, &in3, x3, &out);
    const float want3[9] = {12, 16, 9, 24, 28, 15, 15, 17, 9};
    assert_int_equal(out.d[0], 3);
    assert_int_equal(out.d[1], 3);
    for (int i = 0; i < 9; i++) assert_true(y[i] == want3[i]);
    free(y);

    /* 4x4 input 1..16, 3x3 ones, stride 2: output 2x2, total pad 1, all after */
    float x4[16];
    for (int i = 0; i < 16; i++) x4[i] = (float)(i + 1);
    ones_conv(&l, 3, 2, kernel);
    struct fv_shape in4 = shape3(4, 4, 1);
    y = run_forward(&l, 1, &in4, x4, &out);
    const float want4[4] = {54, 45, 72, 54};
    assert_int_equal(out.d[0], 2);
    assert_int_equal(out.d[1], 2);
    for (int i = 0; i < 4; i++) assert_true(y[i] == want4[i]);
    free(y);

    /* depthwise channel order: out channel c*M + m */
    struct fv_layer d;
    memset(&d, 0, sizeof d);
    snprintf(d.name, sizeof d.name, "hand_dw");
    d.ops = &fv_depthwise_ops;
    d.n_in = 1;
    d.p.conv = (struct fv_conv_params){.kh = 1, .kw = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1,
                                       .multiplier = 2};
    float dk[4] = {1, 2, 3, 4}; /* k[c][m] */
    d.n_w = 1;
    d.w[0] = dk;
    d.w_len[0] = 4;
    float x1[2] = {1, 10};
    struct fv_shape in1 = shape3(1, 1, 2);
    y = run_forward(&d, 1, &in1, x1, &out);
    assert_int_equal(out.d[2], 4);
    const float want1[4] = {1, 2, 30, 40};
    for (int i = 0; i < 4; i++) assert_true(y[i] == want1[i]);
    free(y);
}

/* ---- Dense ---- */

struct dense_cfg {
    int rank, d[3], units, bias, n;
};
static const struct dense_cfg dense_cfgs[] = {
    {1, {13, 0, 0}, 7, 1, 3},
    {1, {13, 0, 0}, 8, 0, 1},
    {3, {2, 3, 13}, 7, 1, 3},   /* acts on the last axis */
    {2, {5, 300}, 9, 1, 2},     /* IN > one K block */
    {1, {40, 0, 0}, 300, 0, 2}, /* OUT > one column tile */
};
#define N_DENSE (sizeof dense_cfgs / sizeof dense_cfgs[0])

static void make_dense(struct fv_layer *l, const struct dense_cfg *c, uint64_t seed) {
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "dense_under_test");
    l->ops = &fv_dense_ops;
    l->n_in = 1;
    l->p.conv.filters = c->units;
    l->p.conv.use_bias = c->bias;
    int in = c->d[c->rank - 1];
    set_weight(l, 0, (size_t)in * (size_t)c->units, seed);
    if (c->bias) set_weight(l, 1, (size_t)c->units, seed + 1);
}

static struct fv_shape dense_in(const struct dense_cfg *c) {
    struct fv_shape s = {c->rank, {c->d[0], c->d[1], c->d[2], 0}};
    return s;
}

static void test_dense_forward(void **state) {
    (void)state;
    for (size_t t = 0; t < N_DENSE; t++) {
        const struct dense_cfg *c = &dense_cfgs[t];
        struct fv_layer l;
        make_dense(&l, c, 500 + t);
        struct fv_shape in = dense_in(c), out;
        size_t nx = (size_t)c->n * fv_shape_count(&in);
        int IN = c->d[c->rank - 1];
        size_t rows = nx / (size_t)IN;
        float *x = rand_buf(nx, 9 + t);
        float *y = run_forward(&l, c->n, &in, x, &out);
        assert_int_equal(out.rank, c->rank);
        for (int i = 0; i + 1 < c->rank; i++) assert_int_equal(out.d[i], c->d[i]);
        assert_int_equal(out.d[c->rank - 1], c->units);
        double *ref = malloc(rows * (size_t)c->units * sizeof(double));
        for (size_t r = 0; r < rows; r++)
            for (int o = 0; o < c->units; o++) {
                double s = c->bias ? (double)l.w[1][o] : 0.0;
                for (int i = 0; i < IN; i++)
                    s += (double)x[r * (size_t)IN + (size_t)i] *
                         (double)l.w[0][(size_t)i * (size_t)c->units + (size_t)o];
                ref[r * (size_t)c->units + (size_t)o] = s;
            }
        double e = rel_err_f64(y, ref, rows * (size_t)c->units);
        if (!(e < 1e-5)) fail_msg("dense cfg %zu: forward rel err %g", t, e);
        free(ref);
        free(y);
        free(x);
        free_layer(&l);
    }
}

static void test_dense_backward(void **state) {
    (void)state;
    for (size_t t = 0; t < N_DENSE; t++) {
        const struct dense_cfg *c = &dense_cfgs[t];
        struct fv_layer l;
        make_dense(&l, c, 700 + t);
        struct fv_shape in = dense_in(c);
        double e = gradcheck_layer(&l, c->n, 1, &in, NULL, 1e-2, 256, 21 + t);
        if (!(e < 1e-3)) fail_msg("dense cfg %zu: gradcheck rel err %g", t, e);
        free_layer(&l);
    }
}

/* ---- backward accumulates, and skips a NULL dx ---- */

static void test_backward_accumulates(void **state) {
    (void)state;
    const struct cfg c = {7, 9, 4, 6, 3, 3, 2, 2, 1, 1, 1, 2, 2, 1, 2};
    for (int k = 0; k < 4; k++) {
        struct fv_layer l;
        struct dense_cfg dc = {3, {7, 9, 4}, 6, 1, 2};
        if (k < 3)
            make_spatial(&l, (enum kind)k, &c, 40 + (uint64_t)k);
        else
            make_dense(&l, &dc, 44);
        struct fv_io io;
        memset(&io, 0, sizeof io);
        io.n = c.n;
        io.n_in = 1;
        io.grad = 1;
        io.in[0] = shape3(c.h, c.w, c.c);
        struct fv_error err = {0};
        assert_int_equal(l.ops->shape(&l, &io, &err), FV_OK);
        size_t nx = (size_t)c.n * fv_shape_count(&io.in[0]);
        size_t ny = (size_t)c.n * fv_shape_count(&io.out);
        float *x = rand_buf(nx, 1), *dy = rand_buf(ny, 2), *base = rand_buf(nx, 3);
        float *dx0 = calloc(nx, sizeof(float)), *dx1 = malloc(nx * sizeof(float));
        memcpy(dx1, base, nx * sizeof(float));
        io.x[0] = x;
        io.dy = dy;
        io.y = malloc(ny * sizeof(float));
        io.ws = io.ws_floats ? malloc(io.ws_floats * sizeof(float)) : NULL;
        assert_int_equal(fv_layer_prepare(&l, &io), FV_OK);
        l.ops->forward(&l, &io);
        io.dx[0] = NULL;
        l.ops->backward(&l, &io); /* must not crash */
        io.dx[0] = dx0;
        l.ops->backward(&l, &io);
        io.dx[0] = dx1;
        l.ops->backward(&l, &io);
        for (size_t i = 0; i < nx; i++)
            assert_true(fabsf(dx1[i] - (base[i] + dx0[i])) <= 1e-5f * (1.0f + fabsf(dx0[i])));
        free(x);
        free(dy);
        free(base);
        free(dx0);
        free(dx1);
        free(io.y);
        free(io.ws);
        free(io.cache);
        free_layer(&l);
    }
}

/* ---- bit-identical with 1 and 2 threads ---- */

struct run_out {
    float *y, *dx;
    size_t ny, nx;
};

static struct run_out run_both(const struct fv_layer *l, int n, const struct fv_shape *in,
                               int threads) {
#ifdef _OPENMP
    omp_set_num_threads(threads);
#else
    (void)threads;
#endif
    struct fv_io io;
    memset(&io, 0, sizeof io);
    io.n = n;
    io.n_in = 1;
    io.grad = 1;
    io.in[0] = *in;
    struct fv_error err = {0};
    assert_int_equal(l->ops->shape(l, &io, &err), FV_OK);
    struct run_out r;
    r.nx = (size_t)n * fv_shape_count(in);
    r.ny = (size_t)n * fv_shape_count(&io.out);
    float *x = rand_buf(r.nx, 77), *dy = rand_buf(r.ny, 78);
    r.y = malloc(r.ny * sizeof(float));
    r.dx = calloc(r.nx, sizeof(float));
    io.x[0] = x;
    io.y = r.y;
    io.dy = dy;
    io.dx[0] = r.dx;
    io.ws = io.ws_floats ? malloc(io.ws_floats * sizeof(float)) : NULL;
    assert_int_equal(fv_layer_prepare(l, &io), FV_OK);
    l->ops->forward(l, &io);
    l->ops->backward(l, &io);
    free(io.ws);
    free(io.cache);
    free(x);
    free(dy);
    return r;
}

static void check_threads(const struct fv_layer *l, int n, const struct fv_shape *in) {
#ifdef _OPENMP
    int keep = omp_get_max_threads();
#endif
    struct run_out a = run_both(l, n, in, 1);
    struct run_out b = run_both(l, n, in, 2);
#ifdef _OPENMP
    omp_set_num_threads(keep);
#endif
    assert_int_equal(a.ny, b.ny);
    if (memcmp(a.y, b.y, a.ny * sizeof(float)) != 0) fail_msg("%s: forward differs", l->name);
    if (memcmp(a.dx, b.dx, a.nx * sizeof(float)) != 0) fail_msg("%s: backward differs", l->name);
    free(a.y);
    free(a.dx);
    free(b.y);
    free(b.dx);
}

static void test_threads_bit_identical(void **state) {
    (void)state;
    const struct cfg big[] = {
        {29, 31, 24, 36, 3, 3, 1, 1, 1, 1, 1, 1, 0, 1, 2},
        {29, 31, 12, 20, 5, 5, 2, 2, 1, 1, 1, 2, 0, 1, 2},
        {17, 15, 64, 64, 3, 3, 1, 1, 1, 1, 1, 1, 0, 1, 2}, /* Winograd */
    };
    struct fv_layer l;
    for (size_t i = 0; i < 3; i++) {
        make_spatial(&l, CONV, &big[i], 900 + i);
        struct fv_shape in = shape3(big[i].h, big[i].w, big[i].c);
        check_threads(&l, big[i].n, &in);
        free_layer(&l);
    }
    const struct cfg dwc = {29, 31, 24, 40, 3, 3, 1, 1, 1, 1, 1, 1, 2, 1, 2};
    make_spatial(&l, DEPTHWISE, &dwc, 910);
    struct fv_shape in = shape3(dwc.h, dwc.w, dwc.c);
    check_threads(&l, dwc.n, &in);
    free_layer(&l);
    make_spatial(&l, SEPARABLE, &dwc, 920);
    check_threads(&l, dwc.n, &in);
    free_layer(&l);
    struct dense_cfg dc = {1, {700, 0, 0}, 600, 1, 3};
    make_dense(&l, &dc, 930);
    struct fv_shape din = dense_in(&dc);
    check_threads(&l, dc.n, &din);
    free_layer(&l);
}

/* dx = J^T dy by explicit loops in double, for a dy that may be sparse. */
static double *ref_conv_backward(const struct cfg *c, const float *dy, const float *k, int oh, int ow) {
    int pt, pl;
    ref_size(c->h, c->kh, c->sh, c->dh, c->same, &pt);
    ref_size(c->w, c->kw, c->sw, c->dw, c->same, &pl);
    size_t nx = (size_t)c->n * c->h * c->w * c->c;
    double *dx = calloc(nx, sizeof *dx);
    for (int img = 0; img < c->n; img++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int o = 0; o < c->oc; o++) {
                    double g = (double)dy[(((size_t)img * oh + oy) * ow + ox) * c->oc + o];
                    if (g == 0) continue;
                    for (int ky = 0; ky < c->kh; ky++)
                        for (int kx = 0; kx < c->kw; kx++) {
                            /* forward: y[oy][ox][o] += x[oy*sh-pt+ky*dh][...][ci] * k[ky][kx][ci][o] */
                            int iy = oy * c->sh - pt + ky * c->dh, ix = ox * c->sw - pl + kx * c->dw;
                            if (iy < 0 || iy >= c->h || ix < 0 || ix >= c->w) continue;
                            for (int ci = 0; ci < c->c; ci++)
                                dx[(((size_t)img * c->h + iy) * c->w + ix) * c->c + ci] +=
                                    g * (double)k[(((size_t)ky * c->kw + kx) * c->c + ci) * c->oc + o];
                        }
                }
    return dx;
}

/* A filter objective's gradient is non-zero in one channel: conv2d's backward
 * takes a shorter path for such images; check it against loops in double,
 * next to an image with a dense gradient, and with 1 and 2 threads. */
static void test_backward_sparse_dy(void **state) {
    (void)state;
    static const struct cfg cases[] = {
        {15, 13, 64, 64, 3, 3, 1, 1, 1, 1, 1, 1, 0, 1, 2}, /* Winograd layer */
        {11, 9, 8, 32, 3, 3, 1, 1, 1, 1, 0, 1, 0, 1, 2},
        {11, 9, 8, 32, 3, 3, 2, 2, 1, 1, 1, 1, 0, 1, 2},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const struct cfg *c = &cases[t];
        struct fv_layer l;
        make_spatial(&l, CONV, c, 950 + t);
        struct fv_shape in = shape3(c->h, c->w, c->c);
        struct fv_io io;
        memset(&io, 0, sizeof io);
        io.n = c->n, io.n_in = 1, io.in[0] = in, io.grad = 1;
        struct fv_error err = {0};
        assert_int_equal(l.ops->shape(&l, &io, &err), FV_OK);
        size_t nx = (size_t)c->n * fv_shape_count(&in), ny = (size_t)c->n * fv_shape_count(&io.out);
        size_t per_y = fv_shape_count(&io.out);
        float *x = rand_buf(nx, 5), *dy = rand_buf(ny, 6), *dx1 = calloc(nx, sizeof(float)), *dx2 = calloc(nx, sizeof(float));
        for (size_t i = 0; i < per_y; i++) /* image 0: only channel 3 */
            if ((int)(i % (size_t)c->oc) != 3) dy[i] = 0;
        float *y = malloc(ny * sizeof(float)), *ws = io.ws_floats ? malloc(io.ws_floats * sizeof(float)) : NULL;
        io.x[0] = x, io.y = y, io.dy = dy, io.ws = ws;
        assert_int_equal(fv_layer_prepare(&l, &io), FV_OK);
        for (int threads = 1; threads <= 2; threads++) {
#ifdef _OPENMP
            omp_set_num_threads(threads);
#endif
            io.dx[0] = threads == 1 ? dx1 : dx2;
            l.ops->forward(&l, &io);
            l.ops->backward(&l, &io);
        }
        assert_memory_equal(dx1, dx2, nx * sizeof(float));
        double *ref = ref_conv_backward(c, dy, l.w[0], io.out.d[0], io.out.d[1]);
        double e = rel_err_f64(dx1, ref, nx);
        printf("sparse-dy backward case %zu: rel err %.2e\n", t, e);
        assert_true(e < 1e-5);
        free(ref), free(x), free(dy), free(dx1), free(dx2), free(y), free(ws), free(io.cache);
        free_layer(&l);
    }
}

/* ---- shape errors ---- */

static void expect_shape_error(const struct fv_layer *l, int n, const struct fv_shape *in) {
    struct fv_io io;
    memset(&io, 0, sizeof io);
    io.n = n;
    io.n_in = 1;
    io.in[0] = *in;
    struct fv_error err = {0};
    int rc = l->ops->shape(l, &io, &err);
    if (rc != FV_ERR_SHAPE) fail_msg("%s: expected FV_ERR_SHAPE, got %d", l->name, rc);
    assert_int_equal(err.code, FV_ERR_SHAPE);
    if (!strstr(err.msg, l->name)) fail_msg("message does not name the layer: %s", err.msg);
}

static void test_shape_errors(void **state) {
    (void)state;
    struct fv_layer l;
    /* conv: kernel for 4 channels, input has 3 */
    const struct cfg c4 = {7, 9, 4, 5, 3, 3, 1, 1, 1, 1, 1, 1, 0, 1, 1};
    make_spatial(&l, CONV, &c4, 1);
    struct fv_shape s = shape3(7, 9, 3);
    expect_shape_error(&l, 1, &s);
    /* too small for 'valid' */
    l.p.conv.same = 0;
    s = shape3(2, 9, 4);
    expect_shape_error(&l, 1, &s);
    s = shape3(7, 2, 4);
    expect_shape_error(&l, 1, &s);
    /* with dilation 3 a 3x3 kernel spans 7: 6 rows are too few */
    l.p.conv.dh = 3;
    s = shape3(6, 9, 4);
    expect_shape_error(&l, 1, &s);
    l.p.conv.dh = 1;
    /* rank */
    s.rank = 1;
    s.d[0] = 4;
    expect_shape_error(&l, 1, &s);
    /* groups: 2 groups of 4 channels need 8 */
    l.p.conv.groups = 2;
    l.p.conv.filters = 6;
    l.w_len[0] = 3 * 3 * 4 * 6;
    l.w_len[1] = 6;
    s = shape3(7, 9, 4);
    expect_shape_error(&l, 1, &s);
    free_layer(&l);

    /* depthwise */
    const struct cfg d4 = {7, 9, 4, 0, 3, 3, 1, 1, 1, 1, 0, 1, 1, 1, 1};
    make_spatial(&l, DEPTHWISE, &d4, 2);
    s = shape3(7, 9, 3);
    expect_shape_error(&l, 1, &s);
    s = shape3(2, 2, 4);
    expect_shape_error(&l, 1, &s);
    free_layer(&l);

    /* separable: pointwise built for 5 outputs, filters says 4 */
    const struct cfg s4 = {7, 9, 4, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, 1};
    make_spatial(&l, SEPARABLE, &s4, 3);
    l.p.conv.filters = 4;
    s = shape3(7, 9, 4);
    expect_shape_error(&l, 1, &s);
    free_layer(&l);

    /* dense: last axis 12, kernel for 13 */
    const struct dense_cfg dc = {1, {13, 0, 0}, 7, 1, 1};
    make_dense(&l, &dc, 4);
    s.rank = 3;
    s.d[0] = 2;
    s.d[1] = 3;
    s.d[2] = 12;
    expect_shape_error(&l, 1, &s);
    free_layer(&l);
}

static void test_flops(void **state) {
    (void)state;
    struct fv_layer l;
    const struct cfg c = {7, 9, 4, 6, 3, 3, 2, 2, 1, 1, 1, 2, 2, 1, 3};
    struct fv_io io;
    memset(&io, 0, sizeof io);
    io.n = 3;
    io.n_in = 1;
    io.in[0] = shape3(7, 9, 4);
    struct fv_error err = {0};
    /* conv 'same' stride 2: 4x5 outputs, 6 filters of 3*3*2 taps (2 groups) */
    make_spatial(&l, CONV, &c, 5);
    assert_int_equal(l.ops->shape(&l, &io, &err), FV_OK);
    assert_true(l.ops->flops(&l, &io) == 2.0 * 4 * 5 * 6 * 3 * 3 * 2);
    free_layer(&l);
    make_spatial(&l, DEPTHWISE, &c, 5);
    assert_true(l.ops->flops(&l, &io) == 2.0 * 4 * 5 * 8 * 3 * 3);
    free_layer(&l);
    make_spatial(&l, SEPARABLE, &c, 5);
    assert_true(l.ops->flops(&l, &io) == 2.0 * 4 * 5 * 8 * 3 * 3 + 2.0 * 4 * 5 * 8 * 6);
    free_layer(&l);
    const struct dense_cfg dc = {2, {5, 4, 0}, 7, 1, 3};
    make_dense(&l, &dc, 6);
    io.in[0] = dense_in(&dc);
    assert_true(l.ops->flops(&l, &io) == 2.0 * 5 * 4 * 7);
    free_layer(&l);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_forward),
        cmocka_unit_test(test_conv_backward),
        cmocka_unit_test(test_same_padding_by_hand),
        cmocka_unit_test(test_depthwise_forward),
        cmocka_unit_test(test_depthwise_backward),
        cmocka_unit_test(test_separable_forward),
        cmocka_unit_test(test_separable_backward),
        cmocka_unit_test(test_dense_forward),
        cmocka_unit_test(test_dense_backward),
        cmocka_unit_test(test_backward_accumulates),
        cmocka_unit_test(test_threads_bit_identical),
        cmocka_unit_test(test_backward_sparse_dy),
        cmocka_unit_test(test_shape_errors),
        cmocka_unit_test(test_flops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
