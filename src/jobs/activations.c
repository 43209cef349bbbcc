/* `featviz activations`: what every filter of every chosen layer does with
 * each input (Quiver's view), as pictures, predictions and raw arrays.
 *
 * Per input item (an image file, or image i of a batched .npy array):
 *   DIR/<item>/<layer>/<layer>_<c>.png   channel c's map, upscaled (nearest) to
 *                                        at least activations.min_size pixels
 *   DIR/<item>/<layer>.grid.png          all of the layer's maps, numbered
 *   DIR/<item>/<layer>.bars.png          rank-1 outputs (Dense, Flatten) as a bar strip
 *   DIR/<item>/predictions.txt, .json    the model's top-N classes
 * where <item> is the input's file stem, or <stem>_<i> for image i of an
 * array with a batch axis. Layer names with '/' (nested models) use '_'.
 * With layers = all, every Keras layer but the input is drawn except pure
 * identities at inference (Dropout, GaussianNoise, ...), whose pictures would
 * repeat their input's.
 *
 * Maps: a node's output is (H, W, C) physical per image, channel last (rank 2
 * (L, C) is drawn as 1 x L maps, rank 4 (a, b, c, C) as (a*b) x c). Normalisation
 * (activations.norm) turns a map into t in [0, 1] for the colour map:
 *   map:   Quiver's deprocess: t = clip((v - mean) / (std + 1e-5) * 0.1 + 0.5),
 *          mean/std over the map; an all-zero map comes out mid-scale (0.5),
 *          like a weak one.
 *   layer: t = (v - lo) / (hi - lo), lo..hi = min..max over all the layer's
 *          channels for this input (lo = 0 when the layer has no negative value),
 *          so a dark map is really weak compared to its neighbours.
 *   fixed: lo..hi = activations.lo..hi.
 * With activations.overlay > 0 the coloured map is blended at that opacity over
 * the input image (deprocessed, resized bilinearly to the picture's size; a
 * 'valid' conv's map covers a slightly smaller field than the whole image).
 *
 * With activations.npy: DIR/<input stem>/<layer>.npy in the layer's Keras
 * layout with a leading batch axis (1 for an image or an unbatched array, N
 * for an N-image array); activations.pre adds <layer>.pre.npy. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/par.h"
#include "dist/items.h"
#include "jobs/activations_png8.h"
#include "featviz/jobs.h"
#include "featviz/progress.h"
#include "featviz/render.h"
#include "jobs/common.h"
#include "jobs/inputs.h"
#include "jobs/topn.h"

/* Chosen layers: "all" (every Keras layer but the input) or a name list. */
static int pick_layers(const struct fv_settings *s, const struct fv_model *m, int **out, int *n,
                       struct fv_error *err) {
    const char *list = fv_get_str(s, "activations", "layers");
    *out = malloc((size_t)m->n_layers * sizeof **out);
    *n = 0;
    if (!*out) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    if (!list || !strcmp(list, "all")) {
        for (int i = 0; i < m->n_layers; i++)
            if (!m->layers[i].hidden && i != m->input) (*out)[(*n)++] = i;
        return FV_OK;
    }
    char *buf = strdup(list), *save = NULL;
    if (!buf) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        int t = fv_model_find(m, tok);
        if (t < 0) {
            fv_error_set(err, FV_ERR_USAGE, "%s: no layer named '%s' in %s (see featviz info)",
                         fv_get_origin(s, "activations", "layers"), tok, m->path);
            free(buf);
            return FV_ERR_USAGE;
        }
        if (*n < m->n_layers) (*out)[(*n)++] = t;
    }
    free(buf);
    return FV_OK;
}

/* Dropout, GaussianNoise, ...: output = input at inference. */
static int is_pure_identity(const struct fv_layer *l) {
    return l->ops && !strcmp(l->ops->kind, "identity") && l->act.kind == FV_ACT_LINEAR;
}

