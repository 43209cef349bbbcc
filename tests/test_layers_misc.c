/* The small layers: pooling, global pooling, batchnorm, zero padding/cropping,
 * upsampling, merges, concatenation, reshape/permute/identity, PReLU, affine.
 *
 * Each layer gets:
 *   - a finite-difference gradient check (gradcheck_layer, tests/testutil.h) on
 *     small odd shapes, batch 2;
 *   - a forward check against an independent reference: PyTorch float64 numbers
 *     (tests/data/act/layers_forward.txt, from tests/tools/make_act_fixtures.py)
 *     for pooling with TF padding and bilinear upsampling, and plain double
 *     loops written here (index arithmetic on multi-indices) for the rest;
 *   - shape checks, including the shapes it must refuse.
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers/layers.h"

#define GRAD_TOL 1e-3
#define FWD_TOL 1e-5
#define EPS 1e-2

/* ---- helpers ---- */

static struct fv_shape shp(int rank, int d0, int d1, int d2, int d3) {
    struct fv_shape s = {rank, {d0, d1, d2, d3}};
    return s;
}

static struct fv_layer mklayer(const struct fv_layer_ops *ops) {
    struct fv_layer l;
    memset(&l, 0, sizeof l);
    snprintf(l.name, sizeof l.name, "t_%s", ops->kind);
    l.ops = ops;
    l.act.kind = FV_ACT_LINEAR;
    l.act.max_value = -1.f;
    return l;
}

/* shape + forward; returns y (malloc'd) and fills io. Fails the test on a shape error. */
static float *forward(const struct fv_layer *l, int n, int n_in, const struct fv_shape *in,
                      float *const *x, struct fv_io *io) {
    memset(io, 0, sizeof *io);
    io->n = n;
    io->n_in = n_in;
    for (int i = 0; i < n_in; i++) {
        io->in[i] = in[i];
        io->x[i] = x[i];
    }
    struct fv_error err = {0};
    if (l->ops->shape(l, io, &err) != FV_OK) fail_msg("shape failed: %s", err.msg);
    float *y = malloc((size_t)n * fv_shape_count(&io->out) * sizeof(float) + 1);
    float *ws = io->ws_floats ? malloc(io->ws_floats * sizeof(float)) : NULL;
    io->y = y;
    io->ws = ws;
    if (fv_layer_prepare(l, io) != FV_OK) fail_msg("out of memory");
    l->ops->forward(l, io);
    free(ws);
    free(io->cache);
    io->ws = NULL;
    io->cache = NULL;
    return y;
}

/* Expects ops->shape to fail with FV_ERR_SHAPE and the layer name in the message. */
static void expect_shape_error(const struct fv_layer *l, int n_in, const struct fv_shape *in) {
    struct fv_io io;
    memset(&io, 0, sizeof io);
    io.n = 1;
    io.n_in = n_in;
    for (int i = 0; i < n_in; i++) io.in[i] = in[i];
    struct fv_error err = {0};
    int rc = l->ops->shape(l, &io, &err);
    if (rc != FV_ERR_SHAPE) fail_msg("%s: expected a shape error, got %d", l->name, rc);
    assert_int_equal(err.code, FV_ERR_SHAPE);
    assert_non_null(strstr(err.msg, l->name));
}

static void expect_out(const struct fv_io *io, int rank, int d0, int d1, int d2, int d3) {
    int d[4] = {d0, d1, d2, d3};
    assert_int_equal(io->out.rank, rank);
    for (int i = 0; i < rank; i++) assert_int_equal(io->out.d[i], d[i]);
}

static void gradcheck(const struct fv_layer *l, int n, int n_in, const struct fv_shape *in,
                      float *const *x, uint64_t seed) {
    double e = gradcheck_layer(l, n, n_in, in, x, EPS, 0, seed);
    if (!(e <= GRAD_TOL)) fail_msg("%s: gradient rel err %.3g", l->name, e);
}

static void check_fwd(const char *what, const float *got, const double *want, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!(fabs((double)got[i] - want[i]) <= FWD_TOL * fabs(want[i]) + 1e-6))
            fail_msg("%s: element %zu got %.9g want %.9g", what, i, (double)got[i], want[i]);
}

/* Distinct values at least a quarter step (2/n > EPS for n < 200) from 0, the
 * kink of PReLU. */
static float *kinkfree(size_t n, uint64_t seed) {
    float *x = malloc(n * sizeof(float));
    fill_distinct(x, n, seed, -4.f, 4.f); /* ramp -4 + step*(i+0.5), step = 8/n */
    for (size_t i = 0; i < n; i++) x[i] += 2.f / (float)n;
    return x;
}

/* Row-major multi-index of flat index k in shape s (dims beyond rank = 0). */
static void unravel(size_t k, const struct fv_shape *s, int idx[4]) {
    for (int i = 3; i >= 0; i--) {
        if (i >= s->rank) {
            idx[i] = 0;
            continue;
        }
        idx[i] = (int)(k % (size_t)s->d[i]);
        k /= (size_t)s->d[i];
    }
}

static size_t ravel(const int idx[4], const struct fv_shape *s) {
    size_t k = 0;
    for (int i = 0; i < s->rank; i++) k = k * (size_t)s->d[i] + (size_t)idx[i];
    return k;
}

/* ---- fixture file: one array per line, "name count v0 v1 ..." ---- */

