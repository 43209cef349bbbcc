/* What changes between SIMD paths (kernels/isa.h, FEATVIZ_ISA), layer by layer.
 *
 * Each layer runs on the same inputs on every path this CPU has, and its
 * forward output and input gradient are compared with the portable path's:
 *
 *   bit-identical on every path: MaxPooling2D, AveragePooling2D,
 *     GlobalAveragePooling2D, BatchNormalization, ReLU6 (comparisons, sums
 *     in a fixed order, one multiply and one add per value; SIMD changes how
 *     many lanes run at once, not the arithmetic);
 *   different in the last bits: Conv2D (GEMM, Winograd, the few-column dot
 *     products of the RGB layer's input gradient), Dense, DepthwiseConv2D
 *     (the AVX2 and AVX-512 paths fuse multiply-adds, the portable path
 *     rounds the product first; the dot products also sum in vector lanes),
 *     at most 1e-5 relative apart.
 *
 * Everything downstream of a layer of the second kind (whole models, the
 * images synthesized) therefore differs in the last bits between paths, and
 * is bit-identical across thread counts on each path (test_layers_conv,
 * test_synth). How close each path is to the PyTorch float64 references is
 * tested by running test_golden and test_layers_conv once per path
 * (tests/CMakeLists.txt). A "different" layer that came out identical on a
 * SIMD path would mean the path was not really switched: that fails too. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/isa.h"
#include "kernels/transpose.h"
#include "layers/layers.h"

static float *rand_buf(size_t n, uint64_t seed) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(p);
    fill_uniform(p, n, seed, -1.f, 1.f);
    return p;
}

static void set_weight(struct fv_layer *l, int i, size_t len, uint64_t seed) {
    l->w[i] = rand_buf(len, seed);
    l->w_len[i] = len;
    if (l->n_w < i + 1) l->n_w = i + 1;
}

/* forward y and input gradient dx (= J^T dy for a fixed random dy) of layer l */
struct result {
    float *y, *dx;
    size_t ny, nx;
};

static struct result run_layer(const struct fv_layer *l, int n, struct fv_shape in, uint64_t seed) {
    struct fv_io io;
    memset(&io, 0, sizeof io);
    io.n = n;
    io.n_in = 1;
    io.in[0] = in;
    io.grad = 1;
    struct fv_error err = {0};
    if (l->ops->shape(l, &io, &err) != FV_OK) fail_msg("%s: %s", l->name, err.msg);
    struct result r;
    r.nx = (size_t)n * fv_shape_count(&in);
    r.ny = (size_t)n * fv_shape_count(&io.out);
    float *x = rand_buf(r.nx, seed);
    float *dy = rand_buf(r.ny, seed + 1);
    r.y = malloc(r.ny * sizeof(float));
    r.dx = calloc(r.nx, sizeof(float));
    assert_non_null(r.y);
    assert_non_null(r.dx);
    io.x[0] = x;
    io.y = r.y;
    io.ws = io.ws_floats ? malloc(io.ws_floats * sizeof(float)) : NULL;
    assert_int_equal(fv_layer_prepare(l, &io), FV_OK);
    l->ops->forward(l, &io);
    io.dy = dy;
    io.dx[0] = r.dx;
    l->ops->backward(l, &io);
    free(io.ws);
    free(io.cache);
    free(x);
    free(dy);
    return r;
}

enum expect { IDENTICAL, LAST_BITS };

struct layer_case {
    const char *what;
    enum expect expect;
    struct fv_layer l;
    struct fv_shape in;
    int n;
};

static void conv_case(struct layer_case *c, const char *what, int h, int w, int ch, int oc,
                      int n) {
    memset(c, 0, sizeof *c);
    c->what = what;
    c->expect = LAST_BITS;
    snprintf(c->l.name, sizeof c->l.name, "%s", what);
    c->l.ops = &fv_conv2d_ops;
    c->l.n_in = 1;
    struct fv_conv_params *p = &c->l.p.conv;
    p->filters = oc;
    p->kh = p->kw = 3;
    p->sh = p->sw = p->dh = p->dw = 1;
    p->same = 1;
    p->use_bias = 1;
    p->groups = 1;
    set_weight(&c->l, 0, 9 * (size_t)ch * (size_t)oc, 11);
    set_weight(&c->l, 1, (size_t)oc, 12);
    c->in = (struct fv_shape){3, {h, w, ch, 0}};
    c->n = n;
}