/* Everything the pictures of one item need. */
struct acts_ctx {
    const struct fv_model *m;
    const struct fv_plan *p;
    const struct fv_inputs *in;
    const struct fv_preproc *pp;
    const struct fv_labels *labels;
    const int *layers;
    int n_layers;
    int norm;
    float lo, hi;             /* norm = fixed */
    enum fv_cmap cmap;
    float overlay;            /* 0: off */
    int min_size;
    int top, probs;
    int k_out;                /* values of the model output per item */
    const float *out;         /* (batch, k_out) model outputs, Keras order */
    const char *dir;          /* output.dir */
    int all;                  /* layers = all: no pictures of pure identities */
    int png8;                 /* format = png8: one 8-bit gray PNG per layer */
    int drawn;                /* layers drawn per item */
};

/* The input image as displayable RGB floats 0..255 (for overlays). */
static int input_rgb(const struct acts_ctx *c, const float *x, struct fv_image *img,
                     struct fv_error *err) {
    const struct fv_inputs *in = c->in;
    size_t n = (size_t)in->h * (size_t)in->w;
    unsigned char *bytes = malloc(n * (size_t)in->c);
    img->h = in->h, img->w = in->w, img->c = 3;
    img->data = malloc(n * 3 * sizeof(float));
    if (!bytes || !img->data) {
        free(bytes);
        fv_image_free(img);
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    }
    fv_deprocess(c->pp, x, in->h, in->w, in->c, bytes);
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 3; k++) img->data[3 * i + (size_t)k] = bytes[i * (size_t)in->c + (size_t)(in->c == 3 ? k : 0)];
    free(bytes);
    return FV_OK;
}

/* The input resized to h x w as RGB bytes (h, w, 3). */
static int background(const struct fv_image *rgb, int h, int w, unsigned char **out,
                      struct fv_error *err) {
    struct fv_image r = {0};
    int rc = fv_image_resize(rgb, h, w, FV_RESIZE_BILINEAR, &r, err);
    if (rc) return rc;
    size_t n = (size_t)h * (size_t)w * 3;
    if (!(*out = malloc(n))) {
        fv_image_free(&r);
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        float v = r.data[i] < 0 ? 0 : r.data[i] > 255 ? 255 : r.data[i];
        (*out)[i] = (unsigned char)floorf(v + 0.5f);
    }
    fv_image_free(&r);
    return FV_OK;
}

/* One layer's bar strip (rank-1 output). */
static int draw_bars(const struct acts_ctx *c, int t, const float *y, const char *dir,
                     struct fv_error *err) {
    const struct fv_layer *l = &c->m->layers[t];
    const struct fv_shape *s = &c->p->io[t].out;
    int n = (int)fv_shape_count(s);
    float *v = malloc((size_t)n * sizeof *v); /* (n) Keras order */
    if (!v) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    fv_to_keras(l, s, y, v);
    char name[FV_NAME_MAX], title[FV_NAME_MAX + 64], path[4500];
    job_safe_name(l->name, name, sizeof name);
    snprintf(title, sizeof title, "%s: %d unit%s", l->name, n, n == 1 ? "" : "s");
    struct fv_bars_spec spec = {.v = v, .n = n, .title = title};
    int rc = job_path(path, sizeof path, err, "%s/%s.bars.png", dir, name);
    if (!rc) rc = fv_bars_write(path, &spec, err);
    free(v);
    return rc;
}