static double *fixture(const char *name, size_t expect) { return fixture_array("act/layers_forward.txt", name, expect); }

static float *to_float(const double *v, size_t n) {
    float *f = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) f[i] = (float)v[i];
    return f;
}

/* ---- pooling ---- */

struct pool_case {
    int max, n, H, W, C, ph, pw, sh, sw, same;
};

/* Same table as POOL_CASES in tests/tools/make_act_fixtures.py. */
static const struct pool_case pool_cases[] = {
    {1, 2, 7, 5, 3, 2, 2, 2, 2, 0}, {1, 2, 7, 5, 3, 3, 3, 2, 2, 1}, {1, 1, 7, 5, 2, 2, 2, 2, 2, 1},
    {1, 1, 6, 6, 2, 3, 3, 1, 1, 1}, {1, 2, 5, 8, 2, 2, 3, 1, 2, 0}, {0, 2, 7, 5, 3, 3, 3, 2, 2, 1},
    {0, 2, 7, 5, 3, 3, 3, 2, 2, 0}, {0, 1, 5, 6, 2, 2, 2, 1, 1, 1}, {0, 1, 7, 5, 2, 2, 2, 2, 2, 1},
    {0, 2, 5, 8, 2, 2, 3, 1, 2, 1}, {0, 1, 9, 4, 1, 1, 1, 2, 2, 1},
};

static struct fv_layer pool_layer(const struct pool_case *c) {
    struct fv_layer l = mklayer(c->max ? &fv_maxpool_ops : &fv_avgpool_ops);
    l.p.pool.ph = c->ph;
    l.p.pool.pw = c->pw;
    l.p.pool.sh = c->sh;
    l.p.pool.sw = c->sw;
    l.p.pool.same = c->same;
    return l;
}

/* Keras output sizes, written out for the table above. */
static int keras_pool_out(int size, int k, int s, int same) {
    return same ? (size + s - 1) / s : (size - k) / s + 1;
}

static void test_pool_forward(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof pool_cases / sizeof pool_cases[0]; k++) {
        const struct pool_case *c = &pool_cases[k];
        char tag[128];
        snprintf(tag, sizeof tag, "%spool_n%d_%dx%dx%d_p%dx%d_s%dx%d_%s", c->max ? "max" : "avg",
                 c->n, c->H, c->W, c->C, c->ph, c->pw, c->sh, c->sw, c->same ? "same" : "valid");
        int OH = keras_pool_out(c->H, c->ph, c->sh, c->same);
        int OW = keras_pool_out(c->W, c->pw, c->sw, c->same);
        size_t nx = (size_t)c->n * c->H * c->W * c->C, ny = (size_t)c->n * OH * OW * c->C;
        char name[160];
        snprintf(name, sizeof name, "%s.x", tag);
        double *xd = fixture(name, nx);
        snprintf(name, sizeof name, "%s.y", tag);
        double *want = fixture(name, ny);
        float *x = to_float(xd, nx);
        struct fv_layer l = pool_layer(c);
        struct fv_shape in = shp(3, c->H, c->W, c->C, 0);
        struct fv_io io;
        float *y = forward(&l, c->n, 1, &in, &x, &io);
        expect_out(&io, 3, OH, OW, c->C, 0);
        check_fwd(tag, y, want, ny);
        free(xd);
        free(want);
        free(x);
        free(y);
    }
}

static void test_pool_grad(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof pool_cases / sizeof pool_cases[0]; k++) {
        struct fv_layer l = pool_layer(&pool_cases[k]);
        struct fv_shape in = shp(3, pool_cases[k].H, pool_cases[k].W, pool_cases[k].C, 0);
        gradcheck(&l, 2, 1, &in, NULL, 10 + k);
    }
    /* pool 3 stride 2 on odd sizes, even pools, both paddings */
    int cfg[][5] = {{3, 3, 2, 2, 0}, {3, 3, 2, 2, 1}, {2, 2, 2, 2, 0}, {4, 4, 2, 2, 1},
                    {2, 4, 2, 3, 1}, {3, 1, 1, 1, 1}};
    for (size_t k = 0; k < sizeof cfg / sizeof cfg[0]; k++)
        for (int max = 0; max < 2; max++) {
            struct pool_case c = {max, 2, 7, 5, 2, cfg[k][0], cfg[k][1], cfg[k][2], cfg[k][3],
                                  cfg[k][4]};
            struct fv_layer l = pool_layer(&c);
            struct fv_shape in = shp(3, 7, 5, 2, 0);
            gradcheck(&l, 2, 1, &in, NULL, 50 + k);
        }
    /* ONNX: explicit asymmetric pads, ceil_mode, count_include_pad both ways */
    for (int k = 0; k < 8; k++) {
        struct fv_layer l = pool_layer(&(struct pool_case){k & 1, 2, 7, 5, 2, 3, 3, 2, 2, 0});
        l.p.pool.pad_explicit = 1;
        l.p.pool.pad_t = 1, l.p.pool.pad_b = 2, l.p.pool.pad_l = 0, l.p.pool.pad_r = 1;
        l.p.pool.ceil_mode = (k >> 1) & 1;
        l.p.pool.count_include_pad = (k >> 2) & 1;
        struct fv_shape in = shp(3, 7, 5, 2, 0);
        gradcheck(&l, 2, 1, &in, NULL, 70 + k);
    }
}

