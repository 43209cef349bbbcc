/* Image decoding (PNG, PPM/PGM, JPEG), directory listing and atomic PNG
 * writing. References: tests/data/io/ (made by tests/tools/make_io_fixtures.py
 * with a hand-written PNG encoder, PIL and numpy; expected pixels are the
 * arrays that were encoded) and the real images in ../shared. */
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "featviz/image.h"

/* tests/data/io/<name> */
static const char *io_path(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "io/%s", name);
    return data_path(rel);
}

/* Loads an expected-pixels .npy (H, W, C) fixture. */
static void load_expect(const char *name, struct fv_array *a) {
    struct fv_error err = {0};
    int rc = fv_npy_load(io_path(name), a, &err);
    if (rc != FV_OK) fail_msg("%s", err.msg);
    assert_int_equal(a->rank, 3);
}

/* Decodes `file` and compares with `expect` (max abs difference <= tol). */
static double check_decode(const char *file, const char *expect, double tol) {
    struct fv_image img;
    struct fv_error err = {0};
    int rc = fv_image_load(io_path(file), &img, &err);
    if (rc != FV_OK) fail_msg("%s", err.msg);
    struct fv_array e;
    load_expect(expect, &e);
    if ((size_t)img.h != e.dims[0] || (size_t)img.w != e.dims[1] || (size_t)img.c != e.dims[2])
        fail_msg("%s: decoded %dx%dx%d, expected %zux%zux%zu", file, img.h, img.w, img.c,
                 e.dims[0], e.dims[1], e.dims[2]);
    double worst = 0;
    for (size_t i = 0; i < e.count; i++) {
        double d = fabs((double)img.data[i] - (double)e.data[i]);
        if (d > worst || isnan(d)) worst = isnan(d) ? (double)INFINITY : d;
    }
    if (worst > tol) fail_msg("%s: max abs error %g > %g", file, worst, tol);
    fv_image_free(&img);
    fv_array_free(&e);
    return worst;
}

static void test_png_variants(void **state) {
    (void)state;
    static const char *const names[] = {
        "png_gray8",     "png_gray16",   "png_la8",         "png_la16",
        "png_rgb8",      "png_rgb16",    "png_rgba8",       "png_rgba16",
        "png_gray4",     "png_gray1",    "png_gray8_trns",  "png_pal8_trns",
        "png_pal2",      "png_rgb8_adam7", "png_gray16_adam7", "pil_rgb8",
        "pil_rgba8",     "pil_pal_trns", "pil_gray16",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char file[128], expect[128];
        snprintf(file, sizeof file, "%s.png", names[i]);
        snprintf(expect, sizeof expect, "%s.expect.npy", names[i]);
        /* 8-bit exact; 16-bit v/257 in float vs float64 */
        check_decode(file, expect, 1e-4);
    }
}

static void test_pnm_variants(void **state) {
    (void)state;
    static const char *const names[] = {"p6_255.ppm", "p5_255.pgm", "p5_65535.pgm",
                                        "p6_1000.ppm", "p6_100.ppm", "p6_1.ppm",
                                        "p3_ascii.ppm", "p2_ascii.pgm"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char expect[128];
        snprintf(expect, sizeof expect, "%s.expect.npy", names[i]);
        check_decode(names[i], expect, 1e-4);
    }
}

static void test_jpeg(void **state) {
    (void)state;
    /* PIL decodes with libjpeg(-turbo) too: same IDCT and upsampling, so
     * within one level; the smooth source survives quality 95 (4:4:4 chroma)
     * within a few levels. */
    check_decode("jpeg_rgb_q95.jpg", "jpeg_rgb_q95.pil.npy", 1.0);
    check_decode("jpeg_rgb_q95.jpg", "jpeg_rgb_q95.src.npy", 4.0);
    check_decode("jpeg_gray_q95.jpg", "jpeg_gray_q95.pil.npy", 1.0);
    check_decode("jpeg_gray_q95.jpg", "jpeg_gray_q95.src.npy", 3.0);
    check_decode("jpeg_rgb_prog.jpg", "jpeg_rgb_prog.pil.npy", 1.0);
    /* CMYK (Adobe, inverted) -> RGB as PIL converts it; PIL rounds to bytes */
    check_decode("jpeg_cmyk.jpg", "jpeg_cmyk.pil.npy", 1.0);
}

