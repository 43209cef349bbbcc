/* PReLU: y = x if x > 0 else alpha*x, with a learned alpha per position.
 * alpha = w[0] has the input's rank (p.reshape.rank, dims p.reshape.d) with
 * size 1 on Keras' shared_axes: it broadcasts where its dim is 1. The layer
 * works in Keras order (FV_NEED_KERAS), the order the h5 file stores alpha in.
 *
 * x (n,D0,D1,D2,D3)  alpha (A0,A1,A2,A3), Ai = Di or 1  y like x
 */
#include "layers/layers.h"

static int prelu_shape(const struct fv_layer *l, struct fv_io *io, struct fv_error *err) {
    const struct fv_reshape_params *a = &l->p.reshape;
    const struct fv_shape *in = &io->in[0];
    if (io->n_in != 1)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': expects 1 input, got %d", l->name,
                            io->n_in);
    if (a->rank != in->rank || in->rank < 1 || in->rank > FV_MAX_RANK)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': alpha has rank %d, input rank %d",
                            l->name, a->rank, in->rank);
    size_t na = 1;
    for (int i = 0; i < in->rank; i++) {
        if (a->d[i] != 1 && a->d[i] != in->d[i])
            return fv_error_set(err, FV_ERR_SHAPE,
                                "layer '%s': alpha dim %d is %d, input has %d (must match or be 1)",
                                l->name, i, a->d[i], in->d[i]);
        na *= (size_t)a->d[i];
    }
    if (l->n_w < 1 || !l->w[0] || l->w_len[0] != na)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': alpha has %zu values, expected %zu",
                            l->name, l->n_w < 1 ? (size_t)0 : l->w_len[0], na);
    io->out = *in;
    io->ws_floats = 0;
    return FV_OK;
}

/* Input dims padded to rank 4 and alpha's stride along each (0 where broadcast). */
static void prelu_walk(const struct fv_layer *l, const struct fv_io *io, int d[4], size_t ast[4]) {
    const struct fv_reshape_params *a = &l->p.reshape;
    const struct fv_shape *in = &io->in[0];
    int pad = 4 - in->rank;
    size_t s = 1;
    for (int i = 3; i >= 0; i--) {
        int k = i - pad;
        d[i] = k < 0 ? 1 : in->d[k];
        int ad = k < 0 ? 1 : a->d[k];
        ast[i] = ad == 1 ? 0 : s;
        s *= (size_t)ad;
    }
}

static void prelu_forward(const struct fv_layer *l, const struct fv_io *io) {
    int d[4];
    size_t ast[4];
    prelu_walk(l, io, d, ast);
    const float *alpha = l->w[0]; /* (A0,A1,A2,A3) */
    size_t count = fv_shape_count(&io->in[0]);
    for (int b = 0; b < io->n; b++) {
        const float *x = io->x[0] + (size_t)b * count; /* (D0,D1,D2,D3) */
        float *y = io->y + (size_t)b * count;
        size_t k = 0;
        for (int i0 = 0; i0 < d[0]; i0++)
            for (int i1 = 0; i1 < d[1]; i1++)
                for (int i2 = 0; i2 < d[2]; i2++)
                    for (int i3 = 0; i3 < d[3]; i3++, k++) {
                        float al = alpha[i0 * ast[0] + i1 * ast[1] + i2 * ast[2] + i3 * ast[3]];
                        y[k] = x[k] > 0.f ? x[k] : al * x[k];
                    }
    }
}

static void prelu_backward(const struct fv_layer *l, const struct fv_io *io) {
    if (!io->dx[0]) return;
    int d[4];
    size_t ast[4];
    prelu_walk(l, io, d, ast);
    const float *alpha = l->w[0]; /* (A0,A1,A2,A3) */
    size_t count = fv_shape_count(&io->in[0]);
    for (int b = 0; b < io->n; b++) {
        const float *x = io->x[0] + (size_t)b * count; /* (D0,D1,D2,D3) */
        const float *dy = io->dy + (size_t)b * count;
        float *dx = io->dx[0] + (size_t)b * count;
        size_t k = 0;
        for (int i0 = 0; i0 < d[0]; i0++)
            for (int i1 = 0; i1 < d[1]; i1++)
                for (int i2 = 0; i2 < d[2]; i2++)
                    for (int i3 = 0; i3 < d[3]; i3++, k++) {
                        float al = alpha[i0 * ast[0] + i1 * ast[1] + i2 * ast[2] + i3 * ast[3]];
                        /* forward: y[k] = x[k] > 0 ? x[k] : al * x[k] */
                        dx[k] += x[k] > 0.f ? dy[k] : al * dy[k];
                    }
    }
}

static double prelu_flops(const struct fv_layer *l, const struct fv_io *io) {
    (void)l;
    return (double)fv_shape_count(&io->in[0]);
}

const struct fv_layer_ops fv_prelu_ops = {
    .kind = "prelu",
    .need = FV_NEED_KERAS,
    .shape = prelu_shape,
    .forward = prelu_forward,
    .backward = prelu_backward,
    .flops = prelu_flops,
};
