/* Layers that move data without arithmetic:
 *   reshape : new dims p.reshape.d (one may be -1 = inferred), data unchanged
 *             (Reshape, Flatten; the input is in Keras order, FV_NEED_KERAS)
 *   permute : physical transpose, out dim i = in dim p.permute.perm[i]
 *             (inserted by the graph builder to change layouts; any order in)
 *   identity: y = x (Dropout & co, standalone activations: the fused activation
 *             is applied by the runtime after forward)
 *
 * reshape/identity: x (n,count)  y (n,count)
 * permute:          x (n,in dims)  y (n,in dims permuted)
 */
#include <string.h>

#include "layers/layers.h"

/* ---- reshape ---- */

static int reshape_shape(const struct fv_layer *l, struct fv_io *io, struct fv_error *err) {
    const struct fv_reshape_params *p = &l->p.reshape;
    if (io->n_in != 1)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': expects 1 input, got %d", l->name,
                            io->n_in);
    if (p->rank < 1 || p->rank > FV_MAX_RANK)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': target rank %d not in 1..%d",
                            l->name, p->rank, FV_MAX_RANK);
    size_t count = fv_shape_count(&io->in[0]), known = 1;
    int infer = -1;
    for (int i = 0; i < p->rank; i++) {
        if (p->d[i] == -1 && infer < 0) {
            infer = i;
        } else if (p->d[i] < 1) {
            return fv_error_set(err, FV_ERR_SHAPE,
                                "layer '%s': bad target dim %d = %d (one -1 allowed, others > 0)",
                                l->name, i, p->d[i]);
        } else {
            known *= (size_t)p->d[i];
        }
    }
    io->out.rank = p->rank;
    for (int i = 0; i < p->rank; i++) io->out.d[i] = p->d[i];
    if (infer >= 0) {
        if (count % known != 0 || count / known < 1)
            return fv_error_set(err, FV_ERR_SHAPE,
                                "layer '%s': cannot reshape %zu values with %zu per -1 step",
                                l->name, count, known);
        io->out.d[infer] = (int)(count / known);
    } else if (known != count) {
        return fv_error_set(err, FV_ERR_SHAPE,
                            "layer '%s': cannot reshape %zu values into a shape of %zu", l->name,
                            count, known);
    }
    io->ws_floats = 0;
    return FV_OK;
}

static void copy_forward(const struct fv_layer *l, const struct fv_io *io) {
    (void)l;
    size_t count = (size_t)io->n * fv_shape_count(&io->in[0]);
    if (io->y != io->x[0]) memcpy(io->y, io->x[0], count * sizeof(float));
}

static void copy_backward(const struct fv_layer *l, const struct fv_io *io) {
    (void)l;
    if (!io->dx[0]) return;
    size_t count = (size_t)io->n * fv_shape_count(&io->in[0]);
    /* forward: y[k] = x[k] */
    if (io->dx_assign[0]) /* 0 + : the same bits as zeroing, then adding */
        for (size_t k = 0; k < count; k++) io->dx[0][k] = 0.0f + io->dy[k];
    else
        for (size_t k = 0; k < count; k++) io->dx[0][k] += io->dy[k];
}

/* ---- identity ---- */

static int identity_shape(const struct fv_layer *l, struct fv_io *io, struct fv_error *err) {
    if (io->n_in != 1)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': expects 1 input, got %d", l->name,
                            io->n_in);
    io->out = io->in[0];
    io->ws_floats = 0;
    return FV_OK;
}

/* ---- permute ---- */

static int permute_shape(const struct fv_layer *l, struct fv_io *io, struct fv_error *err) {
    const struct fv_permute_params *p = &l->p.permute;
    const struct fv_shape *in = &io->in[0];
    if (io->n_in != 1)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': expects 1 input, got %d", l->name,
                            io->n_in);
    if (p->rank != in->rank || p->rank < 1 || p->rank > FV_MAX_RANK)
        return fv_error_set(err, FV_ERR_SHAPE,
                            "layer '%s': permutation of rank %d for an input of rank %d", l->name,
                            p->rank, in->rank);
    int seen[FV_MAX_RANK] = {0};
    for (int i = 0; i < p->rank; i++) {
        if (p->perm[i] < 0 || p->perm[i] >= p->rank || seen[p->perm[i]])
            return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': not a permutation (entry %d = %d)",
                                l->name, i, p->perm[i]);
        seen[p->perm[i]] = 1;
    }
    io->out.rank = in->rank;
    for (int i = 0; i < in->rank; i++) io->out.d[i] = in->d[p->perm[i]];
    io->ws_floats = 0;
    return FV_OK;
}

