/* Image synthesis: the objective rises, the result is the same bytes whatever
 * the number of threads or the batch an image is in, and Ctrl-C stops the
 * command cleanly with the images reached so far. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "featviz/formats.h"
#include "featviz/image.h"
#include "featviz/settings.h"
#include "jobs/synth.h"
#include "testutil.h"

static struct fv_model model;
static struct fv_preproc pp;

static int setup(void **state) {
    (void)state;
    struct fv_error err = {0};
    fv_preproc_default(&pp);
    return fv_model_load(&model, data_path("golden/cl_convnet.h5"), NULL, &err);
}

static int teardown(void **state) {
    (void)state;
    fv_model_free(&model);
    return 0;
}

static void config(struct synth_cfg *c, const char *param, int steps) {
    struct fv_settings s;
    struct fv_error err = {0};
    fv_settings_init(&s);
    assert_int_equal(fv_settings_set(&s, "classes", "param", param, "test", &err), FV_OK);
    assert_int_equal(fv_settings_set(&s, "classes", "size", "1x", "test", &err), FV_OK);
    assert_int_equal(fv_settings_set(&s, "classes", "relative", "false", "test", &err), FV_OK);
    assert_int_equal(synth_cfg_read(&s, "classes", c, &err), FV_OK);
    c->steps = steps;
    fv_settings_free(&s);
}

/* n images for classes 0..n-1 */
static void run(const struct synth_cfg *c, int n, int first, float *u, double *score) {
    struct fv_objective obj[8];
    uint64_t keys[8];
    struct fv_error err = {0};
    for (int i = 0; i < n; i++) {
        char text[32];
        snprintf(text, sizeof text, "class:%d", first + i);
        assert_int_equal(fv_objective_parse(text, &model, &obj[i], &err), FV_OK);
        keys[i] = (uint64_t)(first + i);
    }
    int rc = synth_run(&model, &pp, c, obj, n, 11, 13, 3, keys, u, score, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, FV_OK);
}

/* On the demo model (models/gtsrb32.h5), 24 steps raise the class logits
 * far above their start, with both parameterizations. */
static void test_objective_rises(void **state) {
    (void)state;
    struct fv_model demo;
    struct fv_error err = {0};
    assert_int_equal(fv_model_load(&demo, FV_SOURCE_DIR "/models/gtsrb32.h5", NULL, &err), FV_OK);
    static const char *params[] = {"fourier", "pixel"};
    static const int cls[3] = {1, 14, 38};
    for (int k = 0; k < 2; k++) {
        struct synth_cfg c;
        config(&c, params[k], 1);
        c.keep_best = 0;
        struct fv_objective obj[3];
        uint64_t keys[3];
        for (int i = 0; i < 3; i++) {
            char text[32];
            snprintf(text, sizeof text, "class:%d", cls[i]);
            assert_int_equal(fv_objective_parse(text, &demo, &obj[i], &err), FV_OK);
            keys[i] = (uint64_t)cls[i];
        }
        static float u0[3 * 32 * 32 * 3], u1[3 * 32 * 32 * 3];
        double s0[3], s1[3];
        assert_int_equal(synth_run(&demo, &pp, &c, obj, 3, 32, 32, 3, keys, u0, s0, &err), FV_OK);
        c.steps = 24;
        assert_int_equal(synth_run(&demo, &pp, &c, obj, 3, 32, 32, 3, keys, u1, s1, &err), FV_OK);
        for (int i = 0; i < 3; i++) {
            printf("%s class %d: logit %.3f -> %.3f\n", params[k], cls[i], s0[i], s1[i]);
            assert_true(s1[i] > s0[i] + 5.0);
        }
        for (size_t i = 0; i < sizeof u1 / sizeof u1[0]; i++) assert_true(u1[i] >= 0.0f && u1[i] <= 1.0f);
    }
    fv_model_free(&demo);
}