/* One layer's maps: a PNG per channel and the numbered grid. */
static int draw_maps(const struct acts_ctx *c, int t, const float *y, const char *dir,
                     const struct fv_image *rgb, struct fv_error *err) {
    const struct fv_layer *l = &c->m->layers[t];
    const struct fv_shape *s = &c->p->io[t].out;
    int H, W, C;
    acts_map_dims(s, &H, &W, &C);
    size_t HW = (size_t)H * (size_t)W, count = fv_shape_count(s);
    int k = fv_upscale_for(H > W ? H : W, c->min_size);
    int HK = H * k, WK = W * k;
    size_t tile_bytes = (size_t)HK * (size_t)WK * 3;
    char name[FV_NAME_MAX], sub[4500], path[4800];
    job_safe_name(l->name, name, sizeof name);
    float *map = malloc(HW * sizeof *map);               /* (H, W) one channel */
    unsigned char *small = malloc(HW * 3);                /* (H, W, 3) coloured */
    unsigned char *tiles = malloc((size_t)C * tile_bytes); /* (C, HK, WK, 3) */
    const unsigned char **tp = malloc((size_t)C * sizeof *tp);
    unsigned char *bg = NULL;                              /* (HK, WK, 3) input image */
    struct fv_canvas cv = {0};
    int rc = FV_OK;
    if (!map || !small || !tiles || !tp) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory drawing %d maps of %s", C, l->name);
        goto done;
    }
    if ((rc = job_path(sub, sizeof sub, err, "%s/%s", dir, name)) || (rc = job_mkdirs(sub, err))) goto done;
    if (c->overlay > 0 && rgb && (rc = background(rgb, HK, WK, &bg, err))) goto done;
    if ((rc = fv_canvas_init(&cv, HK, WK, FV_BLACK, err))) goto done;
    float lo = c->lo, hi = c->hi;
    if (c->norm == ACTS_NORM_LAYER) {
        acts_layer_range(y, count, &lo, &hi);
    }
    for (int ch = 0; ch < C && !rc; ch++) {
        for (size_t i = 0; i < HW; i++) map[i] = y[i * (size_t)C + (size_t)ch];
        if (c->norm == ACTS_NORM_MAP) acts_quiver_range(map, HW, &lo, &hi);
        fv_map_to_rgb(map, HW, lo, hi, c->cmap, small);
        if (bg) {
            fv_canvas_blit(&cv, 0, 0, bg, HK, WK, 3, 1);
            fv_canvas_blend(&cv, 0, 0, small, H, W, 3, k, c->overlay, NULL);
        } else {
            fv_canvas_blit(&cv, 0, 0, small, H, W, 3, k);
        }
        memcpy(tiles + (size_t)ch * tile_bytes, cv.pix, tile_bytes);
        tp[ch] = tiles + (size_t)ch * tile_bytes;
        if (!(rc = job_path(path, sizeof path, err, "%s/%s_%d.png", sub, name, ch))) rc = fv_canvas_save(&cv, path, err);
    }
    if (rc) goto done;
    static const char *const norm_names[] = {"map", "layer", "fixed"};
    char title[FV_NAME_MAX + 96];
    snprintf(title, sizeof title, "%s: %d map%s %dx%d, norm %s", l->name, C, C == 1 ? "" : "s", H, W,
             norm_names[c->norm]);
    struct fv_montage_spec spec = {
        .tiles = tp, .n = C, .th = HK, .tw = WK, .channels = 3, .number_tiles = 1,
        .cols = (int)ceil(sqrt((double)C)), .scale = 1, .margin = -1, .title = title,
    };
    if (!(rc = job_path(path, sizeof path, err, "%s/%s.grid.png", dir, name))) rc = fv_montage_write(path, &spec, err);
done:
    fv_canvas_free(&cv);
    free(bg);
    free(tp);
    free(tiles);
    free(small);
    free(map);
    return rc;
}

/* predictions.txt and predictions.json of one item. */
static int write_predictions(const struct acts_ctx *c, const float *v, const char *name,
                             const char *dir, struct fv_error *err) {
    int top = c->top < c->k_out ? c->top : c->k_out;
    int *idx = malloc((size_t)(top > 0 ? top : 1) * sizeof *idx);
    if (!idx) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    topn_indices(v, c->k_out, top, idx);
    char path[4500];
    struct fv_tmpfile tf;
    int rc = job_path(path, sizeof path, err, "%s/predictions.txt", dir);
    if (!rc) rc = fv_tmpfile_open(&tf, path, err);
    if (!rc) {
        topn_print_text(tf.fp, name, v, idx, top, c->labels);
        rc = fv_tmpfile_commit(&tf, err);
    }
    if (!rc && !(rc = job_path(path, sizeof path, err, "%s/predictions.json", dir)) &&
        !(rc = fv_tmpfile_open(&tf, path, err))) {
        topn_print_json(tf.fp, name, v, idx, top, c->labels, c->probs);
        fputc('\n', tf.fp);
        rc = fv_tmpfile_commit(&tf, err);
    }
    free(idx);
    return rc;
}

