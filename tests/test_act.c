/* Activations (src/kernels/act.c): names, forward against PyTorch float64
 * fixtures (tests/data/act/act_forward.txt, made by tests/tools/make_act_fixtures.py),
 * backward against central differences, and the dead-ReLU escape. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- fixture file: one array per line, "name count v0 v1 ..." ---- */

static double *fixture(const char *name, size_t expect) { return fixture_array("act/act_forward.txt", name, expect); }

static size_t fixture_count(const char *name) { return fixture_length("act/act_forward.txt", name); }

/* |got - want| <= rtol*|want| + atol for every element; prints the worst. */
static void check_close(const char *what, const float *got, const double *want, size_t n,
                        double rtol, double atol) {
    size_t worst = 0;
    double worst_ratio = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        double ratio = d / (rtol * fabs(want[i]) + atol);
        if (!(ratio <= worst_ratio)) {
            worst_ratio = ratio;
            worst = i;
        }
    }
    if (!(worst_ratio <= 1.0))
        fail_msg("%s: element %zu got %.9g want %.9g (%.3g x tolerance)", what, worst,
                 (double)got[worst], want[worst], worst_ratio);
}

static struct fv_act mk(enum fv_act_kind kind, float alpha, float max_value, float threshold) {
    struct fv_act a = {kind, alpha, max_value, threshold};
    return a;
}

/* The activations of the fixture file, same names as make_act_fixtures.py. */
struct act_case {
    const char *name;
    struct fv_act a;
};

static const struct act_case *act_cases(size_t *n) {
    static struct act_case c[32];
    size_t k = 0;
    c[k++] = (struct act_case){"linear", mk(FV_ACT_LINEAR, 0, -1, 0)};
    c[k++] = (struct act_case){"elu", mk(FV_ACT_ELU, 1.f, -1, 0)};
    c[k++] = (struct act_case){"elu_alpha0.5", mk(FV_ACT_ELU, 0.5f, -1, 0)};
    c[k++] = (struct act_case){"selu", mk(FV_ACT_SELU, 0, -1, 0)};
    c[k++] = (struct act_case){"sigmoid", mk(FV_ACT_SIGMOID, 0, -1, 0)};
    c[k++] = (struct act_case){"hard_sigmoid", mk(FV_ACT_HARD_SIGMOID, 0, -1, 0)};
    c[k++] = (struct act_case){"hard_sigmoid3", mk(FV_ACT_HARD_SIGMOID3, 0, -1, 0)};
    c[k++] = (struct act_case){"tanh", mk(FV_ACT_TANH, 0, -1, 0)};
    c[k++] = (struct act_case){"softplus", mk(FV_ACT_SOFTPLUS, 0, -1, 0)};
    c[k++] = (struct act_case){"softsign", mk(FV_ACT_SOFTSIGN, 0, -1, 0)};
    c[k++] = (struct act_case){"swish", mk(FV_ACT_SWISH, 0, -1, 0)};
    c[k++] = (struct act_case){"gelu", mk(FV_ACT_GELU, 0, -1, 0)};
    c[k++] = (struct act_case){"gelu_tanh", mk(FV_ACT_GELU_TANH, 0, -1, 0)};
    c[k++] = (struct act_case){"exponential", mk(FV_ACT_EXPONENTIAL, 0, -1, 0)};
    c[k++] = (struct act_case){"relu", mk(FV_ACT_RELU, 0, -1, 0)};
    c[k++] = (struct act_case){"relu6", mk(FV_ACT_RELU, 0, 6.f, 0)};
    c[k++] = (struct act_case){"leaky_relu", mk(FV_ACT_RELU, 0.2f, -1, 0)};
    c[k++] = (struct act_case){"relu_max4_slope0.1", mk(FV_ACT_RELU, 0.1f, 4.f, 0)};
    c[k++] = (struct act_case){"relu_max3_thr1", mk(FV_ACT_RELU, 0, 3.f, 1.f)};
    c[k++] = (struct act_case){"relu_max5_slope0.3_thr1.5", mk(FV_ACT_RELU, 0.3f, 5.f, 1.5f)};
    c[k++] = (struct act_case){"relu_slope0.5_thr2", mk(FV_ACT_RELU, 0.5f, -1, 2.f)};
    c[k++] = (struct act_case){"relu_thr0.5", mk(FV_ACT_RELU, 0, -1, 0.5f)};
    *n = k;
    return c;
}

/* ---- names ---- */

