/* DepthwiseConv2D, as Keras/TensorFlow: each input channel c has its own
 * (KH, KW) filters, depth_multiplier M of them; output channel c*M + m.
 *
 *   x: (n, H, W, C)   w[0]: (KH, KW, C, M)   w[1]: (C*M)   y: (n, OH, OW, C*M)
 *   y[img][oy][ox][c*M+m] = bias[c*M+m]
 *       + sum_{ky,kx} x[img][oy*SH-PT+ky*DH][ox*SW-PL+kx*DW][c] * w[ky][kx][c][m]
 *
 * Direct loops, vectorized over channels (AVX2 + FMA, or portable, as the
 * process's SIMD path says: kernels/isa.h); forward parallel over output rows,
 * backward a gather parallel over input rows (each thread owns its dx rows,
 * taps summed in fixed (ky, kx) order): bit-identical for any thread count.
 * The raw kernels are shared with separable.c through conv_impl.h.
 */
#include <limits.h>
#include <string.h>

#include "kernels/gemm.h"
#include "kernels/isa.h"
#include "layers/conv_impl.h"
#include "layers/layers.h"

#if defined(__GNUC__) && defined(__x86_64__) && !defined(FV_GEMM_PORTABLE)
#define DW_X86 1
#include <immintrin.h>
#endif

/* One output (or, backward, input) pixel of a channel-multiplier-1 depthwise
 * convolution: its nt valid taps t, in (ky, kx) order, read xs[t][c] * ks[t][c]:
 *   forward   out[c] = (sum_t xs[t][c] * ks[t][c]) + bias[c]   (bias may be NULL)
 *   backward  out[c] = out[c] + sum_t ...                       (acc = 1)
 * summed tap after tap. The portable kernel multiplies and adds (the x86-64
 * baseline, no FMA); the AVX2 one fuses them, vectorized over channels, 32
 * channels (4 independent sums) at a time, so results differ from the
 * portable ones in the last bits, never between thread counts. */
#define DW_MAX_TAPS 49

typedef void dw_pixel_fn(float *restrict out, const float *const *xs, const float *const *ks,
                         int nt, size_t C, const float *bias, int acc);

static void dw_pixel_portable(float *restrict out, const float *const *xs, const float *const *ks,
                              int nt, size_t C, const float *bias, int acc) {
    if (!acc)
        for (size_t c = 0; c < C; c++) out[c] = 0.0f;
    for (int t = 0; t < nt; t++) {
        const float *restrict x = xs[t], *restrict k = ks[t];
        size_t c = 0;
        for (; c + 4 <= C; c += 4) /* chunks of 4: gcc -O2 vectorizes them */
            for (int v = 0; v < 4; v++) out[c + v] += x[c + v] * k[c + v];
        for (; c < C; c++) out[c] += x[c] * k[c];
    }
    if (bias)
        for (size_t c = 0; c < C; c++) out[c] += bias[c];
}

#ifdef DW_X86
#define AVX2_FN __attribute__((target("avx2,fma")))

AVX2_FN static void dw_pixel_avx2(float *restrict out, const float *const *xs,
                                  const float *const *ks, int nt, size_t C, const float *bias,
                                  int acc) {
    size_t c = 0;
    for (; c + 32 <= C; c += 32) {
        __m256 s0, s1, s2, s3;
        if (acc) {
            s0 = _mm256_loadu_ps(out + c);
            s1 = _mm256_loadu_ps(out + c + 8);
            s2 = _mm256_loadu_ps(out + c + 16);
            s3 = _mm256_loadu_ps(out + c + 24);
        } else {
            s0 = s1 = s2 = s3 = _mm256_setzero_ps();
        }
        for (int t = 0; t < nt; t++) {
            const float *x = xs[t] + c, *k = ks[t] + c;
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x), _mm256_loadu_ps(k), s0);
            s1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + 8), _mm256_loadu_ps(k + 8), s1);
            s2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + 16), _mm256_loadu_ps(k + 16), s2);
            s3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + 24), _mm256_loadu_ps(k + 24), s3);
        }
        if (bias) {
            s0 = _mm256_add_ps(s0, _mm256_loadu_ps(bias + c));
            s1 = _mm256_add_ps(s1, _mm256_loadu_ps(bias + c + 8));
            s2 = _mm256_add_ps(s2, _mm256_loadu_ps(bias + c + 16));
            s3 = _mm256_add_ps(s3, _mm256_loadu_ps(bias + c + 24));
        }
        _mm256_storeu_ps(out + c, s0);
        _mm256_storeu_ps(out + c + 8, s1);
        _mm256_storeu_ps(out + c + 16, s2);
        _mm256_storeu_ps(out + c + 24, s3);
    }
    for (; c + 8 <= C; c += 8) { /* the last whole vectors (MobileNet's channels are multiples of 8) */
        __m256 v = acc ? _mm256_loadu_ps(out + c) : _mm256_setzero_ps();
        for (int t = 0; t < nt; t++) v = _mm256_fmadd_ps(_mm256_loadu_ps(xs[t] + c), _mm256_loadu_ps(ks[t] + c), v);
        if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + c));
        _mm256_storeu_ps(out + c, v);
    }
    if (c < C) { /* the last 1..7 channels, masked */
        static const int ramp[8] = {0, 1, 2, 3, 4, 5, 6, 7};
        __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(C - c)), _mm256_loadu_si256((const __m256i *)ramp));
        __m256 v = acc ? _mm256_maskload_ps(out + c, m) : _mm256_setzero_ps();
        for (int t = 0; t < nt; t++)
            v = _mm256_fmadd_ps(_mm256_maskload_ps(xs[t] + c, m), _mm256_maskload_ps(ks[t] + c, m), v);
        if (bias) v = _mm256_add_ps(v, _mm256_maskload_ps(bias + c, m));
        _mm256_maskstore_ps(out + c, m, v);
    }
}
#endif

