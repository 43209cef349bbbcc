/* MaxPooling2D and AveragePooling2D on (H,W,C) images.
 *
 * Output size as in Keras/TensorFlow:
 *   'valid': OH = floor((H - PH) / SH) + 1
 *   'same' : OH = ceil(H / SH), total pad = max((OH-1)*SH + PH - H, 0),
 *            top = total/2, the odd one extra at the bottom (same for left/right).
 * Max pooling ignores the padding (pads are -inf); average pooling divides by
 * the number of real pixels in the window (TF excludes pads from the count).
 * Max backward routes dy to the first maximum in scan order (row, then column).
 *
 * x (n,H,W,C)  y (n,OH,OW,C)
 */
#include <math.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "kernels/simd.h"
#include "layers/layers.h"

struct pool_geom {
    int H, W, C, OH, OW;
    int PH, PW, SH, SW;
    int top, left;  /* padding before the first row/column */
    /* count_include_pad: the average divides by the window clipped to rows
     * [divisor_h0, divisor_h1) and columns [divisor_w0, divisor_w1) (all 0: real pixels) */
    int divisor_h0, divisor_h1, divisor_w0, divisor_w1;
};

/* Pixels the average of output (oy, ox) divides by. */
static int pool_divisor(const struct pool_geom *g, int oy, int ox, int y0, int y1, int x0, int x1) {
    if (g->divisor_h1 == 0) return (y1 - y0) * (x1 - x0); /* real pixels only */
    int ys = oy * g->SH - g->top, xs = ox * g->SW - g->left;
    int a0 = ys < g->divisor_h0 ? g->divisor_h0 : ys, a1 = ys + g->PH > g->divisor_h1 ? g->divisor_h1 : ys + g->PH;
    int b0 = xs < g->divisor_w0 ? g->divisor_w0 : xs, b1 = xs + g->PW > g->divisor_w1 ? g->divisor_w1 : xs + g->PW;
    return (a1 - a0) * (b1 - b0);
}

static void pool_geom(const struct fv_layer *l, const struct fv_io *io, struct pool_geom *g) {
    const struct fv_pool_params *p = &l->p.pool;
    g->H = io->in[0].d[0];
    g->W = io->in[0].d[1];
    g->C = io->in[0].d[2];
    g->PH = p->ph;
    g->PW = p->pw;
    g->SH = p->sh;
    g->SW = p->sw;
    g->divisor_h0 = g->divisor_h1 = g->divisor_w0 = g->divisor_w1 = 0;
    if (p->pad_explicit) { /* ONNX/PyTorch: explicit pads, optional ceil_mode */
        int eh = g->H + p->pad_t + p->pad_b - g->PH, ew = g->W + p->pad_l + p->pad_r - g->PW;
        g->OH = eh < 0 ? 0 : (p->ceil_mode ? (eh + g->SH - 1) / g->SH : eh / g->SH) + 1;
        g->OW = ew < 0 ? 0 : (p->ceil_mode ? (ew + g->SW - 1) / g->SW : ew / g->SW) + 1;
        /* a last window that would start in the bottom/right padding is dropped */
        if (p->ceil_mode && g->OH > 1 && (g->OH - 1) * g->SH >= g->H + p->pad_t) g->OH--;
        if (p->ceil_mode && g->OW > 1 && (g->OW - 1) * g->SW >= g->W + p->pad_l) g->OW--;
        g->top = p->pad_t;
        g->left = p->pad_l;
        if (p->count_include_pad) { /* count the window inside the padded image */
            g->divisor_h0 = -p->pad_t, g->divisor_h1 = g->H + p->pad_b;
            g->divisor_w0 = -p->pad_l, g->divisor_w1 = g->W + p->pad_r;
        }
    } else if (p->same) {
        g->OH = (g->H + g->SH - 1) / g->SH;
        g->OW = (g->W + g->SW - 1) / g->SW;
        int th = (g->OH - 1) * g->SH + g->PH - g->H;
        int tw = (g->OW - 1) * g->SW + g->PW - g->W;
        g->top = th > 0 ? th / 2 : 0;
        g->left = tw > 0 ? tw / 2 : 0;
    } else {
        g->OH = (g->H - g->PH) / g->SH + 1;
        g->OW = (g->W - g->PW) / g->SW + 1;
        g->top = g->left = 0;
    }
}

