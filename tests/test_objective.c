/* Objectives: the grammar, and each kind's input gradient through a whole
 * model against central finite differences in double precision. The model
 * (tests/data/golden/cf_convnet.h5: elu, selu, BN, average pooling, softplus)
 * is smooth, so differences need no kink handling. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "featviz/formats.h"
#include "featviz/objective.h"
#include "testutil.h"

static struct fv_model model;

static int setup(void **state) {
    (void)state;
    struct fv_error err = {0};
    return fv_model_load(&model, data_path("golden/cf_convnet.h5"), NULL, &err);
}

static int teardown(void **state) {
    (void)state;
    fv_model_free(&model);
    return 0;
}

/* Value of objective o for image 1 of a batch of 2 at input x (physical). */
static double value_at(struct fv_plan *p, const struct fv_objective *o, const float *x) {
    size_t n = (size_t)p->n * fv_shape_count(&p->io[p->m->input].out);
    memcpy(p->x, x, n * sizeof *x);
    fv_forward(p, fv_objective_top(o));
    return fv_objective_value(o, p, 1);
}

static void check_gradient(const char *text) {
    struct fv_objective o;
    struct fv_error err = {0};
    int rc = fv_objective_parse(text, &model, &o, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, FV_OK);
    struct fv_plan p;
    assert_int_equal(fv_plan_init(&p, &model, 2, 13, 11, FV_PLAN_GRAD, &err), FV_OK);
    assert_int_equal(fv_objective_check(&o, &p, &err), FV_OK);
    size_t per = fv_shape_count(&p.io[model.input].out), n = 2 * per;
    float *x = malloc(n * sizeof *x), *g = malloc(n * sizeof *g);
    fill_uniform(x, n, 42, -1.f, 1.f);
    value_at(&p, &o, x);
    fv_grad_zero(&p);
    fv_objective_seed(&o, &p, 1, 1.0f);
    fv_backward(&p, fv_objective_top(&o));
    memcpy(g, p.dx, n * sizeof *g);
    /* image 0 must get no gradient: objectives are per image */
    for (size_t i = 0; i < per; i++) assert_true(g[i] == 0.0f);
    /* The model runs in float32, so differences carry ~1e-6 of rounding, and
     * selu's kink at 0 bends a few of them: 1e-2 still catches any wrong
     * seed (scale, sign, channel, position), which is off by O(1). The
     * tight whole-model check is test_golden's, against PyTorch autograd. */
    double num_max = 0, diff_max = 0, eps = 1e-2;
    for (size_t i = per; i < n; i++) {
        float keep = x[i];
        x[i] = (float)((double)keep + eps);
        double hi = x[i], fp = value_at(&p, &o, x);
        x[i] = (float)((double)keep - eps);
        double lo = x[i], fm = value_at(&p, &o, x);
        x[i] = keep;
        double num = (fp - fm) / (hi - lo);
        if (fabs(num - (double)g[i]) > diff_max) diff_max = fabs(num - (double)g[i]);
        if (fabs(num) > num_max) num_max = fabs(num);
    }
    double rel = diff_max / num_max;
    printf("%-50s max|grad| %.3e  rel err %.2e\n", text, num_max, rel);
    assert_true(num_max > 1e-6); /* the objective does depend on the input */
    assert_true(rel < 1e-2);
    free(x), free(g);
    fv_plan_free(&p);
}

static void test_class(void **s) { (void)s; check_gradient("class:1"); }
static void test_filter(void **s) { (void)s; check_gradient("filter:conv2d_2:1"); }
static void test_filter_pre(void **s) { (void)s; check_gradient("filter:conv2d_2:1:pre"); }
static void test_filter_dense(void **s) { (void)s; check_gradient("filter:dense_1:3"); }
static void test_neuron(void **s) { (void)s; check_gradient("neuron:conv2d_2:0:1:2"); }
static void test_neuron_pre(void **s) { (void)s; check_gradient("neuron:conv2d_1:2:3:1:pre"); }
static void test_dream(void **s) { (void)s; check_gradient("dream:average_pooling2d_1"); }
static void test_dream_pre(void **s) { (void)s; check_gradient("dream:conv2d_2:pre"); }
static void test_weighted(void **s) { (void)s; check_gradient("class:1 - 0.5*class:0 + 2*filter:conv2d_2:1"); }
static void test_leading_minus(void **s) { (void)s; check_gradient("-dream:conv2d_1 + 3 * neuron:conv2d_2:1:0:0"); }