/* The pixel kernel of the SIMD path chosen for the process (kernels/isa.h) */
static dw_pixel_fn *dw_pixel(void) {
#ifdef DW_X86
    if (fv_isa() != FV_ISA_PORTABLE) return dw_pixel_avx2; /* AVX-512 machines run it too */
#endif
    return dw_pixel_portable;
}

/* y[i] += a[i] * b[i] for i < n, in chunks of 4 so gcc -O2 vectorizes it */
static void madd(float *restrict y, const float *restrict a, const float *restrict b, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int v = 0; v < 4; v++) y[i + v] += a[i + v] * b[i + v];
    for (; i < n; i++) y[i] += a[i] * b[i];
}

/* Channel multiplier > 1 (rare): direct loops */
static void fwd_mult(float *yp, const float *xi, const float *k, const float *bias,
                     const struct fv_conv_geom *g, size_t M, int oy, int ox) {
    size_t C = (size_t)g->c, CM = C * M;
    for (size_t j = 0; j < CM; j++) yp[j] = 0.0f;
    for (int ky = 0; ky < g->kh; ky++) {
        int iy = oy * g->sh - g->pt + ky * g->dh;
        if (iy < 0 || iy >= g->h) continue;
        for (int kx = 0; kx < g->kw; kx++) {
            int ix = ox * g->sw - g->pl + kx * g->dw;
            if (ix < 0 || ix >= g->w) continue;
            const float *xp = xi + ((size_t)iy * (size_t)g->w + (size_t)ix) * C; /* (C) */
            const float *kp = k + (size_t)(ky * g->kw + kx) * CM;               /* (C, M) */
            for (size_t c = 0; c < C; c++)
                for (size_t m = 0; m < M; m++) yp[c * M + m] += xp[c] * kp[c * M + m];
        }
    }
    if (bias)
        for (size_t j = 0; j < CM; j++) yp[j] += bias[j];
}

void fv_depthwise_fwd(float *y, const float *x, const float *k, const float *bias,
                      const struct fv_conv_geom *g, int mult, int relu, float cap) {
    size_t C = (size_t)g->c, M = (size_t)mult, CM = C * M;
    size_t out_rows = (size_t)g->n * (size_t)g->oh;
    int fast = M == 1 && g->kh * g->kw <= DW_MAX_TAPS;
    dw_pixel_fn *pixel = dw_pixel();
    int par = (double)out_rows * g->ow * (double)CM * g->kh * g->kw >= FV_PAR_MIN_WORK;
    (void)par; /* only read by the OpenMP clause */
    FV_OMP("omp parallel for schedule(static) if(par)")
    for (size_t r = 0; r < out_rows; r++) {
        size_t img = r / (size_t)g->oh;
        int oy = (int)(r % (size_t)g->oh);
        const float *xi = x + img * (size_t)g->h * (size_t)g->w * C; /* (H, W, C) */
        const float *xs[DW_MAX_TAPS], *ks[DW_MAX_TAPS];
        int nt = 0, prev_in = 0;
        for (int ox = 0; ox < g->ow; ox++) {
            float *yp = y + (r * (size_t)g->ow + (size_t)ox) * CM; /* (C*M) */
            if (!fast) {
                fwd_mult(yp, xi, k, bias, g, M, oy, ox);
                continue;
            }
            /* every kx inside the image: the same taps as the pixel before, one stride on */
            int ix0 = ox * g->sw - g->pl, in = ix0 >= 0 && ix0 + (g->kw - 1) * g->dw < g->w;
            if (in && prev_in) {
                for (int t = 0; t < nt; t++) xs[t] += (size_t)g->sw * C;
                pixel(yp, xs, ks, nt, C, bias, 0);
                continue;
            }
            prev_in = in;
            nt = 0; /* the taps inside the image, in (ky, kx) order */
            for (int ky = 0; ky < g->kh; ky++) {
                int iy = oy * g->sh - g->pt + ky * g->dh;
                if (iy < 0 || iy >= g->h) continue;
                for (int kx = 0; kx < g->kw; kx++) {
                    int ix = ox * g->sw - g->pl + kx * g->dw;
                    if (ix < 0 || ix >= g->w) continue;
                    xs[nt] = xi + ((size_t)iy * (size_t)g->w + (size_t)ix) * C;
                    ks[nt++] = k + (size_t)(ky * g->kw + kx) * C;
                }
            }
            pixel(yp, xs, ks, nt, C, bias, 0);
        }
        if (relu) fv_bias_relu(y + r * (size_t)g->ow * CM, NULL, (size_t)g->ow, (int)CM, 1, cap); /* in cache */
    }
}

