/* UpSampling2D on (H,W,C) images by integer factors p.up.fh, p.up.fw.
 *   nearest : y[oy][ox] = x[oy/FH][ox/FW]  (Keras repeat_elements)
 *   bilinear: tf.image.resize(method='bilinear') as Keras calls it, i.e. half-pixel
 *             centres (= torch interpolate(mode='bilinear', align_corners=False)):
 *             src = (oy + 0.5)/FH - 0.5, lower = max(floor(src), 0),
 *             upper = min(ceil(src), H-1), lerp = src - floor(src).
 *   bilinear == 2: the older tf.image.resize_bilinear that standalone Keras 2.x
 *             and TF 1.x tf.keras called (align_corners=False,
 *             half_pixel_centers=False): src = oy/FH, upper = min(lower+1, H-1).
 *
 * x (n,H,W,C)  y (n,H*FH,W*FW,C)
 */
#include <math.h>

#include "layers/layers.h"

/* One output coordinate's two source rows/cols and the weight of the upper one. */
struct lerp1 {
    int lo, hi;
    float t;
};

static struct lerp1 half_pixel(int o, int factor, int in_size, int legacy) {
    struct lerp1 r;
    float src = legacy ? (float)o / (float)factor : ((float)o + 0.5f) / (float)factor - 0.5f;
    float fl = floorf(src);
    r.lo = fl < 0.f ? 0 : (int)fl;
    r.hi = legacy ? r.lo + 1 : (int)ceilf(src);
    if (r.hi > in_size - 1) r.hi = in_size - 1;
    if (r.hi < 0) r.hi = 0;
    r.t = src - fl;
    return r;
}

static int upsample_shape(const struct fv_layer *l, struct fv_io *io, struct fv_error *err) {
    const struct fv_upsample_params *p = &l->p.up;
    if (io->n_in != 1)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': expects 1 input, got %d", l->name,
                            io->n_in);
    if (io->in[0].rank != 3)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': needs (H,W,C) input, got rank %d",
                            l->name, io->in[0].rank);
    if (p->fh < 1 || p->fw < 1)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': bad upsampling size %dx%d", l->name,
                            p->fh, p->fw);
    io->out.rank = 3;
    io->out.d[0] = io->in[0].d[0] * p->fh;
    io->out.d[1] = io->in[0].d[1] * p->fw;
    io->out.d[2] = io->in[0].d[2];
    io->ws_floats = 0;
    return FV_OK;
}

static void upsample_forward(const struct fv_layer *l, const struct fv_io *io) {
    const struct fv_upsample_params *p = &l->p.up;
    int H = io->in[0].d[0], W = io->in[0].d[1], C = io->in[0].d[2];
    int OH = io->out.d[0], OW = io->out.d[1];
    const float *x = io->x[0]; /* (n,H,W,C) */
    float *y = io->y;          /* (n,OH,OW,C) */
    int rows = io->n * OH;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        int b = r / OH, oy = r % OH;
        const float *xb = x + (size_t)b * H * W * C;
        float *yr = y + (size_t)r * OW * C;
        if (!p->bilinear) {
            for (int ox = 0; ox < OW; ox++) {
                const float *xi = xb + ((size_t)(oy / p->fh) * W + ox / p->fw) * C;
                for (int c = 0; c < C; c++) yr[(size_t)ox * C + c] = xi[c];
            }
            continue;
        }
        struct lerp1 ly = half_pixel(oy, p->fh, H, p->bilinear == 2);
        for (int ox = 0; ox < OW; ox++) {
            struct lerp1 lx = half_pixel(ox, p->fw, W, p->bilinear == 2);
            const float *x00 = xb + ((size_t)ly.lo * W + lx.lo) * C;
            const float *x01 = xb + ((size_t)ly.lo * W + lx.hi) * C;
            const float *x10 = xb + ((size_t)ly.hi * W + lx.lo) * C;
            const float *x11 = xb + ((size_t)ly.hi * W + lx.hi) * C;
            for (int c = 0; c < C; c++) {
                float top = x00[c] + (x01[c] - x00[c]) * lx.t;
                float bot = x10[c] + (x11[c] - x10[c]) * lx.t;
                yr[(size_t)ox * C + c] = top + (bot - top) * ly.t;
            }
        }
    }
}

static void upsample_backward(const struct fv_layer *l, const struct fv_io *io) {
    if (!io->dx[0]) return;
    const struct fv_upsample_params *p = &l->p.up;
    int H = io->in[0].d[0], W = io->in[0].d[1], C = io->in[0].d[2];
    int OH = io->out.d[0], OW = io->out.d[1];
    const float *dy = io->dy; /* (n,OH,OW,C) */
    float *dx = io->dx[0];    /* (n,H,W,C) */
#pragma omp parallel for schedule(static)
    for (int b = 0; b < io->n; b++) { /* scatter: parallel over images only */
        float *dxb = dx + (size_t)b * H * W * C;
        for (int oy = 0; oy < OH; oy++) {
            const float *dyr = dy + ((size_t)b * OH + oy) * OW * C;
            if (!p->bilinear) {
                /* forward: y[oy][ox] = x[oy/FH][ox/FW] */
                for (int ox = 0; ox < OW; ox++) {
                    float *dxi = dxb + ((size_t)(oy / p->fh) * W + ox / p->fw) * C;
                    for (int c = 0; c < C; c++) dxi[c] += dyr[(size_t)ox * C + c];
                }
                continue;
            }
            struct lerp1 ly = half_pixel(oy, p->fh, H, p->bilinear == 2);
            for (int ox = 0; ox < OW; ox++) {
                struct lerp1 lx = half_pixel(ox, p->fw, W, p->bilinear == 2);
                /* forward: top = x00 + (x01-x00)*tx, bot = x10 + (x11-x10)*tx,
                 *          y = top + (bot-top)*ty */
                float w00 = (1.f - ly.t) * (1.f - lx.t), w01 = (1.f - ly.t) * lx.t;
                float w10 = ly.t * (1.f - lx.t), w11 = ly.t * lx.t;
                float *d00 = dxb + ((size_t)ly.lo * W + lx.lo) * C;
                float *d01 = dxb + ((size_t)ly.lo * W + lx.hi) * C;
                float *d10 = dxb + ((size_t)ly.hi * W + lx.lo) * C;
                float *d11 = dxb + ((size_t)ly.hi * W + lx.hi) * C;
                for (int c = 0; c < C; c++) {
                    float g = dyr[(size_t)ox * C + c];
                    d00[c] += g * w00;
                    d01[c] += g * w01;
                    d10[c] += g * w10;
                    d11[c] += g * w11;
                }
            }
        }
    }
}

const struct fv_layer_ops fv_upsample_ops = {
    .kind = "upsample2d",
    .need = FV_NEED_SPATIAL,
    .shape = upsample_shape,
    .forward = upsample_forward,
    .backward = upsample_backward,
    .flops = NULL,
};
