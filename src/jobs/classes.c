/* `featviz classes`: one synthesized image per class, a labelled montage, and
 * per class the objective reached and the model's probability and rank of the
 * target class on the final image (its recognizability). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/par.h"
#include "dist/items.h"
#include "featviz/jobs.h"
#include "featviz/progress.h"
#include "featviz/render.h"
#include "jobs/common.h"
#include "jobs/synth.h"

/* Number of classes: the size of the logits. */
static int class_count(const struct fv_model *m, int h, int w, struct fv_error *err) {
    int pre, t = fv_model_logits(m, &pre);
    struct fv_plan p;
    if (fv_plan_init_upto(&p, m, 1, h, w, 0, t, err)) return -1;
    int k = (int)fv_shape_count(&p.io[t].out);
    fv_plan_free(&p);
    return k;
}

/* "class:{c} - 0.2*class:13" with {c} = k */
static void expand(const char *tmpl, int k, char *out, size_t cap) {
    size_t n = 0;
    for (const char *p = tmpl; *p && n + 12 < cap; p++) {
        if (!strncmp(p, "{c}", 3)) {
            n += (size_t)snprintf(out + n, cap - n, "%d", k);
            p += 2;
        } else {
            out[n++] = *p;
        }
    }
    out[n] = 0;
}

/* Probability and rank (1 = top) of each target on the final images u
 * (n, H, W, c), downsampled (anti-aliased) to the model's h x w as in the
 * optimization. */
static int recognize(const struct fv_model *m, const struct fv_preproc *pp, const float *u, int n,
                     int H, int W, int h, int w, int c, const int *target, double *prob, int *rank,
                     struct fv_error *err) {
    struct fv_plan p;
    /* a forward pass per 8 images keeps this plan small; fewer large ones (as a synth lane) */
    int batch = synth_lane_size(h, w) < 8 ? synth_lane_size(h, w) : 8;
    if (batch > n) batch = n;
    float *small = NULL;
    int rc = synth_downsample(u, n, H, W, h, w, c, &small, err);
    if (rc) return rc;
    u = small;
    if ((rc = fv_plan_init(&p, m, batch, h, w, FV_PLAN_FUSE, err))) {
        free(small);
        return rc;
    }
    int k = (int)fv_shape_count(&p.io[m->output].out);
    size_t img = (size_t)h * (size_t)w * (size_t)c;
    for (int first = 0; first < n; first += batch) {
        int cnt = n - first < batch ? n - first : batch;
        memset(p.x, 0, (size_t)batch * img * sizeof(float));
        synth_to_model(pp, u + (size_t)first * img, p.x, (size_t)cnt * (size_t)h * (size_t)w, c);
        fv_forward(&p, m->output);
        for (int i = 0; i < cnt; i++) {
            const float *y = p.buf[m->output].y + (size_t)i * (size_t)k;
            int t = target[first + i], r = 1;
            for (int j = 0; j < k; j++) r += y[j] > y[t];
            prob[first + i] = y[t];
            rank[first + i] = r;
        }
    }
    fv_plan_free(&p);
    free(small);
    return FV_OK;
}

static int write_tables(const char *dir, const struct fv_labels *labels, const int *target,
                        const double *score, const double *prob, const int *rank, int n, int per,
                        struct fv_error *err) {
    char path[4200];
    struct fv_tmpfile t;
    snprintf(path, sizeof path, "%s/classes.csv", dir);
    int rc = fv_tmpfile_open(&t, path, err);
    if (rc) return rc;
    FILE *f = t.fp;
    fprintf(f, "class,label,objective,probability,rank,image\n");
    for (int i = 0; i < n; i++) {
        const char *lab = fv_labels_get(labels, target[i]);
        fprintf(f, "%d,\"%s\",%.6g,%.6g,%d,%d\n", target[i], lab ? lab : "", score[i], prob[i], rank[i], i % per);
    }
    if ((rc = fv_tmpfile_commit(&t, err))) return rc;
    snprintf(path, sizeof path, "%s/classes.json", dir);
    if ((rc = fv_tmpfile_open(&t, path, err))) return rc;
    f = t.fp;
    fprintf(f, "[");
    for (int i = 0; i < n; i++) {
        fprintf(f, "%s\n {\"class\": %d, \"label\": ", i ? "," : "", target[i]);
        const char *lab = fv_labels_get(labels, target[i]);
        if (lab) job_json_string(f, lab);
        else fprintf(f, "null");
        fprintf(f, ", \"objective\": %.6g, \"probability\": %.6g, \"rank\": %d, \"image\": %d}", score[i], prob[i], rank[i], i % per);
    }
    fprintf(f, "\n]\n");
    return fv_tmpfile_commit(&t, err);
}

