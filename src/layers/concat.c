/* Concatenate along physical axis p.merge.axis (0-based in the per-image dims).
 * Each image is seen as (outer, D_i, inner) around the axis; the output holds,
 * for every outer index, the D_0*inner block of x_0, then x_1's, and so on.
 *
 * x_i (n,outer,D_i,inner)  y (n,outer,sum D_i,inner)
 */
#include <string.h>

#include "layers/layers.h"

static int concat_shape(const struct fv_layer *l, struct fv_io *io, struct fv_error *err) {
    int axis = l->p.merge.axis;
    const struct fv_shape *in0 = &io->in[0];
    if (io->n_in < 1 || io->n_in > FV_MAX_IN)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': bad input count %d", l->name,
                            io->n_in);
    if (in0->rank < 1 || in0->rank > FV_MAX_RANK)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': bad input rank %d", l->name,
                            in0->rank);
    if (axis < 0 || axis >= in0->rank)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': axis %d out of range for rank %d",
                            l->name, axis, in0->rank);
    io->out = *in0;
    for (int i = 1; i < io->n_in; i++) {
        const struct fv_shape *s = &io->in[i];
        if (s->rank != in0->rank)
            return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': input %d has rank %d, input 0 %d",
                                l->name, i, s->rank, in0->rank);
        for (int k = 0; k < s->rank; k++)
            if (k != axis && s->d[k] != in0->d[k])
                return fv_error_set(err, FV_ERR_SHAPE,
                                    "layer '%s': input %d has size %d on axis %d, input 0 has %d "
                                    "(only axis %d may differ)",
                                    l->name, i, s->d[k], k, in0->d[k], axis);
        io->out.d[axis] += s->d[axis];
    }
    io->ws_floats = 0;
    return FV_OK;
}

/* outer = n * prod(dims before axis), inner = prod(dims after axis). */
static void concat_dims(const struct fv_layer *l, const struct fv_io *io, size_t *outer,
                        size_t *inner) {
    int axis = l->p.merge.axis;
    *outer = (size_t)io->n;
    *inner = 1;
    for (int k = 0; k < axis; k++) *outer *= (size_t)io->out.d[k];
    for (int k = axis + 1; k < io->out.rank; k++) *inner *= (size_t)io->out.d[k];
}

static void concat_forward(const struct fv_layer *l, const struct fv_io *io) {
    size_t outer, inner;
    concat_dims(l, io, &outer, &inner);
    int axis = l->p.merge.axis;
    size_t row = (size_t)io->out.d[axis] * inner; /* floats per outer index in y */
    size_t off = 0;                               /* where x_i's block starts in a row */
    for (int i = 0; i < io->n_in; i++) {
        size_t blk = (size_t)io->in[i].d[axis] * inner;
        for (size_t o = 0; o < outer; o++)
            memcpy(io->y + o * row + off, io->x[i] + o * blk, blk * sizeof(float));
        off += blk;
    }
}

static void concat_backward(const struct fv_layer *l, const struct fv_io *io) {
    size_t outer, inner;
    concat_dims(l, io, &outer, &inner);
    int axis = l->p.merge.axis;
    size_t row = (size_t)io->out.d[axis] * inner;
    size_t off = 0;
    for (int i = 0; i < io->n_in; i++) {
        size_t blk = (size_t)io->in[i].d[axis] * inner;
        if (io->dx[i])
            for (size_t o = 0; o < outer; o++) {
                /* forward: y[o*row + off + k] = x_i[o*blk + k] */
                const float *dyr = io->dy + o * row + off;
                float *dxr = io->dx[i] + o * blk;
                for (size_t k = 0; k < blk; k++) dxr[k] += dyr[k];
            }
        off += blk;
    }
}

/* joined along channels or columns: row r of the output is row r of every input */
static int concat_rows(const struct fv_layer *l, const struct fv_io *io, struct fv_rows *r) {
    return l->p.merge.axis != 0 && fv_rows_elementwise(l, io, r);
}

static int *concat_axis(struct fv_layer *l) {
    return &l->p.merge.axis;
}

const struct fv_layer_ops fv_concat_ops = {
    .kind = "concat",
    .need = FV_NEED_ANY,
    .axis = concat_axis,
    .shape = concat_shape,
    .forward = concat_forward,
    .backward = concat_backward,
    .flops = NULL,
    .rows = concat_rows,
    .backward_skips_x = 1,
};
