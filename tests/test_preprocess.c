/* Resizing and the preprocessing pipeline against float64 references made by
 * tests/tools/make_io_fixtures.py: torch (bilinear, adaptive_avg_pool2d),
 * numpy (cv2's nearest formula, fractional box filter), PIL mode "F"
 * (bicubic); and against the preprocessed inputs documented for the real
 * GTSRB models in ../shared/keras-real/expected (made with PIL / cv2 on uint8). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "featviz/preprocess.h"

static const char *io_path(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "io/%s", name);
    return data_path(rel);
}

static void load_npy(const char *name, struct fv_array *a) {
    struct fv_error err = {0};
    if (fv_npy_load(io_path(name), a, &err) != FV_OK) fail_msg("%s", err.msg);
}

/* An (H, W, C) .npy fixture as an image (takes over the data). */
static void load_image_npy(const char *name, struct fv_image *img) {
    struct fv_array a;
    load_npy(name, &a);
    assert_int_equal(a.rank, 3);
    img->h = (int)a.dims[0];
    img->w = (int)a.dims[1];
    img->c = (int)a.dims[2];
    img->data = a.data;
}

static double max_abs(const float *x, const float *ref, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)x[i] - (double)ref[i]);
        if (d > m || isnan(d)) m = isnan(d) ? (double)INFINITY : d;
    }
    return m;
}

/* Resizes src to the size of the reference and compares. */
static void check_resize(const char *src_name, enum fv_resize how, const char *ref_name,
                         double tol) {
    struct fv_image src, out = {0, 0, 0, NULL};
    load_image_npy(src_name, &src);
    struct fv_array ref;
    load_npy(ref_name, &ref);
    struct fv_error err = {0};
    if (fv_image_resize(&src, (int)ref.dims[0], (int)ref.dims[1], how, &out, &err) != FV_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(out.h, (int)ref.dims[0]);
    assert_int_equal(out.w, (int)ref.dims[1]);
    assert_int_equal(out.c, src.c);
    double e = max_abs(out.data, ref.data, ref.count);
    if (e > tol) fail_msg("%s: max abs error %g > %g", ref_name, e, tol);
    fv_image_free(&src);
    fv_image_free(&out);
    fv_array_free(&ref);
}

/* Values are 0..255; float32 arithmetic against float64 references. */
#define TOL 2e-4

static void test_bilinear(void **state) {
    (void)state;
    static const char *const refs[] = {"rs_bilinear_5x7.npy",  "rs_bilinear_20x17.npy",
                                       "rs_bilinear_13x11.npy", "rs_bilinear_26x22.npy",
                                       "rs_bilinear_7x30.npy", "rs_bilinear_1x1.npy"};
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++)
        check_resize("rs_src.npy", FV_RESIZE_BILINEAR, refs[i], TOL);
    check_resize("rs_srcg.npy", FV_RESIZE_BILINEAR, "rs_bilinear_g_4x5.npy", TOL);
    check_resize("rs_src1.npy", FV_RESIZE_BILINEAR, "rs_bilinear_1_4x3.npy", TOL);
}

static void test_nearest(void **state) {
    (void)state;
    static const char *const refs[] = {"rs_nearest_5x7.npy", "rs_nearest_20x17.npy",
                                       "rs_nearest_4x4.npy", "rs_nearest_39x33.npy"};
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++)
        check_resize("rs_src.npy", FV_RESIZE_NEAREST, refs[i], 0.0);
}

static void test_area(void **state) {
    (void)state;
    check_resize("rs_src2.npy", FV_RESIZE_AREA, "rs_area2_4x3.npy", TOL); /* adaptive_avg_pool2d */
    static const char *const refs[] = {"rs_area_5x4.npy", "rs_area_4x7.npy", "rs_area_13x2.npy",
                                       "rs_area_20x17.npy", "rs_area_5x17.npy"};
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++)
        check_resize("rs_src.npy", FV_RESIZE_AREA, refs[i], TOL);
}

static void test_bicubic(void **state) {
    (void)state;
    static const char *const refs[] = {"rs_bicubic_5x7.npy",   "rs_bicubic_20x17.npy",
                                       "rs_bicubic_7x30.npy",  "rs_bicubic_30x30.npy",
                                       "rs_bicubic_13x11.npy", "rs_bicubic_3x2.npy"};
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++)
        check_resize("rs_src.npy", FV_RESIZE_BICUBIC, refs[i], TOL);
}

static void test_resize_errors(void **state) {
    (void)state;
    float px[3] = {1, 2, 3};
    struct fv_image src = {1, 1, 3, px}, out = {0, 0, 0, NULL};
    struct fv_error err = {0};
    assert_int_equal(fv_image_resize(&src, 0, 4, FV_RESIZE_BILINEAR, &out, &err), FV_ERR_USAGE);
    assert_int_equal(fv_image_resize(&src, 4, -1, FV_RESIZE_AREA, &out, &err), FV_ERR_USAGE);
    assert_null(out.data);
    struct fv_image empty = {0, 0, 3, NULL};
    assert_int_not_equal(fv_image_resize(&empty, 4, 4, FV_RESIZE_NEAREST, &out, &err), FV_OK);
    assert_null(out.data);
}

