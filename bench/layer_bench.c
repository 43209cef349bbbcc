/* Times featviz's Conv2D, Dense and MaxPool kernels alone on the shapes of
 * the 48x48 GTSRB network (batch 43, as classviz48), forward and backward
 * (input gradient), and prints GFLOP/s per layer. A development tool for the
 * kernels in src/kernels and src/layers; bench/run.py does not need it.
 *
 *   gcc -std=c11 -O3 -fopenmp -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc \
 *       bench/layer_bench.c src/core/error.c src/core/shape.c src/kernels/gemm.c \
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

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 43, reps = argc > 2 ? atoi(argv[2]) : 5;
    only = argc > 3 ? argv[3] : NULL;
    static const struct { const char *name; int h, c, oc, same; } convs[] = {
        {"conv2d_1", 48, 3, 32, 1},  {"conv2d_2", 48, 32, 32, 0},  {"conv2d_3", 23, 32, 64, 1},
        {"conv2d_4", 23, 64, 64, 0}, {"conv2d_5", 10, 64, 128, 1}, {"conv2d_6", 10, 128, 128, 0},
    };
    printf("batch %d, %d threads\n", n, fv_omp_max_threads());
    for (size_t i = 0; i < sizeof convs / sizeof convs[0]; i++) {
        struct fv_layer l;
        memset(&l, 0, sizeof l);
        snprintf(l.name, sizeof l.name, "%s", convs[i].name);
        l.ops = &fv_conv2d_ops;
        l.p.conv = (struct fv_conv_params){.filters = convs[i].oc, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                                           .dh = 1, .dw = 1, .same = convs[i].same, .use_bias = 1,
                                           .groups = 1};
        l.n_w = 2;
        l.w_len[0] = (size_t)9 * convs[i].c * convs[i].oc;
        l.w[0] = rnd(l.w_len[0], 3, 0.2f);
        l.w_len[1] = (size_t)convs[i].oc;
        l.w[1] = rnd(l.w_len[1], 4, 0.1f);
        run(l.name, &l, n, s3(convs[i].h, convs[i].h, convs[i].c), reps);
        free(l.w[0]), free(l.w[1]);
        if (convs[i].same == 0) {
            struct fv_layer p;
            memset(&p, 0, sizeof p);
            snprintf(p.name, sizeof p.name, "pool_%zu", i / 2 + 1);
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
