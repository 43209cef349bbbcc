/* `featviz filters`: each filter's preferred pattern for one, several or all
 * conv layers; a montage per layer sorted by the activation reached, with
 * filters that stay dead after the dead-ReLU escape framed red; CSV/JSON; and
 * for the first conv layer its raw kernels. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/par.h"
#include "dist/items.h"
#include "featviz/jobs.h"
#include "featviz/progress.h"
#include "featviz/render.h"
#include "featviz/tmpfile.h"
#include "jobs/common.h"
#include "jobs/synth.h"

static int is_conv(const struct fv_layer *l) {
    return l->ops && (l->ops->flags & FV_OPF_FILTERS);
}

/* A unit of a ReLU output that never exceeds 0 is off: its pattern is dead. */
static int relu_like(const struct fv_layer *l) {
    return l->act.kind == FV_ACT_RELU && l->act.alpha == 0.0f;
}

/* "all" (every conv layer) or named layers. */
static int pick(const struct fv_settings *s, const struct fv_model *m, int **out, int *n,
                struct fv_error *err) {
    const char *list = fv_get_str(s, "filters", "layer");
    *out = malloc((size_t)m->n_layers * sizeof **out);
    *n = 0;
    if (!*out) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    if (!strcmp(list, "all")) {
        for (int i = 0; i < m->n_layers; i++)
            if (is_conv(&m->layers[i])) (*out)[(*n)++] = i;
        if (!*n) return fv_error_set(err, FV_ERR_USAGE, "%s has no conv layers", m->path);
        return FV_OK;
    }
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", list);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        int t = fv_model_find(m, tok);
        if (t < 0 || t == m->input)
            return fv_error_set(err, FV_ERR_USAGE, "%s: no layer named '%s' in %s (see featviz info)",
                                fv_get_origin(s, "filters", "layer"), tok, m->path);
        if (*n < m->n_layers) (*out)[(*n)++] = t;
    }
    return FV_OK;
}

/* The first conv layer's kernels (KH,KW,C,OC) as tiles, one per output
 * channel, 0 drawn mid-gray and +-max|w| at the ends. */
static int write_kernels(const char *path, const struct fv_layer *l, struct fv_error *err) {
    const struct fv_conv_params *p = &l->p.conv;
    int kh = p->kh, kw = p->kw, oc = p->filters;
    size_t total = l->w_len[0];
    int ci = (int)(total / ((size_t)kh * kw * oc));
    int tc = ci == 3 ? 3 : 1;
    float mx = 0;
    for (size_t i = 0; i < total; i++) mx = fabsf(l->w[0][i]) > mx ? fabsf(l->w[0][i]) : mx;
    unsigned char *bytes = malloc((size_t)oc * kh * kw * tc);
    const unsigned char **tiles = malloc((size_t)oc * sizeof *tiles);
    if (!bytes || !tiles) {
        free(bytes), free((void *)tiles);
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    }
    for (int o = 0; o < oc; o++) {
        unsigned char *t = bytes + (size_t)o * kh * kw * tc;
        for (int y = 0; y < kh; y++)
            for (int x = 0; x < kw; x++)
                for (int k = 0; k < tc; k++) {
                    /* gray kernels of multi-channel inputs: the channel mean */
                    float v = 0;
                    for (int c = (tc == 3 ? k : 0); c < (tc == 3 ? k + 1 : ci); c++)
                        v += l->w[0][(((size_t)y * kw + x) * ci + c) * oc + o];
                    if (tc == 1) v /= (float)ci;
                    float t01 = mx > 0 ? 0.5f + 0.5f * v / mx : 0.5f;
                    t[((size_t)y * kw + x) * tc + k] = (unsigned char)(t01 * 255.0f + 0.5f);
                }
        tiles[o] = t;
    }
    char title[256];
    snprintf(title, sizeof title, "%s kernels %dx%d (gray = 0, range +-%.3g)", l->name, kh, kw, (double)mx);
    struct fv_montage_spec ms = {.tiles = tiles, .n = oc, .th = kh, .tw = kw, .channels = tc,
                                 .number_tiles = 1, .cols = 8, .scale = fv_upscale_for(kh > kw ? kh : kw, 48),
                                 .margin = -1, .title = title};
    int rc = fv_montage_write(path, &ms, err);
    free(bytes);
    free((void *)tiles);
    return rc;
}