/* ---- pipeline ---- */

static void check_pipeline(const struct fv_preproc *p, const char *src_name, int c,
                           const char *ref_name, double tol) {
    struct fv_image src;
    load_image_npy(src_name, &src);
    struct fv_array ref;
    load_npy(ref_name, &ref);
    assert_int_equal((int)ref.dims[2], c);
    float *out = malloc(ref.count * sizeof(float));
    struct fv_error err = {0};
    if (fv_preprocess(p, &src, (int)ref.dims[0], (int)ref.dims[1], c, out, &err) != FV_OK)
        fail_msg("%s", err.msg);
    double e = max_abs(out, ref.data, ref.count);
    if (e > tol) fail_msg("%s: max abs error %g > %g", ref_name, e, tol);
    free(out);
    fv_image_free(&src);
    fv_array_free(&ref);
}

static void test_pipeline(void **state) {
    (void)state;
    struct fv_preproc p;
    struct fv_error err = {0};
    fv_preproc_default(&p);
    check_pipeline(&p, "pp_src.npy", 3, "pp_default.npy", 1e-6);
    check_pipeline(&p, "pp_src.npy", 1, "pp_gray1.npy", 1e-6);
    check_pipeline(&p, "pp_srcg.npy", 3, "pp_g2rgb.npy", 1e-6);
    p.color = FV_COLOR_GRAY;
    check_pipeline(&p, "pp_src.npy", 3, "pp_gray3.npy", 1e-6);

    fv_preproc_default(&p);
    assert_int_equal(fv_preproc_mode(&p, "caffe", &err), FV_OK);
    assert_int_equal(p.color, FV_COLOR_BGR);
    check_pipeline(&p, "pp_src.npy", 3, "pp_caffe.npy", 1e-4);

    fv_preproc_default(&p);
    assert_int_equal(fv_preproc_mode(&p, "tf", &err), FV_OK);
    check_pipeline(&p, "pp_src.npy", 3, "pp_tf.npy", 1e-6);

    fv_preproc_default(&p);
    assert_int_equal(fv_preproc_mode(&p, "torch", &err), FV_OK);
    check_pipeline(&p, "pp_src.npy", 3, "pp_torch.npy", 1e-5);
    /* torch's means stay with their colours when the model wants BGR */
    fv_preproc_default(&p);
    p.color = FV_COLOR_BGR;
    assert_int_equal(fv_preproc_mode(&p, "torch", &err), FV_OK);
    check_pipeline(&p, "pp_src.npy", 3, "pp_torch_bgr.npy", 1e-5);

    /* "none" changes nothing */
    struct fv_preproc q;
    fv_preproc_default(&p);
    q = p;
    assert_int_equal(fv_preproc_mode(&p, "none", &err), FV_OK);
    assert_memory_equal(&p, &q, sizeof p);
    assert_int_equal(fv_preproc_mode(&p, "imagenet", &err), FV_ERR_USAGE);
    assert_non_null(strstr(err.msg, "imagenet"));
    assert_non_null(strstr(err.msg, "caffe"));
    assert_memory_equal(&p, &q, sizeof p);

    /* bad channel counts */
    struct fv_image src;
    load_image_npy("pp_src.npy", &src);
    float out[16];
    assert_int_equal(fv_preprocess(&p, &src, 2, 2, 2, out, &err), FV_ERR_SHAPE);
    fv_image_free(&src);
}

/* The inputs documented for the real GTSRB models, from the real PPM. */
static void check_real(const char *model, enum fv_resize how, enum fv_color color, float scale,
                       double tol) {
    const char *img_name = "gtsrb_00014_00002_00029";
    char rel[256];
    snprintf(rel, sizeof rel, "keras-real/images/%s.ppm", img_name);
    struct fv_image img;
    struct fv_error err = {0};
    if (fv_image_load(shared_path(rel), &img, &err) != FV_OK) fail_msg("%s", err.msg);
    snprintf(rel, sizeof rel, "keras-real/expected/%s__%s.input.f32", model, img_name);
    size_t len;
    char *ref = read_text(shared_path(rel), &len);
    assert_non_null(ref);
    assert_int_equal(len, 30 * 30 * 3 * sizeof(float));
    struct fv_preproc p;
    fv_preproc_default(&p);
    p.resize = how;
    p.color = color;
    p.scale = scale;
    float out[30 * 30 * 3], refv[30 * 30 * 3];
    memcpy(refv, ref, sizeof refv);
    free(ref);
    if (fv_preprocess(&p, &img, 30, 30, 3, out, &err) != FV_OK) fail_msg("%s", err.msg);
    double e = max_abs(out, refv, 30 * 30 * 3);
    if (e > tol) fail_msg("%s: max abs error %g > %g", model, e, tol);
    fv_image_free(&img);
}

