/* Times featviz's Conv2D, Dense and MaxPool kernels alone on the shapes of
 * the 48x48 GTSRB network (batch 43, as classviz48), forward and backward
 * (input gradient), and prints GFLOP/s per layer. A development tool for the
 * kernels in src/kernels and src/layers.
 *
 * With `lanes` as the fourth argument it times instead the six conv layers
 * forward + backward as the optimizer runs them: every thread its own lane of
 * [batch] images through all six, side by side, and prints one line,
 * `conv fwd+bwd lanes ...: X GFLOP/s`, the multiply-adds x2 of the direct
 * convolutions (Winograd layers need fewer) over the wall time: bench/run.py
 * compares it with the FMA peak of the same run (`layer_bench 11 20 - lanes`).
 *
 *   gcc -std=c11 -O3 -fopenmp -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc \
 *       bench/layer_bench.c src/core/error.c src/core/shape.c src/kernels/isa.c src/kernels/gemm.c \
 *       src/kernels/im2col.c src/kernels/winograd.c src/layers/conv2d.c src/layers/conv_pick.c \
 *       src/layers/dense.c \
 *       src/layers/pool.c src/layers/depthwise.c src/layers/prepare.c -lm -o /tmp/layer_bench \
 *       && OMP_NUM_THREADS=2 /tmp/layer_bench [batch] [reps] [layer]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/gemm.h"
#include "layers/layers.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* CPU seconds of the whole process (all threads): unlike wall time, not
 * inflated when other processes take the cores. */
static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float *rnd(size_t n, unsigned seed, float scale) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = scale * ((float)(seed >> 8) / 16777216.0f - 0.5f);
    }
    return p;
}

static const char *only; /* run only this layer (argv[3]) */

static void run(const char *name, struct fv_layer *l, int n, struct fv_shape in, int reps) {
    if (only && strcmp(only, name)) return;
    struct fv_io io;
    memset(&io, 0, sizeof io);
    io.n = n;
    io.n_in = 1;
    io.grad = 1;
    io.in[0] = in;
    struct fv_error err = {0};
    if (l->ops->shape(l, &io, &err)) {
        printf("%s: %s\n", name, err.msg);
        return;
    }
    size_t nx = (size_t)n * fv_shape_count(&in), ny = (size_t)n * fv_shape_count(&io.out);
    float *x = rnd(nx, 1, 2.0f), *dy = rnd(ny, 2, 2.0f), *y = malloc(ny * sizeof *y);
    float *dx = calloc(nx, sizeof *dx);
    float *ws = io.ws_floats ? malloc(io.ws_floats * sizeof *ws) : NULL;
    io.x[0] = x, io.y = y, io.dy = dy, io.dx[0] = dx, io.ws = ws;
    fv_layer_prepare(l, &io);
    double fl = l->ops->flops ? l->ops->flops(l, &io) * n : 0;
    l->ops->forward(l, &io);
    l->ops->backward(l, &io);
    double c0 = cpu_now(), t0 = now();
    for (int r = 0; r < reps; r++) l->ops->forward(l, &io);
    double c1 = cpu_now(), t1 = now();
    for (int r = 0; r < reps; r++) l->ops->backward(l, &io);
    double c2 = cpu_now(), t2 = now();
    double f = (t1 - t0) / reps, b = (t2 - t1) / reps;
    printf("%-10s fwd %8.3f ms %6.1f GFLOP/s (%6.1f per CPU s)   bwd %8.3f ms %6.1f GFLOP/s "
           "(%6.1f per CPU s)\n",
           name, f * 1e3, fl / f * 1e-9, fl * reps / (c1 - c0) * 1e-9, b * 1e3, fl / b * 1e-9,
           fl * reps / (c2 - c1) * 1e-9);
    free(x), free(dy), free(y), free(dx), free(ws), free(io.cache);
}

static struct fv_shape s3(int h, int w, int c) {
    struct fv_shape s = {3, {h, w, c, 0}};
    return s;
}

static const struct { const char *name; int h, c, oc, same; } convs[] = {
    {"conv2d_1", 48, 3, 32, 1},  {"conv2d_2", 48, 32, 32, 0},  {"conv2d_3", 23, 32, 64, 1},
    {"conv2d_4", 23, 64, 64, 0}, {"conv2d_5", 10, 64, 128, 1}, {"conv2d_6", 10, 128, 128, 0},
};
enum { N_CONV = sizeof convs / sizeof convs[0] };

static void conv_layer(struct fv_layer *l, int i) {
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", convs[i].name);
    l->ops = &fv_conv2d_ops;
    l->p.conv = (struct fv_conv_params){.filters = convs[i].oc, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                                        .dh = 1, .dw = 1, .same = convs[i].same, .use_bias = 1, .groups = 1};
    l->n_w = 2;
    l->w_len[0] = (size_t)9 * convs[i].c * convs[i].oc;
    l->w[0] = rnd(l->w_len[0], 3, 0.2f);
    l->w_len[1] = (size_t)convs[i].oc;
    l->w[1] = rnd(l->w_len[1], 4, 0.1f);
}

/* Every thread a lane of n images through the six conv layers, forward then
 * backward, reps times, side by side (the kernels run on their thread alone). */