static void make_cases(struct layer_case *c, int *count) {
    int k = 0;
    /* the RGB layer: implicit GEMM forward, 3-column dot products backward */
    conv_case(&c[k++], "Conv2D 3->32 (GEMM, dot)", 13, 11, 3, 32, 2);
    /* 3x3 with 32+ channels: Winograd, its GEMMs */
    conv_case(&c[k++], "Conv2D 32->40 (Winograd)", 10, 9, 32, 40, 2);

    struct layer_case *d = &c[k++];
    memset(d, 0, sizeof *d);
    d->what = "DepthwiseConv2D 3x3 C=40";
    d->expect = LAST_BITS;
    snprintf(d->l.name, sizeof d->l.name, "dw");
    d->l.ops = &fv_depthwise_ops;
    d->l.n_in = 1;
    d->l.p.conv = (struct fv_conv_params){.kh = 3, .kw = 3, .sh = 1, .sw = 1, .dh = 1, .dw = 1,
                                          .same = 1, .multiplier = 1, .use_bias = 1, .groups = 1};
    set_weight(&d->l, 0, 9 * 40, 21);
    set_weight(&d->l, 1, 40, 22);
    d->in = (struct fv_shape){3, {9, 10, 40, 0}};
    d->n = 2;

    struct layer_case *e = &c[k++];
    memset(e, 0, sizeof *e);
    e->what = "Dense 300->37";
    e->expect = LAST_BITS;
    snprintf(e->l.name, sizeof e->l.name, "dense");
    e->l.ops = &fv_dense_ops;
    e->l.n_in = 1;
    e->l.p.conv.filters = 37;
    e->l.p.conv.use_bias = 1;
    set_weight(&e->l, 0, 300 * 37, 31);
    set_weight(&e->l, 1, 37, 32);
    e->in = (struct fv_shape){1, {300, 0, 0, 0}};
    e->n = 13;

    struct layer_case *m = &c[k++];
    memset(m, 0, sizeof *m);
    m->what = "MaxPooling2D 2x2";
    m->expect = IDENTICAL;
    snprintf(m->l.name, sizeof m->l.name, "pool");
    m->l.ops = &fv_maxpool_ops;
    m->l.n_in = 1;
    m->l.p.pool = (struct fv_pool_params){.ph = 2, .pw = 2, .sh = 2, .sw = 2};
    m->in = (struct fv_shape){3, {12, 10, 24, 0}};
    m->n = 2;

    /* sums of a window's values in a fixed order, one division: no SIMD path of their own */
    struct layer_case *a = &c[k++];
    memset(a, 0, sizeof *a);
    a->what = "AveragePooling2D 3x3 same";
    a->expect = IDENTICAL;
    snprintf(a->l.name, sizeof a->l.name, "avgpool");
    a->l.ops = &fv_avgpool_ops;
    a->l.n_in = 1;
    a->l.p.pool = (struct fv_pool_params){.ph = 3, .pw = 3, .sh = 2, .sw = 2, .same = 1};
    a->in = (struct fv_shape){3, {11, 10, 24, 0}};
    a->n = 2;

    struct layer_case *g = &c[k++];
    memset(g, 0, sizeof *g);
    g->what = "GlobalAveragePooling2D";
    g->expect = IDENTICAL;
    snprintf(g->l.name, sizeof g->l.name, "gap");
    g->l.ops = &fv_gavgpool_ops;
    g->l.n_in = 1;
    g->in = (struct fv_shape){3, {7, 9, 24, 0}};
    g->n = 2;

    struct layer_case *b = &c[k++];
    memset(b, 0, sizeof *b);
    b->what = "BatchNormalization";
    b->expect = IDENTICAL;
    snprintf(b->l.name, sizeof b->l.name, "bn");
    b->l.ops = &fv_batchnorm_ops;
    b->l.n_in = 1;
    b->l.p.bn.axis = 2;
    set_weight(&b->l, 0, 24, 41);
    set_weight(&b->l, 1, 24, 42);
    b->in = (struct fv_shape){3, {7, 9, 24, 0}};
    b->n = 2;

    /* a standalone ReLU(max_value=6) layer: the identity op and its activation */
    struct layer_case *r = &c[k++];
    memset(r, 0, sizeof *r);
    r->what = "ReLU6";
    r->expect = IDENTICAL;
    snprintf(r->l.name, sizeof r->l.name, "relu6");
    r->l.ops = NULL; /* run through fv_act_forward / fv_act_backward below */
    r->in = (struct fv_shape){3, {7, 9, 24, 0}};
    r->n = 2;
    *count = k;
}

static struct result run_case(const struct layer_case *c) {
    if (c->l.ops) return run_layer(&c->l, c->n, c->in, 5);
    struct fv_act a;
    struct fv_error err = {0};
    if (fv_act_parse("relu6", 0, &a, &err) != FV_OK) fail_msg("relu6: %s", err.msg);
    struct result r;
    r.nx = r.ny = (size_t)c->n * fv_shape_count(&c->in);
    float *x = rand_buf(r.nx, 5), *dy = rand_buf(r.nx, 6);
    for (size_t i = 0; i < r.nx; i++) x[i] *= 8.0f; /* below 0, between, above 6 */
    r.y = malloc(r.ny * sizeof(float));
    r.dx = calloc(r.nx, sizeof(float));
    assert_non_null(r.y);
    assert_non_null(r.dx);
    fv_act_forward(&a, x, r.y, r.nx, 1, 1);
    fv_act_backward(&a, x, r.y, dy, r.dx, r.nx, 1, 1, 0);
    free(x);
    free(dy);
    return r;
}

