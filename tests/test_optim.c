/* Optimization math (src/optim/): parameterizations, real 2-D DFT, colour
 * decorrelation, transforms (affine warp), bilinear resize, regularizers,
 * blur, update rules and the keyed RNG.
 *
 * References: NumPy/PyTorch float64 numbers in tests/data/optim/optim.txt
 * (made by tests/tools/make_optim_fixtures.py, written from the definitions in
 * include/featviz/optim.h), central finite differences in double for every
 * backward, and geometric facts (integer shifts, 90-degree rotation, identity). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "featviz/optim.h"

/* ---- fixture file: one array per line, "name count v0 v1 ..." ---- */

static double *fixture(const char *name, size_t expect) { return fixture_array("optim/optim.txt", name, expect); }

/* fixture as floats (inputs were rounded to float32 by the script) */
static float *fixture_f(const char *name, size_t expect) {
    double *d = fixture(name, expect);
    float *f = malloc(expect * sizeof(float));
    for (size_t i = 0; i < expect; i++) f[i] = (float)d[i];
    free(d);
    return f;
}

/* |got - want| <= rtol*|want| + atol for every element; prints the worst. */
static void check_close(const char *what, const float *got, const double *want, size_t n,
                        double rtol, double atol) {
    size_t worst = 0;
    double worst_ratio = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        double ratio = d / (rtol * fabs(want[i]) + atol);
        if (!(ratio <= worst_ratio)) {
            worst_ratio = ratio;
            worst = i;
        }
    }
    if (!(worst_ratio <= 1.0))
        fail_msg("%s: element %zu got %.9g want %.9g (%.3g x tolerance)", what, worst,
                 (double)got[worst], want[worst], worst_ratio);
}

/* ---- generic gradient check ----
 * L = sum(w .* f(x)) with fixed random w (or w = 1); compares the backward's
 * dx = J^T w with central differences of L in double. The backward must
 * ACCUMULATE: dx starts at 1 and 1 is subtracted afterwards. */

typedef void (*fwd_fn)(void *ctx, const float *x, float *y);
typedef void (*bwd_fn)(void *ctx, const float *x, const float *y, const float *dy, float *dx);

static double weighted(fwd_fn f, void *ctx, const float *x, float *y, const float *w, size_t ny) {
    f(ctx, x, y);
    double s = 0;
    for (size_t i = 0; i < ny; i++) s += (double)w[i] * (double)y[i];
    return s;
}

static double gradcheck(fwd_fn f, bwd_fn b, void *ctx, float *x, size_t nx, size_t ny, double eps,
                        size_t max_points, int ones, uint64_t seed) {
    float *y = calloc(ny, sizeof(float)), *w = malloc(ny * sizeof(float));
    float *dx = malloc(nx * sizeof(float));
    if (ones)
        for (size_t i = 0; i < ny; i++) w[i] = 1.f;
    else
        fill_uniform(w, ny, seed + 99, -1.f, 1.f);
    for (size_t i = 0; i < nx; i++) dx[i] = 1.f;
    f(ctx, x, y);
    b(ctx, x, y, w, dx);
    double num_max = 0, diff_max = 0;
    size_t step = (max_points && nx > max_points) ? nx / max_points : 1;
    for (size_t k = 0; k < nx; k += step) {
        float keep = x[k];
        x[k] = (float)((double)keep + eps);
        double hi = (double)x[k], fp = weighted(f, ctx, x, y, w, ny);
        x[k] = (float)((double)keep - eps);
        double lo = (double)x[k], fm = weighted(f, ctx, x, y, w, ny);
        x[k] = keep;
        double num = (fp - fm) / (hi - lo);
        double d = fabs(num - ((double)dx[k] - 1.0));
        if (d > diff_max || isnan(d)) diff_max = isnan(d) ? (double)INFINITY : d;
        if (fabs(num) > num_max) num_max = fabs(num);
    }
    free(y);
    free(w);
    free(dx);
    return num_max > 0 ? diff_max / num_max : diff_max;
}

static void expect_grad(const char *what, double rel, double tol) {
    printf("  gradcheck %-40s rel err %.3g\n", what, rel);
    if (!(rel <= tol)) fail_msg("%s: gradient rel error %.3g > %.3g", what, rel, tol);
}

/* =========================================================== RNG */

static uint64_t join64(double hi, double lo) {
    return ((uint64_t)hi << 32) | (uint64_t)lo;
}

static void test_rng_reference(void **state) {
    (void)state;
    char name[64];
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "rng_%d_key_halves", i);
        double *key = fixture(name, 8);
        snprintf(name, sizeof name, "rng_%d_u64_halves", i);
        double *want = fixture(name, 8);
        snprintf(name, sizeof name, "rng_%d_uniform_normal", i);
        double *un = fixture(name, 2);
        struct fv_rng r;
        fv_rng_seed(&r, join64(key[0], key[1]), join64(key[2], key[3]), join64(key[4], key[5]),
                    join64(key[6], key[7]));
        for (int k = 0; k < 4; k++) {
            uint64_t got = fv_rng_next(&r);
            assert_true(got == join64(want[2 * k], want[2 * k + 1]));
        }
        assert_true((double)fv_rng_uniform(&r) == un[0]);
        assert_true(fabs((double)fv_rng_normal(&r) - un[1]) < 1e-6 * (1 + fabs(un[1])));
        free(key);
        free(want);
        free(un);
    }
}

static void test_rng_stats(void **state) {
    (void)state;
    struct fv_rng r;
    fv_rng_seed(&r, 7, FV_RNG_USER, 0, 0);
    int n = 20000, seen[5] = {0};
    double su = 0, sn = 0, sn2 = 0;
    for (int i = 0; i < n; i++) {
        float u = fv_rng_uniform(&r);
        assert_true(u >= 0.f && u < 1.f);
        su += (double)u;
        float z = fv_rng_normal(&r);
        sn += (double)z;
        sn2 += (double)z * (double)z;
        int k = fv_rng_int(&r, -2, 2);
        assert_true(k >= -2 && k <= 2);
        seen[k + 2]++;
        float x = fv_rng_range(&r, -3.f, 5.f);
        assert_true(x >= -3.f && x < 5.f);
    }
    assert_true(fabs(su / n - 0.5) < 0.01);
    assert_true(fabs(sn / n) < 0.03);
    assert_true(fabs(sn2 / n - 1.0) < 0.05);
    for (int k = 0; k < 5; k++) assert_true(seen[k] > n / 5 - n / 25 && seen[k] < n / 5 + n / 25);
}

/* Same (seed, image, step) -> same transform, whatever the order of calls or
 * the batch the image is sampled in. */
