/* Class-name files: the real GTSRB signnames.csv and Teachable Machine
 * labels.txt from ../shared/keras-real, plus small hand-written files in
 * tests/data/io/ (made by tests/tools/make_io_fixtures.py). */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "featviz/labels.h"

static const char *io_path(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "io/%s", name);
    return data_path(rel);
}

static void load_ok(const char *path, struct fv_labels *l) {
    struct fv_error err = {0};
    if (fv_labels_load(path, l, &err) != FV_OK) fail_msg("%s", err.msg);
}

static void test_signnames(void **state) {
    (void)state;
    struct fv_labels l;
    load_ok(shared_path("keras-real/signnames.csv"), &l);
    assert_int_equal(l.n, 43);
    assert_string_equal(fv_labels_get(&l, 0), "Speed limit (20km/h)");
    assert_string_equal(fv_labels_get(&l, 14), "Stop");
    assert_string_equal(fv_labels_get(&l, 42),
                        "End of no passing by vehicles over 3.5 metric tons");
    for (int i = 0; i < 43; i++) assert_non_null(fv_labels_get(&l, i));
    assert_null(fv_labels_get(&l, 43));
    assert_null(fv_labels_get(&l, -1));
    fv_labels_free(&l);
    fv_labels_free(&l); /* twice is harmless */
}

static void test_teachable(void **state) {
    (void)state;
    struct fv_labels l;
    load_ok(shared_path("keras-real/teachable_nested_mobilenetv2_tfkeras2.4_224.labels.txt"), &l);
    assert_int_equal(l.n, 4);
    assert_string_equal(fv_labels_get(&l, 0), "cardboard");
    assert_string_equal(fv_labels_get(&l, 1), "plastic");
    assert_string_equal(fv_labels_get(&l, 2), "glass");
    assert_string_equal(fv_labels_get(&l, 3), "metal");
    fv_labels_free(&l);

    /* "0 zero / 1 one / 3 three": not every line carries its own index */
    load_ok(io_path("labels_not_indexed.txt"), &l);
    assert_int_equal(l.n, 3);
    assert_string_equal(fv_labels_get(&l, 0), "0 zero");
    assert_string_equal(fv_labels_get(&l, 2), "3 three");
    fv_labels_free(&l);
}

static void test_plain(void **state) {
    (void)state;
    /* "cat\r\ndog  \r\n\r\nhot dog\t\nzebra\n\n  \n" */
    struct fv_labels l;
    load_ok(io_path("labels_plain.txt"), &l);
    assert_int_equal(l.n, 5);
    assert_string_equal(fv_labels_get(&l, 0), "cat");
    assert_string_equal(fv_labels_get(&l, 1), "dog");
    assert_null(fv_labels_get(&l, 2)); /* blank line inside: no name */
    assert_string_equal(fv_labels_get(&l, 3), "hot dog");
    assert_string_equal(fv_labels_get(&l, 4), "zebra");
    fv_labels_free(&l);
}

static void test_quoted_csv(void **state) {
    (void)state;
    /* columns SignName, ClassId, Extra; quoted commas and "" escapes; a gap */
    struct fv_labels l;
    load_ok(io_path("labels_quoted.csv"), &l);
    assert_int_equal(l.n, 3);
    assert_string_equal(fv_labels_get(&l, 0), "Speed limit (20km/h)");
    assert_string_equal(fv_labels_get(&l, 1), "plain name");
    assert_string_equal(fv_labels_get(&l, 2), "Say \"stop\", please");
    fv_labels_free(&l);
}

static void expect_error(const char *file, const char *needle) {
    struct fv_labels l;
    struct fv_error err = {0};
    const char *p = io_path(file);
    if (fv_labels_load(p, &l, &err) == FV_OK) fail_msg("%s: loaded, expected an error", file);
    assert_int_equal(l.n, 0);
    assert_null(l.names);
    if (!strstr(err.msg, p)) fail_msg("message does not name the file: %s", err.msg);
    if (!strstr(err.msg, needle)) fail_msg("message lacks '%s': %s", needle, err.msg);
}

static void test_errors(void **state) {
    (void)state;
    expect_error("labels_bad_id.csv", ":3: ClassId 'x'");
    expect_error("labels_dup.csv", ":4: duplicate ClassId 0");
    expect_error("labels_unterminated.csv", ":2: unterminated");
    expect_error("labels_half_header.csv", ":1: CSV header needs both");
    expect_error("labels_empty.txt", "no class names");
    expect_error("no_such_labels.txt", "cannot open");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signnames),  cmocka_unit_test(test_teachable),
        cmocka_unit_test(test_plain),      cmocka_unit_test(test_quoted_csv),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