static void test_paths(void **state) {
    (void)state;
    struct layer_case cases[12];
    int n_cases;
    make_cases(cases, &n_cases);
    enum fv_isa start = fv_isa();
    struct result ref[12];
    assert_true(fv_isa_force(FV_ISA_PORTABLE));
    for (int i = 0; i < n_cases; i++) ref[i] = run_case(&cases[i]);
    int others = 0;
    for (int p = FV_ISA_AVX2; p < FV_ISA_COUNT; p++) {
        if (!fv_isa_force((enum fv_isa)p)) {
            printf("  %s: not on this CPU, skipped\n", fv_isa_name((enum fv_isa)p));
            continue;
        }
        others++;
        for (int i = 0; i < n_cases; i++) {
            struct result r = run_case(&cases[i]);
            assert_int_equal(r.ny, ref[i].ny);
            assert_int_equal(r.nx, ref[i].nx);
            int same = !memcmp(r.y, ref[i].y, r.ny * sizeof(float)) &&
                       !memcmp(r.dx, ref[i].dx, r.nx * sizeof(float));
            double ey = rel_err_f32(r.y, ref[i].y, r.ny), ex = rel_err_f32(r.dx, ref[i].dx, r.nx);
            printf("  %-8s %-28s forward %.1e, input gradient %.1e from portable: %s\n",
                   fv_isa_name((enum fv_isa)p), cases[i].what, ey, ex,
                   same ? "bit-identical" : "last bits");
            if (cases[i].expect == IDENTICAL && !same)
                fail_msg("%s on %s: expected bit-identical to portable", cases[i].what,
                         fv_isa_name((enum fv_isa)p));
            if (cases[i].expect == LAST_BITS) {
                if (same)
                    fail_msg("%s on %s: identical to portable (was the path switched?)",
                             cases[i].what, fv_isa_name((enum fv_isa)p));
                if (!(ey <= 1e-5 && ex <= 1e-5))
                    fail_msg("%s on %s: %.2e / %.2e from portable", cases[i].what,
                             fv_isa_name((enum fv_isa)p), ey, ex);
            }
            free(r.y);
            free(r.dx);
        }
    }
    if (!others) printf("  no SIMD path on this CPU: only portable ran\n");
    for (int i = 0; i < n_cases; i++) {
        free(ref[i].y);
        free(ref[i].dx);
        for (int w = 0; w < cases[i].l.n_w; w++) free(cases[i].l.w[w]);
    }
    fv_isa_force(start);
}

/* The layout transpose (Keras order <-> featviz's) moves values, so every path
 * must give exactly the element-by-element result: whole blocks of 8 and 16,
 * edges of every width, one row, one column. */
static void test_transpose_paths(void **state) {
    (void)state;
    static const size_t dims[][2] = {{1, 1}, {1, 37}, {29, 1}, {8, 8}, {16, 16}, {32, 2304},
                                     {2304, 32}, {17, 33}, {43, 7}, {24, 100}, {3, 48}};
    enum fv_isa start = fv_isa();
    for (int p = FV_ISA_PORTABLE; p < FV_ISA_COUNT; p++) {
        if (!fv_isa_force((enum fv_isa)p)) continue;
        for (size_t k = 0; k < sizeof dims / sizeof dims[0]; k++) {
            size_t rows = dims[k][0], cols = dims[k][1];
            float *src = rand_buf(rows * cols, 77 + k), *dst = malloc(rows * cols * sizeof(float));
            assert_non_null(dst);
            fv_transpose(src, dst, rows, cols);
            for (size_t i = 0; i < rows; i++)
                for (size_t j = 0; j < cols; j++)
                    if (dst[j * rows + i] != src[i * cols + j])
                        fail_msg("%s: %zu x %zu transpose wrong at (%zu, %zu)", fv_isa_name((enum fv_isa)p),
                                 rows, cols, i, j);
            free(src);
            free(dst);
        }
    }
    fv_isa_force(start);
}

/* FEATVIZ_ISA names a path; the library refuses what it does not know. */
static void test_env_refused(void **state) {
    (void)state;
    char *out = NULL;
    int rc = run_capture(&out, "FEATVIZ_ISA=sse9 %s help isa", FV_BINARY);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "FEATVIZ_ISA='sse9' is not a SIMD path"));
    free(out);
    rc = run_capture(&out, "FEATVIZ_ISA=portable %s help isa", FV_BINARY);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "portable (available: portable"));
    free(out);
    if (!fv_isa_supported(FV_ISA_AVX512)) { /* a path this CPU lacks: one line, exit 2 */
        rc = run_capture(&out, "FEATVIZ_ISA=avx512 %s info x.h5", FV_BINARY);
        assert_int_equal(rc, 2);
        assert_non_null(strstr(out, "FEATVIZ_ISA=avx512: this CPU (or build) cannot run that path"));
        free(out);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_env_refused),
        cmocka_unit_test(test_transpose_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