/* Window of output (oy,ox) clipped to the image: rows [*y0,*y1), cols [*x0,*x1). */
static void pool_window(const struct pool_geom *g, int oy, int ox, int *y0, int *y1, int *x0,
                        int *x1) {
    int ys = oy * g->SH - g->top, xs = ox * g->SW - g->left;
    *y0 = ys < 0 ? 0 : ys;
    *x0 = xs < 0 ? 0 : xs;
    *y1 = ys + g->PH > g->H ? g->H : ys + g->PH;
    *x1 = xs + g->PW > g->W ? g->W : xs + g->PW;
}

static int pool_shape(const struct fv_layer *l, struct fv_io *io, struct fv_error *err) {
    const struct fv_pool_params *p = &l->p.pool;
    const struct fv_shape *in = &io->in[0];
    if (io->n_in != 1)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': expects 1 input, got %d", l->name,
                            io->n_in);
    if (in->rank != 3)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': pooling needs (H,W,C) input, got rank %d",
                            l->name, in->rank);
    if (p->ph < 1 || p->pw < 1 || p->sh < 1 || p->sw < 1)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': bad pool %dx%d / strides %dx%d",
                            l->name, p->ph, p->pw, p->sh, p->sw);
    if (in->d[0] < 1 || in->d[1] < 1 || in->d[2] < 1)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': empty input %dx%dx%d", l->name,
                            in->d[0], in->d[1], in->d[2]);
    if (!p->same && !p->pad_explicit && (in->d[0] < p->ph || in->d[1] < p->pw))
        return fv_error_set(err, FV_ERR_SHAPE,
                            "layer '%s': input %dx%d smaller than pool %dx%d with 'valid' padding",
                            l->name, in->d[0], in->d[1], p->ph, p->pw);
    struct pool_geom g;
    pool_geom(l, io, &g);
    io->out.rank = 3;
    io->out.d[0] = g.OH;
    io->out.d[1] = g.OW;
    io->out.d[2] = g.C;
    io->ws_floats = 0;
    return FV_OK;
}

static double pool_flops(const struct fv_layer *l, const struct fv_io *io) {
    struct pool_geom g;
    pool_geom(l, io, &g);
    return (double)g.OH * g.OW * g.C * g.PH * g.PW;
}

/* ---- max ---- */

/* Rows of output run in parallel when windows do not overlap vertically (each
 * dx row then belongs to one output row); otherwise whole images do. Either
 * way every dx element receives its contributions in the same (oy, ox) order. */
static int rows_disjoint(const struct pool_geom *g) { return g->SH >= g->PH; }

#define POOL_CH 64 /* channels per chunk in backward */

/* Output row oy of image xb (H, W, C) into yr (OW, C). */
FV_BODY void maxpool_forward_row_body(const struct pool_geom *g, const float *xb, float *yr,
                                      int oy) {
    for (int ox = 0; ox < g->OW; ox++) {
        int y0, y1, x0, x1;
        pool_window(g, oy, ox, &y0, &y1, &x0, &x1);
        float *restrict yo = yr + (size_t)ox * g->C;
        for (int c = 0; c < g->C; c++) yo[c] = -INFINITY;
        for (int iy = y0; iy < y1; iy++)
            for (int ix = x0; ix < x1; ix++) {
                const float *restrict xi = xb + ((size_t)iy * g->W + ix) * g->C;
                for (int c = 0; c < g->C; c++) yo[c] = xi[c] > yo[c] ? xi[c] : yo[c];
            }
    }
}
FV_ISA_VERSIONS(static, maxpool_forward_row, (const struct pool_geom *g, const float *xb, float *yr, int oy),
                (g, xb, yr, oy))

