/* .npy reading (every dtype, format versions 1-3, streaming rows) and writing.
 * References: files written by numpy (tests/tools/make_io_fixtures.py) whose
 * values follow formula() below, numpy.save's own bytes for fv_npy_save, and
 * rows of ../shared/gtsrb/train48_x.npy copied out by numpy. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "featviz/image.h"

static const char *io_path(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "io/%s", name);
    return data_path(rel);
}

/* Same as formula() in make_io_fixtures.py. */
static double formula(size_t i, char kind) {
    long v = (long)((i * 37) % 101);
    switch (kind) {
    case 'u':
        return (double)v;
    case 'i':
        return (double)(v - 50);
    case 'b':
        return v % 3 == 0 ? 1.0 : 0.0;
    default:
        return (double)(v - 50) * 0.25;
    }
}

static void load_ok(const char *name, struct fv_array *a) {
    struct fv_error err = {0};
    if (fv_npy_load(io_path(name), a, &err) != FV_OK) fail_msg("%s", err.msg);
}

static void check_formula(const char *name, const struct fv_array *a, char kind) {
    for (size_t i = 0; i < a->count; i++)
        if ((double)a->data[i] != formula(i, kind))
            fail_msg("%s[%zu] = %g, expected %g", name, i, (double)a->data[i], formula(i, kind));
}

static void test_dtypes(void **state) {
    (void)state;
    static const char *const codes[] = {"f2", "f4", "f8", "u1", "i1", "u2",
                                        "i2", "u4", "i4", "u8", "i8", "b1"};
    for (size_t k = 0; k < sizeof codes / sizeof codes[0]; k++) {
        char name[64];
        snprintf(name, sizeof name, "npy_%s.npy", codes[k]);
        struct fv_array a;
        load_ok(name, &a);
        assert_int_equal(a.rank, 3);
        assert_int_equal(a.dims[0], 2);
        assert_int_equal(a.dims[1], 3);
        assert_int_equal(a.dims[2], 4);
        assert_int_equal(a.count, 24);
        assert_string_equal(a.dtype, codes[k]);
        check_formula(name, &a, codes[k][0]);
        fv_array_free(&a);
    }
}

static void test_versions_and_shapes(void **state) {
    (void)state;
    static const char *const v[] = {"npy_v2.npy", "npy_v3.npy"};
    for (int k = 0; k < 2; k++) {
        struct fv_array a;
        load_ok(v[k], &a);
        assert_int_equal(a.rank, 2);
        assert_int_equal(a.dims[0], 3);
        assert_int_equal(a.dims[1], 5);
        check_formula(v[k], &a, 'f');
        fv_array_free(&a);
    }
    struct fv_array a;
    load_ok("npy_rank0.npy", &a);
    assert_int_equal(a.rank, 0);
    assert_int_equal(a.count, 1);
    assert_true(a.data[0] == -12.5f);
    fv_array_free(&a);

    load_ok("npy_empty.npy", &a);
    assert_int_equal(a.rank, 2);
    assert_int_equal(a.dims[0], 0);
    assert_int_equal(a.dims[1], 3);
    assert_int_equal(a.count, 0);
    fv_array_free(&a);

    load_ok("npy_rank8.npy", &a);
    assert_int_equal(a.rank, 8);
    for (int i = 0; i < 8; i++) assert_int_equal(a.dims[i], i % 2 ? 2 : 1);
    assert_int_equal(a.count, 16);
    check_formula("npy_rank8.npy", &a, 'f');
    fv_array_free(&a);
}

/* ---- errors ---- */

static void write_bytes(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* A version 1.0 file with the given header dict and `data` raw bytes. */
static const char *handmade(const char *name, const char *dict, size_t data) {
    size_t n = strlen(dict);
    size_t total = 10 + n + 1 + data;
    unsigned char *buf = calloc(1, total);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)((n + 1) & 0xff);
    buf[9] = (unsigned char)((n + 1) >> 8);
    memcpy(buf + 10, dict, n);
    buf[10 + n] = '\n';
    const char *p = tmp_path(name);
    write_bytes(p, buf, total);
    free(buf);
    return p;
}

static void expect_error(const char *path, const char *needle) {
    struct fv_array a;
    struct fv_error err = {0};
    int rc = fv_npy_load(path, &a, &err);
    if (rc == FV_OK) fail_msg("%s: loaded, expected an error with '%s'", path, needle);
    assert_null(a.data);
    if (!strstr(err.msg, path)) fail_msg("message does not name the file: %s", err.msg);
    if (!strstr(err.msg, needle)) fail_msg("message lacks '%s': %s", needle, err.msg);
}

static const char *cut_copy(const char *fixture, long delta, const char *out) {
    size_t len;
    char *buf = read_text(io_path(fixture), &len);
    assert_non_null(buf);
    size_t n = delta < 0 ? len - (size_t)(-delta) : len + (size_t)delta;
    char *b2 = calloc(1, n + 1);
    memcpy(b2, buf, n < len ? n : len);
    const char *p = tmp_path(out);
    write_bytes(p, b2, n);
    free(buf);
    free(b2);
    return p;
}

