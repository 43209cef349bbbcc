/* Keras 3 native files through every route a user has: the .keras archive,
 * the folder it unzips to, and *.weights.h5 + --arch config.json.
 *
 * - tests/data/keras3/ (tests/tools/make_keras3_fixtures.py, written in the
 *   Keras 3.15 layout without Keras): output and inner layers against PyTorch
 *   float64 references (max|a-b|/max|b| <= 1e-5), input gradients of a class
 *   logit and a filter objective through the objective grammar (<= 1e-4);
 * - the real Keras 3.15.1 archive in ../shared/keras3 against its independent
 *   expected outputs (1e-4 relative), through the same three routes (the test
 *   unpacks the archive itself);
 * - bad archives: one error line naming the file and the problem, exit 1. */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "featviz/formats.h"
#include "featviz/objective.h"
#include "formats/keras/zip.h"

enum route { ROUTE_KERAS, ROUTE_FOLDER, ROUTE_WEIGHTS, N_ROUTES };
static const char *route_name[] = {"keras", "folder", "weights"};

static json_t *manifest(void) {
    static json_t *m;
    if (!m) {
        json_error_t jerr;
        m = json_load_file(data_path("keras3/manifest.json"), 0, &jerr);
        if (!m) fail_msg("manifest.json: %s", jerr.text);
    }
    return m;
}

static const char *k3_path(const char *file) {
    char rel[512];
    snprintf(rel, sizeof rel, "keras3/%s", file);
    return data_path(rel);
}

static float *load_ref(const char *file, struct test_npy *a) {
    const char *msg = test_npy_read(k3_path(file), a);
    if (msg) fail_msg("%s: %s", file, msg);
    float *f = malloc((a->count ? a->count : 1) * sizeof *f);
    assert_non_null(f);
    for (size_t i = 0; i < a->count; i++) f[i] = (float)a->data[i];
    return f;
}

static void load_route(struct fv_model *m, const json_t *routes, enum route r) {
    struct fv_load_opts o = {.flip_kernels = -1};
    const char *key = route_name[r];
    char arch[1024];
    if (r == ROUTE_WEIGHTS) {
        snprintf(arch, sizeof arch, "%s", k3_path(json_string_value(json_object_get(routes, "arch"))));
        o.arch_json = arch;
    }
    const char *file = json_string_value(json_object_get(routes, key));
    assert_non_null(file);
    char path[1024];
    snprintf(path, sizeof path, "%s", k3_path(file));
    struct fv_error err = {0};
    if (fv_model_load(m, path, &o, &err) != FV_OK) fail_msg("%s (%s route): %s", file, key, err.msg);
}

/* Manifest layer keys "name@k" mean the k-th call of a shared layer, which
 * featviz names name, name@1, ... */
static int find_layer(const struct fv_model *m, const char *key) {
    char name[256];
    snprintf(name, sizeof name, "%s", key);
    char *at = strchr(name, '@');
    if (at && !strcmp(at, "@0")) *at = 0;
    return fv_model_find(m, name);
}

static int compare(const char *what, const float *got, const double *ref, size_t n, double tol) {
    double e = rel_err_f64(got, ref, n);
    int ok = e <= tol;
    printf("    %-40s rel err %.2e%s\n", what, e, ok ? "" : "  <-- FAILS");
    return ok;
}