/* DIR/<item>/ of input item `item` (created when make), and the item's display name. */
static int item_dir(const struct acts_ctx *c, size_t item, int make, char *dir, size_t dir_cap, char *name,
                    size_t name_cap, struct fv_error *err) {
    size_t idx;
    const struct fv_source *src = fv_inputs_source(c->in, item, &idx);
    topn_item_name(c->in, item, name, name_cap);
    int rc = src->batched ? job_path(dir, dir_cap, err, "%s/%s_%zu", c->dir, src->stem, idx)
                          : job_path(dir, dir_cap, err, "%s/%s", c->dir, src->stem);
    return rc || !make ? rc : job_mkdirs(dir, err);
}

/* All pictures of batch entry b (input item `item`) under DIR/<item>/:
 * colour pictures, or with format = png8 one gray PNG per layer (no output
 * on stdout: png8 items are drawn side by side, printed in order after). */
static int draw_item(const struct acts_ctx *c, int b, size_t item, struct fv_error *err) {
    const struct fv_inputs *in = c->in;
    const struct fv_plan *p = c->p;
    char dir[4500], name[4200], path[4800], safe[FV_NAME_MAX];
    int rc = item_dir(c, item, 1, dir, sizeof dir, name, sizeof name, err);
    if (rc) return rc;
    struct fv_image rgb = {0};
    size_t per_in = (size_t)in->h * (size_t)in->w * (size_t)in->c;
    if (!c->png8 && c->overlay > 0 && c->m->in_rank == 3 && (rc = input_rgb(c, p->x + (size_t)b * per_in, &rgb, err)))
        return rc;
    int drawn = 0;
    for (int k = 0; k < c->n_layers && !rc; k++) {
        int t = c->layers[k];
        if (c->all && is_pure_identity(&c->m->layers[t])) continue; /* the same picture as its input */
        drawn++;
        const float *y = p->buf[t].y + (size_t)b * fv_shape_count(&p->io[t].out); /* one image */
        if (c->png8) {
            job_safe_name(c->m->layers[t].name, safe, sizeof safe);
            if (!(rc = job_path(path, sizeof path, err, "%s/%s.png", dir, safe)))
                rc = acts_png8_write(&c->m->layers[t], &p->io[t].out, y, c->norm, c->lo, c->hi, path, err);
        } else if (p->io[t].out.rank <= 1) {
            rc = draw_bars(c, t, y, dir, err);
        } else {
            rc = draw_maps(c, t, y, dir, rgb.data ? &rgb : NULL, err);
        }
    }
    if (!rc) rc = write_predictions(c, c->out + (size_t)b * (size_t)c->k_out, name, dir, err);
    fv_image_free(&rgb);
    if (!rc && !c->png8) printf("%s: %d layer%s -> %s/\n", name, drawn, drawn == 1 ? "" : "s", dir);
    return rc;
}

/* The pictures of a batch's cnt items, the first being input item `first`:
 * png8 items on every thread (each item's files are its own), the colour
 * pictures one item after another. */
static void print_png8(const struct acts_ctx *c, size_t cnt, size_t first, struct fv_error *err) {
    for (size_t b = 0; b < cnt; b++) {
        char dir[4500], name[4200];
        if (!item_dir(c, first + b, 0, dir, sizeof dir, name, sizeof name, err))
            printf("%s: %d layer%s -> %s/ (8-bit maps)\n", name, c->drawn, c->drawn == 1 ? "" : "s", dir);
    }
}

