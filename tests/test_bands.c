/* Bands of rows (src/graph/bands.c): the input gradient of a mean over a
 * layer's positions, summed over the bands of a crop-by-crop run, must be
 * the whole image's (itself checked against PyTorch in test_golden and
 * against finite differences in test_objective). Golden models cover strides
 * and 'same' padding on odd sizes, even kernels, dilation, Winograd-sized
 * layers, pooling with a row left over, padding and cropping layers, fan-out
 * and fan-in; networks that mix rows must be refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "featviz/formats.h"
#include "featviz/objective.h"
#include "testutil.h"

struct band_case {
    const char *model, *objective;
    int h, w;
};

static const struct band_case cases[] = {
    {"cl_wide", "dream:conv2d_3", 61, 23},                 /* Winograd layers, two pools */
    {"cl_wide", "filter:max_pooling2d_2:5", 58, 20},        /* a pool with a row over */
    {"cl_convnet", "dream:conv2d_3", 45, 13},               /* stride 2 'same', 2x2, 4x4 'same' */
    {"cl_convnet", "dream:max_pooling2d_1", 52, 13},        /* 3/2 'same' pooling */
    {"cf_convnet", "dream:average_pooling2d_1", 57, 11},    /* dilation, BN, 'same' averages */
    {"cl_pad_crop_up", "dream:cropping2d_1", 40, 9},        /* zero padding, cropping */
    {"cl_merge", "dream:add_1", 47, 9},                     /* fan-out, 1x1 and 3x3, Add */
    {"cl_merge", "filter:concatenate_1:7", 44, 9},          /* channel concatenation */
};

static void load(struct fv_model *m, const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "golden/%s.h5", name);
    struct fv_error err = {0};
    if (fv_model_load(m, data_path(rel), NULL, &err) != FV_OK) fail_msg("%s", err.msg);
}

/* dx (h, w, c) of objective o at input x, the whole image at once. */
static void whole_gradient(const struct fv_model *m, const struct fv_objective *o, int h, int w,
                           const float *x, float *dx, size_t count) {
    struct fv_plan p;
    struct fv_error err = {0};
    int top = fv_objective_top(o);
    if (fv_plan_init_upto(&p, m, 1, h, w, FV_PLAN_GRAD | FV_PLAN_FUSE, top, &err)) fail_msg("%s", err.msg);
    memcpy(p.x, x, count * sizeof *x);
    fv_forward(&p, top);
    fv_grad_zero(&p);
    fv_objective_seed(o, &p, 0, 1.0f);
    fv_backward(&p, top);
    memcpy(dx, p.dx, count * sizeof *dx);
    fv_plan_free(&p);
}

/* The same band by band; returns the number of bands. */
static int band_gradient(const struct fv_model *m, const struct fv_objective *o, int h, int w, int c,
                         int rows, const float *x, float *dx, size_t count) {
    struct fv_bands b;
    struct fv_plan p;
    struct fv_error err = {0};
    int top = fv_objective_top(o);
    assert_int_equal(fv_bands_make(m, top, h, w, rows, &b, &err), FV_OK);
    if (b.n == 0) return 0;
    assert_true(b.rows >= rows && b.rows < h);
    if (fv_plan_init_upto(&p, m, 1, b.rows, w, FV_PLAN_GRAD | FV_PLAN_FUSE, top, &err)) fail_msg("%s", err.msg);
    memset(dx, 0, count * sizeof *dx);
    size_t row = (size_t)w * (size_t)c, owned = 0;
    for (int i = 0; i < b.n; i++) {
        const struct fv_band *bd = &b.band[i];
        assert_true(bd->y0 >= 0 && bd->y0 + b.rows <= h && bd->r0 < bd->r1);
        owned += (size_t)(bd->r1 - bd->r0);
        memcpy(p.x, x + (size_t)bd->y0 * row, (size_t)b.rows * row * sizeof *x);
        fv_forward(&p, top);
        fv_grad_zero(&p);
        fv_objective_seed_band(o, &p, 0, 1.0f, bd, b.top_h);
        fv_backward(&p, top);
        for (size_t k = 0; k < (size_t)b.rows * row; k++) dx[(size_t)bd->y0 * row + k] += p.dx[k];
    }
    assert_int_equal(owned, (size_t)b.top_h); /* every row of the layer, once */
    int n = b.n;
    fv_plan_free(&p);
    fv_bands_free(&b);
    return n;
}

static void test_bands_match_whole(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const struct band_case *bc = &cases[k];
        struct fv_model m;
        load(&m, bc->model);
        struct fv_objective o;
        struct fv_error err = {0};
        if (fv_objective_parse(bc->objective, &m, &o, &err)) fail_msg("%s", err.msg);
        assert_true(fv_objective_bands_ok(&o, fv_objective_top(&o)));
        int ih, iw, c;
        fv_model_input_hwc(&m, &ih, &iw, &c);
        size_t count = (size_t)bc->h * (size_t)bc->w * (size_t)c;
        float *x = malloc(count * sizeof *x), *whole = malloc(count * sizeof *whole),
              *banded = malloc(count * sizeof *banded);
        assert_true(x && whole && banded);
        fill_uniform(x, count, 7 + k, -1.0f, 1.0f);
        whole_gradient(&m, &o, bc->h, bc->w, x, whole, count);
        int tried = 0;
        for (int rows = 7; rows < bc->h; rows += 5) {
            int n = band_gradient(&m, &o, bc->h, bc->w, c, rows, x, banded, count);
            if (n < 2) continue; /* too few rows for the network's reach: refused, or one band */
            double e = rel_err_f32(banded, whole, count);
            printf("  %-15s %-26s %dx%d, %2d rows: %d bands, rel err %.2e\n", bc->model, bc->objective,
                   bc->h, bc->w, rows, n, e);
            if (!(e <= 1e-5))
                fail_msg("%s %s: %d bands of %d rows: gradient differs from the whole image's by %.2e",
                         bc->model, bc->objective, n, rows, e);
            tried++;
        }
        assert_true(tried >= 2);
        free(x), free(whole), free(banded);
        fv_model_free(&m);
    }
}

/* Layers that mix rows: no bands (the caller runs the whole image). */
static void test_bands_refused(void **state) {
    (void)state;
    static const struct { const char *model, *layer; } refused[] = {
        {"cl_wide", "dense_1"},                /* Flatten, Dense */
        {"cl_merge", "concatenate_2"},         /* joined along the rows */
        {"cl_pad_crop_up", "up_sampling2d_1"}, /* nearest upsampling */
    };
    for (size_t k = 0; k < sizeof refused / sizeof refused[0]; k++) {
        struct fv_model m;
        load(&m, refused[k].model);
        int top = fv_model_find(&m, refused[k].layer), ih, iw, c;
        assert_true(top >= 0);
        fv_model_input_hwc(&m, &ih, &iw, &c);
        struct fv_bands b;
        struct fv_error err = {0};
        int h = ih > 0 ? ih : 40, w = iw > 0 ? iw : 9; /* a size the layers after the mixing one take */
        assert_int_equal(fv_bands_make(&m, top, h, w, h / 3, &b, &err), FV_OK);
        if (b.n) fail_msg("%s: %d bands up to %s", refused[k].model, b.n, refused[k].layer);
        fv_model_free(&m);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bands_match_whole),
        cmocka_unit_test(test_bands_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
