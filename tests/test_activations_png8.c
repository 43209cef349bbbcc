/* `featviz activations --format png8` on the golden model (tests/data/golden/
 * cl_convnet, whose layer outputs PyTorch computed in float64): every pixel of
 * each layer's 8-bit gray PNG against round(255 t) recomputed in double from
 * the reference values under the three normalisations, the tiling (channel c
 * at tile c / cols, c % cols, unused tiles 0), a rank-1 output as one row, and
 * the text chunks (read by walking the PNG's chunks here, not through libpng)
 * against the geometry and ranges. Only the maps and predictions are written. */
#include "testutil.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "featviz/image.h"
#include "featviz/jobs.h"
#include "featviz/settings.h"

#define MODEL "golden/cl_convnet"
#define STEM "cl_convnet.input"
#define N_IMG 3

static void set(struct fv_settings *s, const char *sec, const char *key, const char *val) {
    struct fv_error err = {0};
    if (fv_settings_set(s, sec, key, val, "test", &err)) fail_msg("setting %s.%s = %s: %s", sec, key, val, err.msg);
}

/* Runs the job on the golden model's 3 inputs into a fresh out (stdout to a file). */
static int run_job(struct fv_settings *s, const char *out, struct fv_error *err) {
    char *text = NULL;
    run_capture(&text, "rm -rf '%s'", out);
    free(text);
    set(s, "model", "path", data_path(MODEL ".h5"));
    set(s, "activations", "inputs", data_path(MODEL ".input.npy"));
    set(s, "activations", "format", "png8");
    set(s, "output", "dir", out);
    fflush(stdout);
    int saved = dup(1), fd = open(tmp_path("png8_stdout.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 1);
    close(fd);
    int rc = fv_job_activations(s, err);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    return rc;
}

static void load_ref(const char *layer, struct fv_array *a) {
    char rel[256];
    snprintf(rel, sizeof rel, MODEL ".%s.npy", layer);
    struct fv_error err = {0};
    if (fv_npy_load(data_path(rel), a, &err)) fail_msg("%s", err.msg);
}

/* The value of tEXt chunk `key` in the PNG file at path (malloc'd), or NULL. */
static char *png_text(const char *path, const char *key) {
    size_t n = 0;
    unsigned char *b = (unsigned char *)read_text(path, &n);
    assert_non_null(b);
    assert_true(n > 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8));
    char *found = NULL;
    for (size_t at = 8; at + 12 <= n && !found;) {
        size_t len = (size_t)b[at] << 24 | (size_t)b[at + 1] << 16 | (size_t)b[at + 2] << 8 | b[at + 3];
        assert_true(at + 12 + len <= n);
        const unsigned char *data = b + at + 8;
        size_t klen = strlen(key);
        if (!memcmp(b + at + 4, "tEXt", 4) && len > klen && !memcmp(data, key, klen) && data[klen] == 0) {
            found = malloc(len - klen);
            memcpy(found, data + klen + 1, len - klen - 1);
            found[len - klen - 1] = 0;
        }
        at += 12 + len;
    }
    free(b);
    return found;
}

/* Image i of the reference layer as C maps of H x W (rank 1: one map 1 x n). */
struct ref_layer {
    const float *y; /* (H, W, C) */
    int H, W, C;
};

static struct ref_layer ref_image(const struct fv_array *a, int i) {
    struct ref_layer r;
    if (a->rank == 2) r.H = 1, r.W = (int)a->dims[1], r.C = 1;
    else r.H = (int)a->dims[1], r.W = (int)a->dims[2], r.C = (int)a->dims[3];
    r.y = a->data + (size_t)i * (size_t)r.H * (size_t)r.W * (size_t)r.C;
    return r;
}

/* lo..hi of channel c in double: norm 0 map (Quiver: mean -+ 5 (sd + 1e-5)),
 * 1 layer (min..max of the whole image's layer, lo at most 0), 2 fixed. */
static void ref_range(const struct ref_layer *r, int c, int norm, double *lo, double *hi) {
    size_t HW = (size_t)r->H * (size_t)r->W, C = (size_t)r->C;
    if (norm == 0) {
        double sum = 0, sq = 0;
        for (size_t p = 0; p < HW; p++) sum += (double)r->y[p * C + (size_t)c];
        double mean = sum / (double)HW;
        for (size_t p = 0; p < HW; p++) sq += ((double)r->y[p * C + (size_t)c] - mean) * ((double)r->y[p * C + (size_t)c] - mean);
        double sd = sqrt(sq / (double)HW) + 1e-5;
        *lo = mean - 5 * sd, *hi = mean + 5 * sd;
    } else if (norm == 1) {
        *lo = INFINITY, *hi = -INFINITY;
        for (size_t p = 0; p < HW * C; p++) {
            if ((double)r->y[p] < *lo) *lo = (double)r->y[p];
            if ((double)r->y[p] > *hi) *hi = (double)r->y[p];
        }
        if (*lo > 0) *lo = 0;
    } else {
        *lo = -1, *hi = 2;
    }
}

/* Checks DIR/<stem>_i/<layer>.png of every image against the reference. */
static void check_layer(const char *out, const char *layer, const char *ref_name, int norm) {
    static const char *const names[] = {"map", "layer", "fixed"};
    struct fv_array a;
    load_ref(ref_name, &a);
    for (int i = 0; i < N_IMG; i++) {
        struct ref_layer r = ref_image(&a, i);
        int cols = (int)ceil(sqrt((double)r.C)), rows = (r.C + cols - 1) / cols;
        char path[4200], want[160];
        snprintf(path, sizeof path, "%s/%s_%d/%s.png", out, STEM, i, layer);
        struct fv_image img;
        struct fv_error err = {0};
        if (fv_image_load(path, &img, &err)) fail_msg("%s", err.msg);
        assert_int_equal(img.c, 1); /* gray */
        assert_int_equal(img.h, rows * r.H);
        assert_int_equal(img.w, cols * r.W);
        char *t = png_text(path, "featviz.maps");
        snprintf(want, sizeof want, "channels=%d height=%d width=%d columns=%d", r.C, r.H, r.W, cols);
        assert_non_null(t);
        assert_string_equal(t, want);
        free(t);
        t = png_text(path, "featviz.norm");
        assert_non_null(t);
        assert_string_equal(t, names[norm]);
        free(t);
        t = png_text(path, "featviz.layer");
        assert_non_null(t);
        assert_string_equal(t, layer);
        free(t);
        char *tlo = png_text(path, "featviz.lo"), *thi = png_text(path, "featviz.hi"), *plo = tlo, *phi = thi;
        assert_true(tlo && thi);
        for (int c = 0; c < r.C; c++) {
            double lo, hi;
            ref_range(&r, c, norm, &lo, &hi);
            if (norm == 0 || c == 0) { /* one range per channel for map, else one */
                char *e1, *e2;
                double flo = strtod(plo, &e1), fhi = strtod(phi, &e2);
                assert_true(e1 != plo && e2 != phi);
                plo = e1, phi = e2;
                if (fabs(flo - lo) > 1e-5 * (1 + fabs(lo)) || fabs(fhi - hi) > 1e-5 * (1 + fabs(hi)))
                    fail_msg("%s channel %d: range %g..%g in the file, %g..%g expected", path, c, flo, fhi, lo, hi);
            }
            int ty = c / cols, tx = c % cols;
            for (int y = 0; y < r.H; y++)
                for (int x = 0; x < r.W; x++) {
                    double v = r.y[((size_t)y * (size_t)r.W + (size_t)x) * (size_t)r.C + (size_t)c];
                    double u = (v - lo) / (hi - lo);
                    u = u < 0 ? 0 : u > 1 ? 1 : u;
                    double got = img.data[(size_t)(ty * r.H + y) * (size_t)img.w + (size_t)(tx * r.W + x)];
                    /* exact, but where the float forward and the float64 reference
                     * may round apart (255 u within 0.01 of a tie): one level */
                    double level = floor(255 * u + 0.5), frac = 255 * u - floor(255 * u);
                    if (fabs(got - level) > (fabs(frac - 0.5) < 0.01 ? 1 : 0))
                        fail_msg("%s channel %d (%d,%d): %g, expected %.2f", path, c, y, x, got, 255 * u);
                }
        }
        assert_true(*plo == 0 && *phi == 0); /* no more values than ranges */
        free(tlo), free(thi);
        for (int c = r.C; c < rows * cols; c++) /* unused tiles are black */
            for (int y = 0; y < r.H; y++)
                for (int x = 0; x < r.W; x++)
                    assert_true(img.data[(size_t)((c / cols) * r.H + y) * (size_t)img.w + (size_t)((c % cols) * r.W + x)] == 0);
        fv_image_free(&img);
    }
    fv_array_free(&a);
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static void test_png8_norms(void **state) {
    (void)state;
    static const char *const norms[] = {"map", "layer", "fixed"};
    for (int norm = 0; norm < 3; norm++) {
        const char *out = tmp_path("acts_png8");
        struct fv_settings s;
        fv_settings_init(&s);
        set(&s, "activations", "layers", "conv2d_1,max_pooling2d_1,conv2d_4,dense_2");
        set(&s, "activations", "norm", norms[norm]);
        set(&s, "activations", "lo", "-1");
        set(&s, "activations", "hi", "2");
        struct fv_error err = {0};
        if (run_job(&s, out, &err)) fail_msg("activations: %s", err.msg);
        check_layer(out, "conv2d_1", "conv2d_1", norm);        /* 4 maps: 2 x 2 tiles */
        check_layer(out, "max_pooling2d_1", "max_pooling2d_1", norm);
        check_layer(out, "conv2d_4", "conv2d_4", norm);        /* 3 maps: one tile black */
        check_layer(out, "dense_2", "output", norm);           /* rank 1: one row of 5 */
        for (int i = 0; i < N_IMG; i++) { /* the maps and predictions only */
            char path[4200];
            snprintf(path, sizeof path, "%s/%s_%d/predictions.json", out, STEM, i);
            assert_true(exists(path));
            snprintf(path, sizeof path, "%s/%s_%d/conv2d_1.grid.png", out, STEM, i);
            assert_false(exists(path));
            snprintf(path, sizeof path, "%s/%s_%d/conv2d_1", out, STEM, i);
            assert_false(exists(path));
            snprintf(path, sizeof path, "%s/%s_%d/dense_2.bars.png", out, STEM, i);
            assert_false(exists(path));
        }
        fv_settings_free(&s);
    }
}

/* The command line: --format png8 beside --npy writes both. */
static void test_png8_cli(void **state) {
    (void)state;
    const char *out = tmp_path("acts_png8_cli");
    char *text = NULL;
    run_capture(&text, "rm -rf '%s'", out);
    free(text);
    int rc = run_capture(&text, "'%s' activations '%s' '%s' --format png8 --npy --layers conv2d_1 -o '%s' 2>&1",
                         FV_BINARY, data_path(MODEL ".h5"), data_path(MODEL ".input.npy"), out);
    if (rc) fail_msg("featviz activations: %s", text);
    free(text);
    check_layer(out, "conv2d_1", "conv2d_1", 1);
    char path[4200];
    snprintf(path, sizeof path, "%s/%s/conv2d_1.npy", out, STEM);
    assert_true(exists(path));
    rc = run_capture(&text, "'%s' activations '%s' '%s' --format png16 -o '%s' 2>&1", FV_BINARY,
                     data_path(MODEL ".h5"), data_path(MODEL ".input.npy"), out);
    assert_int_equal(rc, 2); /* a usage error naming the choices */
    assert_non_null(strstr(text, "png8"));
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png8_norms),
        cmocka_unit_test(test_png8_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