/* t / s when s divides t >= 0, else -1; without a division for stride 1 (per pixel and tap) */
static inline int stride_div(int t, int s) {
    if (s == 1 || t < 0) return t;
    return t % s ? -1 : t / s;
}

void fv_depthwise_bwd(float *dx, const float *dy, const float *k, const struct fv_conv_geom *g,
                      int mult, int assign, const float *gate, float cap) {
    size_t C = (size_t)g->c, M = (size_t)mult, CM = C * M;
    size_t in_rows = (size_t)g->n * (size_t)g->h;
    int fast = M == 1 && g->kh * g->kw <= DW_MAX_TAPS;
    dw_pixel_fn *pixel = dw_pixel();
    int par = (double)g->n * g->oh * g->ow * (double)CM * g->kh * g->kw >= FV_PAR_MIN_WORK;
    (void)par; /* only read by the OpenMP clause */
    FV_OMP("omp parallel for schedule(static) if(par)")
    for (size_t r = 0; r < in_rows; r++) {
        size_t img = r / (size_t)g->h;
        int iy = (int)(r % (size_t)g->h);
        const float *ds[DW_MAX_TAPS], *ks[DW_MAX_TAPS];
        int nt = 0, prev_in = 0;
        for (int ix = 0; ix < g->w; ix++) {
            float *dxp = dx + (r * (size_t)g->w + (size_t)ix) * C; /* (C) */
            if (assign && !fast) memset(dxp, 0, C * sizeof(float));
            /* stride 1 and every kx reading an output pixel: the same taps as the pixel before, one on */
            int in = fast && g->sw == 1 && ix + g->pl - (g->kw - 1) * g->dw >= 0 && ix + g->pl < g->ow;
            if (in && prev_in) {
                for (int t = 0; t < nt; t++) ds[t] += CM;
                if (nt || assign) pixel(dxp, ds, ks, nt, C, NULL, !assign);
                continue;
            }
            prev_in = in;
            nt = 0;
            for (int ky = 0; ky < g->kh; ky++) {
                /* forward read iy = oy*SH - PT + ky*DH */
                int oy = stride_div(iy + g->pt - ky * g->dh, g->sh);
                if (oy < 0 || oy >= g->oh) continue;
                for (int kx = 0; kx < g->kw; kx++) {
                    /* ... and ix = ox*SW - PL + kx*DW */
                    int ox = stride_div(ix + g->pl - kx * g->dw, g->sw);
                    if (ox < 0 || ox >= g->ow) continue;
                    const float *dyp =
                        dy + ((img * (size_t)g->oh + (size_t)oy) * (size_t)g->ow + (size_t)ox) * CM;
                    const float *kp = k + (size_t)(ky * g->kw + kx) * CM; /* (C, M) */
                    /* forward: yp[c*M+m] += xp[c] * kp[c*M+m]
                     * so:      dxp[c] += sum_m dyp[c*M+m] * kp[c*M+m] */
                    if (fast) {
                        ds[nt] = dyp;
                        ks[nt++] = kp;
                    } else if (M == 1) {
                        madd(dxp, dyp, kp, C);
                    } else {
                        for (size_t c = 0; c < C; c++) {
                            float s = 0.0f;
                            for (size_t m = 0; m < M; m++) s += dyp[c * M + m] * kp[c * M + m];
                            dxp[c] += s;
                        }
                    }
                }
            }
            if (fast && (nt || assign)) pixel(dxp, ds, ks, nt, C, NULL, !assign);
        }
        if (gate) /* the row is still in cache */
            fv_relu_gate(dx + r * (size_t)g->w * C, gate + r * (size_t)g->w * C, (size_t)g->w * C, cap);
    }
}