struct ranked {
    int filter;
    double score;
};

static int by_score(const void *a, const void *b) {
    const struct ranked *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    return x->filter - y->filter;
}

static int write_layer(const struct fv_settings *s, const char *dir, const struct fv_layer *l,
                       const int *filt, int n, const float *u, const double *score, const int *dead,
                       int h, int w, int c, struct fv_error *err) {
    size_t img = (size_t)h * w * c;
    int min_size = fv_get_int(s, "filters", "min_size"), rc = FV_OK;
    char sub[4200], path[4400], fname[FV_NAME_MAX];
    job_safe_name(l->name, fname, sizeof fname); /* ONNX names hold '/' */
    snprintf(sub, sizeof sub, "%s/%s", dir, fname);
    if ((rc = job_mkdirs(sub, err))) return rc;
    struct ranked *r = malloc((size_t)n * sizeof *r);
    unsigned char *bytes = malloc((size_t)n * img);
    const unsigned char **tiles = malloc((size_t)n * sizeof *tiles);
    char (*cap)[48] = malloc((size_t)n * sizeof *cap);
    int *flag = malloc((size_t)n * sizeof *flag);
    if (!r || !bytes || !tiles || !cap || !flag) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) r[i].filter = i, r[i].score = score[i]; /* filter_NNN.png: by the items */
    qsort(r, (size_t)n, sizeof *r, by_score);
    const char *caps[4096];
    for (int k = 0; k < n; k++) {
        int i = r[k].filter;
        synth_to_bytes(u + (size_t)i * img, bytes + (size_t)k * img, img);
        tiles[k] = bytes + (size_t)k * img;
        snprintf(cap[k], sizeof cap[k], "%d: %.3g%s", filt[i], score[i], dead[i] ? " dead" : "");
        caps[k < 4096 ? k : 4095] = cap[k];
        flag[k] = dead[i];
    }
    if (!rc) {
        char title[300];
        snprintf(title, sizeof title, "%s: %d filters, sorted by the activation reached", l->name, n);
        struct fv_montage_spec ms = {.tiles = tiles, .n = n < 4096 ? n : 4096, .th = h, .tw = w, .channels = c,
                                     .captions = caps, .flagged = flag, .cols = fv_get_int(s, "filters", "cols"),
                                     .scale = fv_upscale_for(h > w ? h : w, min_size < 96 ? min_size : 96),
                                     .margin = -1, .title = title};
        snprintf(path, sizeof path, "%s/%s.png", dir, fname);
        rc = fv_montage_write(path, &ms, err);
    }
    struct fv_tmpfile t;
    snprintf(path, sizeof path, "%s/%s.csv", dir, fname);
    if (!rc && !(rc = fv_tmpfile_open(&t, path, err))) {
        fprintf(t.fp, "layer,filter,objective,dead\n");
        for (int i = 0; i < n; i++) fprintf(t.fp, "%s,%d,%.6g,%d\n", l->name, filt[i], score[i], dead[i]);
        rc = fv_tmpfile_commit(&t, err);
    }
    snprintf(path, sizeof path, "%s/%s.json", dir, fname);
    if (!rc && !(rc = fv_tmpfile_open(&t, path, err))) {
        fprintf(t.fp, "{\"layer\": ");
        job_json_string(t.fp, l->name);
        fprintf(t.fp, ", \"filters\": [");
        for (int i = 0; i < n; i++)
            fprintf(t.fp, "%s\n {\"filter\": %d, \"objective\": %.6g, \"dead\": %s}", i ? "," : "", filt[i], score[i],
                    dead[i] ? "true" : "false");
        fprintf(t.fp, "\n]}\n");
        rc = fv_tmpfile_commit(&t, err);
    }
done:
    free(r);
    free(bytes);
    free((void *)tiles);
    free(cap);
    free(flag);
    return rc;
}