static void test_same_result_any_threads_or_batch(void **state) {
    (void)state;
    struct synth_cfg c;
    config(&c, "fourier", 12);
    float a[5 * 429], b[5 * 429], d[5 * 429];
    double sa[5], sb[5], sd[5];
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    run(&c, 5, 0, a, sa);
#ifdef _OPENMP
    omp_set_num_threads(2);
#endif
    run(&c, 5, 0, b, sb);
    assert_memory_equal(a, b, sizeof a);
    /* the same images in two batches of 2 and 3 */
    run(&c, 2, 0, d, sd);
    run(&c, 3, 2, d + 2 * 429, sd + 2);
    assert_memory_equal(a, d, sizeof a);
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Enough images for several lanes per thread (so a thread reuses its lane's
 * plan and optimizer state for the next lane): every image comes out as it
 * does alone. */
static void test_lanes_reused_same_result(void **state) {
    (void)state;
    enum { N = 24, IMG = 11 * 13 * 3 };
    struct synth_cfg c;
    config(&c, "fourier", 6);
    static struct fv_objective obj[N];
    uint64_t keys[N];
    struct fv_error err = {0};
    for (int i = 0; i < N; i++) {
        char text[32];
        snprintf(text, sizeof text, "class:%d", i % 5);
        assert_int_equal(fv_objective_parse(text, &model, &obj[i], &err), FV_OK);
        keys[i] = (uint64_t)(100 + i);
    }
    static float all[N * IMG], one[IMG];
    double s_all[N], s_one;
#ifdef _OPENMP
    omp_set_num_threads(2);
#endif
    assert_int_equal(synth_run(&model, &pp, &c, obj, N, 11, 13, 3, keys, all, s_all, &err), FV_OK);
    for (int i = 0; i < N; i++) {
        assert_int_equal(synth_run(&model, &pp, &c, &obj[i], 1, 11, 13, 3, &keys[i], one, &s_one, &err),
                         FV_OK);
        if (memcmp(one, all + (size_t)i * IMG, sizeof one) != 0)
            fail_msg("image %d differs between a batch of %d and alone", i, N);
    }
}

/* Same seed, same bytes with OMP_NUM_THREADS=1 and 2, through the CLI. */
static void test_cli_bytes_thread_independent(void **state) {
    (void)state;
    for (int t = 1; t <= 2; t++) {
        char *out = NULL;
        int rc = run_capture(&out, "OMP_NUM_THREADS=%d %s classes %s --steps 6 --seed 3 -o %s/cls_t%d", t, FV_BINARY,
                             data_path("golden/cl_convnet.h5"), tmp_path(""), t);
        printf("%s", out);
        free(out);
        assert_int_equal(rc, 0);
    }
    static const char *files[] = {"montage.png", "class_02.png", "classes.npy", "classes.csv"};
    for (int i = 0; i < 4; i++) {
        char p1[1024], p2[1024];
        snprintf(p1, sizeof p1, "%scls_t1/%s", tmp_path(""), files[i]);
        snprintf(p2, sizeof p2, "%scls_t2/%s", tmp_path(""), files[i]);
        size_t n1, n2;
        char *a = read_text(p1, &n1), *b = read_text(p2, &n2);
        assert_non_null(a);
        assert_non_null(b);
        assert_int_equal(n1, n2);
        assert_memory_equal(a, b, n1);
        free(a), free(b);
    }
}

/* `featviz dream` in bands of rows (a small dream.max_mb) gives the same
 * bytes whatever the number of threads, and the whole image's step up to
 * rounding. Rounding does differ (summation orders, Winograd tiles placed
 * from each band's top), and on a photo's flat areas it can reroute a
 * max-pool gradient between near-equal pixels, so a step differs at about 1%
 * of the pixels; a band owning wrong rows would change whole rows instead. */
static void test_dream_bands(void **state) {
    (void)state;
    static const struct { const char *name; int threads, max_mb; const char *lr; } runs[] = {
        {"whole", 2, 0, "0.01"}, {"bands_t1", 1, 5, "0.01"}, {"bands_t2", 2, 5, "0.01"}, {"start", 2, 0, "0"}};
    enum { RUNS = sizeof runs / sizeof runs[0] };
    struct fv_image img[RUNS];
    for (int k = 0; k < RUNS; k++) {
        char *out = NULL, path[1024];
        snprintf(path, sizeof path, "%sdream_%s.png", tmp_path(""), runs[k].name);
        int rc = run_capture(&out, "OMP_NUM_THREADS=%d %s dream %s %s --layer conv2d_3 --size 200 --octaves 1 --steps 1 --lr %s --max-mb %d -o %s",
                             runs[k].threads, FV_BINARY, data_path("golden/cl_wide.h5"),
                             shared_path("gtsrb/samples/14_stop.png"), runs[k].lr, runs[k].max_mb, path);
        printf("%s", out);
        assert_int_equal(rc, 0);
        assert_true((strstr(out, " bands of ") != NULL) == (runs[k].max_mb > 0)); /* bands used, or not */
        free(out);
        struct fv_error err = {0};
        assert_int_equal(fv_image_load(path, &img[k], &err), FV_OK);
    }
    size_t n = (size_t)img[0].h * (size_t)img[0].w * (size_t)img[0].c;
    for (int k = 1; k < RUNS; k++) assert_int_equal(n, (size_t)img[k].h * (size_t)img[k].w * (size_t)img[k].c);
    assert_memory_equal(img[1].data, img[2].data, n * sizeof(float)); /* 1 or 2 threads */
    double diff = 0, moved = 0;
    for (size_t i = 0; i < n; i++) {
        diff += fabs((double)img[0].data[i] - (double)img[1].data[i]);
        moved += fabs((double)img[0].data[i] - (double)img[3].data[i]);
    }
    printf("  mean |banded - whole| %.4f levels; the step itself moved %.4f\n", diff / (double)n, moved / (double)n);
    assert_true(moved / (double)n > 0.5 && diff < 0.05 * moved);
    for (int k = 0; k < RUNS; k++) fv_image_free(&img[k]);
}

/* Ctrl-C (SIGINT) ends a long run cleanly, writing what it has. */
static void test_interrupt_writes_results(void **state) {
    (void)state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%sinterrupted", tmp_path(""));
    char *out = NULL;
    /* --foreground: one SIGINT to featviz only (without it timeout also
     * signals the process group, and a second Ctrl-C means "stop now") */
    int rc = run_capture(&out, "timeout --foreground --preserve-status -s INT 4 %s classes %s --steps 1000000 -o %s", FV_BINARY,
                         data_path("golden/cl_convnet.h5"), dir);
    printf("%s", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "stopped early"));
    free(out);
    char p[1200];
    snprintf(p, sizeof p, "%s/montage.png", dir);
    assert_true(exists(p));
    snprintf(p, sizeof p, "%s/classes.csv", dir);
    assert_true(exists(p));
}