static void maxpool_forward(const struct fv_layer *l, const struct fv_io *io) {
    struct pool_geom g;
    pool_geom(l, io, &g);
    const float *x = io->x[0]; /* (n,H,W,C) */
    float *y = io->y;          /* (n,OH,OW,C) */
    int rows = io->n * g.OH;
    int par = (double)rows * g.OW * g.C * g.PH * g.PW >= 65536.0;
    (void)par;
#pragma omp parallel for schedule(dynamic, 4) if (par)
    for (int r = 0; r < rows; r++)
        maxpool_forward_row(&g, x + (size_t)(r / g.OH) * g.H * g.W * g.C,
                            y + (size_t)r * g.OW * g.C, r % g.OH);
}

/* One window's channels c0..c0+nc: sel[c] = scan index of the first maximum
 * (as a float); then dx[that pixel][c] += dy[c]. The window's pixels are
 * px[0..cnt) (pointers to channel c0 of x) and pd[0..cnt) (same pixels in dx). */
static void route_max(int cnt, const float *const *px, float *const *pd, const float *dyc, int nc,
                      float *sel, float *best) {
    int c = 0;
#ifdef __SSE2__
    for (; c + 4 <= nc; c += 4) {
        __m128 b = _mm_set1_ps(-INFINITY), s = _mm_setzero_ps();
        for (int k = 0; k < cnt; k++) {
            __m128 v = _mm_loadu_ps(px[k] + c);
            __m128 take = _mm_cmpgt_ps(v, b); /* false for NaN: as `if (v > best)` */
            s = _mm_or_ps(_mm_and_ps(take, _mm_set1_ps((float)k)), _mm_andnot_ps(take, s));
            b = _mm_or_ps(_mm_and_ps(take, v), _mm_andnot_ps(take, b));
        }
        __m128 d = _mm_loadu_ps(dyc + c);
        for (int k = 0; k < cnt; k++) {
            __m128 hit = _mm_cmpeq_ps(s, _mm_set1_ps((float)k));
            _mm_storeu_ps(pd[k] + c, _mm_add_ps(_mm_loadu_ps(pd[k] + c), _mm_and_ps(hit, d)));
        }
    }
#endif
    for (int j = c; j < nc; j++) best[j] = -INFINITY, sel[j] = 0.0f;
    for (int k = 0; k < cnt; k++)
        for (int j = c; j < nc; j++)
            if (px[k][j] > best[j]) best[j] = px[k][j], sel[j] = (float)k;
    for (int k = 0; k < cnt; k++)
        for (int j = c; j < nc; j++) pd[k][j] += sel[j] == (float)k ? dyc[j] : 0.0f;
}

#define POOL_WIN 64 /* windows up to this many pixels go through route_max */

/* dx += dy routed to the first maximum of each window, for output row oy of image b. */
static void maxpool_backward_row(const struct pool_geom *g, const float *xb, const float *dyr,
                                 float *dxb, int oy) {
    float best[POOL_CH], sel[POOL_CH];
    const float *px[POOL_WIN];
    float *pd[POOL_WIN];
    for (int ox = 0; ox < g->OW; ox++) {
        int y0, y1, x0, x1;
        pool_window(g, oy, ox, &y0, &y1, &x0, &x1);
        const float *dyo = dyr + (size_t)ox * g->C;
        int cnt = (y1 - y0) * (x1 - x0);
        if (cnt <= POOL_WIN) {
            int k = 0;
            for (int iy = y0; iy < y1; iy++)
                for (int ix = x0; ix < x1; ix++, k++) {
                    size_t off = ((size_t)iy * g->W + ix) * g->C;
                    px[k] = xb + off;
                    pd[k] = dxb + off;
                }
            for (int c0 = 0; c0 < g->C; c0 += POOL_CH) {
                const float *pxc[POOL_WIN];
                float *pdc[POOL_WIN];
                for (int j = 0; j < cnt; j++) pxc[j] = px[j] + c0, pdc[j] = pd[j] + c0;
                route_max(cnt, pxc, pdc, dyo + c0, g->C - c0 < POOL_CH ? g->C - c0 : POOL_CH,
                          sel, best);
            }
            continue;
        }
        for (int c = 0; c < g->C; c++) { /* huge windows: one channel at a time */
            size_t arg = (size_t)y0 * g->W + x0;
            float bv = -INFINITY;
            for (int iy = y0; iy < y1; iy++)
                for (int ix = x0; ix < x1; ix++) {
                    size_t k = (size_t)iy * g->W + ix;
                    if (xb[k * g->C + c] > bv) bv = xb[k * g->C + c], arg = k;
                }
            dxb[arg * g->C + c] += dyo[c];
        }
    }
}

