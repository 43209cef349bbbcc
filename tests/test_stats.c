/* `featviz stats` on a fixture net with planted dead filters
 * (tests/tools/make_stats_fixtures.py): per-channel mean, max, zero fraction,
 * dead flags and top-k images against a NumPy float64 forward pass
 * (tests/data/stats/ref.json), the CSV/JSON/PNG outputs, the stdout summary,
 * and the errors for bad inputs. */
#include "testutil.h"

#include <dirent.h>
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
#include "featviz/settings.h"

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

/* Runs fv_job_stats with stdout going to a file; returns the code and the captured text. */
static int run_stats(const struct fv_settings *s, struct fv_error *err, char **captured) {
    const char *cap = tmp_path("stats_stdout.txt");
    fflush(stdout);
    int saved = dup(1);
    int fd = open(cap, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 1);
    close(fd);
    int rc = fv_job_stats(s, err);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    *captured = read_text(cap, NULL);
    assert_non_null(*captured);
    return rc;
}

static void base_settings(struct fv_settings *s, const char *inputs, const char *out) {
    fv_settings_init(s);
    set(s, "model", "path", data_path("stats/stats_net.h5"));
    set(s, "stats", "inputs", inputs);
    set(s, "stats", "topk", "5");
    set(s, "stats", "batch", "7"); /* 24 images: batches of 7, 7, 7, 3 */
    set(s, "output", "dir", out);
}

/* One parsed CSV row. */
struct row {
    char layer[64];
    int channel;
    double mean, max, zero_fraction;
    int dead;
    int top[16], n_top;
};

static int read_csv(const char *path, struct row **rows) {
    char *text = read_text(path, NULL);
    assert_non_null(text);
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    assert_non_null(line);
    /* the required columns, in this order */
    assert_string_equal(line, "layer,channel,mean,max,zero_fraction,dead,top_images");
    int n = 0;
    *rows = NULL;
    while ((line = strtok_r(NULL, "\n", &save))) {
        *rows = realloc(*rows, (size_t)(n + 1) * sizeof **rows);
        struct row *r = &(*rows)[n++];
        memset(r, 0, sizeof *r);
        char dead[16] = "", top[256] = "";
        int got = sscanf(line, "%63[^,],%d,%lf,%lf,%lf,%15[^,],%255[^\n]", r->layer, &r->channel, &r->mean,
                         &r->max, &r->zero_fraction, dead, top);
        assert_true(got >= 6);
        assert_true(!strcmp(dead, "true") || !strcmp(dead, "false"));
        r->dead = !strcmp(dead, "true");
        char *s2 = NULL;
        for (char *t = strtok_r(top, " ", &s2); t && r->n_top < 16; t = strtok_r(NULL, " ", &s2))
            r->top[r->n_top++] = atoi(t);
    }
    free(text);
    return n;
}