static void test_rng_transform_determinism(void **state) {
    (void)state;
    struct fv_transform_config cfg;
    fv_transform_config_default(&cfg);
    cfg.jitter1 = 2.5f;
    cfg.jitter2 = 1.f;
    cfg.scale_min = 0.9f;
    cfg.scale_max = 1.1f;
    cfg.rotate_deg = 10.f;
    struct fv_transform_params a, b, batch[8];
    fv_transform_sample(&cfg, 42, 5, 7, &a);
    for (int s = 0; s < 20; s++) /* other calls in between */
        fv_transform_sample(&cfg, 42, 3, (uint64_t)s, &b);
    fv_transform_sample_batch(&cfg, 42, 0, 7, 8, 32, 32, batch, NULL);
    fv_transform_sample(&cfg, 42, 5, 7, &b);
    assert_memory_equal(&a, &b, sizeof a);
    assert_memory_equal(&a, &batch[5], sizeof a);
    fv_transform_sample_batch(&cfg, 42, 4, 7, 2, 32, 32, batch, NULL); /* images 4, 5 */
    assert_memory_equal(&a, &batch[1], sizeof a);
    /* other step, image or seed: different */
    fv_transform_sample(&cfg, 42, 5, 8, &b);
    assert_true(memcmp(&a, &b, sizeof a) != 0);
    fv_transform_sample(&cfg, 42, 6, 7, &b);
    assert_true(memcmp(&a, &b, sizeof a) != 0);
    fv_transform_sample(&cfg, 43, 5, 7, &b);
    assert_true(memcmp(&a, &b, sizeof a) != 0);
}

/* =========================================================== DFT */

static const int fft_shapes[][2] = {{4, 6}, {5, 7}, {6, 5}, {1, 4}, {3, 1}, {8, 8}, {7, 3}, {2, 2}};

static void test_irfft2_numpy(void **state) {
    (void)state;
    char name[64];
    for (size_t s = 0; s < sizeof fft_shapes / sizeof fft_shapes[0]; s++) {
        int h = fft_shapes[s][0], w = fft_shapes[s][1], wf = w / 2 + 1;
        struct fv_dft2 d;
        assert_int_equal(fv_dft2_init(&d, h, w, NULL), FV_OK);
        float *ws = malloc(fv_dft2_ws_floats(&d) * sizeof(float));
        size_t ns = (size_t)h * wf * 2, nx = (size_t)h * w;

        snprintf(name, sizeof name, "irfft2_%dx%d_spec", h, w);
        float *spec = fixture_f(name, ns);
        snprintf(name, sizeof name, "irfft2_%dx%d_out", h, w);
        double *want = fixture(name, nx);
        float *x = malloc(nx * sizeof(float));
        fv_irfft2(&d, spec, NULL, 1.f, x, 1, ws);
        snprintf(name, sizeof name, "irfft2 %dx%d", h, w);
        check_close(name, x, want, nx, 1e-5, 1e-5);

        /* strided output: channel 1 of an (h, w, 3) image, alpha 2 */
        float *img = malloc(nx * 3 * sizeof(float));
        for (size_t i = 0; i < nx * 3; i++) img[i] = -7.f;
        fv_irfft2(&d, spec, NULL, 2.f, img + 1, 3, ws);
        for (size_t i = 0; i < nx; i++) {
            assert_true(img[3 * i] == -7.f && img[3 * i + 2] == -7.f);
            x[i] = 0.5f * img[3 * i + 1];
        }
        check_close("irfft2 strided", x, want, nx, 1e-5, 1e-5);
        free(spec);
        free(want);

        snprintf(name, sizeof name, "rfft2_%dx%d_x", h, w);
        float *xin = fixture_f(name, nx);
        snprintf(name, sizeof name, "rfft2_%dx%d_spec", h, w);
        double *wspec = fixture(name, ns);
        float *got = malloc(ns * sizeof(float));
        fv_rfft2(&d, xin, 1, got, ws);
        snprintf(name, sizeof name, "rfft2 %dx%d", h, w);
        check_close(name, got, wspec, ns, 1e-5, 1e-5 * (double)(h * w));
        /* round trip */
        fv_irfft2(&d, got, NULL, 1.f, x, 1, ws);
        double *xd = malloc(nx * sizeof(double));
        for (size_t i = 0; i < nx; i++) xd[i] = (double)xin[i];
        check_close("irfft2(rfft2(x))", x, xd, nx, 1e-5, 1e-5);
        free(xin);
        free(wspec);
        free(got);
        free(xd);
        free(img);
        free(x);
        free(ws);
        fv_dft2_free(&d);
    }
}

struct dft_ctx {
    struct fv_dft2 d;
    float *scale, *ws;
    float alpha;
    int xs;
};

static void dft_fwd(void *c, const float *spec, float *x) {
    struct dft_ctx *k = c;
    fv_irfft2(&k->d, spec, k->scale, k->alpha, x, k->xs, k->ws);
}
static void dft_bwd(void *c, const float *spec, const float *x, const float *dx, float *dspec) {
    (void)spec;
    (void)x;
    struct dft_ctx *k = c;
    fv_irfft2_adjoint(&k->d, dx, k->xs, k->scale, k->alpha, dspec, k->ws);
}

static void test_irfft2_adjoint(void **state) {
    (void)state;
    for (size_t s = 0; s < sizeof fft_shapes / sizeof fft_shapes[0]; s++) {
        int h = fft_shapes[s][0], w = fft_shapes[s][1], wf = w / 2 + 1;
        for (int xs = 1; xs <= 2; xs++) {
            struct dft_ctx k;
            assert_int_equal(fv_dft2_init(&k.d, h, w, NULL), FV_OK);
            k.ws = malloc(fv_dft2_ws_floats(&k.d) * sizeof(float));
            k.scale = malloc((size_t)h * wf * sizeof(float));
            fill_uniform(k.scale, (size_t)h * wf, 3 + s, 0.5f, 3.f);
            k.alpha = 0.7f;
            k.xs = xs;
            size_t ns = (size_t)h * wf * 2, ny = (size_t)h * w * xs;
            float *spec = malloc(ns * sizeof(float));
            fill_uniform(spec, ns, 11 + s, -1.f, 1.f);
            /* with xs = 2 the odd elements are never written: y must be defined */
            double rel = gradcheck(dft_fwd, dft_bwd, &k, spec, ns, ny, 0.25, 0, 0, 5 + s);
            char what[64];
            snprintf(what, sizeof what, "irfft2 %dx%d xs=%d", h, w, xs);
            expect_grad(what, rel, 1e-4);
            free(spec);
            free(k.ws);
            free(k.scale);
            fv_dft2_free(&k.d);
        }
    }
}

/* =========================================================== parameterizations */

