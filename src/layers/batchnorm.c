/* BatchNormalization at inference: y = x*scale[k] + shift[k], k the index along
 * physical axis p.bn.axis of the per-image tensor. The loader folds gamma, beta,
 * moving mean/variance and epsilon into w[0] = scale (D) and w[1] = shift (D):
 *   scale = gamma / sqrt(var + eps),  shift = beta - mean*scale.
 * Any rank 1..4: the image is seen as (outer, D, inner) around the axis.
 *
 * x (n,outer,D,inner)  y (n,outer,D,inner)
 */
#include <string.h>

#include "layers/layers.h"

/* (outer, D, inner) around the normalised axis, with the batch folded into outer. */
static void bn_dims(const struct fv_layer *l, const struct fv_io *io, size_t *outer, int *D,
                    size_t *inner) {
    const struct fv_shape *in = &io->in[0];
    int axis = l->p.bn.axis;
    *outer = (size_t)io->n;
    *inner = 1;
    for (int i = 0; i < axis; i++) *outer *= (size_t)in->d[i];
    for (int i = axis + 1; i < in->rank; i++) *inner *= (size_t)in->d[i];
    *D = in->d[axis];
}

static int bn_shape(const struct fv_layer *l, struct fv_io *io, struct fv_error *err) {
    const struct fv_shape *in = &io->in[0];
    int axis = l->p.bn.axis;
    if (io->n_in != 1)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': expects 1 input, got %d", l->name,
                            io->n_in);
    if (in->rank < 1 || in->rank > FV_MAX_RANK)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': bad input rank %d", l->name,
                            in->rank);
    if (axis < 0 || axis >= in->rank)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': axis %d out of range for rank %d",
                            l->name, axis, in->rank);
    if (l->n_w < 2 || !l->w[0] || !l->w[1])
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': missing scale/shift weights",
                            l->name);
    if (l->w_len[0] != (size_t)in->d[axis] || l->w_len[1] != (size_t)in->d[axis])
        return fv_error_set(err, FV_ERR_SHAPE,
                            "layer '%s': %zu scale / %zu shift values for axis %d of size %d",
                            l->name, l->w_len[0], l->w_len[1], axis, in->d[axis]);
    io->out = *in;
    io->ws_floats = 0;
    return FV_OK;
}

static double bn_flops(const struct fv_layer *l, const struct fv_io *io) {
    (void)l;
    return 2.0 * (double)fv_shape_count(&io->in[0]);
}

static void bn_forward(const struct fv_layer *l, const struct fv_io *io) {
    size_t outer, inner;
    int D;
    bn_dims(l, io, &outer, &D, &inner);
    const float *scale = l->w[0]; /* (D) */
    const float *shift = l->w[1]; /* (D) */
    const float *x = io->x[0];    /* (outer,D,inner) */
    float *y = io->y;             /* (outer,D,inner) */
    size_t rows = outer * (size_t)D;
    if (inner == 1) { /* channels last: each position's D values, vectorized along D */
#pragma omp parallel for schedule(static) if (rows > 65536)
        for (size_t o = 0; o < outer; o++) {
            const float *xr = x + o * (size_t)D;
            float *yr = y + o * (size_t)D;
            for (int k = 0; k < D; k++) yr[k] = xr[k] * scale[k] + shift[k];
        }
        return;
    }
#pragma omp parallel for schedule(static) if (rows * inner > 65536)
    for (size_t r = 0; r < rows; r++) {
        int k = (int)(r % (size_t)D);
        const float *xr = x + r * inner;
        float *yr = y + r * inner;
        for (size_t i = 0; i < inner; i++) yr[i] = xr[i] * scale[k] + shift[k];
    }
}

static void bn_backward(const struct fv_layer *l, const struct fv_io *io) {
    if (!io->dx[0]) return;
    size_t outer, inner;
    int D;
    bn_dims(l, io, &outer, &D, &inner);
    const float *scale = l->w[0]; /* (D) */
    const float *dy = io->dy;     /* (outer,D,inner) */
    float *dx = io->dx[0];        /* (outer,D,inner) */
    size_t rows = outer * (size_t)D;
    if (inner == 1) { /* channels last, as in the forward pass */
#pragma omp parallel for schedule(static) if (rows > 65536)
        for (size_t o = 0; o < outer; o++) {
            const float *dyr = dy + o * (size_t)D;
            float *dxr = dx + o * (size_t)D;
            if (io->dx_assign[0]) /* 0 + : the same bits as zeroing, then adding */
                for (int k = 0; k < D; k++) dxr[k] = 0.0f + dyr[k] * scale[k];
            else
                for (int k = 0; k < D; k++) dxr[k] += dyr[k] * scale[k];
        }
        return;
    }
    if (io->dx_assign[0]) memset(dx, 0, rows * inner * sizeof(float));
#pragma omp parallel for schedule(static) if (rows * inner > 65536)
    for (size_t r = 0; r < rows; r++) {
        int k = (int)(r % (size_t)D);
        /* forward: yr[i] = xr[i] * scale[k] + shift[k] */
        for (size_t i = 0; i < inner; i++) dx[r * inner + i] += dy[r * inner + i] * scale[k];
    }
}

/* per channel (any axis but the rows): position by position */
static int batchnorm_rows(const struct fv_layer *l, const struct fv_io *io, struct fv_rows *r) {
    return l->p.bn.axis != 0 && fv_rows_elementwise(l, io, r);
}

static int *bn_axis(struct fv_layer *l) {
    return &l->p.bn.axis;
}

const struct fv_layer_ops fv_batchnorm_ops = {
    .kind = "batchnorm",
    .need = FV_NEED_ANY,
    .flags = FV_OPF_SCALE_SHIFT,
    .axis = bn_axis,
    .assigns_dx = 1, /* dx_assign: the first write overwrites (no zeroing pass) */
    .shape = bn_shape,
    .forward = bn_forward,
    .backward = bn_backward,
    .flops = bn_flops,
    .rows = batchnorm_rows,
    .backward_skips_x = 1,
};