static void test_maxpool_ties(void **state) {
    (void)state;
    /* 2x2 window of equal values: the first in scan order gets the gradient */
    struct pool_case c = {1, 1, 2, 2, 1, 2, 2, 2, 2, 0};
    struct fv_layer l = pool_layer(&c);
    struct fv_shape in = shp(3, 2, 2, 1, 0);
    float x[4] = {1.f, 3.f, 3.f, 3.f}, dx[4] = {0};
    float *xp = x;
    struct fv_io io;
    float *y = forward(&l, 1, 1, &in, &xp, &io);
    float dy = 2.f;
    io.dy = &dy;
    io.dx[0] = dx;
    l.ops->backward(&l, &io);
    assert_float_equal(y[0], 3.f, 0);
    assert_float_equal(dx[0], 0.f, 0);
    assert_float_equal(dx[1], 2.f, 0);
    assert_float_equal(dx[2], 0.f, 0);
    assert_float_equal(dx[3], 0.f, 0);
    /* dx NULL: skipped */
    io.dx[0] = NULL;
    l.ops->backward(&l, &io);
    free(y);
}

static void test_pool_shapes(void **state) {
    (void)state;
    struct pool_case c = {1, 1, 0, 0, 0, 3, 3, 2, 2, 0};
    struct fv_layer l = pool_layer(&c);
    struct fv_shape small = shp(3, 2, 5, 1, 0), flat = shp(1, 9, 0, 0, 0);
    expect_shape_error(&l, 1, &small); /* 'valid' window larger than the input */
    expect_shape_error(&l, 1, &flat);
    l.p.pool.same = 1;
    struct fv_io io;
    float x[10] = {0};
    float *xp = x;
    free(forward(&l, 1, 1, &small, &xp, &io));
    expect_out(&io, 3, 1, 3, 1, 0);
    l.p.pool.sh = 0;
    expect_shape_error(&l, 1, &small);
}

/* ---- global pooling ---- */

static void test_global_pool(void **state) {
    (void)state;
    int H = 5, W = 3, C = 4, n = 2;
    struct fv_shape in = shp(3, H, W, C, 0);
    size_t nx = (size_t)n * H * W * C;
    float *x = malloc(nx * sizeof(float));
    fill_distinct(x, nx, 3, -2.f, 2.f);
    for (int keep = 0; keep < 2; keep++)
        for (int max = 0; max < 2; max++) {
            struct fv_layer l = mklayer(max ? &fv_gmaxpool_ops : &fv_gavgpool_ops);
            l.p.pool.keepdims = keep;
            struct fv_io io;
            float *y = forward(&l, n, 1, &in, &x, &io);
            if (keep)
                expect_out(&io, 3, 1, 1, C, 0);
            else
                expect_out(&io, 1, C, 0, 0, 0);
            double want[2 * 4];
            for (int b = 0; b < n; b++)
                for (int c = 0; c < C; c++) {
                    double acc = max ? -HUGE_VAL : 0.0;
                    for (int i = 0; i < H; i++)
                        for (int j = 0; j < W; j++) {
                            double v = (double)x[((b * H + i) * W + j) * C + c];
                            acc = max ? fmax(acc, v) : acc + v;
                        }
                    want[b * C + c] = max ? acc : acc / (H * W);
                }
            check_fwd(l.name, y, want, (size_t)n * C);
            free(y);
            gradcheck(&l, n, 1, &in, NULL, 30 + (uint64_t)(2 * keep + max));
        }
    struct fv_layer l = mklayer(&fv_gavgpool_ops);
    struct fv_shape bad = shp(1, 5, 0, 0, 0);
    expect_shape_error(&l, 1, &bad);
    free(x);
}

/* ---- batchnorm ---- */

static void test_batchnorm(void **state) {
    (void)state;
    struct {
        struct fv_shape s;
        int axis;
    } t[] = {
        {shp(3, 4, 5, 3, 0), 0}, {shp(3, 4, 5, 3, 0), 1}, {shp(3, 4, 5, 3, 0), 2},
        {shp(1, 6, 0, 0, 0), 0}, {shp(2, 3, 5, 0, 0), 1}, {shp(4, 2, 3, 2, 3), 2},
    };
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        int D = t[k].s.d[t[k].axis];
        float scale[8], shift[8];
        fill_uniform(scale, (size_t)D, 70 + k, -2.f, 2.f);
        fill_uniform(shift, (size_t)D, 80 + k, -1.f, 1.f);
        struct fv_layer l = mklayer(&fv_batchnorm_ops);
        l.p.bn.axis = t[k].axis;
        l.n_w = 2;
        l.w[0] = scale;
        l.w[1] = shift;
        l.w_len[0] = l.w_len[1] = (size_t)D;
        int n = 2;
        size_t cnt = fv_shape_count(&t[k].s), nx = (size_t)n * cnt;
        float *x = malloc(nx * sizeof(float));
        fill_uniform(x, nx, 90 + k, -3.f, 3.f);
        struct fv_io io;
        float *y = forward(&l, n, 1, &t[k].s, &x, &io);
        expect_out(&io, t[k].s.rank, t[k].s.d[0], t[k].s.d[1], t[k].s.d[2], t[k].s.d[3]);
        double *want = malloc(nx * sizeof(double));
        for (size_t i = 0; i < nx; i++) {
            int idx[4];
            unravel(i % cnt, &t[k].s, idx);
            int c = idx[t[k].axis];
            want[i] = (double)x[i] * (double)scale[c] + (double)shift[c];
        }
        check_fwd("batchnorm", y, want, nx);
        gradcheck(&l, n, 1, &t[k].s, NULL, 100 + k);
        free(x);
        free(y);
        free(want);

        l.w_len[1] = (size_t)D + 1; /* weights do not fit the axis */
        expect_shape_error(&l, 1, &t[k].s);
        l.w_len[1] = (size_t)D;
        l.p.bn.axis = t[k].s.rank; /* axis out of range */
        expect_shape_error(&l, 1, &t[k].s);
    }
}

