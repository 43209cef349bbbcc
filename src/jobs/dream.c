/* `featviz dream`: DeepDream on a real photo at its own size (Google's
 * deepdream notebook): an image pyramid of octaves run coarse to fine, the
 * detail carried up each octave; every step a random roll (jitter), the
 * gradient of the objective (default: mean of the layer's squared outputs),
 * a step normalized by the mean |gradient|, and clipping to the valid range.
 * Only the layers up to the dream layer run, so the conv trunk of a model
 * with Dense layers takes any image size. Optionally a sequence of zoomed
 * frames (dream, zoom in, dream again). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "featviz/jobs.h"
#include "featviz/optim.h"
#include "featviz/progress.h"
#include "jobs/common.h"
#include "jobs/synth.h"

struct dream {
    const struct fv_model *m;
    const struct fv_preproc *pp;
    struct fv_objective obj;
    int c, octaves, steps, max_mb;
    float octave_scale, lr, jitter;
    uint64_t seed;
    int bands, band_rows; /* the most bands an octave ran in, and their rows (for the report) */
};

/* Circular shift by (dy, dx): dst[y][x] = src[y - dy][x - dx]. */
static void roll(const float *src, float *dst, int h, int w, int c, int dy, int dx) {
    for (int y = 0; y < h; y++) {
        int sy = ((y - dy) % h + h) % h;
        for (int x = 0; x < w; x++) {
            int sx = ((x - dx) % w + w) % w;
            memcpy(dst + ((size_t)y * w + x) * c, src + ((size_t)sy * w + sx) * c, (size_t)c * sizeof(float));
        }
    }
}

/* Display image (h, w, c) in [0,1] from a decoded image, converted to the
 * model's channel count (gray: PIL's luma; gray to RGB: replicated). */
static void to_display(const struct fv_image *img, int c, float *u) {
    size_t n = (size_t)img->h * img->w;
    for (size_t i = 0; i < n; i++) {
        const float *p = img->data + i * (size_t)img->c;
        if (c == img->c) {
            for (int k = 0; k < c; k++) u[i * c + k] = p[k] / 255.0f;
        } else if (c == 1) {
            u[i] = (p[0] * 299.0f + p[1] * 587.0f + p[2] * 114.0f) / 1000.0f / 255.0f;
        } else {
            for (int k = 0; k < 3; k++) u[i * 3 + k] = p[0] / 255.0f;
        }
    }
}

/* Bands of rows for an octave of H x W whose plan would take more than
 * max_mb (b->n = 0: the whole image at once). */
static int octave_bands(const struct dream *d, int H, int W, int flags, struct fv_bands *b,
                        struct fv_error *err) {
    int top = fv_objective_top(&d->obj);
    memset(b, 0, sizeof *b);
    if (d->max_mb <= 0 || !fv_objective_bands_ok(&d->obj, top)) return FV_OK;
    struct fv_io *io = calloc((size_t)d->m->n_layers, sizeof *io);
    size_t floats = 0;
    if (!io) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    int rc = fv_plan_measure(d->m, 1, H, W, flags, top, io, &floats, err);
    free(io);
    double mb = (double)floats * sizeof(float) / (1 << 20);
    if (rc || mb <= d->max_mb) return rc;
    /* Memory grows with the rows. Bands overlap by the network's reach: for
     * a network that sees far, take taller bands than max_mb allows, the
     * shortest whose overlap at most doubles the work. */
    for (double rows = (double)H * d->max_mb / mb; !rc && rows < H; rows = rows * 1.25 + 1) {
        if ((rc = fv_bands_make(d->m, top, H, W, rows < 1 ? 1 : (int)rows, b, err))) break;
        if (b->n && (long long)b->n * b->rows <= 2LL * H) break;
        fv_bands_free(b);
    }
    return rc;
}

/* The objective's gradient with respect to the display image v (H, W, c),
 * added to dv: the whole image in one pass, or band by band (the bands'
 * gradients add up to the whole image's). */
static void gradient(const struct dream *d, struct fv_plan *p, const struct fv_bands *b,
                     const float *v, float *dv, int H, int W) {
    int top = fv_objective_top(&d->obj), c = d->c;
    size_t row = (size_t)W * (size_t)c;
    for (int i = 0; i < (b->n ? b->n : 1); i++) {
        int y0 = b->n ? b->band[i].y0 : 0, rows = b->n ? b->rows : H;
        synth_to_model(d->pp, v + (size_t)y0 * row, p->x, (size_t)rows * (size_t)W, c);
        fv_forward(p, top);
        fv_grad_zero(p);
        if (b->n) fv_objective_seed_band(&d->obj, p, 0, 1.0f, &b->band[i], b->top_h);
        else fv_objective_seed(&d->obj, p, 0, 1.0f);
        fv_backward(p, top);
        synth_to_model_backward(d->pp, p->dx, dv + (size_t)y0 * row, (size_t)rows * (size_t)W, c);
    }
}