static int draw_batch(const struct acts_ctx *c, size_t cnt, size_t first, int print, struct fv_error *err) {
    if (!c->png8) {
        int rc = FV_OK;
        for (size_t b = 0; b < cnt && !rc; b++) rc = draw_item(c, (int)b, first + b, err);
        return rc;
    }
    int rc = FV_OK, first_bad = (int)cnt;
    FV_OMP("omp parallel for schedule(dynamic, 1)")
    for (int b = 0; b < (int)cnt; b++) {
        struct fv_error e = {0};
        int r = draw_item(c, b, first + (size_t)b, &e);
        if (r) {
            FV_OMP("omp critical(activations_png8)")
            if (b < first_bad) first_bad = b, *err = e, rc = r; /* the first item's error */
        }
    }
    if (print) print_png8(c, (size_t)first_bad, first, err);
    return rc;
}

/* The picture settings. */
static int read_picture_settings(const struct fv_settings *s, struct acts_ctx *c,
                                 struct fv_error *err) {
    const char *norm = fv_get_str(s, "activations", "norm");
    c->norm = !strcmp(norm, "map") ? ACTS_NORM_MAP : !strcmp(norm, "fixed") ? ACTS_NORM_FIXED : ACTS_NORM_LAYER;
    c->lo = (float)fv_get_float(s, "activations", "lo");
    c->hi = (float)fv_get_float(s, "activations", "hi");
    if (c->norm == ACTS_NORM_FIXED && !(c->hi > c->lo))
        return fv_error_set(err, FV_ERR_USAGE, "%s: activations.hi (%g) must be above activations.lo (%g) for norm = fixed",
                            fv_get_origin(s, "activations", "hi"), (double)c->hi, (double)c->lo);
    int cm = fv_cmap_parse(fv_get_str(s, "activations", "cmap"));
    if (cm < 0) return fv_error_set(err, FV_ERR_USAGE, "%s: unknown colour map", fv_get_origin(s, "activations", "cmap"));
    c->cmap = (enum fv_cmap)cm;
    c->overlay = (float)fv_get_float(s, "activations", "overlay");
    c->min_size = fv_get_int(s, "activations", "min_size");
    c->top = fv_get_int(s, "activations", "top");
    c->png8 = !strcmp(fv_get_str(s, "activations", "format"), "png8");
    return FV_OK;
}

/* ---- items: one input file each (an image, or a whole .npy array, whose
 * arrays stream out batch by batch) ---- */

struct source_items {
    const struct fv_model *m;
    struct fv_plan *p;         /* per thread, `batch` images each; p[0] made first */
    int threads;               /* plans made */
    struct fv_inputs *in;
    const struct acts_ctx *ctx;
    const int *layers;
    int n_layers, views, npy, png, batch;
    float *tmp;                /* per thread (batch, per) in Keras order */
    size_t tmp_floats;
    float *outs;               /* per thread (batch, k_out) */
    struct fv_npy_writer *wr;  /* one streaming .npy per layer view of the current input */
};

static void source_name(void *ctx, int item, char *buf, size_t cap) {
    const struct source_items *x = ctx;
    snprintf(buf, cap, "input %s", x->in->src[item].path);
}

static size_t source_units(void *ctx, int item) {
    const struct source_items *x = ctx;
    return x->in->src[item].count;
}

#define WRITE_PIECE ((size_t)1 << 16) /* floats: 256 KB, well inside a core's L2 */

/* An array of several batches: each thread runs whole batches on its own plan
 * (no barrier per layer; results as one plan's, whatever the thread count)
 * and writes their arrays at their places in the files, beside the other
 * threads (so the copies into the file system run on every core); what must
 * come in order (pictures, progress, the first error) comes in order.
 * The writers of src's arrays are open. */
