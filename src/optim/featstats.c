/* DeepInversion's feature-statistics prior (Yin et al., CVPR 2020), per
 * image: the per-channel mean and variance of a layer's activations over an
 * image's positions, pulled towards those of real images. */
#include <math.h>

#include "featviz/optim.h"

/* ||x||_2 in double */
static double norm2(const double *x, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i] * x[i];
    return sqrt(s);
}

void fv_reg_featstats(const float *a, int n, size_t hw, int ch, const float *mu_r, const float *var_r,
                      const float *weight, float *da, float *values, double *ws) {
    double *mu = ws, *var = ws + ch, *dm = ws + 2 * (size_t)ch, *dvv = ws + 3 * (size_t)ch;
    double nm = 0, nv = 0; /* the reference norms: each term is relative, so layers weigh alike */
    for (int k = 0; k < ch; k++) nm += (double)mu_r[k] * (double)mu_r[k], nv += (double)var_r[k] * (double)var_r[k];
    nm = nm > 0 ? sqrt(nm) : 1.0, nv = nv > 0 ? sqrt(nv) : 1.0;
    double inv = hw ? 1.0 / (double)hw : 0.0;
    for (int b = 0; b < n; b++) {
        const float *ab = a + (size_t)b * hw * (size_t)ch; /* (hw, ch) */
        for (int k = 0; k < ch; k++) mu[k] = var[k] = 0;
        for (size_t p = 0; p < hw; p++)
            for (int k = 0; k < ch; k++) mu[k] += (double)ab[p * (size_t)ch + (size_t)k];
        for (int k = 0; k < ch; k++) mu[k] *= inv;
        for (size_t p = 0; p < hw; p++) /* two passes: no cancellation in E[a^2] - mu^2 */
            for (int k = 0; k < ch; k++) {
                double d = (double)ab[p * (size_t)ch + (size_t)k] - mu[k];
                var[k] += d * d;
            }
        for (int k = 0; k < ch; k++) {
            var[k] *= inv;
            dm[k] = mu[k] - (double)mu_r[k];
            dvv[k] = var[k] - (double)var_r[k];
        }
        double em = norm2(dm, ch), ev = norm2(dvv, ch);
        if (values) values[b] = (float)(em / nm + ev / nv);
        if (!da || !weight || weight[b] == 0.0f) continue;
        /* dR/da[p][k] = dm[k] / (em nm) / hw + dvv[k] / (ev nv) * 2 (a[p][k] - mu[k]) / hw
         * (a term whose distance is 0 contributes 0) */
        for (int k = 0; k < ch; k++) {
            dm[k] = em > 0 ? -(double)weight[b] * dm[k] / (em * nm) * inv : 0.0;
            dvv[k] = ev > 0 ? -(double)weight[b] * dvv[k] / (ev * nv) * 2.0 * inv : 0.0;
        }
        float *db = da + (size_t)b * hw * (size_t)ch;
        for (size_t p = 0; p < hw; p++)
            for (int k = 0; k < ch; k++) {
                size_t i = p * (size_t)ch + (size_t)k;
                db[i] += (float)(dm[k] + dvv[k] * ((double)ab[i] - mu[k]));
            }
    }
}