/* ---- zero padding / cropping ---- */

static void test_pad_crop(void **state) {
    (void)state;
    int H = 5, W = 4, C = 2, n = 2;
    struct fv_shape in = shp(3, H, W, C, 0);
    size_t nx = (size_t)n * H * W * C;
    float *x = malloc(nx * sizeof(float));
    fill_uniform(x, nx, 5, -1.f, 1.f);
    int pads[][4] = {{1, 2, 0, 3}, {0, 0, 0, 0}, {2, 1, 1, 0}};
    for (size_t k = 0; k < sizeof pads / sizeof pads[0]; k++) {
        int t = pads[k][0], bo = pads[k][1], le = pads[k][2], ri = pads[k][3];
        for (int crop = 0; crop < 2; crop++) {
            struct fv_layer l = mklayer(crop ? &fv_crop_ops : &fv_zeropad_ops);
            l.p.pad.top = t;
            l.p.pad.bottom = bo;
            l.p.pad.left = le;
            l.p.pad.right = ri;
            struct fv_io io;
            float *y = forward(&l, n, 1, &in, &x, &io);
            int OH = crop ? H - t - bo : H + t + bo, OW = crop ? W - le - ri : W + le + ri;
            expect_out(&io, 3, OH, OW, C, 0);
            size_t ny = (size_t)n * OH * OW * C;
            double *want = malloc(ny * sizeof(double));
            for (int b = 0; b < n; b++)
                for (int i = 0; i < OH; i++)
                    for (int j = 0; j < OW; j++)
                        for (int c = 0; c < C; c++) {
                            int si = crop ? i + t : i - t, sj = crop ? j + le : j - le;
                            int inside = si >= 0 && si < H && sj >= 0 && sj < W;
                            want[((b * OH + i) * OW + j) * C + c] =
                                inside ? (double)x[((b * H + si) * W + sj) * C + c] : 0.0;
                        }
            check_fwd(l.name, y, want, ny);
            gradcheck(&l, n, 1, &in, NULL, 40 + k);
            free(y);
            free(want);
        }
    }
    struct fv_layer l = mklayer(&fv_crop_ops);
    l.p.pad.top = 3;
    l.p.pad.bottom = 2;
    expect_shape_error(&l, 1, &in); /* nothing left */
    l.p.pad.top = -1;
    l.p.pad.bottom = 0;
    expect_shape_error(&l, 1, &in);
    free(x);
}

/* ---- upsampling ---- */

static void test_upsample(void **state) {
    (void)state;
    /* nearest: plain repeat */
    int H = 3, W = 4, C = 2, n = 2;
    struct fv_shape in = shp(3, H, W, C, 0);
    size_t nx = (size_t)n * H * W * C;
    float *x = malloc(nx * sizeof(float));
    fill_uniform(x, nx, 8, -1.f, 1.f);
    int f[][2] = {{2, 2}, {3, 1}, {1, 2}};
    for (size_t k = 0; k < 3; k++) {
        struct fv_layer l = mklayer(&fv_upsample_ops);
        l.p.up.fh = f[k][0];
        l.p.up.fw = f[k][1];
        struct fv_io io;
        float *y = forward(&l, n, 1, &in, &x, &io);
        int OH = H * f[k][0], OW = W * f[k][1];
        expect_out(&io, 3, OH, OW, C, 0);
        size_t ny = (size_t)n * OH * OW * C;
        double *want = malloc(ny * sizeof(double));
        for (int b = 0; b < n; b++)
            for (int i = 0; i < OH; i++)
                for (int j = 0; j < OW; j++)
                    for (int c = 0; c < C; c++)
                        want[((b * OH + i) * OW + j) * C + c] =
                            (double)x[((b * H + i / f[k][0]) * W + j / f[k][1]) * C + c];
        check_fwd("upsample nearest", y, want, ny);
        gradcheck(&l, n, 1, &in, NULL, 60 + k);
        free(y);
        free(want);
        l.p.up.bilinear = 1;
        gradcheck(&l, n, 1, &in, NULL, 70 + k);
    }
    free(x);

    /* bilinear against torch, same table as UP_CASES in make_act_fixtures.py */
    int up[][6] = {{2, 4, 3, 2, 2, 2}, {1, 3, 5, 2, 3, 2}, {1, 2, 4, 3, 1, 3}};
    for (size_t k = 0; k < 3; k++) {
        int un = up[k][0], uH = up[k][1], uW = up[k][2], uC = up[k][3];
        int fh = up[k][4], fw = up[k][5];
        char name[128];
        size_t ux = (size_t)un * uH * uW * uC, uy = ux * (size_t)(fh * fw);
        snprintf(name, sizeof name, "bilinear_n%d_%dx%dx%d_f%dx%d.x", un, uH, uW, uC, fh, fw);
        double *xd = fixture(name, ux);
        name[strlen(name) - 1] = 'y';
        double *want = fixture(name, uy);
        float *xf = to_float(xd, ux);
        struct fv_layer l = mklayer(&fv_upsample_ops);
        l.p.up.fh = fh;
        l.p.up.fw = fw;
        l.p.up.bilinear = 1;
        struct fv_shape uin = shp(3, uH, uW, uC, 0);
        struct fv_io io;
        float *y = forward(&l, un, 1, &uin, &xf, &io);
        expect_out(&io, 3, uH * fh, uW * fw, uC, 0);
        check_fwd(name, y, want, uy);
        free(xd);
        free(want);
        free(xf);
        free(y);
    }
    struct fv_layer l = mklayer(&fv_upsample_ops);
    l.p.up.fh = 0;
    l.p.up.fw = 2;
    expect_shape_error(&l, 1, &in);
}

