/* Golden tests: whole Keras models (tests/data/golden/, written by
 * tests/tools/make_golden.py in the Keras 2.2.4 / tf.keras 2.4 .h5 layout) run
 * through loader + plan + forward/backward, compared with an independent
 * PyTorch float64 reference (cross-checked there against NumPy and finite
 * differences):
 *   forward:  final output and 2-3 intermediate layers, max|a-b|/max|b| <= 1e-5;
 *   gradient: d objective / d input, <= 1e-4. The objective is the pre-softmax
 *             logit of one class per image, or for models that do not end in a
 *             softmax, sum over images of <w, output> with a fixed w.
 * See tests/data/golden/README.md for what each model covers. */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "featviz/formats.h"

#define FWD_TOL 1e-5
#define GRAD_TOL 1e-4

static void load_npy(const char *model, const char *what, struct test_npy *a) {
    char rel[512];
    snprintf(rel, sizeof rel, "golden/%s.%s.npy", model, what);
    const char *msg = test_npy_read(data_path(rel), a);
    if (msg) fail_msg("%s: %s", data_path(rel), msg);
}

/* ---- the models ---- */

struct golden {
    const char *name;
    int cf;                  /* the model input is channels_first: (n, C, H, W) */
    const char *inter[4];    /* layers with a <model>.<layer>.npy fixture, NULL-terminated */
};

static const struct golden cases[] = {
    {"cl_convnet", 0, {"conv2d_1", "max_pooling2d_1", "conv2d_4", NULL}},
    {"cf_convnet", 1, {"conv2d_2", "average_pooling2d_1", "flatten_1", NULL}},
    {"cl_acts", 0, {"conv2d_4", "re_lu_1", "p_re_lu_1", NULL}},
    {"tfk24_swish_gelu", 0, {"conv2d", "up_sampling2d", NULL}},
    {"cl_sep_dw", 0, {"separable_conv2d_1", "depthwise_conv2d_1", "batch_normalization_1", NULL}},
    {"cf_sep_dw", 1, {"depthwise_conv2d_1", "separable_conv2d_1", "max_pooling2d_1", NULL}},
    {"cl_pad_crop_up", 0, {"cropping2d_1", "up_sampling2d_1", "up_sampling2d_2", NULL}},
    {"cf_pad_crop_up", 1, {"p_re_lu_1", "up_sampling2d_1", "reshape_1", NULL}},
    {"cl_merge", 0, {"add_1", "concatenate_2", "concatenate_3", NULL}},
    {"cf_merge", 1, {"concatenate_1", "concatenate_2", "flatten_1", "flatten_2"}},
    {"mixed_format", 1, {"conv2d_1", "batch_normalization_1", "max_pooling2d_1", NULL}},
    {"cl_wide", 0, {"conv2d_2", "max_pooling2d_2", NULL}},
};
#define N_CASES (sizeof cases / sizeof cases[0])

/* Per-test state, freed by teardown even when an assertion fails. */
struct ctx {
    const struct golden *g;
    int flags;               /* plan flags under test */
    struct fv_model m;
    int have_model;
    struct fv_plan p;
    int have_plan;
    struct test_npy x, ref, w;
    float *xin, *out, *map;
    json_t *obj;
};

/* Each case runs with plain plans and with FV_PLAN_FUSE ones (ReLUs inside
 * the layers and in place, gradients written instead of added where a layer
 * can): the same references must come out. */
struct run {
    const struct golden *g;
    int flags;
};

static int setup(void **state) {
    struct ctx *c = calloc(1, sizeof *c);
    if (!c) return -1;
    const struct run *r = *state;
    c->g = r->g;
    c->flags = r->flags;
    *state = c;
    return 0;
}

static int teardown(void **state) {
    struct ctx *c = *state;
    if (c->have_plan) fv_plan_free(&c->p);
    if (c->have_model) fv_model_free(&c->m);
    test_npy_free(&c->x);
    test_npy_free(&c->ref);
    test_npy_free(&c->w);
    free(c->xin);
    free(c->out);
    free(c->map);
    if (c->obj) json_decref(c->obj);
    free(c);
    return 0;
}

static float *to_float(const struct test_npy *a) {
    float *f = malloc((a->count ? a->count : 1) * sizeof *f);
    assert_non_null(f);
    for (size_t i = 0; i < a->count; i++) f[i] = (float)a->data[i];
    return f;
}

