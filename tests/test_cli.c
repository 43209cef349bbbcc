/* The featviz command line, end to end: exit codes (0 ok, 1 runtime, 2 usage),
 * one-line errors, and outputs compared with independent references (the
 * golden PyTorch fixtures in tests/data/golden). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "featviz/image.h"
#include "testutil.h"

#define GOLD(x) data_path("golden/" x)

static int lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static void expect_lines(int want, const char *says, const char *cmd, int one_line) {
    char *out = NULL;
    int rc = run_capture(&out, "%s", cmd);
    printf("$ %s\n%s(exit %d)\n", cmd, out, rc);
    assert_int_equal(rc, want);
    if (says) assert_non_null(strstr(out, says));
    if (want != 0 && one_line) assert_int_equal(lines(out), 1); /* one clear line */
    free(out);
}

static void expect(int want, const char *says, const char *cmd) { expect_lines(want, says, cmd, 1); }

static void test_exit_codes(void **state) {
    (void)state;
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s", FV_BINARY);
    expect_lines(2, "usage: featviz COMMAND", cmd, 0);
    snprintf(cmd, sizeof cmd, "%s nosuchcommand", FV_BINARY);
    char *out = NULL;
    assert_int_equal(run_capture(&out, "%s", cmd), 2);
    free(out);
    snprintf(cmd, sizeof cmd, "%s predict %s", FV_BINARY, GOLD("cl_convnet.h5"));
    expect(2, "needs inputs", cmd);
    snprintf(cmd, sizeof cmd, "%s predict %s %s --top nope", FV_BINARY, GOLD("cl_convnet.h5"), GOLD("cl_convnet.input.npy"));
    expect(2, "not an integer", cmd);
    snprintf(cmd, sizeof cmd, "%s predict %s %s --colour rgb", FV_BINARY, GOLD("cl_convnet.h5"), GOLD("cl_convnet.input.npy"));
    expect(2, "unknown option '--colour'", cmd);
    snprintf(cmd, sizeof cmd, "%s predict %s %s --resize cubic", FV_BINARY, GOLD("cl_convnet.h5"), GOLD("cl_convnet.input.npy"));
    expect(2, "bilinear,nearest,area,bicubic", cmd);
    snprintf(cmd, sizeof cmd, "%s info %s", FV_BINARY, data_path("bad/weight_count.h5"));
    expect(1, "conv2d_1", cmd);
    snprintf(cmd, sizeof cmd, "%s predict %s %s", FV_BINARY, GOLD("cl_convnet.h5"), GOLD("cf_convnet.input.npy"));
    expect(1, "cf_convnet.input.npy", cmd); /* an array of the wrong shape */
    snprintf(cmd, sizeof cmd, "%s activations %s %s --layers nope --npy -o %s", FV_BINARY, GOLD("cl_convnet.h5"),
             GOLD("cl_convnet.input.npy"), tmp_path("acts_bad"));
    expect(2, "no layer named 'nope'", cmd);
    snprintf(cmd, sizeof cmd, "%s info --help", FV_BINARY);
    assert_int_equal(run_capture(&out, "%s", cmd), 0);
    assert_non_null(strstr(out, "usage: featviz info"));
    free(out);
}

/* predict's top-1 is the argmax of the golden PyTorch output. */
static void test_predict_matches_reference(void **state) {
    (void)state;
    static const char *models[] = {"cl_convnet", "cf_convnet", "cl_merge", "cf_sep_dw"};
    for (int i = 0; i < 4; i++) {
        char h5[512], in[512], ref[512];
        snprintf(h5, sizeof h5, "golden/%s.h5", models[i]);
        snprintf(in, sizeof in, "golden/%s.input.npy", models[i]);
        snprintf(ref, sizeof ref, "golden/%s.output.npy", models[i]);
        char *out = NULL;
        assert_int_equal(run_capture(&out, "%s predict %s %s --top 1 --json", FV_BINARY, data_path(h5), data_path(in)), 0);
        struct fv_array a;
        struct fv_error err = {0};
        assert_int_equal(fv_npy_load(data_path(ref), &a, &err), FV_OK);
        size_t k = a.dims[1];
        const char *cur = out;
        for (size_t b = 0; b < a.dims[0]; b++) {
            size_t best = 0;
            for (size_t j = 1; j < k; j++)
                if (a.data[b * k + j] > a.data[b * k + best]) best = j;
            char want[64];
            snprintf(want, sizeof want, "\"class\": %zu,", best);
            cur = strstr(cur, "\"top\"");
            assert_non_null(cur);
            assert_true(!strncmp(strstr(cur, "\"class\""), want, strlen(want)));
            cur++;
        }
        fv_array_free(&a);
        free(out);
    }
}

/* activations --npy writes each layer in Keras layout; compare with the
 * golden per-layer fixtures (PyTorch float64). */
