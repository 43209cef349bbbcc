/* Transformation robustness: random pad/jitter/scale/rotate/jitter as one
 * affine warp with bilinear sampling per image (geometry and border rules in
 * include/featviz/optim.h), and the bilinear resize used for coarse-to-fine
 * (kernels/resample.c).
 *
 * u, v (n, h, w, c). Forward gathers, backward scatters with the same weights,
 * serially within an image; images run in parallel.
 */
#include <math.h>
#include <string.h>

#include "featviz/optim.h"
#include "kernels/resample.h"

/* ---- bilinear resize (half-pixel centres, align_corners=False) ---- */

int fv_resize_bilinear(const float *src, int h, int w, float *dst, int H, int W, int c, int n) {
    struct fv_resample r;
    struct fv_error err = {0};
    int rc = fv_resample_init(&r, h, w, H, W, FV_RS_LINEAR, &err);
    if (rc) return rc;
    fv_resample_forward(&r, src, dst, c, n, NULL);
    fv_resample_free(&r);
    return FV_OK;
}

int fv_resize_bilinear_backward(const float *ddst, int H, int W, float *dsrc, int h, int w, int c,
                                int n) {
    struct fv_resample r;
    struct fv_error err = {0};
    int rc = fv_resample_init(&r, h, w, H, W, FV_RS_LINEAR, &err);
    if (rc) return rc;
    fv_resample_backward(&r, ddst, dsrc, c, n);
    fv_resample_free(&r);
    return FV_OK;
}

/* ---- configuration ---- */

void fv_transform_config_default(struct fv_transform_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->unit = FV_UNIT_PX;
    cfg->pad_mode = FV_PAD_CONSTANT;
    cfg->fill = 0.5f;
    cfg->scale_min = cfg->scale_max = 1.f;
}

void fv_transform_config_standard(struct fv_transform_config *cfg) {
    fv_transform_config_default(cfg);
    cfg->unit = FV_UNIT_FRACTION;
    cfg->pad = 1.f / 16.f;
    cfg->jitter1 = 1.f / 16.f;
    cfg->jitter_integer = 1;
    cfg->scale_min = 0.95f;
    cfg->scale_max = 1.05f;
    cfg->rotate_deg = 5.f;
    cfg->jitter2 = 1.f / 32.f;
}

int fv_transform_resolve(const struct fv_transform_config *in, int h, int w,
                         struct fv_transform_config *out, struct fv_error *err) {
    struct fv_transform_config c = *in;
    if (h < 1 || w < 1)
        return fv_error_set(err, FV_ERR_USAGE, "transforms: bad image size %dx%d", h, w);
    if (c.unit != FV_UNIT_PX && c.unit != FV_UNIT_FRACTION)
        return fv_error_set(err, FV_ERR_USAGE, "transforms: unknown unit %d", (int)c.unit);
    if (c.pad_mode != FV_PAD_CONSTANT && c.pad_mode != FV_PAD_REFLECT &&
        c.pad_mode != FV_PAD_EDGE && c.pad_mode != FV_PAD_WRAP)
        return fv_error_set(err, FV_ERR_USAGE, "transforms: unknown pad mode %d",
                            (int)c.pad_mode);
    if (!isfinite(c.pad) || !isfinite(c.jitter1) || !isfinite(c.jitter2) || !isfinite(c.fill) ||
        !isfinite(c.scale_min) || !isfinite(c.scale_max) || !isfinite(c.rotate_deg))
        return fv_error_set(err, FV_ERR_USAGE, "transforms: non-finite setting");
    if (c.pad < 0.f || c.jitter1 < 0.f || c.jitter2 < 0.f || c.rotate_deg < 0.f)
        return fv_error_set(err, FV_ERR_USAGE,
                            "transforms: pad, jitter and rotate must be >= 0 (got %g, %g, %g, %g)",
                            (double)c.pad, (double)c.jitter1, (double)c.jitter2,
                            (double)c.rotate_deg);
    if (!(c.scale_min > 0.f) || c.scale_min > c.scale_max)
        return fv_error_set(err, FV_ERR_USAGE,
                            "transforms: need 0 < scale_min <= scale_max (got %g, %g)",
                            (double)c.scale_min, (double)c.scale_max);
    if (c.unit == FV_UNIT_FRACTION) {
        float size = (float)(h > w ? h : w);
        c.pad *= size;
        c.jitter1 *= size;
        c.jitter2 *= size;
        c.unit = FV_UNIT_PX;
    }
    if (c.pad > 1e6f || c.jitter1 > 1e6f || c.jitter2 > 1e6f)
        return fv_error_set(err, FV_ERR_USAGE, "transforms: pad or jitter too large");
    c.pad = floorf(c.pad + 0.5f);
    *out = c;
    return FV_OK;
}

/* ---- sampling the transform ---- */