static void test_parse(void **state) {
    (void)state;
    struct {
        const char *name;
        int keras3;
        enum fv_act_kind kind;
        float alpha, max_value;
    } t[] = {
        {"linear", 0, FV_ACT_LINEAR, 0, -1},      {"relu", 0, FV_ACT_RELU, 0, -1},
        {"relu6", 0, FV_ACT_RELU, 0, 6},          {"leaky_relu", 1, FV_ACT_RELU, 0.2f, -1},
        {"elu", 0, FV_ACT_ELU, 1, -1},            {"selu", 0, FV_ACT_SELU, 0, -1},
        {"sigmoid", 0, FV_ACT_SIGMOID, 0, -1},    {"hard_sigmoid", 0, FV_ACT_HARD_SIGMOID, 0, -1},
        {"hard_sigmoid", 1, FV_ACT_HARD_SIGMOID3, 0, -1},
        {"tanh", 0, FV_ACT_TANH, 0, -1},          {"softmax", 0, FV_ACT_SOFTMAX, 0, -1},
        {"softplus", 0, FV_ACT_SOFTPLUS, 0, -1},  {"softsign", 0, FV_ACT_SOFTSIGN, 0, -1},
        {"swish", 0, FV_ACT_SWISH, 0, -1},        {"silu", 1, FV_ACT_SWISH, 0, -1},
        {"gelu", 1, FV_ACT_GELU, 0, -1},          {"exponential", 0, FV_ACT_EXPONENTIAL, 0, -1},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct fv_act a;
        struct fv_error err = {0};
        memset(&a, 0x55, sizeof a);
        assert_int_equal(fv_act_parse(t[i].name, t[i].keras3, &a, &err), FV_OK);
        assert_int_equal(a.kind, t[i].kind);
        assert_true(a.alpha == t[i].alpha);
        assert_true(a.max_value == t[i].max_value);
        assert_true(a.threshold == 0.f);
        /* the name round-trips through fv_act_name */
        struct fv_act b;
        assert_int_equal(fv_act_parse(fv_act_name(&a), t[i].keras3, &b, &err), FV_OK);
        assert_int_equal(b.kind, a.kind);
        assert_true(b.alpha == a.alpha && b.max_value == a.max_value);
    }
    struct fv_act a;
    struct fv_error err = {0};
    assert_int_equal(fv_act_parse(NULL, 0, &a, &err), FV_OK);
    assert_int_equal(a.kind, FV_ACT_LINEAR);
    assert_int_equal(fv_act_parse("mish", 0, &a, &err), FV_ERR_UNSUPPORTED);
    assert_int_equal(err.code, FV_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "unknown activation 'mish'"));
    assert_int_equal(fv_act_parse("Relu", 0, &a, &err), FV_ERR_UNSUPPORTED);

    struct fv_act g = mk(FV_ACT_GELU_TANH, 0, -1, 0);
    assert_string_equal(fv_act_name(&g), "gelu");
    struct fv_act h = mk(FV_ACT_HARD_SIGMOID3, 0, -1, 0);
    assert_string_equal(fv_act_name(&h), "hard_sigmoid");
}

/* ---- forward ---- */

static void test_forward_fixtures(void **state) {
    (void)state;
    size_t n = fixture_count("x"), nc;
    double *xd = fixture("x", n);
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = (float)xd[i];
    const struct act_case *c = act_cases(&nc);
    for (size_t k = 0; k < nc; k++) {
        char name[128];
        snprintf(name, sizeof name, "%s.y", c[k].name);
        double *want = fixture(name, n);
        /* elementwise kinds ignore the (outer, dim, inner) split */
        fv_act_forward(&c[k].a, x, y, 1, (int)n, 1);
        check_close(c[k].name, y, want, n, 1e-5, 1e-7);
        /* in place (y == x) */
        float *z = malloc(n * sizeof(float));
        memcpy(z, x, n * sizeof(float));
        fv_act_forward(&c[k].a, z, z, n, 1, 1);
        check_close(c[k].name, z, want, n, 1e-5, 1e-7);
        free(z);
        free(want);
    }
    free(xd);
    free(x);
    free(y);
}

/* Examples from the Keras ReLU documentation (keras.io, tensorflow.org). */
static void test_relu_keras_doc_examples(void **state) {
    (void)state;
    struct {
        struct fv_act a;
        float x[5], y[5];
        int n;
    } t[] = {
        {mk(FV_ACT_RELU, 0, -1, 0), {-3, -1, 0, 2}, {0, 0, 0, 2}, 4},
        {mk(FV_ACT_RELU, 0, 1, 0), {-3, -1, 0, 2}, {0, 0, 0, 1}, 4},
        {mk(FV_ACT_RELU, 1, -1, 0), {-3, -1, 0, 2}, {-3, -1, 0, 2}, 4},
        {mk(FV_ACT_RELU, 0, -1, 1.5f), {-3, -1, 1, 2}, {0, 0, 0, 2}, 4},
        {mk(FV_ACT_RELU, 0.5f, 10, 0), {-10, -5, 0, 5, 10}, {-5, -2.5f, 0, 5, 10}, 5},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        float y[5];
        fv_act_forward(&t[i].a, t[i].x, y, 1, t[i].n, 1);
        for (int k = 0; k < t[i].n; k++) assert_float_equal(y[k], t[i].y[k], 1e-6);
    }
}