static void test_fourier_scale(void **state) {
    (void)state;
    const struct { int h, w; float decay; const char *name; } cases[] = {
        {8, 8, 1.f, "fscale_8x8_d1"},
        {6, 5, 1.f, "fscale_6x5_d1"},
        {5, 8, 1.5f, "fscale_5x8_d1.5"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fv_param_config cfg;
        fv_param_config_default(&cfg, FV_PARAM_FOURIER);
        cfg.decay = cases[i].decay;
        struct fv_param p;
        assert_int_equal(fv_param_init(&p, &cfg, cases[i].h, cases[i].w, 3, NULL), FV_OK);
        size_t n = (size_t)cases[i].h * (size_t)(cases[i].w / 2 + 1);
        double *want = fixture(cases[i].name, n);
        check_close(cases[i].name, p.scale, want, n, 1e-6, 0);
        assert_int_equal(fv_param_size(&p), 3 * n * 2);
        free(want);
        fv_param_free(&p);
    }
}

static void test_fourier_param_numpy(void **state) {
    (void)state;
    const int cases[][3] = {{8, 8, 3}, {6, 5, 3}, {5, 6, 1}};
    char name[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int h = cases[i][0], w = cases[i][1], c = cases[i][2];
        struct fv_param_config cfg;
        fv_param_config_default(&cfg, FV_PARAM_FOURIER);
        struct fv_param p;
        assert_int_equal(fv_param_init(&p, &cfg, h, w, c, NULL), FV_OK);
        snprintf(name, sizeof name, "fparam_%dx%dx%d_theta", h, w, c);
        float *theta = fixture_f(name, p.size);
        snprintf(name, sizeof name, "fparam_%dx%dx%d_u", h, w, c);
        size_t hwc = (size_t)h * w * c;
        double *want = fixture(name, hwc);
        /* batch of 2: the same image twice */
        float *th2 = malloc(2 * p.size * sizeof(float));
        memcpy(th2, theta, p.size * sizeof(float));
        memcpy(th2 + p.size, theta, p.size * sizeof(float));
        float *u = malloc(2 * hwc * sizeof(float));
        float *ws = malloc(fv_param_ws_floats(&p, 2) * sizeof(float));
        fv_param_forward(&p, th2, u, 2, ws);
        check_close(name, u, want, hwc, 1e-5, 1e-6);
        check_close(name, u + hwc, want, hwc, 1e-5, 1e-6);
        free(theta);
        free(th2);
        free(want);
        free(u);
        free(ws);
        fv_param_free(&p);
    }
}

struct param_ctx {
    struct fv_param p;
    int n;
    float *ws;
};

static void param_fwd(void *c, const float *theta, float *u) {
    struct param_ctx *k = c;
    fv_param_forward(&k->p, theta, u, k->n, k->ws);
}
static void param_bwd(void *c, const float *theta, const float *u, const float *du, float *dth) {
    struct param_ctx *k = c;
    fv_param_backward(&k->p, theta, u, du, dth, k->n, k->ws);
}

static void test_param_gradcheck(void **state) {
    (void)state;
    struct {
        const char *what;
        enum fv_param_basis basis;
        int sigmoid, decorrelate, custom, h, w, c;
        float decay;
        int maco; /* a fixed random magnitude spectrum, phases optimized */
    } cases[] = {
        {"maco decorrelated 6x5", FV_PARAM_FOURIER, 1, 1, 0, 6, 5, 3, 1.f, 1},
        {"maco gray 4x6", FV_PARAM_FOURIER, 1, 0, 0, 4, 6, 1, 1.f, 1},
        {"pixel clip", FV_PARAM_PIXEL, 0, 0, 0, 4, 5, 3, 1.f, 0},
        {"pixel sigmoid gray", FV_PARAM_PIXEL, 1, 0, 0, 4, 5, 1, 1.f, 0},
        {"pixel sigmoid decorrelated", FV_PARAM_PIXEL, 1, 1, 0, 4, 5, 3, 1.f, 0},
        {"fourier decorrelated 6x5", FV_PARAM_FOURIER, 1, 1, 0, 6, 5, 3, 1.f, 0},
        {"fourier rgb plain 4x4", FV_PARAM_FOURIER, 1, 0, 0, 4, 4, 3, 1.f, 0},
        {"fourier gray 5x6", FV_PARAM_FOURIER, 1, 0, 0, 5, 6, 1, 1.f, 0},
        {"fourier custom matrix 3x7 decay 1.5", FV_PARAM_FOURIER, 1, 1, 1, 3, 7, 3, 1.5f, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fv_param_config cfg;
        fv_param_config_default(&cfg, cases[i].basis);
        cfg.sigmoid = cases[i].sigmoid;
        cfg.decorrelate = cases[i].decorrelate;
        cfg.decay = cases[i].decay;
        if (cases[i].custom) {
            cfg.custom_matrix = 1;
            fill_uniform(cfg.color_matrix, 9, 77, -1.f, 1.f);
        }
        float mag[3 * 6 * 4];
        if (cases[i].maco) {
            fill_uniform(mag, sizeof mag / sizeof mag[0], 300 + i, 0.5f, 3.f);
            cfg.magnitude = mag;
        }
        struct param_ctx k;
        k.n = 2;
        assert_int_equal(fv_param_init(&k.p, &cfg, cases[i].h, cases[i].w, cases[i].c, NULL),
                         FV_OK);
        k.ws = malloc((fv_param_ws_floats(&k.p, k.n) + 1) * sizeof(float));
        size_t nx = k.p.size * (size_t)k.n;
        size_t ny = (size_t)cases[i].h * cases[i].w * cases[i].c * (size_t)k.n;
        float *theta = malloc(nx * sizeof(float));
        /* Fourier: coefficients whose t is O(1), so the sigmoid is not linear */
        float a = cases[i].maco ? 3.f : cases[i].basis == FV_PARAM_FOURIER ? 0.5f : 1.5f;
        fill_uniform(theta, nx, 100 + i, -a, a);
        double rel = gradcheck(param_fwd, param_bwd, &k, theta, nx, ny, 4e-3, 0, 0, 200 + i);
        expect_grad(cases[i].what, rel, 1e-3);
        free(theta);
        free(k.ws);
        fv_param_free(&k.p);
    }
}

static void test_param_from_image(void **state) {
    (void)state;
    struct { enum fv_param_basis basis; int sigmoid, decorrelate, c; } cases[] = {
        {FV_PARAM_PIXEL, 0, 0, 3}, {FV_PARAM_PIXEL, 1, 1, 3}, {FV_PARAM_FOURIER, 1, 1, 3},
        {FV_PARAM_FOURIER, 1, 0, 1}};
    int h = 6, w = 7, n = 2;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fv_param_config cfg;
        fv_param_config_default(&cfg, cases[i].basis);
        cfg.sigmoid = cases[i].sigmoid;
        cfg.decorrelate = cases[i].decorrelate;
        struct fv_param p;
        assert_int_equal(fv_param_init(&p, &cfg, h, w, cases[i].c, NULL), FV_OK);
        size_t hwc = (size_t)h * w * cases[i].c;
        float *u = malloc(n * hwc * sizeof(float)), *u2 = malloc(n * hwc * sizeof(float));
        float *theta = malloc(n * p.size * sizeof(float));
        float *ws = malloc((fv_param_ws_floats(&p, n) + 1) * sizeof(float));
        fill_uniform(u, n * hwc, 31 + i, 0.05f, 0.95f);
        assert_int_equal(fv_param_from_image(&p, u, theta, n, ws, NULL), FV_OK);
        fv_param_forward(&p, theta, u2, n, ws);
        double *ud = malloc(n * hwc * sizeof(double));
        for (size_t j = 0; j < n * hwc; j++) ud[j] = (double)u[j];
        check_close("forward(from_image(u))", u2, ud, n * hwc, 1e-4, 1e-5);
        free(u);
        free(u2);
        free(ud);
        free(theta);
        free(ws);
        fv_param_free(&p);
    }
}

static void test_param_init_project(void **state) {
    (void)state;
    struct fv_param_config cfg;
    fv_param_config_default(&cfg, FV_PARAM_PIXEL);
    struct fv_param p;
    assert_int_equal(fv_param_init(&p, &cfg, 16, 16, 3, NULL), FV_OK);
    size_t sz = p.size;
    float *a = malloc(4 * sz * sizeof(float)), *b = malloc(2 * sz * sizeof(float));
    fv_param_init_values(&p, a, 4, 9, 0);
    fv_param_init_values(&p, b, 2, 9, 2); /* images 2, 3 alone */
    assert_memory_equal(a + 2 * sz, b, 2 * sz * sizeof(float));
    assert_true(memcmp(a, a + sz, sz * sizeof(float)) != 0);
    double s = 0;
    for (size_t i = 0; i < 4 * sz; i++) {
        assert_true(a[i] >= 0.45f && a[i] <= 0.55f);
        s += (double)a[i];
    }
    assert_true(fabs(s / (double)(4 * sz) - 0.5) < 0.005);
    /* projection clips the pixel image */
    a[0] = -0.3f;
    a[1] = 1.7f;
    fv_param_project(&p, a, 4);
    assert_true(a[0] == 0.f && a[1] == 1.f);
    fv_param_free(&p);

    /* Fourier: normal, sd 0.01 */
    fv_param_config_default(&cfg, FV_PARAM_FOURIER);
    assert_int_equal(fv_param_init(&p, &cfg, 32, 32, 3, NULL), FV_OK);
    float *t = malloc(p.size * sizeof(float));
    fv_param_init_values(&p, t, 1, 1, 0);
    double m = 0, v = 0;
    for (size_t i = 0; i < p.size; i++) m += (double)t[i];
    m /= (double)p.size;
    for (size_t i = 0; i < p.size; i++) v += ((double)t[i] - m) * ((double)t[i] - m);
    v = sqrt(v / (double)p.size);
    assert_true(fabs(m) < 0.001 && fabs(v - 0.01) < 0.001);
    float keep = t[5];
    fv_param_project(&p, t, 1); /* no-op */
    assert_true(t[5] == keep);
    free(t);
    free(a);
    free(b);
    fv_param_free(&p);
}

static void test_param_errors(void **state) {
    (void)state;
    struct fv_param_config cfg;
    struct fv_param p;
    struct fv_error err = {0};
    fv_param_config_default(&cfg, FV_PARAM_FOURIER);
    cfg.sigmoid = 0;
    assert_int_equal(fv_param_init(&p, &cfg, 8, 8, 3, &err), FV_ERR_USAGE);
    assert_non_null(strstr(err.msg, "sigmoid"));
    fv_param_config_default(&cfg, FV_PARAM_PIXEL);
    cfg.decorrelate = 1;
    assert_int_equal(fv_param_init(&p, &cfg, 8, 8, 3, &err), FV_ERR_USAGE);
    assert_int_equal(fv_param_init(&p, &cfg, 8, 8, 1, &err), FV_OK); /* ignored for gray */
    fv_param_free(&p);
    fv_param_config_default(&cfg, FV_PARAM_PIXEL);
    assert_int_equal(fv_param_init(&p, &cfg, 8, 8, 2, &err), FV_ERR_USAGE);
    assert_int_equal(fv_param_init(&p, &cfg, 0, 8, 3, &err), FV_ERR_USAGE);
    /* singular custom matrix: from_image refuses */
    fv_param_config_default(&cfg, FV_PARAM_PIXEL);
    cfg.sigmoid = 1;
    cfg.decorrelate = 1;
    cfg.custom_matrix = 1;
    memset(cfg.color_matrix, 0, sizeof cfg.color_matrix);
    cfg.color_matrix[0] = 1.f;
    assert_int_equal(fv_param_init(&p, &cfg, 2, 2, 3, &err), FV_OK);
    float u[12] = {0.5f}, th[12];
    assert_int_equal(fv_param_from_image(&p, u, th, 1, NULL, &err), FV_ERR_USAGE);
    fv_param_free(&p);
}

/* =========================================================== colour */

static void test_color_matrices(void **state) {
    (void)state;
    float m[9];
    fv_color_matrix_imagenet(m);
    double *want = fixture("imagenet_m", 9);
    check_close("imagenet matrix", m, want, 9, 1e-6, 1e-7);
    free(want);

    float *imgs = fixture_f("cstats_images", 3 * 4 * 5 * 3);
    want = fixture("cstats_m", 9);
    struct fv_color_stats s;
    fv_color_stats_init(&s);
    fv_color_stats_add(&s, imgs, 1, 4, 5); /* in two calls */
    fv_color_stats_add(&s, imgs + 60, 2, 4, 5);
    assert_int_equal(fv_color_stats_matrix(&s, m, NULL), FV_OK);
    check_close("colour matrix from data", m, want, 9, 1e-5, 1e-6);
    free(imgs);
    free(want);

    /* errors: nothing added; no variance */
    struct fv_error err = {0};
    fv_color_stats_init(&s);
    assert_int_equal(fv_color_stats_matrix(&s, m, &err), FV_ERR_USAGE);
    float flat[12];
    for (int i = 0; i < 12; i++) flat[i] = 0.3f;
    fv_color_stats_add(&s, flat, 1, 2, 2);
    assert_int_equal(fv_color_stats_matrix(&s, m, &err), FV_ERR_USAGE);
}

/* =========================================================== resize */

struct resize_ctx {
    int h, w, H, W, c, n;
};
static void resize_fwd(void *c, const float *x, float *y) {
    struct resize_ctx *k = c;
    fv_resize_bilinear(x, k->h, k->w, y, k->H, k->W, k->c, k->n);
}
static void resize_bwd(void *c, const float *x, const float *y, const float *dy, float *dx) {
    (void)x;
    (void)y;
    struct resize_ctx *k = c;
    fv_resize_bilinear_backward(dy, k->H, k->W, dx, k->h, k->w, k->c, k->n);
}

static void test_resize(void **state) {
    (void)state;
    const int cases[][4] = {{4, 5, 8, 10}, {3, 5, 7, 9}, {6, 6, 4, 3}};
    char name[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct resize_ctx k = {cases[i][0], cases[i][1], cases[i][2], cases[i][3], 3, 2};
        size_t nx = (size_t)k.n * k.h * k.w * 3, ny = (size_t)k.n * k.H * k.W * 3;
        snprintf(name, sizeof name, "resize_%dx%d_%dx%d_in", k.h, k.w, k.H, k.W);
        float *x = fixture_f(name, nx);
        snprintf(name, sizeof name, "resize_%dx%d_%dx%d_out", k.h, k.w, k.H, k.W);
        double *want = fixture(name, ny);
        float *y = malloc(ny * sizeof(float));
        fv_resize_bilinear(x, k.h, k.w, y, k.H, k.W, 3, k.n);
        check_close(name, y, want, ny, 1e-6, 1e-6);
        snprintf(name, sizeof name, "resize %dx%d -> %dx%d", k.h, k.w, k.H, k.W);
        expect_grad(name, gradcheck(resize_fwd, resize_bwd, &k, x, nx, ny, 0.25, 0, 0, 3), 1e-4);
        free(x);
        free(want);
        free(y);
    }
}

/* =========================================================== warp */

static void test_warp_numpy(void **state) {
    (void)state;
    int h = 7, w = 9, c = 3;
    size_t hwc = (size_t)h * w * c;
    float *u = fixture_f("warp_u", hwc);
    float *v = malloc(hwc * sizeof(float));
    const char *names = "abcdef";
    char name[64];
    for (int i = 0; names[i]; i++) {
        snprintf(name, sizeof name, "warp_%c_params", names[i]);
        double *pp = fixture(name, 6);
        snprintf(name, sizeof name, "warp_%c_cfg", names[i]);
        double *pc = fixture(name, 3);
        snprintf(name, sizeof name, "warp_%c_v", names[i]);
        double *want = fixture(name, hwc);
        struct fv_transform_params tp = {(float)pp[0], (float)pp[1], (float)pp[2],
                                         (float)pp[3], (float)pp[4], (float)pp[5]};
        struct fv_transform_config cfg;
        fv_transform_config_default(&cfg);
        cfg.pad = (float)pc[0];
        cfg.pad_mode = (enum fv_pad_mode)(int)pc[1];
        cfg.fill = (float)pc[2];
        struct fv_warp wp;
        fv_warp_from_params(&tp, h, w, &wp);
        fv_warp_forward(&wp, &cfg, u, v, 1, h, w, c);
        check_close(name, v, want, hwc, 1e-5, 1e-5);
        free(pp);
        free(pc);
        free(want);
    }
    free(u);
    free(v);
}

static void test_warp_geometry(void **state) {
    (void)state;
    int h = 6, w = 6, c = 3;
    size_t hwc = (size_t)h * w * c;
    float *u = malloc(hwc * sizeof(float)), *v = malloc(hwc * sizeof(float));
    fill_uniform(u, hwc, 5, 0.f, 1.f);
    struct fv_transform_config cfg;
    fv_transform_config_default(&cfg);
    struct fv_transform_params tp;
    struct fv_warp wp;

    /* identity: scale 1, rotate 0, jitter 0, pad 0 */
    fv_transform_params_identity(&tp);
    fv_warp_from_params(&tp, h, w, &wp);
    fv_warp_forward(&wp, &cfg, u, v, 1, h, w, c);
    assert_memory_equal(u, v, hwc * sizeof(float));

    /* integer translation: content moves right 2, up 1; pad 1 of fill 0.25 */
    cfg.pad = 1.f;
    cfg.fill = 0.25f;
    tp.jx1 = 1.f;
    tp.jy1 = -2.f;
    tp.jx2 = 1.f;
    tp.jy2 = 1.f; /* total (2, -1) */
    fv_warp_from_params(&tp, h, w, &wp);
    fv_warp_forward(&wp, &cfg, u, v, 1, h, w, c);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) {
                int sy = y + 1, sx = x - 2;
                float want = (sy >= 0 && sy < h && sx >= 0 && sx < w)
                                 ? u[((size_t)sy * w + sx) * c + k] : 0.25f;
                assert_true(v[((size_t)y * w + x) * c + k] == want);
            }

    /* wrap: an integer translation is np.roll */
    struct fv_transform_config wrap = cfg;
    wrap.pad_mode = FV_PAD_WRAP;
    fv_warp_forward(&wp, &wrap, u, v, 1, h, w, c);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) {
                int sy = (y + 1) % h, sx = (x - 2 + w) % w;
                assert_true(v[((size_t)y * w + x) * c + k] == u[((size_t)sy * w + sx) * c + k]);
            }

    /* 90 degrees counter-clockwise on a square: top-left -> bottom-left,
     * top-right -> top-left, bottom-right -> top-right, bottom-left -> bottom-right */
    fv_transform_params_identity(&tp);
    tp.angle_deg = 90.f;
    fv_warp_from_params(&tp, h, w, &wp);
    fv_warp_forward(&wp, &cfg, u, v, 1, h, w, c);