/* ---- items: one lane of filters of one layer each (synth.h: lanes fixed by
 * the layer's filter list); rank 0 writes each layer's montage and tables ---- */

struct filter_items {
    const struct fv_model *m;
    const struct fv_preproc *pp;
    const struct synth_cfg *cfg;
    const int *layers;         /* (layers) nodes */
    int **filt, *n_filt;       /* (layers) the filters drawn of each */
    const char *dir;
    int h, w;                  /* the model's input size */
    int H, W, c, pre, min_size; /* H, W: the images' size (synth_display_size) */
    int n_items;
    int lane;                  /* images per lane at most (synth_lane_size) */
    int *item_layer;           /* (items) which layer (k) */
    int *item_first;           /* (items + 1) first filter (index into filt[k]); the last ends at the next */
};

static int filter_items_make(struct filter_items *x, int n_layers, struct fv_error *err) {
    int total = 0, lane = x->lane;
    for (int k = 0; k < n_layers; k++) total += (x->n_filt[k] + lane - 1) / lane;
    x->item_layer = malloc(((size_t)total + 1) * sizeof *x->item_layer);
    x->item_first = malloc(((size_t)total + 1) * sizeof *x->item_first);
    int *start = malloc(((size_t)total + 2) * sizeof *start);
    if (!x->item_layer || !x->item_first || !start) {
        free(start);
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    }
    x->n_items = 0;
    for (int k = 0; k < n_layers; k++) {
        int lanes = synth_lanes(x->n_filt[k], 1, lane, start);
        for (int j = 0; j < lanes; j++, x->n_items++) {
            x->item_layer[x->n_items] = k;
            x->item_first[x->n_items] = start[j];
            x->item_first[x->n_items + 1] = start[j + 1]; /* overwritten by the next item's start (0 on a new layer) */
        }
    }
    free(start);
    return FV_OK;
}

/* filters of item i: x->filt[k][a .. b-1] */
static void filter_item_range(const struct filter_items *x, int i, int *k, int *a, int *b) {
    *k = x->item_layer[i], *a = x->item_first[i];
    *b = i + 1 < x->n_items && x->item_layer[i + 1] == *k ? x->item_first[i + 1] : x->n_filt[*k];
}

static void filter_item_name(void *ctx, int item, char *buf, size_t cap) {
    const struct filter_items *x = ctx;
    int k, a, b;
    filter_item_range(x, item, &k, &a, &b);
    snprintf(buf, cap, "%s filters %d-%d", x->m->layers[x->layers[k]].name, x->filt[k][a], x->filt[k][b - 1]);
}

static size_t filter_item_units(void *ctx, int item) {
    const struct filter_items *x = ctx;
    int k, a, b;
    filter_item_range(x, item, &k, &a, &b);
    return (size_t)(b - a) * (size_t)x->cfg->steps;
}

