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

/* acc[j] (16 lanes) and tail[j] += a_j . b over n floats, for nb (1 or
 * PICK_BLOCK) inputs a_j = a + j * step. The sums live in local vectors
 * during the loop: indexed through the array they stayed in memory, each
 * step waiting on the store before it. */
static inline void dot_acc(fv_vf *acc, float *tail, const float *a, size_t step, int nb, const float *b,
                           size_t n) {
    size_t i = 0;
    if (nb == 1) {
        fv_vf s = acc[0];
        for (; i + FV_VL <= n; i += FV_VL) {
            fv_vf va, vb;
            fv_vload(&vb, b + i);
            fv_vload(&va, a + i);
            s += va * vb;
        }
        acc[0] = s;
        for (; i < n; i++) tail[0] += a[i] * b[i];
        return;
    }
    _Static_assert(PICK_BLOCK == 4, "four sums below");
    const float *a1 = a + step, *a2 = a + 2 * step, *a3 = a + 3 * step;
    fv_vf s0 = acc[0], s1 = acc[1], s2 = acc[2], s3 = acc[3];
    for (; i + FV_VL <= n; i += FV_VL) {
        fv_vf vb, v0, v1, v2, v3;
        fv_vload(&vb, b + i);
        fv_vload(&v0, a + i);
        fv_vload(&v1, a1 + i);
        fv_vload(&v2, a2 + i);
        fv_vload(&v3, a3 + i);
        s0 += v0 * vb;
        s1 += v1 * vb;
        s2 += v2 * vb;
        s3 += v3 * vb;
    }
    acc[0] = s0, acc[1] = s1, acc[2] = s2, acc[3] = s3;
    for (; i < n; i++) {
        tail[0] += a[i] * b[i];
        tail[1] += a1[i] * b[i];
        tail[2] += a2[i] * b[i];
        tail[3] += a3[i] * b[i];
    }
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
            float t[FV_VL]; /* the lanes summed as a tree (16 dependent adds took longer than the products) */
            fv_vstore(t, &acc[j]);
            for (int w = FV_VL / 2; w >= 1; w /= 2)
                for (int k = 0; k < w; k++) t[k] += t[k + w];
            float v = bias + tail[j] + t[0];
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