/* High-resolution rendering: the gradient of a step's objective with respect
 * to theta, through the Fourier image at 3x the input, the random warp and
 * the anti-aliased downsample into the model, against central differences
 * (class and log-probability objectives, in float32 through the network). */
static void test_highres_gradient(void **state) {
    (void)state;
    struct synth_cfg c;
    struct fv_settings s;
    struct fv_error err = {0};
    fv_settings_init(&s);
    assert_int_equal(fv_settings_set(&s, "classes", "size", "3x", "test", &err), FV_OK);
    assert_int_equal(fv_settings_set(&s, "classes", "tv", "0", "test", &err), FV_OK);
    assert_int_equal(fv_settings_set(&s, "classes", "relative", "false", "test", &err), FV_OK);
    assert_int_equal(synth_cfg_read(&s, "classes", &c, &err), FV_OK);
    fv_settings_free(&s);
    int H, W;
    synth_display_size(&c, 11, 13, &H, &W);
    assert_int_equal(H, 33);
    assert_int_equal(W, 39);
    struct fv_objective obj[2];
    assert_int_equal(fv_objective_parse("class:1", &model, &obj[0], &err), FV_OK);
    assert_int_equal(fv_objective_parse("logprob:2", &model, &obj[1], &err), FV_OK);
    uint64_t keys[2] = {1, 2};
    size_t size = synth_theta_size(&c, 11, 13, 3);
    assert_true(size > 0);
    float *theta = malloc(2 * size * sizeof(float)), *g = malloc(2 * size * sizeof(float));
    fill_uniform(theta, 2 * size, 5, -0.3f, 0.3f);
    double v[2], vp[2], vm[2];
    assert_int_equal(synth_probe(&model, &pp, &c, obj, 2, 11, 13, 3, keys, 7, theta, v, g, &err), FV_OK);
    double worst = 0, big = 0;
    for (size_t k = 0; k < 2 * size; k += 2 * size / 60) {
        float keep = theta[k];
        theta[k] = keep + 0.02f;
        assert_int_equal(synth_probe(&model, &pp, &c, obj, 2, 11, 13, 3, keys, 7, theta, vp, NULL, &err), FV_OK);
        theta[k] = keep - 0.02f;
        assert_int_equal(synth_probe(&model, &pp, &c, obj, 2, 11, 13, 3, keys, 7, theta, vm, NULL, &err), FV_OK);
        theta[k] = keep;
        int i = k >= size;
        double num = (vp[i] - vm[i]) / 0.04, d = fabs(num - (double)g[k]);
        if (d > worst) worst = d;
        if (fabs(num) > big) big = fabs(num);
    }
    printf("  high-res gradient: max |analytic - numeric| %.3g, largest %.3g\n", worst, big);
    if (!(worst <= 0.02 * big)) fail_msg("high-res gradient off by %g (largest %g)", worst, big);
    free(theta);
    free(g);
}