#define PIX(a, y, x, k) (a)[((size_t)(y) * w + (x)) * c + (k)]
    for (int k = 0; k < c; k++) {
        assert_true(fabsf(PIX(v, h - 1, 0, k) - PIX(u, 0, 0, k)) < 1e-5f);
        assert_true(fabsf(PIX(v, 0, 0, k) - PIX(u, 0, w - 1, k)) < 1e-5f);
        assert_true(fabsf(PIX(v, 0, w - 1, k) - PIX(u, h - 1, w - 1, k)) < 1e-5f);
        assert_true(fabsf(PIX(v, h - 1, w - 1, k) - PIX(u, h - 1, 0, k)) < 1e-5f);
        /* every pixel: v[y][x] = u[x][w-1-y] */
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                assert_true(fabsf(PIX(v, y, x, k) - PIX(u, x, w - 1 - y, k)) < 1e-5f);
    }

    /* scale 2 about the centre on a linear ramp: bilinear is exact, so
     * v(p) = ramp(q) with q_c = p_c / 2 (centred coordinates) */
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++)
                PIX(u, y, x, k) = 0.1f * (float)x - 0.07f * (float)y + (float)k;
    fv_transform_params_identity(&tp);
    tp.scale = 2.f;
    fv_warp_from_params(&tp, h, w, &wp);
    fv_warp_forward(&wp, &cfg, u, v, 1, h, w, c);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) {
                double qx = ((double)x - 2.5) / 2 + 2.5, qy = ((double)y - 2.5) / 2 + 2.5;
                double want = 0.1 * qx - 0.07 * qy + k;
                assert_true(fabs((double)PIX(v, y, x, k) - want) < 1e-5);
            }
