/* `featviz stats`: per-channel statistics over many images, to answer "which
 * filters never fire?".
 *
 * The inputs (a folder, image files, or .npy arrays of N images) stream through
 * one plan in batches of stats.batch (fewer when a pass would need over 1 GiB),
 * so memory is bounded by the batch and the number of channels, never by the
 * number of images. For each measured
 * layer and channel c (the last physical dim of the output: the filter of a
 * conv layer, the unit of a Dense layer) we keep over the images seen:
 *   mean           mean of the values over images and positions
 *   max            largest value
 *   zero_fraction  fraction of images on which the channel does not fire
 *   dead           it fires on no image
 *   top            the stats.topk images with the largest per-image maximum,
 *                  with the position of that maximum and its receptive field
 *   hist           a histogram of the per-image maximum (HIST_BINS bins of a
 *                  width that doubles when a larger value comes: bounded)
 * where a channel FIRES on an image when its largest value over all
 * positions is > 0. After a ReLU (fused or a separate Activation/ReLU layer)
 * "does not fire" is "zero everywhere". Layers without a ReLU (a linear conv
 * followed by BatchNormalization and an Activation, as in Keras 3 models) are
 * measured with the same rule, and the summary says so; their Activation layer
 * is measured too, and it answers the dead-filter question.
 *
 * Layers ("all"): every Conv2D, DepthwiseConv2D, SeparableConv2D and Dense,
 * and every standalone activation layer (Activation, ReLU, LeakyReLU, ELU,
 * PReLU, but not softmax) whose output is an image (H, W, C) or a vector.
 *
 * Output in output.dir, written after the last batch:
 *   stats.csv            layer,channel,mean,max,zero_fraction,dead,top_images
 *                        (top_images: input item indices, best first, space-separated)
 *   stats.json           the same with layer details and the input names
 *   <layer>.chart.png    mean activation per channel, dead ones red
 *   <layer>.top.png      one row per channel: its top-k input images (stats.montage;
 *                        gray where fewer than k images made it fire; images
 *                        over 64 px are shrunk to 64 px);
 *                        layers of more than 64 channels are split in
 *                        <layer>.top_<first>-<last>.png
 *   examples/<item>.png  every image that is in some channel's top-k, at the
 *                        model's input size (stats.examples; the report crops
 *                        them to the receptive fields given in stats.json)
 * and on stdout one line per layer, e.g.
 *   conv2d_2: 3 of 32 filters never fire on 11690 images: 7, 19, 22
 *   conv2d_1: all 32 filters fire
 * followed by "(N [more] fire on under 1% of the images: ...)" for nearly dead
 * channels and "(linear output: ...)" for layers measured before any ReLU.
 * Ctrl-C stops after the current batch: the results cover the images seen,
 * the summary says so and the job returns FV_ERR_INTERRUPTED. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/items.h"
#include "featviz/jobs.h"
#include "featviz/progress.h"
#include "featviz/render.h"
#include "jobs/common.h"
#include "jobs/inputs.h"
#include "jobs/receptive.h"
#include "jobs/topn.h"

#define MONTAGE_ROWS 64 /* channels per top-images picture */
#define HIST_BINS 32    /* histogram of the per-image maximum, per channel */

struct top_item {
    float v;        /* the channel's largest value on that image */
    size_t item;    /* input item index */
    int pos;        /* where: position (row * W + column) of that value */
};

/* Running statistics of one layer. */
struct layer_stats {
    int t;                  /* node */
    int C;                  /* channels */
    size_t P;               /* positions per image (count / C) */
    double *sum;            /* (C) sum of all values */
    float *max;             /* (C) */
    size_t *silent;         /* (C) images on which the channel does not fire */
    struct top_item *heap;  /* (C, k) min-heaps of the best images */
    int *hn;                /* (C) heap sizes */
    unsigned *hist;         /* (C, HIST_BINS) images whose maximum is > 0, by bin */
    float *hist_w;          /* (C) bin width: bin i holds maxima in [i*w, (i+1)*w) */
};

/* ---- batch size ---- */

#define PLAN_BUDGET_FLOATS ((size_t)1 << 28) /* 1 GiB of activations per pass */

/* stats.batch, lowered when one pass of that many images would need more
 * than PLAN_BUDGET_FLOATS (big inputs, e.g. 224 px MobileNets). */
static int fit_batch(const struct fv_model *m, int want, int h, int w, int *out,
                     struct fv_error *err) {
    struct fv_plan one;
    int rc = fv_plan_init(&one, m, 1, h, w, 0, err);
    if (rc) return rc;
    size_t per = one.mem_floats ? one.mem_floats : 1;
    fv_plan_free(&one);
    size_t fit = PLAN_BUDGET_FLOATS / per;
    *out = fit < 1 ? 1 : (size_t)want > fit ? (int)fit : want;
    return FV_OK;
}

/* ---- which layers ---- */

static int measured_by_default(const struct fv_model *m, int t, const struct fv_shape *out) {
    const struct fv_layer *l = &m->layers[t];
    if (l->hidden || t == m->input || !l->ops) return 0;
    if (out->rank != 3 && out->rank != 1) return 0;
    const char *k = l->ops->kind;
    if (!strcmp(k, "conv2d") || !strcmp(k, "depthwise") || !strcmp(k, "separable") ||
        !strcmp(k, "dense") || !strcmp(k, "prelu"))
        return 1;
    return !strcmp(k, "identity") && l->act.kind != FV_ACT_LINEAR && l->act.kind != FV_ACT_SOFTMAX;
}