static int run_pipelined(const struct source_items *x, const struct fv_source *src, struct fv_error *err) {
    const struct fv_model *mm = x->m;
    int batch = x->batch, views = x->views, rc = FV_OK;
    size_t N = src->count, per_in = (size_t)x->in->h * (size_t)x->in->w * (size_t)x->in->c;
    int nb = (int)((N + (size_t)batch - 1) / (size_t)batch), views_all = x->npy ? x->n_layers * views : 0;
    FV_OMP("omp parallel num_threads(x->threads)")
    {
        int tid = fv_omp_thread_num();
        struct fv_plan *p = &x->p[tid];
        struct acts_ctx c = *x->ctx;
        float *outs = x->outs + (size_t)tid * (size_t)batch * (size_t)c.k_out;
        c.p = p, c.out = outs;
        float *keras = x->tmp + (size_t)tid * x->tmp_floats;
        FV_OMP("omp for ordered schedule(static, 1)")
        for (int b = 0; b < nb; b++) {
            size_t first = (size_t)b * (size_t)batch, cnt = N - first < (size_t)batch ? N - first : (size_t)batch;
            struct fv_error e = {0};
            int r, failed;
            FV_OMP("omp atomic read")
            failed = rc;
            r = failed;
            if (!r) {
                memset(p->x, 0, (size_t)batch * per_in * sizeof(float));
                FV_OMP("omp critical(activations_read)")
                r = fv_inputs_read(x->in, src->first + first, cnt, p->x, &e);
            }
            if (!r) {
                fv_forward(p, -1);
                if (x->png) fv_plan_read_keras(p, mm->output, 0, outs);
                if (x->png && c.png8) r = draw_batch(&c, cnt, src->first + first, 0, &e);
            }
            for (int j = 0; j < views_all && !r; j++) { /* threads start at different files */
                int k = (j + tid * views_all / x->threads) % views_all, t = x->layers[k / views];
                size_t per = fv_shape_count(&p->io[t].out);
                /* pieces of about WRITE_PIECE floats: the file system copies them out of cache */
                int step = per >= WRITE_PIECE ? 1 : (int)(WRITE_PIECE / per);
                for (int i = 0; i < (int)cnt && !r; i += step) {
                    int m = (int)cnt - i < step ? (int)cnt - i : step;
                    fv_plan_read_keras_images(p, t, k % views == 1, i, m, keras);
                    r = fv_npy_writer_write_at(&x->wr[k], keras, (size_t)m * per, (first + (size_t)i) * per, &e);
                }
            }
            FV_OMP("omp ordered")
            {
                if (!r && x->png && !c.png8) r = draw_batch(&c, cnt, src->first + first, 1, &e);
                if (!r && x->png && c.png8) print_png8(&c, cnt, src->first + first, &e);
                if (!r) fv_progress_add(cnt);
                if (!r && fv_interrupted())
                    r = fv_error_set(&e, FV_ERR_INTERRUPTED, "activations: interrupted after %zu of %zu inputs",
                                     src->first + first + cnt, x->in->total);
                if (r && !failed) { /* the first batch's error, in order */
                    *err = e;
                    FV_OMP("omp atomic write")
                    rc = r;
                }
            }
        }
    }
    return rc;
}