void fv_transform_params_identity(struct fv_transform_params *tp) {
    memset(tp, 0, sizeof *tp);
    tp->scale = 1.f;
}

static float jitter(struct fv_rng *r, float J, int integer) {
    if (integer) {
        int j = (int)floorf(J);
        return (float)fv_rng_int(r, -j, j);
    }
    return fv_rng_range(r, -J, J);
}

void fv_transform_sample(const struct fv_transform_config *cfg, uint64_t seed, uint64_t image,
                         uint64_t step, struct fv_transform_params *out) {
    struct fv_rng r;
    fv_rng_seed(&r, seed, FV_RNG_TRANSFORM, image, step);
    out->jx1 = jitter(&r, cfg->jitter1, cfg->jitter_integer);
    out->jy1 = jitter(&r, cfg->jitter1, cfg->jitter_integer);
    out->scale = fv_rng_range(&r, cfg->scale_min, cfg->scale_max);
    out->angle_deg = fv_rng_range(&r, -cfg->rotate_deg, cfg->rotate_deg);
    out->jx2 = jitter(&r, cfg->jitter2, cfg->jitter_integer);
    out->jy2 = jitter(&r, cfg->jitter2, cfg->jitter_integer);
}

void fv_warp_from_params(const struct fv_transform_params *tp, int h, int w, struct fv_warp *out) {
    /* centred: q = R(-a) (p - t2) / s - t1, R(-a) = [[cos a, -sin a], [sin a, cos a]];
     * index coordinates: p = p_idx - ctr, q_idx = q + ctr */
    double a = (double)tp->angle_deg * 3.14159265358979323846 / 180.0;
    double cs = cos(a), sn = sin(a), inv = 1.0 / (double)tp->scale;
    double cx = 0.5 * (double)(w - 1), cy = 0.5 * (double)(h - 1);
    double a00 = cs * inv, a01 = -sn * inv, a10 = sn * inv, a11 = cs * inv;
    double px = cx + (double)tp->jx2, py = cy + (double)tp->jy2; /* p - t2 = p_idx - px */
    out->a[0] = (float)a00;
    out->a[1] = (float)a01;
    out->a[2] = (float)a10;
    out->a[3] = (float)a11;
    out->b[0] = (float)(cx - (double)tp->jx1 - (a00 * px + a01 * py));
    out->b[1] = (float)(cy - (double)tp->jy1 - (a10 * px + a11 * py));
}

void fv_transform_sample_batch(const struct fv_transform_config *cfg, uint64_t seed,
                               uint64_t first_image, uint64_t step, int n, int h, int w,
                               struct fv_transform_params *params, struct fv_warp *warps) {
    for (int b = 0; b < n; b++) {
        struct fv_transform_params tp;
        fv_transform_sample(cfg, seed, first_image + (uint64_t)b, step, &tp);
        if (params) params[b] = tp;
        if (warps) fv_warp_from_params(&tp, h, w, &warps[b]);
    }
}

/* ---- the warp ---- */

/* Image index for canvas coordinate i along an axis of n pixels, or -1 for the
 * fill value. The canvas is the image plus `pad` on both sides; coordinates
 * beyond it clamp to its border. */
static int resolve(int i, int n, int pad, enum fv_pad_mode mode) {
    if (mode == FV_PAD_WRAP) return (i % n + n) % n;
    if (pad == 0 || mode == FV_PAD_EDGE) return i < 0 ? 0 : i > n - 1 ? n - 1 : i;
    if (i < -pad) i = -pad;
    if (i > n - 1 + pad) i = n - 1 + pad;
    if (i >= 0 && i < n) return i;
    if (mode == FV_PAD_CONSTANT) return -1;
    if (n == 1) return 0;
    /* numpy 'reflect' (mirror about the edge pixels): period 2 (n - 1) */
    int period = 2 * (n - 1), m = i % period;
    if (m < 0) m += period;
    return m < n ? m : period - m;
}

/* The four source taps of output pixel (x, y): image indices (or -1) and weights. */
struct taps {
    long idx[4]; /* pixel index y*w + x, -1 = fill */
    float wt[4];
};

static void warp_taps(const struct fv_warp *wp, int x, int y, int h, int w, int pad,
                      enum fv_pad_mode mode, struct taps *t) {
    float qx = wp->a[0] * (float)x + wp->a[1] * (float)y + wp->b[0];
    float qy = wp->a[2] * (float)x + wp->a[3] * (float)y + wp->b[1];
    /* keep far-away points finite for the int conversion; they clamp anyway */
    float lim = (float)(h + w + 2 * pad + 4);
    qx = qx < -lim ? -lim : qx > lim ? lim : qx;
    qy = qy < -lim ? -lim : qy > lim ? lim : qy;
    float fx0 = floorf(qx), fy0 = floorf(qy);
    float tx = qx - fx0, ty = qy - fy0;
    int x0 = (int)fx0, y0 = (int)fy0;
    int xs[2] = {resolve(x0, w, pad, mode), resolve(x0 + 1, w, pad, mode)};
    int ys[2] = {resolve(y0, h, pad, mode), resolve(y0 + 1, h, pad, mode)};
    float wx[2] = {1.f - tx, tx}, wy[2] = {1.f - ty, ty};
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < 2; i++) {
            int k = j * 2 + i;
            t->idx[k] = (xs[i] < 0 || ys[j] < 0) ? -1 : (long)ys[j] * w + xs[i];
            t->wt[k] = wy[j] * wx[i];
        }
}

