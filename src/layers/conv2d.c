/* Conv2D, exactly as Keras/TensorFlow: strides, dilation, 'same'/'valid'
 * padding (TF puts the odd padding pixel at the bottom/right), groups, bias.
 *
 *   x: (n, H, W, C)   w[0]: (KH, KW, C/G, OC)   w[1]: (OC)   y: (n, OH, OW, OC)
 *   group gi = o / (OC/G) reads input channels gi*C/G .. (gi+1)*C/G - 1.
 *
 * forward:  per tile of CONV_TILE output pixels (the whole batch is one M =
 *           n*OH*OW rows matrix), im2col the tile into this thread's slice of
 *           the workspace and multiply by the kernel seen as (KH*KW*C/G, OC).
 *           1x1 stride-1 kernels use the input itself as the patch matrix.
 * backward: a gather, parallel over input rows (image, iy): each input pixel
 *           sums, in a fixed (ky, kx) order, dy of the output pixels that read
 *           it times the kernel tap, dy . W[ky][kx]^T (a GEMM with B transposed
 *           written straight into dx). No two threads touch the same dx row.
 * Both passes are bit-identical whatever the number of threads.
 */
#include <limits.h>

#include "kernels/gemm.h"
#include "kernels/im2col.h"
#include "layers/conv_impl.h"
#include "layers/layers.h"

#define CONV_TILE 128 /* output pixels per im2col tile (fixed: results do not depend on it) */
#define CONV_MAX_DIM (1 << 24) /* bound on sizes/strides/dilations: keeps int index math exact */

/* ---- geometry shared with depthwise.c and separable.c ---- */

int fv_conv_geom_init(const struct fv_layer *l, const struct fv_shape *in, int n,
                      struct fv_conv_geom *g, struct fv_error *err) {
    const struct fv_conv_params *p = &l->p.conv;
    if (in->rank != 3)
        return fv_error_set(err, FV_ERR_SHAPE,
                            "layer '%s': expects an (H, W, C) input, got rank %d", l->name,
                            in->rank);
    int vals[] = {p->kh, p->kw, p->sh, p->sw, p->dh, p->dw, in->d[0], in->d[1], in->d[2], n};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        if (vals[i] < 1 || vals[i] > CONV_MAX_DIM)
            return fv_error_set(err, FV_ERR_SHAPE,
                                "layer '%s': kernel %dx%d, strides %dx%d, dilation %dx%d, input "
                                "%dx%dx%d, batch %d: every value must be in 1..%d",
                                l->name, p->kh, p->kw, p->sh, p->sw, p->dh, p->dw, in->d[0],
                                in->d[1], in->d[2], n, CONV_MAX_DIM);
    g->n = n;
    g->h = in->d[0];
    g->w = in->d[1];
    g->c = in->d[2];
    g->kh = p->kh;
    g->kw = p->kw;
    g->sh = p->sh;
    g->sw = p->sw;
    g->dh = p->dh;
    g->dw = p->dw;
    long long oh = fv_conv_out_size(g->h, g->kh, g->sh, g->dh, p->same, &g->pt);
    long long ow = fv_conv_out_size(g->w, g->kw, g->sw, g->dw, p->same, &g->pl);
    if (oh < 1 || ow < 1)
        return fv_error_set(err, FV_ERR_SHAPE,
                            "layer '%s': input %dx%d is too small for a %dx%d kernel with dilation "
                            "%dx%d and 'valid' padding (output would be %lldx%lld)",
                            l->name, g->h, g->w, g->kh, g->kw, g->dh, g->dw, oh, ow);
    if (oh * g->kh > INT_MAX || ow * g->kw > INT_MAX)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': sizes overflow", l->name);
    g->oh = (int)oh;
    g->ow = (int)ow;
    return FV_OK;
}

/* ---- Conv2D ---- */

struct conv_dims {
    struct fv_conv_geom g;
    int oc, groups, cg, ocg; /* output channels, groups, channels per group in/out */
    int kdim;                /* KH*KW*cg: inner dimension of the product */
    size_t m;                /* n*OH*OW output pixels of the batch */
    size_t tile_rows;        /* rows of one im2col tile: min(CONV_TILE, m) */
    int direct;              /* 1x1 stride 1: the input is the patch matrix */
};