static int check_fixture(const char *name, const json_t *fx, enum route r) {
    const json_t *tol = json_object_get(manifest(), "tolerance");
    double fwd_tol = json_real_value(json_object_get(tol, "forward_rel"));
    double grad_tol = json_real_value(json_object_get(tol, "grad_rel"));
    printf("  %s via %s\n", name, route_name[r]);
    struct fv_model m;
    load_route(&m, json_object_get(fx, "routes"), r);
    struct test_npy x;
    float *xin = load_ref(json_string_value(json_object_get(fx, "input")), &x);
    assert_int_equal(x.rank, 4);
    int n = (int)x.dims[0], h = (int)x.dims[1], w = (int)x.dims[2];
    struct fv_plan p;
    struct fv_error err = {0};
    if (fv_plan_init(&p, &m, n, h, w, FV_PLAN_GRAD, &err)) fail_msg("%s: %s", name, err.msg);
    p.escape_relu = 0;
    fv_plan_write_input(&p, xin);
    fv_forward(&p, -1);
    int bad = 0;

    /* forward: inner layers, then the output */
    const char *key;
    const json_t *file;
    json_object_foreach((json_t *)json_object_get(fx, "layers"), key, file) {
        int t = find_layer(&m, key);
        if (t < 0) fail_msg("%s: no layer '%s'", name, key);
        struct test_npy ref;
        free(load_ref(json_string_value(file), &ref));
        size_t count = (size_t)n * fv_shape_count(&p.io[t].out);
        if (count != ref.count) fail_msg("%s: '%s' has %zu values, reference %zu", name, key, count, ref.count);
        float *out = malloc(count * sizeof *out);
        fv_plan_read_keras(&p, t, 0, out);
        bad += !compare(key, out, ref.data, count, fwd_tol);
        free(out);
        test_npy_free(&ref);
    }
    struct test_npy ref;
    free(load_ref(json_string_value(json_object_get(fx, "output")), &ref));
    size_t count = (size_t)n * fv_shape_count(&p.io[m.output].out);
    assert_int_equal(count, ref.count);
    float *out = malloc(count * sizeof *out);
    fv_plan_read_keras(&p, m.output, 0, out);
    bad += !compare("output", out, ref.data, count, fwd_tol);
    free(out);
    test_npy_free(&ref);

    /* gradients through the objective grammar, as the optimizer seeds them */
    size_t i;
    const json_t *obj;
    json_array_foreach(json_object_get(fx, "objectives"), i, obj) {
        const char *text = json_string_value(json_object_get(obj, "objective"));
        struct fv_objective o;
        if (fv_objective_parse(text, &m, &o, &err)) fail_msg("%s: %s", name, err.msg);
        fv_forward(&p, -1);
        fv_grad_zero(&p);
        for (int k = 0; k < n; k++) fv_objective_seed(&o, &p, k, 1.0f);
        fv_backward(&p, fv_objective_top(&o));
        struct test_npy g;
        free(load_ref(json_string_value(json_object_get(obj, "file")), &g));
        assert_int_equal(g.count, x.count);
        float *dx = malloc(x.count * sizeof *dx);
        fv_plan_input_to_keras(&p, p.dx, dx);
        char what[128];
        snprintf(what, sizeof what, "d %s / d input", text);
        bad += !compare(what, dx, g.data, x.count, grad_tol);
        free(dx);
        test_npy_free(&g);
    }
    fv_plan_free(&p);
    fv_model_free(&m);
    free(xin);
    test_npy_free(&x);
    return bad;
}

static void test_fixtures(void **state) {
    (void)state;
    int bad = 0;
    const char *name;
    const json_t *fx;
    json_object_foreach((json_t *)json_object_get(manifest(), "fixtures"), name, fx)
        for (int r = 0; r < N_ROUTES; r++) bad += check_fixture(name, fx, (enum route)r);
    if (bad) fail_msg("%d comparisons with the references failed", bad);
}

/* The graph of the nested fixture: the nested model is addressable by name
 * (its output) and `info` shows it with its layers indented below. */
static void test_nested_names(void **state) {
    (void)state;
    const json_t *fx = json_object_get(json_object_get(manifest(), "fixtures"), "k3_nested_mobilenet");
    struct fv_model m;
    load_route(&m, json_object_get(fx, "routes"), ROUTE_KERAS);
    int t = fv_model_find(&m, "mobilenetv2_mini");
    assert_true(t >= 0);
    assert_string_equal(m.layers[t].name, "out_relu");
    assert_int_equal(fv_model_find(&m, "mobilenetv2_mini/block_1_add"), fv_model_find(&m, "block_1_add"));
    assert_int_equal(fv_model_find(&m, "nothere/block_1_add"), -1);
    fv_model_free(&m);
    char *out = NULL;
    int rc = run_capture(&out, "%s info %s", FV_BINARY, k3_path("k3_nested_mobilenet.keras"));
    assert_int_equal(rc, 0);
    printf("%s", out);
    assert_non_null(strstr(out, "Keras 3 archive, written by Keras 3.15.1"));
    assert_non_null(strstr(out, "\nmobilenetv2_mini (Functional)"));
    assert_non_null(strstr(out, "\n  block_1_add (Add)"));
    free(out);
}

/* ../shared/keras3: the real archive, then the folder and the weights + config
 * the test unpacks from it (featviz itself never extracts). */
static void unpack(const char *archive, const char *dir) {
    struct fv_zip *z;
    struct fv_error err = {0};
    assert_int_equal(fv_zip_open(&z, archive, &err), FV_OK);
    mkdir(dir, 0755);
    const char *names[] = {"config.json", "metadata.json", "model.weights.h5"};
    for (int i = 0; i < 3; i++) {
        void *buf;
        size_t len;
        assert_int_equal(fv_zip_read(z, names[i], (size_t)1 << 30, &buf, &len, &err), FV_OK);
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(buf, 1, len, f), len);
        fclose(f);
        free(buf);
    }
    fv_zip_close(z);
}

