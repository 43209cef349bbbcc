/* ONNX models against PyTorch float64: the fixtures made at test time by
 * tests/tools/make_onnx_fixtures.py (ctest fixture onnx_fixtures) into
 * FV_ONNX_DIR. For each case and every opset it was exported at: the output,
 * two inner nodes (one named by its node name, one by its output tensor
 * name), and the input gradients of a class logit and of a filter objective
 * (spatial mean of one channel) within the case's relative tolerance. Then
 * the bad files: one error line naming the problem, no crash. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "featviz/image.h"
#include "featviz/formats.h"
#include "featviz/graph.h"
#include "testutil.h"

static const char *onnx_path(const char *file) {
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", FV_ONNX_DIR, file);
    return buf[k];
}

static float *load_npy(const char *file, size_t *count) {
    struct fv_array a;
    struct fv_error err = {0};
    int rc = fv_npy_load(onnx_path(file), &a, &err);
    if (rc) fail_msg("%s", err.msg);
    *count = a.count;
    return a.data;
}

static void check(const char *what, const float *got, const float *want, size_t n, double tol) {
    double big = 0;
    for (size_t i = 0; i < n; i++) big = fabs((double)want[i]) > big ? fabs((double)want[i]) : big;
    if (!(big > 0)) fail_msg("%s: the reference is all zeros (tests nothing)", what);
    double e = rel_err_f32(got, want, n);
    printf("  %-60s rel err %.2e\n", what, e);
    if (!(e <= tol)) fail_msg("%s: relative error %.3g > %.3g", what, e, tol);
}

/* Input gradient of a seeded node: seed(t) = ones/(count) on channel ch (filter)
 * or 1 at class c. */
static void input_grad(struct fv_plan *p, int t, int pre, int ch, int cls, float *out) {
    fv_grad_zero(p);
    float *g = fv_plan_grad(p, t, pre);
    const struct fv_shape *s = &p->io[t].out;
    size_t n = fv_shape_count(s);
    memset(g, 0, n * sizeof *g);
    if (cls >= 0) {
        g[cls] = 1.f; /* a vector: physical = logical */
    } else { /* (H, W, C) physical: channel innermost */
        size_t hw = n / (size_t)s->d[s->rank - 1];
        for (size_t i = 0; i < hw; i++) g[i * (size_t)s->d[s->rank - 1] + (size_t)ch] = 1.f / (float)hw;
    }
    fv_backward(p, t);
    fv_plan_input_to_keras(p, p->dx, out);
}

