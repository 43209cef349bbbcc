/* `featviz activations` on a golden model (tests/data/golden/cl_convnet, whose
 * intermediate outputs were computed by PyTorch in float64): each channel
 * picture's pixels against the colour map applied to the reference values
 * under the three normalisations, the grid's size and tiles, the Dense bar
 * strip, the predictions beside the maps, and the raw --npy arrays. */
#include "testutil.h"

#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "featviz/image.h"
#include "featviz/jobs.h"
#include "featviz/render.h"
#include "featviz/settings.h"

#define MODEL "golden/cl_convnet"
#define STEM "cl_convnet.input"
#define N_IMG 3

static void set(struct fv_settings *s, const char *sec, const char *key, const char *val) {
    struct fv_error err = {0};
    int rc = fv_settings_set(s, sec, key, val, "test", &err);
    if (rc) fail_msg("setting %s.%s = %s: %s", sec, key, val, err.msg);
}

static void rm_rf(const char *dir) {
    char *out = NULL;
    run_capture(&out, "rm -rf '%s'", dir);
    free(out);
}

/* Runs the job on the golden model's 3 inputs; stdout goes to a file. */
static int run_job(struct fv_settings *s, const char *out, struct fv_error *err) {
    set(s, "model", "path", data_path(MODEL ".h5"));
    set(s, "activations", "inputs", data_path(MODEL ".input.npy"));
    set(s, "output", "dir", out);
    fflush(stdout);
    int saved = dup(1);
    int fd = open(tmp_path("acts_stdout.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
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

static int upscale(int h, int w, int min_px) {
    int m = h > w ? h : w, k = 1;
    while (m * k < min_px) k++;
    return k;
}

/* Expected gray level of value v for t = (v - lo) / (hi - lo), clamped. */
static double gray_of(double v, double lo, double hi) {
    double t = (v - lo) / (hi - lo);
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    return 255.0 * t;
}

/* Compares item i, channel c's picture with the reference map under lo..hi
 * (quiver: per-map mean/std instead). Gray colour map: R = G = B = 255 t. */
static void check_channel(const char *out, const char *layer, const struct fv_array *ref, int i, int c,
                          int norm_map, double lo, double hi) {
    int H = (int)ref->dims[1], W = (int)ref->dims[2], C = (int)ref->dims[3];
    const float *y = ref->data + (size_t)i * (size_t)H * (size_t)W * (size_t)C; /* (H, W, C) */
    if (norm_map) { /* Quiver: (v - mean) / (std + 1e-5) * 0.1 + 0.5 */
        double sum = 0, sq = 0;
        for (int p = 0; p < H * W; p++) sum += (double)y[p * C + c];
        double mean = sum / (H * W);
        for (int p = 0; p < H * W; p++) sq += ((double)y[p * C + c] - mean) * ((double)y[p * C + c] - mean);
        double sd = sqrt(sq / (H * W)) + 1e-5;
        lo = mean - 5 * sd, hi = mean + 5 * sd;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/%s_%d/%s/%s_%d.png", out, STEM, i, layer, layer, c);
    struct fv_image img;
    struct fv_error err = {0};
    if (fv_image_load(path, &img, &err)) fail_msg("%s", err.msg);
    int k = upscale(H, W, 96);
    assert_int_equal(img.h, H * k);
    assert_int_equal(img.w, W * k);
    assert_int_equal(img.c, 3);
    for (int py = 0; py < img.h; py++)
        for (int px = 0; px < img.w; px++) {
            double want = gray_of(y[((py / k) * W + px / k) * C + c], lo, hi);
            for (int ch = 0; ch < 3; ch++) {
                double got = img.data[((size_t)py * (size_t)img.w + (size_t)px) * 3 + (size_t)ch];
                if (fabs(got - want) > 1.0)
                    fail_msg("%s (%d,%d): %g, expected %.2f (lo %g hi %g)", path, py, px, got, want, lo, hi);
            }
        }
    fv_image_free(&img);
}

/* min..max of image i of a reference layer (lo = 0 when nothing is negative). */
static void layer_range(const struct fv_array *ref, int i, double *lo, double *hi) {
    size_t per = ref->count / ref->dims[0];
    const float *y = ref->data + (size_t)i * per;
    *lo = INFINITY, *hi = -INFINITY;
    for (size_t j = 0; j < per; j++) {
        if ((double)y[j] < *lo) *lo = (double)y[j];
        if ((double)y[j] > *hi) *hi = (double)y[j];
    }
    if (*lo > 0) *lo = 0;
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* norm = layer (the default), gray; plus the grid, bars, predictions and --npy. */
static void test_layer_norm(void **state) {
    (void)state;
    const char *out = tmp_path("acts_layer");
    rm_rf(out);
    struct fv_settings s;
    fv_settings_init(&s);
    set(&s, "activations", "layers", "conv2d_1,max_pooling2d_1,conv2d_4,dense_1");
    set(&s, "activations", "cmap", "gray");
    set(&s, "activations", "npy", "true");
    set(&s, "activations", "top", "3");
    struct fv_error err = {0};
    if (run_job(&s, out, &err)) fail_msg("activations: %s", err.msg);

    /* ReLU output with zeros, all-positive output (drawn from 0, not from its min), signed output */
    const char *layers[3] = {"conv2d_1", "max_pooling2d_1", "conv2d_4"};
    for (int li = 0; li < 3; li++) {
        struct fv_array ref;
        load_ref(layers[li], &ref);
        int H = (int)ref.dims[1], W = (int)ref.dims[2], C = (int)ref.dims[3];
        for (int i = 0; i < N_IMG; i++) {
            double lo, hi;
            layer_range(&ref, i, &lo, &hi);
            for (int c = 0; c < C; c++) check_channel(out, layers[li], &ref, i, c, 0, lo, hi);

            /* the grid: the layout of C numbered tiles, each tile the channel picture */
            int k = upscale(H, W, 96);
            char title[256], path[4200];
            snprintf(title, sizeof title, "%s: %d maps %dx%d, norm layer", layers[li], C, H, W);
            const unsigned char *dummy = NULL;
            struct fv_montage_spec spec = {.tiles = &dummy, .n = C, .th = H * k, .tw = W * k, .channels = 3,
                                           .number_tiles = 1, .cols = (int)ceil(sqrt((double)C)), .scale = 1,
                                           .margin = -1, .title = title};
            struct fv_montage_layout lay;
            if (fv_montage_layout(&spec, &lay, &err)) fail_msg("%s", err.msg);
            snprintf(path, sizeof path, "%s/%s_%d/%s.grid.png", out, STEM, i, layers[li]);
            struct fv_image grid, tile;
            if (fv_image_load(path, &grid, &err)) fail_msg("%s", err.msg);
            assert_int_equal(grid.w, lay.w);
            assert_int_equal(grid.h, lay.h);
            for (int c = 0; c < C; c++) {
                int ty, tx;
                fv_montage_tile_pos(&lay, c, &ty, &tx);
                snprintf(path, sizeof path, "%s/%s_%d/%s/%s_%d.png", out, STEM, i, layers[li], layers[li], c);
                if (fv_image_load(path, &tile, &err)) fail_msg("%s", err.msg);
                for (int y = 0; y < tile.h; y++)
                    for (int x = 0; x < tile.w * 3; x++)
                        assert_true(tile.data[(size_t)y * (size_t)tile.w * 3 + (size_t)x] ==
                                    grid.data[((size_t)(ty + y) * (size_t)grid.w + (size_t)tx) * 3 + (size_t)x]);
                fv_image_free(&tile);
            }
            fv_image_free(&grid);
        }
        fv_array_free(&ref);
    }

    /* Dense: a bar strip, no maps */
    for (int i = 0; i < N_IMG; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s_%d/dense_1.bars.png", out, STEM, i);
        struct fv_image img;
        if (fv_image_load(path, &img, &err)) fail_msg("%s", err.msg);
        assert_true(img.w > 16 && img.h > 16);
        fv_image_free(&img);
        snprintf(path, sizeof path, "%s/%s_%d/dense_1", out, STEM, i);
        assert_false(exists(path));
    }

    /* predictions beside the maps: top-1 = argmax of the reference output */
    struct fv_array ref_out;
    load_ref("output", &ref_out);
    int K = (int)ref_out.dims[1];
    for (int i = 0; i < N_IMG; i++) {
        const float *o = ref_out.data + (size_t)i * (size_t)K;
        int best = 0;
        for (int j = 1; j < K; j++) best = o[j] > o[best] ? j : best;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s_%d/predictions.json", out, STEM, i);
        json_error_t jerr;
        json_t *j = json_load_file(path, 0, &jerr);
        if (!j) fail_msg("%s: %s", path, jerr.text);
        json_t *top = json_object_get(j, "top");
        assert_int_equal(json_array_size(top), 3);
        json_t *t0 = json_array_get(top, 0);
        assert_int_equal(json_integer_value(json_object_get(t0, "class")), best);
        /* the model ends in a softmax: probabilities */
        double p = json_real_value(json_object_get(t0, "probability"));
        assert_true(fabs(p - (double)o[best]) < 1e-5);
        char want[64];
        snprintf(want, sizeof want, STEM ".npy[%d]", i);
        assert_non_null(strstr(json_string_value(json_object_get(j, "input")), want));
        json_decref(j);
        snprintf(path, sizeof path, "%s/%s_%d/predictions.txt", out, STEM, i);
        char *text = read_text(path, NULL);
        assert_non_null(text);
        char line[64];
        snprintf(line, sizeof line, "\n  %4d  ", best);
        assert_non_null(strstr(text, line)); /* the first class line is the best one */
        assert_true(strstr(text, line) == strchr(text, '\n'));
        free(text);
    }
    fv_array_free(&ref_out);

    /* --npy: DIR/<stem>/<layer>.npy with the batch axis, matching the reference */
    for (int li = 0; li < 3; li++) {
        struct fv_array ref, got;
        load_ref(layers[li], &ref);
        char path[4200];
        snprintf(path, sizeof path, "%s/%s/%s.npy", out, STEM, layers[li]);
        if (fv_npy_load(path, &got, &err)) fail_msg("%s", err.msg);
        assert_int_equal(got.rank, 4);
        for (int d = 0; d < 4; d++) assert_int_equal(got.dims[d], ref.dims[d]);
        assert_true(rel_err_f32(got.data, ref.data, ref.count) < 1e-5);
        fv_array_free(&ref);
        fv_array_free(&got);
    }
    fv_settings_free(&s);
}

/* norm = map (Quiver) and norm = fixed. */
static void test_map_and_fixed_norm(void **state) {
    (void)state;
    struct fv_error err = {0};
    struct fv_array ref1, ref4;
    load_ref("conv2d_1", &ref1);
    load_ref("conv2d_4", &ref4);

    const char *out = tmp_path("acts_map");
    rm_rf(out);
    struct fv_settings s;
    fv_settings_init(&s);
    set(&s, "activations", "layers", "conv2d_1,conv2d_4");
    set(&s, "activations", "cmap", "gray");
    set(&s, "activations", "norm", "map");
    if (run_job(&s, out, &err)) fail_msg("activations: %s", err.msg);
    for (int i = 0; i < N_IMG; i++) {
        for (int c = 0; c < (int)ref1.dims[3]; c++) check_channel(out, "conv2d_1", &ref1, i, c, 1, 0, 0);
        for (int c = 0; c < (int)ref4.dims[3]; c++) check_channel(out, "conv2d_4", &ref4, i, c, 1, 0, 0);
    }
    fv_settings_free(&s);

    out = tmp_path("acts_fixed");
    rm_rf(out);
    fv_settings_init(&s);
    set(&s, "activations", "layers", "conv2d_4");
    set(&s, "activations", "cmap", "gray");
    set(&s, "activations", "norm", "fixed");
    set(&s, "activations", "lo", "-1");
    set(&s, "activations", "hi", "2");
    set(&s, "activations", "min_size", "40");
    if (run_job(&s, out, &err)) fail_msg("activations: %s", err.msg);
    /* min_size 40 on 2x3 maps: k = 14 */
    for (int i = 0; i < N_IMG; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s_%d/conv2d_4/conv2d_4_0.png", out, STEM, i);
        struct fv_image img;
        if (fv_image_load(path, &img, &err)) fail_msg("%s", err.msg);
        assert_int_equal(img.h, 2 * 14);
        assert_int_equal(img.w, 3 * 14);
        fv_image_free(&img);
    }
    fv_settings_free(&s);
    /* re-run at the default size for the pixel check */
    rm_rf(out);
    fv_settings_init(&s);
    set(&s, "activations", "layers", "conv2d_4");
    set(&s, "activations", "cmap", "gray");
    set(&s, "activations", "norm", "fixed");
    set(&s, "activations", "lo", "-1");
    set(&s, "activations", "hi", "2");
    if (run_job(&s, out, &err)) fail_msg("activations: %s", err.msg);
    for (int i = 0; i < N_IMG; i++)
        for (int c = 0; c < (int)ref4.dims[3]; c++) check_channel(out, "conv2d_4", &ref4, i, c, 0, -1, 2);
    fv_settings_free(&s);
    fv_array_free(&ref1);
    fv_array_free(&ref4);
}

/* viridis over the input image: opacity 1 is the map alone, 0.5 differs. */
static void test_overlay(void **state) {
    (void)state;
    struct fv_error err = {0};
    const char *dirs[3] = {tmp_path("acts_ov0"), tmp_path("acts_ov1"), tmp_path("acts_ov5")};
    const char *opacity[3] = {"0", "1", "0.5"};
    struct fv_image img[3];
    for (int r = 0; r < 3; r++) {
        rm_rf(dirs[r]);
        struct fv_settings s;
        fv_settings_init(&s);
        set(&s, "activations", "layers", "conv2d_1");
        set(&s, "activations", "overlay", opacity[r]);
        if (run_job(&s, dirs[r], &err)) fail_msg("activations: %s", err.msg);
        char path[4200];
        snprintf(path, sizeof path, "%s/%s_1/conv2d_1/conv2d_1_2.png", dirs[r], STEM);
        if (fv_image_load(path, &img[r], &err)) fail_msg("%s", err.msg);
        fv_settings_free(&s);
    }
    size_t n = (size_t)img[0].h * (size_t)img[0].w * 3;
    for (int r = 1; r < 3; r++) {
        assert_int_equal(img[r].h, img[0].h);
        assert_int_equal(img[r].w, img[0].w);
    }
    assert_memory_equal(img[0].data, img[1].data, n * sizeof(float));
    size_t differ = 0;
    for (size_t i = 0; i < n; i++) differ += img[0].data[i] != img[2].data[i];
    assert_true(differ > n / 4);
    /* viridis: the darkest value is viridis(0) = #440154 somewhere on a ReLU map with zeros,
     * or at least the colours are not gray */
    size_t colourful = 0;
    for (size_t i = 0; i < n; i += 3) colourful += img[0].data[i] != img[0].data[i + 1];
    assert_true(colourful > n / 6);
    for (int r = 0; r < 3; r++) fv_image_free(&img[r]);
}

static void test_unknown_layer(void **state) {
    (void)state;
    const char *out = tmp_path("acts_bad");
    rm_rf(out);
    struct fv_settings s;
    fv_settings_init(&s);
    set(&s, "activations", "layers", "conv2d_1,conv9");
    struct fv_error err = {0};
    assert_int_equal(run_job(&s, out, &err), FV_ERR_USAGE);
    assert_non_null(strstr(err.msg, "'conv9'"));
    assert_false(exists(out));
    fv_settings_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layer_norm),
        cmocka_unit_test(test_map_and_fixed_norm),
        cmocka_unit_test(test_overlay),
        cmocka_unit_test(test_unknown_layer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