/* real_images.txt: "<rel path> W H C sum_0 .. sum_{C-1}" from PIL's decode. */
static void test_real_images(void **state) {
    (void)state;
    char *text = read_text(io_path("real_images.txt"), NULL);
    assert_non_null(text);
    int n = 0, n_ppm = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char rel[256];
        int w, h, c;
        long long sums[3] = {0, 0, 0};
        int got = sscanf(line, "%255s %d %d %d %lld %lld %lld", rel, &w, &h, &c, &sums[0],
                         &sums[1], &sums[2]);
        assert_true(got >= 5);
        struct fv_image img;
        struct fv_error err = {0};
        if (fv_image_load(shared_path(rel), &img, &err) != FV_OK) fail_msg("%s", err.msg);
        if (img.w != w || img.h != h || img.c != c)
            fail_msg("%s: %dx%dx%d, expected %dx%dx%d", rel, img.w, img.h, img.c, w, h, c);
        for (int k = 0; k < c; k++) {
            double s = 0;
            for (size_t i = (size_t)k; i < (size_t)w * (size_t)h * (size_t)c; i += (size_t)c)
                s += (double)img.data[i];
            if (s != (double)sums[k]) fail_msg("%s: channel %d sums to %.0f, PIL %lld", rel, k, s, sums[k]);
        }
        fv_image_free(&img);
        n++;
        if (strstr(rel, ".ppm")) n_ppm++;
    }
    free(text);
    assert_int_equal(n, 43 + 8);
    assert_int_equal(n_ppm, 8);

    /* sizes from ../shared/keras-real/README.md */
    static const struct {
        const char *name;
        int w, h;
    } ppm[] = {{"gtsrb_00001_00002_00029.ppm", 74, 70},   {"gtsrb_00012_00002_00029.ppm", 178, 185},
               {"gtsrb_00013_00002_00029.ppm", 75, 80},   {"gtsrb_00014_00002_00029.ppm", 77, 76},
               {"gtsrb_00017_00002_00029.ppm", 36, 52},   {"gtsrb_00025_00002_00029.ppm", 200, 182},
               {"gtsrb_00033_00002_00029.ppm", 140, 134}, {"gtsrb_00038_00002_00029.ppm", 90, 92}};
    for (size_t i = 0; i < sizeof ppm / sizeof ppm[0]; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "keras-real/images/%s", ppm[i].name);
        struct fv_image img;
        struct fv_error err = {0};
        if (fv_image_load(shared_path(rel), &img, &err) != FV_OK) fail_msg("%s", err.msg);
        assert_int_equal(img.w, ppm[i].w);
        assert_int_equal(img.h, ppm[i].h);
        assert_int_equal(img.c, 3);
        fv_image_free(&img);
    }
}

/* ---- bad inputs ---- */

