/* Issue 17, "found when tried as a new user would": each case run as a user
 * runs it (the featviz binary), with the exit code and the one line it must
 * print. Under ASan the use-after-free and the huge allocations would abort. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define DEMO FV_SOURCE_DIR "/models/gtsrb32.h5"
#define STOP FV_SOURCE_DIR "/examples/14_stop.png"
#define GOLD(x) data_path("golden/" x)
#define BAD(x) data_path("bad/" x)

static const char *hostile(const char *name) {
    static char b[1024];
    snprintf(b, sizeof b, "%s/hostile/%s", FV_TEST_DATA, name);
    return b;
}

static int lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* Runs featviz ARGS (under a 60 s timeout: an endless read fails, not hangs);
 * wants exit code `want` and every needle in its output. */
static void expect(int want, const char *args, const char *n1, const char *n2) {
    char *out = NULL;
    int rc = run_capture(&out, "timeout 60 %s %s", FV_BINARY, args);
    printf("$ featviz %s\n%s(exit %d)\n", args, out, rc);
    assert_int_equal(rc, want);
    if (n1) assert_non_null(strstr(out, n1));
    if (n2) assert_non_null(strstr(out, n2));
    if (want) assert_int_equal(lines(out), 1);
    free(out);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* parse_lambdas printed its token after freeing the buffer it points into */
static void test_lambda_errors(void **state) {
    (void)state;
    char a[4096];
    snprintf(a, sizeof a, "predict %s %s --lambda foo", DEMO, STOP);
    expect(2, a, "--lambda: lambda 'foo' is not NAME=identity", NULL);
    snprintf(a, sizeof a, "predict %s %s --lambda 'x=1,abc'", DEMO, STOP);
    expect(2, a, "lambda 'x=1,abc' is not", NULL);
    snprintf(a, sizeof a, "predict %s %s --set model.lambda=lambda_1=", DEMO, STOP);
    expect(2, a, "--set: lambda 'lambda_1=' is not", NULL);
    snprintf(a, sizeof a, "predict %s %s --lambda 'a=identity b=2,1 c'", DEMO, STOP);
    expect(2, a, "lambda 'c' is not", NULL);
}

/* declared sizes are checked before anything is allocated */
static void test_image_size_caps(void **state) {
    (void)state;
    char a[4096];
    const char *huge[] = {"huge_100000.png", "huge_100000.ppm", "huge_65000.jpg"};
    for (int i = 0; i < 3; i++) {
        snprintf(a, sizeof a, "predict %s %s", DEMO, hostile(huge[i]));
        expect(1, a, huge[i], "pixels is above the limit of 50000000 pixels (raise it with --max-image-pixels");
    }
    snprintf(a, sizeof a, "predict %s %s", DEMO, hostile("huge_65000.jpg"));
    expect(1, a, "65000x65000", "--max-image-pixels");
    /* under the limit (or above a raised one), the file's size still refuses them */
    const char *mid[] = {"mid_3000.png", "mid_3000.pgm", "mid_6000.jpg"};
    for (int i = 0; i < 3; i++) {
        snprintf(a, sizeof a, "predict %s %s --max-image-pixels 2000000000", DEMO, hostile(mid[i]));
        expect(1, a, "more than its", "bytes can hold");
    }
    /* the limit is a real limit: the 52x52 stop sign is 2704 pixels */
    snprintf(a, sizeof a, "predict %s %s --max-image-pixels 2000", DEMO, STOP);
    expect(1, a, "above the limit of 2000 pixels", NULL);
    /* dream at the image's own size (dream.size = 0) goes through the same cap */
    snprintf(a, sizeof a, "dream %s %s --layer conv2d_1 -o %s", DEMO, hostile("huge_100000.png"), tmp_path("hostile_dream.png"));
    expect(1, a, "above the limit", NULL);
}

static void test_model_limits(void **state) {
    (void)state;
    char a[4096];
    snprintf(a, sizeof a, "info %s", BAD("declared_huge.h5"));
    expect(1, a, "needs 3600000000 bytes", "--max-model-mb");
    snprintf(a, sizeof a, "info %s --max-model-mb 1", GOLD("cl_convnet.h5"));
    expect(0, a, NULL, NULL);
}

/* endless inputs end with an error */
static void test_endless_inputs(void **state) {
    (void)state;
    char a[4096];
    snprintf(a, sizeof a, "predict %s %s --labels /dev/zero", DEMO, STOP);
    expect(1, a, "/dev/zero: labels file larger than", NULL);
    snprintf(a, sizeof a, "predict %s %s --config /dev/zero", DEMO, STOP);
    expect(2, a, "/dev/zero", NULL);
    snprintf(a, sizeof a, "info %s --arch /dev/zero", GOLD("cl_convnet.h5"));
    expect(1, a, "/dev/zero", NULL);
}

/* -o replaces only regular files */
static void test_output_not_regular(void **state) {
    (void)state;
    char a[4096];
    const char *fifo = tmp_path("hostile_fifo.png");
    unlink(fifo);
    assert_int_equal(mkfifo(fifo, 0644), 0);
    snprintf(a, sizeof a, "dream %s %s --layer conv2d_1 --size 32 --octaves 1 --steps 1 -o %s", DEMO, STOP, fifo);
    expect(2, a, "exists and is not a regular file", NULL);
    struct stat st;
    assert_int_equal(lstat(fifo, &st), 0);
    assert_true(S_ISFIFO(st.st_mode)); /* still the FIFO */
    unlink(fifo);
}

/* a SIGKILLed writer's temporary file is removed by the next run into the
 * folder; a live writer's (it holds its lock) is not */
static void test_stale_tmp_swept(void **state) {
    (void)state;
    char dir[1024], stale[1200], live[1200], a[4096];
    snprintf(dir, sizeof dir, "%s", tmp_path("hostile_sweep"));
    mkdir(dir, 0755);
    snprintf(stale, sizeof stale, "%s/dream.png.tmp.Ab12Cd", dir);
    snprintf(live, sizeof live, "%s/other.png.tmp.Zz99Yy", dir);
    write_file(stale, "half a PNG");
    write_file(live, "being written");
    struct timeval old[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
    assert_int_equal(utimes(stale, old), 0);
    assert_int_equal(utimes(live, old), 0);
    int fd = open(live, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    snprintf(a, sizeof a, "dream %s %s --layer conv2d_1 --size 32 --octaves 1 --steps 1 -o %s/dream.png", DEMO, STOP, dir);
    char *out = NULL;
    assert_int_equal(run_capture(&out, "%s %s", FV_BINARY, a), 0);
    free(out);
    struct stat st;
    assert_int_not_equal(stat(stale, &st), 0); /* removed */
    assert_int_equal(stat(live, &st), 0);      /* kept */
    close(fd);
}

static void test_clear_messages(void **state) {
    (void)state;
    char a[4096], p[1200];
    snprintf(a, sizeof a, "predict %s %s --mean 1,2,3,4", DEMO, STOP);
    expect(2, a, "model.mean has 4 values; the model has 3 channels", NULL);
    snprintf(a, sizeof a, "predict %s %s --mean ,", DEMO, STOP);
    expect(2, a, "is not a comma-separated list of numbers", NULL);
    snprintf(a, sizeof a, "predict %s %s --mean 1,,2", DEMO, STOP);
    expect(2, a, "is not a comma-separated list of numbers", NULL);
    snprintf(a, sizeof a, "predict %s %s --top 1e12", DEMO, STOP);
    expect(2, a, "'1e12' is out of range", NULL);
    snprintf(a, sizeof a, "classes %s --seed 5000000000", DEMO);
    expect(2, a, "out of range", NULL);

    snprintf(p, sizeof p, "%s", tmp_path("hostile_nomodel.ini"));
    write_file(p, "[output]\ndir = x\n[classes]\nsteps = 2\n");
    snprintf(a, sizeof a, "run %s", p);
    expect(2, a, "hostile_nomodel.ini: no model", "model.path");

    snprintf(p, sizeof p, "%s", tmp_path("hostile_emptydir.ini"));
    write_file(p, "[output]\ndir =\n");
    snprintf(a, sizeof a, "classes %s --config %s", DEMO, p);
    expect(2, a, "hostile_emptydir.ini:2: output.dir is empty", NULL);

    /* a 300-character line: one error naming the line, not two half lines */
    snprintf(p, sizeof p, "%s", tmp_path("hostile_long.ini"));
    char longline[400] = "[model]\nlambda = ";
    for (int i = 0; i < 30; i++) strcat(longline, "a=identity ");
    strcat(longline, "\n");
    write_file(p, longline);
    snprintf(a, sizeof a, "predict %s %s --config %s", DEMO, STOP, p);
    expect(2, a, "hostile_long.ini:2: line longer than", NULL);

    snprintf(p, sizeof p, "%s", tmp_path("hostile_header.ini"));
    write_file(p, "[model]\nscale = 1\n[classes\nsteps = 3\n");
    snprintf(a, sizeof a, "classes %s --config %s", DEMO, p);
    expect(2, a, "hostile_header.ini:3: section header '[classes' has no closing ']'", NULL);

    snprintf(a, sizeof a, "info %s --arch %s", shared_path("keras-real/mnist_keras1_theano_th_weights_only.h5"), BAD("arch_duplicate.json"));
    expect(1, a, "arch_duplicate.json: two layers of a Sequential model are named 'conv2d_1'", NULL);
    snprintf(a, sizeof a, "info %s", BAD("inbound_string.h5"));
    expect(1, a, "layer 'conv2d_2': inbound_nodes is not a list", NULL);
    snprintf(a, sizeof a, "info %s", BAD("duplicate_names.h5"));
    expect(1, a, "two layers of model 'model_1' are named 'conv2d_1'", NULL);
    snprintf(a, sizeof a, "info %s", BAD("duplicate_names_seq.h5"));
    expect(1, a, "two layers of a Sequential model are named 'conv2d_1'", NULL);

    snprintf(a, sizeof a, "predict %s %s --config %s", DEMO, STOP, FV_SOURCE_DIR);
    expect(2, a, "is a directory, not a config file", NULL);
    snprintf(a, sizeof a, "predict %s %s --config /nonexistent/x.ini", DEMO, STOP);
    expect(2, a, "/nonexistent/x.ini: cannot open config file", NULL);

    /* NaN weights: one warning naming the layer, then the usual output */
    char *out = NULL;
    assert_int_equal(run_capture(&out, "{ %s predict %s %s --top 1 2>&1 >/dev/null; }", FV_BINARY, BAD("nan_weights.h5"), STOP), 0);
    printf("%s", out);
    assert_non_null(strstr(out, "warning"));
    assert_non_null(strstr(out, "layer 'conv2d_1' has NaN or infinite weights"));
    assert_int_equal(lines(out), 1);
    free(out);
}

/* The README's preset command runs to its end on a model it knows nothing of */
static void test_fast_preset_runs(void **state) {
    (void)state;
    char *out = NULL;
    int rc = run_capture(&out, "%s run %s/configs/fast.ini --set model.path=%s --set model.scale=1/255 "
                         "--set output.dir=%s --set classes.steps=4 --set filters.steps=2 --set filters.escape_steps=1",
                         FV_BINARY, FV_SOURCE_DIR, GOLD("cl_convnet.h5"), tmp_path("hostile_fast"));
    printf("%s(exit %d)\n", out, rc);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "dream: skipped: no photo to dream on"));
    free(out);
    /* with a photo and no layer, dream picks the last convolution */
    rc = run_capture(&out, "%s dream %s %s --size 24 --octaves 1 --steps 1 -o %s", FV_BINARY, DEMO, STOP,
                     tmp_path("hostile_dream_default.png"));
    printf("%s(exit %d)\n", out, rc);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "dreaming on conv2d_6"));
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lambda_errors),    cmocka_unit_test(test_image_size_caps),
        cmocka_unit_test(test_model_limits),     cmocka_unit_test(test_endless_inputs),
        cmocka_unit_test(test_output_not_regular), cmocka_unit_test(test_stale_tmp_swept),
        cmocka_unit_test(test_clear_messages),   cmocka_unit_test(test_fast_preset_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
