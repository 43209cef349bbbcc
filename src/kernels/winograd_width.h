/* The Winograd transforms for one vector width (included by winograd.c once
 * per width): WV the vector type of WL floats, WN(name) the names of this
 * width, WATTR the functions' target attribute, WVI (optional) the int vector
 * type of WL lanes when the target compares that many in one register. The arithmetic is the same
 * lane by lane at every width: results do not depend on it. */

/* Loads and stores through a vector type of float alignment: memcpy into an
 * array of vectors went through the stack in 16-byte halves (gcc's generic
 * tuning splits unaligned 32-byte moves) and the 32-byte reload stalled on
 * them, a third of the AVX2 input transform's time. */
typedef WV WN(unaligned) __attribute__((aligned(4), may_alias));
static inline void WN(load)(WV *v, const float *p) { *v = *(const WN(unaligned) *)p; }
static inline void WN(store)(float *p, const WV *v) { *(WN(unaligned) *)p = *v; }

/* lanes below 0 to +0; v where g > 0 else +0. With WVI (an int vector of
 * WL lanes, where the target compares WL lanes in one register): vector
 * compares and masks. Otherwise loops over the lanes, which gcc vectorizes
 * for 16 lanes on every target (see simd.h) but compiled for 8 on AVX2 into
 * scalar compares whose stores then stalled the vector reload (a fifth of the
 * AVX2 output transform's time). Same values either way, NaN and -0 too. */
#ifdef WVI
static inline void WN(relu)(WV *v) {
    const WV zero = {0};
    *v = (WV)((WVI)*v & ~(*v < zero));
}
static inline void WN(gate)(WV *v, const float *g) {
    const WV zero = {0};
    WV gv;
    memcpy(&gv, g, sizeof gv);
    *v = (WV)((WVI)*v & (gv > zero));
}
#else
static inline void WN(relu)(WV *v) {
    float t[WL];
    memcpy(t, v, sizeof t);
    for (int i = 0; i < WL; i++) t[i] = t[i] < 0.0f ? 0.0f : t[i];
    memcpy(v, t, sizeof t);
}
static inline void WN(gate)(WV *v, const float *g) {
    float t[WL];
    memcpy(t, v, sizeof t);
    for (int i = 0; i < WL; i++) t[i] = g[i] > 0.0f ? t[i] : 0.0f;
    memcpy(v, t, sizeof t);
}
#endif

/* r = B^T applied to (x0 .. x5) */
static inline void WN(bt6)(const WV x[6], WV r[6]) {
    r[0] = 4.0f * x[0] - 5.0f * x[2] + x[4];
    r[1] = -4.0f * (x[1] + x[2]) + x[3] + x[4];
    r[2] = 4.0f * (x[1] - x[2]) - x[3] + x[4];
    r[3] = -2.0f * (x[1] - x[3]) - x[2] + x[4];
    r[4] = 2.0f * (x[1] - x[3]) - x[2] + x[4];
    r[5] = 4.0f * x[1] - 5.0f * x[3] + x[5];
}

/* r = A^T applied to (x0 .. x5) */
static inline void WN(at6)(const WV x[6], WV r[4]) {
    WV a = x[1] + x[2], b = x[1] - x[2], c = x[3] + x[4], d = x[3] - x[4];
    r[0] = x[0] + a + c;
    r[1] = b + 2.0f * d;
    r[2] = a + 4.0f * c;
    r[3] = b + 8.0f * d + x[5];
}

/* V (36 rows of WL channels, row stride ld) of the 36 pixels d[k] (16 channels each). */
static inline void WN(input_block)(const float *const d[36], float *o, size_t ld) {
    WV t[36]; /* t = B^T d: row i, column j at t[6*i + j] */
    for (int j = 0; j < 6; j++) {
        WV x[6], r[6];
        for (int i = 0; i < 6; i++) WN(load)(&x[i], d[6 * i + j]);
        WN(bt6)(x, r);
        for (int i = 0; i < 6; i++) t[6 * i + j] = r[i];
    }
    for (int i = 0; i < 6; i++) { /* V = t B */
        WV r[6];
        WN(bt6)(&t[6 * i], r);
        for (int k = 0; k < 6; k++) WN(store)(o + (size_t)(6 * i + k) * ld, &r[k]);
    }
}