#undef PIX
    free(u);
    free(v);
}

struct warp_ctx {
    struct fv_warp wp[2];
    struct fv_transform_config cfg;
    int h, w, c;
};
static void warp_fwd(void *c, const float *u, float *v) {
    struct warp_ctx *k = c;
    fv_warp_forward(k->wp, &k->cfg, u, v, 2, k->h, k->w, k->c);
}
static void warp_bwd(void *c, const float *u, const float *v, const float *dv, float *du) {
    (void)u;
    (void)v;
    struct warp_ctx *k = c;
    fv_warp_backward(k->wp, &k->cfg, dv, du, 2, k->h, k->w, k->c);
}

static void test_warp_gradcheck(void **state) {
    (void)state;
    struct {
        const char *what;
        float pad;
        enum fv_pad_mode mode;
        struct fv_transform_params tp;
    } cases[] = {
        {"pad only (shift 0.3)", 2, FV_PAD_CONSTANT, {0.3f, 0.2f, 1.f, 0.f, 0.f, 0.f}},
        {"jitter 1.37,-2.61", 1, FV_PAD_CONSTANT, {1.37f, -2.61f, 1.f, 0.f, 0.f, 0.f}},
        {"scale 0.87", 0, FV_PAD_CONSTANT, {0.f, 0.f, 0.87f, 0.f, 0.f, 0.f}},
        {"scale 1.23", 2, FV_PAD_CONSTANT, {0.f, 0.f, 1.23f, 0.f, 0.f, 0.f}},
        {"rotate 13", 1, FV_PAD_CONSTANT, {0.f, 0.f, 1.f, 13.f, 0.f, 0.f}},
        {"second jitter", 0, FV_PAD_EDGE, {0.f, 0.f, 1.f, 0.f, -0.55f, 1.45f}},
        {"all, reflect", 2, FV_PAD_REFLECT, {1.1f, -0.4f, 0.91f, -7.f, 0.35f, 0.6f}},
        {"all, edge", 2, FV_PAD_EDGE, {-1.6f, 0.7f, 1.08f, 21.f, 0.15f, -0.3f}},
        {"far out, reflect", 3, FV_PAD_REFLECT, {4.3f, -5.2f, 0.6f, 40.f, 0.f, 0.f}},
        {"all, wrap", 1, FV_PAD_WRAP, {2.4f, -3.7f, 0.8f, 31.f, 0.2f, 0.1f}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct warp_ctx k;
        k.h = 5;
        k.w = 6;
        k.c = 3;
        fv_transform_config_default(&k.cfg);
        k.cfg.pad = cases[i].pad;
        k.cfg.pad_mode = cases[i].mode;
        k.cfg.fill = 0.5f;
        fv_warp_from_params(&cases[i].tp, k.h, k.w, &k.wp[0]);
        struct fv_transform_params t2 = cases[i].tp;
        t2.angle_deg = -t2.angle_deg;
        t2.jx1 = -t2.jx1;
        fv_warp_from_params(&t2, k.h, k.w, &k.wp[1]);
        size_t nx = 2 * (size_t)k.h * k.w * k.c;
        float *u = malloc(nx * sizeof(float));
        fill_uniform(u, nx, 40 + i, 0.f, 1.f);
        double rel = gradcheck(warp_fwd, warp_bwd, &k, u, nx, nx, 0.1, 0, 0, 60 + i);
        expect_grad(cases[i].what, rel, 1e-4);
        free(u);
    }
}

static void test_transform_config(void **state) {
    (void)state;
    struct fv_transform_config cfg, px;
    struct fv_error err = {0};
    fv_transform_config_standard(&cfg);
    assert_int_equal(fv_transform_resolve(&cfg, 32, 32, &px, &err), FV_OK);
    assert_true(px.unit == FV_UNIT_PX && px.pad == 2.f && px.jitter1 == 2.f && px.jitter2 == 1.f);
    cfg.jitter1 = 0.0625f;
    cfg.pad = 0.05f; /* 1.6 px -> 2 */
    assert_int_equal(fv_transform_resolve(&cfg, 24, 32, &px, &err), FV_OK);
    assert_true(px.jitter1 == 2.f && px.pad == 2.f);
    fv_transform_config_default(&cfg);
    cfg.pad = 2.4f;
    assert_int_equal(fv_transform_resolve(&cfg, 32, 32, &cfg, &err), FV_OK); /* in place */
    assert_true(cfg.pad == 2.f);
    cfg.jitter1 = -1.f;
    assert_int_equal(fv_transform_resolve(&cfg, 32, 32, &px, &err), FV_ERR_USAGE);
    fv_transform_config_default(&cfg);
    cfg.scale_min = 1.2f;
    cfg.scale_max = 1.1f;
    assert_int_equal(fv_transform_resolve(&cfg, 32, 32, &px, &err), FV_ERR_USAGE);
    cfg.scale_min = 0.f;
    assert_int_equal(fv_transform_resolve(&cfg, 32, 32, &px, &err), FV_ERR_USAGE);
    fv_transform_config_default(&cfg);
    cfg.rotate_deg = NAN;
    assert_int_equal(fv_transform_resolve(&cfg, 32, 32, &px, &err), FV_ERR_USAGE);

    /* sampled values stay in their ranges; integer jitter is integral */
    fv_transform_config_default(&cfg);
    cfg.jitter1 = 2.7f;
    cfg.jitter2 = 1.f;
    cfg.jitter_integer = 1;
    cfg.scale_min = 0.9f;
    cfg.scale_max = 1.1f;
    cfg.rotate_deg = 10.f;
    int hit_edge = 0;
    for (int s = 0; s < 2000; s++) {
        struct fv_transform_params tp;
        fv_transform_sample(&cfg, 1, 0, (uint64_t)s, &tp);
        assert_true(tp.jx1 == floorf(tp.jx1) && fabsf(tp.jx1) <= 2.f && fabsf(tp.jy1) <= 2.f);
        assert_true(tp.jx2 == floorf(tp.jx2) && fabsf(tp.jx2) <= 1.f);
        assert_true(tp.scale >= 0.9f && tp.scale <= 1.1f);
        assert_true(fabsf(tp.angle_deg) <= 10.f);
        hit_edge |= tp.jx1 == -2.f;
    }
    assert_true(hit_edge);
    cfg.jitter_integer = 0;
    struct fv_transform_params tp;
    fv_transform_sample(&cfg, 1, 0, 3, &tp);
    assert_true(fabsf(tp.jx1) <= 2.7f && tp.jx1 != floorf(tp.jx1));
    /* identity config samples the identity */
    fv_transform_config_default(&cfg);
    fv_transform_sample(&cfg, 1, 2, 3, &tp);
    assert_true(tp.jx1 == 0.f && tp.jy1 == 0.f && tp.scale == 1.f && tp.angle_deg == 0.f &&
                tp.jx2 == 0.f && tp.jy2 == 0.f);
}

/* =========================================================== regularizers */

struct reg_ctx {
    int kind; /* 0 lp, 1 tv l1, 2 tv beta */
    float p, beta;
    int n, h, w, c;
};
static void reg_fwd(void *c, const float *u, float *vals) {
    struct reg_ctx *k = c;
    size_t hwc = (size_t)k->h * k->w * k->c;
    if (k->kind == 0) fv_reg_lp(u, k->n, hwc, k->p, 0.5f, 1.f, NULL, vals);
    if (k->kind == 1) fv_reg_tv_l1(u, k->n, k->h, k->w, k->c, 1.f, NULL, vals);
    if (k->kind == 2) fv_reg_tv_beta(u, k->n, k->h, k->w, k->c, k->beta, 1.f, NULL, vals);
}
/* weight -1: du += +dR/du */
static void reg_bwd(void *c, const float *u, const float *v, const float *dv, float *du) {
    (void)v;
    (void)dv;
    struct reg_ctx *k = c;
    size_t hwc = (size_t)k->h * k->w * k->c;
    if (k->kind == 0) fv_reg_lp(u, k->n, hwc, k->p, 0.5f, -1.f, du, NULL);
    if (k->kind == 1) fv_reg_tv_l1(u, k->n, k->h, k->w, k->c, -1.f, du, NULL);
    if (k->kind == 2) fv_reg_tv_beta(u, k->n, k->h, k->w, k->c, k->beta, -1.f, du, NULL);
}

static void test_regularizers(void **state) {
    (void)state;
    int n = 2, h = 4, w = 5, c = 3;
    size_t hwc = (size_t)h * w * c;
    float *u = fixture_f("reg_u", n * hwc);
    float vals[2];
    const float ps[] = {2.f, 6.f, 1.5f};
    const char *pn[] = {"reg_lp_2", "reg_lp_6", "reg_lp_1.5"};
    for (int i = 0; i < 3; i++) {
        double *want = fixture(pn[i], 2);
        fv_reg_lp(u, n, hwc, ps[i], 0.5f, 1.f, NULL, vals);
        check_close(pn[i], vals, want, 2, 1e-5, 0);
        free(want);
    }
    double *want = fixture("reg_tv_l1", 2);
    fv_reg_tv_l1(u, n, h, w, c, 1.f, NULL, vals);
    check_close("tv l1", vals, want, 2, 1e-5, 0);
    free(want);
    const float betas[] = {2.f, 1.5f};
    const char *bn[] = {"reg_tv_beta_2", "reg_tv_beta_1.5"};
    for (int i = 0; i < 2; i++) {
        want = fixture(bn[i], 2);
        fv_reg_tv_beta(u, n, h, w, c, betas[i], 1.f, NULL, vals);
        check_close(bn[i], vals, want, 2, 1e-5, 0);
        free(want);
    }
    free(u);

    /* gradients: distinct values keep |.| kinks (and |u - 0.5| = 0) away from eps */
    size_t nx = n * hwc;
    float *x = malloc(nx * sizeof(float));
    struct { const char *what; int kind; float p, beta; } g[] = {
        {"lp p=2", 0, 2.f, 0}, {"lp p=6", 0, 6.f, 0}, {"lp p=1.5", 0, 1.5f, 0},
        {"lp p=1", 0, 1.f, 0},
        {"tv l1", 1, 0, 0}, {"tv beta=2", 2, 0, 2.f}, {"tv beta=1.5", 2, 0, 1.5f},
        {"tv beta=3", 2, 0, 3.f}};
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
        struct reg_ctx k = {g[i].kind, g[i].p, g[i].beta, n, h, w, c};
        fill_distinct(x, nx, 70 + i, 0.013f, 0.987f);
        if (g[i].kind == 0) /* |u - 0.5|^p: stay >= 0.05 away from the centre */
            for (size_t j = 0; j < nx; j++) x[j] += x[j] < 0.5f ? -0.05f : 0.05f;
        double rel = gradcheck(reg_fwd, reg_bwd, &k, x, nx, (size_t)n, 2e-3, 0, 1, 0);
        expect_grad(g[i].what, rel, 1e-3);
    }
    /* weight scales the gradient and du is accumulated, not overwritten */
    float *du = calloc(nx, sizeof(float)), *du2 = malloc(nx * sizeof(float));
    fv_reg_tv_l1(x, n, h, w, c, 3.f, du, NULL);
    for (size_t i = 0; i < nx; i++) du2[i] = 1.f;
    fv_reg_tv_l1(x, n, h, w, c, 1.f, du2, NULL);
    for (size_t i = 0; i < nx; i++) assert_true(fabsf(du[i] - 3.f * (du2[i] - 1.f)) < 1e-6f);
    free(du);
    free(du2);
    free(x);
}

