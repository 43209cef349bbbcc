/* Conv2D, exactly as Keras/TensorFlow: strides, dilation, 'same'/'valid'
 * padding (TF puts the odd padding pixel at the bottom/right), groups, bias.
 *
 *   x: (n, H, W, C)   w[0]: (KH, KW, C/G, OC)   w[1]: (OC)   y: (n, OH, OW, OC)
 *   group gi = o / (OC/G) reads input channels gi*C/G .. (gi+1)*C/G - 1.
 *
 * forward:  1x1 stride-1 kernels use the input itself as the patch matrix.
 *           3x3, stride 1, dilation 1, one group, >= WINO_MIN_C channels in
 *           and out: Winograd F(4x4, 3x3) (wino_run below).
 *           Other stride-1, dilation-1, one-group kernels: an implicit GEMM
 *           that reads the patches straight from the image (iconv_run below),
 *           per task of a few output rows.
 *           Otherwise: per tile of CONV_TILE output pixels (the whole batch is
 *           one M = n*OH*OW rows matrix), im2col the tile into this thread's
 *           slice of the workspace and multiply by the kernel seen as
 *           (KH*KW*C/G, OC).
 *           With io->pick (a filter objective on this layer): only each
 *           image's own channel, as dot products (conv_pick.c).
 * backward, stride 1, dilation 1, one group: the input gradient is itself a
 *           convolution, of dy with the kernel rotated by 180 degrees and
 *           transposed,
 *             dx[iy][ix][c] += sum_{ky',kx',o} dy[iy - PT' + ky'][ix - PL' + kx'][o]
 *                                              * W'[ky'][kx'][o][c]
 *             W'[ky'][kx'][o][c] = W[KH-1-ky'][KW-1-kx'][c][o],
 *             PT' = KH-1 - PT,  PL' = KW-1 - PL,
 *           run by the same Winograd or implicit GEMM into dx: a gather, each
 *           dx row written by one thread. Images whose dy lives in at most
 *           OC/4 channels (a filter objective on this layer) run on those
 *           channels alone.
 *           Any other case: a gather, parallel over input rows (image, iy):
 *           each input pixel sums, in a fixed (ky, kx) order, dy of the output
 *           pixels that read it times the kernel tap: per input row and kernel
 *           row ky, one GEMM dy[oy] . W[ky]^T gives every tap kx of the output
 *           row (OW, KW*cg) in this thread's slice, added into dx tap by tap.
 * Both passes are bit-identical whatever the number of threads.
 */
#include <limits.h>
#include <string.h>

#include "kernels/gemm.h"
#include "kernels/im2col.h"
#include "kernels/winograd.h"
#include "layers/conv_impl.h"
#include "layers/layers.h"

#define CONV_TILE 96 /* output pixels per im2col tile (results do not depend on it) */
#define WINO_MIN_C 32 /* Winograd needs this many channels in and out to pay off (measured) */
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
    long long oh, ow;
    if (p->pad_explicit) { /* ONNX pads: floor((in + before + after - span) / s) + 1 */
        int pads[] = {p->pad_t, p->pad_b, p->pad_l, p->pad_r};
        for (int i = 0; i < 4; i++)
            if (pads[i] < 0 || pads[i] > CONV_MAX_DIM)
                return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': pads out of range", l->name);
        long long eh = (long long)g->h + p->pad_t + p->pad_b - ((long long)g->dh * (g->kh - 1) + 1);
        long long ew = (long long)g->w + p->pad_l + p->pad_r - ((long long)g->dw * (g->kw - 1) + 1);
        oh = eh < 0 ? 0 : eh / g->sh + 1;
        ow = ew < 0 ? 0 : ew / g->sw + 1;
        g->pt = p->pad_t;
        g->pl = p->pad_l;
    } else {
        oh = fv_conv_out_size(g->h, g->kh, g->sh, g->dh, p->same, &g->pt);
        ow = fv_conv_out_size(g->w, g->kw, g->sw, g->dw, p->same, &g->pl);
    }
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

int fv_conv_rows(const struct fv_layer *l, const struct fv_io *io, struct fv_rows *r) {
    struct fv_conv_geom g;
    if (io->n_in != 1 || fv_conv_geom_init(l, &io->in[0], io->n, &g, NULL) != FV_OK) return 0;
    r->stride = g.sh, r->pad = g.pt, r->extent = (g.kh - 1) * g.dh + 1;
    return 1;
}

/* ---- Conv2D ---- */

struct conv_dims {
    struct fv_conv_geom g;
    int oc, groups, cg, ocg; /* output channels, groups, channels per group in/out */
    int kdim;                /* KH*KW*cg: inner dimension of the product */
    size_t m;                /* n*OH*OW output pixels of the batch */
    size_t tile_rows;        /* rows of one im2col tile: min(CONV_TILE, m) */
    int direct;              /* 1x1 stride 1: the input is the patch matrix */
    int implicit;            /* stride 1, dilation 1, one group: implicit GEMM both ways */
    int wino;                /* ... and 3x3 with >= WINO_MIN_C channels in and out: Winograd */
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
    /* the backward's kernel W' has KH*KW*OC rows: keep that an int too */
    d->implicit = p->sh == 1 && p->sw == 1 && p->dh == 1 && p->dw == 1 && d->groups == 1 &&
                  taps <= INT_MAX && (size_t)d->g.w + (size_t)p->kw <= INT_MAX;
    d->wino = d->implicit && p->kh == 3 && p->kw == 3 && d->g.c >= WINO_MIN_C &&
              d->oc >= WINO_MIN_C && (size_t)d->g.c * (size_t)d->oc <= ((size_t)1 << 28);
    return FV_OK;
}

