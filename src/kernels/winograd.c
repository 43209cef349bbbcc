/* Winograd F(4x4, 3x3) transforms (see winograd.h). */
#include "kernels/winograd.h"

#include "core/par.h"
#include "kernels/simd.h" /* the transforms: plain loops over 16 channels at a time */

/* r = B^T applied to (x0 .. x5) */
static inline void bt6(const fv_vf x[6], fv_vf r[6]) {
    r[0] = 4.0f * x[0] - 5.0f * x[2] + x[4];
    r[1] = -4.0f * (x[1] + x[2]) + x[3] + x[4];
    r[2] = 4.0f * (x[1] - x[2]) - x[3] + x[4];
    r[3] = -2.0f * (x[1] - x[3]) - x[2] + x[4];
    r[4] = 2.0f * (x[1] - x[3]) - x[2] + x[4];
    r[5] = 4.0f * x[1] - 5.0f * x[3] + x[5];
}

/* r = A^T applied to (x0 .. x5) */
static inline void at6(const fv_vf x[6], fv_vf r[4]) {
    fv_vf a = x[1] + x[2], b = x[1] - x[2], c = x[3] + x[4], d = x[3] - x[4];
    r[0] = x[0] + a + c;
    r[1] = b + 2.0f * d;
    r[2] = a + 4.0f * c;
    r[3] = b + 8.0f * d + x[5];
}

/* Tile t's image and top-left output pixel. */
static void tile_origin(const struct fv_conv_geom *g, size_t t, size_t *img, int *oy0, int *ox0) {
    size_t th = (size_t)(g->oh + FV_WINO_M - 1) / FV_WINO_M;
    size_t tw = (size_t)(g->ow + FV_WINO_M - 1) / FV_WINO_M;
    *ox0 = FV_WINO_M * (int)(t % tw);
    *oy0 = FV_WINO_M * (int)(t / tw % th);
    *img = t / (tw * th);
}

/* V (36 rows of 16 channels, row stride ld) of the 36 pixels d[k] (16 channels each). */
static inline void input_block(const float *const d[36], float *o, size_t ld) {
    fv_vf t[36]; /* t = B^T d: row i, column j at t[6*i + j] */
    for (int j = 0; j < 6; j++) {
        fv_vf x[6], r[6];
        for (int i = 0; i < 6; i++) fv_vload(&x[i], d[6 * i + j]);
        bt6(x, r);
        for (int i = 0; i < 6; i++) t[6 * i + j] = r[i];
    }
    for (int i = 0; i < 6; i++) { /* V = t B */
        fv_vf r[6];
        bt6(&t[6 * i], r);
        for (int k = 0; k < 6; k++) fv_vstore(o + (size_t)(6 * i + k) * ld, &r[k]);
    }
}

FV_CLONES void fv_wino_input(float *restrict v, const float *restrict x,
                               const struct fv_conv_geom *g, size_t t0, size_t rows,
                               const float *zero) {
    size_t C = (size_t)g->c, full = C / FV_VL * FV_VL;
    for (size_t r = 0; r < rows; r++) {
        size_t img;
        int oy0, ox0;
        tile_origin(g, t0 + r, &img, &oy0, &ox0);
        int iy0 = oy0 - g->pt, ix0 = ox0 - g->pl;
        const float *d[36]; /* the patch's pixels, (C) each */
        int inside = iy0 >= 0 && iy0 + 6 <= g->h && ix0 >= 0 && ix0 + 6 <= g->w;
        const float *p0 = x + ((img * (size_t)g->h + (size_t)iy0) * (size_t)g->w + (size_t)ix0) * C;
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < 6; j++) {
                int iy = iy0 + i, ix = ix0 + j;
                d[6 * i + j] = inside ? p0 + ((size_t)i * (size_t)g->w + (size_t)j) * C
                               : iy < 0 || iy >= g->h || ix < 0 || ix >= g->w
                                   ? zero
                                   : x + ((img * (size_t)g->h + (size_t)iy) * (size_t)g->w + (size_t)ix) * C;
            }
        float *o = v + r * FV_WINO_PLANES * C; /* this tile's (36, C): written in one run */
        for (size_t c0 = 0; c0 < full; c0 += FV_VL) {
            const float *dc[36];
            for (int k = 0; k < 36; k++) dc[k] = d[k] + c0;
            input_block(dc, o + c0, C);
        }
        if (full < C) { /* the last C % 16 channels, through zero-padded copies */
            size_t nc = C - full;
            float pad[36][FV_VL], out[36][FV_VL];
            const float *dc[36];
            for (int k = 0; k < 36; k++) {
                memset(pad[k], 0, sizeof pad[k]);
                memcpy(pad[k], d[k] + full, nc * sizeof(float));
                dc[k] = pad[k];
            }
            input_block(dc, out[0], FV_VL);
            for (int k = 0; k < 36; k++) memcpy(o + (size_t)k * C + full, out[k], nc * sizeof(float));
        }
    }
}
/* G applied to (g0, g1, g2) */
static void g_rows(double g0, double g1, double g2, double out[6]) {
    out[0] = g0 / 4.0;
    out[1] = -(g0 + g1 + g2) / 6.0;
    out[2] = -(g0 - g1 + g2) / 6.0;
    out[3] = g0 / 24.0 + g1 / 12.0 + g2 / 6.0;
    out[4] = g0 / 24.0 - g1 / 12.0 + g2 / 6.0;
    out[5] = g2;
}