static void write_bytes(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Writes the first `keep` bytes (negative: all but -keep) of a fixture. */
static const char *truncated_copy(const char *fixture, long keep, const char *out) {
    size_t len;
    char *buf = read_text(io_path(fixture), &len);
    assert_non_null(buf);
    size_t n = keep >= 0 ? (size_t)keep : len - (size_t)(-keep);
    assert_true(n < len);
    const char *p = tmp_path(out);
    write_bytes(p, buf, n);
    free(buf);
    return p;
}

static void expect_load_error(const char *path, const char *needle) {
    struct fv_image img = {0, 0, 0, NULL};
    struct fv_error err = {0};
    int rc = fv_image_load(path, &img, &err);
    if (rc == FV_OK) fail_msg("%s: loaded, expected an error with '%s'", path, needle);
    assert_null(img.data);
    if (!strstr(err.msg, path)) fail_msg("message does not name the file: %s", err.msg);
    if (!strstr(err.msg, needle)) fail_msg("message lacks '%s': %s", needle, err.msg);
    assert_null(strchr(err.msg, '\n'));
}

static void test_bad_inputs(void **state) {
    (void)state;
    expect_load_error(truncated_copy("png_rgb8_adam7.png", 120, "trunc.png"), "truncated");
    expect_load_error(truncated_copy("pil_rgb8.png", -12, "noiend.png"), "truncated");
    expect_load_error(truncated_copy("p6_255.ppm", 60, "trunc.ppm"), "truncated pixel data");
    expect_load_error(truncated_copy("p3_ascii.ppm", 80, "trunc3.ppm"), "truncated pixel data");
    expect_load_error(truncated_copy("p6_255.ppm", 10, "trunchead.ppm"), "truncated");
    expect_load_error(truncated_copy("jpeg_rgb_q95.jpg", 700, "trunc.jpg"), "truncated");
    expect_load_error(truncated_copy("jpeg_rgb_q95.jpg", 40, "trunchead.jpg"), "JPEG");
    expect_load_error(truncated_copy("png_rgb8.png", 8, "magic_only.png"), "truncated");

    const char *txt = tmp_path("img.png");
    write_bytes(txt, "hello, not an image\n", 20);
    expect_load_error(txt, "not a PNG, PPM/PGM or JPEG image");
    const char *empty = tmp_path("empty.ppm");
    write_bytes(empty, "", 0);
    expect_load_error(empty, "empty");
    expect_load_error(tmp_path("does_not_exist.png"), "cannot open");

    /* a flipped byte inside IDAT: CRC error */
    size_t len;
    unsigned char *png = (unsigned char *)read_text(io_path("png_rgb8.png"), &len);
    assert_non_null(png);
    png[len - 30] ^= 0x55;
    const char *crc = tmp_path("crc.png");
    write_bytes(crc, png, len);
    free(png);
    expect_load_error(crc, "bad PNG");

    const char *ppm = tmp_path("bad_header.ppm");
    write_bytes(ppm, "P6\n4 x\n255\n", 11);
    expect_load_error(ppm, "height");
    ppm = tmp_path("big_maxval.ppm");
    write_bytes(ppm, "P5 1 1 70000\n\0\0", 15);
    expect_load_error(ppm, "maxval");
    ppm = tmp_path("above_maxval.pgm");
    write_bytes(ppm, "P5 2 1 10\n\x05\x0b", 12);
    expect_load_error(ppm, "maxval");
}

/* ---- names and directories ---- */

static void test_image_names(void **state) {
    (void)state;
    assert_true(fv_is_image_name("a.png"));
    assert_true(fv_is_image_name("dir.x/A.PNG"));
    assert_true(fv_is_image_name("x.JpEg"));
    assert_true(fv_is_image_name("x.jpg"));
    assert_true(fv_is_image_name("x.ppm"));
    assert_true(fv_is_image_name("x.pgm"));
    assert_true(fv_is_image_name("x.pnm"));
    assert_false(fv_is_image_name("x.png.txt"));
    assert_false(fv_is_image_name("png"));
    assert_false(fv_is_image_name(".png"));
    assert_false(fv_is_image_name("dir.png/readme"));
    assert_false(fv_is_image_name("x.gif"));
}

static void test_list_images(void **state) {
    (void)state;
    char **paths;
    int n;
    struct fv_error err = {0};
    if (fv_list_images(shared_path("gtsrb/samples"), &paths, &n, &err) != FV_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(n, 43);
    assert_non_null(strstr(paths[0], "/00_speed-limit-20km-h.png"));
    assert_non_null(strstr(paths[14], "/14_stop.png"));
    for (int i = 1; i < n; i++) assert_true(strcmp(paths[i - 1], paths[i]) < 0);
    fv_paths_free(paths, n);

    /* a directory of mixed entries */
    const char *dir = tmp_path("listdir");
    char p[4200];
    mkdir(dir, 0777);
    static const char *const files[] = {"b.PNG", "a.jpeg", "c.txt", "B.ppm", "noext"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        write_bytes(p, "x", 1);
    }
    snprintf(p, sizeof p, "%s/sub.png", dir);
    mkdir(p, 0777);
    if (fv_list_images(dir, &paths, &n, &err) != FV_OK) fail_msg("%s", err.msg);
    assert_int_equal(n, 3);
    snprintf(p, sizeof p, "%s/B.ppm", dir);
    assert_string_equal(paths[0], p);
    snprintf(p, sizeof p, "%s/a.jpeg", dir);
    assert_string_equal(paths[1], p);
    snprintf(p, sizeof p, "%s/b.PNG", dir);
    assert_string_equal(paths[2], p);
    fv_paths_free(paths, n);

    /* no images, and no directory */
    char nodir[4096];
    snprintf(nodir, sizeof nodir, "%s", tmp_path("listnone"));
    mkdir(nodir, 0777);
    snprintf(p, sizeof p, "%s/notes.txt", nodir);
    write_bytes(p, "x", 1);
    paths = (char **)1;
    assert_int_not_equal(fv_list_images(nodir, &paths, &n, &err), FV_OK);
    assert_null(paths);
    assert_non_null(strstr(err.msg, nodir));
    assert_non_null(strstr(err.msg, "no image"));
    const char *missing = tmp_path("listmissing");
    assert_int_not_equal(fv_list_images(missing, &paths, &n, &err), FV_OK);
    assert_non_null(strstr(err.msg, missing));
}

/* ---- writing ---- */

/* Number of entries of dir whose name starts with prefix. */
static int count_prefixed(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) n++;
    closedir(d);
    return n;
}

static void test_png_write(void **state) {
    (void)state;
    const int h = 5, w = 7;
    unsigned char pix[5 * 7 * 4];
    for (int c = 1; c <= 4; c++) {
        if (c == 2) continue;
        for (int i = 0; i < h * w * c; i++) pix[i] = (unsigned char)((i * 53 + c * 7) % 256);
        char name[64];
        snprintf(name, sizeof name, "write_c%d.png", c);
        const char *p = tmp_path(name);
        struct fv_error err = {0};
        if (fv_png_write(p, pix, h, w, c, &err) != FV_OK) fail_msg("%s", err.msg);
        struct fv_image img;
        if (fv_image_load(p, &img, &err) != FV_OK) fail_msg("%s", err.msg);
        int oc = c == 1 ? 1 : 3;
        assert_int_equal(img.h, h);
        assert_int_equal(img.w, w);
        assert_int_equal(img.c, oc);
        for (int i = 0; i < h * w; i++)
            for (int k = 0; k < oc; k++)
                assert_true(img.data[i * oc + k] == (float)pix[i * c + k]);
        fv_image_free(&img);
    }
    /* overwriting an existing file replaces it */
    const char *p = tmp_path("write_c3.png");
    struct fv_error err = {0};
    memset(pix, 9, sizeof pix);
    assert_int_equal(fv_png_write(p, pix, 2, 2, 1, &err), FV_OK);
    struct fv_image img;
    assert_int_equal(fv_image_load(p, &img, &err), FV_OK);
    assert_int_equal(img.h * img.w * img.c, 4);
    assert_true(img.data[3] == 9.0f);
    fv_image_free(&img);
    assert_int_equal(count_prefixed(FV_TMP_DIR, "write_c3.png.tmp"), 0);

    /* into a missing directory: error naming the path, nothing created */
    const char *bad = tmp_path("no_such_dir/out.png");
    assert_int_not_equal(fv_png_write(bad, pix, 2, 2, 3, &err), FV_OK);
    assert_non_null(strstr(err.msg, bad));
    struct stat st;
    assert_int_not_equal(stat(tmp_path("no_such_dir"), &st), 0);

    /* the final rename fails (target is a directory): the temp file is removed */
    const char *dir_target = tmp_path("is_a_dir.png");
    mkdir(dir_target, 0777);
    assert_int_not_equal(fv_png_write(dir_target, pix, 2, 2, 3, &err), FV_OK);
    assert_non_null(strstr(err.msg, dir_target));
    assert_int_equal(count_prefixed(FV_TMP_DIR, "is_a_dir.png.tmp"), 0);

    /* bad arguments */
    assert_int_equal(fv_png_write(tmp_path("c2.png"), pix, 2, 2, 2, &err), FV_ERR_USAGE);
    assert_int_not_equal(stat(tmp_path("c2.png"), &st), 0);
}

static void test_tmpfile(void **state) {
    (void)state;
    struct fv_tmpfile t;
    struct fv_error err = {0};
    const char *p = tmp_path("tmpfile_abort.txt");
    unlink(p);
    assert_int_equal(fv_tmpfile_open(&t, p, &err), FV_OK);
    fputs("half", (FILE *)t.fp);
    fv_tmpfile_abort(&t);
    fv_tmpfile_abort(&t); /* idempotent */
    struct stat st;
    assert_int_not_equal(stat(p, &st), 0);
    assert_int_equal(count_prefixed(FV_TMP_DIR, "tmpfile_abort.txt.tmp"), 0);

    p = tmp_path("tmpfile_commit.txt");
    assert_int_equal(fv_tmpfile_open(&t, p, &err), FV_OK);
    assert_non_null(strstr(t.tmp, "tmpfile_commit.txt.tmp."));
    fputs("whole\n", (FILE *)t.fp);
    assert_int_equal(fv_tmpfile_commit(&t, &err), FV_OK);
    char *s = read_text(p, NULL);
    assert_string_equal(s, "whole\n");
    free(s);
    assert_int_not_equal(fv_tmpfile_commit(&t, &err), FV_OK); /* already committed */
    fv_tmpfile_abort(&t);                                     /* harmless */
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(count_prefixed(FV_TMP_DIR, "tmpfile_commit.txt.tmp"), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_variants), cmocka_unit_test(test_pnm_variants),
        cmocka_unit_test(test_jpeg),         cmocka_unit_test(test_real_images),
        cmocka_unit_test(test_bad_inputs),   cmocka_unit_test(test_image_names),
        cmocka_unit_test(test_list_images),  cmocka_unit_test(test_png_write),
        cmocka_unit_test(test_tmpfile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
