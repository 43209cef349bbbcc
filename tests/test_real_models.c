/* The real Keras files of ../shared/keras-real: every one loads, its parameter
 * count equals the sum of its weight datasets (counted with h5py), and its
 * outputs reproduce the reference outputs stored beside it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "featviz/image.h"
#include "featviz/formats.h"
#include "featviz/preprocess.h"
#include "testutil.h"

#define KR "keras-real/"

static const struct fv_lambda_decl steering_lambda = {"lambda_1", 0, 1.0f / 127.5f, -1.0f};

static void load(struct fv_model *m, const char *file) {
    struct fv_load_opts o = {.flip_kernels = -1};
    char arch[512];
    if (strstr(file, "weights_only")) {
        snprintf(arch, sizeof arch, "%s", shared_path(KR "mnist_keras1_theano_th_weights_only.arch.json"));
        o.arch_json = arch;
    }
    if (strstr(file, "lambda")) o.lambdas = &steering_lambda, o.n_lambdas = 1;
    struct fv_error err = {0};
    int rc = fv_model_load(m, shared_path(file), &o, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, FV_OK);
}

static size_t total_params(const struct fv_model *m) {
    size_t n = 0;
    for (int i = 0; i < m->n_layers; i++) n += m->layers[i].params_trainable + m->layers[i].params_fixed;
    return n;
}

/* Runs one input given in Keras layout; returns the output (malloc'd). */
static float *run(const struct fv_model *m, const float *keras_x, int h, int w, size_t *n_out) {
    struct fv_plan p;
    struct fv_error err = {0};
    int rc = fv_plan_init(&p, m, 1, h, w, 0, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, FV_OK);
    fv_plan_write_input(&p, keras_x);
    fv_forward(&p, m->output);
    *n_out = fv_shape_count(&p.io[m->output].out);
    float *out = malloc(*n_out * sizeof *out);
    fv_plan_read_keras(&p, m->output, 0, out);
    fv_plan_free(&p);
    return out;
}

static double *read_numbers(const char *text, size_t *n) {
    double *v = malloc(1024 * sizeof *v);
    *n = 0;
    char *end;
    for (const char *c = text;;) {
        double x = strtod(c, &end);
        if (end == c) break;
        v[(*n)++] = x;
        c = end;
    }
    return v;
}

static void test_all_files_load_with_keras_param_counts(void **state) {
    (void)state;
    static const struct { const char *file; size_t params; int layers_min; } files[] = {
        {KR "devanagari_seq_keras2.1.5_listcfg_32x32x1.h5", 61605, 6},
        {KR "fer2013_func_keras2.0.5_sepconv_add_64x64x1.h5", 58423, 46},
        {KR "gtsrb_seq_keras3.8_bn_gap_30x30.h5", 197195, 17},
        {KR "gtsrb_seq_tfkeras2.1.6tf_avgpool_30x30_permuted_labels.h5", 164459, 10},
        {KR "gtsrb_seq_tfkeras2.4_bn_30x30.h5", 303083, 15},
        {KR "mnist_keras1_theano_th_weights_only.h5", 4968, 12},
        {KR "steering_seq_keras1.2.1_lambda_66x200.h5", 252219, 12},
        {KR "teachable_nested_mobilenetv2_tfkeras2.4_224.h5", 538708, 150},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        struct fv_model m;
        load(&m, files[i].file);
        assert_int_equal(total_params(&m), files[i].params);
        assert_true(m.n_layers >= files[i].layers_min);
        fv_model_free(&m);
    }
}

/* expected/<model>__<image>.input.f32 -> .output.txt, to 1e-4 */
static void test_reference_outputs(void **state) {
    (void)state;
    static const char *models[] = {"gtsrb_seq_keras3.8_bn_gap_30x30",
                                   "gtsrb_seq_tfkeras2.4_bn_30x30",
                                   "gtsrb_seq_tfkeras2.1.6tf_avgpool_30x30_permuted_labels"};
    static const char *images[] = {"gtsrb_00014_00002_00029", "gtsrb_00033_00002_00029"};
    for (int i = 0; i < 3; i++) {
        char file[256];
        snprintf(file, sizeof file, KR "%s.h5", models[i]);
        struct fv_model m;
        load(&m, file);
        for (int j = 0; j < 2; j++) {
            char in[256], out[256];
            snprintf(in, sizeof in, KR "expected/%s__%s.input.f32", models[i], images[j]);
            snprintf(out, sizeof out, KR "expected/%s__%s.output.txt", models[i], images[j]);
            size_t len;
            float *x = (float *)read_text(shared_path(in), &len);
            assert_non_null(x);
            assert_int_equal(len, 30 * 30 * 3 * sizeof(float));
            char *text = read_text(shared_path(out), NULL);
            assert_non_null(text);
            size_t n_ref, n_out;
            double *ref = read_numbers(text, &n_ref);
            float *y = run(&m, x, 30, 30, &n_out);
            assert_int_equal(n_out, 43);
            assert_int_equal(n_ref, 43);
            double e = rel_err_f64(y, ref, 43);
            printf("%s %s: rel err %.2e\n", models[i], images[j], e);
            assert_true(e < 1e-4);
            free(x), free(text), free(ref), free(y);
        }
        fv_model_free(&m);
    }
}

