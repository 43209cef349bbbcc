/* Conv2D forward of one chosen output channel per image: all a filter
 * objective on this layer reads (one image per filter, `featviz filters`).
 * Each output value is one dot product over the kernel window, so the cost
 * is 1/OC of the full layer's, whatever the geometry. Runs along a kernel
 * row are contiguous in the (H, W, C) input and in the filter (KH, KW, cg)
 * when dilation is 1 and there is one group: one dot product per kernel row.
 * Bit-identical whatever the number of threads (one task per output row). */
#include "core/par.h"
#include "kernels/gemm.h"
#include "kernels/simd.h"
#include "layers/conv_impl.h"

/* acc (16 lanes) and tail += a . b over n floats */
static inline void dot_acc(fv_vf *acc, float *tail, const float *a, const float *b, size_t n) {
    size_t i = 0;
    for (; i + FV_VL <= n; i += FV_VL) {
        fv_vf va, vb;
        fv_vload(&va, a + i);
        fv_vload(&vb, b + i);
        *acc += va * vb;
    }
    for (; i < n; i++) *tail += a[i] * b[i];
}

/* Output row oy of image img, channel f, from the filter wf (KH, KW, cg). */
FV_CLONES static void pick_row(const struct fv_conv_geom *g, int oc, int cg, const float *x,
                               const float *wf, float bias, int img, int oy, int f, int relu,
                               float *y) {
    size_t C = (size_t)g->c;
    int c0 = f / (oc / (g->c / cg)) * cg; /* the first input channel of f's group */
    int runs = g->dw == 1 && cg == g->c;
    for (int ox = 0; ox < g->ow; ox++) {
        fv_vf acc = {0};
        float tail = 0.0f;
        for (int ky = 0; ky < g->kh; ky++) {
            int iy = oy * g->sh - g->pt + ky * g->dh;
            if (iy < 0 || iy >= g->h) continue; /* padding */
            const float *row = x + ((size_t)img * (size_t)g->h + (size_t)iy) * (size_t)g->w * C + (size_t)c0;
            const float *wrow = wf + (size_t)ky * (size_t)g->kw * (size_t)cg;
            int ix0 = ox * g->sw - g->pl; /* column of kx = 0 */
            if (runs) { /* kx with 0 <= ix0 + kx < W, one run */
                int kx0 = ix0 < 0 ? -ix0 : 0, kx1 = g->w - ix0 < g->kw ? g->w - ix0 : g->kw;
                if (kx0 < kx1)
                    dot_acc(&acc, &tail, row + (size_t)(ix0 + kx0) * C, wrow + (size_t)kx0 * C,
                            (size_t)(kx1 - kx0) * C);
                continue;
            }
            for (int kx = 0; kx < g->kw; kx++) {
                int ix = ix0 + kx * g->dw;
                if (ix >= 0 && ix < g->w)
                    dot_acc(&acc, &tail, row + (size_t)ix * C, wrow + (size_t)kx * (size_t)cg, (size_t)cg);
            }
        }
        float v = bias + tail;
        for (int k = 0; k < FV_VL; k++) v += acc[k];
        y[(((size_t)img * (size_t)g->oh + (size_t)oy) * (size_t)g->ow + (size_t)ox) * (size_t)oc + (size_t)f] =
            relu && !(v > 0.0f) ? 0.0f : v;
    }
}

void fv_conv_pick_fwd(float *y, const float *x, const float *w, const float *bias,
                      const struct fv_conv_geom *g, int oc, int cg, const int *pick, int relu,
                      float *ws, size_t ws_floats) {
    size_t kdim = (size_t)g->kh * (size_t)g->kw * (size_t)cg;
    size_t tasks = (size_t)g->n * (size_t)g->oh;
    int threads = fv_omp_max_threads();
    FV_ASSERT(ws && ws_floats >= kdim);
    if ((size_t)threads > ws_floats / kdim) threads = (int)(ws_floats / kdim);
    int par = (double)tasks * (double)g->ow * (double)kdim >= FV_PAR_MIN_WORK;
    (void)par; /* only read by the OpenMP clause */
    FV_OMP("omp parallel num_threads(threads) if(par)")
    {
        float *wf = ws + (size_t)fv_omp_thread_num() * kdim; /* filter f as (KH, KW, cg) */
        int have = -1;                                      /* the filter wf holds */
        FV_OMP("omp for schedule(static)")
        for (size_t t = 0; t < tasks; t++) {
            int img = (int)(t / (size_t)g->oh), oy = (int)(t % (size_t)g->oh), f = pick[img];
            if (f != have)
                for (size_t k = 0; k < kdim; k++) wf[k] = w[k * (size_t)oc + (size_t)f];
            have = f;
            pick_row(g, oc, cg, x, wf, bias ? bias[f] : 0.0f, img, oy, f, relu, y);
        }
    }
}