static void test_softmax_fixtures(void **state) {
    (void)state;
    int dims[][3] = {{3, 5, 4}, {2, 7, 1}, {1, 6, 3}, {2, 4, 3}, {4, 1, 2}};
    struct fv_act a = mk(FV_ACT_SOFTMAX, 0, -1, 0);
    for (size_t k = 0; k < sizeof dims / sizeof dims[0]; k++) {
        size_t n = (size_t)dims[k][0] * dims[k][1] * dims[k][2];
        char name[64];
        snprintf(name, sizeof name, "softmax_%dx%dx%d.x", dims[k][0], dims[k][1], dims[k][2]);
        double *xd = fixture(name, n);
        name[strlen(name) - 1] = 'y';
        double *want = fixture(name, n);
        float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) x[i] = (float)xd[i];
        fv_act_forward(&a, x, y, (size_t)dims[k][0], dims[k][1], (size_t)dims[k][2]);
        check_close(name, y, want, n, 1e-5, 1e-7);
        fv_act_forward(&a, x, x, (size_t)dims[k][0], dims[k][1], (size_t)dims[k][2]);
        check_close(name, x, want, n, 1e-5, 1e-7);
        free(xd);
        free(want);
        free(x);
        free(y);
    }
}

/* ---- backward ---- */

static uint64_t rng_state = 12345;

static float urand(float lo, float hi) {
    float u;
    fill_uniform(&u, 1, rng_state++, lo, hi);
    return u;
}

/* Points away from every kink the activation kinds have. */
static int near_kink(const struct fv_act *a, float x) {
    float k[] = {0.f, a->threshold, a->max_value, -2.5f, 2.5f, -3.f, 3.f};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (fabsf(x - k[i]) < 0.05f) return 1;
    return 0;
}

static void test_backward_fd(void **state) {
    (void)state;
    enum { N = 200 };
    size_t nc;
    const struct act_case *c = act_cases(&nc);
    float x[N], y[N], dy[N], dx[N], dx0[N], xp, xm, fp, fm;
    for (size_t k = 0; k < nc; k++) {
        const struct fv_act *a = &c[k].a;
        for (int i = 0; i < N; i++) {
            do x[i] = urand(-5.f, 5.f);
            while (near_kink(a, x[i]));
            dy[i] = urand(-1.f, 1.f);
            dx0[i] = urand(-1.f, 1.f);
            dx[i] = dx0[i];
        }
        fv_act_forward(a, x, y, 1, N, 1);
        fv_act_backward(a, x, y, dy, dx, 1, N, 1, 0);
        double eps = 1e-2;
        for (int i = 0; i < N; i++) {
            xp = (float)((double)x[i] + eps);
            xm = (float)((double)x[i] - eps);
            fv_act_forward(a, &xp, &fp, 1, 1, 1);
            fv_act_forward(a, &xm, &fm, 1, 1, 1);
            double num = ((double)fp - (double)fm) / ((double)xp - (double)xm) * (double)dy[i];
            double got = (double)dx[i] - (double)dx0[i]; /* backward accumulates */
            if (!(fabs(got - num) <= 1e-3 * fabs(num) + 2e-5))
                fail_msg("%s: x=%.6g dy=%.6g: backward %.9g, finite difference %.9g", c[k].name,
                         (double)x[i], (double)dy[i], got, num);
        }
    }
}