/* ---- per-plan cache: the kernel in the forms the passes multiply by ----
 *   implicit, with gradients: W' (KH*KW*OC, C), the kernel rotated by 180
 *             degrees and transposed (the backward's kernel, see the top of
 *             the file), and for Winograd U' (36, OC, C) of W'
 *   Winograd: U (36, C, OC) of the kernel (forward) */
struct conv_cache {
    size_t wt, uf, ub, total; /* offsets and size in floats */
};

static void conv_cache_layout(const struct conv_dims *d, int grad, struct conv_cache *c) {
    size_t u = FV_WINO_PLANES * (size_t)d->g.c * (size_t)d->oc;
    memset(c, 0, sizeof *c);
    if (d->wino) c->total = u; /* uf = 0 */
    if (!d->implicit || !grad) return;
    c->wt = c->total;
    c->total += (size_t)d->g.kh * (size_t)d->g.kw * (size_t)d->oc * (size_t)d->g.c;
    if (d->wino) {
        c->ub = c->total;
        c->total += u;
    }
}

static void conv2d_prepare(const struct fv_layer *l, const struct fv_io *io) {
    struct conv_dims d;
    struct conv_cache cc;
    FV_ASSERT(conv2d_dims(l, io, &d, NULL) == FV_OK);
    conv_cache_layout(&d, io->grad, &cc);
    FV_ASSERT(io->cache && io->cache_floats >= cc.total);
    size_t C = (size_t)d.g.c, OC = (size_t)d.oc, KH = (size_t)d.g.kh, KW = (size_t)d.g.kw;
    const float *w = l->w[0]; /* (KH, KW, C, OC) */
    if (d.wino) fv_wino_kernel(io->cache + cc.uf, w, d.g.c, d.oc);
    if (!io->grad) return;
    float *wt = io->cache + cc.wt; /* W' (KH, KW, OC, C) */
    for (size_t ky = 0; ky < KH; ky++)
        for (size_t kx = 0; kx < KW; kx++) {
            const float *src = w + ((KH - 1 - ky) * KW + (KW - 1 - kx)) * C * OC; /* (C, OC) */
            float *dst = wt + (ky * KW + kx) * OC * C;                               /* (OC, C) */
            for (size_t c = 0; c < C; c++)
                for (size_t o = 0; o < OC; o++) dst[o * C + c] = src[c * OC + o];
        }
    if (d.wino) fv_wino_kernel(io->cache + cc.ub, wt, d.oc, d.g.c);
}

/* ---- implicit GEMM: stride 1, dilation 1, one group ----
 *
 *   out[img][oy][ox][j] (=|+=) bias[j]
 *       + sum_{ky,kx,c} in[img][oy - PT + ky][ox - PL + kx][c] * B[(ky*KW + kx)*C + c][j]
 *   in (n, H, W, C)   B (KH*KW*C, N)   out (n, OH, OW, N)
 *
 * Work is split into tasks of a few output rows of one image. A task's patch
 * matrix row (oy, ox) is KH runs of KW*C floats, one per kernel row, found in
 * the band of input rows oy-PT .. oy-PT+KH-1, columns -PL .. OW-PL+KW-2: read
 * in place when the band lies inside the image ('valid'), else copied once
 * with its zero padding into the thread's band buffer (no KH*KW-fold im2col).
 * fv_gemm_seg then runs with lda = C, segments of KW*C floats one band row
 * apart, and one group per output row. */
struct iconv {
    const float *in;
    int n, h, w, c;
    int oh, ow, kh, kw, pt, pl;
    const float *b; /* (KH*KW*C, N) */
    int nout;
    const float *bias; /* (N) or NULL */
    float *out;
    int accumulate;
    int relu; /* out = max(0, out) after the bias (not with accumulate) */
    float cap; /* with relu, > 0: out = min(out, cap) (ReLU6) */
    const float *gate; /* or NULL (not with accumulate): out = 0 where gate <= 0, gate laid
                          out as out (the derivative of the ReLU whose output it is) */
    float gate_cap;    /* with gate, > 0: also where gate >= gate_cap (ReLU6) */
};

#define ICONV_PIX 96 /* output pixels per task (more when N is small), at least one row */

static int iconv_rows(const struct iconv *v) {
    int pix = v->nout >= 32 ? ICONV_PIX : ICONV_PIX * 32 / v->nout; /* ~ the same work per task */
    int r = pix / v->ow;
    if (r < 1) r = 1;
    return r > v->oh ? v->oh : r;
}