/* Loads the model and its input, plans for the input's batch and size, runs forward. */
static void load_and_run(struct ctx *c) {
    const struct golden *g = c->g;
    load_npy(g->name, "input", &c->x);
    assert_int_equal(c->x.rank, 4);
    int n = (int)c->x.dims[0];
    int h = (int)c->x.dims[g->cf ? 2 : 1];
    int w = (int)c->x.dims[g->cf ? 3 : 2];
    int ch = (int)c->x.dims[g->cf ? 1 : 3];

    char rel[512];
    snprintf(rel, sizeof rel, "golden/%s.h5", g->name);
    struct fv_load_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.flip_kernels = -1;
    struct fv_error err;
    memset(&err, 0, sizeof err);
    if (fv_model_load(&c->m, data_path(rel), &opts, &err) != FV_OK)
        fail_msg("%s: load failed: %s", g->name, err.msg);
    c->have_model = 1;

    /* The declared input (None dims reported as <= 0) must agree with the array. */
    int dh, dw, dc;
    fv_model_input_hwc(&c->m, &dh, &dw, &dc);
    if (dh > 0) assert_int_equal(dh, h);
    if (dw > 0) assert_int_equal(dw, w);
    assert_int_equal(dc, ch);

    if (fv_plan_init(&c->p, &c->m, n, h, w, c->flags, &err) != FV_OK)
        fail_msg("%s: plan (n=%d h=%d w=%d) failed: %s", g->name, n, h, w, err.msg);
    c->have_plan = 1;
    c->p.escape_relu = 0;
    c->xin = to_float(&c->x);
    fv_plan_write_input(&c->p, c->xin);
    fv_forward(&c->p, -1);
}

/* Compares node t's output (whole batch, Keras order) with <model>.<what>.npy;
 * prints the error, returns 1 when within tol. */
static int compare_node(struct ctx *c, int t, const char *what, double tol) {
    struct test_npy ref;
    load_npy(c->g->name, what, &ref);
    size_t per = fv_shape_count(&c->p.io[t].out);
    size_t count = (size_t)c->p.n * per;
    if (count != ref.count) {
        size_t rc = ref.count;
        test_npy_free(&ref);
        fail_msg("%s: layer '%s' has %zu values per batch, fixture %s has %zu", c->g->name,
                 c->m.layers[t].name, count, what, rc);
    }
    float *out = malloc(count * sizeof *out);
    assert_non_null(out);
    fv_plan_read_keras(&c->p, t, 0, out);
    double e = rel_err_f64(out, ref.data, count);
    size_t worst = 0;
    double wd = -1;
    for (size_t i = 0; i < count; i++) {
        double d = fabs((double)out[i] - ref.data[i]);
        if (d > wd || isnan(d)) {
            wd = isnan(d) ? (double)INFINITY : d;
            worst = i;
        }
    }
    int ok = e <= tol;
    printf("  %-18s %-24s rel err %.2e (worst [%zu]: %.8g vs %.8g)%s\n", c->g->name, what, e,
           worst, (double)out[worst], ref.data[worst], ok ? "" : "  <-- FAILS");
    free(out);
    test_npy_free(&ref);
    return ok;
}

static void test_forward(void **state) {
    struct ctx *c = *state;
    load_and_run(c);
    /* intermediate layers first (in model order), so a failure can be localised */
    int bad = 0;
    for (int i = 0; i < 4 && c->g->inter[i]; i++) {
        int t = fv_model_find(&c->m, c->g->inter[i]);
        if (t < 0) fail_msg("%s: layer '%s' not found", c->g->name, c->g->inter[i]);
        if (c->p.m->fold && c->p.m->fold[t] == FV_FOLD_GONE) { /* folded into a later node */
            printf("  %-18s %-24s folded into a later node\n", c->g->name, c->g->inter[i]);
            continue;
        }
        bad += !compare_node(c, t, c->g->inter[i], FWD_TOL);
    }
    if (c->flags & FV_PLAN_FOLD) { /* the one fixture with a BatchNorm after a linear convolution (the
                                      others' convolutions before a BatchNorm have activations) */
        int folds = !strcmp(c->g->name, "cl_sep_dw");
        if (folds != (c->p.m != &c->m))
            fail_msg("%s: the plan %s the folded model", c->g->name, folds ? "does not run" : "runs");
    }
    bad += !compare_node(c, c->m.output, "output", FWD_TOL);
    if (bad)
        fail_msg("%s: %d of the compared layers differ from the reference by more than %.0e",
                 c->g->name, bad, FWD_TOL);
}