static const struct row *find_row(const struct row *rows, int n, const char *layer, int c) {
    for (int i = 0; i < n; i++)
        if (!strcmp(rows[i].layer, layer) && rows[i].channel == c) return &rows[i];
    return NULL;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* text has a line starting with `line`, followed by its end or by a " (...)" note. */
static int has_line(const char *text, const char *line) {
    size_t n = strlen(line);
    for (const char *p = strstr(text, line); p; p = strstr(p + 1, line)) {
        if (p != text && p[-1] != '\n') continue;
        if (p[n] == '\n' || !strncmp(p + n, " (", 2)) return 1;
    }
    return 0;
}

/* Every CSV row against the NumPy reference `which` ("npy" or "folder"). */
static void check_against_ref(const char *dir, const char *which, const char *summary) {
    json_error_t jerr;
    json_t *root = json_load_file(data_path("stats/ref.json"), 0, &jerr);
    if (!root) fail_msg("ref.json: %s", jerr.text);
    json_t *ref = json_object_get(root, which);
    int n_images = (int)json_integer_value(json_object_get(ref, "images"));
    json_t *layers = json_object_get(ref, "layers");
    char path[4200];
    snprintf(path, sizeof path, "%s/stats.csv", dir);
    struct row *rows;
    int n = read_csv(path, &rows);
    const char *name;
    json_t *L;
    int expected_rows = 0, checked_top = 0;
    json_object_foreach(layers, name, L) {
        int C = (int)json_integer_value(json_object_get(L, "channels"));
        expected_rows += C;
        json_t *mean = json_object_get(L, "mean"), *max = json_object_get(L, "max");
        json_t *zf = json_object_get(L, "zero_fraction"), *dead = json_object_get(L, "dead");
        json_t *top = json_object_get(L, "top"), *ok = json_object_get(L, "top_checkable");
        int n_dead = 0;
        char dead_list[256] = "";
        for (int c = 0; c < C; c++) {
            const struct row *r = find_row(rows, n, name, c);
            if (!r) fail_msg("no CSV row for %s channel %d", name, c);
            double m_ref = json_real_value(json_array_get(mean, (size_t)c));
            double x_ref = json_real_value(json_array_get(max, (size_t)c));
            double scale = fabs(x_ref) > 1 ? fabs(x_ref) : 1;
            if (fabs(r->mean - m_ref) > 2e-5 * scale || fabs(r->max - x_ref) > 2e-5 * scale)
                fail_msg("%s[%d]: mean %g max %g, NumPy %g %g", name, c, r->mean, r->max, m_ref, x_ref);
            double z_ref = json_real_value(json_array_get(zf, (size_t)c));
            if (fabs(r->zero_fraction - z_ref) > 1e-7)
                fail_msg("%s[%d]: zero_fraction %g, NumPy %g", name, c, r->zero_fraction, z_ref);
            int d_ref = json_is_true(json_array_get(dead, (size_t)c));
            if (r->dead != d_ref) fail_msg("%s[%d]: dead %d, NumPy %d", name, c, r->dead, d_ref);
            if (d_ref) {
                size_t len = strlen(dead_list);
                snprintf(dead_list + len, sizeof dead_list - len, "%s%d", n_dead ? ", " : "", c);
                n_dead++;
            }
            json_t *t = json_array_get(top, (size_t)c);
            int k = (int)json_array_size(t);
            assert_int_equal(r->n_top, k < n_images ? k : n_images);
            if (json_is_true(json_array_get(ok, (size_t)c))) {
                checked_top++;
                for (int i = 0; i < k; i++)
                    if (r->top[i] != (int)json_integer_value(json_array_get(t, (size_t)i)))
                        fail_msg("%s[%d]: top image %d is %d, NumPy %d", name, c, i, r->top[i],
                                 (int)json_integer_value(json_array_get(t, (size_t)i)));
            }
        }
        /* the summary line of this layer, from the reference */
        char line[512];
        const char *what = !strncmp(name, "dense", 5) ? "units" : "filters";
        if (n_dead == 0)
            snprintf(line, sizeof line, "%s: all %d %s fire", name, C, what);
        else
            snprintf(line, sizeof line, "%s: %d of %d %s never fire%s on %d images: %s", name, n_dead, C, what,
                     n_dead == 1 ? "s" : "", n_images, dead_list);
        if (!has_line(summary, line)) fail_msg("summary lacks \"%s\":\n%s", line, summary);
        /* the chart and the montage exist and are PNGs */
        struct fv_image img;
        struct fv_error err = {0};
        snprintf(path, sizeof path, "%s/%s.chart.png", dir, name);
        if (fv_image_load(path, &img, &err)) fail_msg("%s", err.msg);
        assert_true(img.w > 50 && img.h > 50);
        fv_image_free(&img);
        snprintf(path, sizeof path, "%s/%s.top.png", dir, name);
        if (fv_image_load(path, &img, &err)) fail_msg("%s", err.msg);
        assert_true(img.h > C * 16); /* one row of 16-px images (upscaled) per channel */
        fv_image_free(&img);
    }
    assert_int_equal(n, expected_rows);
    assert_true(checked_top > 20);
    free(rows);
    json_decref(root);
}

/* stats.json's positions of the maxima, receptive fields and histograms
 * against the NumPy reference `which`; with u8 (the images, 16x16x3 each),
 * examples/<image>.png holds exactly that image. sharded: the run summed
 * several shards, whose histograms start at their own first value: the bin
 * width may then be the reference's times a power of two, and the counts
 * are the reference's merged pairwise to that width. */
static void check_where_hist_as(const char *dir, const char *which, const unsigned char *u8, int min_checked,
                                int sharded) {
    json_error_t jerr;
    json_t *root = json_load_file(data_path("stats/ref.json"), 0, &jerr);
    if (!root) fail_msg("ref.json: %s", jerr.text);
    json_t *ref = json_object_get(json_object_get(root, which), "layers");
    char path[4200];
    snprintf(path, sizeof path, "%s/stats.json", dir);
    json_t *j = json_load_file(path, 0, &jerr);
    if (!j) fail_msg("stats.json: %s", jerr.text);
    int n_where = 0, n_hist = 0, n_examples = 0;
    size_t i;
    json_t *L;
    json_array_foreach(json_object_get(j, "layers"), i, L) {
        const char *name = json_string_value(json_object_get(L, "layer"));
        json_t *R = json_object_get(ref, name);
        assert_non_null(R);
        size_t c;
        json_t *ch;
        json_array_foreach(json_object_get(L, "per_channel"), c, ch) {
            json_t *top = json_object_get(ch, "top");
            if (json_is_true(json_array_get(json_object_get(R, "top_checkable"), c)) &&
                json_is_true(json_array_get(json_object_get(R, "where_checkable"), c))) {
                for (size_t k = 0; k < json_array_size(top); k++) {
                    json_t *t = json_array_get(top, k), *box = json_object_get(t, "box");
                    json_t *w = json_array_get(json_array_get(json_object_get(R, "where"), c), k);
                    long got[6] = {json_integer_value(json_object_get(t, "y")), json_integer_value(json_object_get(t, "x")),
                                   json_integer_value(json_array_get(box, 0)), json_integer_value(json_array_get(box, 1)),
                                   json_integer_value(json_array_get(box, 2)), json_integer_value(json_array_get(box, 3))};
                    for (int d = 0; d < 6; d++)
                        if (got[d] != json_integer_value(json_array_get(w, (size_t)d)))
                            fail_msg("%s[%zu] top %zu: y x box %ld %ld [%ld %ld %ld %ld], NumPy [%s]", name, c, k, got[0],
                                     got[1], got[2], got[3], got[4], got[5], json_dumps(w, JSON_COMPACT));
                    n_where++;
                }
            }
            if (json_is_true(json_array_get(json_object_get(R, "hist_checkable"), c))) {
                json_t *h = json_object_get(ch, "hist"), *rh = json_array_get(json_object_get(R, "hist"), c);
                double width = json_number_value(json_object_get(h, "width")), rw = json_number_value(json_object_get(rh, "width"));
                json_t *hc = json_object_get(h, "counts"), *rc = json_object_get(rh, "counts");
                assert_int_equal(json_array_size(hc), json_array_size(rc));
                size_t nb = json_array_size(rc);
                long long want[64] = {0};
                assert_true(nb <= 64);
                for (size_t b = 0; b < nb; b++) want[b] = json_integer_value(json_array_get(rc, b));
                while (sharded && width > rw * (1 + 1e-6)) { /* the reference merged pairwise */
                    for (size_t b = 0; b < nb / 2; b++) want[b] = want[2 * b] + want[2 * b + 1];
                    for (size_t b = nb / 2; b < nb; b++) want[b] = 0;
                    rw *= 2;
                }
                assert_true(fabs(width - rw) <= 1e-6 * rw);
                assert_int_equal(json_integer_value(json_object_get(h, "silent")), json_integer_value(json_object_get(rh, "silent")));
                for (size_t b = 0; b < nb; b++)
                    if (json_integer_value(json_array_get(hc, b)) != want[b])
                        fail_msg("%s[%zu]: histogram bin %zu holds %lld, NumPy %lld", name, c, b,
                                 (long long)json_integer_value(json_array_get(hc, b)), want[b]);
                n_hist++;
            }
            /* every top image is in examples/, as the input was */
            for (size_t k = 0; k < json_array_size(top); k++) {
                long item = (long)json_integer_value(json_object_get(json_array_get(top, k), "image"));
                snprintf(path, sizeof path, "%s/examples/%ld.png", dir, item);
                if (!u8) {
                    assert_true(file_exists(path));
                    continue;
                }
                struct fv_image img;
                struct fv_error err = {0};
                if (fv_image_load(path, &img, &err)) fail_msg("%s", err.msg);
                assert_true(img.h == 16 && img.w == 16 && img.c == 3);
                for (int q = 0; q < 16 * 16 * 3; q++)
                    if (img.data[q] != (float)u8[(size_t)item * 768 + (size_t)q]) fail_msg("%s: pixel %d differs from the input", path, q);
                fv_image_free(&img);
                n_examples++;
            }
        }
    }
    if (n_where < min_checked || n_hist < 40) fail_msg("only %d positions and %d histograms checked", n_where, n_hist);
    assert_true(!u8 || n_examples >= 100);
    json_decref(j);
    json_decref(root);
}

static void check_where_hist(const char *dir, const char *which, const unsigned char *u8, int min_checked) {
    check_where_hist_as(dir, which, u8, min_checked, 0);
}

/* The planted filters: dead with zero_fraction 1; neighbours alive. */
static void check_planted(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/stats.csv", dir);
    struct row *rows;
    int n = read_csv(path, &rows);
    const struct {
        const char *layer;
        int c;
    } planted[] = {{"conv2d_2", 3}, {"conv2d_3", 5}, {"activation_1", 5}};
    for (int i = 0; i < 3; i++) {
        const struct row *r = find_row(rows, n, planted[i].layer, planted[i].c);
        assert_non_null(r);
        assert_true(r->dead);
        assert_true(r->zero_fraction == 1.0);
        assert_true(r->max <= 0);
        for (int d = -1; d <= 1; d += 2) {
            const struct row *nb = find_row(rows, n, planted[i].layer, planted[i].c + d);
            assert_non_null(nb);
            assert_false(nb->dead);
            assert_true(nb->zero_fraction < 1.0);
            assert_true(nb->max > 0);
        }
    }
    free(rows);
}

static void test_npy_dataset(void **state) {
    (void)state;
    const char *out = tmp_path("stats_npy");
    rm_rf(out);
    struct fv_settings s;
    base_settings(&s, data_path("stats/images.npy"), out);
    struct fv_error err = {0};
    char *summary = NULL;
    int rc = run_stats(&s, &err, &summary);
    if (rc) fail_msg("stats: %s", err.msg);
    check_planted(out);
    check_against_ref(out, "npy", summary);
    struct fv_array u8 = {0};
    struct fv_error e2 = {0};
    if (fv_npy_load(data_path("stats/images.npy"), &u8, &e2)) fail_msg("%s", e2.msg);
    unsigned char *bytes = malloc(u8.count);
    assert_non_null(bytes);
    for (size_t q = 0; q < u8.count; q++) bytes[q] = (unsigned char)u8.data[q];
    check_where_hist(out, "npy", bytes, 100);
    free(bytes);
    free(u8.data);
    /* the dead filter named in the summary, exactly as the issue shows it */
    assert_non_null(strstr(summary, "conv2d_2: 1 of 8 filters never fires on 24 images: 3\n"));
    assert_non_null(strstr(summary, "activation_1: 1 of 8 filters never fires on 24 images: 5\n"));
    /* JSON: parses, and lists the dead filters and the input names */
    char path[4200];
    snprintf(path, sizeof path, "%s/stats.json", out);
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    if (!j) fail_msg("stats.json: %s", jerr.text);
    assert_int_equal(json_integer_value(json_object_get(j, "images")), 24);
    json_t *layers = json_object_get(j, "layers");
    int found = 0;
    for (size_t i = 0; i < json_array_size(layers); i++) {
        json_t *L = json_array_get(layers, i);
        if (strcmp(json_string_value(json_object_get(L, "layer")), "conv2d_2")) continue;
        found = 1;
        json_t *dead = json_object_get(L, "dead");
        assert_int_equal(json_array_size(dead), 1);
        assert_int_equal(json_integer_value(json_array_get(dead, 0)), 3);
        json_t *ch = json_array_get(json_object_get(L, "per_channel"), 0);
        const char *input = json_string_value(json_object_get(json_array_get(json_object_get(ch, "top"), 0), "input"));
        assert_non_null(strstr(input, "images.npy["));
    }
    assert_true(found);
    json_decref(j);
    free(summary);
    fv_settings_free(&s);
}

/* The images in shards (the MPI work items, summed by rank 0 in shard order):
 * the same numbers, top images and where they peak as NumPy; histograms at a
 * width that may have doubled (each shard's starts at its own first value). */
static void test_shards(void **state) {
    (void)state;
    const char *out = tmp_path("stats_shards");
    rm_rf(out);
    struct fv_settings s;
    base_settings(&s, data_path("stats/images.npy"), out);
    set(&s, "stats", "shard", "5"); /* 24 images: shards of 5, 5, 5, 5, 4 */
    set(&s, "stats", "batch", "3");
    struct fv_error err = {0};
    char *summary = NULL;
    int rc = run_stats(&s, &err, &summary);
    if (rc) fail_msg("stats: %s", err.msg);
    check_planted(out);
    check_against_ref(out, "npy", summary);
    check_where_hist_as(out, "npy", NULL, 100, 1);
    free(summary);
    fv_settings_free(&s);
}

static void test_folder(void **state) {
    (void)state;
    const char *out = tmp_path("stats_folder");
    rm_rf(out);
    struct fv_settings s;
    base_settings(&s, data_path("stats/pngs"), out);
    struct fv_error err = {0};
    char *summary = NULL;
    int rc = run_stats(&s, &err, &summary);
    if (rc) fail_msg("stats: %s", err.msg);
    check_against_ref(out, "folder", summary);
    check_where_hist(out, "folder", NULL, 20);
    free(summary);
    fv_settings_free(&s);
}

/* Only the named layers; the limit counts images. */
static void test_layers_and_limit(void **state) {
    (void)state;
    const char *out = tmp_path("stats_limit");
    rm_rf(out);
    struct fv_settings s;
    base_settings(&s, data_path("stats/images.npy"), out);
    set(&s, "stats", "layers", "conv2d_2");
    set(&s, "stats", "limit", "10");
    set(&s, "stats", "montage", "false");
    struct fv_error err = {0};
    char *summary = NULL;
    int rc = run_stats(&s, &err, &summary);
    if (rc) fail_msg("stats: %s", err.msg);
    /* (on the first 10 images, filters that fire on a few later images may be silent too) */
    const char *line = strstr(summary, "conv2d_2: ");
    assert_non_null(line);
    assert_true(line == summary || line[-1] == '\n');
    const char *on = strstr(line, " filters never fire on 10 images: ");
    const char *eol = strchr(line, '\n');
    assert_true(on && eol && on < eol);
    char list[256];
    snprintf(list, sizeof list, ",%.*s,", (int)(eol - on - 34), on + 34); /* ",a, b, c," */
    assert_non_null(strstr(list, ",3,") ? strstr(list, ",3,") : strstr(list, " 3,"));
    assert_null(strstr(summary, "conv2d_1"));
    char path[4200];
    snprintf(path, sizeof path, "%s/conv2d_2.top.png", out);
    assert_false(file_exists(path));
    struct row *rows;
    snprintf(path, sizeof path, "%s/stats.csv", out);
    assert_int_equal(read_csv(path, &rows), 8);
    free(rows);
    free(summary);
    fv_settings_free(&s);
}

/* No file at all in out after a failed run. */
static void assert_no_output(const char *out) {
    DIR *d = opendir(out);
    if (!d) return; /* not even created */
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) fail_msg("%s left behind after an error", e->d_name);
    closedir(d);
}