/* floats of one thread's band buffer */
static size_t iconv_band(const struct iconv *v) {
    return (size_t)(iconv_rows(v) + v->kh - 1) * (size_t)(v->ow + v->kw - 1) * (size_t)v->c;
}

/* buf (rows, wp, C) = in[img] rows iy0.., columns ix0..ix0+wp-1, zero outside */
static void iconv_copy_band(float *buf, const float *xi, const struct iconv *v, int iy0, int rows,
                            int ix0, int wp) {
    size_t C = (size_t)v->c;
    int lo = ix0 < 0 ? -ix0 : 0;                         /* zero columns on the left */
    int hi = ix0 + wp > v->w ? v->w - ix0 : wp;          /* first zero column on the right */
    if (hi < lo) hi = lo;
    for (int r = 0; r < rows; r++) {
        float *d = buf + (size_t)r * (size_t)wp * C;
        int iy = iy0 + r;
        if (iy < 0 || iy >= v->h) {
            memset(d, 0, (size_t)wp * C * sizeof(float));
            continue;
        }
        memset(d, 0, (size_t)lo * C * sizeof(float));
        if (hi > lo)
            memcpy(d + (size_t)lo * C, xi + ((size_t)iy * (size_t)v->w + (size_t)(ix0 + lo)) * C,
                   (size_t)(hi - lo) * C * sizeof(float));
        memset(d + (size_t)hi * C, 0, (size_t)(wp - hi) * C * sizeof(float));
    }
}

/* Task t of v: a few output rows of one image. buf: a band buffer (iconv_band floats). */
static void iconv_task(const struct iconv *v, size_t t, float *buf) {
    int tr = iconv_rows(v), wp = v->ow + v->kw - 1;
    size_t C = (size_t)v->c, N = (size_t)v->nout;
    size_t per_img = (size_t)((v->oh + tr - 1) / tr);
    size_t img = t / per_img;
    int oy0 = (int)(t % per_img) * tr;
    int rows = v->oh - oy0 < tr ? v->oh - oy0 : tr;
    int iy0 = oy0 - v->pt, ix0 = -v->pl, band_rows = rows + v->kh - 1;
    const float *xi = v->in + img * (size_t)v->h * (size_t)v->w * C; /* (H, W, C) */
    const float *base;                                                /* band row 0, column 0 */
    size_t rs;                                                        /* band row stride */
    if (iy0 >= 0 && iy0 + band_rows <= v->h && ix0 == 0 && wp <= v->w) {
        base = xi + (size_t)iy0 * (size_t)v->w * C;
        rs = (size_t)v->w * C;
    } else {
        iconv_copy_band(buf, xi, v, iy0, band_rows, ix0, wp); /* (band_rows, wp, C) */
        base = buf;
        rs = (size_t)wp * C;
    }
    float *o = v->out + (img * (size_t)v->oh + (size_t)oy0) * (size_t)v->ow * N;
    /* o[r][ox][j] (=|+=) sum_{ky, t < KW*C} base[(r + ky)*rs + ox*C + t] * b[ky*KW*C + t][j] */
    fv_gemm_seg(rows, (size_t)v->ow, v->nout, v->kh * v->kw * v->c, base, rs, C, v->kw * v->c, rs,
                v->b, N, o, (size_t)v->ow * N, N, v->accumulate);
    fv_bias_relu(o, v->bias, (size_t)rows * (size_t)v->ow, v->nout, v->relu, v->cap);
    if (v->gate) {
        const float *gt = v->gate + (size_t)(o - v->out);
        size_t cnt = (size_t)rows * (size_t)v->ow * N;
        fv_relu_gate(o, gt, cnt, v->gate_cap);
    }
}

static size_t iconv_tasks_per_img(const struct iconv *v) {
    int tr = iconv_rows(v);
    return (size_t)((v->oh + tr - 1) / tr);
}

/* All tasks of v, in parallel; images with skip[img] != 0 (skip may be NULL) are left out. */
static void iconv_run(const struct iconv *v, const unsigned char *skip, float *ws,
                      size_t ws_floats) {
    size_t band = iconv_band(v), per_img = iconv_tasks_per_img(v);
    size_t tasks = (size_t)v->n * per_img;
    int nthr = fv_omp_max_threads();
    FV_ASSERT(ws && ws_floats >= band);
    if ((size_t)nthr > ws_floats / band) nthr = (int)(ws_floats / band);
    int par = (double)v->n * v->oh * v->ow * (double)(v->kh * v->kw * v->c) * (double)v->nout >=
              FV_PAR_MIN_WORK;
    (void)nthr; /* only read by the OpenMP clauses */
    (void)par;
    FV_OMP("omp parallel for schedule(dynamic) num_threads(nthr) if(par)")
    for (size_t t = 0; t < tasks; t++)
        if (!skip || !skip[t / per_img]) iconv_task(v, t, ws + (size_t)fv_omp_thread_num() * band);
}