WATTR static void WN(wino_input)(float *restrict v, const float *restrict x,
                               const struct fv_conv_geom *g, size_t t0, size_t rows,
                               const float *zero) {
    size_t C = (size_t)g->c, full = C / WL * WL;
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
        for (size_t c0 = 0; c0 < full; c0 += WL) {
            const float *dc[36];
            for (int k = 0; k < 36; k++) dc[k] = d[k] + c0;
            WN(input_block)(dc, o + c0, C);
        }
        if (full < C) { /* the last C % 16 channels, through zero-padded copies */
            size_t nc = C - full;
            float pad[36][WL], out[36][WL];
            const float *dc[36];
            for (int k = 0; k < 36; k++) {
                memset(pad[k], 0, sizeof pad[k]);
                memcpy(pad[k], d[k] + full, nc * sizeof(float));
                dc[k] = pad[k];
            }
            WN(input_block)(dc, out[0], WL);
            for (int k = 0; k < 36; k++) memcpy(o + (size_t)k * C + full, out[k], nc * sizeof(float));
        }
    }
}

/* out[0..n) (=|+=) y (+ bias, relu) */
static inline void WN(store_out)(float *out, const WV *y, size_t n, const float *bias, int accumulate,
                             int relu, const float *gate) {
    if (n == WL) {
        WV v = *y, o;
        if (accumulate) {
            WN(load)(&o, out);
            v += o;
        } else {
            if (bias) {
                WN(load)(&o, bias);
                v += o;
            }
            if (relu) WN(relu)(&v); /* lanes below 0 to +0 */
            if (gate) WN(gate)(&v, gate);
        }
        WN(store)(out, &v);
        return;
    }
    float tmp[WL];
    WN(store)(tmp, y);
    if (accumulate) {
        for (size_t o = 0; o < n; o++) out[o] += tmp[o];
        return;
    }
    for (size_t o = 0; o < n; o++) {
        float val = tmp[o] + (bias ? bias[o] : 0.0f);
        out[o] = (relu && val < 0.0f) || (gate && !(gate[o] > 0.0f)) ? 0.0f : val;
    }
}

/* The 16 outputs (4x4, WL channels each) of the 36 rows m (row stride ld),
 * stored row by row as they come (out[q] + o0, NULL: outside the image): the
 * 16 results and the 24 partial sums at once did not fit the registers. */
static inline void WN(output_block)(const float *m, size_t ld, float *const out[16], const size_t off[16],
                                    size_t o0, size_t nc, const float *bias, int accumulate, int relu,
                                    const float *gate) {
    WV s[24]; /* s = A^T M: row i, column j at s[6*i + j] */
    for (int j = 0; j < 6; j++) {
        WV x[6], r[4];
        for (int i = 0; i < 6; i++) WN(load)(&x[i], m + (size_t)(6 * i + j) * ld);
        WN(at6)(x, r);
        for (int i = 0; i < 4; i++) s[6 * i + j] = r[i];
    }
    for (int i = 0; i < 4; i++) { /* y = s A, row i */
        WV y[4];
        WN(at6)(&s[6 * i], y);
        for (int q = 4 * i; q < 4 * i + 4; q++)
            if (out[q])
                WN(store_out)(out[q] + o0, &y[q - 4 * i], nc, bias ? bias + o0 : NULL, accumulate, relu,
                              gate ? gate + off[q] + o0 : NULL);
    }
}

WATTR static void WN(wino_output)(float *restrict y, const float *restrict m,
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
        for (size_t o0 = 0; o0 < OC; o0 += WL) {
            size_t nc = OC - o0 < WL ? OC - o0 : WL;
            if (nc == WL) {
                WN(output_block)(mr + o0, OC, out, off, o0, nc, bias, accumulate, relu, gate);
            } else { /* the last OC % 16 channels, through zero-padded copies */
                float pad[36][WL];
                for (int k = 0; k < 36; k++) {
                    memset(pad[k], 0, sizeof pad[k]);
                    memcpy(pad[k], mr + (size_t)k * OC + o0, nc * sizeof(float));
                }
                WN(output_block)(pad[0], WL, out, off, o0, nc, bias, accumulate, relu, gate);
            }
        }
    }
}