static int pick_layers(const struct fv_settings *s, const struct fv_model *m,
                       const struct fv_plan *p, int **out, int *n, struct fv_error *err) {
    const char *list = fv_get_str(s, "stats", "layers");
    *n = 0;
    if (!(*out = malloc((size_t)m->n_layers * sizeof **out))) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    if (!list || !strcmp(list, "all")) {
        for (int i = 0; i < m->n_layers; i++)
            if (measured_by_default(m, i, &p->io[i].out)) (*out)[(*n)++] = i;
        if (*n == 0)
            return fv_error_set(err, FV_ERR_USAGE, "%s: no conv, Dense or activation layer to measure (name layers with --layers)", m->path);
        return FV_OK;
    }
    char *buf = strdup(list), *save = NULL;
    if (!buf) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    int rc = FV_OK;
    for (char *tok = strtok_r(buf, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        int t = fv_model_find(m, tok);
        if (t < 0 || t == m->input)
            rc = fv_error_set(err, FV_ERR_USAGE, "%s: no layer named '%s' in %s (see featviz info)",
                              fv_get_origin(s, "stats", "layers"), tok, m->path);
        else if (*n < m->n_layers)
            (*out)[(*n)++] = t;
    }
    free(buf);
    return rc;
}

/* ---- accumulation ---- */

/* a ranks below b: smaller value, or the same value from a later image. */
static int worse(const struct top_item *a, const struct top_item *b) {
    return a->v < b->v || (a->v == b->v && a->item > b->item);
}

static void heap_push(struct top_item *h, int *n, int k, struct top_item x) {
    if (*n < k) {
        int i = (*n)++;
        while (i > 0 && worse(&x, &h[(i - 1) / 2])) {
            h[i] = h[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        h[i] = x;
        return;
    }
    if (!worse(&h[0], &x)) return; /* not better than the weakest kept */
    int i = 0;
    for (;;) { /* sift x down from the root */
        int l = 2 * i + 1, r = l + 1, m = -1;
        const struct top_item *low = &x;
        if (l < k && worse(&h[l], low)) m = l, low = &h[l];
        if (r < k && worse(&h[r], low)) m = r;
        if (m < 0) break;
        h[i] = h[m];
        i = m;
    }
    h[i] = x;
}

static int best_first(const void *a, const void *b) {
    const struct top_item *x = a, *y = b;
    return worse(y, x) ? -1 : worse(x, y) ? 1 : 0;
}

static int stats_init(struct layer_stats *L, int t, const struct fv_shape *out, int k,
                      struct fv_error *err) {
    memset(L, 0, sizeof *L);
    L->t = t;
    L->C = out->rank ? out->d[out->rank - 1] : 1;
    L->P = fv_shape_count(out) / (size_t)L->C;
    size_t C = (size_t)L->C;
    L->sum = calloc(C, sizeof *L->sum);
    L->max = malloc(C * sizeof *L->max);
    L->silent = calloc(C, sizeof *L->silent);
    L->heap = malloc(C * (size_t)k * sizeof *L->heap);
    L->hn = calloc(C, sizeof *L->hn);
    L->hist = calloc(C * HIST_BINS, sizeof *L->hist);
    L->hist_w = calloc(C, sizeof *L->hist_w);
    if (!L->sum || !L->max || !L->silent || !L->heap || !L->hn || !L->hist || !L->hist_w)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory for the statistics of %d channels", L->C);
    for (size_t c = 0; c < C; c++) L->max[c] = -INFINITY;
    return FV_OK;
}

static void stats_free(struct layer_stats *L) {
    free(L->sum);
    free(L->max);
    free(L->silent);
    free(L->heap);
    free(L->hn);
    free(L->hist);
    free(L->hist_w);
}

/* Counts a per-image maximum v > 0 in a channel's histogram; when v is past
 * the last bin, the bins are merged pairwise (width doubled) until it fits. */
static void hist_add(unsigned *h, float *w, float v) {
    if (!(v > 0) || !isfinite(v)) return;
    if (*w == 0) *w = fmaxf(exp2f(ceilf(log2f(v / (HIST_BINS / 2)))), 1e-30f); /* room above the first value */
    while (v >= *w * HIST_BINS) {
        for (int i = 0; i < HIST_BINS / 2; i++) h[i] = h[2 * i] + h[2 * i + 1];
        for (int i = HIST_BINS / 2; i < HIST_BINS; i++) h[i] = 0;
        *w *= 2;
    }
    int b = (int)(v / *w);
    h[b < HIST_BINS ? b : HIST_BINS - 1]++;
}

/* One image's output y (P, C) of the layer, from input item `item`.
 * imax, isum: (C) scratch. */
static void accumulate(struct layer_stats *L, const float *y, size_t item, int k, float *imax,
                       double *isum) {
    size_t C = (size_t)L->C;
    for (size_t c = 0; c < C; c++) imax[c] = -INFINITY, isum[c] = 0;
    for (size_t q = 0; q < L->P; q++) {
        const float *row = y + q * C; /* (C) */
        for (size_t c = 0; c < C; c++) {
            isum[c] += (double)row[c];
            if (row[c] > imax[c]) imax[c] = row[c];
        }
    }
    for (size_t c = 0; c < C; c++) {
        L->sum[c] += isum[c];
        if (imax[c] > L->max[c]) L->max[c] = imax[c];
        if (!(imax[c] > 0)) L->silent[c]++;
        hist_add(L->hist + c * HIST_BINS, &L->hist_w[c], imax[c]);
        struct top_item x = {imax[c], item, 0};
        struct top_item *h = L->heap + c * (size_t)k;
        if (L->hn[c] == k && !worse(&h[0], &x)) continue; /* not in the top k: where does not matter */
        /* where: the first position of the maximum (looked for only now, so
         * the loop above stays a plain max that vectorizes) */
        for (size_t q = 0; q < L->P; q++)
            if (y[q * C + c] == imax[c]) {
                x.pos = (int)q;
                break;
            }
        heap_push(h, &L->hn[c], k, x);
    }
}

/* ---- output ---- */

static void json_number(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.9g", v);
    else fputs("null", f);
}

static const char *unit_word(const struct fv_plan *p, int t) {
    return p->io[t].out.rank == 1 ? "units" : "filters";
}

static int write_csv(const char *dir, const struct fv_model *m, const struct layer_stats *ls,
                     int n_ls, size_t N, int k, struct fv_error *err) {
    char path[4200];
    struct fv_tmpfile tf;
    int rc = job_path(path, sizeof path, err, "%s/stats.csv", dir);
    if (rc || (rc = fv_tmpfile_open(&tf, path, err))) return rc;
    FILE *f = tf.fp;
    fprintf(f, "layer,channel,mean,max,zero_fraction,dead,top_images\n");
    for (int j = 0; j < n_ls; j++) {
        const struct layer_stats *L = &ls[j];
        for (int c = 0; c < L->C; c++) {
            fprintf(f, "%s,%d,%.9g,%.9g,%.9g,%s,", m->layers[L->t].name, c,
                    L->sum[c] / ((double)N * (double)L->P), (double)L->max[c],
                    (double)L->silent[c] / (double)N, L->silent[c] == N ? "true" : "false");
            const struct top_item *h = L->heap + (size_t)c * (size_t)k;
            for (int i = 0; i < L->hn[c]; i++) fprintf(f, "%s%zu", i ? " " : "", h[i].item);
            fputc('\n', f);
        }
    }
    return fv_tmpfile_commit(&tf, err);
}

/* "y": Y, "x": X, "box": [y0, x0, y1, x1]: where the channel's maximum was on
 * that image, and the input pixels (inclusive) that position reads. pt: a plan
 * of the transposed input, for the columns (see receptive.h); NULL: the
 * whole width. */
static int write_where(FILE *f, const struct fv_plan *p, const struct fv_plan *pt,
                       const struct layer_stats *L, const struct top_item *h, struct fv_error *err) {
    const struct fv_shape *o = &p->io[L->t].out, *xi = &p->io[p->m->input].out;
    int H = xi->rank == 3 ? xi->d[0] : 1, W = xi->rank == 3 ? xi->d[1] : 1;
    int y = 0, x = 0, y0 = 0, y1 = H - 1, x0 = 0, x1 = W - 1, rc = FV_OK;
    if (o->rank == 3 && xi->rank == 3) {
        y = h->pos / o->d[1], x = h->pos % o->d[1];
        rc = receptive_rows(p, L->t, y, y, &y0, &y1, err);
        if (!rc && pt) rc = receptive_rows(pt, L->t, x, x, &x0, &x1, err);
    }
    fprintf(f, ", \"y\": %d, \"x\": %d, \"box\": [%d, %d, %d, %d]", y, x, y0, x0, y1, x1);
    return rc;
}

static int write_json(const char *dir, const struct fv_model *m, const struct fv_plan *p,
                      const struct fv_plan *pt, const struct fv_inputs *in,
                      const struct layer_stats *ls, int n_ls, size_t N, int k, int interrupted,
                      int examples, struct fv_error *err) {
    char path[4200], name[4200];
    struct fv_tmpfile tf;
    int rc = job_path(path, sizeof path, err, "%s/stats.json", dir);
    if (rc || (rc = fv_tmpfile_open(&tf, path, err))) return rc;
    FILE *f = tf.fp;
    fprintf(f, "{\n  \"model\": ");
    job_json_string(f, m->path);
    fprintf(f, ",\n  \"images\": %zu,\n  \"images_total\": %zu,\n  \"interrupted\": %s,\n", N, in->total,
            interrupted ? "true" : "false");
    fprintf(f, "  \"input_size\": [%d, %d], \"examples\": %s,\n", in->h, in->w,
            examples ? "\"examples/<image>.png\"" : "null");
    fprintf(f, "  \"hist\": \"per channel, the images whose maximum is > 0 by that maximum: bin i counts "
               "maxima in [i*width, (i+1)*width)\",\n");
    fprintf(f, "  \"fires\": \"a channel fires on an image when its largest value over all positions is > 0; "
               "zero_fraction = fraction of images on which it does not fire; dead = fires on no image\",\n");
    fprintf(f, "  \"layers\": [");
    for (int j = 0; j < n_ls; j++) {
        const struct layer_stats *L = &ls[j];
        const struct fv_layer *l = &m->layers[L->t];
        struct fv_shape ks;
        fv_keras_shape(l, &p->io[L->t].out, &ks);
        fprintf(f, "%s\n    {\"layer\": ", j ? "," : "");
        job_json_string(f, l->name);
        fprintf(f, ", \"class\": ");
        job_json_string(f, l->keras_class);
        fprintf(f, ", \"activation\": ");
        job_json_string(f, fv_act_name(&l->act));
        fprintf(f, ", \"shape\": [");
        for (int d = 0; d < ks.rank; d++) fprintf(f, "%s%d", d ? ", " : "", ks.d[d]);
        fprintf(f, "], \"kind\": \"%s\", \"channels\": %d, \"dead\": [", unit_word(p, L->t), L->C);
        int first = 1;
        for (int c = 0; c < L->C; c++)
            if (L->silent[c] == N) fprintf(f, "%s%d", first ? "" : ", ", c), first = 0;
        fprintf(f, "],\n     \"per_channel\": [");
        for (int c = 0; c < L->C; c++) {
            fprintf(f, "%s\n      {\"channel\": %d, \"mean\": ", c ? "," : "", c);
            json_number(f, L->sum[c] / ((double)N * (double)L->P));
            fprintf(f, ", \"max\": ");
            json_number(f, (double)L->max[c]);
            fprintf(f, ", \"zero_fraction\": ");
            json_number(f, (double)L->silent[c] / (double)N);
            fprintf(f, ", \"dead\": %s, \"top\": [", L->silent[c] == N ? "true" : "false");
            const struct top_item *h = L->heap + (size_t)c * (size_t)k;
            for (int i = 0; i < L->hn[c] && !rc; i++) {
                topn_item_name(in, h[i].item, name, sizeof name);
                fprintf(f, "%s{\"image\": %zu, \"input\": ", i ? ", " : "", h[i].item);
                job_json_string(f, name);
                fprintf(f, ", \"value\": ");
                json_number(f, (double)h[i].v);
                rc = write_where(f, p, pt, L, &h[i], err);
                fputc('}', f);
            }
            fprintf(f, "], \"hist\": {\"width\": ");
            json_number(f, (double)L->hist_w[c]);
            fprintf(f, ", \"silent\": %zu, \"counts\": [", L->silent[c]);
            for (int i = 0; i < HIST_BINS; i++) fprintf(f, "%s%u", i ? ", " : "", L->hist[(size_t)c * HIST_BINS + i]);
            fprintf(f, "]}}");
        }
        fprintf(f, "]}");
    }
    fprintf(f, "\n  ]\n}\n");
    if (rc) {
        fv_tmpfile_abort(&tf);
        return rc;
    }
    return fv_tmpfile_commit(&tf, err);
}

static int write_chart(const char *dir, const struct fv_model *m, const struct fv_plan *p,
                       const struct layer_stats *L, size_t N, struct fv_error *err) {
    const struct fv_layer *l = &m->layers[L->t];
    float *mean = malloc((size_t)L->C * sizeof *mean);
    int *dead = malloc((size_t)L->C * sizeof *dead);
    if (!mean || !dead) {
        free(mean);
        free(dead);
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    }
    int n_dead = 0;
    for (int c = 0; c < L->C; c++) {
        mean[c] = (float)(L->sum[c] / ((double)N * (double)L->P));
        dead[c] = L->silent[c] == N;
        n_dead += dead[c];
    }
    char name[FV_NAME_MAX], path[4400], title[FV_NAME_MAX + 128];
    job_safe_name(l->name, name, sizeof name);
    int rc = job_path(path, sizeof path, err, "%s/%s.chart.png", dir, name);
    snprintf(title, sizeof title, "%s: mean activation over %zu images (%d of %d dead, red)", l->name, N,
             n_dead, L->C);
    if (!rc)
        rc = fv_bar_chart_write(path, title, L->C, mean, dead, p->io[L->t].out.rank == 1 ? "unit" : "filter",
                                "mean", err);
    free(mean);
    free(dead);
    return rc;
}

static int cmp_size(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

#define THUMB_PX 64 /* montage images larger than this are shrunk (area average) */

/* Thumbnail size of an h x w input: the longer side at most THUMB_PX. */
static void thumb_size(int h, int w, int *th, int *tw) {
    int big = h > w ? h : w;
    if (big <= THUMB_PX) {
        *th = h, *tw = w;
        return;
    }
    *th = (int)lround((double)h * THUMB_PX / big), *tw = (int)lround((double)w * THUMB_PX / big);
    if (*th < 1) *th = 1;
    if (*tw < 1) *tw = 1;
}

/* Model input x (H, W, C) -> displayable bytes (th, tw, C). */
static int thumbnail(const struct fv_inputs *in, const struct fv_preproc *pp, const float *x, int th,
                     int tw, unsigned char *out, struct fv_error *err) {
    size_t n = (size_t)in->h * (size_t)in->w * (size_t)in->c;
    if (th == in->h && tw == in->w) {
        fv_deprocess(pp, x, in->h, in->w, in->c, out);
        return FV_OK;
    }
    unsigned char *full = malloc(n);
    struct fv_image img = {.h = in->h, .w = in->w, .c = in->c, .data = malloc(n * sizeof(float))}, small = {0};
    int rc = FV_OK;
    if (!full || !img.data) rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    if (!rc) {
        fv_deprocess(pp, x, in->h, in->w, in->c, full);
        for (size_t i = 0; i < n; i++) img.data[i] = full[i];
        rc = fv_image_resize(&img, th, tw, FV_RESIZE_AREA, &small, err);
    }
    for (size_t i = 0; !rc && i < (size_t)th * (size_t)tw * (size_t)in->c; i++) {
        float v = small.data[i] < 0 ? 0 : small.data[i] > 255 ? 255 : small.data[i];
        out[i] = (unsigned char)floorf(v + 0.5f);
    }
    fv_image_free(&small);
    fv_image_free(&img);
    free(full);
    return rc;
}

/* One picture: rows = channels c0..c0+rows-1, columns = their best images. */
static int write_top_part(const char *path, const struct fv_model *m, struct fv_inputs *in,
                          const struct fv_preproc *pp, const struct layer_stats *L, int k,
                          int c0, int rows, int cols, int scale, size_t N, struct fv_error *err) {
    size_t n = (size_t)rows * (size_t)cols;
    int th, tw;
    thumb_size(in->h, in->w, &th, &tw);
    size_t per_in = (size_t)in->h * (size_t)in->w * (size_t)in->c;
    size_t per = (size_t)th * (size_t)tw * (size_t)in->c; /* one thumbnail */
    size_t *items = malloc(n * sizeof *items);
    const unsigned char **tiles = calloc(n, sizeof *tiles);
    char **caps = calloc(n, sizeof *caps);
    char *capbuf = malloc(n * 48);
    int *flag = calloc(n, sizeof *flag);
    float *x = malloc(per_in * sizeof *x); /* (H, W, C) one model input */
    unsigned char *pix = NULL;
    int rc = FV_OK;
    if (!items || !tiles || !caps || !capbuf || !flag || !x) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* the distinct images, read once each */
    size_t u = 0;
    for (int r = 0; r < rows; r++) {
        int c = c0 + r;
        for (int i = 0; i < cols && i < L->hn[c]; i++)
            if (L->heap[(size_t)c * (size_t)k + (size_t)i].v > 0) items[u++] = L->heap[(size_t)c * (size_t)k + (size_t)i].item;
    }
    qsort(items, u, sizeof *items, cmp_size);
    size_t nu = 0;
    for (size_t i = 0; i < u; i++)
        if (!nu || items[nu - 1] != items[i]) items[nu++] = items[i];
    if (!(pix = malloc((nu ? nu : 1) * per))) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nu && !rc; i++) {
        if ((rc = fv_inputs_read(in, items[i], 1, x, err))) break;
        rc = thumbnail(in, pp, x, th, tw, pix + i * per, err);
    }
    if (rc) goto done;
    for (int r = 0; r < rows; r++) {
        int c = c0 + r;
        for (int i = 0; i < cols; i++) {
            size_t j = (size_t)r * (size_t)cols + (size_t)i;
            caps[j] = capbuf + j * 48;
            caps[j][0] = 0;
            flag[j] = L->silent[c] == N;
            if (i >= L->hn[c]) continue;
            const struct top_item *top = &L->heap[(size_t)c * (size_t)k + (size_t)i];
            if (!(top->v > 0)) { /* it did not fire there: no image (gray tile) */
                if (i == 0) snprintf(caps[j], 48, "c%d (none)", c);
                continue;
            }
            const size_t *hit = bsearch(&top->item, items, nu, sizeof *items, cmp_size);
            tiles[j] = pix + (size_t)(hit - items) * per;
            if (i == 0) snprintf(caps[j], 48, "c%d #%zu", c, top->item);
            else snprintf(caps[j], 48, "#%zu", top->item);
        }
    }
    char title[FV_NAME_MAX + 128];
    snprintf(title, sizeof title, "%s: top %d images per channel (rows: channels %d-%d; gray: did not fire; dead: red)",
             m->layers[L->t].name, cols, c0, c0 + rows - 1);
    struct fv_montage_spec spec = {
        .tiles = tiles, .n = (int)n, .th = th, .tw = tw, .channels = in->c,
        .captions = (const char *const *)caps, .flagged = flag, .cols = cols, .scale = scale,
        .margin = 4, .text_scale = 1, .title = title,
    };
    rc = fv_montage_write(path, &spec, err);
done:
    free(pix);
    free(x);
    free(flag);
    free(capbuf);
    free(caps);
    free(tiles);
    free(items);
    return rc;
}

/* <layer>.top.png (or its parts): each channel's top images, side by side. */
static int write_top(const char *dir, const struct fv_model *m, struct fv_inputs *in,
                     const struct fv_preproc *pp, const struct layer_stats *L, int k, size_t N,
                     struct fv_error *err) {
    int cols = 0;
    for (int c = 0; c < L->C; c++) cols = L->hn[c] > cols ? L->hn[c] : cols;
    if (cols < 1) return FV_OK;
    int rows = L->C < MONTAGE_ROWS ? L->C : MONTAGE_ROWS;
    int th, tw;
    thumb_size(in->h, in->w, &th, &tw);
    int scale = fv_upscale_for(th > tw ? th : tw, THUMB_PX);
    /* shrink until a part fits the canvas limits (the layout reads no tile) */
    const unsigned char *no_tile = NULL;
    for (;;) {
        struct fv_montage_spec spec = {.n = rows * cols, .th = th, .tw = tw, .channels = in->c,
                                       .tiles = &no_tile, .cols = cols,
                                       .scale = scale, .margin = 4, .text_scale = 1, .title = "x"};
        struct fv_montage_layout lay;
        struct fv_error e2 = {0};
        if (!fv_montage_layout(&spec, &lay, &e2)) break;
        if (e2.code != FV_ERR_SHAPE) return fv_error_set(err, e2.code, "%s", e2.msg);
        if (scale > 1) scale--;
        else if (rows > 1) rows /= 2;
        else if (cols > 1) cols /= 2;
        else return fv_error_set(err, e2.code, "%s", e2.msg);
    }
    char name[FV_NAME_MAX], path[4400];
    job_safe_name(m->layers[L->t].name, name, sizeof name);
    int rc = FV_OK;
    for (int c0 = 0; c0 < L->C && !rc; c0 += rows) {
        int r = L->C - c0 < rows ? L->C - c0 : rows;
        if (rows >= L->C) rc = job_path(path, sizeof path, err, "%s/%s.top.png", dir, name);
        else rc = job_path(path, sizeof path, err, "%s/%s.top_%d-%d.png", dir, name, c0, c0 + r - 1);
        if (!rc) rc = write_top_part(path, m, in, pp, L, k, c0, r, cols, scale, N, err);
    }
    return rc;
}

/* examples/<item>.png: each image in some channel's top-k, once, at the
 * model's input size (the report shows it whole and cropped). */
static int write_examples(const char *dir, struct fv_inputs *in, const struct fv_preproc *pp,
                          const struct layer_stats *ls, int n_ls, int k, struct fv_error *err) {
    size_t n = 0, cap = 0;
    for (int j = 0; j < n_ls; j++) cap += (size_t)ls[j].C * (size_t)k;
    size_t per = (size_t)in->h * (size_t)in->w * (size_t)in->c;
    size_t *items = malloc((cap ? cap : 1) * sizeof *items);
    float *x = malloc(per * sizeof *x);
    unsigned char *pix = malloc(per);
    char sub[4200], path[4400];
    int rc = job_path(sub, sizeof sub, err, "%s/examples", dir);
    if (!rc && (!items || !x || !pix)) rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    for (int j = 0; j < n_ls && !rc; j++)
        for (int c = 0; c < ls[j].C; c++)
            for (int i = 0; i < ls[j].hn[c]; i++) items[n++] = ls[j].heap[(size_t)c * (size_t)k + (size_t)i].item;
    if (!rc) qsort(items, n, sizeof *items, cmp_size);
    if (!rc && n) rc = job_mkdirs(sub, err);
    for (size_t i = 0; i < n && !rc; i++) {
        if (i && items[i] == items[i - 1]) continue;
        if ((rc = fv_inputs_read(in, items[i], 1, x, err))) break;
        fv_deprocess(pp, x, in->h, in->w, in->c, pix);
        if (!(rc = job_path(path, sizeof path, err, "%s/%zu.png", sub, items[i])))
            rc = fv_png_write(path, pix, in->h, in->w, in->c, err);
    }
    free(pix);
    free(x);
    free(items);
    return rc;
}

/* The stdout line of one layer. */
static void summary_line(FILE *f, const struct fv_model *m, const struct fv_plan *p,
                         const struct layer_stats *L, size_t N) {
    const struct fv_layer *l = &m->layers[L->t];
    int n_dead = 0;
    for (int c = 0; c < L->C; c++) n_dead += L->silent[c] == N;
    const char *what = unit_word(p, L->t);
    if (n_dead == 0) {
        fprintf(f, "%s: all %d %s fire", l->name, L->C, what);
    } else {
        fprintf(f, "%s: %d of %d %s never fire%s on %zu image%s:", l->name, n_dead, L->C, what,
                n_dead == 1 ? "s" : "", N, N == 1 ? "" : "s");
        int first = 1;
        for (int c = 0; c < L->C; c++)
            if (L->silent[c] == N) fprintf(f, "%s %d", first ? "" : ",", c), first = 0;
    }
    /* nearly dead: fire on some image, but on fewer than 1% of them */
    int n_rare = 0;
    for (int c = 0; c < L->C; c++) n_rare += L->silent[c] < N && (double)(N - L->silent[c]) < 0.01 * (double)N;
    if (n_rare) {
        fprintf(f, " (%d %sfire%s on under 1%% of the images:", n_rare, n_dead ? "more " : "", n_rare == 1 ? "s" : "");
        int first = 1;
        for (int c = 0; c < L->C; c++)
            if (L->silent[c] < N && (double)(N - L->silent[c]) < 0.01 * (double)N)
                fprintf(f, "%s %d", first ? "" : ",", c), first = 0;
        fputc(')', f);
    }
    if (l->act.kind == FV_ACT_LINEAR && strcmp(l->ops->kind, "prelu"))
        fprintf(f, " (linear output: fires = some value > 0)");
    fputc('\n', f);
}

/* ---- items: shards of stats.shard images, each measured on its own and
 * merged on rank 0 in shard order, so the sums (in double) add up in the
 * same order whatever rank measured which shard; counts, maxima and the
 * top-k (a total order: value, then image index) do not depend on order ---- */

struct shard_items {
    struct fv_inputs *in;
    struct fv_plan *p;
    struct layer_stats *ls;    /* (n_ls) this rank's scratch, one shard */
    int n_ls, k, batch;
    size_t N, shard;
    float *imax;
    double *isum;
};

static void stats_reset(struct layer_stats *L, int k) {
    (void)k;
    for (int c = 0; c < L->C; c++) L->sum[c] = 0, L->max[c] = -INFINITY, L->silent[c] = 0, L->hn[c] = 0;
    memset(L->hist, 0, (size_t)L->C * HIST_BINS * sizeof *L->hist);
    memset(L->hist_w, 0, (size_t)L->C * sizeof *L->hist_w);
}

/* Doubles a histogram's bin width (bins merged pairwise) until it is at least
 * w; the widths are powers of two, so the counts stay exact. */
static void hist_rebin(unsigned *h, float *hw, float w) {
    while (*hw < w) {
        for (int i = 0; i < HIST_BINS / 2; i++) h[i] = h[2 * i] + h[2 * i + 1];
        for (int i = HIST_BINS / 2; i < HIST_BINS; i++) h[i] = 0;
        *hw *= 2;
    }
}

/* Adds a shard's histogram (h, w) to the totals' (H, *W): both are first
 * rebinned to the larger width (a shard's width depends on its first value). */
static void hist_merge(unsigned *H, float *W, unsigned *h, float w) {
    if (w == 0) return; /* nothing > 0 in the shard */
    if (*W == 0) *W = w;
    hist_rebin(H, W, w);
    hist_rebin(h, &w, *W);
    for (int i = 0; i < HIST_BINS; i++) H[i] += h[i];
}

/* a shard's result: images (u64), then per layer and channel sum (f64), max
 * (f32), silent (u64), heap size (i32), k heap entries (f32 value, u64 image,
 * i32 position) and the histogram (f32 width, HIST_BINS u32 counts) */
static size_t shard_blob_size(const struct layer_stats *ls, int n_ls, int k) {
    size_t b = 8;
    for (int j = 0; j < n_ls; j++) b += (size_t)ls[j].C * (8 + 4 + 8 + 4 + (size_t)k * 16 + 4 + HIST_BINS * 4);
    return b;
}

#define PUT(p, v) (memcpy((p), &(v), sizeof(v)), (p) += sizeof(v))
#define GET(p, v) (memcpy(&(v), (p), sizeof(v)), (p) += sizeof(v))

static void shard_pack(const struct layer_stats *ls, int n_ls, int k, uint64_t images, unsigned char *b) {
    PUT(b, images);
    for (int j = 0; j < n_ls; j++)
        for (int c = 0; c < ls[j].C; c++) {
            uint64_t silent = ls[j].silent[c];
            int32_t hn = ls[j].hn[c];
            PUT(b, ls[j].sum[c]), PUT(b, ls[j].max[c]), PUT(b, silent), PUT(b, hn);
            for (int i = 0; i < k; i++) {
                const struct top_item *t = &ls[j].heap[(size_t)c * (size_t)k + (size_t)i];
                float v = i < hn ? t->v : 0.0f;
                uint64_t item = i < hn ? t->item : 0;
                int32_t pos = i < hn ? t->pos : 0;
                PUT(b, v), PUT(b, item), PUT(b, pos);
            }
            PUT(b, ls[j].hist_w[c]);
            for (int i = 0; i < HIST_BINS; i++) {
                uint32_t n = ls[j].hist[(size_t)c * HIST_BINS + i];
                PUT(b, n);
            }
        }
}

/* Adds a shard's result to the totals (called in shard order). */
static uint64_t shard_merge(struct layer_stats *ls, int n_ls, int k, const unsigned char *b) {
    uint64_t images;
    GET(b, images);
    for (int j = 0; j < n_ls; j++)
        for (int c = 0; c < ls[j].C; c++) {
            double sum;
            float max;
            uint64_t silent;
            int32_t hn;
            GET(b, sum), GET(b, max), GET(b, silent), GET(b, hn);
            ls[j].sum[c] += sum;
            if (max > ls[j].max[c]) ls[j].max[c] = max;
            ls[j].silent[c] += (size_t)silent;
            for (int i = 0; i < k; i++) {
                struct top_item t;
                uint64_t item;
                int32_t pos;
                GET(b, t.v), GET(b, item), GET(b, pos);
                t.item = (size_t)item;
                t.pos = pos;
                if (i < hn) heap_push(ls[j].heap + (size_t)c * (size_t)k, &ls[j].hn[c], k, t);
            }
            float w;
            unsigned h[HIST_BINS];
            GET(b, w);
            for (int i = 0; i < HIST_BINS; i++) {
                uint32_t n;
                GET(b, n);
                h[i] = n;
            }
            hist_merge(ls[j].hist + (size_t)c * HIST_BINS, &ls[j].hist_w[c], h, w);
        }
    return images;
}

static void shard_name(void *ctx, int item, char *buf, size_t cap) {
    const struct shard_items *x = ctx;
    size_t a = (size_t)item * x->shard, b = a + x->shard < x->N ? a + x->shard : x->N;
    snprintf(buf, cap, "images %zu-%zu", a, b - 1);
}

static size_t shard_units(void *ctx, int item) {
    const struct shard_items *x = ctx;
    size_t a = (size_t)item * x->shard;
    return a + x->shard < x->N ? x->shard : x->N - a;
}

static int shard_run(void *ctx, int item, int count, unsigned char *blob, struct fv_error *err) {
    (void)count; /* one at a time */
    struct shard_items *x = ctx;
    struct fv_inputs *in = x->in;
    struct fv_plan *p = x->p;
    size_t a = (size_t)item * x->shard, end = a + shard_units(ctx, item), seen = 0;
    size_t per_in = (size_t)in->h * (size_t)in->w * (size_t)in->c;
    int rc = FV_OK;
    for (int j = 0; j < x->n_ls; j++) stats_reset(&x->ls[j], x->k);
    for (size_t first = a; first < end; first += (size_t)x->batch) {
        size_t cnt = end - first < (size_t)x->batch ? end - first : (size_t)x->batch;
        memset(p->x, 0, (size_t)x->batch * per_in * sizeof(float));
        if ((rc = fv_inputs_read(in, first, cnt, p->x, err))) break;
        fv_forward(p, -1);
        for (int j = 0; j < x->n_ls; j++) {
            size_t per = fv_shape_count(&p->io[x->ls[j].t].out);
            for (size_t b = 0; b < cnt; b++)
                accumulate(&x->ls[j], p->buf[x->ls[j].t].y + b * per, first + b, x->k, x->imax, x->isum);
        }
        seen += cnt;
        fv_progress_add(cnt);
        if (fv_interrupted() && first + cnt < end) break; /* the images seen so far: a partial shard */
    }
    shard_pack(x->ls, x->n_ls, x->k, (uint64_t)seen, blob);
    return rc;
}

int fv_job_stats(const struct fv_settings *s, struct fv_error *err) {
    struct fv_model m;
    struct fv_preproc pp;
    struct fv_inputs in = {0};
    struct fv_plan p = {0}, pt = {0}; /* pt: the input transposed, for receptive field columns */
    struct layer_stats *ls = NULL;
    int *layers = NULL, n_layers = 0, n_ls = 0;
    float *imax = NULL;
    double *isum = NULL;
    int rc = job_load_model(s, &m, err);
    if (rc) return rc;
    int h, w, c;
    fv_model_input_hwc(&m, &h, &w, &c);
    if ((rc = job_preproc(s, c, &pp, err))) goto done;
    if ((rc = fv_inputs_open(&in, fv_get_str(s, "stats", "inputs"), &m, &pp, 0, 0, err))) goto done;
    size_t N = in.total;
    int limit = fv_get_int(s, "stats", "limit");
    if (limit > 0 && (size_t)limit < N) N = (size_t)limit;
    int batch = fv_get_int(s, "stats", "batch");
    if ((size_t)batch > N) batch = (int)N;
    if (batch > fv_get_int(s, "stats", "shard")) batch = fv_get_int(s, "stats", "shard"); /* a pass stays in one shard */
    int k = fv_get_int(s, "stats", "topk");
    if ((rc = fit_batch(&m, batch, in.h, in.w, &batch, err))) goto done;
    if ((rc = fv_plan_init(&p, &m, batch, in.h, in.w, FV_PLAN_FUSE, err))) goto done;
    /* columns: the row geometry of the transposed input (none if the model
     * does not take it: the whole width is then given) */
    struct fv_error terr = {0};
    const struct fv_plan *cols = in.h == in.w ? &p : fv_plan_init(&pt, &m, 1, in.w, in.h, 0, &terr) ? NULL : &pt;
    if ((rc = pick_layers(s, &m, &p, &layers, &n_layers, err))) goto done;
    int max_c = 1;
    if (!(ls = calloc((size_t)n_layers, sizeof *ls))) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (; n_ls < n_layers && !rc; n_ls++) {
        rc = stats_init(&ls[n_ls], layers[n_ls], &p.io[layers[n_ls]].out, k, err);
        if (ls[n_ls].C > max_c) max_c = ls[n_ls].C;
    }
    if (rc) goto done;
    imax = malloc((size_t)max_c * sizeof *imax);
    isum = malloc((size_t)max_c * sizeof *isum);
    if (!imax || !isum) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        goto done;
    }

    /* the shards, then (rank 0) their sum */
    size_t shard = (size_t)fv_get_int(s, "stats", "shard");
    struct layer_stats *scratch = calloc((size_t)n_ls, sizeof *scratch);
    struct shard_items x = {&in, &p, scratch, n_ls, k, batch, N, shard, imax, isum};
    if (!scratch) rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    for (int j = 0; j < n_ls && !rc; j++) rc = stats_init(&scratch[j], ls[j].t, &p.io[ls[j].t].out, k, err);
    struct fv_items it = {.job = "stats", .dir = fv_get_str(s, "output", "dir"), .s = s, .n = (int)((N + shard - 1) / shard),
                          .max_take = 1, .blob_size = shard_blob_size(ls, n_ls, k), .item_units = shard_units,
                          .run = shard_run, .name = shard_name, .ctx = &x};
    if (!rc && !(rc = job_mkdirs(it.dir, err))) rc = fv_items_run(&it, err);
    size_t seen = 0;
    int interrupted = it.stopped;
    unsigned char *blob = !rc && fv_items_leader() ? malloc(it.blob_size) : NULL;
    if (!rc && fv_items_leader() && !blob) rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    for (int i = 0; i < it.n && blob && !rc; i++)
        if (it.have[i] && !(rc = fv_items_load(&it, i, blob, err))) seen += (size_t)shard_merge(ls, n_ls, k, blob);
    free(blob);
    for (int j = 0; scratch && j < n_ls; j++) stats_free(&scratch[j]);
    free(scratch);
    if (rc || !fv_items_leader() || it.already) goto done_items;
    for (int j = 0; j < n_ls; j++)
        for (int ch = 0; ch < ls[j].C; ch++)
            qsort(ls[j].heap + (size_t)ch * (size_t)k, (size_t)ls[j].hn[ch], sizeof *ls[j].heap, best_first);

    /* write everything, then the summary */
    const char *dir = it.dir;
    if ((rc = write_csv(dir, &m, ls, n_ls, seen, k, err))) goto done_items;
    int examples = fv_get_bool(s, "stats", "examples") && m.in_rank == 3;
    if ((rc = write_json(dir, &m, &p, cols, &in, ls, n_ls, seen, k, interrupted, examples, err))) goto done_items;
    if (examples && (rc = write_examples(dir, &in, &pp, ls, n_ls, k, err))) goto done_items;
    for (int j = 0; j < n_ls && !rc; j++) rc = write_chart(dir, &m, &p, &ls[j], seen, err);
    int montage = fv_get_bool(s, "stats", "montage") && m.in_rank == 3;
    for (int j = 0; j < n_ls && !rc && montage; j++) rc = write_top(dir, &m, &in, &pp, &ls[j], k, seen, err);
    if (rc) goto done_items;
    if (interrupted)
        printf("stats: interrupted after %zu of %zu images; the numbers below cover those %zu\n", seen, N, seen);
    for (int j = 0; j < n_ls; j++) summary_line(stdout, &m, &p, &ls[j], seen);
    printf("stats: %zu images, %d layer%s -> %s/stats.csv, stats.json, <layer>.chart.png%s%s\n", seen, n_ls,
           n_ls == 1 ? "" : "s", dir, montage ? ", <layer>.top.png" : "", examples ? ", examples/" : "");
    fflush(stdout);
    if (interrupted)
        rc = fv_error_set(err, FV_ERR_INTERRUPTED, "stats: interrupted after %zu of %zu images (results for those written to %s; continue with --resume)",
                          seen, N, dir);
done_items:
    fv_items_finish(&it);
done:
    for (int j = 0; j < n_ls; j++) stats_free(&ls[j]);
    free(ls);
    free(imax);
    free(isum);
    free(layers);
    fv_plan_free(&pt);
    fv_plan_free(&p);
    fv_inputs_close(&in);
    fv_model_free(&m);
    return rc;
}