/* ---- merges ---- */

static void test_merge(void **state) {
    (void)state;
    struct fv_shape s = shp(3, 3, 5, 2, 0);
    int n = 2;
    size_t cnt = (size_t)n * fv_shape_count(&s);
    /* three inputs on interleaved ramps: no two inputs share a value anywhere */
    float *x[3];
    for (int i = 0; i < 3; i++) {
        x[i] = malloc(cnt * sizeof(float));
        fill_distinct(x[i], cnt, 7 + (uint64_t)i, -2.f, 2.f);
        for (size_t k = 0; k < cnt; k++) x[i][k] += (float)i * 4.f / (3.f * (float)cnt);
    }
    struct fv_shape in[3] = {s, s, s};
    for (int op = FV_MERGE_ADD; op <= FV_MERGE_MIN; op++) {
        int m = op == FV_MERGE_SUB ? 2 : 3;
        for (int nin = 2; nin <= m; nin++) {
            struct fv_layer l = mklayer(&fv_merge_ops);
            l.p.merge.op = op;
            snprintf(l.name, sizeof l.name, "merge_op%d_n%d", op, nin);
            struct fv_io io;
            float *y = forward(&l, n, nin, in, x, &io);
            expect_out(&io, 3, 3, 5, 2, 0);
            double *want = malloc(cnt * sizeof(double));
            for (size_t k = 0; k < cnt; k++) {
                double v[3] = {(double)x[0][k], (double)x[1][k], (double)x[2][k]};
                double r = v[0];
                for (int i = 1; i < nin; i++) {
                    if (op == FV_MERGE_ADD || op == FV_MERGE_AVG) r += v[i];
                    if (op == FV_MERGE_SUB) r -= v[i];
                    if (op == FV_MERGE_MUL) r *= v[i];
                    if (op == FV_MERGE_MAX) r = fmax(r, v[i]);
                    if (op == FV_MERGE_MIN) r = fmin(r, v[i]);
                }
                want[k] = op == FV_MERGE_AVG ? r / nin : r;
            }
            check_fwd(l.name, y, want, cnt);
            gradcheck(&l, n, nin, in, x, 200 + (uint64_t)op);
            free(y);
            free(want);
        }
    }
    /* max/min ties: the first input holding the extreme gets dy */
    {
        struct fv_layer l = mklayer(&fv_merge_ops);
        l.p.merge.op = FV_MERGE_MAX;
        struct fv_shape one = shp(1, 1, 0, 0, 0), ins[3] = {one, one, one};
        float a = 1.f, b = 2.f, c = 2.f, da = 0, db = 0, dc = 0, dy = 1.5f;
        float *xs[3] = {&a, &b, &c};
        struct fv_io io;
        float *y = forward(&l, 1, 3, ins, xs, &io);
        io.dy = &dy;
        io.dx[0] = &da;
        io.dx[1] = &db;
        io.dx[2] = &dc;
        l.ops->backward(&l, &io);
        assert_float_equal(da, 0.f, 0);
        assert_float_equal(db, 1.5f, 0);
        assert_float_equal(dc, 0.f, 0);
        io.dx[1] = NULL; /* not needed: skipped */
        l.ops->backward(&l, &io);
        assert_float_equal(dc, 0.f, 0);
        free(y);
    }
    struct fv_layer l = mklayer(&fv_merge_ops);
    l.p.merge.op = FV_MERGE_ADD;
    struct fv_shape bad[2] = {s, shp(3, 3, 5, 3, 0)};
    expect_shape_error(&l, 2, bad);
    struct fv_shape bad_rank[2] = {shp(2, 15, 2, 0, 0), s};
    expect_shape_error(&l, 2, bad_rank);
    expect_shape_error(&l, 1, in);
    l.p.merge.op = FV_MERGE_SUB;
    expect_shape_error(&l, 3, in);
    for (int i = 0; i < 3; i++) free(x[i]);
}

/* ---- concatenate ---- */