static int conv2d_dims(const struct fv_layer *l, const struct fv_io *io, struct conv_dims *d,
                       struct fv_error *err) {
    const struct fv_conv_params *p = &l->p.conv;
    if (io->n_in != 1)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': expects 1 input, got %d", l->name,
                            io->n_in);
    int rc = fv_conv_geom_init(l, &io->in[0], io->n, &d->g, err);
    if (rc != FV_OK) return rc;
    d->oc = p->filters;
    d->groups = p->groups > 0 ? p->groups : 1;
    if (d->oc < 1 || d->oc % d->groups != 0)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': %d filters do not split into %d groups",
                            l->name, d->oc, d->groups);
    size_t taps = (size_t)p->kh * (size_t)p->kw * (size_t)d->oc;
    if (l->n_w < 1 || !l->w[0] || l->w_len[0] == 0 || l->w_len[0] % taps != 0)
        return fv_error_set(err, FV_ERR_SHAPE,
                            "layer '%s': kernel of %zu floats is not (%d, %d, C, %d)", l->name,
                            l->n_w < 1 ? (size_t)0 : l->w_len[0], p->kh, p->kw, d->oc);
    size_t kc = l->w_len[0] / taps; /* the kernel's input channels (per group) */
    if (kc * (size_t)d->groups != (size_t)d->g.c)
        return fv_error_set(err, FV_ERR_SHAPE,
                            "layer '%s': input has %d channels but the kernel (%d, %d, %zu, %d) "
                            "with groups=%d expects %zu",
                            l->name, d->g.c, p->kh, p->kw, kc, d->oc, d->groups,
                            kc * (size_t)d->groups);
    if (p->use_bias && (l->n_w < 2 || !l->w[1] || l->w_len[1] != (size_t)d->oc))
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': bias has %zu values, expected %d",
                            l->name, l->n_w < 2 ? (size_t)0 : l->w_len[1], d->oc);
    if (kc * (size_t)p->kh * (size_t)p->kw > INT_MAX) /* no overflow: <= w_len[0] */
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': kernel too large", l->name);
    d->cg = (int)kc;
    d->ocg = d->oc / d->groups;
    d->kdim = p->kh * p->kw * d->cg;
    size_t pix, out;
    if (!fv_mul_size((size_t)d->g.oh, (size_t)d->g.ow, &pix) ||
        !fv_mul_size(pix, (size_t)d->g.n, &d->m) || !fv_mul_size(d->m, (size_t)d->oc, &out))
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': output size overflows", l->name);
    d->tile_rows = d->m < CONV_TILE ? d->m : CONV_TILE;
    d->direct = p->kh == 1 && p->kw == 1 && p->sh == 1 && p->sw == 1;
    return FV_OK;
}

static int conv2d_shape(const struct fv_layer *l, struct fv_io *io, struct fv_error *err) {
    struct conv_dims d;
    int rc = conv2d_dims(l, io, &d, err);
    if (rc != FV_OK) return rc;
    io->out.rank = 3;
    io->out.d[0] = d.g.oh;
    io->out.d[1] = d.g.ow;
    io->out.d[2] = d.oc;
    io->ws_floats = 0;
    if (!d.direct) {
        /* one (tile_rows, kdim) im2col slice per thread */
        size_t tiles = (d.m + CONV_TILE - 1) / CONV_TILE;
        size_t slots = (size_t)fv_omp_max_threads();
        if (slots > tiles) slots = tiles;
        size_t slot;
        if (!fv_mul_size(d.tile_rows, (size_t)d.kdim, &slot) ||
            !fv_mul_size(slot, slots, &io->ws_floats))
            return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': workspace size overflows", l->name);
    }
    return FV_OK;
}

static void conv2d_forward(const struct fv_layer *l, const struct fv_io *io) {
    struct conv_dims d;
    FV_ASSERT(conv2d_dims(l, io, &d, NULL) == FV_OK);
    const float *x = io->x[0];                               /* (n, H, W, C) */
    const float *w = l->w[0];                                /* (KH*KW*cg, OC) */
    const float *bias = l->p.conv.use_bias ? l->w[1] : NULL; /* (OC) */
    float *y = io->y;                                        /* (n*OH*OW, OC) */
    size_t slot = d.tile_rows * (size_t)d.kdim;
    size_t tiles = (d.m + CONV_TILE - 1) / CONV_TILE;
    int nthr = fv_omp_max_threads();
    if (!d.direct) {
        FV_ASSERT(io->ws && io->ws_floats >= slot);
        if ((size_t)nthr > io->ws_floats / slot) nthr = (int)(io->ws_floats / slot);
    }
    int par = (double)d.m * (double)d.kdim * (double)d.oc >= FV_PAR_MIN_WORK;
    (void)nthr; /* only read by the OpenMP clauses */
    (void)par;
    FV_OMP("omp parallel for schedule(static) num_threads(nthr) if(par)")
    for (size_t t = 0; t < tiles; t++) {
        size_t m0 = t * CONV_TILE;
        size_t rows = d.m - m0 < CONV_TILE ? d.m - m0 : CONV_TILE;
        /* this thread's im2col slice (rows, kdim) */
        float *col = d.direct ? NULL : io->ws + (size_t)fv_omp_thread_num() * slot;
        for (int gi = 0; gi < d.groups; gi++) {
            const float *a; /* (rows, kdim) patches of group gi */
            size_t lda;
            if (d.direct) {
                a = x + m0 * (size_t)d.g.c + (size_t)gi * (size_t)d.cg;
                lda = (size_t)d.g.c;
            } else {
                fv_im2col(col, x, &d.g, m0, rows, gi * d.cg, d.cg);
                a = col;
                lda = (size_t)d.kdim;
            }
            /* y[m][gi*ocg + o] = sum_k a[m][k] * w[k][gi*ocg + o] */
            fv_gemm(rows, d.ocg, d.kdim, a, lda, w + (size_t)gi * (size_t)d.ocg, (size_t)d.oc, 0,
                    y + m0 * (size_t)d.oc + (size_t)gi * (size_t)d.ocg, (size_t)d.oc, 0);
        }
        if (bias) fv_bias_add(y + m0 * (size_t)d.oc, bias, rows, d.oc);
    }
}