/* Items first .. first+count-1 (one layer: the queue keeps groups together). */
static int filter_item_run(void *ctx, int first, int count, unsigned char *blobs, struct fv_error *err) {
    const struct filter_items *x = ctx;
    int k, a, b, last_b;
    filter_item_range(x, first, &k, &a, &b);
    filter_item_range(x, first + count - 1, &k, &b, &last_b);
    a = x->item_first[first];
    int n = last_b - a;
    const struct fv_layer *l = &x->m->layers[x->layers[k]];
    size_t img = (size_t)x->H * x->W * x->c, ib = sizeof(double) + img * sizeof(float);
    struct fv_objective *obj = calloc((size_t)n, sizeof *obj);
    float *u = malloc((size_t)n * img * sizeof *u);
    double *score = calloc((size_t)n, sizeof *score);
    uint64_t *keys = calloc((size_t)n, sizeof *keys);
    int *start = malloc(((size_t)count + 1) * sizeof *start);
    char sub[4200], path[4400], fname[FV_NAME_MAX];
    job_safe_name(l->name, fname, sizeof fname); /* ONNX names hold '/' */
    snprintf(sub, sizeof sub, "%s/%s", x->dir, fname);
    int rc = !obj || !u || !score || !keys || !start ? fv_error_set(err, FV_ERR_NOMEM, "out of memory") : job_mkdirs(sub, err);
    for (int i = 0; i < n && !rc; i++) {
        char text[300];
        int f = x->filt[k][a + i];
        snprintf(text, sizeof text, "filter:%s:%d%s", l->name, f, x->pre ? ":pre" : "");
        rc = fv_objective_parse(text, x->m, &obj[i], err);
        keys[i] = (uint64_t)x->layers[k] * 100003u + (uint64_t)f;
    }
    for (int j = 0; j < count && !rc; j++) start[j] = x->item_first[first + j] - a;
    start[count] = n;
    if (!rc) rc = synth_run_lanes(x->m, x->pp, x->cfg, obj, start, count, x->h, x->w, x->c, keys, u, score, err);
    for (int j = 0; j < count && !rc; j++)
        for (int i = start[j]; i < start[j + 1] && !rc; i++) {
            snprintf(path, sizeof path, "%s/filter_%03d.png", sub, x->filt[k][a + i]);
            rc = job_write_image(path, u + (size_t)i * img, x->H, x->W, x->c, x->min_size, err);
            unsigned char *bl = blobs + (size_t)j * (size_t)x->lane * ib + (size_t)(i - start[j]) * ib;
            memcpy(bl, &score[i], sizeof(double));
            memcpy(bl + sizeof(double), u + (size_t)i * img, img * sizeof(float));
        }
    free(obj), free(u), free(score), free(keys), free(start);
    return rc;
}