/* The forward pass as an implicit convolution. */
static void conv2d_iconv_fwd(const struct fv_layer *l, const struct fv_io *io,
                             const struct conv_dims *d, struct iconv *v) {
    const struct fv_conv_geom *g = &d->g;
    *v = (struct iconv){.in = io->x[0], .n = g->n, .h = g->h, .w = g->w, .c = g->c,
                        .oh = g->oh, .ow = g->ow, .kh = g->kh, .kw = g->kw, .pt = g->pt,
                        .pl = g->pl, .b = l->w[0], .nout = d->oc,
                        .bias = l->p.conv.use_bias ? l->w[1] : NULL, .out = io->y,
                        .accumulate = 0, .relu = io->relu, .cap = io->relu_cap};
}

/* The backward pass as one: dx = conv(dy, W') with the kernel rotated by 180
 * degrees and transposed (see the top of the file). */
static void conv2d_iconv_bwd(const struct fv_io *io, const struct conv_dims *d, const float *wt,
                             struct iconv *v) {
    const struct fv_conv_geom *g = &d->g;
    *v = (struct iconv){.in = io->dy, .n = g->n, .h = g->oh, .w = g->ow, .c = d->oc,
                        .oh = g->h, .ow = g->w, .kh = g->kh, .kw = g->kw,
                        .pt = g->kh - 1 - g->pt, .pl = g->kw - 1 - g->pl, .b = wt,
                        .nout = g->c, .bias = NULL, .out = io->dx[0],
                        .accumulate = !io->dx_assign[0],
                        .gate = io->dx_relu[0] ? io->x[0] : NULL, .gate_cap = io->dx_relu_cap[0]};
}

/* ---- Winograd F(4x4, 3x3): 3x3, stride 1, dilation 1, one group ----
 *
 * The same convolution as iconv (see winograd.h for the transforms): per task
 * of `chunk` output tiles, the input transform into the thread's V (chunk,
 * 36, Cin), 36 GEMMs V_xi . U_xi into M (chunk, 36, Cout), the output
 * transform into out (+ bias, ReLU). 4x fewer multiplications than the
 * direct convolution. Each tile is computed alike wherever it falls, so
 * results do not depend on the thread count. The transformed kernel U
 * (36, Cin, Cout) is made once per plan (conv2d_prepare).
 * Workspace: Cin zeros | one (V, M) slot per thread. */
struct wino {
    struct fv_conv_geom g; /* input (n, h, w, c = Cin), output (oh, ow), pt, pl */
    int cout;
    const float *in, *bias;
    float *out;
    int accumulate, relu;
    const float *gate; /* as in struct iconv */
};

static size_t wino_chunk(const struct wino *w) {
    int m = w->g.c > w->cout ? w->g.c : w->cout;
    size_t ch = (size_t)(4096 / m) / 12 * 12; /* a slot of ~1 MB: V and M stay in L2 */
    return ch < 12 ? 12 : ch > 96 ? 96 : ch;
}

static size_t wino_slot(const struct wino *w) {
    return FV_WINO_PLANES * wino_chunk(w) * ((size_t)w->g.c + (size_t)w->cout);
}

/* floats of the whole workspace for `threads` threads (0 on overflow) */
static size_t wino_ws(const struct wino *w, int threads) {
    size_t all;
    if (!fv_mul_size(wino_slot(w), (size_t)threads, &all) || all + (size_t)w->g.c < all) return 0;
    return (size_t)w->g.c + all;
}

/* u: the transformed kernel (36, Cin, Cout), fv_wino_kernel */
static void wino_run(const struct wino *w, const float *u, float *ws, size_t ws_floats) {
    size_t cin = (size_t)w->g.c, cout = (size_t)w->cout, chunk = wino_chunk(w);
    size_t slot = wino_slot(w), head = cin;
    size_t th = (size_t)(w->g.oh + FV_WINO_M - 1) / FV_WINO_M;
    size_t tw = (size_t)(w->g.ow + FV_WINO_M - 1) / FV_WINO_M;
    size_t tiles = (size_t)w->g.n * th * tw, tasks = (tiles + chunk - 1) / chunk;
    FV_ASSERT(ws && ws_floats >= head + slot);
    int nthr = fv_omp_max_threads();
    if ((size_t)nthr > (ws_floats - head) / slot) nthr = (int)((ws_floats - head) / slot);
    float *zero = ws, *slots = ws + head;
    memset(zero, 0, cin * sizeof(float));
    int par = (double)tiles * FV_WINO_PLANES * (double)cin * (double)cout >= FV_PAR_MIN_WORK;
    (void)nthr; /* only read by the OpenMP clauses */
    (void)par;
    FV_OMP("omp parallel for schedule(dynamic) num_threads(nthr) if(par)")
    for (size_t t = 0; t < tasks; t++) {
        size_t t0 = t * chunk, rows = tiles - t0 < chunk ? tiles - t0 : chunk;
        float *v = slots + (size_t)fv_omp_thread_num() * slot; /* (rows, 36, Cin) */
        float *m = v + FV_WINO_PLANES * chunk * cin;            /* (rows, 36, Cout) */
        fv_wino_input(v, w->in, &w->g, t0, rows, zero);
        for (size_t xi = 0; xi < FV_WINO_PLANES; xi++) /* M_xi = V_xi . U_xi */
            fv_gemm(rows, w->cout, w->g.c, v + xi * cin, FV_WINO_PLANES * cin, u + xi * cin * cout,
                    cout, 0, m + xi * cout, FV_WINO_PLANES * cout, 0);
        fv_wino_output(w->out, m, &w->g, w->cout, t0, rows, w->bias, w->accumulate, w->relu,
                       w->gate);
    }
}