static void test_activations_npy(void **state) {
    (void)state;
    const char *dir = tmp_path("acts_cli");
    char *out = NULL;
    int rc = run_capture(&out, "%s activations %s %s --layers conv2d_2,flatten_1 --npy --no-png -o %s", FV_BINARY,
                         GOLD("cf_convnet.h5"), GOLD("cf_convnet.input.npy"), dir);
    printf("%s", out);
    free(out);
    assert_int_equal(rc, 0);
    static const char *layers[] = {"conv2d_2", "flatten_1"};
    for (int i = 0; i < 2; i++) {
        char got[1024], ref[256];
        snprintf(got, sizeof got, "%s/cf_convnet.input/%s.npy", dir, layers[i]);
        snprintf(ref, sizeof ref, "golden/cf_convnet.%s.npy", layers[i]);
        struct fv_array a, b;
        struct fv_error err = {0};
        assert_int_equal(fv_npy_load(got, &a, &err), FV_OK);
        assert_int_equal(fv_npy_load(data_path(ref), &b, &err), FV_OK);
        assert_int_equal(a.rank, b.rank);
        for (int d = 0; d < a.rank; d++) assert_int_equal(a.dims[d], b.dims[d]);
        double e = rel_err_f32(a.data, b.data, a.count);
        printf("%s: rel err %.2e\n", layers[i], e);
        assert_true(e < 1e-5);
        fv_array_free(&a);
        fv_array_free(&b);
    }
}

/* saliency --npy is the input gradient in the input's layout: for the
 * golden model the gradient of logit 2 of image 0 and 2 is in grad.npy. */
static void test_saliency_gradient(void **state) {
    (void)state;
    const char *npy = tmp_path("sal/grad.npy"), *png = tmp_path("sal/heat.png");
    char *out = NULL;
    int rc = run_capture(&out, "%s saliency %s %s --objective class:2 --npy %s -o %s", FV_BINARY, GOLD("cl_convnet.h5"),
                         GOLD("cl_convnet.input.npy"), npy, png);
    printf("%s", out);
    free(out);
    assert_int_equal(rc, 0);
    struct fv_array g, ref;
    struct fv_error err = {0};
    assert_int_equal(fv_npy_load(npy, &g, &err), FV_OK);
    assert_int_equal(fv_npy_load(GOLD("cl_convnet.grad.npy"), &ref, &err), FV_OK);
    assert_int_equal(g.count, ref.count);
    size_t per = g.count / 3;
    for (int img = 0; img < 3; img += 2) { /* images 0 and 2 have class 2 in the fixture */
        double e = rel_err_f32(g.data + img * per, ref.data + img * per, per);
        printf("image %d: rel err %.2e\n", img, e);
        assert_true(e < 1e-4);
    }
    fv_array_free(&g);
    fv_array_free(&ref);
    char p0[1024];
    snprintf(p0, sizeof p0, "%s", png);
    char *dot = strrchr(p0, '.');
    snprintf(dot, 64, "_cl_convnet.input_0.png");
    struct fv_image img;
    assert_int_equal(fv_image_load(p0, &img, &err), FV_OK);
    assert_true(img.w > 3 * 13);
    fv_image_free(&img);
}

/* Config files: errors name file:line and the key; the command line wins. */
static void test_config_errors(void **state) {
    (void)state;
    static const struct { const char *text, *says; } bad[] = {
        {"[model]\npath = %s\n\n[predict]\ntopp = 3\n", ":5: unknown key 'topp' in [predict]"},
        {"[model]\npath = %s\n[predict]\ntop = three\n", ":4: predict.top = 'three' is not an integer"},
        {"[model]\npath = %s\nresize = cubic\n", ":3: model.resize = 'cubic' is not one of"},
        {"[modle]\npath = %s\n", ":1: unknown section [modle]"},
        {"; comment\n[model]\npath = /nonexistent/model.h5%s\n", "/nonexistent/model.h5"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "bad%zu.ini", i);
        const char *ini = tmp_path(name);
        FILE *f = fopen(ini, "w");
        fprintf(f, bad[i].text, strstr(bad[i].text, "nonexistent") ? "" : GOLD("cl_convnet.h5"));
        fclose(f);
        char *out = NULL;
        int rc = run_capture(&out, "%s predict --config %s %s", FV_BINARY, ini, GOLD("cl_convnet.input.npy"));
        printf("%s", out);
        assert_int_not_equal(rc, 0);
        assert_non_null(strstr(out, bad[i].says));
        assert_int_equal(lines(out), 1);
        free(out);
    }
    /* the command line wins over the file */
    const char *ini = tmp_path("good.ini");
    FILE *f = fopen(ini, "w");
    fprintf(f, "[model]\npath = %s\n[predict]\ntop = 2\n", GOLD("cl_convnet.h5"));
    fclose(f);
    char *out = NULL;
    assert_int_equal(run_capture(&out, "%s predict --config %s %s --top 4", FV_BINARY, ini, GOLD("cl_convnet.input.npy")), 0);
    assert_int_equal(lines(out), 3 * 5); /* 3 inputs x (name + 4 classes) */
    free(out);
    assert_int_equal(run_capture(&out, "%s predict --config %s %s --set predict.top=1", FV_BINARY, ini, GOLD("cl_convnet.input.npy")), 0);
    assert_int_equal(lines(out), 3 * 2);
    free(out);
}