static void test_value_definitions(void **state) {
    (void)state; /* values read straight from the layer outputs */
    struct fv_objective o;
    struct fv_error err = {0};
    struct fv_plan p;
    assert_int_equal(fv_plan_init(&p, &model, 2, 13, 11, FV_PLAN_GRAD, &err), FV_OK);
    size_t n = 2 * fv_shape_count(&p.io[model.input].out);
    fill_uniform(p.x, n, 7, -1.f, 1.f);
    fv_forward(&p, -1);
    int t = fv_model_find(&model, "conv2d_2");
    const struct fv_shape *s = &p.io[t].out; /* physical (H,W,C) */
    int H = s->d[0], W = s->d[1], C = s->d[2];
    const float *y = p.buf[t].y + (size_t)H * W * C; /* image 1 */
    double mean = 0, sq = 0;
    for (int k = 0; k < H * W; k++) mean += (double)y[(size_t)k * C + 1];
    for (int k = 0; k < H * W * C; k++) sq += (double)y[k] * (double)y[k];
    assert_int_equal(fv_objective_parse("filter:conv2d_2:1", &model, &o, &err), FV_OK);
    assert_true(fabs(fv_objective_value(&o, &p, 1) - mean / (H * W)) < 1e-6);
    assert_int_equal(fv_objective_parse("dream:conv2d_2", &model, &o, &err), FV_OK);
    assert_true(fabs(fv_objective_value(&o, &p, 1) - sq / (H * W * C)) < 1e-6);
    assert_int_equal(fv_objective_parse("neuron:conv2d_2:2:1:0", &model, &o, &err), FV_OK);
    assert_true(fabs(fv_objective_value(&o, &p, 1) - (double)y[((size_t)1 * W + 0) * C + 2]) < 1e-7);
    /* class: the logit is dense_2's value before its softmax */
    int pre, lg = fv_model_logits(&model, &pre);
    assert_int_equal(lg, fv_model_find(&model, "dense_2"));
    assert_true(pre);
    assert_int_equal(fv_objective_parse("class:2 - class:0", &model, &o, &err), FV_OK);
    const float *z = p.buf[lg].pre + fv_shape_count(&p.io[lg].out);
    assert_true(fabs(fv_objective_value(&o, &p, 1) - ((double)z[2] - (double)z[0])) < 1e-6);
    fv_plan_free(&p);
}

static void test_errors(void **state) {
    (void)state;
    static const struct { const char *text, *says; } bad[] = {
        {"klass:1", "expected class:C"},
        {"class:", "class index"},
        {"filter:nope:1", "no layer named 'nope'"},
        {"filter:conv2d_2", "filter index"},
        {"neuron:conv2d_2:1:2", "F:Y:X"},
        {"class:1 class:2", "expected + or -"},
        {"class:1 +", "expected class:C"},
        {"dream:conv2d_2:post", "unexpected"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct fv_objective o;
        struct fv_error err = {0};
        assert_int_equal(fv_objective_parse(bad[i].text, &model, &o, &err), FV_ERR_USAGE);
        printf("%-24s -> %s\n", bad[i].text, err.msg);
        assert_non_null(strstr(err.msg, bad[i].says));
    }
    struct fv_objective o;
    struct fv_error err = {0};
    struct fv_plan p;
    assert_int_equal(fv_plan_init(&p, &model, 1, 13, 11, 0, &err), FV_OK);
    assert_int_equal(fv_objective_parse("class:43", &model, &o, &err), FV_OK);
    assert_int_equal(fv_objective_check(&o, &p, &err), FV_ERR_USAGE);
    assert_non_null(strstr(err.msg, "out of range"));
    assert_int_equal(fv_objective_parse("neuron:conv2d_2:0:99:0", &model, &o, &err), FV_OK);
    assert_int_equal(fv_objective_check(&o, &p, &err), FV_ERR_USAGE);
    assert_non_null(strstr(err.msg, "outside"));
    fv_plan_free(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_class),         cmocka_unit_test(test_filter),
        cmocka_unit_test(test_filter_pre),    cmocka_unit_test(test_filter_dense),
        cmocka_unit_test(test_neuron),        cmocka_unit_test(test_neuron_pre),
        cmocka_unit_test(test_dream),         cmocka_unit_test(test_dream_pre),
        cmocka_unit_test(test_weighted),      cmocka_unit_test(test_leading_minus),
        cmocka_unit_test(test_value_definitions), cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