static int source_run(void *ctx, int item, int count, unsigned char *blobs, struct fv_error *err) {
    (void)count, (void)blobs; /* one at a time; the files are the result */
    const struct source_items *x = ctx;
    const struct fv_model *mm = x->m;
    struct fv_plan *p = x->p;
    struct fv_inputs *in = x->in;
    const struct fv_source *src = &in->src[item];
    const int *layers = x->layers;
    int n_layers = x->n_layers, views = x->views, npy = x->npy, batch = x->batch, rc = FV_OK;
    size_t N = src->count, per_in = (size_t)in->h * (size_t)in->w * (size_t)in->c;
    struct fv_npy_writer *wr = x->wr;
    /* the arrays stream out batch by batch: memory stays bounded by the batch */
    char sub[4096];
    if (npy && !(rc = job_path(sub, sizeof sub, err, "%s/%s", x->ctx->dir, src->stem))) rc = job_mkdirs(sub, err);
    for (int k = 0; npy && k < n_layers * views && !rc; k++) {
        int t = layers[k / views];
        struct fv_shape ks;
        fv_keras_shape(&mm->layers[t], &p->io[t].out, &ks);
        size_t dims[FV_MAX_RANK + 1];
        dims[0] = N;
        for (int d = 0; d < ks.rank; d++) dims[d + 1] = (size_t)ks.d[d];
        char name[FV_NAME_MAX + 16], path[4500];
        job_safe_name(mm->layers[t].name, name, FV_NAME_MAX);
        strcat(name, k % views ? ".pre.npy" : ".npy");
        if (!(rc = job_path(path, sizeof path, err, "%s/%s", sub, name)))
            rc = fv_npy_writer_open(&wr[k], path, ks.rank + 1, dims, err);
    }
    int nb = (int)((N + (size_t)batch - 1) / (size_t)batch);
    if (!rc && nb >= 2 && x->threads >= 2) rc = run_pipelined(x, src, err);
    for (size_t first = 0; first < N && !rc && !(nb >= 2 && x->threads >= 2); first += (size_t)batch) {
        size_t cnt = N - first < (size_t)batch ? N - first : (size_t)batch;
        memset(p->x, 0, (size_t)batch * per_in * sizeof(float));
        if ((rc = fv_inputs_read(in, src->first + first, cnt, p->x, err))) break;
        fv_forward(p, -1);
        int views_all = npy ? n_layers * views : 0, first_bad = views_all;
        FV_OMP("omp parallel for schedule(dynamic, 1)")
        for (int k = 0; k < views_all; k++) {
            int t = layers[k / views];
            size_t per = fv_shape_count(&p->io[t].out);
            float *keras = x->tmp + (size_t)fv_omp_thread_num() * x->tmp_floats;
            struct fv_error e = {0};
            fv_plan_read_keras(p, t, k % views == 1, keras);
            int r = fv_npy_writer_write(&wr[k], keras, cnt * per, &e);
            if (r) {
                FV_OMP("omp critical(activations_write)")
                if (k < first_bad) first_bad = k, *err = e, rc = r; /* the first layer's error */
            }
        }
        if (x->png) {
            fv_plan_read_keras(p, mm->output, 0, x->outs);
            rc = draw_batch(x->ctx, cnt, src->first + first, 1, err);
        }
        fv_progress_add(cnt);
        if (!rc && fv_interrupted())
            rc = fv_error_set(err, FV_ERR_INTERRUPTED, "activations: interrupted after %zu of %zu inputs",
                              src->first + first + cnt, in->total);
    }
    for (int k = 0; npy && k < n_layers * views; k++) {
        if (!rc) rc = fv_npy_writer_commit(&wr[k], err);
        else fv_npy_writer_abort(&wr[k]); /* never a half-written array */
    }
    if (!rc && npy) printf("%s: %d layer%s -> %s/\n", src->path, n_layers * views, n_layers * views == 1 ? "" : "s", sub);
    return rc;
}