/* ---- items: one lane of class images each (synth.h: the lanes are fixed by
 * the class list, so every image comes out the same whichever rank and
 * thread runs it); rank 0 writes the montage and the tables ---- */

struct class_items {
    const struct fv_model *m;
    const struct fv_preproc *pp;
    const struct synth_cfg *cfg;
    const struct fv_objective *obj;
    const struct fv_labels *labels;
    const int *target;
    const char *dir;
    int h, w;                      /* the model's input size */
    int H, W, c;                   /* the images' size (synth_display_size) */
    int min_size, per;             /* per: images per class (classes.per_class) */
    int widest;                    /* images in the largest lane */
    const int *start;              /* lane k: images start[k] .. start[k+1]-1, whole classes */
};

/* One image's part of an item's result: its score (double) and display image
 * (H, W, c) floats; an item holds `widest` of them. */
static size_t class_image_bytes(const struct class_items *x) {
    return sizeof(double) + (size_t)x->H * (size_t)x->W * (size_t)x->c * sizeof(float);
}

static void class_item_name(void *ctx, int item, char *buf, size_t cap) {
    const struct class_items *x = ctx;
    snprintf(buf, cap, "classes %d-%d", x->target[x->start[item]], x->target[x->start[item + 1] - 1]);
}

static size_t class_item_units(void *ctx, int item) {
    const struct class_items *x = ctx;
    return (size_t)(x->start[item + 1] - x->start[item]) * (size_t)x->cfg->steps;
}

static void class_png_path(const struct class_items *x, int i, char *path, size_t cap) {
    const char *lab = fv_labels_get(x->labels, x->target[i]);
    char slug[96], copy[24] = "";
    job_slug(lab ? lab : "", slug, sizeof slug);
    if (x->per > 1) snprintf(copy, sizeof copy, "_%d", i % x->per);
    snprintf(path, cap, "%s/class_%02d%s%s%s.png", x->dir, x->target[i], *slug ? "_" : "", slug, copy);
}

static int class_item_run(void *ctx, int first, int count, unsigned char *blobs, struct fv_error *err) {
    const struct class_items *x = ctx;
    size_t img = (size_t)x->H * (size_t)x->W * (size_t)x->c, ib = class_image_bytes(x);
    int i0 = x->start[first], n = x->start[first + count] - i0;
    float *u = malloc((size_t)n * img * sizeof *u);
    double *score = calloc((size_t)n, sizeof *score);
    uint64_t *keys = calloc((size_t)x->start[first + count], sizeof *keys);
    int rc = !u || !score || !keys ? fv_error_set(err, FV_ERR_NOMEM, "out of memory") : FV_OK;
    for (int i = i0; i < i0 + n && !rc; i++) /* the first image of a class keys as without per_class */
        keys[i] = (uint64_t)x->target[i] + (uint64_t)(i % x->per) * 1000003u;
    if (!rc) rc = synth_run_lanes(x->m, x->pp, x->cfg, x->obj, x->start + first, count, x->h, x->w, x->c, keys, u, score, err);
    for (int i = 0; i < n && !rc; i++) {
        char path[4400];
        class_png_path(x, i0 + i, path, sizeof path);
        rc = job_write_image(path, u + (size_t)i * img, x->H, x->W, x->c, x->min_size, err);
        int k = first; /* the item (lane) of image i0 + i, and its place there */
        while (x->start[k + 1] <= i0 + i) k++;
        unsigned char *b = blobs + (size_t)(k - first) * (size_t)x->widest * ib + (size_t)(i0 + i - x->start[k]) * ib;
        memcpy(b, &score[i], sizeof(double));
        memcpy(b + sizeof(double), u + (size_t)i * img, img * sizeof(float));
    }
    free(u), free(score), free(keys);
    return rc;
}