static void test_softmax_backward_fd(void **state) {
    (void)state;
    int dims[][3] = {{3, 5, 4}, {2, 7, 1}, {1, 1, 3}};
    struct fv_act a = mk(FV_ACT_SOFTMAX, 0, -1, 0);
    for (size_t k = 0; k < sizeof dims / sizeof dims[0]; k++) {
        size_t O = (size_t)dims[k][0], I = (size_t)dims[k][2];
        int D = dims[k][1];
        size_t n = O * (size_t)D * I;
        float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
        float *w = malloc(n * sizeof(float)), *dx = malloc(n * sizeof(float));
        float *dx0 = malloc(n * sizeof(float));
        fill_uniform(x, n, 100 + k, -3.f, 3.f);
        fill_uniform(w, n, 200 + k, -1.f, 1.f);
        fill_uniform(dx0, n, 300 + k, -1.f, 1.f);
        memcpy(dx, dx0, n * sizeof(float));
        fv_act_forward(&a, x, y, O, D, I);
        fv_act_backward(&a, x, y, w, dx, O, D, I, 0);
        double eps = 1e-2, num_max = 0, diff_max = 0;
        for (size_t i = 0; i < n; i++) {
            float keep = x[i];
            double L[2];
            for (int s = 0; s < 2; s++) {
                x[i] = (float)((double)keep + (s ? -eps : eps));
                fv_act_forward(&a, x, y, O, D, I);
                L[s] = 0;
                for (size_t j = 0; j < n; j++) L[s] += (double)w[j] * (double)y[j];
            }
            double h = (double)(float)((double)keep + eps) - (double)(float)((double)keep - eps);
            x[i] = keep;
            double num = (L[0] - L[1]) / h;
            diff_max = fmax(diff_max, fabs(num - ((double)dx[i] - (double)dx0[i])));
            num_max = fmax(num_max, fabs(num));
        }
        if (!(diff_max <= 1e-3 * num_max + 1e-6))
            fail_msg("softmax %dx%dx%d: max diff %.3g, max grad %.3g", dims[k][0], D, dims[k][2],
                     diff_max, num_max);
        free(x);
        free(y);
        free(w);
        free(dx);
        free(dx0);
    }
}

/* ---- dead-ReLU escape ---- */

static void test_escape(void **state) {
    (void)state;
    /* x, dy: expected dx for (a) plain relu, with escape */
    struct {
        struct fv_act a;
        float x, dy, plain, esc;
    } t[] = {
        /* off unit, gradient asks for more: passes with escape */
        {mk(FV_ACT_RELU, 0, -1, 0), -1.f, 0.7f, 0.f, 0.7f},
        /* off unit, gradient asks for less: stays blocked */
        {mk(FV_ACT_RELU, 0, -1, 0), -1.f, -0.7f, 0.f, 0.f},
        /* on unit: normal */
        {mk(FV_ACT_RELU, 0, -1, 0), 2.f, -0.7f, -0.7f, -0.7f},
        {mk(FV_ACT_RELU, 0, -1, 0), 2.f, 0.4f, 0.4f, 0.4f},
        /* relu6: off below 0, saturated above 6 is not "off" */
        {mk(FV_ACT_RELU, 0, 6, 0), -0.5f, 0.3f, 0.f, 0.3f},
        {mk(FV_ACT_RELU, 0, 6, 0), 7.f, 0.3f, 0.f, 0.f},
        {mk(FV_ACT_RELU, 0, 6, 0), 3.f, 0.3f, 0.3f, 0.3f},
        /* threshold 1: 0.5 is below it, off */
        {mk(FV_ACT_RELU, 0, -1, 1.f), 0.5f, 0.9f, 0.f, 0.9f},
        {mk(FV_ACT_RELU, 0, -1, 1.f), 0.5f, -0.9f, 0.f, 0.f},
        /* leaky: never off, escape changes nothing */
        {mk(FV_ACT_RELU, 0.2f, -1, 0), -1.f, 0.5f, 0.1f, 0.1f},
        {mk(FV_ACT_RELU, 0.2f, -1, 0), -1.f, -0.5f, -0.1f, -0.1f},
        /* other kinds ignore the flag */
        {mk(FV_ACT_HARD_SIGMOID, 0, -1, 0), -4.f, 0.5f, 0.f, 0.f},
        {mk(FV_ACT_HARD_SIGMOID3, 0, -1, 0), -4.f, 0.5f, 0.f, 0.f},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        float y, dx = 1.f;
        fv_act_forward(&t[i].a, &t[i].x, &y, 1, 1, 1);
        fv_act_backward(&t[i].a, &t[i].x, &y, &t[i].dy, &dx, 1, 1, 1, 0);
        assert_float_equal(dx, 1.f + t[i].plain, 1e-6);
        dx = 1.f;
        fv_act_backward(&t[i].a, &t[i].x, &y, &t[i].dy, &dx, 1, 1, 1, 1);
        assert_float_equal(dx, 1.f + t[i].esc, 1e-6);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_forward_fixtures),
        cmocka_unit_test(test_relu_keras_doc_examples),
        cmocka_unit_test(test_softmax_fixtures),
        cmocka_unit_test(test_backward_fd),
        cmocka_unit_test(test_softmax_backward_fd),
        cmocka_unit_test(test_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
