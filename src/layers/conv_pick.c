/* Conv2D forward of one chosen output channel per image: all a filter
 * objective on this layer reads (one image per filter, `featviz filters`),
 * so it computes 1/OC of the layer (the backward pass, conv2d.c, finds the
 * one channel of dy by itself).
 * Each output value is a dot product over the kernel window; runs along a
 * kernel row are contiguous in the (H, W, C) input and in the filter
 * (KH, KW, cg) when dilation is 1 and there is one group. Outputs whose
 * window lies inside the image go PICK_BLOCK at a time, so that their sums
 * run side by side instead of waiting on each other.
 * Bit-identical whatever the number of threads (each output row on one
 * thread, in a fixed order). */
#include "core/par.h"
#include "kernels/gemm.h"
#include "kernels/simd.h"
#include "layers/conv_impl.h"

#define PICK_BLOCK 4

/* The filter f as (KH, KW, cg) from the kernel (KH, KW, cg, OC). */
static void gather_filter(const float *w, size_t kdim, int oc, int f, float *wf) {
    for (size_t k = 0; k < kdim; k++) wf[k] = w[k * (size_t)oc + (size_t)f];
}

/* acc[j] (16 lanes) and tail[j] += a_j . b over n floats, for nb inputs a_j = a + j * step */
static inline void dot_acc(fv_vf *acc, float *tail, const float *a, size_t step, int nb, const float *b,
                           size_t n) {
    size_t i = 0;
    for (; i + FV_VL <= n; i += FV_VL) {
        fv_vf vb;
        fv_vload(&vb, b + i);
        for (int j = 0; j < nb; j++) {
            fv_vf va;
            fv_vload(&va, a + (size_t)j * step + i);
            acc[j] += va * vb;
        }
    }
    for (; i < n; i++)
        for (int j = 0; j < nb; j++) tail[j] += a[(size_t)j * step + i] * b[i];
}

/* Output row oy of image img, channel f, from the filter wf (KH, KW, cg). */
FV_BODY void pick_row_body(const struct fv_conv_geom *g, int oc, int cg, const float *x,
                           const float *wf, float bias, int img, int oy, int f, int relu, float cap,
                           float *y) {
    size_t C = (size_t)g->c;
    int c0 = f / (oc / (g->c / cg)) * cg; /* the first input channel of f's group */
    int runs = g->dw == 1 && cg == g->c;
    for (int ox = 0; ox < g->ow;) {
        /* PICK_BLOCK outputs whose windows lie inside the image columns: whole runs */
        int ix_first = ox * g->sw - g->pl, ix_last = (ox + PICK_BLOCK - 1) * g->sw - g->pl;
        int nb = runs && ox + PICK_BLOCK <= g->ow && ix_first >= 0 && ix_last + g->kw <= g->w ? PICK_BLOCK : 1;
        fv_vf acc[PICK_BLOCK] = {{0}};
        float tail[PICK_BLOCK] = {0};
        for (int ky = 0; ky < g->kh; ky++) {
            int iy = oy * g->sh - g->pt + ky * g->dh;
            if (iy < 0 || iy >= g->h) continue; /* padding */
            const float *row = x + ((size_t)img * (size_t)g->h + (size_t)iy) * (size_t)g->w * C + (size_t)c0;
            const float *wrow = wf + (size_t)ky * (size_t)g->kw * (size_t)cg;
            if (nb > 1) {
                dot_acc(acc, tail, row + (size_t)ix_first * C, (size_t)g->sw * C, PICK_BLOCK, wrow, (size_t)g->kw * C);
            } else if (runs) { /* kx with 0 <= ix_first + kx < W, one run */
                int kx0 = ix_first < 0 ? -ix_first : 0, kx1 = g->w - ix_first < g->kw ? g->w - ix_first : g->kw;
                if (kx0 < kx1)
                    dot_acc(acc, tail, row + (size_t)(ix_first + kx0) * C, 0, 1, wrow + (size_t)kx0 * C,
                            (size_t)(kx1 - kx0) * C);
            } else {
                for (int kx = 0; kx < g->kw; kx++) {
                    int ix = ix_first + kx * g->dw;
                    if (ix >= 0 && ix < g->w)
                        dot_acc(acc, tail, row + (size_t)ix * C, 0, 1, wrow + (size_t)kx * (size_t)cg, (size_t)cg);
                }
            }
        }
        for (int j = 0; j < nb; j++) {
            float v = bias + tail[j];
            for (int k = 0; k < FV_VL; k++) v += acc[j][k];
            y[(((size_t)img * (size_t)g->oh + (size_t)oy) * (size_t)g->ow + (size_t)(ox + j)) * (size_t)oc + (size_t)f] =
                !relu ? v : v > 0.0f ? (cap > 0.0f && !(v < cap) ? cap : v) : 0.0f;
        }
        ox += nb;
    }
}
FV_ISA_VERSIONS(static, pick_row, (const struct fv_conv_geom *g, int oc, int cg, const float *x, const float *wf, float bias, int img, int oy, int f, int relu, float cap, float *y),
                (g, oc, cg, x, wf, bias, img, oy, f, relu, cap, y))

void fv_conv_pick_fwd(float *y, const float *x, const float *w, const float *bias,
                      const struct fv_conv_geom *g, int oc, int cg, const int *pick, int relu,
                      float cap, float *ws, size_t ws_floats) {
    size_t kdim = (size_t)g->kh * (size_t)g->kw * (size_t)cg;
    size_t tasks = (size_t)g->n * (size_t)g->oh;
    int threads = fv_omp_max_threads();
    FV_ASSERT(ws && ws_floats >= kdim);
    if ((size_t)threads > ws_floats / kdim) threads = (int)(ws_floats / kdim);
    int par = (double)tasks * (double)g->ow * (double)kdim >= FV_PAR_MIN_WORK;
    (void)par; /* only read by the OpenMP clause */
    FV_OMP("omp parallel num_threads(threads) if(par)")
    {
        float *wf = ws + (size_t)fv_omp_thread_num() * kdim;
        int have = -1; /* the filter wf holds */
        FV_OMP("omp for schedule(static)")
        for (size_t t = 0; t < tasks; t++) {
            int img = (int)(t / (size_t)g->oh), oy = (int)(t % (size_t)g->oh), f = pick[img];
            if (f != have) gather_filter(w, kdim, oc, f, wf);
            have = f;
            pick_row(g, oc, cg, x, wf, bias ? bias[f] : 0.0f, img, oy, f, relu, cap, y);
        }
    }
}