/* Windows that tile the image from its top-left corner (stride = pool, no
 * padding): every input pixel lies in at most one window. */
static int windows_tile(const struct pool_geom *g) {
    return g->SH == g->PH && g->SW == g->PW && g->top == 0 && g->left == 0 &&
           g->OH * g->PH <= g->H && g->OW * g->PW <= g->W && g->PH * g->PW <= POOL_WIN;
}


/* One window, channels 0..nc-1: dx of its first maximum = dy, of its other
 * pixels 0 (the windows tile the image: nothing else writes them). relu: x is
 * a ReLU's output, dx goes through its derivative: 0 where the maximum is 0. */
FV_BODY void assign_max_body(int cnt, const float *const *px, float *const *pd,
                             const float *dyc, int nc, int relu) {
    int c = 0;
    /* 8 channels at a time in 8-lane vectors (one AVX2 register, half an
     * AVX-512 one, two SSE ones): gcc would not vectorize the loop over the
     * lanes (selects between an index and a value), nor compare 16-lane types
     * without 512-bit registers (simd.h). The first maximum is the first pixel
     * equal to the largest value; `left` holds dy until that pixel took it
     * (all NaN: nobody did, and pixel 0 takes it, as the scalar loop does). */
    typedef float v8f __attribute__((vector_size(32)));
    typedef int v8i __attribute__((vector_size(32)));
#define SEL(m, a, b) ((v8f)(((v8i)(a) & (m)) | ((v8i)(b) & ~(m))))
    const v8f zero = {0};
    for (; c + 8 <= nc; c += 8) {
        v8f best = zero - INFINITY, x, left, o;
        for (int k = 0; k < cnt; k++) {
            memcpy(&x, px[k] + c, sizeof x);
            best = SEL(x > best, x, best); /* false for NaN */
        }
        memcpy(&left, dyc + c, sizeof left);
        if (relu) left = SEL(best > zero, left, zero);
        for (int k = 0; k < cnt; k++) {
            memcpy(&x, px[k] + c, sizeof x);
            v8i m = x == best;
            o = SEL(m, left, zero);
            left = SEL(m, zero, left);
            memcpy(pd[k] + c, &o, sizeof o);
        }
        memcpy(&o, pd[0] + c, sizeof o);
        o = SEL(left != zero, left, o);
        memcpy(pd[0] + c, &o, sizeof o);
    }
#undef SEL
    for (; c < nc; c++) {
        float bv = -INFINITY;
        int sk = 0;
        for (int k = 0; k < cnt; k++)
            if (px[k][c] > bv) bv = px[k][c], sk = k;
        for (int k = 0; k < cnt; k++) pd[k][c] = k == sk && (!relu || bv > 0.0f) ? dyc[c] : 0.0f;
    }
}
FV_ISA_VERSIONS(static, assign_max, (int cnt, const float *const *px, float *const *pd, const float *dyc, int nc, int relu),
                (cnt, px, pd, dyc, nc, relu))

