/* fv_plan_init_shared: outputs and gradients sharing memory between nodes
 * whose buffers are never live at once must give the input gradient and the
 * seeded nodes' values of the plan that keeps every buffer apart, bit for
 * bit, on every golden model (fan-out, fan-in, merges, max pooling, separable
 * and depthwise convolutions, both data formats) and on the real MobileNetV2
 * (BatchNorm, ReLU6, Add), with the output and an inner node seeded, over two
 * passes in a row (nothing stale from the first); and take less memory where
 * the network is deep: under half on the MobileNetV2. Plans with FV_PLAN_FUSE
 * (ReLUs and ReLU6s in place) must give the same input gradient as plans
 * without (whose activations' derivatives test_act checks). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "featviz/formats.h"
#include "featviz/graph.h"
#include "featviz/image.h"

static const char *const MODELS[] = {"cf_convnet", "cf_merge", "cf_pad_crop_up", "cf_sep_dw", "cl_acts", "cl_convnet",
                                     "cl_merge", "cl_pad_crop_up", "cl_sep_dw", "cl_wide", "mixed_format",
                                     "tfk24_swish_gelu"};

static float value(uint64_t *s) { /* deterministic in [-1, 1) */
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*s >> 40) / (double)(1ull << 23) - 1.0);
}

/* One pass: input x from stream `seed`, the seeded nodes' gradients from it too. */
static void pass(struct fv_plan *p, const int *seeds, int n_seeds, uint64_t seed) {
    size_t nx = (size_t)p->n * fv_shape_count(&p->io[p->m->input].out);
    for (size_t i = 0; i < nx; i++) p->x[i] = value(&seed);
    int top = seeds[0];
    fv_forward(p, top);
    fv_grad_zero(p);
    for (int k = 0; k < n_seeds; k++) {
        float *g = fv_plan_grad(p, seeds[k], 0);
        size_t n = (size_t)p->n * fv_shape_count(&p->io[seeds[k]].out);
        for (size_t i = 0; i < n; i++) g[i] += value(&seed);
    }
    fv_backward(p, top);
}

/* Plans both ways for model `path` (at the size of the array in `input` when
 * it does not declare its size)
 * and compares them; returns how many of the two plans were smaller shared
 * and the smallest shared / apart memory ratio in *ratio. */
static int compare(const char *path, const char *input, double *ratio) {
    struct fv_load_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.flip_kernels = -1;
    struct fv_error err = {0};
    struct fv_model m;
    if (fv_model_load(&m, path, &opts, &err)) fail_msg("%s: %s", path, err.msg);
    int h, w, c, smaller = 0;
    fv_model_input_hwc(&m, &h, &w, &c);
    if (h <= 0 || w <= 0) { /* undeclared (None): the size of the golden input */
        struct fv_array in;
        if (!input || fv_npy_load(input, &in, &err)) fail_msg("%s: no input size (%s)", path, err.msg);
        int last = in.dims[3] == (size_t)c;
        h = (int)in.dims[last ? 1 : 2], w = (int)in.dims[last ? 2 : 3];
        fv_array_free(&in);
    }
    /* the output, and an inner node with an output of its own */
    int seeds[2] = {m.output, -1};
    for (int i = m.n_layers / 2; i > 0 && seeds[1] < 0; i--)
        if (i != m.input && i != m.output) seeds[1] = i;
    unsigned char *seeded = calloc((size_t)m.n_layers, 1);
    assert_non_null(seeded);
    for (int s = 0; s < 2; s++)
        if (seeds[s] >= 0) seeded[seeds[s]] = 1;
    int n_seeds = seeds[1] >= 0 ? 2 : 1;
    *ratio = 1.0;
    float *ref[2] = {NULL, NULL}; /* the unfused plan's input gradients, pass by pass */
    for (int fuse = 0; fuse <= 1; fuse++) {
        int flags = FV_PLAN_GRAD | (fuse ? FV_PLAN_FUSE : 0);
        struct fv_plan a, b;
        if (fv_plan_init(&a, &m, 2, h, w, flags, &err)) fail_msg("%s: %s", path, err.msg);
        if (fv_plan_init_shared(&b, &m, 2, h, w, flags, -1, seeded, &err)) fail_msg("%s: %s", path, err.msg);
        if (b.mem_floats > a.mem_floats) fail_msg("%s fuse %d: %zu > %zu floats", path, fuse, b.mem_floats, a.mem_floats);
        smaller += b.mem_floats < a.mem_floats;
        double r = (double)b.mem_floats / (double)a.mem_floats;
        if (r < *ratio) *ratio = r;
        size_t nx = 2 * fv_shape_count(&a.io[m.input].out);
        for (uint64_t seed = 1; seed <= 2; seed++) { /* two passes in a row */
            pass(&a, seeds, n_seeds, seed);
            pass(&b, seeds, n_seeds, seed);
            if (memcmp(a.dx, b.dx, nx * sizeof(float)))
                fail_msg("%s (fuse %d, pass %d): shared memory changes the input gradient", path, fuse, (int)seed);
            float **r0 = &ref[seed - 1];
            if (!fuse) {
                assert_non_null(*r0 = malloc(nx * sizeof(float)));
                memcpy(*r0, a.dx, nx * sizeof(float));
            } else { /* ReLUs (capped too: ReLU6) run in place, their derivative from the output */
                for (size_t i = 0; i < nx; i++)
                    if (!(a.dx[i] == (*r0)[i]))
                        fail_msg("%s (pass %d): the fused plan's input gradient differs at %zu: %g, unfused %g",
                                 path, (int)seed, i, (double)a.dx[i], (double)(*r0)[i]);
            }
            for (int k = 0; k < n_seeds; k++) {
                int t = seeds[k];
                size_t ny = 2 * fv_shape_count(&a.io[t].out);
                if (memcmp(a.buf[t].y, b.buf[t].y, ny * sizeof(float)) ||
                    memcmp(a.buf[t].pre, b.buf[t].pre, ny * sizeof(float)))
                    fail_msg("%s (fuse %d, pass %d): seeded node '%s' lost its value", path, fuse, (int)seed,
                             m.layers[t].name);
            }
        }
        fv_plan_free(&a);
        fv_plan_free(&b);
    }
    free(ref[0]);
    free(ref[1]);
    free(seeded);
    fv_model_free(&m);
    return smaller;
}