int fv_job_activations(const struct fv_settings *s, struct fv_error *err) {
    struct fv_model m;
    struct fv_preproc pp;
    struct fv_labels labels = {0};
    struct fv_inputs in = {0};
    struct fv_plan *plans = NULL;
    int n_plans = 0;
    struct acts_ctx ctx = {0};
    int *layers = NULL, n_layers = 0;
    struct fv_npy_writer *wr = NULL; /* one streaming .npy per layer view of the current input */
    float *tmp = NULL, *outs = NULL;
    int rc = job_load_model(s, &m, err);
    if (rc) return rc;
    int h, w, c;
    fv_model_input_hwc(&m, &h, &w, &c);
    int png = fv_get_bool(s, "activations", "png"), npy = fv_get_bool(s, "activations", "npy");
    if ((rc = job_preproc(s, c, &pp, err)) || (rc = job_labels(s, &labels, err))) goto done;
    if ((rc = pick_layers(s, &m, &layers, &n_layers, err))) goto done;
    if (png && (rc = read_picture_settings(s, &ctx, err))) goto done;
    if ((rc = fv_inputs_open(&in, fv_get_str(s, "activations", "inputs"), &m, &pp, 0, 0, err))) goto done;
    if (!png && !npy) {
        rc = fv_error_set(err, FV_ERR_USAGE, "activations: nothing to write (png and npy are both off)");
        goto done;
    }
    int want_pre = npy && fv_get_bool(s, "activations", "pre");
    const char *dir = fv_get_str(s, "output", "dir");
    int batch = fv_get_int(s, "activations", "batch");
    if ((size_t)batch > in.total) batch = (int)in.total;
    /* without .pre.npy, plain ReLUs are applied in place: half the memory;
     * a plan per thread for arrays of several batches (run_pipelined) */
    int threads = fv_omp_max_threads() > 1 && in.total > (size_t)batch ? fv_omp_max_threads() : 1;
    if (!(plans = calloc((size_t)threads, sizeof *plans))) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (; n_plans < threads && !rc; n_plans++)
        rc = fv_plan_init(&plans[n_plans], &m, batch, in.h, in.w, want_pre ? 0 : FV_PLAN_FUSE, err);
    if (rc) goto done;
    struct fv_plan *pp0 = &plans[0];
    int views = want_pre ? 2 : 1;
    size_t max_per = 0;
    for (int k = 0; k < n_layers; k++) {
        size_t per = fv_shape_count(&pp0->io[layers[k]].out);
        max_per = per > max_per ? per : max_per;
    }
    ctx.m = &m, ctx.p = pp0, ctx.in = &in, ctx.pp = &pp, ctx.labels = &labels;
    ctx.layers = layers, ctx.n_layers = n_layers, ctx.dir = dir;
    const char *list = fv_get_str(s, "activations", "layers");
    ctx.all = !list || !strcmp(list, "all");
    for (int k = 0; k < n_layers; k++) ctx.drawn += !(ctx.all && is_pure_identity(&m.layers[layers[k]]));
    ctx.probs = topn_is_prob(&m);
    ctx.k_out = (int)fv_shape_count(&pp0->io[m.output].out);
    wr = calloc((size_t)n_layers * (size_t)views, sizeof *wr);
    /* per thread (batch, per) in Keras order: the layers are converted and written side by side */
    size_t tmp_floats = (size_t)batch * (max_per ? max_per : 1);
    tmp = malloc((size_t)fv_omp_max_threads() * tmp_floats * sizeof *tmp);
    outs = malloc((size_t)threads * (size_t)batch * (size_t)ctx.k_out * sizeof *outs); /* per thread (batch, k_out) */
    if (!wr || !tmp || !outs) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        goto done;
    }
    ctx.out = outs;
    struct source_items x = {&m, plans, threads, &in, &ctx, layers, n_layers, views, npy, png, batch, tmp, tmp_floats, outs, wr};
    struct fv_items it = {.job = "activations", .dir = dir, .s = s, .n = in.n_src, .max_take = 1, .blob_size = 1,
                          .item_units = source_units, .run = source_run, .name = source_name, .ctx = &x};
    rc = fv_items_run(&it, err);
    if (!rc && it.stopped)
        rc = fv_error_set(err, FV_ERR_INTERRUPTED, "activations: interrupted (continue with --resume)");
    fv_items_finish(&it);

done:
    free(outs);
    free(tmp);
    free(wr);
    free(layers);
    for (int k = 0; k < n_plans; k++) fv_plan_free(&plans[k]);
    free(plans);
    fv_inputs_close(&in);
    fv_labels_free(&labels);
    fv_model_free(&m);
    return rc;
}