/* Runs the octaves on u (h, w) in place. */
static int dream_image(struct dream *d, float *u, int h, int w, int frame, struct fv_error *err) {
    int top = fv_objective_top(&d->obj), c = d->c, rc = FV_OK;
    int oh[32], ow[32], n_oct = d->octaves;
    for (int k = 0; k < n_oct; k++) {
        float f = powf(d->octave_scale, (float)k);
        oh[k] = (int)lroundf((float)h / f), ow[k] = (int)lroundf((float)w / f);
        if (oh[k] < 1 || ow[k] < 1) n_oct = k;
    }
    size_t full = (size_t)h * w * c;
    float *base = malloc(full * sizeof *base), *detail = calloc(full, sizeof *detail),
          *src = malloc(full * sizeof *src), *tmp = malloc(full * sizeof *tmp),
          *g = malloc(full * sizeof *g), *dsmall = calloc(full, sizeof *dsmall);
    if (!base || !detail || !src || !tmp || !g || !dsmall) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory for a %dx%d dream", h, w);
        goto done;
    }
    int dh = 0, dw = 0; /* size of the current detail */
    for (int k = n_oct - 1; k >= 0 && !rc && !fv_interrupted(); k--) {
        int H = oh[k], W = ow[k];
        size_t cnt = (size_t)H * W * c;
        if (fv_resize_bilinear(u, h, w, base, H, W, c, 1) ||
            (dh && fv_resize_bilinear(dsmall, dh, dw, detail, H, W, c, 1))) {
            rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory resizing to %dx%d", W, H);
            break;
        }
        if (!dh) memset(detail, 0, cnt * sizeof *detail);
        for (size_t i = 0; i < cnt; i++) src[i] = base[i] + detail[i];
        /* ReLUs in place (half the memory) unless the objective reads before one */
        int flags = FV_PLAN_GRAD | (fv_objective_reads_pre_relu(&d->obj, d->m) ? 0 : FV_PLAN_FUSE);
        struct fv_bands bands = {0};
        struct fv_plan p;
        if ((rc = octave_bands(d, H, W, flags, &bands, err)) ||
            (rc = fv_plan_init_upto(&p, d->m, 1, bands.n ? bands.rows : H, W, flags, top, err))) {
            fv_error_prefix(err, "octave %d (%dx%d)", k, H, W);
            fv_bands_free(&bands);
            break;
        }
        if (bands.n > d->bands) d->bands = bands.n, d->band_rows = bands.rows;
        if ((rc = fv_objective_check(&d->obj, &p, err))) {
            fv_plan_free(&p);
            fv_bands_free(&bands);
            break;
        }
        int jit = (int)(d->jitter < 1 ? d->jitter * (float)(H > W ? H : W) : d->jitter);
        for (int s = 0; s < d->steps && !fv_interrupted(); s++) {
            struct fv_rng r;
            fv_rng_seed(&r, d->seed, FV_RNG_USER, (uint64_t)frame * 64 + (uint64_t)k, (uint64_t)s);
            int oy = jit ? fv_rng_int(&r, -jit, jit) : 0, ox = jit ? fv_rng_int(&r, -jit, jit) : 0;
            roll(src, g, H, W, c, oy, ox);
            memset(tmp, 0, cnt * sizeof *tmp);
            gradient(d, &p, &bands, g, tmp, H, W);
            roll(tmp, g, H, W, c, -oy, -ox); /* un-roll the gradient */
            fv_ascent_step(d->lr, FV_NORM_MEAN_ABS, src, g, 1, cnt); /* lr * g / mean|g| */
            for (size_t i = 0; i < cnt; i++) src[i] = src[i] < 0.0f ? 0.0f : src[i] > 1.0f ? 1.0f : src[i];
            fv_progress_add(1);
        }
        fv_bands_free(&bands);
        fv_plan_free(&p);
        for (size_t i = 0; i < cnt; i++) dsmall[i] = src[i] - base[i];
        dh = H, dw = W;
        if (k == 0) memcpy(u, src, full * sizeof *u);
        else if (fv_interrupted() && fv_resize_bilinear(src, H, W, u, h, w, c, 1)) /* what we have */
            rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory resizing to %dx%d", w, h);
    }
done:
    free(base), free(detail), free(src), free(tmp), free(g), free(dsmall);
    return rc;
}

/* Zooms into the centre by z, keeping the size. */
static int zoom_in(float *u, int h, int w, int c, float z, float *tmp) {
    int ch = (int)lroundf((float)h / z), cw = (int)lroundf((float)w / z);
    if (ch < 1) ch = 1;
    if (cw < 1) cw = 1;
    int y0 = (h - ch) / 2, x0 = (w - cw) / 2;
    for (int y = 0; y < ch; y++) memcpy(tmp + (size_t)y * cw * c, u + ((size_t)(y0 + y) * w + x0) * c, (size_t)cw * c * sizeof(float));
    return fv_resize_bilinear(tmp, ch, cw, u, h, w, c, 1);
}