static void lanes(int n, int reps) {
    struct fv_layer l[N_CONV];
    for (int i = 0; i < N_CONV; i++) conv_layer(&l[i], i);
    double fl = 0, t0 = 0, t1 = 0, c0 = 0, c1 = 0;
    int threads = fv_omp_max_threads();
    FV_OMP("omp parallel")
    {
        struct fv_io io[N_CONV];
        float *mem[N_CONV][6];
        double lane_fl = 0;
        for (int i = 0; i < N_CONV; i++) {
            memset(&io[i], 0, sizeof io[i]);
            io[i].n = n, io[i].n_in = 1, io[i].grad = 1, io[i].in[0] = s3(convs[i].h, convs[i].h, convs[i].c);
            struct fv_error err = {0};
            if (l[i].ops->shape(&l[i], &io[i], &err)) abort();
            size_t nx = (size_t)n * fv_shape_count(&io[i].in[0]), ny = (size_t)n * fv_shape_count(&io[i].out);
            mem[i][0] = rnd(nx, 1, 2.0f), mem[i][1] = rnd(ny, 2, 2.0f), mem[i][2] = malloc(ny * sizeof(float));
            mem[i][3] = calloc(nx, sizeof(float));
            mem[i][4] = io[i].ws_floats ? malloc(io[i].ws_floats * sizeof(float)) : NULL;
            io[i].x[0] = mem[i][0], io[i].dy = mem[i][1], io[i].y = mem[i][2], io[i].dx[0] = mem[i][3], io[i].ws = mem[i][4];
            fv_layer_prepare(&l[i], &io[i]);
            mem[i][5] = io[i].cache;
            lane_fl += 2 * l[i].ops->flops(&l[i], &io[i]) * n; /* forward, and the backward as much again */
            l[i].ops->forward(&l[i], &io[i]);
            l[i].ops->backward(&l[i], &io[i]);
        }
        FV_OMP("omp barrier")
        FV_OMP("omp master")
        {
            fl = lane_fl * threads;
            t0 = now(), c0 = cpu_now();
        }
        FV_OMP("omp barrier")
        for (int r = 0; r < reps; r++) {
            for (int i = 0; i < N_CONV; i++) l[i].ops->forward(&l[i], &io[i]);
            for (int i = N_CONV - 1; i >= 0; i--) l[i].ops->backward(&l[i], &io[i]);
        }
        FV_OMP("omp barrier")
        FV_OMP("omp master")
        {
            t1 = now(), c1 = cpu_now();
        }
        for (int i = 0; i < N_CONV; i++)
            for (int k = 0; k < 6; k++) free(mem[i][k]);
    }
    printf("conv fwd+bwd lanes of %d on %d threads: %.1f GFLOP/s (%.1f per CPU s), %.3f s for %d reps\n", n,
           threads, fl * reps / (t1 - t0) * 1e-9, fl * reps / (c1 - c0) * 1e-9, t1 - t0, reps);
    for (int i = 0; i < N_CONV; i++) free(l[i].w[0]), free(l[i].w[1]);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 43, reps = argc > 2 ? atoi(argv[2]) : 5;
    only = argc > 3 && strcmp(argv[3], "-") ? argv[3] : NULL;
    if (argc > 4 && !strcmp(argv[4], "lanes")) {
        lanes(n, reps);
        return 0;
    }
    printf("batch %d, %d threads\n", n, fv_omp_max_threads());
    for (int i = 0; i < N_CONV; i++) {
        struct fv_layer l;
        conv_layer(&l, i);
        run(l.name, &l, n, s3(convs[i].h, convs[i].h, convs[i].c), reps);
        free(l.w[0]), free(l.w[1]);
        if (convs[i].same == 0) {
            struct fv_layer p;
            memset(&p, 0, sizeof p);
            snprintf(p.name, sizeof p.name, "pool_%d", i / 2 + 1);
            p.ops = &fv_maxpool_ops;
            p.p.pool = (struct fv_pool_params){.ph = 2, .pw = 2, .sh = 2, .sw = 2};
            run(p.name, &p, n, s3(convs[i].h - 2, convs[i].h - 2, convs[i].oc), reps);
        }
    }
    static const struct { const char *name; int in, out; } dense[] = {{"dense_1", 2048, 512}, {"dense_2", 512, 43}};
    for (size_t i = 0; i < 2; i++) {
        struct fv_layer l;
        memset(&l, 0, sizeof l);
        snprintf(l.name, sizeof l.name, "%s", dense[i].name);
        l.ops = &fv_dense_ops;
        l.p.conv.filters = dense[i].out;
        l.p.conv.use_bias = 1;
        l.n_w = 2;
        l.w_len[0] = (size_t)dense[i].in * dense[i].out;
        l.w[0] = rnd(l.w_len[0], 5, 0.05f);
        l.w_len[1] = (size_t)dense[i].out;
        l.w[1] = rnd(l.w_len[1], 6, 0.1f);
        struct fv_shape in = {1, {dense[i].in, 0, 0, 0}};
        run(l.name, &l, n, in, reps);
        free(l.w[0]), free(l.w[1]);
    }
    return 0;
}
