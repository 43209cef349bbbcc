/* `featviz saliency`: the gradient of an objective with respect to each
 * input, as an .npy in the input's own layout and shape, and a heat map PNG
 * (input | map | map over input). SmoothGrad averages the gradient over noisy
 * copies; Grad-CAM weights a conv layer's channels by their mean gradient. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "featviz/jobs.h"
#include "featviz/optim.h"
#include "featviz/progress.h"
#include "featviz/render.h"
#include "jobs/common.h"
#include "jobs/inputs.h"
#include "jobs/synth.h"

struct sal {
    const struct fv_model *m;
    struct fv_plan p;
    int top_class;             /* objective "class:top" */
    struct fv_objective fixed; /* otherwise */
    int top, cam;              /* highest node; Grad-CAM node or -1 */
    int noisy;                 /* SmoothGrad copies (0: off) */
    float noise;
    uint64_t seed;
};

/* The objective for one input: fixed, or its top-1 class. */
static int objective_for(struct sal *s, const float *x, size_t per, struct fv_objective *o,
                         struct fv_error *err) {
    if (!s->top_class) {
        *o = s->fixed;
        return FV_OK;
    }
    memcpy(s->p.x, x, per * sizeof *x);
    int pre, t = fv_model_logits(s->m, &pre);
    fv_forward(&s->p, t);
    size_t k = fv_shape_count(&s->p.io[t].out);
    const float *z = pre ? s->p.buf[t].pre : s->p.buf[t].y;
    int best = 0;
    for (size_t j = 1; j < k; j++)
        if (z[j] > z[best]) best = (int)j;
    char text[32];
    snprintf(text, sizeof text, "class:%d", best);
    return fv_objective_parse(text, s->m, o, err);
}

/* g = d objective / d x (physical layout), averaged over noisy copies. */
static void gradient(struct sal *s, const struct fv_objective *o, const float *x, size_t per,
                     uint64_t item, float *g) {
    int copies = s->noisy > 0 ? s->noisy : 1;
    float lo = x[0], hi = x[0];
    for (size_t i = 1; i < per; i++) lo = x[i] < lo ? x[i] : lo, hi = x[i] > hi ? x[i] : hi;
    float sd = s->noise * (hi - lo > 0 ? hi - lo : 1.0f);
    memset(g, 0, per * sizeof *g);
    for (int j = 0; j < copies; j += s->p.n) {
        int cnt = copies - j < s->p.n ? copies - j : s->p.n;
        for (int b = 0; b < s->p.n; b++) {
            float *xb = s->p.x + (size_t)b * per;
            memcpy(xb, x, per * sizeof *x);
            if (s->noisy > 0 && b < cnt) {
                struct fv_rng r;
                fv_rng_seed(&r, s->seed, FV_RNG_USER, item, (uint64_t)(j + b));
                for (size_t i = 0; i < per; i++) xb[i] += sd * fv_rng_normal(&r);
            }
        }
        fv_forward(&s->p, s->top);
        fv_grad_zero(&s->p);
        for (int b = 0; b < cnt; b++) fv_objective_seed(o, &s->p, b, 1.0f / (float)copies);
        fv_backward(&s->p, s->top);
        for (int b = 0; b < cnt; b++)
            for (size_t i = 0; i < per; i++) g[i] += s->p.dx[(size_t)b * per + i];
    }
}

/* Grad-CAM map (H, W) in [0,1] for input x: relu(sum_k mean(dA_k) A_k), upsampled. */
static void gradcam(struct sal *s, const struct fv_objective *o, const float *x, size_t per,
                    float *map, int H, int W, float *tmp) {
    memcpy(s->p.x, x, per * sizeof *x);
    for (int b = 1; b < s->p.n; b++) memcpy(s->p.x + (size_t)b * per, x, per * sizeof *x);
    fv_forward(&s->p, s->top);
    fv_grad_zero(&s->p);
    fv_objective_seed(o, &s->p, 0, 1.0f);
    fv_backward(&s->p, s->top);
    const struct fv_shape *sh = &s->p.io[s->cam].out;
    int h = sh->d[0], w = sh->d[1], K = sh->d[2];
    const float *A = s->p.buf[s->cam].y, *dA = s->p.buf[s->cam].dy;
    for (int i = 0; i < h * w; i++) tmp[i] = 0;
    for (int k = 0; k < K; k++) {
        double wk = 0;
        for (int i = 0; i < h * w; i++) wk += (double)dA[(size_t)i * K + k];
        wk /= h * w;
        for (int i = 0; i < h * w; i++) tmp[i] += (float)wk * A[(size_t)i * K + k];
    }
    for (int i = 0; i < h * w; i++) tmp[i] = tmp[i] > 0 ? tmp[i] : 0;
    fv_resize_bilinear(tmp, h, w, map, H, W, 1, 1);
}