static void test_real_keras3(void **state) {
    (void)state;
    const char *archive = shared_path("keras3/mnist_cnn_keras3.15.1.keras");
    const char *dir = tmp_path("mnist_cnn_keras3_unzipped");
    unpack(archive, dir);
    char weights[1024], arch[1024];
    snprintf(weights, sizeof weights, "%s/model.weights.h5", dir);
    snprintf(arch, sizeof arch, "%s/config.json", dir);
    char *expected = read_text(shared_path("keras3/expected/mnist_cnn_keras3.15.1.output.txt"), NULL);
    assert_non_null(expected);
    const char *paths[] = {archive, dir, weights};
    for (int r = 0; r < N_ROUTES; r++) {
        struct fv_load_opts o = {.flip_kernels = -1, .arch_json = r == ROUTE_WEIGHTS ? arch : NULL};
        struct fv_model m;
        struct fv_error err = {0};
        if (fv_model_load(&m, paths[r], &o, &err)) fail_msg("%s: %s", paths[r], err.msg);
        struct fv_plan p;
        assert_int_equal(fv_plan_init(&p, &m, 1, 28, 28, 0, &err), FV_OK);
        for (char *line = expected; line && *line;) {
            char input[64];
            int used = 0;
            if (sscanf(line, "%63s%n", input, &used) != 1) break;
            double want[10];
            const char *q = line + used;
            for (int k = 0; k < 10; k++) {
                char *end;
                want[k] = strtod(q, &end);
                q = end;
            }
            char rel[128];
            snprintf(rel, sizeof rel, "keras3/expected/input_%s.npy", input);
            struct test_npy x;
            assert_null(test_npy_read(shared_path(rel), &x));
            assert_int_equal(x.count, 28 * 28);
            float xin[28 * 28], y[10];
            for (int k = 0; k < 28 * 28; k++) xin[k] = (float)x.data[k];
            fv_plan_write_input(&p, xin);
            fv_forward(&p, -1);
            fv_plan_read_keras(&p, m.output, 0, y);
            char what[96];
            snprintf(what, sizeof what, "real 3.15.1 %s via %s", input, route_name[r]);
            assert_true(compare(what, y, want, 10, 1e-4));
            test_npy_free(&x);
            line = strchr(line, '\n');
            if (line) line++;
        }
        fv_plan_free(&p);
        fv_model_free(&m);
    }
    free(expected);
}

/* Bad archives: fv_model_load's one line, and the command line's exit 1
 * with that one line, nothing written, quickly. */
static const struct {
    const char *file;
    const char *says[2];
} bad_cases[] = {
    {"truncated.keras", {"truncated.keras", "zip"}},
    {"no_config.keras", {"no_config.keras", "no config.json"}},
    {"no_weights.keras", {"no_weights.keras", "no model.weights.h5"}},
    {"bad_json.keras", {"bad_json.keras", "config.json is not valid JSON"}},
    {"evil_path.keras", {"evil_path.keras", "'../evil' points outside the archive"}},
    {"shape_mismatch.keras", {"layers/conv2d/vars/0", "has shape (3,3,2,5)"}},
    {"missing_layer_weights.keras", {"'features'", "layers/conv2d_1/vars' is missing"}},
    {"custom_layer.keras", {"layer 'my_layer' has class 'MyLayer'", "custom layers are not supported"}},
    {"zip_bomb_declared.keras", {"zip_bomb_declared.keras", "model.weights.h5 declares 3221225472 bytes"}},
    {"zip_bomb_hidden.keras", {"zip_bomb_hidden.keras", "model.weights.h5"}},
};

static void test_bad_archives(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "bad/%s", bad_cases[i].file);
        const char *path = k3_path(rel);
        struct fv_model m;
        struct fv_error err = {0};
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int rc = fv_model_load(&m, path, NULL, &err);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        printf("  %-28s %.3f s: %s\n", bad_cases[i].file, s, err.msg);
        assert_int_not_equal(rc, FV_OK);
        for (int k = 0; k < 2; k++)
            if (!strstr(err.msg, bad_cases[i].says[k]))
                fail_msg("%s: message '%s' does not say '%s'", bad_cases[i].file, err.msg, bad_cases[i].says[k]);
        assert_null(strchr(err.msg, '\n'));
        char *out = NULL;
        const char *odir = tmp_path("bad_keras3_out");
        int code = run_capture(&out, "rm -rf %s; %s classes %s --steps 2 -o %s", odir, FV_BINARY, path, odir);
        assert_int_equal(code, 1);
        assert_non_null(out);
        assert_int_equal(strchr(out, '\n') - out, (long)strlen(out) - 1); /* one line */
        struct stat st;
        assert_int_not_equal(stat(odir, &st), 0); /* nothing written */
        free(out);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures),
        cmocka_unit_test(test_nested_names),
        cmocka_unit_test(test_real_keras3),
        cmocka_unit_test(test_bad_archives),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