/* expected/constant_input_outputs.txt: all-0 and all-0.5 inputs. */
static void test_constant_inputs(void **state) {
    (void)state;
    char *text = read_text(shared_path(KR "expected/constant_input_outputs.txt"), NULL);
    assert_non_null(text);
    int checked = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char file[200];
        double value;
        int h, w, c;
        if (sscanf(line, "%199s input=all(%lf) shape=(%d, %d, %d)", file, &value, &h, &w, &c) != 5) continue;
        const char *arrow = strstr(line, "->");
        assert_non_null(arrow);
        size_t n_ref, n_out;
        double *ref = read_numbers(arrow + 2, &n_ref);
        char path[256];
        snprintf(path, sizeof path, KR "%s", file);
        struct fv_model m;
        load(&m, path);
        size_t n_in = (size_t)h * w * c;
        float *x = malloc(n_in * sizeof *x);
        for (size_t k = 0; k < n_in; k++) x[k] = (float)value;
        float *y = run(&m, x, h, w, &n_out);
        assert_int_equal(n_out, n_ref);
        double e = rel_err_f64(y, ref, n_ref);
        printf("%s all(%g): rel err %.2e\n", file, value, e);
        assert_true(e < 1e-4);
        free(x), free(y), free(ref);
        fv_model_free(&m);
        checked++;
    }
    free(text);
    assert_true(checked >= 14);
}

/* The Keras 1 Theano file reproduces the output its repository documents
 * (example/mnist_cnn_one_iteration.py in pplonski/keras2cpp). */
static void test_keras1_theano_documented_output(void **state) {
    (void)state;
    static const double documented[10] = {0.03729606, 0.00783805, 0.06588034, 0.21728528, 0.01093729,
                                          0.34730983, 0.01350389, 0.02174525, 0.26624694, 0.01195715};
    struct fv_model m;
    load(&m, KR "mnist_keras1_theano_th_weights_only.h5");
    assert_int_equal(m.in_rank, 3);
    assert_int_equal(m.in_dims[0], 1); /* (1, 28, 28): channels first */
    size_t len, n_out;
    float *x = (float *)read_text(shared_path(KR "expected/mnist_keras1_theano_th_weights_only.sample.input.f32"), &len);
    assert_int_equal(len, 28 * 28 * sizeof(float));
    float *y = run(&m, x, 28, 28, &n_out);
    assert_int_equal(n_out, 10);
    double e = rel_err_f64(y, documented, 10);
    printf("keras1 theano: rel err %.2e\n", e);
    assert_true(e < 1e-4);
    free(x), free(y);
    fv_model_free(&m);
}

/* With each model's documented preprocessing, the 8 real images get the
 * top-1 classes of expected/gtsrb_top1.csv. */