/* Heat values in [0,1]: map / its 99th percentile, clipped. */
static void normalize(float *map, size_t n, float *tmp) {
    memcpy(tmp, map, n * sizeof *map);
    /* 99th percentile by partial selection sort of the top 1% */
    size_t k = n / 100;
    for (size_t i = 0; i + 1 < n && i <= k; i++) {
        size_t best = i;
        for (size_t j = i + 1; j < n; j++)
            if (tmp[j] > tmp[best]) best = j;
        float t = tmp[i];
        tmp[i] = tmp[best], tmp[best] = t;
    }
    float p99 = tmp[k < n ? k : n - 1];
    for (size_t i = 0; i < n; i++) {
        float v = p99 > 0 ? map[i] / p99 : 0;
        map[i] = v > 1 ? 1 : v < 0 ? 0 : v;
    }
}

static int write_png(const char *path, const struct fv_preproc *pp, const float *x, const float *heat,
                     int H, int W, int c, const char *title, struct fv_error *err) {
    size_t px = (size_t)H * W;
    unsigned char *in = malloc(px * 3), *hm = malloc(px * 3), *dp = malloc(px * (size_t)c);
    int rc = FV_OK;
    if (!in || !hm || !dp) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        goto done;
    }
    fv_deprocess(pp, x, H, W, c, dp);
    for (size_t i = 0; i < px; i++)
        for (int k = 0; k < 3; k++) in[i * 3 + k] = dp[i * (size_t)c + (size_t)(c == 3 ? k : 0)];
    fv_map_to_rgb(heat, px, 0, 1, FV_CMAP_INFERNO, hm);
    int k = fv_upscale_for(H > W ? H : W, 160), m = 8, th = 7 * 2 + 8;
    int cw = W * k, ch = H * k;
    struct fv_canvas cv;
    if ((rc = fv_canvas_init(&cv, ch + 2 * m + th, 3 * cw + 4 * m, FV_WHITE, err))) goto done;
    fv_canvas_text_box(&cv, m, m, 3 * cw + 2 * m, title, 2, FV_TEXT, FV_ALIGN_LEFT);
    fv_canvas_blit(&cv, m + th, m, in, H, W, 3, k);
    fv_canvas_blit(&cv, m + th, 2 * m + cw, hm, H, W, 3, k);
    fv_canvas_blit(&cv, m + th, 3 * m + 2 * cw, in, H, W, 3, k);
    fv_canvas_blend(&cv, m + th, 3 * m + 2 * cw, hm, H, W, 3, k, 0.8f, heat);
    rc = fv_canvas_save(&cv, path, err);
    fv_canvas_free(&cv);
done:
    free(in), free(hm), free(dp);
    return rc;
}

/* path with "_<stem>" before its extension when there are several inputs */
static void suffixed(const char *path, const char *stem, int several, char *out, size_t cap) {
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (!several) snprintf(out, cap, "%s", path);
    else if (dot && (!slash || dot > slash)) snprintf(out, cap, "%.*s_%s%s", (int)(dot - path), path, stem, dot);
    else snprintf(out, cap, "%s_%s", path, stem);
}