static void test_concat(void **state) {
    (void)state;
    int n = 2;
    struct {
        int rank, axis;
        int base[3];  /* input dims, the axis one replaced by sizes[] */
        int sizes[3];
    } t[] = {
        {3, 0, {0, 3, 2}, {2, 3, 1}},
        {3, 1, {4, 0, 2}, {1, 3, 2}},
        {3, 2, {4, 3, 0}, {3, 1, 2}},
        {1, 0, {0, 0, 0}, {4, 2, 3}},
        {2, 1, {3, 0, 0}, {2, 5, 1}},
    };
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        struct fv_shape in[3];
        float *x[3];
        for (int i = 0; i < 3; i++) {
            in[i] = shp(t[k].rank, t[k].base[0], t[k].base[1], t[k].base[2], 0);
            in[i].d[t[k].axis] = t[k].sizes[i];
            size_t c = (size_t)n * fv_shape_count(&in[i]);
            x[i] = malloc(c * sizeof(float));
            fill_uniform(x[i], c, 300 + k * 3 + (size_t)i, -1.f, 1.f);
        }
        struct fv_layer l = mklayer(&fv_concat_ops);
        l.p.merge.axis = t[k].axis;
        struct fv_io io;
        float *y = forward(&l, n, 3, in, x, &io);
        struct fv_shape os = in[0];
        os.d[t[k].axis] = t[k].sizes[0] + t[k].sizes[1] + t[k].sizes[2];
        expect_out(&io, os.rank, os.d[0], os.d[1], os.d[2], 0);
        size_t oc = fv_shape_count(&os), ny = (size_t)n * oc;
        double *want = malloc(ny * sizeof(double));
        for (size_t j = 0; j < ny; j++) {
            int idx[4];
            unravel(j % oc, &os, idx);
            int i = 0;
            while (idx[t[k].axis] >= in[i].d[t[k].axis]) idx[t[k].axis] -= in[i++].d[t[k].axis];
            want[j] = (double)x[i][(j / oc) * fv_shape_count(&in[i]) + ravel(idx, &in[i])];
        }
        check_fwd("concat", y, want, ny);
        gradcheck(&l, n, 3, in, x, 400 + k);
        free(y);
        free(want);
        /* another dim than the axis differs */
        int other = (t[k].axis + 1) % t[k].rank;
        if (other != t[k].axis) {
            in[1].d[other] += 1;
            expect_shape_error(&l, 3, in);
        }
        for (int i = 0; i < 3; i++) free(x[i]);
    }
}

/* ---- reshape / permute / identity ---- */

static void test_reshape(void **state) {
    (void)state;
    struct fv_shape in = shp(3, 4, 5, 3, 0);
    int n = 2;
    size_t nx = (size_t)n * 60;
    float *x = malloc(nx * sizeof(float));
    fill_uniform(x, nx, 11, -1.f, 1.f);
    struct {
        int rank, d[4], out[4];
    } t[] = {
        {2, {-1, 6}, {10, 6}},
        {1, {-1}, {60}},
        {4, {3, 2, -1, 5}, {3, 2, 2, 5}},
        {2, {12, 5}, {12, 5}},
    };
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        struct fv_layer l = mklayer(&fv_reshape_ops);
        l.p.reshape.rank = t[k].rank;
        memcpy(l.p.reshape.d, t[k].d, sizeof t[k].d);
        struct fv_io io;
        float *y = forward(&l, n, 1, &in, &x, &io);
        expect_out(&io, t[k].rank, t[k].out[0], t[k].out[1], t[k].out[2], t[k].out[3]);
        assert_memory_equal(y, x, nx * sizeof(float));
        gradcheck(&l, n, 1, &in, NULL, 500 + k);
        free(y);
    }
    struct fv_layer l = mklayer(&fv_reshape_ops);
    l.p.reshape.rank = 2;
    l.p.reshape.d[0] = 7;
    l.p.reshape.d[1] = -1; /* 60 is not a multiple of 7 */
    expect_shape_error(&l, 1, &in);
    l.p.reshape.d[1] = 9; /* 63 != 60 */
    expect_shape_error(&l, 1, &in);
    l.p.reshape.d[0] = -1; /* two -1 */
    l.p.reshape.d[1] = -1;
    expect_shape_error(&l, 1, &in);

    struct fv_layer id = mklayer(&fv_identity_ops);
    struct fv_io io;
    float *y = forward(&id, n, 1, &in, &x, &io);
    expect_out(&io, 3, 4, 5, 3, 0);
    assert_memory_equal(y, x, nx * sizeof(float));
    gradcheck(&id, n, 1, &in, NULL, 550);
    free(y);
    free(x);
}

static void test_permute(void **state) {
    (void)state;
    struct {
        struct fv_shape in;
        int perm[4];
    } t[] = {
        {shp(3, 4, 5, 3, 0), {2, 0, 1, 0}}, {shp(3, 4, 5, 3, 0), {1, 2, 0, 0}},
        {shp(3, 4, 5, 3, 0), {0, 2, 1, 0}}, {shp(4, 2, 3, 4, 5), {3, 1, 0, 2}},
        {shp(4, 2, 3, 4, 5), {0, 1, 2, 3}}, {shp(2, 3, 7, 0, 0), {1, 0, 0, 0}},
    };
    int n = 2;
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        struct fv_layer l = mklayer(&fv_permute_ops);
        l.p.permute.rank = t[k].in.rank;
        memcpy(l.p.permute.perm, t[k].perm, sizeof t[k].perm);
        size_t cnt = fv_shape_count(&t[k].in), nx = (size_t)n * cnt;
        float *x = malloc(nx * sizeof(float));
        fill_uniform(x, nx, 600 + k, -1.f, 1.f);
        struct fv_io io;
        float *y = forward(&l, n, 1, &t[k].in, &x, &io);
        struct fv_shape os = t[k].in;
        for (int i = 0; i < os.rank; i++) os.d[i] = t[k].in.d[t[k].perm[i]];
        expect_out(&io, os.rank, os.d[0], os.d[1], os.d[2], os.d[3]);
        double *want = malloc(nx * sizeof(double));
        for (size_t j = 0; j < nx; j++) {
            int oi[4], ii[4] = {0, 0, 0, 0};
            unravel(j % cnt, &os, oi);
            for (int i = 0; i < os.rank; i++) ii[t[k].perm[i]] = oi[i]; /* out dim i = in dim perm[i] */
            want[j] = (double)x[(j / cnt) * cnt + ravel(ii, &t[k].in)];
        }
        check_fwd("permute", y, want, nx);
        gradcheck(&l, n, 1, &t[k].in, NULL, 700 + k);
        free(x);
        free(y);
        free(want);
    }
    struct fv_layer l = mklayer(&fv_permute_ops);
    l.p.permute.rank = 3;
    l.p.permute.perm[0] = 0;
    l.p.permute.perm[1] = 0;
    l.p.permute.perm[2] = 1;
    expect_shape_error(&l, 1, &t[0].in); /* not a permutation */
    l.p.permute.perm[1] = 2;
    expect_shape_error(&l, 1, &t[3].in); /* rank mismatch */
}

