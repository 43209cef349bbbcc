/* Resizing on (H,W,C) images to a fixed p.resize.oh x p.resize.ow, as Keras 3
 * computes it at inference (ops.image.resize, antialias off):
 *   bilinear: half-pixel centres, src = (o + 0.5) * in/out - 0.5,
 *             lower = max(floor(src), 0), upper = min(ceil(src), in-1);
 *   nearest : src = min(floor((o + 0.5) * in/out), in-1).
 * With p.resize.crop (crop_to_aspect_ratio) the input is first cut to the
 * centred box of the output's aspect ratio, as Keras does.
 *
 * x (n,H,W,C)  y (n,OH,OW,C)
 */
#include <math.h>

#include "layers/layers.h"

/* One output coordinate's two source rows/cols and the weight of the upper one. */
struct tap {
    int lo, hi;
    float t;
};

static struct tap tap_at(int o, int out, int in, int bilinear) {
    struct tap r;
    double scale = (double)in / (double)out;
    if (!bilinear) {
        int s = (int)floor(((double)o + 0.5) * scale);
        r.lo = r.hi = s < in - 1 ? s : in - 1;
        r.t = 0.f;
        return r;
    }
    float src = (float)(((double)o + 0.5) * scale - 0.5);
    float fl = floorf(src);
    r.lo = fl < 0.f ? 0 : (int)fl;
    r.hi = (int)ceilf(src);
    if (r.hi > in - 1) r.hi = in - 1;
    if (r.hi < 0) r.hi = 0;
    r.t = src - fl;
    return r;
}

/* The box of the input that is resized: all of it, or the centred crop. */
static void box(const struct fv_resize_params *p, int h, int w, int *y0, int *x0, int *bh, int *bw) {
    *y0 = *x0 = 0, *bh = h, *bw = w;
    if (!p->crop) return;
    int ch = (int)((double)w * p->oh / p->ow), cw = (int)((double)h * p->ow / p->oh);
    *bh = ch < h ? ch : h;
    *bw = cw < w ? cw : w;
    *y0 = (int)((double)(h - *bh) / 2);
    *x0 = (int)((double)(w - *bw) / 2);
}

static int resize_shape(const struct fv_layer *l, struct fv_io *io, struct fv_error *err) {
    const struct fv_resize_params *p = &l->p.resize;
    if (io->n_in != 1 || io->in[0].rank != 3)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': needs one (H,W,C) input", l->name);
    if (p->oh < 1 || p->ow < 1 || p->oh > (1 << 16) || p->ow > (1 << 16))
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': bad target size %dx%d", l->name, p->oh, p->ow);
    int y0, x0, bh, bw;
    box(p, io->in[0].d[0], io->in[0].d[1], &y0, &x0, &bh, &bw);
    if (bh < 1 || bw < 1)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': input %dx%d is too small", l->name,
                            io->in[0].d[0], io->in[0].d[1]);
    io->out.rank = 3;
    io->out.d[0] = p->oh;
    io->out.d[1] = p->ow;
    io->out.d[2] = io->in[0].d[2];
    io->ws_floats = 0;
    return FV_OK;
}

static void resize_forward(const struct fv_layer *l, const struct fv_io *io) {
    const struct fv_resize_params *p = &l->p.resize;
    int H = io->in[0].d[0], W = io->in[0].d[1], C = io->in[0].d[2], OH = p->oh, OW = p->ow;
    int y0, x0, bh, bw;
    box(p, H, W, &y0, &x0, &bh, &bw);
    int rows = io->n * OH;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        int b = r / OH, oy = r % OH;
        const float *xb = io->x[0] + (size_t)b * H * W * C;
        float *yr = io->y + (size_t)r * OW * C;
        struct tap ty = tap_at(oy, OH, bh, p->bilinear);
        for (int ox = 0; ox < OW; ox++) {
            struct tap tx = tap_at(ox, OW, bw, p->bilinear);
            const float *x00 = xb + ((size_t)(y0 + ty.lo) * W + x0 + tx.lo) * C;
            const float *x01 = xb + ((size_t)(y0 + ty.lo) * W + x0 + tx.hi) * C;
            const float *x10 = xb + ((size_t)(y0 + ty.hi) * W + x0 + tx.lo) * C;
            const float *x11 = xb + ((size_t)(y0 + ty.hi) * W + x0 + tx.hi) * C;
            for (int c = 0; c < C; c++) {
                float top = x00[c] + (x01[c] - x00[c]) * tx.t;
                float bot = x10[c] + (x11[c] - x10[c]) * tx.t;
                yr[(size_t)ox * C + c] = top + (bot - top) * ty.t;
            }
        }
    }
}

static void resize_backward(const struct fv_layer *l, const struct fv_io *io) {
    if (!io->dx[0]) return;
    const struct fv_resize_params *p = &l->p.resize;
    int H = io->in[0].d[0], W = io->in[0].d[1], C = io->in[0].d[2], OH = p->oh, OW = p->ow;
    int y0, x0, bh, bw;
    box(p, H, W, &y0, &x0, &bh, &bw);
#pragma omp parallel for schedule(static)
    for (int b = 0; b < io->n; b++) { /* scatter: parallel over images only */
        float *dxb = io->dx[0] + (size_t)b * H * W * C;
        for (int oy = 0; oy < OH; oy++) {
            const float *dyr = io->dy + ((size_t)b * OH + oy) * OW * C;
            struct tap ty = tap_at(oy, OH, bh, p->bilinear);
            for (int ox = 0; ox < OW; ox++) {
                struct tap tx = tap_at(ox, OW, bw, p->bilinear);
                /* forward: top = x00 + (x01-x00)*tx, bot = x10 + (x11-x10)*tx,
                 *          y = top + (bot-top)*ty */
                float w00 = (1.f - ty.t) * (1.f - tx.t), w01 = (1.f - ty.t) * tx.t;
                float w10 = ty.t * (1.f - tx.t), w11 = ty.t * tx.t;
                float *d00 = dxb + ((size_t)(y0 + ty.lo) * W + x0 + tx.lo) * C;
                float *d01 = dxb + ((size_t)(y0 + ty.lo) * W + x0 + tx.hi) * C;
                float *d10 = dxb + ((size_t)(y0 + ty.hi) * W + x0 + tx.lo) * C;
                float *d11 = dxb + ((size_t)(y0 + ty.hi) * W + x0 + tx.hi) * C;
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

const struct fv_layer_ops fv_resize_ops = {
    .kind = "resize",
    .need = FV_NEED_SPATIAL,
    .shape = resize_shape,
    .forward = resize_forward,
    .backward = resize_backward,
    .backward_skips_x = 1,
};