static void expect_error(const char *inputs, const char *layers, int code, const char *named) {
    const char *out = tmp_path("stats_bad_out");
    rm_rf(out);
    struct fv_settings s;
    base_settings(&s, inputs, out);
    if (layers) set(&s, "stats", "layers", layers);
    struct fv_error err = {0};
    char *summary = NULL;
    int rc = run_stats(&s, &err, &summary);
    if (rc != code) fail_msg("expected code %d, got %d: %s", code, rc, err.msg);
    if (!strstr(err.msg, named)) fail_msg("error does not name %s: %s", named, err.msg);
    assert_null(strchr(err.msg, '\n'));
    assert_no_output(out);
    free(summary);
    fv_settings_free(&s);
}

static void test_bad_inputs(void **state) {
    (void)state;
    /* a folder with a good image and a .png that is not one */
    const char *dir = tmp_path("stats_bad_folder");
    rm_rf(dir);
    mkdir(dir, 0777);
    char *out = NULL;
    assert_int_equal(run_capture(&out, "cp '%s' '%s/a_good.png'", data_path("stats/pngs/img_0_00.png"), dir), 0);
    free(out);
    char path[4200];
    snprintf(path, sizeof path, "%s/b_broken.png", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite("\x89PNG\r\n\x1a\n garbage, not image data at all", 1, 40, f);
    fclose(f);
    expect_error(dir, NULL, FV_ERR_FORMAT, "b_broken.png");

    /* an array that is neither images nor the model input */
    size_t dims[4] = {3, 8, 8, 3};
    float zeros[3 * 8 * 8 * 3] = {0};
    const char *bad_npy = tmp_path("stats_wrong_shape.npy");
    struct fv_error err = {0};
    if (fv_npy_save(bad_npy, zeros, 4, dims, &err)) fail_msg("%s", err.msg);
    expect_error(bad_npy, NULL, FV_ERR_SHAPE, "stats_wrong_shape.npy");

    /* a layer the model does not have */
    expect_error(data_path("stats/images.npy"), "conv2d_2,no_such_layer", FV_ERR_USAGE, "'no_such_layer'");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npy_dataset),
        cmocka_unit_test(test_shards),
        cmocka_unit_test(test_folder),
        cmocka_unit_test(test_layers_and_limit),
        cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