/* per_class: the images of one class differ, and the diversity penalty
 * pushes them further apart (Gram-matrix cosine lower than without it). */
static void test_per_class_diversity(void **state) {
    (void)state;
    enum { IMG = 11 * 13 * 3 };
    double dist[2];
    for (int on = 0; on < 2; on++) {
        struct synth_cfg c;
        config(&c, "fourier", 48);
        c.per_class = 3;
        c.diversity = on ? 2.0f : 0.0f;
        struct fv_objective obj[3];
        struct fv_error err = {0};
        uint64_t keys[3] = {4, 4 + 1000003u, 4 + 2000006u};
        for (int i = 0; i < 3; i++) assert_int_equal(fv_objective_parse("class:4", &model, &obj[i], &err), FV_OK);
        float u[3 * IMG];
        double score[3];
        assert_int_equal(synth_run(&model, &pp, &c, obj, 3, 11, 13, 3, keys, u, score, &err), FV_OK);
        dist[on] = 0;
        for (int i = 0; i < 3; i++)
            for (int j = i + 1; j < 3; j++) {
                double d = 0;
                for (int k = 0; k < IMG; k++) d += fabs((double)u[i * IMG + k] - (double)u[j * IMG + k]);
                assert_true(d / IMG > 1e-3); /* distinct images */
                dist[on] += d / IMG / 3;
            }
    }
    printf("  mean |difference| between the images of a class: %.4f without diversity, %.4f with\n", dist[0], dist[1]);
    assert_true(dist[1] > dist[0] * 1.1);
}

/* per_class under MPI: lanes (the work items ranks draw) hold whole classes,
 * are fixed by the image count, and a lane run alone (as a rank runs it)
 * gives the same bytes as in the whole run. */