static void test_errors(void **state) {
    (void)state;
    expect_error(io_path("npy_fortran.npy"), "Fortran");
    expect_error(io_path("npy_bigendian.npy"), "little-endian");
    expect_error(io_path("npy_structured.npy"), "descr");
    expect_error(cut_copy("npy_f4.npy", -4, "cut.npy"), "truncated");
    expect_error(cut_copy("npy_f4.npy", -200, "cut_header.npy"), "truncated");
    expect_error(cut_copy("npy_f4.npy", 3, "long.npy"), "unexpected bytes");
    expect_error(tmp_path("missing.npy"), "cannot open");
    const char *p = tmp_path("text.npy");
    write_bytes(p, "just some text here\n", 20);
    expect_error(p, "not a .npy");
    expect_error(handmade("ovf.npy",
                          "{'descr': '<f4', 'fortran_order': False, "
                          "'shape': (4294967296, 4294967296, 4294967296), }",
                          0),
                 "overflow");
    expect_error(handmade("rank9.npy",
                          "{'descr': '<f4', 'fortran_order': False, "
                          "'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1), }",
                          4),
                 "more than 8");
    expect_error(handmade("c8.npy", "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", 8),
                 "unsupported dtype");
    expect_error(handmade("nokey.npy", "{'descr': '<f4', 'shape': (1,), }", 4), "lacks");
    expect_error(handmade("garbage.npy", "[1, 2, 3]", 4), "bad .npy header");
    expect_error(handmade("digits.npy",
                          "{'descr': '<f4', 'fortran_order': False, "
                          "'shape': (99999999999999999999999,), }",
                          4),
                 "shape");

    /* Python 2 era spellings still load: double quotes, 3L, no trailing comma */
    struct fv_array a;
    struct fv_error err = {0};
    const char *py2 = handmade("py2.npy",
                               "{\"descr\": \"<i2\", \"fortran_order\": False, \"shape\": (3L,)}", 6);
    if (fv_npy_load(py2, &a, &err) != FV_OK) fail_msg("%s", err.msg);
    assert_int_equal(a.rank, 1);
    assert_int_equal(a.count, 3);
    fv_array_free(&a);
    /* fortran_order True is harmless for one dimension */
    const char *f1 = handmade("f1.npy", "{'descr': '|u1', 'fortran_order': True, 'shape': (5,), }",
                              5);
    if (fv_npy_load(f1, &a, &err) != FV_OK) fail_msg("%s", err.msg);
    fv_array_free(&a);
}

/* ---- streaming ---- */