/* ---- DeepInversion's feature statistics (fv_reg_featstats) ---- */
struct fs_ctx {
    int n, ch;
    size_t hw;
    const float *mu_r, *var_r;
};
static void fs_fwd(void *c, const float *a, float *vals) {
    struct fs_ctx *k = c;
    double ws[4 * 8];
    fv_reg_featstats(a, k->n, k->hw, k->ch, k->mu_r, k->var_r, NULL, NULL, vals, ws);
}
/* weight -dy[b]: da += dy[b] dR_b/da */
static void fs_bwd(void *c, const float *a, const float *vals, const float *dy, float *da) {
    (void)vals;
    struct fs_ctx *k = c;
    double ws[4 * 8];
    float wgt[8];
    for (int b = 0; b < k->n; b++) wgt[b] = -dy[b];
    fv_reg_featstats(a, k->n, k->hw, k->ch, k->mu_r, k->var_r, wgt, da, NULL, ws);
}

static void test_featstats(void **state) {
    (void)state;
    double ws[4 * 8];
    /* by hand: channel 0 = 1,2,3,4 (mean 2.5, variance 1.25), channel 1 =
     * 0,0,0,2 (0.5, 0.75); references off by (-3, -4) and (0.6, -0.8):
     * R = 5 / |(5.5, 4.5)| + 1 / |(0.65, 1.55)| */
    const float a1[] = {1, 0, 2, 0, 3, 0, 4, 2};
    const float mu1[] = {5.5f, 4.5f}, var1[] = {0.65f, 1.55f};
    float v;
    fv_reg_featstats(a1, 1, 4, 2, mu1, var1, NULL, NULL, &v, ws);
    double want = 5.0 / sqrt(5.5 * 5.5 + 4.5 * 4.5) + 1.0 / sqrt(0.65 * 0.65 + 1.55 * 1.55);
    if (!(fabs((double)v - want) < 1e-5 * want)) fail_msg("featstats by hand: got %.9g want %.9g", (double)v, want);
    /* at the reference itself: 0, and no gradient (the norms' kinks give 0) */
    const float mu0[] = {2.5f, 0.5f}, var0[] = {1.25f, 0.75f}, one = 1.f;
    float da0[8] = {0};
    fv_reg_featstats(a1, 1, 4, 2, mu0, var0, &one, da0, &v, ws);
    assert_true(fabsf(v) < 1e-6f);
    for (int i = 0; i < 8; i++) assert_true(fabsf(da0[i]) < 1e-5f);

    /* gradient: central differences in double, 3 images of 5x4 positions x 6 channels */
    int n = 3, ch = 6;
    size_t hw = 20, na = (size_t)n * hw * (size_t)ch;
    float *a = malloc(na * sizeof(float)), mu_r[6], var_r[6];
    fill_distinct(a, na, 901, 0.0f, 2.0f);
    fill_uniform(mu_r, 6, 902, 0.2f, 1.5f);
    fill_uniform(var_r, 6, 903, 0.05f, 0.6f);
    struct fs_ctx k = {n, ch, hw, mu_r, var_r};
    double rel = gradcheck(fs_fwd, fs_bwd, &k, a, na, (size_t)n, 1e-2, 0, 0, 904);
    expect_grad("feature statistics", rel, 1e-3);
    /* each image's weight scales its own gradient only */
    float *da = calloc(na, sizeof(float)), *da2 = calloc(na, sizeof(float));
    const float w1[] = {1.f, 0.f, 2.f}, w2[] = {1.f, 1.f, 1.f};
    fv_reg_featstats(a, n, hw, ch, mu_r, var_r, w1, da, NULL, ws);
    fv_reg_featstats(a, n, hw, ch, mu_r, var_r, w2, da2, NULL, ws);
    for (size_t i = 0; i < na; i++) {
        float f = w1[i / (hw * (size_t)ch)];
        assert_true(fabsf(da[i] - f * da2[i]) <= 1e-6f * (1.f + fabsf(da2[i])));
    }
    free(a);
    free(da);
    free(da2);
}

