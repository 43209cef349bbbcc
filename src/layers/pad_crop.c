/* ZeroPadding2D and Cropping2D on (H,W,C) images, p.pad = top/bottom/left/right.
 * Both copy a (rows, cols, C) block between a smaller and a bigger image:
 *   pad : y[top+i][left+j] = x[i][j], zeros elsewhere   x (n,H,W,C) y (n,H+t+b,W+l+r,C)
 *   crop: y[i][j] = x[top+i][left+j]                     x (n,H,W,C) y (n,H-t-b,W-l-r,C)
 */
#include <string.h>

#include "layers/layers.h"

static int check_spatial(const struct fv_layer *l, const struct fv_io *io, struct fv_error *err) {
    const struct fv_pad_params *p = &l->p.pad;
    if (io->n_in != 1)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': expects 1 input, got %d", l->name,
                            io->n_in);
    if (io->in[0].rank != 3)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': needs (H,W,C) input, got rank %d",
                            l->name, io->in[0].rank);
    if (p->top < 0 || p->bottom < 0 || p->left < 0 || p->right < 0)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': negative padding/cropping", l->name);
    return FV_OK;
}

static int zeropad_shape(const struct fv_layer *l, struct fv_io *io, struct fv_error *err) {
    const struct fv_pad_params *p = &l->p.pad;
    int rc = check_spatial(l, io, err);
    if (rc) return rc;
    io->out.rank = 3;
    io->out.d[0] = io->in[0].d[0] + p->top + p->bottom;
    io->out.d[1] = io->in[0].d[1] + p->left + p->right;
    io->out.d[2] = io->in[0].d[2];
    io->ws_floats = 0;
    return FV_OK;
}

static int crop_shape(const struct fv_layer *l, struct fv_io *io, struct fv_error *err) {
    const struct fv_pad_params *p = &l->p.pad;
    int rc = check_spatial(l, io, err);
    if (rc) return rc;
    int oh = io->in[0].d[0] - p->top - p->bottom;
    int ow = io->in[0].d[1] - p->left - p->right;
    if (oh < 1 || ow < 1)
        return fv_error_set(err, FV_ERR_SHAPE,
                            "layer '%s': cropping %d+%d x %d+%d leaves nothing of %dx%d", l->name,
                            p->top, p->bottom, p->left, p->right, io->in[0].d[0],
                            io->in[0].d[1]);
    io->out.rank = 3;
    io->out.d[0] = oh;
    io->out.d[1] = ow;
    io->out.d[2] = io->in[0].d[2];
    io->ws_floats = 0;
    return FV_OK;
}

/* ---- ZeroPadding2D ---- */

static void zeropad_forward(const struct fv_layer *l, const struct fv_io *io) {
    const struct fv_pad_params *p = &l->p.pad;
    int H = io->in[0].d[0], W = io->in[0].d[1], C = io->in[0].d[2];
    int OH = io->out.d[0], OW = io->out.d[1];
    const float *x = io->x[0]; /* (n,H,W,C) */
    float *y = io->y;          /* (n,OH,OW,C) */
    memset(y, 0, (size_t)io->n * OH * OW * C * sizeof(float));
    for (int b = 0; b < io->n; b++)
        for (int i = 0; i < H; i++)
            memcpy(y + (((size_t)b * OH + p->top + i) * OW + p->left) * C,
                   x + ((size_t)b * H + i) * W * C, (size_t)W * C * sizeof(float));
}

static void zeropad_backward(const struct fv_layer *l, const struct fv_io *io) {
    if (!io->dx[0]) return;
    const struct fv_pad_params *p = &l->p.pad;
    int H = io->in[0].d[0], W = io->in[0].d[1], C = io->in[0].d[2];
    int OH = io->out.d[0], OW = io->out.d[1];
    const float *dy = io->dy; /* (n,OH,OW,C) */
    float *dx = io->dx[0];    /* (n,H,W,C) */
    for (int b = 0; b < io->n; b++)
        for (int i = 0; i < H; i++) {
            /* forward: y[top+i][left+j] = x[i][j] */
            const float *dyr = dy + (((size_t)b * OH + p->top + i) * OW + p->left) * C;
            float *dxr = dx + ((size_t)b * H + i) * W * C;
            for (size_t k = 0; k < (size_t)W * C; k++) dxr[k] += dyr[k];
        }
}

/* ---- Cropping2D ---- */

static void crop_forward(const struct fv_layer *l, const struct fv_io *io) {
    const struct fv_pad_params *p = &l->p.pad;
    int H = io->in[0].d[0], W = io->in[0].d[1], C = io->in[0].d[2];
    int OH = io->out.d[0], OW = io->out.d[1];
    const float *x = io->x[0]; /* (n,H,W,C) */
    float *y = io->y;          /* (n,OH,OW,C) */
    for (int b = 0; b < io->n; b++)
        for (int i = 0; i < OH; i++)
            memcpy(y + ((size_t)b * OH + i) * OW * C,
                   x + (((size_t)b * H + p->top + i) * W + p->left) * C,
                   (size_t)OW * C * sizeof(float));
}

static void crop_backward(const struct fv_layer *l, const struct fv_io *io) {
    if (!io->dx[0]) return;
    const struct fv_pad_params *p = &l->p.pad;
    int H = io->in[0].d[0], W = io->in[0].d[1], C = io->in[0].d[2];
    int OH = io->out.d[0], OW = io->out.d[1];
    const float *dy = io->dy; /* (n,OH,OW,C) */
    float *dx = io->dx[0];    /* (n,H,W,C) */
    for (int b = 0; b < io->n; b++)
        for (int i = 0; i < OH; i++) {
            /* forward: y[i][j] = x[top+i][left+j] */
            const float *dyr = dy + ((size_t)b * OH + i) * OW * C;
            float *dxr = dx + (((size_t)b * H + p->top + i) * W + p->left) * C;
            for (size_t k = 0; k < (size_t)OW * C; k++) dxr[k] += dyr[k];
        }
}

/* pad: output row r is input row r - top; crop: input row r + top */
static int zeropad_rows(const struct fv_layer *l, const struct fv_io *io, struct fv_rows *r) {
    (void)io;
    r->stride = 1, r->pad = l->p.pad.top, r->extent = 1;
    return 1;
}

static int crop_rows(const struct fv_layer *l, const struct fv_io *io, struct fv_rows *r) {
    (void)io;
    r->stride = 1, r->pad = -l->p.pad.top, r->extent = 1;
    return 1;
}

const struct fv_layer_ops fv_zeropad_ops = {
    .kind = "zeropad2d",
    .need = FV_NEED_SPATIAL,
    .shape = zeropad_shape,
    .forward = zeropad_forward,
    .backward = zeropad_backward,
    .flops = NULL,
    .rows = zeropad_rows,
    .backward_skips_x = 1,
};

const struct fv_layer_ops fv_crop_ops = {
    .kind = "crop2d",
    .need = FV_NEED_SPATIAL,
    .shape = crop_shape,
    .forward = crop_forward,
    .backward = crop_backward,
    .flops = NULL,
    .rows = crop_rows,
    .backward_skips_x = 1,
};