/* dx = dy routed to the first maximum of each window, for windows that tile
 * the image; the pixels right of and below the last windows get 0. */
static void maxpool_backward_assign(const struct pool_geom *g, int n, const float *x,
                                    const float *dy, float *dx, int relu) {
    size_t in_img = (size_t)g->H * g->W * g->C, C = (size_t)g->C;
    int rows = n * g->OH, cnt = g->PH * g->PW;
    int par = (double)n * g->OH * g->OW * g->C * cnt >= 65536.0;
    (void)par;
#pragma omp parallel for schedule(dynamic, 4) if (par)
    for (int r = 0; r < rows; r++) {
        int b = r / g->OH, oy = r % g->OH;
        const float *xb = x + (size_t)b * in_img;
        float *dxb = dx + (size_t)b * in_img;
        for (int ox = 0; ox < g->OW; ox++) {
            const float *px[POOL_WIN];
            float *pd[POOL_WIN];
            for (int k = 0; k < cnt; k++) {
                size_t off = ((size_t)(oy * g->PH + k / g->PW) * g->W + (size_t)(ox * g->PW + k % g->PW)) * C;
                px[k] = xb + off, pd[k] = dxb + off;
            }
            const float *dyo = dy + ((size_t)r * g->OW + ox) * C;
            for (size_t c0 = 0; c0 < C; c0 += POOL_CH) {
                const float *pxc[POOL_WIN];
                float *pdc[POOL_WIN];
                for (int k = 0; k < cnt; k++) pxc[k] = px[k] + c0, pdc[k] = pd[k] + c0;
                assign_max(cnt, pxc, pdc, dyo + c0, C - c0 < POOL_CH ? (int)(C - c0) : POOL_CH, relu);
            }
        }
        /* columns right of the last window, in this output row's input rows */
        for (int iy = oy * g->PH; iy < (oy + 1) * g->PH; iy++) {
            size_t from = ((size_t)iy * g->W + (size_t)(g->OW * g->PW)) * C;
            memset(dxb + from, 0, (size_t)(g->W - g->OW * g->PW) * C * sizeof(float));
        }
        if (oy == g->OH - 1) /* rows below the last window */
            memset(dxb + (size_t)(g->OH * g->PH) * g->W * C, 0,
                   (size_t)(g->H - g->OH * g->PH) * g->W * C * sizeof(float));
    }
}

static void maxpool_backward(const struct fv_layer *l, const struct fv_io *io) {
    if (!io->dx[0]) return;
    struct pool_geom g;
    pool_geom(l, io, &g);
    const float *x = io->x[0];   /* (n,H,W,C) */
    const float *dy = io->dy;    /* (n,OH,OW,C) */
    float *dx = io->dx[0];       /* (n,H,W,C) */
    size_t in_img = (size_t)g.H * g.W * g.C, out_row = (size_t)g.OW * g.C;
    if (io->dx_assign[0] && windows_tile(&g)) {
        maxpool_backward_assign(&g, io->n, x, dy, dx, io->dx_relu[0]);
        return;
    }
    if (io->dx_assign[0]) memset(dx, 0, (size_t)io->n * in_img * sizeof(float));
    int par = (double)io->n * g.OH * g.OW * g.C * g.PH * g.PW >= 65536.0;
    (void)par;
    if (rows_disjoint(&g)) {
        int rows = io->n * g.OH;
#pragma omp parallel for schedule(dynamic, 4) if (par)
        for (int r = 0; r < rows; r++) {
            int b = r / g.OH, oy = r % g.OH;
            maxpool_backward_row(&g, x + (size_t)b * in_img, dy + (size_t)r * out_row,
                                 dx + (size_t)b * in_img, oy);
        }
    } else {
#pragma omp parallel for schedule(dynamic, 4) if (par)
        for (int b = 0; b < io->n; b++)
            for (int oy = 0; oy < g.OH; oy++)
                maxpool_backward_row(&g, x + (size_t)b * in_img,
                                     dy + ((size_t)b * g.OH + oy) * out_row,
                                     dx + (size_t)b * in_img, oy);
    }
    if (io->dx_relu[0]) { /* x is a ReLU's output: dx through its derivative */
        size_t all = (size_t)io->n * in_img;
        for (size_t i = 0; i < all; i++) dx[i] = x[i] > 0.0f ? dx[i] : 0.0f;
    }
}