static void wino_fwd(const struct fv_layer *l, const struct fv_io *io, const struct conv_dims *d,
                     struct wino *w) {
    *w = (struct wino){.g = d->g, .cout = d->oc, .in = io->x[0],
                       .bias = l->p.conv.use_bias ? l->w[1] : NULL, .out = io->y, .accumulate = 0,
                       .relu = io->relu};
}

/* dx += conv(dy, W'), W' (3, 3, OC, C): the kernel rotated and transposed */
static void wino_bwd(const struct fv_io *io, const struct conv_dims *d, struct wino *w) {
    struct fv_conv_geom g = d->g;
    g.h = d->g.oh, g.w = d->g.ow, g.c = d->oc;
    g.oh = d->g.h, g.ow = d->g.w;
    g.pt = 2 - d->g.pt, g.pl = 2 - d->g.pl;
    *w = (struct wino){.g = g, .cout = d->g.c, .in = io->dy, .bias = NULL, .out = io->dx[0],
                       .accumulate = !io->dx_assign[0], .gate = io->dx_relu[0] ? io->x[0] : NULL};
}

/* ---- backward workspace ----
 *   skip flags (n bytes) | one slot per thread
 * A slot holds the band buffer of the dense pass, or for an image whose dy
 * has few nonzero channels (a filter objective: one channel per image), that
 * image's compacted dy (OH*OW, cnt), kernel (KH*KW*cnt, C) and band buffer. */
#define SPARSE_MAX_OC 1024 /* channels the sparse check handles (stack list) */

static int sparse_cap(int oc) { return oc >= 8 && oc <= SPARSE_MAX_OC ? oc / 4 : 0; }

struct bwd_ws {
    size_t flags, slot, total; /* floats */
    size_t sp_dy, sp_w;            /* sparse: compact dy, compact kernel (floats) */
    size_t wino;                   /* Winograd workspace of the dense pass, after flags */
};

static int bwd_ws_size(const struct conv_dims *d, const struct iconv *dense, int threads,
                       struct bwd_ws *b) {
    const struct fv_conv_geom *g = &d->g;
    int cap = sparse_cap(d->oc);
    size_t slot = iconv_band(dense);
    b->flags = ((size_t)g->n + sizeof(float) - 1) / sizeof(float);
    b->sp_dy = b->sp_w = 0;
    if (cap) {
        struct iconv sp = *dense;
        sp.c = cap;
        b->sp_dy = (size_t)g->oh * (size_t)g->ow * (size_t)cap;
        b->sp_w = (size_t)g->kh * (size_t)g->kw * (size_t)cap * (size_t)g->c;
        size_t need = b->sp_dy + b->sp_w + iconv_band(&sp);
        if (need > slot) slot = need;
    }
    b->slot = slot;
    size_t all;
    if (!fv_mul_size(slot, (size_t)threads, &all)) return 0;
    b->total = b->flags + all;
    b->wino = 0;
    if (d->wino) {
        struct fv_io io = {0};
        struct wino w;
        wino_bwd(&io, d, &w);
        if (!(b->wino = wino_ws(&w, threads))) return 0;
        if (b->flags + b->wino > b->total) b->total = b->flags + b->wino;
    }
    return b->total >= all;
}

/* The outputs ox0..ox1 whose tap kx reads a column inside the image
 * (ix = ox*SW - PL + kx*DW, 0 <= ix < W); 0 when there are none. */
static int tap_outputs(const struct fv_conv_geom *g, int kx, long long *ox0, long long *ox1) {
    long long off = (long long)g->pl - (long long)kx * g->dw;
    *ox0 = fv_ceil_div(off, g->sw), *ox1 = fv_floor_div(g->w - 1 + off, g->sw);
    if (*ox0 < 0) *ox0 = 0;
    if (*ox1 > g->ow - 1) *ox1 = g->ow - 1;
    return *ox0 <= *ox1;
}