static json_t *load_objective(const char *model) {
    char rel[512];
    snprintf(rel, sizeof rel, "golden/%s.objective.json", model);
    json_error_t jerr;
    json_t *o = json_load_file(data_path(rel), 0, &jerr);
    if (!o) fail_msg("%s: %s", data_path(rel), jerr.text);
    return o;
}

static void test_gradient(void **state) {
    struct ctx *c = *state;
    load_and_run(c);
    c->obj = load_objective(c->g->name);
    const char *kind = json_string_value(json_object_get(c->obj, "kind"));
    const char *layer = json_string_value(json_object_get(c->obj, "layer"));
    assert_non_null(kind);
    assert_non_null(layer);
    int n = c->p.n;

    fv_grad_zero(&c->p);
    int t;
    if (strcmp(kind, "logit") == 0) {
        /* pre-softmax logit of classes[i] for image i */
        int pre = 0;
        t = fv_model_logits(&c->m, &pre);
        if (t < 0) fail_msg("%s: fv_model_logits found no logits", c->g->name);
        if (strcmp(c->m.layers[t].name, layer) != 0)
            fail_msg("%s: fv_model_logits gave '%s', the reference's logits are '%s'",
                     c->g->name, c->m.layers[t].name, layer);
        json_t *cls = json_object_get(c->obj, "classes");
        assert_int_equal(json_array_size(cls), (size_t)n);
        size_t count = fv_shape_count(&c->p.io[t].out);
        float *seed = fv_plan_grad(&c->p, t, pre);
        assert_non_null(seed);
        for (int i = 0; i < n; i++) {
            json_int_t k = json_integer_value(json_array_get(cls, (size_t)i));
            assert_true(k >= 0 && (size_t)k < count);
            seed[(size_t)i * count + (size_t)k] += 1.0f;
        }
    } else {
        /* sum over images of <w, output>, w in Keras order */
        assert_string_equal(kind, "weighted_output");
        t = c->m.output;
        assert_string_equal(c->m.layers[t].name, layer);
        load_npy(c->g->name, "weights_obj", &c->w);
        size_t per = fv_shape_count(&c->p.io[t].out);
        size_t count = (size_t)n * per;
        assert_int_equal(c->w.count, per);
        /* Physical index of each Keras-order element: write the indices into the
         * node's output and read them back in Keras order; then restore by
         * running forward again. */
        c->map = malloc(count * sizeof *c->map);
        assert_non_null(c->map);
        for (size_t i = 0; i < count; i++) c->p.buf[t].y[i] = (float)i;
        fv_plan_read_keras(&c->p, t, 0, c->map);
        fv_plan_write_input(&c->p, c->xin);
        fv_forward(&c->p, -1);
        float *seed = fv_plan_grad(&c->p, t, 0);
        for (size_t k = 0; k < count; k++) {
            size_t phys = (size_t)c->map[k];
            assert_true(phys < count);
            seed[phys] += (float)c->w.data[k % per];
        }
    }
    fv_backward(&c->p, t);

    load_npy(c->g->name, "grad", &c->ref);
    assert_int_equal(c->ref.count, c->x.count);
    c->out = malloc(c->x.count * sizeof *c->out);
    assert_non_null(c->out);
    fv_plan_input_to_keras(&c->p, c->p.dx, c->out);
    double e = rel_err_f64(c->out, c->ref.data, c->x.count);
    printf("  %-18s %-24s rel err %.2e\n", c->g->name, "input gradient", e);
    if (!(e <= GRAD_TOL))
        fail_msg("%s: input gradient (%s objective on '%s') differs: rel err %.3e > %.0e",
                 c->g->name, kind, layer, e, GRAD_TOL);
}

/* One filter per image (fv_plan_pick, what `featviz filters` runs): for every
 * Conv2D with a fixture, a plan up to it computing only channel pick[i] of
 * image i gives the reference values of those channels, and the gradient of
 * their spatial means equals the one through the whole layer. */