int fv_job_classes(const struct fv_settings *s, struct fv_error *err) {
    struct fv_model m;
    struct fv_labels labels = {0};
    struct fv_preproc pp;
    struct synth_cfg cfg;
    struct fv_objective *obj = NULL;
    float *u = NULL;
    double *score = NULL, *prob = NULL;
    int *target = NULL, *rank = NULL, n = 0;
    unsigned char *bytes = NULL;
    float *mag = NULL; /* MACO's magnitude spectrum, or NULL */
    struct synth_features feats = {0}; /* DeepInversion's statistics (features_from) */
    int rc = job_load_model(s, &m, err);
    if (rc) return rc;
    int h, w, c;
    fv_model_input_hwc(&m, &h, &w, &c);
    const char *dir = fv_get_str(s, "output", "dir");
    if ((rc = job_preproc(s, c, &pp, err)) || (rc = job_labels(s, &labels, err)) ||
        (rc = synth_cfg_read(s, "classes", &cfg, err)))
        goto done;
    if (m.in_rank != 3 || h < 1 || w < 1 || (c != 1 && c != 3)) {
        rc = fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: classes needs an image input of declared size with 1 or 3 channels", m.path);
        goto done;
    }
    int k = class_count(&m, h, w, err);
    if (k < 1) {
        rc = err->code;
        goto done;
    }
    if ((rc = job_index_list(fv_get_str(s, "classes", "targets"), k, "classes.targets",
                             fv_get_origin(s, "classes", "targets"), &target, &n, err)))
        goto done;
    int per = cfg.per_class; /* images per class, side by side */
    if (per > 1) { /* image i draws class target[i / per] */
        int *t = malloc((size_t)n * (size_t)per * sizeof *t);
        if (!t) {
            rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (int i = 0; i < n * per; i++) t[i] = target[i / per];
        free(target);
        target = t;
        n *= per;
        cfg.batch = cfg.batch < per ? per : cfg.batch / per * per; /* whole classes per batch */
    }
    int H, W; /* the images' size (synth_display_size); the model sees them downsampled */
    synth_display_size(&cfg, h, w, &H, &W);
    size_t img = (size_t)H * (size_t)W * (size_t)c;
    obj = calloc((size_t)n, sizeof *obj);
    u = malloc((size_t)n * img * sizeof *u);
    score = calloc((size_t)n, sizeof *score);
    prob = calloc((size_t)n, sizeof *prob);
    rank = calloc((size_t)n, sizeof *rank);
    bytes = malloc((size_t)n * img);
    if (!obj || !u || !score || !prob || !rank || !bytes) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        goto done;
    }
    const char *tmpl = fv_get_str(s, "classes", "objective");
    for (int i = 0; i < n; i++) {
        char text[256];
        expand(tmpl, target[i], text, sizeof text);
        if ((rc = fv_objective_parse(text, &m, &obj[i], err))) {
            fv_error_prefix(err, "%s", fv_get_origin(s, "classes", "objective"));
            goto done;
        }
    }
    if ((rc = job_mkdirs(dir, err)) || (rc = job_write_config(s, "classes", dir, err))) goto done;
    int min_size = fv_get_int(s, "classes", "min_size");
    const char *from = fv_get_str(s, "classes", "spectrum_from");
    if (from && *from) { /* every rank needs the spectrum; rank 0 keeps it as spectrum.npy */
        if ((rc = synth_spectrum(from, fv_get_origin(s, "classes", "spectrum_from"), &cfg, H, W, c,
                                 fv_items_leader() ? dir : NULL, &mag, err)))
            goto done;
        cfg.param.magnitude = mag;
    }
    const char *ffrom = fv_get_str(s, "classes", "features_from");
    if (ffrom && *ffrom) { /* every rank needs them; rank 0 keeps them as features.npy */
        if ((rc = synth_features(ffrom, fv_get_str(s, "classes", "features_layers"), fv_get_origin(s, "classes", "features_from"),
                                 &m, &pp, h, w, fv_items_leader() ? dir : NULL, &feats, err)))
            goto done;
        cfg.features = &feats;
    }
    int *start = malloc(((size_t)n + 2) * sizeof *start);
    if (!start) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        goto done;
    }
    int lanes = synth_lanes(n, per, synth_lane_size(h, w), start), widest = 1;
    for (int l = 0; l < lanes; l++)
        if (start[l + 1] - start[l] > widest) widest = start[l + 1] - start[l];
    struct class_items x = {&m, &pp, &cfg, obj, &labels, target, dir, h, w, H, W, c, min_size, per, widest, start};
    /* a rank takes a lane per thread at a time (classes.batch images at most) */
    int take = fv_omp_max_threads() < cfg.batch / widest ? fv_omp_max_threads() : cfg.batch / widest;
    struct fv_items it = {.job = "classes", .dir = dir, .s = s, .n = lanes, .max_take = take > 1 ? take : 1,
                          .blob_size = (size_t)widest * class_image_bytes(&x), .item_units = class_item_units,
                          .run = class_item_run, .name = class_item_name, .ctx = &x};
    if ((rc = fv_items_run(&it, err)) || !fv_items_leader() || it.already) goto done_items;
    /* rank 0: the images there are, in class order (a stopped run: those
     * reached; lanes hold whole classes, so image i % per stays right) */
    int kept = 0;
    unsigned char *blob = malloc(it.blob_size);
    size_t ib = class_image_bytes(&x);
    for (int l = 0; l < lanes && blob && !rc; l++) {
        if (!it.have[l] || (rc = fv_items_load(&it, l, blob, err))) continue;
        for (int i = start[l]; i < start[l + 1]; i++, kept++) {
            const unsigned char *b = blob + (size_t)(i - start[l]) * ib;
            memcpy(&score[kept], b, sizeof(double));
            memcpy(u + (size_t)kept * img, b + sizeof(double), img * sizeof(float));
            target[kept] = target[i];
        }
    }
    if (!blob) rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    free(blob);
    n = kept;
    if (!rc && n == 0) { /* Ctrl-C before the first batch was done: nothing to write */
        printf("%s: stopped by Ctrl-C before the first images were done\n", m.name);
        goto done_items;
    }
    if (rc || (rc = recognize(&m, &pp, u, n, H, W, h, w, c, target, prob, rank, err))) goto done_items;
    /* pictures */
    char **captions = calloc((size_t)n, sizeof *captions);
    const unsigned char **tiles = calloc((size_t)n, sizeof *tiles);
    int good = 0;
    for (int i = 0; i < n && captions && tiles; i++) {
        const char *lab = fv_labels_get(&labels, target[i]);
        synth_to_bytes(u + (size_t)i * img, bytes + (size_t)i * img, img);
        tiles[i] = bytes + (size_t)i * img;
        captions[i] = malloc(160);
        if (captions[i] && (per == 1 || i % per == 0)) snprintf(captions[i], 160, "%d %s", target[i], lab ? lab : "");
        else if (captions[i]) snprintf(captions[i], 160, "%d (%d)", target[i], i % per + 1);
        good += prob[i] >= 0.9;
    }
    if (!captions || !tiles) rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    if (!rc) {
        char title[512], path[4200];
        snprintf(title, sizeof title, "%s: class images (%d steps, seed %d)", m.name, cfg.steps, (int)cfg.seed);
        struct fv_montage_spec ms = {.tiles = tiles, .n = n, .th = H, .tw = W, .channels = c,
                                     .captions = (const char *const *)captions,
                                     .cols = per > 1 ? per * (fv_get_int(s, "classes", "cols") / per > 1 ? fv_get_int(s, "classes", "cols") / per : 1)
                                                     : fv_get_int(s, "classes", "cols"),
                                     .scale = fv_upscale_for(H > W ? H : W, min_size < 128 ? min_size : 128),
                                     .margin = -1, .title = title};
        snprintf(path, sizeof path, "%s/montage.png", dir);
        rc = fv_montage_write(path, &ms, err);
    }
    for (int i = 0; captions && i < n; i++) free(captions[i]);
    free(captions);
    free((void *)tiles);
    if (!rc) {
        char path[4200];
        size_t dims[4] = {(size_t)n, (size_t)H, (size_t)W, (size_t)c};
        snprintf(path, sizeof path, "%s/classes.npy", dir);
        rc = fv_npy_save(path, u, 4, dims, err);
    }
    if (!rc) rc = write_tables(dir, &labels, target, score, prob, rank, n, per, err);
    if (!rc)
        printf("%s: %d class images in %s/: the model gives %d of them probability >= 0.9%s\n", m.name, n, dir, good,
               it.stopped ? " (stopped early by Ctrl-C; continue with --resume)" : "");
done_items:
    fv_items_finish(&it);
    free(start);
done:
    free(mag);
    synth_features_free(&feats);
    free(obj);
    free(u);
    free(score);
    free(prob);
    free(rank);
    free(target);
    free(bytes);
    fv_labels_free(&labels);
    fv_model_free(&m);
    return rc;
}