/* Floats of one thread's slice in the gather backward: (OW, KW*cg). */
static size_t gather_slot(const struct conv_dims *d) {
    return (size_t)d->g.ow * (size_t)d->g.kw * (size_t)d->cg; /* <= OW * kdim: no overflow */
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
    struct conv_cache cc;
    conv_cache_layout(&d, io->grad, &cc);
    io->cache_floats = cc.total;
    size_t slots = (size_t)fv_omp_max_threads();
    if (!fv_mul_size((size_t)d.kdim, slots, &io->ws_floats)) /* a picked forward's filters */
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': workspace size overflows", l->name);
    if (d.direct) {
        /* the input is the patch matrix */
    } else if (d.wino) {
        struct wino w;
        wino_fwd(l, io, &d, &w);
        size_t need = wino_ws(&w, (int)slots);
        if (!need)
            return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': workspace size overflows", l->name);
        if (need > io->ws_floats) io->ws_floats = need;
    } else if (d.implicit) {
        struct iconv v;
        size_t need;
        conv2d_iconv_fwd(l, io, &d, &v);
        if (!fv_mul_size(iconv_band(&v), slots, &need))
            return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': workspace size overflows", l->name);
        if (need > io->ws_floats) io->ws_floats = need;
    } else {
        /* forward: one (tile_rows, kdim) im2col slice per thread */
        size_t tiles = (d.m + CONV_TILE - 1) / CONV_TILE;
        size_t n_slots = slots > tiles ? tiles : slots, slot, need;
        if (!fv_mul_size(d.tile_rows, (size_t)d.kdim, &slot) || !fv_mul_size(slot, n_slots, &need))
            return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': workspace size overflows", l->name);
        if (need > io->ws_floats) io->ws_floats = need;
    }
    if (!d.implicit && io->grad) { /* gather backward: one output row's taps of one kernel row per thread */
        size_t need;
        if (!fv_mul_size(gather_slot(&d), slots, &need))
            return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': workspace size overflows", l->name);
        if (need > io->ws_floats) io->ws_floats = need;
    }
    if (d.implicit) {
        /* backward: see bwd_ws_size */
        struct iconv v;
        struct bwd_ws b;
        conv2d_iconv_bwd(io, &d, NULL, &v);
        if (!bwd_ws_size(&d, &v, (int)slots, &b))
            return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': workspace size overflows", l->name);
        if (b.total > io->ws_floats) io->ws_floats = b.total;
    }
    return FV_OK;
}

static void conv2d_forward(const struct fv_layer *l, const struct fv_io *io) {
    struct conv_dims d;
    FV_ASSERT(conv2d_dims(l, io, &d, NULL) == FV_OK);
    if (io->pick) { /* one channel per image: see conv_pick.c */
        fv_conv_pick_fwd(io->y, io->x[0], l->w[0], l->p.conv.use_bias ? l->w[1] : NULL, &d.g, d.oc,
                         d.cg, io->pick, io->relu, io->relu_cap, io->ws, io->ws_floats);
        return;
    }
    if (d.wino && !d.direct) {
        struct wino w;
        struct conv_cache cc;
        conv_cache_layout(&d, io->grad, &cc);
        wino_fwd(l, io, &d, &w);
        wino_run(&w, io->cache + cc.uf, io->ws, io->ws_floats);
        if (io->relu_cap > 0.f) /* the Winograd output applied max(0, .); the cap (ReLU6) after */
            fv_bias_relu(io->y, NULL, (size_t)d.m, d.oc, 1, io->relu_cap);
        return;
    }
    if (d.implicit && !d.direct) {
        struct iconv v;
        conv2d_iconv_fwd(l, io, &d, &v);
        iconv_run(&v, NULL, io->ws, io->ws_floats);
        return;
    }
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
    FV_OMP("omp parallel for schedule(dynamic) num_threads(nthr) if(par)")
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
        fv_bias_relu(y + m0 * (size_t)d.oc, bias, rows, d.oc, io->relu, io->relu_cap);
    }
}

/* Image img's nonzero dy channels into list (at most cap of them); returns
 * their count, or -1 when there are more. dyi: (OH*OW, OC). */
static int dy_channels(const float *dyi, size_t pixels, int oc, int cap, int *list) {
    int on[SPARSE_MAX_OC] = {0};
    int cnt = 0;
    /* blocks of pixels OR-ed into on[] (a loop the compiler vectorizes), then
     * a count: dense gradients leave after the first block or two */
    for (size_t p0 = 0; p0 < pixels; p0 += 16) {
        size_t p1 = pixels - p0 < 16 ? pixels : p0 + 16;
        for (size_t p = p0; p < p1; p++) {
            const float *d = dyi + p * (size_t)oc;
            for (int o = 0; o < oc; o++) on[o] |= d[o] != 0.0f;
        }
        cnt = 0;
        for (int o = 0; o < oc; o++) cnt += on[o];
        if (cnt > cap) return -1;
    }
    for (int o = 0, k = 0; o < oc; o++)
        if (on[o]) list[k++] = o;
    return cnt;
}

/* Whether any image is flagged (skip may be NULL). */
static int skip_any(const unsigned char *skip, int n) {
    for (int i = 0; skip && i < n; i++)
        if (skip[i]) return 1;
    return 0;
}

