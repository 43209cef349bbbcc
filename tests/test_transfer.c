/* `featviz transfer`, run as users run it: the class images of a model judged
 * by that same model must be recognized exactly where `featviz classes`
 * reported rank 1 (two code paths: the optimizer's evaluation and the judge's
 * own plan, preprocessing and downsample); a permuting class_map moves every
 * prediction; bad judges give one clear error and a non-zero exit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static char dir[1024];

static int setup(void **state) {
    (void)state;
    char *out = NULL;
    snprintf(dir, sizeof dir, "%stransfer_cls", tmp_path(""));
    int rc = run_capture(&out, "%s classes %s --steps 40 --size 2x -o %s", FV_BINARY, data_path("golden/cl_convnet.h5"), dir);
    if (rc) printf("%s", out);
    free(out);
    return rc;
}

/* rank (5th) and probability (4th) columns of classes.csv per image */
static int ranks(int *rank, double *prob, int cap) {
    char path[1200], line[512];
    snprintf(path, sizeof path, "%s/classes.csv", dir);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0;
    if (!fgets(line, sizeof line, f)) n = -1;
    while (n >= 0 && n < cap && fgets(line, sizeof line, f)) {
        char *p = line;
        for (int k = 0; k < 3 && p; k++) p = strchr(p + 1, ',');
        prob[n] = p ? atof(p + 1) : -1;
        if (p) p = strchr(p + 1, ',');
        rank[n++] = p ? atoi(p + 1) : -1;
    }
    fclose(f);
    return n;
}

static void test_self_judge_matches_ranks(void **state) {
    (void)state;
    int rank[64];
    double prob[64];
    int n = ranks(rank, prob, 64);
    assert_true(n > 1);
    char *out = NULL, path[1200];
    int rc = run_capture(&out, "%s transfer %s --input %s --judges %s -o %s/t1", FV_BINARY, data_path("golden/cl_convnet.h5"), dir,
                         data_path("golden/cl_convnet.h5"), dir);
    printf("%s", out);
    free(out);
    assert_int_equal(rc, 0);
    snprintf(path, sizeof path, "%s/t1/transfer.csv", dir);
    char *csv = read_text(path, NULL);
    assert_non_null(csv);
    char *line = strchr(csv, '\n') + 1;
    for (int i = 0; i < n; i++) {
        char *end = strchr(line, '\n');
        assert_non_null(end);
        *end = 0;
        int recognized = line[strlen(line) - 1] - '0';
        if (recognized != (rank[i] == 1)) fail_msg("image %d: judge says %d, classes rank %d", i, recognized, rank[i]);
        /* image,class,judge,predicted,probability,recognized: the top class's probability */
        char *q = strrchr(line, ',');
        *q = 0;
        double p = atof(strrchr(line, ',') + 1);
        if (rank[i] == 1 && !(p > prob[i] - 1e-4 && p < prob[i] + 1e-4))
            fail_msg("image %d: judge's probability %g, classes' %g", i, p, prob[i]);
        line = end + 1;
    }
    free(csv);
}

static void test_class_map_and_errors(void **state) {
    (void)state;
    char ini[1200], map[1200], *out = NULL;
    snprintf(map, sizeof map, "%s/shift.txt", dir);
    FILE *f = fopen(map, "w");
    assert_non_null(f);
    for (int k = 0; k < 64; k++) fprintf(f, "%d\n", k + 100); /* no output means any class */
    fclose(f);
    snprintf(ini, sizeof ini, "%s/judge.ini", dir);
    f = fopen(ini, "w");
    assert_non_null(f);
    fprintf(f, "[model]\npath = %s\nclass_map = %s\n", data_path("golden/cl_convnet.h5"), map);
    fclose(f);
    int rc = run_capture(&out, "%s transfer %s --input %s --judges %s -o %s/t2", FV_BINARY, data_path("golden/cl_convnet.h5"), dir, ini, dir);
    printf("%s", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "mean transfer 0.000"));
    free(out);
    /* a bad line in the map: exit 1, naming the file and line */
    f = fopen(map, "w");
    fprintf(f, "3\nseven\n");
    fclose(f);
    rc = run_capture(&out, "%s transfer %s --input %s --judges %s -o %s/t3", FV_BINARY, data_path("golden/cl_convnet.h5"), dir, ini, dir);
    printf("%s", out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "shift.txt:2"));
    free(out);
    /* no judges: a usage error */
    rc = run_capture(&out, "%s transfer %s --input %s -o %s/t4", FV_BINARY, data_path("golden/cl_convnet.h5"), dir, dir);
    assert_int_equal(rc, 2);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_self_judge_matches_ranks),
        cmocka_unit_test(test_class_map_and_errors),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