void fv_wino_kernel(float *u, const float *k, int c, int oc) {
    size_t C = (size_t)c, OC = (size_t)oc;
    int par = (double)c * (double)oc >= 4096.0;
    (void)par; /* only read by the OpenMP clause */
    FV_OMP("omp parallel for schedule(static) if(par)")
    for (int ch = 0; ch < c; ch++) {
        const float *g[9]; /* the 9 taps of channel ch, (OC) each */
        for (int t = 0; t < 9; t++) g[t] = k + ((size_t)t * C + (size_t)ch) * OC;
        for (size_t o = 0; o < OC; o++) {
            double col[3][6]; /* G g: column j of the kernel through G */
            for (int j = 0; j < 3; j++) g_rows(g[j][o], g[3 + j][o], g[6 + j][o], col[j]);
            for (int i = 0; i < 6; i++) { /* (G g) G^T */
                double row[6];
                g_rows(col[0][i], col[1][i], col[2][i], row);
                for (int j = 0; j < 6; j++) u[((size_t)(6 * i + j) * C + (size_t)ch) * OC + o] = (float)row[j];
            }
        }
    }
}

/* The 16 outputs (4x4, 16 channels each) of the 36 rows m (row stride ld). */
static inline void output_block(const float *m, size_t ld, fv_vf y[16]) {
    fv_vf s[24]; /* s = A^T M: row i, column j at s[6*i + j] */
    for (int j = 0; j < 6; j++) {
        fv_vf x[6], r[4];
        for (int i = 0; i < 6; i++) fv_vload(&x[i], m + (size_t)(6 * i + j) * ld);
        at6(x, r);
        for (int i = 0; i < 4; i++) s[6 * i + j] = r[i];
    }
    for (int i = 0; i < 4; i++) /* y = s A */
        at6(&s[6 * i], &y[4 * i]);
}

/* out[0..n) (=|+=) y (+ bias, relu) */
static inline void store_out(float *out, const fv_vf *y, size_t n, const float *bias, int accumulate,
                             int relu, const float *gate) {
    if (n == FV_VL) {
        fv_vf v = *y, o;
        if (accumulate) {
            fv_vload(&o, out);
            v += o;
        } else {
            if (bias) {
                fv_vload(&o, bias);
                v += o;
            }
            if (relu) v = (fv_vf)((fv_vi)v & ~(v < 0.0f)); /* lanes below 0 to +0 */
            if (gate) {
                fv_vload(&o, gate);
                v = (fv_vf)((fv_vi)v & (o > 0.0f));
            }
        }
        fv_vstore(out, &v);
        return;
    }
    float tmp[FV_VL];
    fv_vstore(tmp, y);
    if (accumulate) {
        for (size_t o = 0; o < n; o++) out[o] += tmp[o];
        return;
    }
    for (size_t o = 0; o < n; o++) {
        float val = tmp[o] + (bias ? bias[o] : 0.0f);
        out[o] = (relu && val < 0.0f) || (gate && !(gate[o] > 0.0f)) ? 0.0f : val;
    }
}

FV_CLONES void fv_wino_output(float *restrict y, const float *restrict m,
                                const struct fv_conv_geom *g, int oc, size_t t0, size_t rows,
                                const float *bias, int accumulate, int relu, const float *gate) {
    size_t OC = (size_t)oc;
    for (size_t r = 0; r < rows; r++) {
        size_t img;
        int oy0, ox0;
        tile_origin(g, t0 + r, &img, &oy0, &ox0);
        float *out[16] = {NULL}; /* (OC) each; NULL outside the image */
        size_t off[16] = {0};
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                if (oy0 + i < g->oh && ox0 + j < g->ow) {
                    off[4 * i + j] = ((img * (size_t)g->oh + (size_t)(oy0 + i)) * (size_t)g->ow +
                                      (size_t)(ox0 + j)) * OC;
                    out[4 * i + j] = y + off[4 * i + j];
                }
        const float *mr = m + r * FV_WINO_PLANES * OC; /* this tile's (36, OC) */
        for (size_t o0 = 0; o0 < OC; o0 += FV_VL) {
            size_t nc = OC - o0 < FV_VL ? OC - o0 : FV_VL;
            fv_vf res[16];
            if (nc == FV_VL) {
                output_block(mr + o0, OC, res);
            } else { /* the last OC % 16 channels, through zero-padded copies */
                float pad[36][FV_VL];
                for (int k = 0; k < 36; k++) {
                    memset(pad[k], 0, sizeof pad[k]);
                    memcpy(pad[k], mr + (size_t)k * OC + o0, nc * sizeof(float));
                }
                output_block(pad[0], FV_VL, res);
            }
            for (int q = 0; q < 16; q++)
                if (out[q])
                    store_out(out[q] + o0, &res[q], nc, bias ? bias + o0 : NULL, accumulate, relu,
                              gate ? gate + off[q] + o0 : NULL);
        }
    }
}