static void test_lanes_whole_classes(void **state) {
    (void)state;
    int start[64];
    for (int per = 1; per <= 13; per++)
        for (int classes = 1; classes <= 40; classes++) {
            int n = classes * per, lanes = synth_lanes(n, per, SYNTH_LANE, start);
            assert_true(lanes >= 1 && lanes <= classes);
            assert_int_equal(start[0], 0);
            assert_int_equal(start[lanes], n);
            for (int q = 0; q < lanes; q++) {
                assert_true(start[q + 1] > start[q]);
                assert_int_equal(start[q] % per, 0); /* whole classes */
                if (per <= SYNTH_LANE) assert_true(start[q + 1] - start[q] < SYNTH_LANE + per);
            }
        }
    enum { IMG = 11 * 13 * 3, PER = 3, N = 5 * PER };
    struct synth_cfg c;
    config(&c, "fourier", 6);
    c.per_class = PER;
    c.diversity = 2.0f;
    struct fv_objective obj[N];
    struct fv_error err = {0};
    uint64_t keys[N];
    for (int i = 0; i < N; i++) {
        char text[32];
        snprintf(text, sizeof text, "class:%d", i / PER);
        assert_int_equal(fv_objective_parse(text, &model, &obj[i], &err), FV_OK);
        keys[i] = (uint64_t)(i / PER) + (uint64_t)(i % PER) * 1000003u;
    }
    static float all[N * IMG], one[N * IMG];
    double s_all[N], s_one[N];
    assert_int_equal(synth_run(&model, &pp, &c, obj, N, 11, 13, 3, keys, all, s_all, &err), FV_OK);
    int lanes = synth_lanes(N, PER, synth_lane_size(11, 13), start);
    assert_int_equal(lanes, 2);
    for (int q = 0; q < lanes; q++)
        assert_int_equal(synth_run_lanes(&model, &pp, &c, obj, start + q, 1, 11, 13, 3, keys,
                                         one + (size_t)start[q] * IMG, s_one + start[q], &err), FV_OK);
    assert_memory_equal(all, one, sizeof all);
    assert_memory_equal(s_all, s_one, sizeof s_all);
}

/* features_from: the statistics of real inputs are the mean over images of
 * each image's per-channel spatial mean and variance, here of Keras's own
 * activations (tests/data/golden, written by Keras); the features.npy written
 * reads back the same, and one made for other layers is refused. */
static void keras_stats(const char *layer, double *mu, double *var, int *ch) {
    char rel[128];
    struct test_npy a;
    snprintf(rel, sizeof rel, "golden/cl_convnet.%s.npy", layer);
    assert_null(test_npy_read(data_path(rel), &a));
    int n = (int)a.dims[0], c = (int)a.dims[a.rank - 1];
    size_t hw = a.count / (size_t)n / (size_t)c;
    for (int k = 0; k < c; k++) mu[k] = var[k] = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < c; k++) {
            double m = 0, v = 0;
            for (size_t p = 0; p < hw; p++) m += a.data[((size_t)i * hw + p) * (size_t)c + (size_t)k];
            m /= (double)hw;
            for (size_t p = 0; p < hw; p++) {
                double d = a.data[((size_t)i * hw + p) * (size_t)c + (size_t)k] - m;
                v += d * d;
            }
            mu[k] += m / n, var[k] += v / (double)hw / n;
        }
    *ch = c;
    test_npy_free(&a);
}