static void test_picked(void **state) {
    struct ctx *c = *state;
    load_and_run(c); /* c->p: the whole model, for the gradient without picks */
    int n = c->p.n, checked = 0;
    for (int i = 0; i < 4 && c->g->inter[i]; i++) {
        int t = fv_model_find(&c->m, c->g->inter[i]);
        assert_true(t >= 0);
        if (strcmp(c->m.layers[t].ops->kind, "conv2d") != 0) continue;
        struct fv_plan q;
        struct fv_error err = {0};
        if (fv_plan_init_upto(&q, &c->m, n, c->p.h, c->p.w, c->flags, t, &err) != FV_OK)
            fail_msg("%s: plan up to '%s': %s", c->g->name, c->g->inter[i], err.msg);
        const struct fv_shape *o = &q.io[t].out;
        int oc = o->d[2], hw = o->d[0] * o->d[1], pick[64];
        assert_true(n <= 64);
        for (int k = 0; k < n; k++) pick[k] = (3 * k + 1) % oc;
        assert_int_equal(fv_plan_pick(&q, t, pick), 1);
        fv_plan_write_input(&q, c->xin);
        fv_forward(&q, t);

        /* values: the picked channel of each image against the fixture (Keras order) */
        struct test_npy ref;
        load_npy(c->g->name, c->g->inter[i], &ref);
        size_t per = fv_shape_count(o);
        assert_int_equal(ref.count, (size_t)n * per);
        float *all = malloc(ref.count * sizeof *all), *got = malloc(ref.count * sizeof *got);
        double *want = malloc(ref.count * sizeof *want);
        assert_true(all && got && want);
        fv_plan_read_keras(&q, t, 0, all);
        size_t cnt = 0;
        for (int k = 0; k < n; k++)
            for (size_t e = 0; e < per; e++) {
                size_t ch = c->m.layers[t].cf ? e / (size_t)hw : e % (size_t)oc;
                if (ch != (size_t)pick[k]) continue;
                got[cnt] = all[(size_t)k * per + e], want[cnt++] = ref.data[(size_t)k * per + e];
            }
        assert_int_equal(cnt, (size_t)n * (size_t)hw);
        double e = rel_err_f64(got, want, cnt);
        printf("  %-18s %-24s picked channels: rel err %.2e\n", c->g->name, c->g->inter[i], e);

        /* gradient of sum_k mean over positions of y[k][.][.][pick[k]], with and without picks */
        struct fv_plan *plans[2] = {&q, &c->p};
        float *dx[2];
        for (int j = 0; j < 2; j++) {
            fv_grad_zero(plans[j]);
            float *g = fv_plan_grad(plans[j], t, 0);
            for (int k = 0; k < n; k++)
                for (int pos = 0; pos < hw; pos++)
                    g[(size_t)k * per + (size_t)pos * (size_t)oc + (size_t)pick[k]] = 1.0f / (float)hw;
            fv_backward(plans[j], t);
            dx[j] = plans[j]->dx;
        }
        double ge = rel_err_f32(dx[0], dx[1], c->x.count);
        printf("  %-18s %-24s picked gradient: rel err %.2e\n", c->g->name, c->g->inter[i], ge);
        free(all), free(got), free(want);
        test_npy_free(&ref);
        fv_plan_free(&q);
        if (!(e <= FWD_TOL) || !(ge <= GRAD_TOL))
            fail_msg("%s: '%s' with one channel per image: values %.2e (tolerance %.0e), gradient %.2e (%.0e)",
                     c->g->name, c->g->inter[i], e, FWD_TOL, ge, GRAD_TOL);
        checked++;
    }
    assert_true(checked > 0);
}

int main(void) {
    static char names[8 * N_CASES][96];
    static struct run runs[3 * N_CASES];
    struct CMUnitTest tests[8 * N_CASES];
    size_t j = 0;
    for (size_t i = 0; i < N_CASES; i++)
        for (int f = 0; f < 3; f++) {
            struct run *r = &runs[3 * i + (size_t)f];
            r->g = &cases[i];
            /* plain, fused, and fused with BatchNorms folded (the optimizer's plans) */
            r->flags = FV_PLAN_GRAD | (f ? FV_PLAN_FUSE : 0) | (f == 2 ? FV_PLAN_FOLD : 0);
            int convs = 0; /* Conv2D fixtures (names say so) for the picked-channel test */
            for (int k = 0; k < 4 && cases[i].inter[k]; k++) convs += strncmp(cases[i].inter[k], "conv2d", 6) == 0;
            for (int k = 0; k < 3; k++) {
                if (k == 2 && (!convs || f == 2)) continue;
                static const char *kind[] = {"forward", "gradient", "picked"};
                static const char *how[] = {"", "_fused", "_folded"};
                static void (*const fn[])(void **) = {test_forward, test_gradient, test_picked};
                snprintf(names[j], sizeof names[j], "%s%s_%s", kind[k], how[f], cases[i].name);
                tests[j].name = names[j];
                tests[j].test_func = fn[k];
                tests[j].setup_func = setup;
                tests[j].teardown_func = teardown;
                tests[j].initial_state = r;
                j++;
            }
        }
    return _cmocka_run_group_tests("golden", tests, j, NULL, NULL);
}
