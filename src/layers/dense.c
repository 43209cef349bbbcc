/* Dense, as Keras: acts on the LAST physical axis, y = x . W + b.
 *
 * Dense has no conv hyper-parameters; its number of units is stored in
 * l->p.conv.filters (and p.conv.use_bias says whether w[1] exists). The input
 * size IN is not stored: it is w_len[0] / units and must equal the last axis.
 *
 *   x: (n, ..., IN)   w[0]: (IN, OUT)   w[1]: (OUT)   y: (n, ..., OUT)
 *   seen as matrices with rows = n * count(in) / IN:
 *   y[r][o] = sum_i x[r][i] * W[i][o] + b[o]
 */
#include "kernels/gemm.h"
#include "layers/layers.h"

struct dense_dims {
    int in, out;  /* IN, OUT */
    size_t rows;  /* n * (elements of one image / IN) */
};

static int dense_dims(const struct fv_layer *l, const struct fv_io *io, struct dense_dims *d,
                      struct fv_error *err) {
    if (io->n_in != 1)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': expects 1 input, got %d", l->name,
                            io->n_in);
    const struct fv_shape *s = &io->in[0];
    if (s->rank < 1 || s->rank > FV_MAX_RANK)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': input of rank %d", l->name, s->rank);
    size_t count = 1;
    for (int i = 0; i < s->rank; i++)
        if (s->d[i] < 1 || !fv_mul_size(count, (size_t)s->d[i], &count))
            return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': bad or overflowing input size",
                                l->name);
    d->out = l->p.conv.filters;
    size_t len = l->n_w >= 1 && l->w[0] ? l->w_len[0] : 0;
    if (d->out < 1 || len == 0 || len % (size_t)d->out != 0)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': kernel of %zu floats is not (IN, %d)",
                            l->name, len, d->out);
    size_t in = len / (size_t)d->out;
    int last = s->d[s->rank - 1];
    if (in != (size_t)last)
        return fv_error_set(err, FV_ERR_SHAPE,
                            "layer '%s': input's last axis is %d but the kernel (%zu, %d) "
                            "expects %zu",
                            l->name, last, in, d->out, in);
    d->in = last;
    if (l->p.conv.use_bias && (l->n_w < 2 || !l->w[1] || l->w_len[1] != (size_t)d->out))
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': bias has %zu values, expected %d",
                            l->name, l->n_w < 2 ? (size_t)0 : l->w_len[1], d->out);
    size_t total;
    if (!fv_mul_size(count / (size_t)d->in, (size_t)io->n, &d->rows) ||
        !fv_mul_size(d->rows, (size_t)d->out, &total) || io->n < 1)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': output size overflows", l->name);
    return FV_OK;
}

static int dense_shape(const struct fv_layer *l, struct fv_io *io, struct fv_error *err) {
    struct dense_dims d;
    int rc = dense_dims(l, io, &d, err);
    if (rc != FV_OK) return rc;
    io->out = io->in[0];
    io->out.d[io->out.rank - 1] = d.out;
    io->ws_floats = 0;
    /* with gradients, W^T (OUT, IN): the backward then reads it row by row
     * instead of transposing W on every call */
    io->cache_floats = io->grad ? (size_t)d.in * (size_t)d.out : 0;
    return FV_OK;
}

static void dense_prepare(const struct fv_layer *l, const struct fv_io *io) {
    struct dense_dims d;
    FV_ASSERT(dense_dims(l, io, &d, NULL) == FV_OK && io->cache);
    size_t in = (size_t)d.in, out = (size_t)d.out;
    for (size_t i = 0; i < in; i++)
        for (size_t o = 0; o < out; o++) io->cache[o * in + i] = l->w[0][i * out + o];
}

static void dense_forward(const struct fv_layer *l, const struct fv_io *io) {
    struct dense_dims d;
    FV_ASSERT(dense_dims(l, io, &d, NULL) == FV_OK);
    const float *x = io->x[0]; /* (rows, IN) */
    const float *w = l->w[0];  /* (IN, OUT) */
    float *y = io->y;          /* (rows, OUT) */
    /* y[r][o] = sum_i x[r][i] * w[i][o] */
    fv_gemm_par(d.rows, d.out, d.in, x, (size_t)d.in, w, (size_t)d.out, 0, y, (size_t)d.out, 0);
    if (l->p.conv.use_bias) fv_bias_add_par(y, l->w[1], d.rows, d.out); /* y[r][o] += b[o] */
}

static void dense_backward(const struct fv_layer *l, const struct fv_io *io) {
    float *dx = io->dx[0]; /* (rows, IN) */
    if (!dx) return;
    struct dense_dims d;
    FV_ASSERT(dense_dims(l, io, &d, NULL) == FV_OK);
    /* forward: y[r][o] = sum_i x[r][i] * w[i][o]
     * so:      dx[r][i] += sum_o dy[r][o] * wt[o][i]   (wt = W^T, the cache) */
    FV_ASSERT(io->cache);
    fv_gemm_par(d.rows, d.in, d.out, io->dy, (size_t)d.out, io->cache, (size_t)d.in, 0, dx,
                (size_t)d.in, 1);
}

static double dense_flops(const struct fv_layer *l, const struct fv_io *io) {
    struct dense_dims d;
    if (dense_dims(l, io, &d, NULL) != FV_OK) return 0;
    return 2.0 * (double)(d.rows / (size_t)io->n) * (double)d.in * (double)d.out;
}

const struct fv_layer_ops fv_dense_ops = {
    .kind = "dense",
    .need = FV_NEED_KERAS,
    .flags = FV_OPF_UNITS | FV_OPF_FOLDS_SCALE,
    .shape = dense_shape,
    .forward = dense_forward,
    .backward = dense_backward,
    .prepare = dense_prepare,
    .flops = dense_flops,
    .backward_skips_x = 1,
};