static void test_features_from(void **state) {
    (void)state;
    double mu[8], var[8], want_mu[16], want_var[16];
    int c1, c4;
    keras_stats("conv2d_1", mu, var, &c1);
    memcpy(want_mu, mu, (size_t)c1 * sizeof *mu), memcpy(want_var, var, (size_t)c1 * sizeof *var);
    keras_stats("conv2d_4", mu, var, &c4);
    memcpy(want_mu + c1, mu, (size_t)c4 * sizeof *mu), memcpy(want_var + c1, var, (size_t)c4 * sizeof *var);
    struct synth_features f;
    struct fv_error err = {0};
    const char *dir = tmp_path("features");
    mkdir(dir, 0755);
    int rc = synth_features(data_path("golden/cl_convnet.input.npy"), "conv2d_1, conv2d_4", "test", &model, &pp, 11, 13, dir, &f, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_int_equal(f.layers, 2);
    assert_int_equal(f.off[2], c1 + c4);
    for (int k = 0; k < c1 + c4; k++) {
        if (!(fabs((double)f.mu[k] - want_mu[k]) <= 1e-5 + 1e-4 * fabs(want_mu[k]))) fail_msg("mean of channel %d: %g, Keras %g", k, (double)f.mu[k], want_mu[k]);
        if (!(fabs((double)f.var[k] - want_var[k]) <= 1e-5 + 1e-4 * fabs(want_var[k]))) fail_msg("variance of channel %d: %g, Keras %g", k, (double)f.var[k], want_var[k]);
    }
    char cached[4200];
    snprintf(cached, sizeof cached, "%s/features.npy", dir);
    struct synth_features g;
    assert_int_equal(synth_features(cached, "conv2d_1,conv2d_4", "test", &model, &pp, 11, 13, NULL, &g, &err), FV_OK);
    assert_memory_equal(f.mu, g.mu, 2 * (size_t)(c1 + c4) * sizeof(float));
    synth_features_free(&g);
    synth_features_free(&f);
    /* all: every conv layer (4 + 5 + 4 + 3 channels); the cached file does not fit them */
    assert_int_equal(synth_features(cached, "all", "test.ini:3", &model, &pp, 11, 13, NULL, &g, &err), FV_ERR_USAGE);
    assert_non_null(strstr(err.msg, "test.ini:3"));
    assert_non_null(strstr(err.msg, "16"));
    assert_int_equal(synth_features(cached, "conv2d_1,nope", "test", &model, &pp, 11, 13, NULL, &g, &err), FV_ERR_USAGE);
    assert_non_null(strstr(err.msg, "nope"));
}

/* The prior does its job: with it the images' statistics end closer to the
 * reference than without it (the reference, from raw random inputs outside
 * the display range, cannot be reached: closer is what can be asked). */
static void test_features_prior_pulls(void **state) {
    (void)state;
    enum { IMG = 11 * 13 * 3 };
    struct synth_features f;
    struct fv_error err = {0};
    assert_int_equal(synth_features(data_path("golden/cl_convnet.input.npy"), "conv2d_1", "test", &model, &pp, 11, 13, NULL, &f, &err), FV_OK);
    double dist[2];
    for (int on = 0; on < 2; on++) {
        struct synth_cfg c;
        config(&c, "fourier", 48);
        c.features = &f;
        c.features_weight = on ? 20.0f : 0.0f;
        float u[2 * IMG];
        double score[2];
        run(&c, 2, 1, u, score);
        struct fv_plan p;
        assert_int_equal(fv_plan_init(&p, &model, 2, 11, 13, FV_PLAN_FUSE, &err), FV_OK);
        synth_to_model(&pp, u, p.x, 2 * 11 * 13, 3);
        fv_forward(&p, 1);
        float vals[2];
        double ws[16];
        fv_reg_featstats(p.buf[1].y, 2, 6 * 7, 4, f.mu, f.var, NULL, NULL, vals, ws);
        dist[on] = (double)vals[0] + (double)vals[1];
        fv_plan_free(&p);
    }
    printf("  feature-statistics distance of conv2d_1: %.4f without the prior, %.4f with\n", dist[0], dist[1]);
    assert_true(dist[1] < 0.9 * dist[0]);
    synth_features_free(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_objective_rises),
        cmocka_unit_test(test_highres_gradient),
        cmocka_unit_test(test_per_class_diversity),
        cmocka_unit_test(test_features_from),
        cmocka_unit_test(test_features_prior_pulls),
        cmocka_unit_test(test_lanes_whole_classes),
        cmocka_unit_test(test_same_result_any_threads_or_batch),
        cmocka_unit_test(test_lanes_reused_same_result),
        cmocka_unit_test(test_cli_bytes_thread_independent),
        cmocka_unit_test(test_dream_bands),
        cmocka_unit_test(test_interrupt_writes_results),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