static void test_stream_gtsrb(void **state) {
    (void)state;
    struct fv_npy_reader *r;
    struct fv_array h;
    struct fv_error err = {0};
    if (fv_npy_open(shared_path("gtsrb/train48_x.npy"), &r, &h, &err) != FV_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(h.rank, 4);
    assert_int_equal(h.dims[0], 11690);
    assert_int_equal(h.dims[1], 48);
    assert_int_equal(h.dims[2], 48);
    assert_int_equal(h.dims[3], 3);
    assert_null(h.data);

    struct fv_array ref; /* rows 0, 1, 5000, 11689 as numpy sliced them */
    load_ok("gtsrb_rows.npy", &ref);
    size_t row = 48 * 48 * 3;
    assert_int_equal(ref.count, 4 * row);
    float *buf = malloc(2 * row * sizeof(float));
    static const struct {
        size_t first, rows, ref_row;
    } reads[] = {{0, 2, 0}, {5000, 1, 2}, {11689, 1, 3}, {0, 1, 0}};
    for (size_t k = 0; k < sizeof reads / sizeof reads[0]; k++) {
        if (fv_npy_read_rows(r, reads[k].first, reads[k].rows, buf, &err) != FV_OK)
            fail_msg("%s", err.msg);
        assert_memory_equal(buf, ref.data + reads[k].ref_row * row,
                            reads[k].rows * row * sizeof(float));
    }
    assert_int_equal(fv_npy_read_rows(r, 11690, 0, buf, &err), FV_OK);
    assert_int_not_equal(fv_npy_read_rows(r, 11689, 2, buf, &err), FV_OK);
    assert_non_null(strstr(err.msg, "train48_x.npy"));
    assert_non_null(strstr(err.msg, "out of range"));
    assert_int_not_equal(fv_npy_read_rows(r, (size_t)-1, 2, buf, &err), FV_OK);
    free(buf);
    fv_array_free(&ref);
    fv_npy_close(r);
    fv_npy_close(NULL);
}

static void test_stream_small(void **state) {
    (void)state;
    struct fv_npy_reader *r;
    struct fv_array h;
    struct fv_error err = {0};
    if (fv_npy_open(io_path("npy_f8.npy"), &r, &h, &err) != FV_OK) fail_msg("%s", err.msg);
    float out[12];
    assert_int_equal(fv_npy_read_rows(r, 1, 1, out, &err), FV_OK);
    for (size_t i = 0; i < 12; i++) assert_true((double)out[i] == formula(12 + i, 'f'));
    fv_npy_close(r);
    assert_int_not_equal(fv_npy_open(io_path("npy_fortran.npy"), &r, &h, &err), FV_OK);
    assert_null(r);
}

/* ---- writing ---- */

/* The streaming writer filled in pieces at their places, last piece first
 * (as threads finish them), gives numpy.save's bytes too. */
static void test_write_at_matches_numpy(void **state) {
    (void)state;
    static const struct {
        const char *tag;
        int rank;
        size_t dims[8];
        size_t piece;
    } cases[] = {{"2x3", 2, {2, 3}, 3}, {"5", 1, {5}, 2}, {"2x3x4x1", 4, {2, 3, 4, 1}, 5},
                 {"rank8", 8, {1, 2, 1, 2, 1, 2, 1, 2}, 16}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t count = 1;
        for (int i = 0; i < cases[k].rank; i++) count *= cases[k].dims[i];
        float *x = malloc(count * sizeof(float));
        assert_non_null(x);
        for (size_t i = 0; i < count; i++) x[i] = (float)formula(i, 'f');
        char name[64];
        snprintf(name, sizeof name, "npy_save_%s.npy", cases[k].tag);
        const char *out = tmp_path(name);
        struct fv_error err = {0};
        struct fv_npy_writer w;
        if (fv_npy_writer_open(&w, out, cases[k].rank, cases[k].dims, &err)) fail_msg("%s", err.msg);
        size_t p = cases[k].piece, last = (count - 1) / p * p;
        for (size_t at = last + p; at > 0;) {
            at -= p;
            size_t n = count - at < p ? count - at : p;
            if (fv_npy_writer_write_at(&w, x + at, n, at, &err)) fail_msg("%s", err.msg);
        }
        if (fv_npy_writer_commit(&w, &err)) fail_msg("%s", err.msg);
        size_t n_ours, n_ref;
        char *ours = read_text(out, &n_ours);
        char *ref = read_text(io_path(name), &n_ref);
        assert_non_null(ours);
        assert_non_null(ref);
        if (n_ours != n_ref || memcmp(ours, ref, n_ref) != 0)
            fail_msg("%s written in pieces: %zu bytes differ from numpy.save's %zu", name, n_ours, n_ref);
        free(ours);
        free(ref);
        free(x);
    }
}

static void test_save_matches_numpy(void **state) {
    (void)state;
    static const struct {
        const char *tag;
        int rank;
        size_t dims[8];
    } cases[] = {{"2x3", 2, {2, 3}},
                 {"5", 1, {5}},
                 {"scalar", 0, {0}},
                 {"2x3x4x1", 4, {2, 3, 4, 1}},
                 {"100001x0", 2, {100001, 0}},
                 {"rank8", 8, {1, 2, 1, 2, 1, 2, 1, 2}}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t count = 1;
        for (int i = 0; i < cases[k].rank; i++) count *= cases[k].dims[i];
        float *x = malloc((count ? count : 1) * sizeof(float));
        for (size_t i = 0; i < count; i++) x[i] = (float)formula(i, 'f');
        char name[64];
        snprintf(name, sizeof name, "npy_save_%s.npy", cases[k].tag);
        const char *out = tmp_path(name);
        struct fv_error err = {0};
        if (fv_npy_save(out, x, cases[k].rank, cases[k].dims, &err) != FV_OK)
            fail_msg("%s", err.msg);
        size_t n_ours, n_ref;
        char *ours = read_text(out, &n_ours);
        char *ref = read_text(io_path(name), &n_ref);
        assert_non_null(ours);
        assert_non_null(ref);
        if (n_ours != n_ref || memcmp(ours, ref, n_ref) != 0)
            fail_msg("%s: %zu bytes differ from numpy.save's %zu", name, n_ours, n_ref);
        free(ours);
        free(ref);
        /* and it reads back */
        struct fv_array a;
        if (fv_npy_load(out, &a, &err) != FV_OK) fail_msg("%s", err.msg);
        assert_int_equal(a.rank, cases[k].rank);
        assert_int_equal(a.count, count);
        if (count) assert_memory_equal(a.data, x, count * sizeof(float));
        fv_array_free(&a);
        free(x);
    }
    /* failures leave nothing behind */
    float one = 1.0f;
    size_t d1 = 1;
    struct fv_error err = {0};
    const char *bad = tmp_path("no_dir_npy/x.npy");
    assert_int_not_equal(fv_npy_save(bad, &one, 1, &d1, &err), FV_OK);
    assert_non_null(strstr(err.msg, bad));
    struct stat st;
    assert_int_not_equal(stat(tmp_path("no_dir_npy"), &st), 0);
    assert_int_equal(fv_npy_save(tmp_path("r9.npy"), &one, 9, &d1, &err), FV_ERR_USAGE);
    assert_int_not_equal(stat(tmp_path("r9.npy"), &st), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtypes),       cmocka_unit_test(test_versions_and_shapes),
        cmocka_unit_test(test_errors),       cmocka_unit_test(test_stream_gtsrb),
        cmocka_unit_test(test_stream_small), cmocka_unit_test(test_save_matches_numpy),
        cmocka_unit_test(test_write_at_matches_numpy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
