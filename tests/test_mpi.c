/* featviz under a real `mpirun -n 2 --oversubscribe`: the same run as one
 * process gives the same bytes in every output file; a run stopped midway (a
 * rank killed, then Ctrl-C) and resumed with --resume gives them too, with no
 * broken PNG left at any stop; a rank failing on a bad input ends the whole
 * job with one line naming the rank, host and item. Skipped when featviz was
 * built without MPI or mpirun is missing. */
#define _XOPEN_SOURCE 700 /* nftw */
#define _DEFAULT_SOURCE /* usleep */
#include <dirent.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "featviz/image.h"
#include "testutil.h"

/* mpirun as root needs these; --oversubscribe: more ranks than free cores.
 * Open MPI leaves its own allocations at MPI_Finalize, so an ASan build
 * checks leaks in the one-process runs only (they never start MPI). */
#define MPIRUN "env ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0\" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 mpirun -n 2 --oversubscribe"

static char args[4096];   /* the run's settings after CONFIG */
static char out_dir[1024];

static int have_mpi(void) {
#ifndef FV_TEST_MPI
    return 0;
#else
    return system("command -v mpirun >/dev/null 2>&1") == 0;
#endif
}

static int setup(void **state) {
    (void)state;
    snprintf(out_dir, sizeof out_dir, "%smpi_run", tmp_path(""));
    snprintf(args, sizeof args,
             "%s --set model.path=%s/models/gtsrb32.h5 --set model.labels=%s/models/gtsrb-labels.csv "
             "--set activations.inputs=%s/examples/01_speed-limit-30.png,%s/examples/14_stop.png,%s/examples/38_keep-right.png "
             "--set stats.inputs=%s/examples --set output.dir=%s",
             data_path("mpi_demo.ini"), FV_SOURCE_DIR, FV_SOURCE_DIR, FV_SOURCE_DIR, FV_SOURCE_DIR, FV_SOURCE_DIR,
             FV_SOURCE_DIR, out_dir);
    return 0;
}

/* every file of a tree is the same bytes as in the other (diff -r: both ways) */
static void assert_same_tree(const char *a, const char *b) {
    char *out = NULL;
    int rc = run_capture(&out, "diff -r '%s' '%s' 2>&1 | head -20", a, b);
    (void)rc;
    if (out && *out) fail_msg("%s and %s differ:\n%s", a, b, out);
    free(out);
}

static int bad_png, tmp_left, n_png;
static int check_file(const char *path, const struct stat *st, int type, struct FTW *f) {
    (void)st;
    const char *name = path + f->base;
    if (type != FTW_F) return 0;
    if (strstr(name, ".tmp.")) tmp_left++;
    size_t n = strlen(name);
    if (n > 4 && !strcmp(name + n - 4, ".png")) {
        struct fv_image img = {0};
        struct fv_error err = {0};
        n_png++;
        if (fv_image_load(path, &img, &err)) {
            printf("does not decode: %s (%s)\n", path, err.msg);
            bad_png++;
        }
        fv_image_free(&img);
    }
    return 0;
}

/* after any stop: every PNG decodes (temporary files may remain until the
 * resume removes them, but never under a .png name) */
static void assert_pngs_decode(const char *dir) {
    bad_png = tmp_left = n_png = 0;
    nftw(dir, check_file, 16, FTW_PHYS);
    printf("%d PNGs decode, %d temporary files\n", n_png, tmp_left);
    assert_int_equal(bad_png, 0);
}

static int count_done(const char *manifest) {
    char *text = read_text(manifest, NULL);
    int n = 0;
    for (const char *p = text; p && (p = strstr(p, "done ")); p++) n++;
    free(text);
    return n;
}

