/* The resample kernel (src/kernels/resample.c): forward against PyTorch's
 * anti-aliased bilinear and bicubic (= PIL's BILINEAR and BICUBIC) in float64
 * (tests/tools/make_resample_fixtures.py), with and without scratch; backward
 * against central differences. The other filters are tested through their
 * users: UpSampling2D (test_layers_misc), fv_image_resize (test_preprocess),
 * fv_resize_bilinear (test_optim). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/resample.h"
#include "testutil.h"

static double *fixture(const char *name, size_t expect) {
    return fixture_array("resample/resample.txt", name, expect);
}

static const int cases[][4] = {{16, 16, 4, 4}, {13, 10, 4, 7}, {32, 32, 30, 30}, {5, 6, 11, 9}, {40, 36, 10, 9}};

static void check_filter(const char *tag, enum fv_resample_filter f) {
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int h = cases[k][0], w = cases[k][1], oh = cases[k][2], ow = cases[k][3], n = 2, c = 3;
        size_t nx = (size_t)n * h * w * c, ny = (size_t)n * oh * ow * c;
        char name[96];
        snprintf(name, sizeof name, "%s_%dx%d_%dx%d_in", tag, h, w, oh, ow);
        double *xd = fixture(name, nx);
        snprintf(name, sizeof name, "%s_%dx%d_%dx%d_out", tag, h, w, oh, ow);
        double *want = fixture(name, ny);
        float *x = malloc(nx * sizeof(float)), *y = malloc(ny * sizeof(float)), *y2 = malloc(ny * sizeof(float));
        for (size_t i = 0; i < nx; i++) x[i] = (float)xd[i];
        struct fv_resample r;
        struct fv_error err = {0};
        assert_int_equal(fv_resample_init(&r, h, w, oh, ow, f, &err), FV_OK);
        fv_resample_forward(&r, x, y, c, n, NULL);
        float *ws = malloc((size_t)n * fv_resample_ws_floats(&r, c) * sizeof(float));
        fv_resample_forward(&r, x, y2, c, n, ws);
        for (size_t i = 0; i < ny; i++) {
            if (!(fabs((double)y[i] - want[i]) <= 2e-6))
                fail_msg("%s: element %zu got %.9g want %.9g", name, i, (double)y[i], want[i]);
            if (memcmp(&y[i], &y2[i], sizeof(float)))
                fail_msg("%s: element %zu differs with scratch (%.9g vs %.9g)", name, i, (double)y[i], (double)y2[i]);
        }
        fv_resample_free(&r);
        free(ws), free(x), free(y), free(y2), free(xd), free(want);
    }
}

static void test_antialiased_linear(void **state) {
    (void)state;
    check_filter("aa", FV_RS_LINEAR_AA);
}

static void test_pil_bicubic(void **state) {
    (void)state;
    check_filter("cubic", FV_RS_CUBIC_PIL);
}

/* L = sum(wt .* A x) in double; A^T wt against central differences of L
 * (A is linear, so the differences are exact up to rounding). */
static void test_backward_finite_differences(void **state) {
    (void)state;
    const enum fv_resample_filter fs[] = {FV_RS_LINEAR_AA, FV_RS_CUBIC_PIL, FV_RS_LINEAR, FV_RS_LINEAR_TF,
                                          FV_RS_LINEAR_ASYM, FV_RS_AREA, FV_RS_NEAREST};
    const int sizes[][4] = {{12, 9, 4, 5}, {4, 5, 9, 7}, {7, 7, 7, 3}};
    for (size_t fi = 0; fi < sizeof fs / sizeof fs[0]; fi++)
        for (size_t si = 0; si < 3; si++) {
            int h = sizes[si][0], w = sizes[si][1], oh = sizes[si][2], ow = sizes[si][3], n = 2, c = 3;
            size_t nx = (size_t)n * h * w * c, ny = (size_t)n * oh * ow * c;
            float *x = malloc(nx * sizeof(float)), *y = malloc(ny * sizeof(float));
            float *wt = malloc(ny * sizeof(float)), *dx = malloc(nx * sizeof(float));
            fill_uniform(x, nx, 7 + si, -1.f, 1.f);
            fill_uniform(wt, ny, 17 + si, -1.f, 1.f);
            struct fv_resample r;
            struct fv_error err = {0};
            assert_int_equal(fv_resample_init(&r, h, w, oh, ow, fs[fi], &err), FV_OK);
            for (size_t i = 0; i < nx; i++) dx[i] = 0.5f; /* it must accumulate */
            fv_resample_backward(&r, wt, dx, c, n);
            double worst = 0, big = 0;
            for (size_t k = 0; k < nx; k++) {
                float keep = x[k];
                double L[2];
                for (int s = 0; s < 2; s++) {
                    x[k] = keep + (s ? -0.125f : 0.125f);
                    fv_resample_forward(&r, x, y, c, n, NULL);
                    L[s] = 0;
                    for (size_t i = 0; i < ny; i++) L[s] += (double)wt[i] * (double)y[i];
                }
                x[k] = keep;
                double num = (L[0] - L[1]) / 0.25, d = fabs(num - ((double)dx[k] - 0.5));
                if (d > worst) worst = d;
                if (fabs(num) > big) big = fabs(num);
            }
            if (!(worst <= 1e-4 * (big > 1 ? big : 1)))
                fail_msg("filter %d, %dx%d -> %dx%d: backward off by %g (largest gradient %g)", (int)fs[fi], h, w,
                         oh, ow, worst, big);
            fv_resample_free(&r);
            free(x), free(y), free(wt), free(dx);
        }
}

static void test_bad_sizes(void **state) {
    (void)state;
    struct fv_resample r;
    struct fv_error err = {0};
    assert_int_equal(fv_resample_init(&r, 0, 4, 4, 4, FV_RS_LINEAR, &err), FV_ERR_USAGE);
    assert_int_equal(fv_resample_init(&r, 4, 4, 4, 1 << 25, FV_RS_LINEAR, &err), FV_ERR_USAGE);
    assert_int_equal(fv_resample_init(&r, 4, 4, 4, 4, (enum fv_resample_filter)99, &err), FV_ERR_USAGE);
    fv_resample_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_antialiased_linear),
        cmocka_unit_test(test_pil_bicubic),
        cmocka_unit_test(test_backward_finite_differences),
        cmocka_unit_test(test_bad_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