int fv_depthwise_mult(const struct fv_layer *l, const struct fv_conv_geom *g, int *mult,
                      struct fv_error *err) {
    const struct fv_conv_params *p = &l->p.conv;
    size_t taps = (size_t)p->kh * (size_t)p->kw;
    size_t len = l->n_w >= 1 && l->w[0] ? l->w_len[0] : 0; /* (KH, KW, C, M) */
    size_t per_c = taps * (size_t)g->c;
    if (p->multiplier > 0) {
        size_t per_m = taps * (size_t)p->multiplier;
        size_t kc = len % per_m ? 0 : len / per_m;
        if (kc != (size_t)g->c)
            return fv_error_set(err, FV_ERR_SHAPE,
                                "layer '%s': input has %d channels but the depthwise kernel of "
                                "%zu floats (%d, %d, C, %d) expects %zu",
                                l->name, g->c, len, p->kh, p->kw, p->multiplier, kc);
    } else if (len == 0 || len % per_c != 0) {
        return fv_error_set(err, FV_ERR_SHAPE,
                            "layer '%s': depthwise kernel of %zu floats does not fit %d input "
                            "channels",
                            l->name, len, g->c);
    }
    size_t m = len / per_c;
    size_t cm = (size_t)g->c * m; /* <= len: no overflow */
    size_t pix = (size_t)g->oh * (size_t)g->ow, out;
    if (cm > INT_MAX || !fv_mul_size(pix, cm, &out) || !fv_mul_size(out, (size_t)g->n, &out))
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': output size overflows", l->name);
    *mult = (int)m;
    return FV_OK;
}

/* ---- the layer ---- */

struct dw_dims {
    struct fv_conv_geom g;
    int mult;
};

static int depthwise_dims(const struct fv_layer *l, const struct fv_io *io, struct dw_dims *d,
                          struct fv_error *err) {
    if (io->n_in != 1)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': expects 1 input, got %d", l->name,
                            io->n_in);
    int rc = fv_conv_geom_init(l, &io->in[0], io->n, &d->g, err);
    if (rc == FV_OK) rc = fv_depthwise_mult(l, &d->g, &d->mult, err);
    if (rc != FV_OK) return rc;
    size_t cm = (size_t)d->g.c * (size_t)d->mult;
    if (l->p.conv.use_bias && (l->n_w < 2 || !l->w[1] || l->w_len[1] != cm))
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': bias has %zu values, expected %zu",
                            l->name, l->n_w < 2 ? (size_t)0 : l->w_len[1], cm);
    return FV_OK;
}

static int depthwise_shape(const struct fv_layer *l, struct fv_io *io, struct fv_error *err) {
    struct dw_dims d;
    int rc = depthwise_dims(l, io, &d, err);
    if (rc != FV_OK) return rc;
    io->out.rank = 3;
    io->out.d[0] = d.g.oh;
    io->out.d[1] = d.g.ow;
    io->out.d[2] = d.g.c * d.mult;
    io->ws_floats = 0;
    return FV_OK;
}

static void depthwise_forward(const struct fv_layer *l, const struct fv_io *io) {
    struct dw_dims d;
    FV_ASSERT(depthwise_dims(l, io, &d, NULL) == FV_OK);
    fv_depthwise_fwd(io->y, io->x[0], l->w[0], l->p.conv.use_bias ? l->w[1] : NULL, &d.g, d.mult, io->relu,
                     io->relu_cap);
}

static void depthwise_backward(const struct fv_layer *l, const struct fv_io *io) {
    if (!io->dx[0]) return;
    struct dw_dims d;
    FV_ASSERT(depthwise_dims(l, io, &d, NULL) == FV_OK);
    fv_depthwise_bwd(io->dx[0], io->dy, l->w[0], &d.g, d.mult, io->dx_assign[0], io->dx_relu[0] ? io->x[0] : NULL,
                     io->dx_relu_cap[0]);
}

static double depthwise_flops(const struct fv_layer *l, const struct fv_io *io) {
    struct dw_dims d;
    if (depthwise_dims(l, io, &d, NULL) != FV_OK) return 0;
    return 2.0 * (double)d.g.oh * (double)d.g.ow * (double)d.g.c * (double)d.mult *
           (double)d.g.kh * (double)d.g.kw;
}

const struct fv_layer_ops fv_depthwise_ops = {
    .kind = "depthwise",
    .need = FV_NEED_SPATIAL,
    .flags = FV_OPF_FILTERS | FV_OPF_FOLDS_SCALE,
    .assigns_dx = 1, /* dx_assign: the first write overwrites (no zeroing pass) */
    .fuses_relu = 1, /* ReLU and ReLU6 row by row after the convolution */
    .masks_dx = 1,   /* and their derivatives row by row after the backward */
    .masks_dx_cap = 1,
    .shape = depthwise_shape,
    .forward = depthwise_forward,
    .backward = depthwise_backward,
    .flops = depthwise_flops,
    .rows = fv_conv_rows,
    .backward_skips_x = 1,
};