/* The reference: one process, then the same run on 2 ranks, byte for byte. */
static void test_two_ranks_same_bytes(void **state) {
    (void)state;
    if (!have_mpi()) skip();
    char ref[1100], *out = NULL;
    snprintf(ref, sizeof ref, "%s.one", out_dir);
    run_capture(NULL, "rm -rf '%s' '%s'", out_dir, ref);
    int rc = run_capture(&out, "OMP_NUM_THREADS=2 %s run %s", FV_BINARY, args);
    printf("%s", out);
    free(out);
    assert_int_equal(rc, 0);
    assert_int_equal(rename(out_dir, ref), 0);
    rc = run_capture(&out, "OMP_NUM_THREADS=1 " MPIRUN " %s run %s", FV_BINARY, args);
    printf("%s", out);
    free(out);
    assert_int_equal(rc, 0);
    assert_same_tree(ref, out_dir);
    /* nothing left to resume: no manifest, no results; the job's completion mark */
    char p[1200];
    struct stat st;
    snprintf(p, sizeof p, "%s/classes/.featviz-resume/classes.manifest", out_dir);
    assert_true(stat(p, &st) != 0);
    snprintf(p, sizeof p, "%s/classes/.featviz-resume/classes_0000000.bin", out_dir);
    assert_true(stat(p, &st) != 0);
    snprintf(p, sizeof p, "%s/classes/.featviz-resume/classes.complete", out_dir);
    assert_true(stat(p, &st) == 0);
}

/* Starts the run on 2 ranks in the background; returns mpirun's pid. */
static pid_t start_mpirun(const char *extra) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 " MPIRUN " %s run %s %s > %s.log 2>&1 & echo $!", FV_BINARY, args,
             extra, out_dir);
    FILE *p = popen(cmd, "r");
    int pid = 0;
    if (!p || fscanf(p, "%d", &pid) != 1) fail_msg("cannot start mpirun");
    pclose(p);
    return (pid_t)pid;
}

/* Waits (up to 120 s) until the manifest has a completed item. */
static void wait_for_done(const char *manifest) {
    for (int i = 0; i < 6000 && count_done(manifest) < 1; i++) usleep(20000);
    if (count_done(manifest) < 1) fail_msg("no item completed in %s", manifest);
}

/* Waits (up to 120 s) for a job's manifest: the job has started. */
static void wait_for_start(const char *manifest) {
    struct stat st;
    for (int i = 0; i < 6000 && stat(manifest, &st); i++) usleep(5000);
    if (stat(manifest, &st)) fail_msg("the job of %s never started", manifest);
}

/* Waits (up to 120 s) for a process to end: a stopped job must not hang. */
static void wait_gone(pid_t pid) {
    for (int i = 0; i < 1200 && kill(pid, 0) == 0; i++) usleep(100000);
    if (kill(pid, 0) == 0) fail_msg("mpirun (pid %d) still running 120 s after the stop: a hang", (int)pid);
}

/* The featviz rank of mpirun `pid` with OMPI_COMM_WORLD_RANK=1. */
static pid_t rank_pid(pid_t mpirun_pid, int rank) {
    char cmd[512], *out = NULL;
    snprintf(cmd, sizeof cmd,
             "for p in $(pgrep -P %d); do tr '\\0' '\\n' < /proc/$p/environ 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=%d && echo $p; done",
             (int)mpirun_pid, rank);
    run_capture(&out, "%s", cmd);
    int pid = out ? atoi(out) : 0;
    free(out);
    return (pid_t)pid;
}

/* A rank killed during classes, then Ctrl-C during filters, then two
 * resumes: the same bytes as one process. */