/* A warp that is a whole-pixel translation with wrap-around (np.roll): the
 * shift (dx, dy) such that v[y][x] = u[y + dy][x + dx] (indices mod h, w). */
static int integer_roll(const struct fv_warp *wp, enum fv_pad_mode mode, int *dx, int *dy) {
    if (mode != FV_PAD_WRAP || wp->a[0] != 1.f || wp->a[1] != 0.f || wp->a[2] != 0.f ||
        wp->a[3] != 1.f || wp->b[0] != floorf(wp->b[0]) || wp->b[1] != floorf(wp->b[1]) ||
        fabsf(wp->b[0]) > 1e6f || fabsf(wp->b[1]) > 1e6f)
        return 0;
    *dx = (int)wp->b[0], *dy = (int)wp->b[1];
    return 1;
}

void fv_warp_forward(const struct fv_warp *warps, const struct fv_transform_config *cfg,
                     const float *u, float *v, int n, int h, int w, int c) {
    int pad = (int)cfg->pad;
    enum fv_pad_mode mode = cfg->pad_mode;
    float fill = cfg->fill;
    size_t hwc = (size_t)h * w * c;
#pragma omp parallel for schedule(static) if ((size_t)n * hwc >= FV_OPTIM_PAR_MIN)
    for (int b = 0; b < n; b++) {
        const float *ub = u + (size_t)b * hwc; /* (h, w, c) */
        float *vb = v + (size_t)b * hwc;
        int rx, ry;
        if (integer_roll(&warps[b], mode, &rx, &ry)) { /* the weights are 1, 0, 0, 0 */
            size_t row = (size_t)w * c, head = (size_t)resolve(rx, w, pad, mode) * c; /* v[x=0] = u[head] */
            for (int y = 0; y < h; y++) {
                const float *src = ub + (size_t)resolve(y + ry, h, pad, mode) * row;
                memcpy(vb + (size_t)y * row, src + head, (row - head) * sizeof(float));
                memcpy(vb + (size_t)y * row + row - head, src, head * sizeof(float));
            }
            continue;
        }
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                struct taps t;
                warp_taps(&warps[b], x, y, h, w, pad, mode, &t);
                float *o = vb + ((size_t)y * w + x) * c;
                for (int k = 0; k < c; k++) {
                    float s = 0.f;
                    for (int i = 0; i < 4; i++)
                        s += t.wt[i] * (t.idx[i] < 0 ? fill : ub[(size_t)t.idx[i] * c + k]);
                    o[k] = s;
                }
            }
    }
}

void fv_warp_backward(const struct fv_warp *warps, const struct fv_transform_config *cfg,
                      const float *dv, float *du, int n, int h, int w, int c) {
    int pad = (int)cfg->pad;
    enum fv_pad_mode mode = cfg->pad_mode;
    size_t hwc = (size_t)h * w * c;
#pragma omp parallel for schedule(static) if ((size_t)n * hwc >= FV_OPTIM_PAR_MIN)
    for (int b = 0; b < n; b++) {
        const float *dvb = dv + (size_t)b * hwc; /* (h, w, c) */
        float *dub = du + (size_t)b * hwc;
        int rx, ry;
        if (integer_roll(&warps[b], mode, &rx, &ry)) { /* the transpose of the row copies above */
            size_t row = (size_t)w * c, head = (size_t)resolve(rx, w, pad, mode) * c;
            for (int y = 0; y < h; y++) {
                const float *g = dvb + (size_t)y * row;
                float *d = dub + (size_t)resolve(y + ry, h, pad, mode) * row;
                for (size_t i = 0; i < row - head; i++) d[head + i] += g[i];
                for (size_t i = 0; i < head; i++) d[i] += g[row - head + i];
            }
            continue;
        }
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                struct taps t;
                warp_taps(&warps[b], x, y, h, w, pad, mode, &t);
                const float *g = dvb + ((size_t)y * w + x) * c;
                /* o[k] = sum_i wt[i] * u[idx[i]][k]  (fill taps have no gradient) */
                for (int i = 0; i < 4; i++) {
                    if (t.idx[i] < 0 || t.wt[i] == 0.f) continue;
                    float *d = dub + (size_t)t.idx[i] * c;
                    for (int k = 0; k < c; k++) d[k] += t.wt[i] * g[k];
                }
            }
    }
}