static void test_real_models(void **state) {
    (void)state;
    /* PIL bicubic on uint8 (rounds between its passes), BGR, /255 */
    check_real("gtsrb_seq_keras3.8_bn_gap_30x30", FV_RESIZE_BICUBIC, FV_COLOR_BGR, 1.0f / 255.0f,
               1.0 / 255.0);
    /* cv2.resize bilinear on uint8 (fixed-point, rounded), 0..255 */
    check_real("gtsrb_seq_tfkeras2.4_bn_30x30", FV_RESIZE_BILINEAR, FV_COLOR_RGB, 1.0f, 1.0);
    check_real("gtsrb_seq_tfkeras2.1.6tf_avgpool_30x30_permuted_labels", FV_RESIZE_BILINEAR,
               FV_COLOR_BGR, 1.0f, 1.0);
}

static void test_deprocess(void **state) {
    (void)state;
    struct fv_image src;
    load_image_npy("pp_src.npy", &src); /* integers 0..255, RGB */
    size_t n = (size_t)src.h * (size_t)src.w;
    float *x = malloc(n * 3 * sizeof(float));
    unsigned char *back = malloc(n * 3);
    static const char *const modes[] = {"none", "caffe", "tf", "torch"};
    for (int color = 0; color < 2; color++) {
        for (size_t m = 0; m < 4; m++) {
            struct fv_preproc p;
            struct fv_error err = {0};
            fv_preproc_default(&p);
            p.color = color ? FV_COLOR_BGR : FV_COLOR_RGB;
            assert_int_equal(fv_preproc_mode(&p, modes[m], &err), FV_OK);
            assert_int_equal(fv_preprocess(&p, &src, src.h, src.w, 3, x, &err), FV_OK);
            fv_deprocess(&p, x, src.h, src.w, 3, back);
            for (size_t i = 0; i < n * 3; i++)
                if ((float)back[i] != src.data[i])
                    fail_msg("mode %s color %d: pixel %zu -> %d, was %g", modes[m], color, i,
                             back[i], (double)src.data[i]);
        }
    }
    /* gray model */
    struct fv_preproc p;
    fv_preproc_default(&p);
    float g[4] = {0.502f, -3.0f, 7.0f, NAN};
    unsigned char gb[4];
    fv_deprocess(&p, g, 2, 2, 1, gb);
    assert_int_equal(gb[0], 128); /* 128.01 */
    assert_int_equal(gb[1], 0);   /* clipped */
    assert_int_equal(gb[2], 255);
    assert_int_equal(gb[3], 0);   /* NaN */
    free(x);
    free(back);
    fv_image_free(&src);
}

static void test_parsers(void **state) {
    (void)state;
    struct fv_error err = {0};
    enum fv_resize r;
    static const struct {
        const char *s;
        enum fv_resize v;
    } rs[] = {{"bilinear", FV_RESIZE_BILINEAR},
              {"nearest", FV_RESIZE_NEAREST},
              {"area", FV_RESIZE_AREA},
              {"BICUBIC", FV_RESIZE_BICUBIC}};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(fv_resize_parse(rs[i].s, &r, &err), FV_OK);
        assert_int_equal(r, rs[i].v);
    }
    assert_int_equal(fv_resize_parse("lanczos", &r, &err), FV_ERR_USAGE);
    assert_non_null(strstr(err.msg, "lanczos"));
    assert_non_null(strstr(err.msg, "bilinear, nearest, area or bicubic"));

    enum fv_color c;
    assert_int_equal(fv_color_parse("rgb", &c, &err), FV_OK);
    assert_int_equal(c, FV_COLOR_RGB);
    assert_int_equal(fv_color_parse("BGR", &c, &err), FV_OK);
    assert_int_equal(c, FV_COLOR_BGR);
    assert_int_equal(fv_color_parse("gray", &c, &err), FV_OK);
    assert_int_equal(c, FV_COLOR_GRAY);
    assert_int_equal(fv_color_parse("grayscale", &c, &err), FV_OK);
    assert_int_equal(c, FV_COLOR_GRAY);
    assert_int_equal(fv_color_parse("yuv", &c, &err), FV_ERR_USAGE);
    assert_non_null(strstr(err.msg, "'yuv'"));
    assert_non_null(strstr(err.msg, "rgb, bgr or gray"));

    struct fv_preproc p;
    fv_preproc_default(&p);
    assert_int_equal(p.resize, FV_RESIZE_BILINEAR);
    assert_int_equal(p.color, FV_COLOR_RGB);
    assert_true(fabsf(p.scale - 1.0f / 255.0f) < 1e-9f);
    for (int i = 0; i < 3; i++) {
        assert_true(p.mean[i] == 0.0f);
        assert_true(p.std[i] == 1.0f);
    }
    assert_true(p.offset == 0.0f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bilinear),      cmocka_unit_test(test_nearest),
        cmocka_unit_test(test_area),          cmocka_unit_test(test_bicubic),
        cmocka_unit_test(test_resize_errors), cmocka_unit_test(test_pipeline),
        cmocka_unit_test(test_real_models),   cmocka_unit_test(test_deprocess),
        cmocka_unit_test(test_parsers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