static void test_stop_and_resume(void **state) {
    (void)state;
    if (!have_mpi()) skip();
    char ref[1100], manifest[1200], *out = NULL;
    snprintf(ref, sizeof ref, "%s.one", out_dir);
    struct stat st;
    if (stat(ref, &st)) skip(); /* made by test_two_ranks_same_bytes */
    run_capture(NULL, "rm -rf '%s'", out_dir);
    /* 1: kill rank 1 once a class lane is done */
    pid_t pid = start_mpirun("");
    snprintf(manifest, sizeof manifest, "%s/classes/.featviz-resume/classes.manifest", out_dir);
    wait_for_done(manifest);
    pid_t r1 = 0;
    for (int i = 0; i < 50 && !(r1 = rank_pid(pid, 1)); i++) usleep(100000);
    printf("killing rank 1 (pid %d) of mpirun %d after %d done\n", (int)r1, (int)pid, count_done(manifest));
    assert_true(r1 > 0);
    kill(r1, SIGKILL);
    wait_gone(pid);
    assert_pngs_decode(out_dir);
    /* 2: resume, and stop it with Ctrl-C (SIGINT to mpirun) once the filters
     * job has started (waiting for a filter lane to be done let the rest of the
     * run, a second or so, finish before the signal landed) */
    pid = start_mpirun("--resume");
    snprintf(manifest, sizeof manifest, "%s/filters/.featviz-resume/filters.manifest", out_dir);
    wait_for_start(manifest);
    printf("Ctrl-C to mpirun %d after %d filter items done\n", (int)pid, count_done(manifest));
    kill(pid, SIGINT);
    wait_gone(pid);
    char log[1200];
    snprintf(log, sizeof log, "%s.log", out_dir);
    out = read_text(log, NULL);
    printf("%s", out ? out : "");
    assert_non_null(out && strstr(out, "classes: resuming:") ? out : NULL); /* the kill came before classes ended */
    free(out);
    assert_pngs_decode(out_dir);
    /* 3: resume to the end */
    int rc = run_capture(&out, "OMP_NUM_THREADS=1 " MPIRUN " %s run %s --resume", FV_BINARY, args);
    printf("%s", out);
    assert_int_equal(rc, 0);
    /* (the Ctrl-C may land after filters, in a later job) */
    assert_true(strstr(out, "filters: resuming:") || strstr(out, "activations: resuming:") || strstr(out, "stats: resuming:"));
    assert_non_null(strstr(out, "classes: already complete"));
    free(out);
    assert_pngs_decode(out_dir);
    assert_int_equal(tmp_left, 0);
    assert_same_tree(ref, out_dir);
}

/* One bad image among good ones: the rank that draws it ends the job with one
 * line naming rank, host and item, a non-zero status, and no hang. */
static void test_failing_rank(void **state) {
    (void)state;
    if (!have_mpi()) skip();
    char in[1100], *out = NULL;
    snprintf(in, sizeof in, "%smpi_bad_inputs", tmp_path(""));
    run_capture(NULL, "rm -rf '%s' && mkdir -p '%s' && cp %s/examples/0*.png %s/examples/1*.png '%s/' && "
                      "echo 'not a picture' > '%s/05_broken.png'",
                in, in, FV_SOURCE_DIR, FV_SOURCE_DIR, in, in);
    int rc = run_capture(&out, "timeout 120 " MPIRUN " %s stats %s/models/gtsrb32.h5 '%s' --shard 1 -o %s/mpi_bad_out",
                         FV_BINARY, FV_SOURCE_DIR, in, tmp_path(""));
    printf("%s\n(exit %d)\n", out, rc);
    assert_true(rc != 0 && rc != 124); /* failed, and not by the timeout */
    const char *line = strstr(out, "featviz: rank ");
    assert_non_null(line);
    char host[256];
    gethostname(host, sizeof host);
    const char *eol = strchr(line, '\n');
    char first[2048];
    snprintf(first, sizeof first, "%.*s", (int)(eol ? eol - line : (long)strlen(line)), line);
    assert_non_null(strstr(first, host));
    assert_non_null(strstr(first, "[stats] item "));
    assert_non_null(strstr(first, "05_broken.png"));
    /* one featviz line: the other rank does not add its own */
    assert_null(strstr(eol ? eol : "", "featviz: rank "));
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_ranks_same_bytes),
        cmocka_unit_test(test_stop_and_resume),
        cmocka_unit_test(test_failing_rank),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