static void test_blur(void **state) {
    (void)state;
    int n = 2, h = 5, w = 7, c = 3;
    size_t cnt = (size_t)n * h * w * c;
    float *in = fixture_f("blur_in", cnt);
    float *u = malloc(cnt * sizeof(float));
    float *ws = malloc(fv_blur_ws_floats(n, h, w, c) * sizeof(float));
    const float sig[] = {0.8f, 1.7f};
    const char *names[] = {"blur_out_0.8", "blur_out_1.7"};
    for (int i = 0; i < 2; i++) {
        double *want = fixture(names[i], cnt);
        memcpy(u, in, cnt * sizeof(float));
        assert_int_equal(fv_blur_gaussian(u, n, h, w, c, sig[i], i ? NULL : ws, NULL), FV_OK);
        check_close(names[i], u, want, cnt, 1e-5, 1e-6);
        free(want);
    }
    memcpy(u, in, cnt * sizeof(float));
    assert_int_equal(fv_blur_gaussian(u, n, h, w, c, 0.f, NULL, NULL), FV_OK);
    assert_memory_equal(u, in, cnt * sizeof(float));
    free(in);
    free(u);
    free(ws);
}

/* =========================================================== steps */

static void test_steps(void **state) {
    (void)state;
    int n = 2;
    size_t size = 5, cnt = 10;
    float *theta0 = fixture_f("steps_theta0", cnt);
    float *g[3];
    char name[64];
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "steps_g%d", i);
        g[i] = fixture_f(name, cnt);
    }
    /* Adam, 3 steps */
    float th[10], m[10] = {0}, v[10] = {0};
    int t[2] = {0, 0};
    memcpy(th, theta0, sizeof th);
    struct fv_adam adam;
    fv_adam_default(&adam);
    assert_true(adam.lr == 0.05f && adam.beta1 == 0.9f && adam.beta2 == 0.999f &&
                adam.eps == 1e-8f);
    for (int s = 0; s < 3; s++) {
        fv_adam_step(&adam, th, g[s], m, v, t, n, size);
        snprintf(name, sizeof name, "adam_theta%d", s + 1);
        double *want = fixture(name, cnt);
        check_close(name, th, want, cnt, 1e-6, 1e-6);
        free(want);
    }
    assert_true(t[0] == 3 && t[1] == 3);

    /* normalized ascent, one step */
    const enum fv_grad_norm norms[] = {FV_NORM_NONE, FV_NORM_MEAN_ABS, FV_NORM_RMS, FV_NORM_L2};
    const char *nn[] = {"ascent_none", "ascent_meanabs", "ascent_rms", "ascent_l2"};
    for (int i = 0; i < 4; i++) {
        memcpy(th, theta0, sizeof th);
        fv_ascent_step(0.01f, norms[i], th, g[0], n, size);
        double *want = fixture(nn[i], cnt);
        check_close(nn[i], th, want, cnt, 1e-6, 1e-6);
        free(want);
    }

    /* RMSprop, 3 steps */
    memcpy(th, theta0, sizeof th);
    memset(v, 0, sizeof v);
    for (int s = 0; s < 3; s++) {
        fv_rmsprop_step(0.01f, 0.9f, 1e-7f, th, g[s], v, n, size);
        snprintf(name, sizeof name, "rmsprop_theta%d", s + 1);
        double *want = fixture(name, cnt);
        check_close(name, th, want, cnt, 1e-6, 1e-6);
        free(want);
    }

    /* clipping */
    float gc[10];
    memcpy(gc, g[2], sizeof gc);
    fv_grad_clip_value(gc, cnt, 0.5f);
    double *want = fixture("clipvalue", cnt);
    check_close("clip value", gc, want, cnt, 1e-7, 0);
    free(want);
    memcpy(gc, g[2], sizeof gc);
    fv_grad_clip_norm(gc, n, size, 1.5f);
    want = fixture("clipnorm", cnt);
    check_close("clip norm", gc, want, cnt, 1e-6, 1e-7);
    free(want);

    free(theta0);
    for (int i = 0; i < 3; i++) free(g[i]);
}