static void run_case(const char *name) {
    char file[256];
    snprintf(file, sizeof file, "%s/%s.cases.txt", FV_ONNX_DIR, name);
    char *text = read_text(file, NULL);
    if (!text) fail_msg("%s missing: run the onnx_fixtures test first", file);
    size_t nx, nref;
    snprintf(file, sizeof file, "%s.x.npy", name);
    float *x = load_npy(file, &nx);
    snprintf(file, sizeof file, "%s.ref.npy", name);
    float *ref = load_npy(file, &nref);
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    char models[2048];
    snprintf(models, sizeof models, "%s", line);
    double tol = 1e-4;
    char *lines[16];
    int nl = 0;
    while ((line = strtok_r(NULL, "\n", &save)) && nl < 16) {
        if (!strncmp(line, "tol ", 4)) tol = atof(line + 4);
        else lines[nl++] = line;
    }
    char *msave = NULL, *files[16];
    int nf = 0;
    for (char *mf = strtok_r(models, " ", &msave); mf && nf < 16; mf = strtok_r(NULL, " ", &msave)) files[nf++] = mf;
#ifdef __SANITIZE_ADDRESS__
    /* under the sanitizers (memory safety, 5x slower) the first and last file
     * suffice; the release run compares every opset */
    if (nf > 2) files[1] = files[nf - 1], nf = 2;
#endif
    for (int fi = 0; fi < nf; fi++) {
        const char *mf = files[fi];
        printf("%s\n", mf);
        struct fv_model m;
        struct fv_error err = {0};
        int rc = fv_model_load(&m, onnx_path(mf), NULL, &err);
        if (rc) fail_msg("%s", err.msg);
        int h, w, c;
        fv_model_input_hwc(&m, &h, &w, &c);
        struct fv_plan p;
        if (fv_plan_init(&p, &m, 1, h, w, FV_PLAN_GRAD, &err)) fail_msg("%s", err.msg);
        size_t off = 0;
        float *got = malloc(nx * 4 + (1 << 20) * sizeof *got);
        for (int k = 0; k < nl; k++) {
            char kind[16], node[FV_NAME_MAX];
            int a = 0;
            size_t cnt = 0;
            if (sscanf(lines[k], "out %127s %zu", node, &cnt) == 2) {
                strcpy(kind, "out");
            } else if (sscanf(lines[k], "node %127s %zu", node, &cnt) == 2) {
                strcpy(kind, "node");
            } else if (sscanf(lines[k], "gclass %d %zu", &a, &cnt) == 2) {
                strcpy(kind, "gclass");
            } else if (sscanf(lines[k], "gfilter %127s %d %zu", node, &a, &cnt) == 3) {
                strcpy(kind, "gfilter");
            } else {
                fail_msg("bad line '%s'", lines[k]);
            }
            assert_true(off + cnt <= nref);
            got = realloc(got, (cnt > nx ? cnt : nx) * sizeof *got);
            char what[512];
            snprintf(what, sizeof what, "%s %s %s", mf, kind, !strcmp(kind, "gclass") ? "" : node);
            fv_plan_write_input(&p, x);
            fv_forward(&p, m.output);
            if (!strcmp(kind, "out") || !strcmp(kind, "node")) {
                int t = !strcmp(kind, "out") ? m.output : fv_model_find(&m, node);
                if (t < 0) fail_msg("%s: no node '%s'", mf, node);
                assert_int_equal(fv_shape_count(&p.io[t].out), cnt);
                fv_plan_read_keras(&p, t, 0, got);
            } else if (!strcmp(kind, "gclass")) {
                int pre, t = fv_model_logits(&m, &pre);
                input_grad(&p, t, pre, 0, a, got);
            } else {
                int t = fv_model_find(&m, node);
                if (t < 0) fail_msg("%s: no node '%s'", mf, node);
                input_grad(&p, t, 0, a, -1, got);
            }
            check(what, got, ref + off, cnt, tol);
            off += cnt;
        }
        free(got);
        fv_plan_free(&p);
        fv_model_free(&m);
    }
    free(x);
    free(ref);
    free(text);
}

static void test_resnet18(void **s) { (void)s, run_case("resnet18"); }
static void test_mobilenet_v2(void **s) { (void)s, run_case("mobilenet_v2"); }
static void test_squeezenet1_1(void **s) { (void)s, run_case("squeezenet1_1"); }
static void test_ops1(void **s) { (void)s, run_case("ops1"); }
static void test_ops1v9(void **s) { (void)s, run_case("ops1v9"); }
static void test_ops2(void **s) { (void)s, run_case("ops2"); }
static void test_hand(void **s) { (void)s, run_case("hand"); }
static void test_upsample9(void **s) { (void)s, run_case("upsample9"); }

/* Bad files through the CLI: exit 1, one line naming the problem. */
static void test_bad_files(void **s) {
    (void)s;
    static const struct {
        const char *file, *expect;
    } cases[] = {
        {"bad_truncated.onnx", "not an ONNX model"},
        {"bad_notproto.onnx", "not an ONNX model"},
        {"bad_unknown_op.onnx", "node 'frob_node' has operator 'FrobnicateXYZ'"},
        {"bad_lstm.onnx", "node 'my_lstm' is a recurrent layer (LSTM)"},
        {"bad_convtranspose.onnx", "node 'deconv' has operator ConvTranspose"},
        {"bad_dims_overflow.onnx", "tensor 'W' has dimensions whose product overflows"},
        {"bad_dims_disagree.onnx", "tensor 'W' has 216 bytes of data, its dimensions say 432"},
        {"bad_external_missing.onnx", "no_such_weights.bin', which cannot be opened"},
        {"bad_cycle.onnx", "cycle through node 'add_a'"},
        {"bad_dangling.onnx", "node 'add_y' (Add) reads 'nowhere'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = NULL;
        int rc = run_capture(&out, "%s info '%s'", FV_BINARY, onnx_path(cases[i].file));
        printf("%s -> %d: %s", cases[i].file, rc, out ? out : "");
        if (rc != 1 || !out || !strstr(out, cases[i].expect) || strchr(out, '\n') != out + strlen(out) - 1)
            fail_msg("%s: exit %d, output '%s', expected one line with '%s'", cases[i].file, rc, out ? out : "", cases[i].expect);
        free(out);
    }
}

/* The numbers of a text, in order (paths and labels are the same on both sides). */
static size_t numbers(const char *text, double *v, size_t cap) {
    size_t n = 0;
    for (const char *c = text; *c && n < cap;) {
        char *end;
        double x = strtod(c, &end);
        if (end != c) v[n++] = x, c = end;
        else c++;
    }
    return n;
}

static void same_numbers(const char *what, const char *a, const char *b) {
    static double va[20000], vb[20000];
    size_t na = numbers(a, va, 20000), nb = numbers(b, vb, 20000);
    printf("%s: %zu numbers\n", what, na);
    assert_true(na > 10);
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++)
        if (fabs(va[i] - vb[i]) > 1e-4) fail_msg("%s: number %zu is %.6g from the .h5, %.6g from the .onnx", what, i, va[i], vb[i]);
}