/* featviz run: every job section in order, the effective config beside. */
static void test_run(void **state) {
    (void)state;
    const char *dir = tmp_path("run_out");
    const char *ini = tmp_path("run.ini");
    FILE *f = fopen(ini, "w");
    fprintf(f,
            "[model]\npath = %s\n\n[output]\ndir = %s\n\n[classes]\nsteps = 4\ntargets = 0,3\nbatch = 2\n\n"
            "[activations]\ninputs = %s\nlayers = conv2d_1\nnpy = true\n",
            GOLD("cl_convnet.h5"), dir, GOLD("cl_convnet.input.npy"));
    fclose(f);
    char *out = NULL;
    int rc = run_capture(&out, "%s run %s", FV_BINARY, ini);
    printf("%s", out);
    free(out);
    assert_int_equal(rc, 0);
    char p[1024];
    static const char *want[] = {"featviz-run.ini", "classes/montage.png", "classes/classes.csv", "classes/class_03.png",
                                 "activations/cl_convnet.input/conv2d_1.npy"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, want[i]);
        printf("%s\n", p);
        assert_true(exists(p));
    }
    /* the effective configuration runs again */
    snprintf(p, sizeof p, "%s/featviz-run.ini", dir);
    char *cfg = read_text(p, NULL);
    assert_non_null(strstr(cfg, "steps = 4"));
    assert_non_null(strstr(cfg, "lr = 0.05")); /* defaults included */
    free(cfg);
    /* the report, at the end of the run */
    snprintf(p, sizeof p, "%s/index.html", dir);
    assert_true(exists(p));
    snprintf(p, sizeof p, "%s/report.json", dir);
    assert_true(exists(p));
}

/* featviz report: errors name the folder or file, and nothing half-written stays. */
static void test_report_errors(void **state) {
    (void)state;
    char *out = NULL;
    assert_int_equal(run_capture(&out, "%s report %s", FV_BINARY, tmp_path("no_such_run")), 1);
    assert_non_null(strstr(out, "no_such_run: not a featviz run folder"));
    free(out);
    assert_int_equal(run_capture(&out, "%s report", FV_BINARY), 2);
    free(out);
    /* a run folder whose classes.json is cut short */
    const char *dir = tmp_path("report_bad");
    char p[1024];
    assert_int_equal(run_capture(&out, "rm -rf %s && mkdir -p %s/classes", dir, dir), 0);
    free(out);
    snprintf(p, sizeof p, "%s/featviz-run.ini", dir);
    FILE *f = fopen(p, "w");
    fprintf(f, "[model]\npath = %s\n[output]\ndir = %s\n", GOLD("cl_convnet.h5"), dir);
    fclose(f);
    snprintf(p, sizeof p, "%s/classes/classes.json", dir);
    f = fopen(p, "w");
    fprintf(f, "[\n {\"class\": 0, \"label\": ");
    fclose(f);
    assert_int_equal(run_capture(&out, "%s report %s", FV_BINARY, dir), 1);
    assert_non_null(strstr(out, "classes/classes.json:"));
    assert_non_null(strstr(out, "not valid JSON"));
    free(out);
    snprintf(p, sizeof p, "%s/index.html", dir);
    assert_false(exists(p));
    /* once it parses, the report is written */
    snprintf(p, sizeof p, "%s/classes/classes.json", dir);
    f = fopen(p, "w");
    fprintf(f, "[\n {\"class\": 0, \"label\": null, \"objective\": 1, \"probability\": 0.5, \"rank\": 1}\n]\n");
    fclose(f);
    assert_int_equal(run_capture(&out, "%s report %s", FV_BINARY, dir), 0);
    free(out);
    snprintf(p, sizeof p, "%s/index.html", dir);
    assert_true(exists(p));
}

/* The README's key reference is what `featviz help config` prints. */
static void test_readme_keys_current(void **state) {
    (void)state;
    char *out = NULL;
    assert_int_equal(run_capture(&out, "%s help config", FV_BINARY), 0);
    char *readme = read_text(FV_SOURCE_DIR "/README.md", NULL);
    assert_non_null(readme);
    size_t n = strlen(out);
    while (n && out[n - 1] == '\n') out[--n] = 0;
    if (!strstr(readme, out)) fail_msg("README.md's config table differs from `featviz help config`: paste it again");
    free(out);
    free(readme);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_codes),      cmocka_unit_test(test_predict_matches_reference),
        cmocka_unit_test(test_activations_npy), cmocka_unit_test(test_saliency_gradient),
        cmocka_unit_test(test_config_errors),   cmocka_unit_test(test_run),
        cmocka_unit_test(test_report_errors),
        cmocka_unit_test(test_readme_keys_current),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