/* ---- PReLU ---- */

static void test_prelu(void **state) {
    (void)state;
    struct fv_shape in = shp(3, 4, 5, 3, 0);
    int adims[][3] = {{1, 1, 3}, {4, 5, 3}, {4, 1, 3}, {1, 1, 1}};
    int n = 2;
    size_t cnt = 60, nx = (size_t)n * cnt;
    float *x = kinkfree(nx, 13);
    for (size_t k = 0; k < sizeof adims / sizeof adims[0]; k++) {
        struct fv_layer l = mklayer(&fv_prelu_ops);
        l.p.reshape = (struct fv_reshape_params){3, {adims[k][0], adims[k][1], adims[k][2], 0}};
        struct fv_shape as = shp(3, adims[k][0], adims[k][1], adims[k][2], 0);
        size_t na = fv_shape_count(&as);
        float alpha[60];
        fill_uniform(alpha, na, 800 + k, -0.5f, 0.9f);
        l.n_w = 1;
        l.w[0] = alpha;
        l.w_len[0] = na;
        struct fv_io io;
        float *y = forward(&l, n, 1, &in, &x, &io);
        expect_out(&io, 3, 4, 5, 3, 0);
        double *want = malloc(nx * sizeof(double));
        for (size_t j = 0; j < nx; j++) {
            int idx[4];
            unravel(j % cnt, &in, idx);
            for (int i = 0; i < 3; i++)
                if (as.d[i] == 1) idx[i] = 0;
            double a = (double)alpha[ravel(idx, &as)], v = (double)x[j];
            want[j] = v > 0 ? v : a * v;
        }
        check_fwd("prelu", y, want, nx);
        float *xs[1] = {x};
        gradcheck(&l, n, 1, &in, xs, 900 + k);
        free(y);
        free(want);
        l.w_len[0] = na + 1;
        expect_shape_error(&l, 1, &in);
    }
    struct fv_layer l = mklayer(&fv_prelu_ops);
    float alpha[6] = {0};
    l.p.reshape = (struct fv_reshape_params){3, {1, 2, 3, 0}}; /* 2 is neither 5 nor 1 */
    l.n_w = 1;
    l.w[0] = alpha;
    l.w_len[0] = 6;
    expect_shape_error(&l, 1, &in);
    free(x);
}

/* ---- affine ---- */

static void test_affine(void **state) {
    (void)state;
    struct fv_shape in = shp(3, 3, 4, 2, 0);
    int n = 2;
    size_t nx = (size_t)n * 24;
    float *x = malloc(nx * sizeof(float));
    fill_uniform(x, nx, 17, -1.f, 1.f);
    struct fv_layer l = mklayer(&fv_affine_ops);
    l.p.affine.scale = 1.f / 127.5f;
    l.p.affine.offset = -1.f;
    struct fv_io io;
    float *y = forward(&l, n, 1, &in, &x, &io);
    expect_out(&io, 3, 3, 4, 2, 0);
    double *want = malloc(nx * sizeof(double));
    for (size_t j = 0; j < nx; j++) want[j] = (double)x[j] / 127.5 - 1.0;
    check_fwd("affine", y, want, nx);
    l.p.affine.scale = -2.5f;
    gradcheck(&l, n, 1, &in, NULL, 1000);
    free(x);
    free(y);
    free(want);
}

/* backward twice, from dx = 0 and from dx = 0.25: the second must be the first + 0.25. */
static void check_accumulates(const struct fv_layer *l, int n_in, const struct fv_shape *in,
                              float *const *x) {
    struct fv_io io;
    float *y = forward(l, 1, n_in, in, x, &io);
    size_t ny = fv_shape_count(&io.out);
    float *dy = malloc(ny * sizeof(float));
    fill_uniform(dy, ny, 31, -1.f, 1.f);
    io.dy = dy;
    io.ws = io.ws_floats ? malloc(io.ws_floats * sizeof(float)) : NULL; /* scratch, as a plan gives */
    float *d1[FV_MAX_IN], *d2[FV_MAX_IN];
    for (int i = 0; i < n_in; i++) {
        size_t c = fv_shape_count(&in[i]);
        d1[i] = calloc(c, sizeof(float));
        d2[i] = malloc(c * sizeof(float));
        for (size_t j = 0; j < c; j++) d2[i][j] = 0.25f;
        io.dx[i] = d1[i];
    }
    l->ops->backward(l, &io);
    for (int i = 0; i < n_in; i++) io.dx[i] = d2[i];
    l->ops->backward(l, &io);
    for (int i = 0; i < n_in; i++) {
        for (size_t j = 0; j < fv_shape_count(&in[i]); j++)
            if (!(fabsf(d2[i][j] - (d1[i][j] + 0.25f)) <= 1e-6f))
                fail_msg("%s: backward does not accumulate (input %d element %zu)", l->name, i,
                         j);
        free(d1[i]);
        free(d2[i]);
    }
    free(io.ws);
    free(y);
    free(dy);
}