static void conv2d_backward(const struct fv_layer *l, const struct fv_io *io) {
    float *dx = io->dx[0]; /* (n, H, W, C) */
    if (!dx) return;
    struct conv_dims d;
    FV_ASSERT(conv2d_dims(l, io, &d, NULL) == FV_OK);
    const struct fv_conv_geom *g = &d.g;
    const float *w = l->w[0];  /* (KH, KW, cg, OC) */
    const float *dy = io->dy;  /* (n, OH, OW, OC) */
    size_t C = (size_t)g->c, OC = (size_t)d.oc;
    size_t in_rows = (size_t)g->n * (size_t)g->h;
    int par = (double)d.m * (double)d.kdim * (double)d.oc >= FV_PAR_MIN_WORK;
    (void)par; /* only read by the OpenMP clause */
    FV_OMP("omp parallel for schedule(static) if(par)")
    for (size_t r = 0; r < in_rows; r++) {
        size_t img = r / (size_t)g->h;
        int iy = (int)(r % (size_t)g->h);
        float *dxrow = dx + r * (size_t)g->w * C; /* (W, C) */
        for (int ky = 0; ky < g->kh; ky++) {
            /* forward read input row iy = oy*SH - PT + ky*DH */
            int ty = iy + g->pt - ky * g->dh;
            if (ty < 0 || ty % g->sh != 0 || ty / g->sh >= g->oh) continue;
            int oy = ty / g->sh;
            const float *dyrow = /* (OW, OC) */
                dy + (img * (size_t)g->oh + (size_t)oy) * (size_t)g->ow * OC;
            for (int kx = 0; kx < g->kw; kx++) {
                /* ... and column ix = ox*SW - PL + kx*DW, for 0 <= ix < W, 0 <= ox < OW */
                long long off = (long long)g->pl - (long long)kx * g->dw;
                long long ox0 = fv_ceil_div(off, g->sw);
                long long ox1 = fv_floor_div(g->w - 1 + off, g->sw);
                if (ox0 < 0) ox0 = 0;
                if (ox1 > g->ow - 1) ox1 = g->ow - 1;
                if (ox0 > ox1) continue;
                size_t ix0 = (size_t)(ox0 * g->sw - off);
                const float *wk = w + (size_t)(ky * g->kw + kx) * (size_t)d.cg * OC; /* (cg, OC) */
                for (int gi = 0; gi < d.groups; gi++) {
                    /* forward: y[ox][gi*ocg + o] += x[ix][gi*cg + c] * wk[c][gi*ocg + o]
                     * so:      dx[ix][gi*cg + c] += sum_o dy[ox][gi*ocg + o] * wk[c][gi*ocg + o] */
                    fv_gemm((size_t)(ox1 - ox0 + 1), d.cg, d.ocg,
                            dyrow + (size_t)ox0 * OC + (size_t)gi * (size_t)d.ocg, OC,
                            wk + (size_t)gi * (size_t)d.ocg, OC, 1,
                            dxrow + ix0 * C + (size_t)gi * (size_t)d.cg, (size_t)g->sw * C, 1);
                }
            }
        }
    }
}

static double conv2d_flops(const struct fv_layer *l, const struct fv_io *io) {
    struct conv_dims d;
    if (conv2d_dims(l, io, &d, NULL) != FV_OK) return 0;
    return 2.0 * (double)d.g.oh * (double)d.g.ow * (double)d.oc * (double)d.kdim;
}

const struct fv_layer_ops fv_conv2d_ops = {
    .kind = "conv2d",
    .need = FV_NEED_SPATIAL,
    .shape = conv2d_shape,
    .forward = conv2d_forward,
    .backward = conv2d_backward,
    .flops = conv2d_flops,
};