static void test_real_images_top1(void **state) {
    (void)state;
    static const struct { const char *model; enum fv_color color; enum fv_resize resize; float scale; } models[] = {
        {"gtsrb_seq_keras3.8_bn_gap_30x30.h5", FV_COLOR_BGR, FV_RESIZE_BICUBIC, 1.0f / 255},
        {"gtsrb_seq_tfkeras2.4_bn_30x30.h5", FV_COLOR_RGB, FV_RESIZE_BILINEAR, 1.0f},
        {"gtsrb_seq_tfkeras2.1.6tf_avgpool_30x30_permuted_labels.h5", FV_COLOR_BGR, FV_RESIZE_BILINEAR, 1.0f},
    };
    char *csv = read_text(shared_path(KR "expected/gtsrb_top1.csv"), NULL);
    assert_non_null(csv);
    int checked = 0;
    for (size_t i = 0; i < 3; i++) {
        char path[256];
        snprintf(path, sizeof path, KR "%s", models[i].model);
        struct fv_model m;
        load(&m, path);
        struct fv_preproc pp;
        fv_preproc_default(&pp);
        pp.color = models[i].color, pp.resize = models[i].resize, pp.scale = models[i].scale;
        char *copy = strdup(csv), *save = NULL;
        for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            char model[128], image[64];
            int gt, top1;
            double prob;
            if (sscanf(line, "%127[^,],%63[^,],%d,%d,%lf", model, image, &gt, &top1, &prob) != 5) continue;
            if (strcmp(model, models[i].model)) continue;
            char img_path[256];
            snprintf(img_path, sizeof img_path, KR "images/%s.ppm", image);
            struct fv_image img;
            struct fv_error err = {0};
            assert_int_equal(fv_image_load(shared_path(img_path), &img, &err), FV_OK);
            float x[30 * 30 * 3];
            assert_int_equal(fv_preprocess(&pp, &img, 30, 30, 3, x, &err), FV_OK);
            fv_image_free(&img);
            size_t n;
            float *y = run(&m, x, 30, 30, &n);
            int best = 0;
            for (size_t k = 1; k < n; k++)
                if (y[k] > y[best]) best = (int)k;
            printf("%s %s: top-1 %d (reference %d, p=%.3f vs %.3f)\n", models[i].model, image, best, top1, (double)y[best], prob);
            assert_int_equal(best, top1);
            free(y);
            checked++;
        }
        free(copy);
        fv_model_free(&m);
    }
    free(csv);
    assert_int_equal(checked, 24);
}

/* A Lambda is refused with a message that says how to go on; declared, it loads. */
static void test_lambda_refused_then_declared(void **state) {
    (void)state;
    struct fv_model m;
    struct fv_error err = {0};
    struct fv_load_opts o = {.flip_kernels = -1};
    int rc = fv_model_load(&m, shared_path(KR "steering_seq_keras1.2.1_lambda_66x200.h5"), &o, &err);
    assert_int_equal(rc, FV_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "lambda_1"));
    assert_non_null(strstr(err.msg, "--lambda"));
    assert_non_null(strstr(err.msg, "steering_seq_keras1.2.1_lambda_66x200.h5"));
    struct fv_lambda_decl id = {"lambda_1", 1, 0, 0};
    o.lambdas = &id, o.n_lambdas = 1;
    assert_int_equal(fv_model_load(&m, shared_path(KR "steering_seq_keras1.2.1_lambda_66x200.h5"), &o, &err), FV_OK);
    fv_model_free(&m);
}

/* A nested model (Sequential > Sequential > Functional MobileNetV2): the
 * inner layers are reachable by name and batches give per-image results. */
static void test_nested_batch(void **state) {
    (void)state;
    struct fv_model m;
    load(&m, KR "teachable_nested_mobilenetv2_tfkeras2.4_224.h5");
    assert_true(fv_model_find(&m, "Conv1") >= 0);
    assert_true(fv_model_find(&m, "block_16_project_BN") >= 0);
    struct fv_plan p;
    struct fv_error err = {0};
    assert_int_equal(fv_plan_init(&p, &m, 2, 224, 224, 0, &err), FV_OK);
    size_t per = 224 * 224 * 3;
    for (size_t k = 0; k < per; k++) p.x[k] = 0.0f, p.x[per + k] = 0.5f;
    fv_forward(&p, -1);
    float y[8];
    fv_plan_read_keras(&p, m.output, 0, y);
    static const double ref0[4] = {0.410291, 0.442476, 0.00206191, 0.145172};
    static const double ref5[4] = {0.110829, 0.0903466, 0.00482894, 0.793995};
    assert_true(rel_err_f64(y, ref0, 4) < 1e-4);
    assert_true(rel_err_f64(y + 4, ref5, 4) < 1e-4);
    fv_plan_free(&p);
    fv_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_files_load_with_keras_param_counts),
        cmocka_unit_test(test_reference_outputs),
        cmocka_unit_test(test_constant_inputs),
        cmocka_unit_test(test_keras1_theano_documented_output),
        cmocka_unit_test(test_real_images_top1),
        cmocka_unit_test(test_lambda_refused_then_declared),
        cmocka_unit_test(test_nested_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
