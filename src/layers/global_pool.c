/* GlobalAveragePooling2D and GlobalMaxPooling2D: reduce (H,W,C) over H and W.
 * The input is seen as (S, C) with S = H*W (a rank-2 (steps, C) input works
 * the same way, as the 1D variants would). keepdims gives (1,1,C), else (C).
 * Max backward routes dy to the first maximum in scan order.
 *
 * x (n,S,C)  y (n,C)
 */
#include <math.h>

#include "layers/layers.h"

/* Pixels S and channels C of the input. */
static void gpool_dims(const struct fv_io *io, size_t *S, int *C) {
    const struct fv_shape *in = &io->in[0];
    *C = in->d[in->rank - 1];
    *S = fv_shape_count(in) / (size_t)*C;
}

static int gpool_shape(const struct fv_layer *l, struct fv_io *io, struct fv_error *err) {
    const struct fv_shape *in = &io->in[0];
    if (io->n_in != 1)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': expects 1 input, got %d", l->name,
                            io->n_in);
    if (in->rank < 2 || in->rank > 3)
        return fv_error_set(err, FV_ERR_SHAPE,
                            "layer '%s': global pooling needs (H,W,C) input, got rank %d",
                            l->name, in->rank);
    for (int i = 0; i < in->rank; i++)
        if (in->d[i] < 1)
            return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': empty input (dim %d is %d)",
                                l->name, i, in->d[i]);
    if (l->p.pool.keepdims) {
        io->out.rank = in->rank;
        for (int i = 0; i < in->rank - 1; i++) io->out.d[i] = 1;
        io->out.d[in->rank - 1] = in->d[in->rank - 1];
    } else {
        io->out.rank = 1;
        io->out.d[0] = in->d[in->rank - 1];
    }
    io->ws_floats = 0;
    return FV_OK;
}

static double gpool_flops(const struct fv_layer *l, const struct fv_io *io) {
    (void)l;
    return (double)fv_shape_count(&io->in[0]);
}

/* ---- average ---- */

static void gavgpool_forward(const struct fv_layer *l, const struct fv_io *io) {
    (void)l;
    size_t S;
    int C;
    gpool_dims(io, &S, &C);
    const float *x = io->x[0]; /* (n,S,C) */
    float *y = io->y;          /* (n,C) */
    for (int b = 0; b < io->n; b++) {
        const float *xb = x + (size_t)b * S * C;
        float *yb = y + (size_t)b * C;
        for (int c = 0; c < C; c++) yb[c] = 0.f;
        for (size_t s = 0; s < S; s++)
            for (int c = 0; c < C; c++) yb[c] += xb[s * C + c];
        float inv = 1.f / (float)S;
        for (int c = 0; c < C; c++) yb[c] *= inv;
    }
}

static void gavgpool_backward(const struct fv_layer *l, const struct fv_io *io) {
    (void)l;
    if (!io->dx[0]) return;
    size_t S;
    int C;
    gpool_dims(io, &S, &C);
    const float *dy = io->dy; /* (n,C) */
    float *dx = io->dx[0];    /* (n,S,C) */
    float inv = 1.f / (float)S;
    for (int b = 0; b < io->n; b++) {
        float *dxb = dx + (size_t)b * S * C;
        const float *dyb = dy + (size_t)b * C;
        /* forward: yb[c] = sum_s xb[s*C+c] / S */
        for (size_t s = 0; s < S; s++)
            for (int c = 0; c < C; c++) dxb[s * C + c] += dyb[c] * inv;
    }
}

/* ---- max ---- */

static void gmaxpool_forward(const struct fv_layer *l, const struct fv_io *io) {
    (void)l;
    size_t S;
    int C;
    gpool_dims(io, &S, &C);
    const float *x = io->x[0]; /* (n,S,C) */
    float *y = io->y;          /* (n,C) */
    for (int b = 0; b < io->n; b++) {
        const float *xb = x + (size_t)b * S * C;
        float *yb = y + (size_t)b * C;
        for (int c = 0; c < C; c++) yb[c] = -INFINITY;
        for (size_t s = 0; s < S; s++)
            for (int c = 0; c < C; c++)
                if (xb[s * C + c] > yb[c]) yb[c] = xb[s * C + c];
    }
}

static void gmaxpool_backward(const struct fv_layer *l, const struct fv_io *io) {
    (void)l;
    if (!io->dx[0]) return;
    size_t S;
    int C;
    gpool_dims(io, &S, &C);
    const float *x = io->x[0]; /* (n,S,C) */
    const float *dy = io->dy;  /* (n,C) */
    float *dx = io->dx[0];     /* (n,S,C) */
    for (int b = 0; b < io->n; b++) {
        const float *xb = x + (size_t)b * S * C;
        float *dxb = dx + (size_t)b * S * C;
        for (int c = 0; c < C; c++) {
            /* forward: yb[c] = max_s xb[s*C+c], the first maximum wins */
            size_t arg = 0;
            float best = -INFINITY;
            for (size_t s = 0; s < S; s++)
                if (xb[s * C + c] > best) {
                    best = xb[s * C + c];
                    arg = s;
                }
            dxb[arg * C + c] += dy[(size_t)b * C + c];
        }
    }
}

static int gpool_out_rank(const struct fv_layer *l, int in_rank) {
    return in_rank == 3 ? (l->p.pool.keepdims ? 3 : 1) : -1;
}

const struct fv_layer_ops fv_gavgpool_ops = {
    .kind = "global_avgpool",
    .need = FV_NEED_SPATIAL,
    .out_rank = gpool_out_rank,
    .shape = gpool_shape,
    .forward = gavgpool_forward,
    .backward = gavgpool_backward,
    .flops = gpool_flops,
    .backward_skips_x = 1,
};

const struct fv_layer_ops fv_gmaxpool_ops = {
    .kind = "global_maxpool",
    .need = FV_NEED_SPATIAL,
    .out_rank = gpool_out_rank,
    .shape = gpool_shape,
    .forward = gmaxpool_forward,
    .backward = gmaxpool_backward,
    .flops = gpool_flops,
};