int fv_job_dream(const struct fv_settings *s, struct fv_error *err) {
    struct fv_model m;
    struct fv_preproc pp;
    struct fv_image img = {0}, sized = {0};
    float *u = NULL, *tmp = NULL;
    int rc = job_load_model(s, &m, err);
    if (rc) return rc;
    int mh, mw, c;
    fv_model_input_hwc(&m, &mh, &mw, &c);
    struct dream d = {.m = &m, .pp = &pp, .c = c};
    d.octaves = fv_get_int(s, "dream", "octaves");
    d.steps = fv_get_int(s, "dream", "steps");
    d.octave_scale = (float)fv_get_float(s, "dream", "octave_scale");
    d.lr = (float)fv_get_float(s, "dream", "lr");
    d.jitter = (float)fv_get_float(s, "dream", "jitter");
    d.seed = (uint64_t)fv_get_int(s, "dream", "seed");
    d.max_mb = fv_get_int(s, "dream", "max_mb");
    const char *input = fv_get_str(s, "dream", "input"), *layer = fv_get_str(s, "dream", "layer"),
               *objective = fv_get_str(s, "dream", "objective"), *dir = fv_get_str(s, "output", "dir");
    if (m.in_rank != 3 || (c != 1 && c != 3)) {
        rc = fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: dream needs an image input with 1 or 3 channels", m.path);
        goto done;
    }
    if (!input || !*input) { /* a preset such as configs/fast.ini names no photo */
        printf("dream: skipped: no photo to dream on (give dream.input, or IMAGE on the command line)\n");
        goto done;
    }
    if (!layer && !objective) { /* the deepest convolution: a preset must run on any model */
        for (int i = m.n_layers - 1; i >= 0 && !layer; i--)
            if (strstr(m.layers[i].keras_class, "Conv") && !m.layers[i].hidden && m.layers[i].out_rank == 3) layer = m.layers[i].name;
        if (!layer) {
            printf("dream: skipped: %s has no convolution to dream on (give dream.layer)\n", m.path);
            goto done;
        }
        printf("dream: no layer given: dreaming on %s, the model's last convolution (set dream.layer to choose)\n", layer);
    }
    char text[300];
    snprintf(text, sizeof text, "%s%s", objective ? "" : "dream:", objective ? objective : layer);
    if ((rc = job_preproc(s, c, &pp, err)) || (rc = fv_objective_parse(text, &m, &d.obj, err))) goto done;
    if ((rc = fv_image_load(input, &img, err))) goto done;
    int size = fv_get_int(s, "dream", "size"), h = img.h, w = img.w;
    if (size > 0) {
        float f = (float)size / (float)(h > w ? h : w);
        h = (int)lroundf((float)h * f), w = (int)lroundf((float)w * f);
        if ((rc = fv_image_resize(&img, h < 1 ? 1 : h, w < 1 ? 1 : w, FV_RESIZE_BICUBIC, &sized, err))) goto done;
        fv_image_free(&img);
        img = sized;
        sized.data = NULL;
        h = img.h, w = img.w;
    }
    size_t full = (size_t)h * w * c;
    u = malloc(full * sizeof *u);
    tmp = malloc(full * sizeof *tmp);
    if (!u || !tmp) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        goto done;
    }
    to_display(&img, c, u);
    const char *out = fv_get_str(s, "dream", "out");
    char outdir[4096];
    snprintf(outdir, sizeof outdir, "%s", out ? out : dir);
    if (out) { /* frames and the configuration go beside the output file */
        char *slash = strrchr(outdir, '/');
        if (slash) *slash = 0;
        else snprintf(outdir, sizeof outdir, ".");
    }
    dir = outdir;
    if ((rc = job_mkdirs(dir, err)) || (rc = job_write_config(s, "dream", dir, err))) goto done;
    int frames = fv_get_int(s, "dream", "frames");
    float zoom = (float)fv_get_float(s, "dream", "zoom");
    fv_progress_start("dream", (size_t)d.octaves * (size_t)d.steps * (size_t)(1 + frames));
    char path[4400];
    if (out) snprintf(path, sizeof path, "%s", out);
    else snprintf(path, sizeof path, "%s/dream.png", dir);
    rc = dream_image(&d, u, h, w, 0, err);
    if (!rc) rc = job_write_image(path, u, h, w, c, 1, err);
    for (int f = 1; f <= frames && !rc && !fv_interrupted(); f++) {
        if (zoom_in(u, h, w, c, zoom, tmp)) {
            rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory zooming frame %d", f);
            break;
        }
        if ((rc = dream_image(&d, u, h, w, f, err))) break;
        char fp[4400];
        snprintf(fp, sizeof fp, "%s/dream_frame_%04d.png", dir, f);
        rc = job_write_image(fp, u, h, w, c, 1, err);
    }
    fv_progress_end();
    char in_bands[96] = "";
    if (d.bands) snprintf(in_bands, sizeof in_bands, ", in up to %d bands of %d rows", d.bands, d.band_rows);
    if (!rc) printf("dream on %s (%dx%d, %s%s): %s%s\n", input, w, h, text, in_bands, path, fv_interrupted() ? " (stopped early by Ctrl-C)" : "");
done:
    free(u);
    free(tmp);
    fv_image_free(&img);
    fv_image_free(&sized);
    fv_model_free(&m);
    return rc;
}
