/* Bands of rows (see featviz/graph.h): which crop of input rows computes which rows
 * of node `top` exactly as the whole image would.
 *
 * For a crop starting at input row y0, every node's crop rows are its whole-
 * image rows shifted by off: a layer reading input rows r*stride - pad + k
 * (k < extent) gives off_out = (off_in + pad_whole - pad_crop) / stride, which
 * must be a whole number (crops start at multiples of the total stride). A
 * crop row is exact when every input row it reads is either an exact crop
 * row that exists in the whole image too, or padding in both (outside the
 * crop and outside the whole image); the crop's own edges are padding the
 * whole image does not have, and their error spreads inwards layer by layer. */
#include <stdlib.h>
#include <string.h>

#include "featviz/graph.h"

struct geom {
    const struct fv_model *m;
    int top;
    struct fv_io *whole, *crop;   /* shapes for the whole image and for a crop */
    unsigned char *need;          /* nodes top depends on */
    int *off;                     /* per node, for the crop being analysed */
    unsigned char **exact;        /* per node, per crop row */
};

static int rows_of(const struct fv_io *io) { return io->out.rank == 3 ? io->out.d[0] : 0; }

/* Fills g->off and g->exact for a crop at y0; 0 when the crop does not line up. */
static int analyse(struct geom *g, int y0) {
    const struct fv_model *m = g->m;
    for (int i = 0; i <= g->top; i++) {
        if (!g->need[i]) continue;
        int hc = rows_of(&g->crop[i]), hw = rows_of(&g->whole[i]);
        if (i == m->input) {
            g->off[i] = y0;
            memset(g->exact[i], 1, (size_t)hc);
            continue;
        }
        const struct fv_layer *l = &m->layers[i];
        struct fv_rows rw, rc;
        if (!l->ops->rows(l, &g->whole[i], &rw) || !l->ops->rows(l, &g->crop[i], &rc)) return 0;
        int off = 0;
        for (int j = 0; j < l->n_in; j++) {
            int num = g->off[l->in[j]] + rw.pad - rc.pad;
            if (num % rc.stride != 0 || (j > 0 && num / rc.stride != off)) return 0;
            off = num / rc.stride;
        }
        g->off[i] = off;
        for (int r = 0; r < hc; r++) {
            int ok = r + off >= 0 && r + off < hw;
            for (int j = 0; ok && j < l->n_in; j++) {
                int in = l->in[j], in_hc = rows_of(&g->crop[in]), in_hw = rows_of(&g->whole[in]);
                for (int k = 0; ok && k < rc.extent; k++) {
                    int ci = r * rc.stride - rc.pad + k, wi = ci + g->off[in];
                    int in_crop = ci >= 0 && ci < in_hc, in_whole = wi >= 0 && wi < in_hw;
                    ok = in_crop ? in_whole && g->exact[in][ci] : !in_whole;
                }
            }
            g->exact[i][r] = (unsigned char)ok;
        }
    }
    return 1;
}

/* Whether every layer up to top maps rows; *stride: the total stride. */
static int maps_rows(const struct geom *g, int *stride) {
    const struct fv_model *m = g->m;
    int *s = calloc((size_t)m->n_layers, sizeof *s), ok = s != NULL;
    for (int i = 0; ok && i <= g->top; i++) {
        if (!g->need[i]) continue;
        const struct fv_layer *l = &m->layers[i];
        if (i == m->input) {
            s[i] = 1;
            ok = g->whole[i].out.rank == 3;
            continue;
        }
        struct fv_rows r;
        ok = l->ops->rows && l->act.kind != FV_ACT_SOFTMAX && l->ops->rows(l, &g->whole[i], &r) &&
             r.stride >= 1 && r.extent >= 1;
        for (int j = 0; ok && j < l->n_in; j++) {
            long long t = (long long)s[l->in[j]] * r.stride;
            ok = t <= 65536;
            if (ok && t > s[i]) s[i] = (int)t;
        }
    }
    if (ok) *stride = s[g->top];
    free(s);
    return ok;
}

void fv_bands_free(struct fv_bands *b) {
    free(b->band);
    memset(b, 0, sizeof *b);
}

int fv_bands_make(const struct fv_model *m, int top, int h, int w, int rows, struct fv_bands *b,
                  struct fv_error *err) {
    int L = m->n_layers, rc = FV_OK, stride = 1;
    memset(b, 0, sizeof *b);
    struct geom g = {.m = m, .top = top};
    g.whole = calloc((size_t)L, sizeof *g.whole);
    g.crop = calloc((size_t)L, sizeof *g.crop);
    g.need = calloc((size_t)L, 1);
    g.off = calloc((size_t)L, sizeof *g.off);
    g.exact = calloc((size_t)L, sizeof *g.exact);
    size_t floats;
    if (!g.whole || !g.crop || !g.need || !g.off || !g.exact) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (rows < 1 || rows >= h ||
        (rc = fv_plan_measure(m, 1, h, w, FV_PLAN_GRAD, top, g.whole, &floats, err)))
        goto done;
    for (int i = 0; i < L; i++) g.need[i] = i <= top && g.whole[i].out.rank > 0;
    if (!maps_rows(&g, &stride)) goto done;
    int hc = h - (h - rows) / stride * stride; /* (h - hc) % stride == 0: a crop can end at the bottom */
    if (hc >= h) goto done;
    if ((rc = fv_plan_measure(m, 1, hc, w, FV_PLAN_GRAD, top, g.crop, &floats, err))) {
        rc = FV_OK; /* too small a crop for the network: no bands */
        goto done;
    }
    for (int i = 0; i <= top; i++)
        if (g.need[i] && !(g.exact[i] = malloc((size_t)rows_of(&g.crop[i]) + 1))) {
            rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
            goto done;
        }
    int top_h = rows_of(&g.whole[top]), top_hc = rows_of(&g.crop[top]), last = h - hc;
    if (!(b->band = calloc((size_t)top_h, sizeof *b->band))) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* Greedy from the top: the crop starting lowest (but in the image) that
     * still computes the first row not owned yet exactly owns it and the
     * exact rows after it. */
    for (int o = 0; o < top_h;) {
        long long want = (long long)o * h / top_h; /* input row near o */
        int y0 = (int)(want / stride * stride), found = 0;
        if (y0 > last) y0 = last;
        for (; y0 >= 0 && !found; y0 -= stride) {
            if (!analyse(&g, y0)) continue;
            int r = o - g.off[top];
            if (r < 0 || r >= top_hc || !g.exact[top][r]) continue;
            int r1 = r;
            while (r1 < top_hc && g.exact[top][r1]) r1++;
            b->band[b->n++] = (struct fv_band){.y0 = y0, .off = g.off[top], .r0 = r, .r1 = r1};
            o += r1 - r;
            found = 1;
        }
        if (!found) { /* no crop of this height computes row o exactly */
            fv_bands_free(b);
            goto done;
        }
    }
    b->rows = hc;
    b->top_h = top_h;
done:
    for (int i = 0; g.exact && i < L; i++) free(g.exact[i]);
    free(g.whole), free(g.crop), free(g.need), free(g.off), free(g.exact);
    if (rc) fv_bands_free(b);
    return rc;
}