int fv_job_filters(const struct fv_settings *s, struct fv_error *err) {
    struct fv_model m;
    struct fv_preproc pp;
    struct synth_cfg cfg;
    int *layers = NULL, n_layers = 0;
    int rc = job_load_model(s, &m, err);
    if (rc) return rc;
    int h, w, c;
    fv_model_input_hwc(&m, &h, &w, &c);
    const char *dir = fv_get_str(s, "output", "dir");
    if ((rc = job_preproc(s, c, &pp, err)) || (rc = synth_cfg_read(s, "filters", &cfg, err)) ||
        (rc = pick(s, &m, &layers, &n_layers, err)))
        goto done;
    if (m.in_rank != 3 || h < 1 || w < 1 || (c != 1 && c != 3)) {
        rc = fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: filters needs an image input of declared size with 1 or 3 channels", m.path);
        goto done;
    }
    if ((rc = job_mkdirs(dir, err)) || (rc = job_write_config(s, "filters", dir, err))) goto done;
    /* channels per layer, to size the work */
    int *chans = calloc((size_t)n_layers, sizeof *chans), total = 0;
    for (int k = 0; chans && k < n_layers && !rc; k++) {
        struct fv_plan p;
        if ((rc = fv_plan_init_upto(&p, &m, 1, h, w, 0, layers[k], err))) break;
        const struct fv_shape *o = &p.io[layers[k]].out;
        chans[k] = o->d[o->rank - 1];
        fv_plan_free(&p);
        total += chans[k];
    }
    if (!chans) rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    if (rc) {
        free(chans);
        goto done;
    }
    int first_conv = -1;
    for (int i = 0; i < m.n_layers && first_conv < 0; i++)
        if (m.layers[i].ops && (m.layers[i].ops->flags & FV_OPF_KERNEL_IMAGE)) first_conv = i;
    int H, W; /* the images' size (synth_display_size) */
    synth_display_size(&cfg, h, w, &H, &W);
    float *mag = NULL; /* MACO's magnitude spectrum, or NULL */
    const char *from = fv_get_str(s, "filters", "spectrum_from");
    /* every rank needs the spectrum; rank 0 keeps it as spectrum.npy */
    if (from && *from && !(rc = synth_spectrum(from, fv_get_origin(s, "filters", "spectrum_from"), &cfg, H, W, c,
                                               fv_items_leader() ? dir : NULL, &mag, err)))
        cfg.param.magnitude = mag;
    struct filter_items x = {.m = &m, .pp = &pp, .cfg = &cfg, .layers = layers, .dir = dir, .h = h, .w = w, .H = H, .W = W, .c = c,
                             .pre = fv_get_bool(s, "filters", "pre"), .min_size = fv_get_int(s, "filters", "min_size")};
    if (!rc && (!(x.filt = calloc((size_t)n_layers, sizeof *x.filt)) || !(x.n_filt = calloc((size_t)n_layers, sizeof *x.n_filt))))
        rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    for (int k = 0; k < n_layers && !rc; k++)
        rc = job_index_list(fv_get_str(s, "filters", "filters"), chans[k], "filters.filters",
                            fv_get_origin(s, "filters", "filters"), &x.filt[k], &x.n_filt[k], err);
    x.lane = synth_lane_size(h, w);
    if (!rc) rc = filter_items_make(&x, n_layers, err);
    size_t img = (size_t)H * W * c, ib = sizeof(double) + img * sizeof(float);
    int take = fv_omp_max_threads() < cfg.batch / x.lane ? fv_omp_max_threads() : cfg.batch / x.lane;
    struct fv_items it = {.job = "filters", .dir = dir, .s = s, .n = x.n_items, .group = x.item_layer,
                          .max_take = take > 1 ? take : 1, .blob_size = (size_t)x.lane * ib,
                          .item_units = filter_item_units, .run = filter_item_run, .name = filter_item_name, .ctx = &x};
    if (!rc) rc = fv_items_run(&it, err);
    int drawn_layers = it.already ? 0 : n_layers; /* a resumed run: this job was complete */
    /* rank 0: per layer, the montage and tables of the filters there are */
    unsigned char *blob = fv_items_leader() && !rc ? malloc(it.blob_size) : NULL;
    if (fv_items_leader() && !rc && !blob) rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    for (int k = 0; k < drawn_layers && !rc && blob; k++) {
        const struct fv_layer *l = &m.layers[layers[k]];
        int nf = x.n_filt[k], n = 0, n_dead = 0;
        int *filt = malloc((size_t)(nf ? nf : 1) * sizeof *filt), *dead = calloc((size_t)(nf ? nf : 1), sizeof *dead);
        float *u = malloc((size_t)(nf ? nf : 1) * img * sizeof *u);
        double *score = calloc((size_t)(nf ? nf : 1), sizeof *score);
        if (!filt || !dead || !u || !score) rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        for (int i = 0; i < x.n_items && !rc; i++) {
            if (x.item_layer[i] != k || !it.have[i] || (rc = fv_items_load(&it, i, blob, err))) continue;
            int kk, ja, jb;
            filter_item_range(&x, i, &kk, &ja, &jb);
            for (int j = ja; j < jb; j++, n++) {
                const unsigned char *b = blob + (size_t)(j - ja) * ib;
                memcpy(&score[n], b, sizeof(double));
                memcpy(u + (size_t)n * img, b + sizeof(double), img * sizeof(float));
                filt[n] = x.filt[k][j];
                n_dead += dead[n] = !x.pre && relu_like(l) && score[n] <= 0;
            }
        }
        if (!rc && n) rc = write_layer(s, dir, l, filt, n, u, score, dead, H, W, c, err);
        if (!rc && n && layers[k] == first_conv) {
            char path[4200], fname[FV_NAME_MAX];
            job_safe_name(l->name, fname, sizeof fname);
            snprintf(path, sizeof path, "%s/%s.kernels.png", dir, fname);
            rc = write_kernels(path, l, err);
        }
        if (!rc && n) {
            printf("%s: %d filters%s", l->name, n, n_dead ? ", dead after the escape:" : "");
            for (int i = 0, j = 0; i < n; i++)
                if (dead[i]) printf("%s %d", j++ ? "," : "", filt[i]);
            printf("\n");
        }
        free(filt), free(dead), free(u), free(score);
    }
    free(blob);
    if (!rc && fv_items_leader() && it.stopped) printf("stopped early by Ctrl-C; the layers above were written; continue with --resume\n");
    fv_items_finish(&it);
    for (int k = 0; x.filt && k < n_layers; k++) free(x.filt[k]);
    free(x.filt), free(x.n_filt), free(x.item_layer), free(x.item_first);

    free(chans);
    free(mag);
done:
    free(layers);
    fv_model_free(&m);
    return rc;
}