/* models/gtsrb32.onnx (the .h5's weights, exported by tools/train_gtsrb.py)
 * gives the probabilities of models/gtsrb32.h5: predict on the examples with
 * every class, and classes (synthesis, then the model's probability). */
static void test_gtsrb_onnx_as_h5(void **s) {
    (void)s;
    const char *fmt[2] = {"%s predict '%s/models/gtsrb32.%s' '%s/examples' --top 43",
                          "%s classes '%s/models/gtsrb32.%s' --targets 0,14,33 --steps 32 -o '%s/%s' >/dev/null && cat '%s/%s/classes.csv'"};
    for (int k = 0; k < 2; k++) {
        char *out[2] = {NULL, NULL};
        const char *ext[2] = {"h5", "onnx"};
        for (int e = 0; e < 2; e++) {
            int rc = k == 0 ? run_capture(&out[e], fmt[0], FV_BINARY, FV_SOURCE_DIR, ext[e], FV_SOURCE_DIR)
                            : run_capture(&out[e], fmt[1], FV_BINARY, FV_SOURCE_DIR, ext[e], tmp_path(""), ext[e], tmp_path(""), ext[e]);
            if (rc) fail_msg("%s", out[e] ? out[e] : "");
        }
        same_numbers(k ? "classes" : "predict", out[0], out[1]);
        free(out[0]);
        free(out[1]);
    }
}

/* Layers by node name and by tensor name through the CLI; output files named
 * by the node name made safe ('/' and other characters -> '_', leading '/'
 * dropped); info lists the tensors and the graph's input and output. */
static void test_cli_names(void **s) {
    (void)s;
    char *out = NULL;
    const char *dir = tmp_path("onnx_names");
    int rc = run_capture(&out, "rm -rf '%s' && %s filters '%s/models/gtsrb32.onnx' --layer /0/convs.2/Conv --filters 0 --steps 2 -o '%s/f' && "
                         "%s activations '%s/models/gtsrb32.onnx' '%s/examples/14_stop.png' --layers /0/Relu_2_output_0 -o '%s/a' && "
                         "ls '%s/f/0_convs.2_Conv.png' '%s/f/0_convs.2_Conv/filter_000.png' '%s/a/14_stop/0_Relu_2.grid.png'",
                         dir, FV_BINARY, FV_SOURCE_DIR, dir, FV_BINARY, FV_SOURCE_DIR, FV_SOURCE_DIR, dir, dir, dir, dir);
    if (rc) fail_msg("%s", out ? out : "");
    free(out);
    rc = run_capture(&out, "%s info '%s/models/gtsrb32.onnx'", FV_BINARY, FV_SOURCE_DIR);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "Graph input: input, output: probabilities (node /1/Softmax)"));
    assert_non_null(strstr(out, "/0/fc1/Gemm (Gemm)"));
    assert_non_null(strstr(out, "(None, 128, 2, 2)"));
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand),          cmocka_unit_test(test_ops1),
        cmocka_unit_test(test_ops1v9),        cmocka_unit_test(test_ops2),
        cmocka_unit_test(test_resnet18),      cmocka_unit_test(test_mobilenet_v2),
        cmocka_unit_test(test_squeezenet1_1), cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_gtsrb_onnx_as_h5), cmocka_unit_test(test_upsample9),
        cmocka_unit_test(test_cli_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
