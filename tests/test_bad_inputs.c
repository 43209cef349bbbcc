/* Bad model files: one clear error naming the file (and the layer where
 * there is one), the right status, and no model left behind. The broken files
 * come from tests/tools/make_bad_models.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "featviz/formats.h"
#include "testutil.h"

static void expect_fail(const char *path, const struct fv_load_opts *o, int code, const char *w1,
                        const char *w2) {
    struct fv_model m;
    memset(&m, 0xAB, sizeof m);
    struct fv_error err = {0};
    int rc = fv_model_load(&m, path, o, &err);
    printf("%s -> %s\n", path, err.msg);
    assert_int_equal(rc, code);
    const char *base = strrchr(path, '/') + 1;
    assert_non_null(strstr(err.msg, base));
    if (w1) assert_non_null(strstr(err.msg, w1));
    if (w2) assert_non_null(strstr(err.msg, w2));
    assert_null(strchr(err.msg, '\n'));
    assert_int_equal(m.n_layers, 0); /* never a half-built model */
    assert_null(m.layers);
}

static void test_generated_bad_files(void **state) {
    (void)state;
    static const struct { const char *file; int code; const char *w1, *w2; } cases[] = {
        {"bad/no_model_config.h5", FV_ERR_FORMAT, "no model_config", NULL},
        {"bad/no_layer_names.h5", FV_ERR_FORMAT, "layer_names", NULL},
        {"bad/bad_json.h5", FV_ERR_FORMAT, "JSON", NULL},
        {"bad/weight_count.h5", FV_ERR_FORMAT, "conv2d_1", "expected 2"},
        {"bad/weight_shape.h5", FV_ERR_SHAPE, "conv2d_1", "(3,3,3,5)"},
        {"bad/dense_mismatch.h5", FV_ERR_SHAPE, "dense_1", "144"},
        {"bad/missing_group.h5", FV_ERR_FORMAT, "dense_1", "layer_names"},
        {"bad/huge_input.h5", FV_ERR_SHAPE, "16000000", NULL},
        {"bad/huge_kernel.h5", FV_ERR_FORMAT, "conv2d_1", "100000"},
        {"bad/unknown_layer.h5", FV_ERR_UNSUPPORTED, "lstm_1", "LSTM"},
        {"bad/missing_ref.h5", FV_ERR_FORMAT, "conv2d_2", "nonexistent_7"},
        {"bad/cycle.h5", FV_ERR_FORMAT, "cycle", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_fail(data_path(cases[i].file), NULL, cases[i].code, cases[i].w1, cases[i].w2);
}

static void test_valid_control(void **state) {
    (void)state; /* the files above differ from this one by one defect each */
    struct fv_model m;
    struct fv_error err = {0};
    assert_int_equal(fv_model_load(&m, data_path("bad/valid.h5"), NULL, &err), FV_OK);
    assert_int_equal(m.n_layers, 4);
    fv_model_free(&m);
}

static void test_not_hdf5_and_truncated(void **state) {
    (void)state;
    const char *txt = tmp_path("not_a_model.h5");
    FILE *f = fopen(txt, "w");
    fputs("this is not HDF5\n", f);
    fclose(f);
    expect_fail(txt, NULL, FV_ERR_FORMAT, "HDF5", NULL);

    size_t len;
    char *whole = read_text(shared_path("keras-real/gtsrb_seq_tfkeras2.4_bn_30x30.h5"), &len);
    assert_non_null(whole);
    const char *cut = tmp_path("truncated_model.h5");
    f = fopen(cut, "wb");
    fwrite(whole, 1, len / 2, f);
    fclose(f);
    free(whole);
    struct fv_model m;
    struct fv_error err = {0};
    int rc = fv_model_load(&m, cut, NULL, &err);
    printf("%s -> %s\n", cut, err.msg);
    assert_int_not_equal(rc, FV_OK);
    assert_non_null(strstr(err.msg, "truncated_model.h5"));
    assert_null(m.layers);

    expect_fail(tmp_path("does_not_exist.h5"), NULL, FV_ERR_IO, NULL, NULL);
}

static void test_weights_only_needs_arch(void **state) {
    (void)state;
    expect_fail(shared_path("keras-real/mnist_keras1_theano_th_weights_only.h5"), NULL, FV_ERR_USAGE, "--arch", NULL);
    struct fv_load_opts o = {.flip_kernels = -1, .arch_json = "/nonexistent/arch.json"};
    struct fv_model m;
    struct fv_error err = {0};
    assert_int_equal(fv_model_load(&m, shared_path("keras-real/mnist_keras1_theano_th_weights_only.h5"), &o, &err), FV_ERR_IO);
    assert_non_null(strstr(err.msg, "arch.json"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generated_bad_files),
        cmocka_unit_test(test_valid_control),
        cmocka_unit_test(test_not_hdf5_and_truncated),
        cmocka_unit_test(test_weights_only_needs_arch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
