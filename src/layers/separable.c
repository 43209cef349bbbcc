/* SeparableConv2D, as Keras/TensorFlow: a depthwise convolution (strides,
 * dilation and padding apply here, no bias) followed by a 1x1 pointwise
 * convolution and the bias.
 *
 *   x: (n, H, W, C)   w[0]: depthwise (KH, KW, C, M)   w[1]: pointwise (C*M, OC)
 *   w[2]: bias (OC)   y: (n, OH, OW, OC)
 *   mid = depthwise(x)           (n, OH, OW, C*M), kept in the workspace
 *   y   = mid . pointwise + bias (a GEMM with M = n*OH*OW rows)
 *
 * backward chains the two: dmid = dy . pointwise^T (into the workspace; the
 * layer is linear, so mid itself is not needed), then the depthwise gather.
 */
#include "kernels/gemm.h"
#include "layers/conv_impl.h"
#include "layers/layers.h"

struct sep_dims {
    struct fv_conv_geom g;
    int mult, cm, oc; /* depth multiplier, C*M, output channels */
    size_t rows;      /* n*OH*OW */
};

static int separable_dims(const struct fv_layer *l, const struct fv_io *io, struct sep_dims *d,
                          struct fv_error *err) {
    const struct fv_conv_params *p = &l->p.conv;
    if (io->n_in != 1)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': expects 1 input, got %d", l->name,
                            io->n_in);
    int rc = fv_conv_geom_init(l, &io->in[0], io->n, &d->g, err);
    if (rc == FV_OK) rc = fv_depthwise_mult(l, &d->g, &d->mult, err);
    if (rc != FV_OK) return rc;
    d->cm = d->g.c * d->mult; /* checked <= INT_MAX by fv_depthwise_mult */
    d->oc = p->filters;
    size_t pw;
    if (d->oc < 1 || !fv_mul_size((size_t)d->cm, (size_t)d->oc, &pw) || l->n_w < 2 || !l->w[1] ||
        l->w_len[1] != pw)
        return fv_error_set(err, FV_ERR_SHAPE,
                            "layer '%s': pointwise kernel has %zu floats, expected (%d, %d)",
                            l->name, l->n_w < 2 ? (size_t)0 : l->w_len[1], d->cm, d->oc);
    if (p->use_bias && (l->n_w < 3 || !l->w[2] || l->w_len[2] != (size_t)d->oc))
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': bias has %zu values, expected %d",
                            l->name, l->n_w < 3 ? (size_t)0 : l->w_len[2], d->oc);
    size_t out;
    if (!fv_mul_size((size_t)d->g.oh * (size_t)d->g.ow, (size_t)d->g.n, &d->rows) ||
        !fv_mul_size(d->rows, (size_t)d->oc, &out))
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': output size overflows", l->name);
    return FV_OK;
}

static int separable_shape(const struct fv_layer *l, struct fv_io *io, struct fv_error *err) {
    struct sep_dims d;
    int rc = separable_dims(l, io, &d, err);
    if (rc != FV_OK) return rc;
    io->out.rank = 3;
    io->out.d[0] = d.g.oh;
    io->out.d[1] = d.g.ow;
    io->out.d[2] = d.oc;
    io->ws_floats = d.rows * (size_t)d.cm; /* mid / dmid; fv_depthwise_mult checked it */
    return FV_OK;
}

static void separable_forward(const struct fv_layer *l, const struct fv_io *io) {
    struct sep_dims d;
    FV_ASSERT(separable_dims(l, io, &d, NULL) == FV_OK);
    FV_ASSERT(io->ws && io->ws_floats >= d.rows * (size_t)d.cm);
    float *mid = io->ws; /* (n*OH*OW, C*M) */
    fv_depthwise_fwd(mid, io->x[0], l->w[0], NULL, &d.g, d.mult, 0, 0.f);
    /* y[r][o] = sum_j mid[r][j] * pw[j][o] (+ bias[o]) */
    fv_gemm_par(d.rows, d.oc, d.cm, mid, (size_t)d.cm, l->w[1], (size_t)d.oc, 0, io->y,
                (size_t)d.oc, 0);
    if (l->p.conv.use_bias) fv_bias_add_par(io->y, l->w[2], d.rows, d.oc);
}

static void separable_backward(const struct fv_layer *l, const struct fv_io *io) {
    if (!io->dx[0]) return;
    struct sep_dims d;
    FV_ASSERT(separable_dims(l, io, &d, NULL) == FV_OK);
    FV_ASSERT(io->ws && io->ws_floats >= d.rows * (size_t)d.cm);
    float *dmid = io->ws; /* (n*OH*OW, C*M) */
    /* forward: y[r][o] = sum_j mid[r][j] * pw[j][o]
     * so:      dmid[r][j] = sum_o dy[r][o] * pw[j][o]   (pw transposed) */
    fv_gemm_par(d.rows, d.cm, d.oc, io->dy, (size_t)d.oc, l->w[1], (size_t)d.oc, 1, dmid,
                (size_t)d.cm, 0);
    /* forward: mid = depthwise(x), so dx += depthwise^T(dmid) */
    fv_depthwise_bwd(io->dx[0], dmid, l->w[0], &d.g, d.mult, 0, NULL, 0.f);
}

static double separable_flops(const struct fv_layer *l, const struct fv_io *io) {
    struct sep_dims d;
    if (separable_dims(l, io, &d, NULL) != FV_OK) return 0;
    double pix = (double)d.g.oh * (double)d.g.ow;
    return 2.0 * pix * (double)d.cm * ((double)d.g.kh * (double)d.g.kw + (double)d.oc);
}

const struct fv_layer_ops fv_separable_ops = {
    .kind = "separable",
    .need = FV_NEED_SPATIAL,
    .flags = FV_OPF_FILTERS,
    .shape = separable_shape,
    .forward = separable_forward,
    .backward = separable_backward,
    .flops = separable_flops,
    .rows = fv_conv_rows,
    .backward_skips_x = 1,
};