/* Every backward accumulates into dx (+=) instead of overwriting it. */
static void test_backward_accumulates(void **state) {
    (void)state;
    struct fv_shape in = shp(3, 4, 4, 2, 0), in2[3] = {in, in, in};
    size_t cnt = 32;
    float *x = kinkfree(cnt, 21), *xb = kinkfree(cnt, 22), *xc = kinkfree(cnt, 23);
    float *xs[3] = {x, xb, xc};
    float scale[2] = {1.5f, -0.5f}, shift[2] = {0.1f, 0.2f}, alpha[2] = {0.3f, 0.2f};
    struct fv_layer ls[16];
    int k = 0;
    ls[k] = mklayer(&fv_maxpool_ops);
    ls[k].p.pool = (struct fv_pool_params){.ph = 2, .pw = 2, .sh = 2, .sw = 2};
    ls[++k] = mklayer(&fv_avgpool_ops);
    ls[k].p.pool = (struct fv_pool_params){.ph = 3, .pw = 3, .sh = 2, .sw = 2, .same = 1};
    /* ONNX pooling: explicit pads, ceil_mode, count_include_pad */
    ls[++k] = mklayer(&fv_maxpool_ops);
    ls[k].p.pool = (struct fv_pool_params){.ph = 3, .pw = 3, .sh = 2, .sw = 2, .pad_explicit = 1, .pad_t = 1, .pad_l = 1, .ceil_mode = 1};
    ls[++k] = mklayer(&fv_avgpool_ops);
    ls[k].p.pool = (struct fv_pool_params){.ph = 3, .pw = 3, .sh = 1, .sw = 2, .pad_explicit = 1, .pad_t = 1, .pad_b = 1, .pad_l = 1, .count_include_pad = 1};
    ls[++k] = mklayer(&fv_gmaxpool_ops);
    ls[++k] = mklayer(&fv_gavgpool_ops);
    ls[++k] = mklayer(&fv_batchnorm_ops);
    ls[k].p.bn.axis = 2;
    ls[k].n_w = 2;
    ls[k].w[0] = scale;
    ls[k].w[1] = shift;
    ls[k].w_len[0] = ls[k].w_len[1] = 2;
    ls[++k] = mklayer(&fv_upsample_ops);
    ls[k].p.up = (struct fv_upsample_params){2, 2, 1};
    ls[++k] = mklayer(&fv_upsample_ops);
    ls[k].p.up = (struct fv_upsample_params){2, 3, 0};
    ls[++k] = mklayer(&fv_prelu_ops);
    ls[k].p.reshape = (struct fv_reshape_params){3, {1, 1, 2, 0}};
    ls[k].n_w = 1;
    ls[k].w[0] = alpha;
    ls[k].w_len[0] = 2;
    ls[++k] = mklayer(&fv_permute_ops);
    ls[k].p.permute = (struct fv_permute_params){3, {2, 1, 0, 0}};
    ls[++k] = mklayer(&fv_zeropad_ops);
    ls[k].p.pad = (struct fv_pad_params){1, 0, 2, 1};
    ls[++k] = mklayer(&fv_crop_ops);
    ls[k].p.pad = (struct fv_pad_params){1, 0, 2, 1};
    ls[++k] = mklayer(&fv_reshape_ops);
    ls[k].p.reshape = (struct fv_reshape_params){1, {-1, 0, 0, 0}};
    ls[++k] = mklayer(&fv_identity_ops);
    ls[++k] = mklayer(&fv_affine_ops);
    ls[k].p.affine.scale = 3.f;
    for (int i = 0; i <= k; i++) check_accumulates(&ls[i], 1, &in, xs);

    struct fv_layer c = mklayer(&fv_concat_ops);
    c.p.merge.axis = 1;
    check_accumulates(&c, 3, in2, xs);
    for (int op = FV_MERGE_ADD; op <= FV_MERGE_MIN; op++) {
        struct fv_layer m = mklayer(&fv_merge_ops);
        m.p.merge.op = op;
        check_accumulates(&m, op == FV_MERGE_SUB ? 2 : 3, in2, xs);
    }
    free(x);
    free(xb);
    free(xc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_forward),  cmocka_unit_test(test_pool_grad),
        cmocka_unit_test(test_maxpool_ties),  cmocka_unit_test(test_pool_shapes),
        cmocka_unit_test(test_global_pool),   cmocka_unit_test(test_batchnorm),
        cmocka_unit_test(test_pad_crop),      cmocka_unit_test(test_upsample),
        cmocka_unit_test(test_merge),         cmocka_unit_test(test_concat),
        cmocka_unit_test(test_reshape),       cmocka_unit_test(test_permute),
        cmocka_unit_test(test_prelu),         cmocka_unit_test(test_affine),
        cmocka_unit_test(test_backward_accumulates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