/* Output dims padded to rank 4 (leading 1s) and, for each, the input stride
 * that walking that output dim takes. */
static void permute_walk(const struct fv_layer *l, const struct fv_io *io, int od[4],
                         size_t st[4]) {
    const struct fv_permute_params *p = &l->p.permute;
    const struct fv_shape *in = &io->in[0];
    size_t in_st[FV_MAX_RANK];
    size_t s = 1;
    for (int k = in->rank - 1; k >= 0; k--) {
        in_st[k] = s;
        s *= (size_t)in->d[k];
    }
    int pad = 4 - in->rank;
    for (int i = 0; i < 4; i++) {
        od[i] = i < pad ? 1 : in->d[p->perm[i - pad]];
        st[i] = i < pad ? 0 : in_st[p->perm[i - pad]];
    }
}

static void permute_forward(const struct fv_layer *l, const struct fv_io *io) {
    int od[4];
    size_t st[4];
    permute_walk(l, io, od, st);
    size_t count = fv_shape_count(&io->in[0]);
    for (int b = 0; b < io->n; b++) {
        const float *x = io->x[0] + (size_t)b * count; /* (in dims) */
        float *y = io->y + (size_t)b * count;          /* (out dims) */
        size_t k = 0;
        for (int i0 = 0; i0 < od[0]; i0++)
            for (int i1 = 0; i1 < od[1]; i1++)
                for (int i2 = 0; i2 < od[2]; i2++)
                    for (int i3 = 0; i3 < od[3]; i3++)
                        y[k++] = x[i0 * st[0] + i1 * st[1] + i2 * st[2] + i3 * st[3]];
    }
}

static void permute_backward(const struct fv_layer *l, const struct fv_io *io) {
    if (!io->dx[0]) return;
    int od[4];
    size_t st[4];
    permute_walk(l, io, od, st);
    size_t count = fv_shape_count(&io->in[0]);
    for (int b = 0; b < io->n; b++) {
        const float *dy = io->dy + (size_t)b * count; /* (out dims) */
        float *dx = io->dx[0] + (size_t)b * count;    /* (in dims) */
        size_t k = 0;
        for (int i0 = 0; i0 < od[0]; i0++)
            for (int i1 = 0; i1 < od[1]; i1++)
                for (int i2 = 0; i2 < od[2]; i2++)
                    for (int i3 = 0; i3 < od[3]; i3++)
                        /* forward: y[k] = x[i0*st0 + i1*st1 + i2*st2 + i3*st3] */
                        dx[i0 * st[0] + i1 * st[1] + i2 * st[2] + i3 * st[3]] += dy[k++];
    }
}

static int reshape_out_rank(const struct fv_layer *l, int in_rank) {
    (void)in_rank;
    return l->p.reshape.rank;
}

const struct fv_layer_ops fv_reshape_ops = {
    .kind = "reshape",
    .need = FV_NEED_KERAS,
    .out_rank = reshape_out_rank,
    .shape = reshape_shape,
    .forward = copy_forward,
    .backward = copy_backward,
    .assigns_dx = 1,
    .flops = NULL,
    .backward_skips_x = 1,
};

const struct fv_layer_ops fv_permute_ops = {
    .kind = "permute",
    .need = FV_NEED_ANY,
    .shape = permute_shape,
    .forward = permute_forward,
    .backward = permute_backward,
    .flops = NULL,
    .backward_skips_x = 1,
};

const struct fv_layer_ops fv_identity_ops = {
    .kind = "identity",
    .need = FV_NEED_ANY,
    .flags = FV_OPF_IDENTITY,
    .shape = identity_shape,
    .forward = copy_forward,
    .backward = copy_backward,
    .assigns_dx = 1,
    .flops = NULL,
    .rows = fv_rows_elementwise,
    .backward_skips_x = 1,
};