/* dx[img] += conv(dy[img], W') using only the cnt channels in list. */
static void backward_sparse_image(const struct iconv *dense, const struct bwd_ws *b,
                                  const float *wt, size_t img, const int *list, int cnt,
                                  float *slot) {
    size_t pixels = (size_t)dense->h * (size_t)dense->w, C = (size_t)dense->nout;
    size_t OC = (size_t)dense->c, taps = (size_t)dense->kh * (size_t)dense->kw;
    float *dyc = slot;              /* (OH*OW, cnt) */
    float *wtc = slot + b->sp_dy;   /* (KH*KW, cnt, C) */
    float *band = wtc + b->sp_w;
    const float *dyi = dense->in + img * pixels * OC;
    for (size_t p = 0; p < pixels; p++)
        for (int i = 0; i < cnt; i++) dyc[p * (size_t)cnt + (size_t)i] = dyi[p * OC + (size_t)list[i]];
    for (size_t t = 0; t < taps; t++)
        for (int i = 0; i < cnt; i++)
            memcpy(wtc + (t * (size_t)cnt + (size_t)i) * C, wt + (t * OC + (size_t)list[i]) * C,
                   C * sizeof(float));
    struct iconv sp = *dense;
    sp.in = dyc, sp.n = 1, sp.c = cnt, sp.b = wtc;
    sp.out = dense->out + img * (size_t)dense->oh * (size_t)dense->ow * C;
    if (dense->gate) sp.gate = dense->gate + img * (size_t)dense->oh * (size_t)dense->ow * C;
    size_t tasks = iconv_tasks_per_img(&sp);
    for (size_t t = 0; t < tasks; t++) iconv_task(&sp, t, band);
}

/* dx += conv(dy, W'): see the top of the file. Images whose dy lives in at
 * most OC/4 channels run on those channels alone (compacted), the others
 * together in one dense pass. */
static void conv2d_backward_implicit(const struct fv_io *io,
                                     const struct conv_dims *d) {
    const struct fv_conv_geom *g = &d->g;
    size_t OC = (size_t)d->oc;
    struct conv_cache cc;
    FV_ASSERT(io->grad);
    conv_cache_layout(d, 1, &cc);
    const float *wt = io->cache + cc.wt; /* W' (KH, KW, OC, C) */
    struct iconv v;
    struct bwd_ws b;
    conv2d_iconv_bwd(io, d, wt, &v);
    int threads = fv_omp_max_threads();
    FV_ASSERT(bwd_ws_size(d, &v, 1, &b) && io->ws && io->ws_floats >= b.total);
    if ((size_t)threads > (io->ws_floats - b.flags) / b.slot)
        threads = (int)((io->ws_floats - b.flags) / b.slot);
    /* forward: y[oy][ox][o] += x[oy - PT + ky][ox - PL + kx][c] * w[ky][kx][c][o]
     * so:      dx[iy][ix][c] += sum dy[iy - PT' + ky'][ix - PL' + kx'][o] * W'[ky'][kx'][o][c] */
    unsigned char *skip = NULL;
    float *slots = io->ws + b.flags;
    int cap = sparse_cap(d->oc), any_dense = 1;
    if (cap) {
        skip = (unsigned char *)io->ws;
        size_t pixels = (size_t)g->oh * (size_t)g->ow;
        int par = (double)g->n * (double)pixels * (double)OC >= FV_PAR_MIN_WORK, dense_n = 0;
        (void)par;
        FV_OMP("omp parallel for schedule(dynamic) num_threads(threads) if(par) reduction(+:dense_n)")
        for (int img = 0; img < g->n; img++) {
            int list[SPARSE_MAX_OC];
            int cnt = dy_channels(io->dy + (size_t)img * pixels * OC, pixels, d->oc, cap, list);
            skip[img] = cnt >= 0;
            dense_n += cnt < 0;
            if (cnt == 0 && io->dx_assign[0]) /* no gradient reaches this image */
                memset(io->dx[0] + (size_t)img * g->h * g->w * (size_t)g->c, 0,
                       (size_t)g->h * g->w * (size_t)g->c * sizeof(float));
            if (cnt > 0)
                backward_sparse_image(&v, &b, wt, (size_t)img, list, cnt,
                                      slots + (size_t)fv_omp_thread_num() * b.slot);
        }
        any_dense = dense_n > 0;
    }
    if (!any_dense) return;
    if (d->wino && !skip_any(skip, g->n)) {
        struct wino wn;
        wino_bwd(io, d, &wn);
        wino_run(&wn, io->cache + cc.ub, io->ws + b.flags, io->ws_floats - b.flags);
        if (io->dx_relu[0] && io->dx_relu_cap[0] > 0.f) /* the output transform gated x > 0; the cap after */
            fv_relu_gate(io->dx[0], io->x[0], (size_t)g->n * g->h * g->w * (size_t)g->c, io->dx_relu_cap[0]);
    } else {
        iconv_run(&v, skip, slots, (size_t)threads * b.slot);
    }
}