/* =========================================================== threads */

/* The same results with 1 and 3 threads, bit for bit (sizes above
 * FV_OPTIM_PAR_MIN so the loops really run in parallel). */
static void test_thread_independence(void **state) {
    (void)state;
#ifdef _OPENMP
    int n = 4, h = 64, w = 48, c = 3;
    size_t hwc = (size_t)h * w * c;
    assert_true((size_t)n * hwc >= FV_OPTIM_PAR_MIN);
    struct fv_param_config pc;
    fv_param_config_default(&pc, FV_PARAM_FOURIER);
    struct fv_param p;
    assert_int_equal(fv_param_init(&p, &pc, h, w, c, NULL), FV_OK);
    struct fv_transform_config tc;
    fv_transform_config_standard(&tc);
    assert_int_equal(fv_transform_resolve(&tc, h, w, &tc, NULL), FV_OK);
    struct fv_warp wp[4];
    fv_transform_sample_batch(&tc, 3, 0, 1, n, h, w, NULL, wp);
    size_t nt = (size_t)n * p.size;
    float *theta = malloc(nt * sizeof(float));
    float *ws = malloc(fv_param_ws_floats(&p, n) * sizeof(float));
    float *u = malloc(n * hwc * sizeof(float)), *v = malloc(n * hwc * sizeof(float));
    float *dv = malloc(n * hwc * sizeof(float)), *du = malloc(n * hwc * sizeof(float));
    float *m = malloc(nt * sizeof(float)), *vv = malloc(nt * sizeof(float));
    float *out[2], *dth = malloc(nt * sizeof(float));
    fill_uniform(dv, n * hwc, 8, -1.f, 1.f);
    struct fv_adam adam;
    fv_adam_default(&adam);
    int keep = omp_get_max_threads();
    for (int r = 0; r < 2; r++) {
        omp_set_num_threads(r ? 3 : 1);
        int t[4] = {0};
        fv_param_init_values(&p, theta, n, 5, 0);
        memset(m, 0, nt * sizeof(float));
        memset(vv, 0, nt * sizeof(float));
        for (int step = 0; step < 2; step++) {
            memset(du, 0, n * hwc * sizeof(float));
            memset(dth, 0, nt * sizeof(float));
            fv_param_forward(&p, theta, u, n, ws);
            fv_warp_forward(wp, &tc, u, v, n, h, w, c);
            fv_warp_backward(wp, &tc, dv, du, n, h, w, c);
            fv_reg_tv_l1(u, n, h, w, c, 0.1f, du, NULL);
            fv_reg_lp(u, n, hwc, 2.f, 0.5f, 0.1f, du, NULL);
            fv_param_backward(&p, theta, u, du, dth, n, ws);
            fv_adam_step(&adam, theta, dth, m, vv, t, n, p.size);
        }
        fv_param_forward(&p, theta, u, n, ws);
        assert_int_equal(fv_blur_gaussian(u, n, h, w, c, 0.7f, NULL, NULL), FV_OK);
        out[r] = malloc(n * hwc * sizeof(float));
        memcpy(out[r], u, n * hwc * sizeof(float));
    }
    omp_set_num_threads(keep);
    assert_memory_equal(out[0], out[1], n * hwc * sizeof(float));
    free(out[0]);
    free(out[1]);
    free(theta);
    free(ws);
    free(u);
    free(v);
    free(dv);
    free(du);
    free(m);
    free(vv);
    free(dth);
    fv_param_free(&p);
#else
    skip();
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_reference),
        cmocka_unit_test(test_rng_stats),
        cmocka_unit_test(test_rng_transform_determinism),
        cmocka_unit_test(test_irfft2_numpy),
        cmocka_unit_test(test_irfft2_adjoint),
        cmocka_unit_test(test_fourier_scale),
        cmocka_unit_test(test_fourier_param_numpy),
        cmocka_unit_test(test_param_gradcheck),
        cmocka_unit_test(test_param_from_image),
        cmocka_unit_test(test_param_init_project),
        cmocka_unit_test(test_param_errors),
        cmocka_unit_test(test_color_matrices),
        cmocka_unit_test(test_resize),
        cmocka_unit_test(test_warp_numpy),
        cmocka_unit_test(test_warp_geometry),
        cmocka_unit_test(test_warp_gradcheck),
        cmocka_unit_test(test_transform_config),
        cmocka_unit_test(test_regularizers),
        cmocka_unit_test(test_featstats),
        cmocka_unit_test(test_blur),
        cmocka_unit_test(test_steps),
        cmocka_unit_test(test_thread_independence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