/* ---- average ---- */

static void avgpool_forward(const struct fv_layer *l, const struct fv_io *io) {
    struct pool_geom g;
    pool_geom(l, io, &g);
    const float *x = io->x[0]; /* (n,H,W,C) */
    float *y = io->y;          /* (n,OH,OW,C) */
    int rows = io->n * g.OH;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        int b = r / g.OH, oy = r % g.OH;
        const float *xb = x + (size_t)b * g.H * g.W * g.C;
        for (int ox = 0; ox < g.OW; ox++) {
            int y0, y1, x0, x1;
            pool_window(&g, oy, ox, &y0, &y1, &x0, &x1);
            float *yo = y + (((size_t)b * g.OH + oy) * g.OW + ox) * g.C;
            for (int c = 0; c < g.C; c++) yo[c] = 0.f;
            for (int iy = y0; iy < y1; iy++)
                for (int ix = x0; ix < x1; ix++) {
                    const float *xi = xb + ((size_t)iy * g.W + ix) * g.C;
                    for (int c = 0; c < g.C; c++) yo[c] += xi[c];
                }
            float inv = 1.f / (float)pool_divisor(&g, oy, ox, y0, y1, x0, x1);
            for (int c = 0; c < g.C; c++) yo[c] *= inv;
        }
    }
}

static void avgpool_backward(const struct fv_layer *l, const struct fv_io *io) {
    if (!io->dx[0]) return;
    struct pool_geom g;
    pool_geom(l, io, &g);
    const float *dy = io->dy;  /* (n,OH,OW,C) */
    float *dx = io->dx[0];     /* (n,H,W,C) */
#pragma omp parallel for schedule(static)
    for (int b = 0; b < io->n; b++) {  /* windows overlap: parallel over images */
        float *dxb = dx + (size_t)b * g.H * g.W * g.C;
        for (int oy = 0; oy < g.OH; oy++)
            for (int ox = 0; ox < g.OW; ox++) {
                int y0, y1, x0, x1;
                pool_window(&g, oy, ox, &y0, &y1, &x0, &x1);
                /* forward: yo[c] = sum_window xi[c] / count */
                float inv = 1.f / (float)pool_divisor(&g, oy, ox, y0, y1, x0, x1);
                const float *dyo = dy + (((size_t)b * g.OH + oy) * g.OW + ox) * g.C;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) {
                        float *dxi = dxb + ((size_t)iy * g.W + ix) * g.C;
                        for (int c = 0; c < g.C; c++) dxi[c] += dyo[c] * inv;
                    }
            }
    }
}

static int pool_rows(const struct fv_layer *l, const struct fv_io *io, struct fv_rows *r) {
    struct pool_geom g;
    pool_geom(l, io, &g);
    r->stride = g.SH, r->pad = g.top, r->extent = g.PH;
    return 1;
}

const struct fv_layer_ops fv_maxpool_ops = {
    .kind = "maxpool2d",
    .need = FV_NEED_SPATIAL,
    .shape = pool_shape,
    .forward = maxpool_forward,
    .backward = maxpool_backward,
    .assigns_dx = 1,
    .masks_dx = 1,
    .flops = pool_flops,
    .rows = pool_rows,
};

const struct fv_layer_ops fv_avgpool_ops = {
    .kind = "avgpool2d",
    .need = FV_NEED_SPATIAL,
    .shape = pool_shape,
    .forward = avgpool_forward,
    .backward = avgpool_backward,
    .flops = pool_flops,
    .rows = pool_rows,
};
