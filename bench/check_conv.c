/* Development check of the Conv2D kernels' special paths against a naive
 * double-precision loop: a batch where some images' dy lives in one or two
 * channels (the sparse backward taken for filter objectives) and others are
 * dense, all dense (Winograd for >= 32 channels), forward too, 'same' and
 * 'valid' padding, odd sizes, 1 and 2 threads (bit-identical).
 *
 *   gcc -std=c11 -O2 -fopenmp -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc bench/check_conv.c \
 *       src/core/error.c src/core/shape.c src/kernels/gemm.c src/kernels/im2col.c \
 *       src/kernels/winograd.c src/layers/conv2d.c src/layers/depthwise.c src/layers/prepare.c \
 *       -lm -o /tmp/check_conv && /tmp/check_conv
 * Prints the largest relative errors and exits 1 on a failure. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers/layers.h"

static float urand(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)(*s >> 8) / 16777216.0f - 0.5f;
}

static int check(int h, int w, int c, int oc, int same, int n, int sparse) {
    unsigned seed = 12345u + (unsigned)(h * 7 + c * 13 + oc + same);
    struct fv_layer l;
    memset(&l, 0, sizeof l);
    snprintf(l.name, sizeof l.name, "check");
    l.ops = &fv_conv2d_ops;
    l.p.conv = (struct fv_conv_params){.filters = oc, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .dh = 1,
                                       .dw = 1, .same = same, .use_bias = 1, .groups = 1};
    l.n_w = 2;
    l.w_len[0] = (size_t)9 * c * oc;
    l.w_len[1] = (size_t)oc;
    l.w[0] = malloc(l.w_len[0] * sizeof(float));
    l.w[1] = malloc(l.w_len[1] * sizeof(float));
    for (size_t i = 0; i < l.w_len[0]; i++) l.w[0][i] = urand(&seed);
    for (size_t i = 0; i < l.w_len[1]; i++) l.w[1][i] = urand(&seed);
    struct fv_io io;
    memset(&io, 0, sizeof io);
    io.n = n, io.n_in = 1, io.grad = 1;
    io.in[0] = (struct fv_shape){3, {h, w, c, 0}};
    struct fv_error err = {0};
    if (l.ops->shape(&l, &io, &err)) {
        printf("%s\n", err.msg);
        return 1;
    }
    int oh = io.out.d[0], ow = io.out.d[1], pt = same ? 1 : 0;
    size_t nx = (size_t)n * h * w * c, ny = (size_t)n * oh * ow * oc;
    float *x = malloc(nx * sizeof *x), *dy = calloc(ny, sizeof *dy), *y = malloc(ny * sizeof *y);
    float *dx1 = calloc(nx, sizeof *dx1), *dx2 = calloc(nx, sizeof *dx2);
    float *ws = malloc(io.ws_floats * sizeof *ws);
    for (size_t i = 0; i < nx; i++) x[i] = urand(&seed);
    for (int b = 0; b < n; b++)     /* image b: channel b % oc only, two channels, or all */
        for (int p = 0; p < oh * ow; p++)
            for (int o = 0; o < oc; o++) {
                int on = !sparse || b % 3 == 2 ? 1 : b % 3 == 0 ? o == b % oc : (o == 1 || o == oc - 1);
                if (on) dy[((size_t)b * oh * ow + p) * oc + o] = urand(&seed);
            }
    io.x[0] = x, io.y = y, io.dy = dy, io.ws = ws;
    fv_layer_prepare(&l, &io);
    int fails = 0;
    for (int t = 1; t <= 2; t++) {
        omp_set_num_threads(t);
        io.dx[0] = t == 1 ? dx1 : dx2;
        l.ops->forward(&l, &io);
        l.ops->backward(&l, &io);
    }
    if (memcmp(dx1, dx2, nx * sizeof *dx1)) printf("FAIL: backward differs with 1 and 2 threads\n"), fails++;
    double worst_f = 0;
    for (int b = 0; b < n; b++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int o = 0; o < oc; o++) {
                    double s = l.w[1][o], mag = fabs(s);
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                            int iy = oy - pt + ky, ix = ox - pt + kx;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                            for (int ci = 0; ci < c; ci++) {
                                double t = (double)x[(((size_t)b * h + iy) * w + ix) * c + ci] *
                                           (double)l.w[0][(((size_t)ky * 3 + kx) * c + ci) * oc + o];
                                s += t, mag += fabs(t);
                            }
                        }
                    double e = fabs((double)y[(((size_t)b * oh + oy) * ow + ox) * oc + o] - s) / (mag + 1e-30);
                    if (e > worst_f) worst_f = e;
                }
    double worst = 0;
    for (int b = 0; b < n; b++)
        for (int iy = 0; iy < h; iy++)
            for (int ix = 0; ix < w; ix++)
                for (int ci = 0; ci < c; ci++) {
                    double s = 0, mag = 0;
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                            int oy = iy + pt - ky, ox = ix + pt - kx;
                            if (oy < 0 || oy >= oh || ox < 0 || ox >= ow) continue;
                            for (int o = 0; o < oc; o++) {
                                double t = (double)dy[(((size_t)b * oh + oy) * ow + ox) * oc + o] *
                                           (double)l.w[0][(((size_t)ky * 3 + kx) * c + ci) * oc + o];
                                s += t, mag += fabs(t);
                            }
                        }
                    double got = dx1[(((size_t)b * h + iy) * w + ix) * c + ci];
                    double e = fabs(got - s) / (mag + 1e-30);
                    if (e > worst) worst = e;
                }
    printf("%dx%dx%d -> %d %s n=%d %s: worst relative error forward %.2e backward %.2e\n", h, w, c,
           oc, same ? "same" : "valid", n, sparse ? "sparse dy" : "dense dy", worst_f, worst);
    if (worst > 1e-5 || worst_f > 1e-5) printf("FAIL\n"), fails++;
    free(x), free(dy), free(y), free(dx1), free(dx2), free(ws), free(io.cache), free(l.w[0]), free(l.w[1]);
    return fails;
}

int main(void) {
    int fails = check(23, 23, 32, 64, 1, 7, 1) + check(12, 9, 16, 32, 0, 5, 1) +
                check(48, 48, 3, 32, 1, 4, 1) + check(10, 10, 64, 128, 0, 6, 1) +
                check(10, 10, 64, 128, 0, 3, 0) + check(11, 13, 64, 64, 1, 3, 0) +
                check(9, 7, 96, 64, 1, 2, 0);
    return fails != 0;
}