static void conv2d_backward(const struct fv_layer *l, const struct fv_io *io) {
    float *dx = io->dx[0]; /* (n, H, W, C) */
    if (!dx) return;
    struct conv_dims d;
    FV_ASSERT(conv2d_dims(l, io, &d, NULL) == FV_OK);
    if (d.implicit) {
        conv2d_backward_implicit(io, &d);
        return;
    }
    const struct fv_conv_geom *g = &d.g;
    size_t n_dx = (size_t)g->n * (size_t)g->h * (size_t)g->w * (size_t)g->c;
    if (io->dx_assign[0]) memset(dx, 0, n_dx * sizeof(float)); /* the gather below adds */
    const float *w = l->w[0];  /* (KH, KW, cg, OC) */
    const float *dy = io->dy;  /* (n, OH, OW, OC) */
    size_t C = (size_t)g->c, OC = (size_t)d.oc;
    size_t in_rows = (size_t)g->n * (size_t)g->h;
    size_t slot = gather_slot(&d), kwc = (size_t)g->kw * (size_t)d.cg;
    int nthr = fv_omp_max_threads();
    FV_ASSERT(io->ws && io->ws_floats >= slot);
    if ((size_t)nthr > io->ws_floats / slot) nthr = (int)(io->ws_floats / slot);
    int par = (double)d.m * (double)d.kdim * (double)d.oc >= FV_PAR_MIN_WORK;
    (void)nthr; /* only read by the OpenMP clauses */
    (void)par;
    FV_OMP("omp parallel for schedule(dynamic) num_threads(nthr) if(par)")
    for (size_t r = 0; r < in_rows; r++) {
        size_t img = r / (size_t)g->h;
        int iy = (int)(r % (size_t)g->h);
        float *dxrow = dx + r * (size_t)g->w * C;                /* (W, C) */
        float *col = io->ws + (size_t)fv_omp_thread_num() * slot; /* (OW, KW*cg) */
        for (int ky = 0; ky < g->kh; ky++) {
            /* forward read input row iy = oy*SH - PT + ky*DH */
            int ty = iy + g->pt - ky * g->dh;
            if (ty < 0 || ty % g->sh != 0 || ty / g->sh >= g->oh) continue;
            int oy = ty / g->sh;
            const float *dyrow = /* (OW, OC) */
                dy + (img * (size_t)g->oh + (size_t)oy) * (size_t)g->ow * OC;
            /* ... and column ix = ox*SW - PL + kx*DW, for 0 <= ix < W, 0 <= ox < OW:
             * outputs ox0[kx]..ox1[kx] read tap kx, lo..hi any */
            long long lo = g->ow, hi = -1, ox0, ox1;
            for (int kx = 0; kx < g->kw; kx++)
                if (tap_outputs(g, kx, &ox0, &ox1)) {
                    if (ox0 < lo) lo = ox0;
                    if (ox1 > hi) hi = ox1;
                }
            if (lo > hi) continue;
            /* kernel row ky as (KW*cg, OC): rows (kx, c) */
            const float *wk = w + (size_t)ky * kwc * OC;
            for (int gi = 0; gi < d.groups; gi++) {
                /* forward: y[ox][gi*ocg + o] += x[ix][gi*cg + c] * w[ky][kx][c][gi*ocg + o], so
                 *   col[ox][kx*cg + c] = sum_o dy[ox][gi*ocg + o] * w[ky][kx][c][gi*ocg + o]
                 * (all of a kernel row's taps in one product: a 3-channel image's gradient
                 * would be 3 columns per tap), then dx[ix][gi*cg + c] += col[ox][kx*cg + c]
                 * tap by tap, in (ky, kx) order as before */
                fv_gemm((size_t)(hi - lo + 1), (int)kwc, d.ocg, dyrow + (size_t)lo * OC + (size_t)gi * (size_t)d.ocg,
                        OC, wk + (size_t)gi * (size_t)d.ocg, OC, 1, col, kwc, 0);
                for (int kx = 0; kx < g->kw; kx++) {
                    if (!tap_outputs(g, kx, &ox0, &ox1)) continue;
                    long long off = (long long)g->pl - (long long)kx * g->dw;
                    for (long long ox = ox0; ox <= ox1; ox++) {
                        float *dxp = dxrow + (size_t)(ox * g->sw - off) * C + (size_t)gi * (size_t)d.cg;
                        const float *cp = col + (size_t)(ox - lo) * kwc + (size_t)kx * (size_t)d.cg;
                        for (int c = 0; c < d.cg; c++) dxp[c] += cp[c];
                    }
                }
            }
        }
    }
    if (io->dx_relu[0]) /* x is a ReLU's output: dx through its derivative */
        fv_relu_gate(dx, io->x[0], n_dx, io->dx_relu_cap[0]);
}

static double conv2d_flops(const struct fv_layer *l, const struct fv_io *io) {
    struct conv_dims d;
    if (conv2d_dims(l, io, &d, NULL) != FV_OK) return 0;
    return 2.0 * (double)d.g.oh * (double)d.g.ow * (double)d.oc * (double)d.kdim;
}

const struct fv_layer_ops fv_conv2d_ops = {
    .kind = "conv2d",
    .need = FV_NEED_SPATIAL,
    .flags = FV_OPF_FILTERS | FV_OPF_KERNEL_IMAGE | FV_OPF_FOLDS_SCALE,
    .shape = conv2d_shape,
    .forward = conv2d_forward,
    .backward = conv2d_backward,
    .prepare = conv2d_prepare,
    .fuses_relu = 1,
    .assigns_dx = 1,
    .masks_dx = 1,
    .masks_dx_cap = 1,
    .picks = 1,
    .flops = conv2d_flops,
    .rows = fv_conv_rows,
    .backward_skips_x = 1,
};