int fv_job_saliency(const struct fv_settings *st, struct fv_error *err) {
    struct fv_model m;
    struct fv_preproc pp;
    struct fv_inputs in = {0};
    struct sal s = {.m = &m, .cam = -1};
    float *g = NULL, *keep = NULL, *heat = NULL, *tmp = NULL, *kx = NULL;
    int rc = job_load_model(st, &m, err);
    if (rc) return rc;
    int h, w, c;
    fv_model_input_hwc(&m, &h, &w, &c);
    if ((rc = job_preproc(st, c, &pp, err))) goto done;
    if ((rc = fv_inputs_open(&in, fv_get_str(st, "saliency", "inputs"), &m, &pp, 0, 0, err))) goto done;
    const char *text = fv_get_str(st, "saliency", "objective"), *cam = fv_get_str(st, "saliency", "gradcam");
    s.top_class = !strcmp(text, "class:top");
    int pre;
    s.top = s.top_class ? fv_model_logits(&m, &pre) : -1;
    if (!s.top_class) {
        if ((rc = fv_objective_parse(text, &m, &s.fixed, err))) goto done;
        s.top = fv_objective_top(&s.fixed);
    }
    if (cam) {
        if ((s.cam = fv_model_find(&m, cam)) < 0 || s.cam == m.input) {
            rc = fv_error_set(err, FV_ERR_USAGE, "%s: no layer named '%s' in %s (see featviz info)", fv_get_origin(st, "saliency", "gradcam"), cam, m.path);
            goto done;
        }
        if (s.cam > s.top) s.top = s.cam;
    }
    s.noisy = fv_get_int(st, "saliency", "smoothgrad");
    s.noise = (float)fv_get_float(st, "saliency", "noise");
    s.seed = (uint64_t)fv_get_int(st, "saliency", "seed");
    int batch = s.noisy > 16 ? 16 : s.noisy > 1 ? s.noisy : 1;
    if ((rc = fv_plan_init_upto(&s.p, &m, batch, in.h, in.w, FV_PLAN_GRAD, s.top, err))) goto done;
    if (cam && s.p.io[s.cam].out.rank != 3) {
        rc = fv_error_set(err, FV_ERR_USAGE, "Grad-CAM needs a layer with spatial output; '%s' has %d dimensions", cam, s.p.io[s.cam].out.rank);
        goto done;
    }
    if (!s.top_class && (rc = fv_objective_check(&s.fixed, &s.p, err))) goto done;
    size_t per = (size_t)in.h * in.w * in.c, px = (size_t)in.h * in.w;
    g = malloc(per * sizeof *g);
    heat = malloc(px * sizeof *heat);
    tmp = malloc((per > px ? per : px) * sizeof *tmp);
    kx = malloc(per * sizeof *kx);
    float *x = malloc(per * sizeof *x);
    if (!g || !heat || !tmp || !kx || !x) {
        free(x);
        rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        goto done;
    }
    const char *npy = fv_get_str(st, "saliency", "npy"), *out = fv_get_str(st, "saliency", "out");
    const char *dir = fv_get_str(st, "output", "dir");
    if (!out && (rc = job_mkdirs(dir, err))) {
        free(x);
        goto done;
    }
    int several = in.n_src > 1;
    fv_progress_start("saliency", in.total);
    const struct fv_layer *input = &m.layers[m.input];
    const struct fv_shape *ishape = &s.p.io[m.input].out;
    for (int f = 0; f < in.n_src && !rc && !fv_interrupted(); f++) {
        const struct fv_source *src = &in.src[f];
        free(keep);
        if (!(keep = malloc(src->count * per * sizeof *keep))) {
            rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
            break;
        }
        for (size_t i = 0; i < src->count && !rc; i++) {
            if ((rc = fv_inputs_read(&in, src->first + i, 1, x, err))) break;
            struct fv_objective o;
            if ((rc = objective_for(&s, x, per, &o, err))) break;
            gradient(&s, &o, x, per, src->first + i, g);
            fv_to_keras(input, ishape, g, keep + i * per); /* the input's own layout */
            if (s.cam >= 0) {
                gradcam(&s, &o, x, per, heat, in.h, in.w, tmp);
            } else {
                for (size_t p = 0; p < px; p++) {
                    float mx = 0;
                    for (int k = 0; k < in.c; k++) mx = fmaxf(mx, fabsf(g[p * in.c + k]));
                    heat[p] = mx;
                }
            }
            normalize(heat, px, tmp);
            char name[300], path[4600], title[700];
            if (src->batched) snprintf(name, sizeof name, "%s_%zu", src->stem, i);
            else snprintf(name, sizeof name, "%s", src->stem);
            if (out) suffixed(out, name, several || src->count > 1, path, sizeof path);
            else snprintf(path, sizeof path, "%s/%s.saliency.png", dir, name);
            snprintf(title, sizeof title, "%s: %s%s%s", name, o.text, s.noisy ? " (SmoothGrad)" : "", s.cam >= 0 ? " (Grad-CAM)" : "");
            if (!(rc = job_mkdirs_for(path, err))) rc = write_png(path, &pp, x, heat, in.h, in.w, in.c, title, err);
            if (!rc) printf("%s -> %s\n", name, path);
            fv_progress_add(1);
        }
        if (!rc && npy) {
            char path[4600];
            suffixed(npy, src->stem, several, path, sizeof path);
            size_t dims[FV_MAX_RANK + 1];
            int r = 0;
            if (src->batched) dims[r++] = src->count;
            for (int k = 0; k < m.in_rank; k++) dims[r++] = (size_t)ishape->d[input->kperm[k]];
            if (!(rc = job_mkdirs_for(path, err))) rc = fv_npy_save(path, keep, r, dims, err);
        }
    }
    fv_progress_end();
    free(x);
done:
    free(g), free(keep), free(heat), free(tmp), free(kx);
    fv_plan_free(&s.p);
    fv_inputs_close(&in);
    fv_model_free(&m);
    return rc;
}
