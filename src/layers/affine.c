/* Affine map y = x*scale + offset with scalar p.affine (Rescaling, and Lambda
 * layers the user declares as such).
 *
 * x (n,count)  y (n,count)
 */
#include "layers/layers.h"

static int affine_shape(const struct fv_layer *l, struct fv_io *io, struct fv_error *err) {
    if (io->n_in != 1)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': expects 1 input, got %d", l->name,
                            io->n_in);
    io->out = io->in[0];
    io->ws_floats = 0;
    return FV_OK;
}

static void affine_forward(const struct fv_layer *l, const struct fv_io *io) {
    float scale = l->p.affine.scale, offset = l->p.affine.offset;
    size_t count = (size_t)io->n * fv_shape_count(&io->in[0]);
    const float *x = io->x[0]; /* (count) */
    float *y = io->y;          /* (count) */
    for (size_t k = 0; k < count; k++) y[k] = x[k] * scale + offset;
}

static void affine_backward(const struct fv_layer *l, const struct fv_io *io) {
    if (!io->dx[0]) return;
    float scale = l->p.affine.scale;
    size_t count = (size_t)io->n * fv_shape_count(&io->in[0]);
    /* forward: y[k] = x[k] * scale + offset */
    for (size_t k = 0; k < count; k++) io->dx[0][k] += io->dy[k] * scale;
}

static double affine_flops(const struct fv_layer *l, const struct fv_io *io) {
    (void)l;
    return 2.0 * (double)fv_shape_count(&io->in[0]);
}

const struct fv_layer_ops fv_affine_ops = {
    .kind = "affine",
    .need = FV_NEED_ANY,
    .shape = affine_shape,
    .forward = affine_forward,
    .backward = affine_backward,
    .flops = affine_flops,
    .rows = fv_rows_elementwise,
    .backward_skips_x = 1,
};