static void test_same_input_gradient(void **state) {
    (void)state;
    int smaller = 0;
    for (size_t k = 0; k < sizeof MODELS / sizeof *MODELS; k++) {
        char rel[256], input[4096];
        snprintf(rel, sizeof rel, "golden/%s.input.npy", MODELS[k]);
        snprintf(input, sizeof input, "%s", data_path(rel));
        snprintf(rel, sizeof rel, "golden/%s.h5", MODELS[k]);
        double ratio;
        smaller += compare(data_path(rel), input, &ratio);
    }
    printf("  shared memory took less in %d of %d plans\n", smaller, 2 * (int)(sizeof MODELS / sizeof *MODELS));
    assert_true(smaller >= 10);
}

/* The real-size network: most of its outputs (convolutions and BatchNorms
 * before a ReLU6, the Adds) are read by no backward. */
static void test_mobilenet(void **state) {
    (void)state;
    double ratio;
    assert_int_equal(compare(shared_path("keras-real/teachable_nested_mobilenetv2_tfkeras2.4_224.h5"), NULL, &ratio), 2);
    printf("  MobileNetV2 at 224 px: the shared plan takes %.2f of the memory\n", ratio);
    assert_true(ratio < 0.5);
}

/* max |a - b| / max |b| */
static double rel_diff(const float *a, const float *b, size_t n) {
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]);
        if (e > d || isnan(e)) d = isnan(e) ? (double)INFINITY : e;
        if (fabs((double)b[i]) > s) s = fabs((double)b[i]);
    }
    return s > 0 ? d / s : d;
}

/* FV_PLAN_FOLD on the MobileNetV2: every BatchNorm folds into the
 * convolution before it (the ReLU6 after it into the merged node), and the
 * output and input gradient stay those of the plain plan up to rounding
 * (which test_golden and test_real_models hold to independent references);
 * an objective on a convolution's own output gets the original model. */
static void test_mobilenet_folded(void **state) {
    (void)state;
    const char *path = shared_path("keras-real/teachable_nested_mobilenetv2_tfkeras2.4_224.h5");
    struct fv_load_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.flip_kernels = -1;
    struct fv_error err = {0};
    struct fv_model m;
    if (fv_model_load(&m, path, &opts, &err)) fail_msg("%s: %s", path, err.msg);
    assert_non_null(m.folded);
    int bn = 0, merged = 0, gone = 0;
    for (int i = 0; i < m.n_layers; i++) {
        bn += !strcmp(m.layers[i].ops ? m.layers[i].ops->kind : "", "batchnorm");
        merged += m.folded->fold[i] == FV_FOLD_MERGED;
        gone += m.folded->fold[i] == FV_FOLD_GONE;
    }
    printf("  %d BatchNorms: %d merged nodes, %d nodes left out\n", bn, merged, gone);
    assert_int_equal(merged, bn);
    unsigned char *seeded = calloc((size_t)m.n_layers, 1);
    assert_non_null(seeded);
    seeded[m.output] = 1;
    int seeds[1] = {m.output};
    struct fv_plan a, b;
    int flags = FV_PLAN_GRAD | FV_PLAN_FUSE;
    if (fv_plan_init_shared(&a, &m, 2, 224, 224, flags, m.output, seeded, &err)) fail_msg("%s", err.msg);
    if (fv_plan_init_shared(&b, &m, 2, 224, 224, flags | FV_PLAN_FOLD, m.output, seeded, &err)) fail_msg("%s", err.msg);
    assert_ptr_equal(a.m, &m);
    assert_ptr_equal(b.m, m.folded);
    pass(&a, seeds, 1, 7);
    pass(&b, seeds, 1, 7);
    size_t nx = 2 * fv_shape_count(&a.io[m.input].out), ny = 2 * fv_shape_count(&a.io[m.output].out);
    double ey = rel_diff(b.buf[m.output].y, a.buf[m.output].y, ny), eg = rel_diff(b.dx, a.dx, nx);
    printf("  folded against plain: output %.2e, input gradient %.2e (relative to the largest)\n", ey, eg);
    assert_true(ey < 1e-4);
    assert_true(eg < 1e-4);
    fv_plan_free(&b);
    int conv = fv_model_find(&m, "block_6_expand"); /* a convolution a BatchNorm reads */
    assert_true(conv >= 0);
    assert_int_equal(m.folded->fold[conv], FV_FOLD_GONE);
    seeded[conv] = 1;
    if (fv_plan_init_shared(&b, &m, 1, 224, 224, flags | FV_PLAN_FOLD, m.output, seeded, &err)) fail_msg("%s", err.msg);
    assert_ptr_equal(b.m, &m);
    fv_plan_free(&b);
    fv_plan_free(&a);
    free(seeded);
    fv_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_input_gradient),
        cmocka_unit_test(test_mobilenet),
        cmocka_unit_test(test_mobilenet_folded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
