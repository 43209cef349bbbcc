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
#include "kernels/resample.h"
#include "layers/layers.h"

static enum fv_resample_filter filter_of(const struct fv_upsample_params *p) {
    return p->bilinear == 2 ? FV_RS_LINEAR_ASYM : FV_RS_LINEAR_TF;
}

/* The bilinear tables, built in the layer's scratch (a few floats per output row and column). */
static void tables(const struct fv_layer *l, const struct fv_io *io, struct fv_resample *r) {
    fv_resample_init_at(r, io->in[0].d[0], io->in[0].d[1], io->out.d[0], io->out.d[1],
                        filter_of(&l->p.up), io->ws);
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
    io->ws_floats = p->bilinear ? fv_resample_table_floats(io->in[0].d[0], io->in[0].d[1], io->out.d[0],
                                                           io->out.d[1], filter_of(p))
                                : 0;
    return FV_OK;
}

static void upsample_forward(const struct fv_layer *l, const struct fv_io *io) {
    const struct fv_upsample_params *p = &l->p.up;
    int H = io->in[0].d[0], W = io->in[0].d[1], C = io->in[0].d[2];
    int OH = io->out.d[0], OW = io->out.d[1];
    const float *x = io->x[0]; /* (n,H,W,C) */
    float *y = io->y;          /* (n,OH,OW,C) */
    if (p->bilinear) {
        struct fv_resample r;
        tables(l, io, &r);
        fv_resample_forward(&r, x, y, C, io->n, NULL);
        return;
    }
    int rows = io->n * OH;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        int b = r / OH, oy = r % OH;
        const float *xb = x + (size_t)b * H * W * C;
        float *yr = y + (size_t)r * OW * C;
        for (int ox = 0; ox < OW; ox++) {
            const float *xi = xb + ((size_t)(oy / p->fh) * W + ox / p->fw) * C;
            for (int c = 0; c < C; c++) yr[(size_t)ox * C + c] = xi[c];
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
    if (p->bilinear) {
        struct fv_resample r;
        tables(l, io, &r);
        fv_resample_backward(&r, dy, dx, C, io->n);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int b = 0; b < io->n; b++) { /* scatter: parallel over images only */
        float *dxb = dx + (size_t)b * H * W * C;
        for (int oy = 0; oy < OH; oy++) {
            const float *dyr = dy + ((size_t)b * OH + oy) * OW * C;
            /* forward: y[oy][ox] = x[oy/FH][ox/FW] */
            for (int ox = 0; ox < OW; ox++) {
                float *dxi = dxb + ((size_t)(oy / p->fh) * W + ox / p->fw) * C;
                for (int c = 0; c < C; c++) dxi[c] += dyr[(size_t)ox * C + c];
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
    .backward_skips_x = 1,
};
