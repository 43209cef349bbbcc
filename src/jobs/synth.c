#include "jobs/synth.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/par.h"
#include "kernels/resample.h"
#include "featviz/progress.h"

int synth_cfg_read(const struct fv_settings *s, const char *sec, struct synth_cfg *c,
                   struct fv_error *err) {
    memset(c, 0, sizeof *c);
    c->steps = fv_get_int(s, sec, "steps");
    c->seed = (uint64_t)fv_get_int(s, sec, "seed");
    c->normalized = !strcmp(fv_get_str(s, sec, "optimizer"), "normalized");
    c->lr = (float)fv_get_float(s, sec, "lr");
    int fourier = !strcmp(fv_get_str(s, sec, "param"), "fourier");
    fv_param_config_default(&c->param, fourier ? FV_PARAM_FOURIER : FV_PARAM_PIXEL);
    c->param.decay = (float)fv_get_float(s, sec, "decay");
    c->param.decorrelate = fourier && fv_get_bool(s, sec, "decorrelate");
    c->param.init_sd = (float)fv_get_float(s, sec, "init_sd");
    if (!fourier) {
        c->param.init_uniform = 0; /* mean + sd * N(0,1) */
        c->param.init_mean = (float)fv_get_float(s, sec, "init_mean");
        c->clip = fv_get_bool(s, sec, "clip");
    }
    struct fv_transform_config *t = &c->transform;
    fv_transform_config_default(t);
    t->pad = (float)fv_get_float(s, sec, "pad");
    t->jitter1 = (float)fv_get_float(s, sec, "jitter");
    t->jitter2 = (float)fv_get_float(s, sec, "jitter2");
    t->scale_min = (float)fv_get_float(s, sec, "scale_min");
    t->scale_max = (float)fv_get_float(s, sec, "scale_max");
    t->rotate_deg = (float)fv_get_float(s, sec, "rotate");
    static const char *modes[] = {"constant", "reflect", "edge", "wrap"};
    static const enum fv_pad_mode mode_of[] = {FV_PAD_CONSTANT, FV_PAD_REFLECT, FV_PAD_EDGE, FV_PAD_WRAP};
    for (int i = 0; i < 4; i++)
        if (!strcmp(fv_get_str(s, sec, "pad_mode"), modes[i])) t->pad_mode = mode_of[i];
    t->jitter_integer = fv_get_bool(s, sec, "jitter_integer");
    if (t->scale_min > t->scale_max)
        return fv_error_set(err, FV_ERR_USAGE, "%s: %s.scale_min %g is above scale_max %g", fv_get_origin(s, sec, "scale_min"),
                            sec, (double)t->scale_min, (double)t->scale_max);
    c->l2 = (float)fv_get_float(s, sec, "l2");
    c->p = (float)fv_get_float(s, sec, "p");
    c->l2_center = (float)fv_get_float(s, sec, "l2_center");
    c->tv = (float)fv_get_float(s, sec, "tv");
    c->blur_every = fv_get_int(s, sec, "blur_every");
    c->blur_sigma = (float)fv_get_float(s, sec, "blur_sigma");
    c->coarse = fourier ? 0.0f : (float)fv_get_float(s, sec, "coarse");
    c->coarse_factor = fv_get_int(s, sec, "coarse_factor");
    c->escape_steps = fv_get_int(s, sec, "escape_steps");
    c->keep_best = fv_get_bool(s, sec, "keep_best");
    c->batch = fv_get_int(s, sec, "batch");
    c->relative = fv_get_bool(s, sec, "relative");
    c->per_class = fv_key_find(sec, "per_class") ? fv_get_int(s, sec, "per_class") : 1;
    c->diversity = fv_key_find(sec, "diversity") ? (float)fv_get_float(s, sec, "diversity") : 0.0f;
    c->diversity_layer = fv_key_find(sec, "diversity_layer") ? fv_get_str(s, sec, "diversity_layer") : NULL;
    c->copies = fv_key_find(sec, "copies") ? fv_get_int(s, sec, "copies") : 1;
    c->drop = fv_key_find(sec, "drop") ? (float)fv_get_float(s, sec, "drop") : 0.0f;
    c->contrast = fv_key_find(sec, "contrast") ? (float)fv_get_float(s, sec, "contrast") : 0.0f;
    c->noise = fv_key_find(sec, "noise") ? (float)fv_get_float(s, sec, "noise") : 0.0f;
    c->features_weight = fv_key_find(sec, "features_weight") ? (float)fv_get_float(s, sec, "features_weight") : 0.0f;
    const char *size = fv_get_str(s, sec, "size");
    char *end = NULL;
    if (!strcmp(size, "auto")) { /* 4x the input, at least 128 px */
        c->size = 4, c->size_times = 1, c->size_min = 128;
        return FV_OK;
    }
    double v = strtod(size, &end);
    c->size_times = end && (*end == 'x' || *end == 'X') && !end[1];
    if (end == size || (*end && !c->size_times) || !(v > 0) || v > 65536 || (!c->size_times && v != floor(v)))
        return fv_error_set(err, FV_ERR_USAGE, "%s: %s.size '%s': expected auto, pixels (such as 128) or a multiple of the model input (such as 4x)",
                            fv_get_origin(s, sec, "size"), sec, size);
    c->size = (float)v;
    c->size_min = 0;
    return FV_OK;
}

void synth_display_size(const struct synth_cfg *cfg, int h, int w, int *H, int *W) {
    int side = h > w ? h : w;
    double target = cfg->size_times ? (double)cfg->size * (double)side : (double)cfg->size;
    if (target < cfg->size_min) target = cfg->size_min;
    if (cfg->size <= 0) target = side;
    double f = target / (double)side;
    *H = (int)lround((double)h * f), *W = (int)lround((double)w * f);
    if (*H < 1) *H = 1;
    if (*W < 1) *W = 1;
}

/* x[k] = (255 v[src] * scale + offset - mean[k]) / std[k] as x[k] = a[k] v[src] + b[k],
 * src = 2 - k for BGR models */
static int to_model_affine(const struct fv_preproc *pp, int c, float *a, float *b) {
    for (int k = 0; k < c; k++)
        a[k] = 255.0f * pp->scale / pp->std[k], b[k] = (pp->offset - pp->mean[k]) / pp->std[k];
    return c == 3 && pp->color == FV_COLOR_BGR;
}

void synth_to_model(const struct fv_preproc *pp, const float *v, float *x, size_t pixels, int c) {
    float a[3], b[3];
    if (to_model_affine(pp, c, a, b)) {
        for (size_t i = 0; i < pixels; i++)
            for (int k = 0; k < 3; k++) x[i * 3 + (size_t)k] = a[k] * v[i * 3 + (size_t)(2 - k)] + b[k];
    } else if (c == 3) {
        for (size_t i = 0; i < pixels; i++)
            for (int k = 0; k < 3; k++) x[i * 3 + (size_t)k] = a[k] * v[i * 3 + (size_t)k] + b[k];
    } else {
        for (size_t i = 0; i < pixels; i++) x[i] = a[0] * v[i] + b[0];
    }
}

void synth_to_model_backward(const struct fv_preproc *pp, const float *dx, float *dv,
                             size_t pixels, int c) {
    float a[3], b[3];
    if (to_model_affine(pp, c, a, b)) {
        for (size_t i = 0; i < pixels; i++)
            for (int k = 0; k < 3; k++) dv[i * 3 + (size_t)(2 - k)] += a[k] * dx[i * 3 + (size_t)k];
    } else if (c == 3) {
        for (size_t i = 0; i < pixels; i++)
            for (int k = 0; k < 3; k++) dv[i * 3 + (size_t)k] += a[k] * dx[i * 3 + (size_t)k];
    } else {
        for (size_t i = 0; i < pixels; i++) dv[i] += a[0] * dx[i];
    }
}

void synth_to_bytes(const float *u, unsigned char *out, size_t count) {
    for (size_t i = 0; i < count; i++) {
        float v = u[i] * 255.0f + 0.5f;
        out[i] = (unsigned char)(v < 0.0f || isnan(v) ? 0.0f : v > 255.0f ? 255.0f : v);
    }
}

/* Pixel sizes: values below 1 are fractions of the longer side. */
static float px(float v, int h, int w) { return v > 0.0f && v < 1.0f ? v * (float)(h > w ? h : w) : v; }

/* Everything one batch needs, allocated once. */
struct batch {
    int n, h, w, c, hl, wl;    /* h, w: the display image; hl, wl: resolution of the coarse phase */
    int mh, mw;                /* the model's input; the display image is downsampled to it */
    struct fv_resample down;   /* anti-aliased (h, w) -> (mh, mw); unused when the sizes agree */
    float *small, *dsmall;     /* (n, mh, mw, c) model-size image and its gradient, or NULL */
    int div_node, div_ch;      /* diversity: the layer whose Gram matrices are compared (-1: off), its channels */
    float *gram, *dgram;       /* (n, ch, ch) normalized Gram matrices; one image's gradient (ch, ch) */
    double *gnorm;             /* (n) their norms before normalizing */
    float *fweight;            /* (n) feature prior: each image's weight */
    float *contrast;           /* (n) each image's random contrast this step */
    double *fws;               /* its scratch, 4 x the widest layer's channels */
    size_t img, size;          /* floats per image: display image, theta */
    struct fv_param param, param_lo;
    struct fv_plan plan;
    struct fv_transform_config tcfg;
    struct fv_warp *warps;
    float *theta, *m, *v, *g, *u, *u_lo, *warped, *du, *dv, *du_lo, *best, *ws, *blur_ws;
    int *t, *pick;             /* Adam's step counts; the channel each image's objective reads */
    double *best_score;
};

static void batch_free(struct batch *b) {
    fv_param_free(&b->param);
    fv_param_free(&b->param_lo);
    fv_plan_free(&b->plan);
    fv_resample_free(&b->down);
    free(b->small);
    free(b->dsmall);
    free(b->gram);
    free(b->dgram);
    free(b->gnorm);
    free(b->fweight);
    free(b->contrast);
    free(b->fws);
    free(b->warps);
    float *bufs[] = {b->theta, b->m, b->v, b->g, b->u, b->u_lo, b->warped, b->du, b->dv, b->du_lo, b->best, b->ws, b->blur_ws};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(b->t);
    free(b->pick);
    free(b->best_score);
    memset(b, 0, sizeof *b);
}

static float *alloc_floats(size_t n, int *ok) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) *ok = 0;
    return p;
}

/* The diversity layer: diversity_layer by name, or the deepest layer up to
 * the objectives' with an image output of at least 2x2 (its Gram matrices
 * describe textures, as Lucid's mixed4a does). */
static int diversity_layer(struct batch *b, const struct fv_model *m, const struct synth_cfg *cfg, int upto,
                           struct fv_error *err) {
    int node = -1;
    if (cfg->diversity_layer && *cfg->diversity_layer) {
        node = fv_model_find(m, cfg->diversity_layer);
        if (node < 0 || node > upto || b->plan.io[node].out.rank != 3)
            return fv_error_set(err, FV_ERR_USAGE, "diversity_layer '%s': not a layer with an image output below the objectives",
                                cfg->diversity_layer);
    } else {
        for (int i = upto; i > m->input && node < 0; i--)
            if (b->plan.io[i].out.rank == 3 && b->plan.io[i].out.d[0] >= 2 && b->plan.io[i].out.d[1] >= 2) node = i;
        if (node < 0) return FV_OK; /* nothing to compare: no diversity */
    }
    b->div_node = node;
    b->div_ch = b->plan.io[node].out.d[2];
    if (b->div_ch > 2048) return fv_error_set(err, FV_ERR_USAGE, "diversity layer '%s' has %d channels (at most 2048)", m->layers[node].name, b->div_ch);
    return FV_OK;
}

/* Lucid's diversity penalty over each group of k images (one class):
 *   D = (1/k) sum_i sum_{j != i} <g_i, g_j>,  g_i = G_i / |G_i|,  G_i = A_i^T A_i
 * with A_i (hw, ch) image i's activations at the diversity layer. Seeds
 * -weight_i dD/dA_i into that layer's gradient, weight_i = diversity * |f_i|
 * (f_i the objective now), so it scales with the objective.
 *   dD/dG_i = (2/k) sum_{j != i} (g_j - <g_i, g_j> g_i) / |G_i|,  dD/dA_i = 2 A_i dD/dG_i */
static void diversity_seed(struct batch *b, const struct synth_cfg *cfg, const struct fv_objective *obj) {
    int node = b->div_node, ch = b->div_ch, k = cfg->per_class;
    size_t per = fv_shape_count(&b->plan.io[node].out), hw = per / (size_t)ch, cc = (size_t)ch * (size_t)ch;
    const float *act = b->plan.buf[node].y;
    for (int i = 0; i < b->n; i++) {
        const float *a = act + (size_t)i * per;
        float *g = b->gram + (size_t)i * cc;
        memset(g, 0, cc * sizeof(float));
        for (size_t p = 0; p < hw; p++) {
            const float *ap = a + p * (size_t)ch;
            for (int r = 0; r < ch; r++) {
                float v = ap[r];
                if (v == 0.0f) continue;
                float *gr = g + (size_t)r * (size_t)ch;
                for (int q = 0; q < ch; q++) gr[q] += v * ap[q];
            }
        }
        double s = 0;
        for (size_t q = 0; q < cc; q++) s += (double)g[q] * (double)g[q];
        b->gnorm[i] = sqrt(s);
        float inv = b->gnorm[i] > 0 ? (float)(1.0 / b->gnorm[i]) : 0.0f;
        for (size_t q = 0; q < cc; q++) g[q] *= inv;
    }
    float *grad = fv_plan_grad(&b->plan, node, 0);
    for (int i = 0; i < b->n; i++) {
        int g0 = i / k * k;
        if (!(b->gnorm[i] > 0)) continue;
        const float *gi = b->gram + (size_t)i * cc;
        memset(b->dgram, 0, cc * sizeof(float));
        for (int j = g0; j < g0 + k && j < b->n; j++) {
            if (j == i) continue;
            const float *gj = b->gram + (size_t)j * cc;
            double c = 0;
            for (size_t q = 0; q < cc; q++) c += (double)gi[q] * (double)gj[q];
            for (size_t q = 0; q < cc; q++) b->dgram[q] += gj[q] - (float)c * gi[q];
        }
        double f = fabs(fv_objective_value(&obj[i], &b->plan, i));
        /* -weight * 2 A (2/k) dgram / |G| */
        float scale = (float)(-(double)cfg->diversity * (f > 1e-6 ? f : 1e-6) * 4.0 / ((double)k * b->gnorm[i]));
        const float *a = act + (size_t)i * per;
        float *d = grad + (size_t)i * per;
        for (size_t p = 0; p < hw; p++) {
            const float *ap = a + p * (size_t)ch;
            float *dp = d + p * (size_t)ch;
            for (int r = 0; r < ch; r++) {
                float v = ap[r];
                if (v == 0.0f) continue;
                const float *gr = b->dgram + (size_t)r * (size_t)ch;
                for (int q = 0; q < ch; q++) dp[q] += scale * v * gr[q];
            }
        }
    }
}

/* DeepInversion's prior: seeds -weight_i dR_i/dA into each chosen layer's
 * gradient (fv_reg_featstats), weight_i = features_weight * |f_i| (f_i the
 * objective now), so it scales with the objective as the diversity term does. */
static void features_seed(struct batch *b, const struct synth_cfg *cfg, const struct fv_objective *obj) {
    const struct synth_features *f = cfg->features;
    for (int i = 0; i < b->n; i++) {
        double v = fabs(fv_objective_value(&obj[i], &b->plan, i));
        b->fweight[i] = cfg->features_weight * (float)(v > 1e-6 ? v : 1e-6);
    }
    for (int l = 0; l < f->layers; l++) {
        int t = f->node[l], ch = f->off[l + 1] - f->off[l];
        size_t per = fv_shape_count(&b->plan.io[t].out);
        fv_reg_featstats(b->plan.buf[t].y, b->n, per / (size_t)ch, ch, f->mu + f->off[l], f->var + f->off[l],
                         b->fweight, fv_plan_grad(&b->plan, t, 0), NULL, b->fws);
    }
}

/* seeded: the nodes objectives seed (plan_seeds), or NULL: gradient buffers are not shared */
static int batch_init(struct batch *b, const struct fv_model *m, const struct synth_cfg *cfg, int n,
                      int mh, int mw, int c, int upto, int flags, const unsigned char *seeded,
                      struct fv_error *err) {
    memset(b, 0, sizeof *b);
    int h, w;
    synth_display_size(cfg, mh, mw, &h, &w);
    b->n = n, b->h = h, b->w = w, b->c = c, b->mh = mh, b->mw = mw;
    int f = cfg->coarse > 0 && cfg->param.basis == FV_PARAM_PIXEL ? cfg->coarse_factor : 1;
    b->hl = (h + f - 1) / f, b->wl = (w + f - 1) / f;
    int rc = fv_param_init(&b->param, &cfg->param, h, w, c, err);
    if (!rc && f > 1) rc = fv_param_init(&b->param_lo, &cfg->param, b->hl, b->wl, c, err);
    if (!rc) rc = fv_plan_init_shared(&b->plan, m, n, mh, mw, flags, upto, seeded, err);
    if (!rc && (h != mh || w != mw)) rc = fv_resample_init(&b->down, h, w, mh, mw, FV_RS_LINEAR_AA, err);
    b->div_node = -1;
    if (!rc && cfg->per_class > 1 && cfg->diversity > 0) rc = diversity_layer(b, m, cfg, upto, err);
    struct fv_transform_config t = cfg->transform;
    t.unit = FV_UNIT_PX;
    t.pad = px(t.pad, h, w), t.jitter1 = px(t.jitter1, h, w), t.jitter2 = px(t.jitter2, h, w);
    if (!rc) rc = fv_transform_resolve(&t, h, w, &b->tcfg, err);
    if (rc) return rc;
    b->img = (size_t)h * (size_t)w * (size_t)c;
    b->size = fv_param_size(&b->param);
    size_t N = (size_t)n, ws = fv_param_ws_floats(&b->param, n);
    if (f > 1 && fv_param_ws_floats(&b->param_lo, n) > ws) ws = fv_param_ws_floats(&b->param_lo, n);
    int ok = 1;
    b->theta = alloc_floats(N * b->size, &ok);
    b->m = alloc_floats(N * b->size, &ok);
    b->v = alloc_floats(N * b->size, &ok);
    b->g = alloc_floats(N * b->size, &ok);
    b->u = alloc_floats(N * b->img, &ok);
    b->warped = alloc_floats(N * b->img, &ok);
    b->du = alloc_floats(N * b->img, &ok);
    b->dv = alloc_floats(N * b->img, &ok);
    b->best = alloc_floats(N * b->img, &ok);
    b->ws = alloc_floats(ws, &ok);
    b->blur_ws = alloc_floats(fv_blur_ws_floats(n, h, w, c), &ok);
    if (f > 1) {
        b->u_lo = alloc_floats(N * (size_t)b->hl * (size_t)b->wl * (size_t)c, &ok);
        b->du_lo = alloc_floats(N * (size_t)b->hl * (size_t)b->wl * (size_t)c, &ok);
    }
    if (b->div_node >= 0) {
        size_t cc = (size_t)b->div_ch * (size_t)b->div_ch;
        b->gram = alloc_floats(N * cc, &ok);
        b->dgram = alloc_floats(cc, &ok);
        b->gnorm = calloc(N, sizeof *b->gnorm);
        if (!b->gnorm) ok = 0;
    }
    if (h != mh || w != mw) {
        b->small = alloc_floats(N * (size_t)mh * (size_t)mw * (size_t)c, &ok);
        b->dsmall = alloc_floats(N * (size_t)mh * (size_t)mw * (size_t)c, &ok);
    }
    b->contrast = alloc_floats(N, &ok);
    if (cfg->features) {
        int widest = 1;
        for (int l = 0; l < cfg->features->layers; l++) {
            int ch = cfg->features->off[l + 1] - cfg->features->off[l];
            if (ch > widest) widest = ch;
            int node = cfg->features->node[l];
            if (node > upto || b->plan.io[node].out.rank != 3 || b->plan.io[node].out.d[2] != ch)
                return fv_error_set(err, FV_ERR_USAGE, "features_layers: layer '%s' is not an image layer the objectives depend on", m->layers[node].name);
        }
        b->fweight = alloc_floats(N, &ok);
        b->fws = calloc(4 * (size_t)widest, sizeof *b->fws);
        if (!b->fws) ok = 0;
    }
    b->t = calloc(N, sizeof *b->t);
    b->pick = calloc(N, sizeof *b->pick);
    b->best_score = calloc(N, sizeof *b->best_score);
    b->warps = calloc(N, sizeof *b->warps);
    if (!ok || !b->t || !b->pick || !b->best_score || !b->warps)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory for a batch of %d images of %dx%dx%d", n, h, w, c);
    return FV_OK;
}

/* Objectives of every image at display images u (no transforms). */
/* Display images v (n, h, w, c) into the model's input: downsampled when larger. */
static void to_model(struct batch *b, const struct fv_preproc *pp, const float *v) {
    if (b->small) {
        fv_resample_forward(&b->down, v, b->small, b->c, b->n, NULL);
        v = b->small;
    }
    synth_to_model(pp, v, b->plan.x, (size_t)b->n * (size_t)b->mh * (size_t)b->mw, b->c);
}

/* dv = the transpose of to_model applied to the plan's input gradient (overwrites dv). */
static void to_model_backward(struct batch *b, const struct fv_preproc *pp, float *dv) {
    size_t model_px = (size_t)b->n * (size_t)b->mh * (size_t)b->mw;
    memset(dv, 0, (size_t)b->n * b->img * sizeof(float));
    if (!b->small) {
        synth_to_model_backward(pp, b->plan.dx, dv, model_px, b->c);
        return;
    }
    memset(b->dsmall, 0, model_px * (size_t)b->c * sizeof(float));
    synth_to_model_backward(pp, b->plan.dx, b->dsmall, model_px, b->c);
    fv_resample_backward(&b->down, b->dsmall, dv, b->c, b->n);
}

/* Gaussian noise of sd `noise` (display units) on the model's input, image
 * i's from the stream (seed, FV_RNG_USER + 1, keys[i], key): input diversity
 * that the gradient passes unchanged. */
static void add_noise(struct batch *b, const struct fv_preproc *pp, const struct synth_cfg *cfg,
                      const uint64_t *keys, uint64_t key) {
    float a[3], off[3];
    to_model_affine(pp, b->c, a, off);
    size_t px = (size_t)b->mh * (size_t)b->mw;
    for (int i = 0; i < b->n; i++) {
        struct fv_rng r;
        fv_rng_seed(&r, cfg->seed, FV_RNG_USER + 1, keys[i], key);
        float *x = b->plan.x + (size_t)i * px * (size_t)b->c;
        for (size_t q = 0; q < px; q++)
            for (int k = 0; k < b->c; k++) x[q * (size_t)b->c + (size_t)k] += a[k] * cfg->noise * fv_rng_normal(&r);
    }
}

/* Random contrast c in [1 - contrast, 1 + contrast] about the image's middle
 * gray and brightness beta per channel in +-contrast/2 (display units) on the
 * model's input, image i's from the stream (seed, FV_RNG_USER + 2, keys[i],
 * key): the photometric variation real photos have. b->contrast[i] keeps c for
 * the backward. */
static void contrast_forward(struct batch *b, const struct fv_preproc *pp, const struct synth_cfg *cfg,
                             const uint64_t *keys, uint64_t key) {
    float a[3], off[3];
    to_model_affine(pp, b->c, a, off);
    size_t px = (size_t)b->mh * (size_t)b->mw;
    for (int i = 0; i < b->n; i++) {
        struct fv_rng r;
        fv_rng_seed(&r, cfg->seed, FV_RNG_USER + 2, keys[i], key);
        float c = fv_rng_range(&r, 1.0f - cfg->contrast, 1.0f + cfg->contrast), beta[3];
        for (int k = 0; k < b->c; k++) beta[k] = fv_rng_range(&r, -0.5f * cfg->contrast, 0.5f * cfg->contrast);
        b->contrast[i] = c;
        float *x = b->plan.x + (size_t)i * px * (size_t)b->c;
        for (size_t q = 0; q < px; q++)
            for (int k = 0; k < b->c; k++) {
                float mid = a[k] * 0.5f + off[k]; /* gray 0.5 in model units */
                float *v = &x[q * (size_t)b->c + (size_t)k];
                *v = c * (*v - mid) + mid + a[k] * beta[k];
            }
    }
}

static void evaluate(struct batch *b, const struct fv_preproc *pp, const struct fv_objective *obj,
                     int top, const float *u, double *out) {
    to_model(b, pp, u);
    b->plan.drop = 0.0f; /* the model itself */
    fv_forward(&b->plan, top);
    for (int i = 0; i < b->n; i++) out[i] = fv_objective_value(&obj[i], &b->plan, i);
}

/* Each image's gradient divided by its mean |g| (left alone when 0): the
 * objective's scale no longer matters to the penalties added after it. */
static void relative_gradient(float *g, int n, size_t count) {
    for (int i = 0; i < n; i++) {
        float *gi = g + (size_t)i * count;
        double s = 0;
        for (size_t k = 0; k < count; k++) s += fabs((double)gi[k]);
        if (!(s > 0)) continue;
        float inv = (float)((double)count / s);
        for (size_t k = 0; k < count; k++) gi[k] *= inv;
    }
}

/* The gradient of step s's objectives (with penalties) with respect to theta,
 * into b->g. */
static void gradient(struct batch *b, const struct fv_preproc *pp, const struct synth_cfg *cfg,
                     const struct fv_objective *obj, int top, const uint64_t *keys, int s, int lo) {
    const struct fv_param *param = lo ? &b->param_lo : &b->param;
    size_t pixels = (size_t)b->n * (size_t)b->h * (size_t)b->w;
    /* forward: theta -> u -> warped -> model */
    if (lo) {
        fv_param_forward(param, b->theta, b->u_lo, b->n, b->ws);
        fv_resize_bilinear(b->u_lo, b->hl, b->wl, b->u, b->h, b->w, b->c, b->n);
    } else {
        fv_param_forward(param, b->theta, b->u, b->n, b->ws);
    }
    memset(b->du, 0, pixels * (size_t)b->c * sizeof(float));
    /* copies > 1: the sum of the gradients of that many random transforms
     * (transform streams keyed by step * copies + copy; one copy: by step) */
    int copies = cfg->copies > 1 ? cfg->copies : 1;
    for (int j = 0; j < copies; j++) {
        uint64_t key = (uint64_t)s * (uint64_t)copies + (uint64_t)j;
        for (int i = 0; i < b->n; i++) {
            struct fv_transform_params tp;
            fv_transform_sample(&b->tcfg, cfg->seed, keys[i], key, &tp);
            fv_warp_from_params(&tp, b->h, b->w, &b->warps[i]);
        }
        fv_warp_forward(b->warps, &b->tcfg, b->u, b->warped, b->n, b->h, b->w, b->c);
        to_model(b, pp, b->warped);
        if (cfg->contrast > 0) contrast_forward(b, pp, cfg, keys, key);
        if (cfg->noise > 0) add_noise(b, pp, cfg, keys, key);
        b->plan.drop = cfg->drop, b->plan.drop_keys = keys, b->plan.drop_step = key ^ cfg->seed * 0x9e3779b97f4a7c15ULL;
        fv_forward(&b->plan, top);
        /* backward: objectives -> model input -> warped -> u (+ regularizers) -> theta */
        fv_grad_zero(&b->plan);
        for (int i = 0; i < b->n; i++) fv_objective_seed(&obj[i], &b->plan, i, 1.0f);
        if (b->div_node >= 0) diversity_seed(b, cfg, obj);
        if (cfg->features && cfg->features_weight > 0) features_seed(b, cfg, obj);
        b->plan.escape_relu = s < cfg->escape_steps;
        fv_backward(&b->plan, top);
        if (cfg->contrast > 0) /* x' = c (x - b) + b + a beta: dx = c dx' */
            for (int i = 0; i < b->n; i++) {
                size_t cnt = (size_t)b->mh * (size_t)b->mw * (size_t)b->c;
                float *d = b->plan.dx + (size_t)i * cnt;
                for (size_t q = 0; q < cnt; q++) d[q] *= b->contrast[i];
            }
        to_model_backward(b, pp, b->dv);
        fv_warp_backward(b->warps, &b->tcfg, b->dv, b->du, b->n, b->h, b->w, b->c);
    }
    if (cfg->relative) relative_gradient(b->du, b->n, b->img);
    /* relative: the penalties' weights are per display value, against an
     * objective gradient of mean |g| = 1 there; absolute: l2 weighs the MEAN
     * of |u - centre|^p, tv the SUM of absolute neighbour differences
     * (Lucid's total_variation). fv_reg_* divide by the element count. */
    float per = (float)b->img;
    if (cfg->l2 > 0) fv_reg_lp(b->u, b->n, b->img, cfg->p, cfg->l2_center, cfg->l2 * (cfg->relative ? per : 1.0f), b->du, NULL);
    if (cfg->tv > 0) fv_reg_tv_l1(b->u, b->n, b->h, b->w, b->c, cfg->tv * per, b->du, NULL);
    size_t size = fv_param_size(param);
    memset(b->g, 0, (size_t)b->n * size * sizeof(float));
    if (lo) {
        size_t nlo = (size_t)b->n * (size_t)b->hl * (size_t)b->wl * (size_t)b->c;
        memset(b->du_lo, 0, nlo * sizeof(float));
        fv_resize_bilinear_backward(b->du, b->h, b->w, b->du_lo, b->hl, b->wl, b->c, b->n);
        fv_param_backward(param, b->theta, b->u_lo, b->du_lo, b->g, b->n, b->ws);
    } else {
        fv_param_backward(param, b->theta, b->u, b->du, b->g, b->n, b->ws);
    }
}

/* One ascent step on all images. lo: the coarse phase. */
static void step(struct batch *b, const struct fv_preproc *pp, const struct synth_cfg *cfg,
                 const struct fv_objective *obj, int top, const uint64_t *keys, int s, int lo) {
    const struct fv_param *param = lo ? &b->param_lo : &b->param;
    size_t size = fv_param_size(param);
    gradient(b, pp, cfg, obj, top, keys, s, lo);
    if (cfg->normalized) {
        fv_ascent_step(cfg->lr, FV_NORM_MEAN_ABS, b->theta, b->g, b->n, size);
    } else {
        struct fv_adam a;
        fv_adam_default(&a);
        a.lr = cfg->lr;
        /* Adam is blind to the gradient's scale but for eps; gradients of a
         * small objective seen through the Fourier basis can be tiny, so eps
         * must sit far below them */
        a.eps = 1e-20f;
        fv_adam_step(&a, b->theta, b->g, b->m, b->v, b->t, b->n, size);
    }
    if (cfg->clip || param->cfg.basis != FV_PARAM_PIXEL) fv_param_project(param, b->theta, b->n);
    if (cfg->blur_every > 0 && (s + 1) % cfg->blur_every == 0 && param->cfg.basis == FV_PARAM_PIXEL && !param->cfg.sigmoid)
        fv_blur_gaussian(b->theta, b->n, lo ? b->hl : b->h, lo ? b->wl : b->w, b->c, cfg->blur_sigma, b->blur_ws, NULL);
}

/* The whole optimization of n images as one batch (one plan, every step).
 * bb: a batch left by an earlier lane of this thread, reused when it has the
 * same size (plans and their transformed kernels are made once), else
 * remade; the caller frees it. */
static int lane_run(struct batch *bb, const struct fv_model *m, const struct fv_preproc *pp,
                    const struct synth_cfg *cfg, const struct fv_objective *obj, int n, int h, int w,
                    int c, const uint64_t *keys, int top, int flags, const unsigned char *seeded,
                    float *u, double *score, struct fv_error *err) {
    int rc = FV_OK;
    if (bb->n != n) {
        batch_free(bb);
        rc = batch_init(bb, m, cfg, n, h, w, c, top, flags, seeded, err);
    } else { /* a fresh start: Adam's moments and step counts */
        memset(bb->m, 0, (size_t)n * bb->size * sizeof(float));
        memset(bb->v, 0, (size_t)n * bb->size * sizeof(float));
        memset(bb->t, 0, (size_t)n * sizeof *bb->t);
    }
    for (int i = 0; !rc && i < n; i++) rc = fv_objective_check(&obj[i], &bb->plan, err);
    if (rc) {
        batch_free(bb);
        return rc;
    }
    /* one filter of the top layer per image: the top layer computes just those */
    int one_channel = 1;
    for (int i = 0; i < n; i++) one_channel &= (bb->pick[i] = fv_objective_channel(&obj[i], top)) >= 0;
    fv_plan_pick(&bb->plan, top, one_channel ? bb->pick : NULL);
    int lo = bb->u_lo != NULL;
    int switch_at = lo ? (int)(cfg->coarse * (float)cfg->steps) : 0;
    const struct fv_param *p0 = lo ? &bb->param_lo : &bb->param;
    for (int i = 0; i < n; i++) fv_param_init_values(p0, bb->theta + (size_t)i * fv_param_size(p0), 1, cfg->seed, keys[i]);
    int eval_every = cfg->steps / 16 > 1 ? cfg->steps / 16 : 1;
    for (int i = 0; i < n; i++) bb->best_score[i] = -INFINITY;
    double *now = malloc((size_t)n * sizeof *now);
    if (!now) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    for (int s = 0; s < cfg->steps && !fv_interrupted(); s++) {
        if (lo && s == switch_at) { /* coarse to fine: continue at full size */
            fv_param_forward(&bb->param_lo, bb->theta, bb->u_lo, n, bb->ws);
            fv_resize_bilinear(bb->u_lo, bb->hl, bb->wl, bb->u, bb->h, bb->w, c, n);
            memcpy(bb->theta, bb->u, (size_t)n * bb->img * sizeof(float)); /* pixel basis: theta = u */
            memset(bb->m, 0, (size_t)n * bb->size * sizeof(float));
            memset(bb->v, 0, (size_t)n * bb->size * sizeof(float));
            memset(bb->t, 0, (size_t)n * sizeof *bb->t);
            lo = 0;
        }
        step(bb, pp, cfg, obj, top, keys, s, lo);
        int last = s == cfg->steps - 1;
        if (cfg->keep_best && !lo && (s % eval_every == eval_every - 1 || last)) {
            fv_param_forward(&bb->param, bb->theta, bb->u, n, bb->ws);
            evaluate(bb, pp, obj, top, bb->u, now);
            for (int i = 0; i < n; i++)
                if (now[i] > bb->best_score[i]) {
                    bb->best_score[i] = now[i];
                    memcpy(bb->best + (size_t)i * bb->img, bb->u + (size_t)i * bb->img, bb->img * sizeof(float));
                }
        }
        FV_OMP("omp critical(synth_progress)")
        fv_progress_add((size_t)n);
    }
    /* the result: the best image seen, or the last one */
    if (lo) {
        fv_param_forward(&bb->param_lo, bb->theta, bb->u_lo, n, bb->ws);
        fv_resize_bilinear(bb->u_lo, bb->hl, bb->wl, bb->u, bb->h, bb->w, c, n);
    } else {
        fv_param_forward(&bb->param, bb->theta, bb->u, n, bb->ws);
    }
    evaluate(bb, pp, obj, top, bb->u, now);
    for (int i = 0; i < n; i++) {
        int use_best = cfg->keep_best && bb->best_score[i] > now[i];
        /* u is (n, display h, display w, c) */
        memcpy(u + (size_t)i * bb->img, (use_best ? bb->best : bb->u) + (size_t)i * bb->img, bb->img * sizeof(float));
        score[i] = use_best ? bb->best_score[i] : now[i];
    }
    free(now);
    return FV_OK;
}

/* The nodes the objectives obj[0..n) seed, for fv_plan_init_shared (malloc'd;
 * NULL when out of memory). With the diversity penalty nothing is shared:
 * its layer is chosen from the plan (an all-ones mask keeps every gradient). */
static unsigned char *plan_seeds(const struct fv_model *m, const struct synth_cfg *cfg,
                                 const struct fv_objective *obj, int n) {
    unsigned char *seeded = calloc((size_t)m->n_layers + 1, 1);
    int diversity = cfg->per_class > 1 && cfg->diversity > 0;
    if (seeded && diversity) memset(seeded, 1, (size_t)m->n_layers);
    for (int i = 0; seeded && i < n; i++)
        for (int k = 0; k < obj[i].n; k++) seeded[obj[i].t[k].node] = 1;
    if (seeded && cfg->features && cfg->features_weight > 0) /* the feature prior seeds its layers too */
        for (int l = 0; l < cfg->features->layers; l++) seeded[cfg->features->node[l]] = 1;
    return seeded;
}

/* SYNTH_LANE (synth.h), images per lane at most: a lane's plan (activations
 * and gradients of its images) stays small, and Dense weights are still read
 * once per several images (measured on the bench network: 11 beat 4, 8 and 22). */

int synth_lane_size(int h, int w) {
    long long per = SYNTH_LANE_PIXELS / ((long long)(h > 0 ? h : 1) * (w > 0 ? w : 1));
    return per < 1 ? 1 : per > SYNTH_LANE ? SYNTH_LANE : (int)per;
}

int synth_lanes(int n, int per, int lane, int *start) {
    int k = per > 1 && n % per == 0 ? per : 1, groups = n / k;
    if (lane < 1) lane = 1;
    int lanes = (n + lane - 1) / lane;
    if (lanes > groups) lanes = groups;
    for (int q = 0; q <= lanes; q++) start[q] = (int)((long long)groups * q / (lanes ? lanes : 1)) * k;
    return lanes;
}

int synth_run(const struct fv_model *m, const struct fv_preproc *pp, const struct synth_cfg *cfg,
              const struct fv_objective *obj, int n, int h, int w, int c, const uint64_t *keys,
              float *u, double *score, struct fv_error *err) {
    int *start = malloc(((size_t)n + 2) * sizeof *start);
    if (!start) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    int lanes = synth_lanes(n, cfg->per_class, synth_lane_size(h, w), start);
    int rc = synth_run_lanes(m, pp, cfg, obj, start, lanes, h, w, c, keys, u, score, err);
    free(start);
    return rc;
}

int synth_run_lanes(const struct fv_model *m, const struct fv_preproc *pp, const struct synth_cfg *cfg,
                    const struct fv_objective *obj, const int *start, int lanes, int h, int w, int c,
                    const uint64_t *keys, float *u, double *score, struct fv_error *err) {
    int n = start[lanes] - start[0], top = -1;
    obj += start[0], keys += start[0];
    for (int i = 0; i < n; i++)
        if (fv_objective_top(&obj[i]) > top) top = fv_objective_top(&obj[i]);
    /* Images are independent, so lanes of a few images each run all their
     * steps on one thread, side by side: no barrier per layer and step, and
     * memory for the lanes in flight only. One lane: parallel inside each
     * layer. Which images share a lane is fixed by the caller, never by the
     * thread count: a lane's batch size changes the kernels' summation order. */
    /* ReLUs in place unless an objective reads before one; BatchNorms folded */
    int flags = FV_PLAN_GRAD | FV_PLAN_FUSE | FV_PLAN_FOLD;
    for (int i = 0; i < n; i++)
        if (fv_objective_reads_pre_relu(&obj[i], m)) flags = FV_PLAN_GRAD | FV_PLAN_FOLD;
    int dh, dw;
    synth_display_size(cfg, h, w, &dh, &dw);
    size_t img = (size_t)dh * (size_t)dw * (size_t)c;
    unsigned char *seeded = plan_seeds(m, cfg, obj, n); /* gradient buffers shared by lifetime */
    if (!seeded) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    if (lanes <= 1) {
        struct batch b = {0};
        int rc = lane_run(&b, m, pp, cfg, obj, n, h, w, c, keys, top, flags, seeded, u, score, err);
        batch_free(&b);
        free(seeded);
        return rc;
    }
    int rc = FV_OK;
    FV_OMP("omp parallel")
    {
        struct batch b = {0};
        FV_OMP("omp for schedule(dynamic, 1)")
        for (int k = 0; k < lanes; k++) {
            int first = start[k] - start[0];
            int cnt = start[k + 1] - start[k], failed;
            FV_OMP("omp atomic read")
            failed = rc;
            if (failed) continue;
            struct fv_error e = {0};
            int r = lane_run(&b, m, pp, cfg, obj + first, cnt, h, w, c, keys + first, top, flags, seeded,
                             u + (size_t)first * img, score + first, &e);
            if (r) {
                FV_OMP("omp critical(synth_error)")
                if (!rc) {
                    *err = e;
                    FV_OMP("omp atomic write")
                    rc = r;
                }
            }
        }
        batch_free(&b);
    }
    free(seeded);
    return rc;
}

int synth_downsample(const float *u, int n, int H, int W, int h, int w, int c, float **out,
                     struct fv_error *err) {
    size_t count = (size_t)n * (size_t)h * (size_t)w * (size_t)c;
    *out = fv_malloc((count ? count : 1) * sizeof(float), err);
    if (!*out) return FV_ERR_NOMEM;
    if (H == h && W == w) {
        memcpy(*out, u, count * sizeof(float));
        return FV_OK;
    }
    struct fv_resample r;
    int rc = fv_resample_init(&r, H, W, h, w, FV_RS_LINEAR_AA, err);
    if (rc) {
        free(*out);
        *out = NULL;
        return rc;
    }
    fv_resample_forward(&r, u, *out, c, n, NULL);
    fv_resample_free(&r);
    return FV_OK;
}

int synth_probe(const struct fv_model *m, const struct fv_preproc *pp, const struct synth_cfg *cfg,
                const struct fv_objective *obj, int n, int h, int w, int c, const uint64_t *keys, int s,
                const float *theta, double *value, float *grad, struct fv_error *err) {
    struct batch b;
    memset(&b, 0, sizeof b);
    int top = -1;
    for (int i = 0; i < n; i++)
        if (fv_objective_top(&obj[i]) > top) top = fv_objective_top(&obj[i]);
    unsigned char *seeded = plan_seeds(m, cfg, obj, n);
    int rc = seeded ? batch_init(&b, m, cfg, n, h, w, c, top, FV_PLAN_GRAD, seeded, err)
                    : fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    for (int i = 0; !rc && i < n; i++) rc = fv_objective_check(&obj[i], &b.plan, err);
    if (!rc) {
        memcpy(b.theta, theta, (size_t)n * b.size * sizeof(float));
        gradient(&b, pp, cfg, obj, top, keys, s, 0);
        for (int i = 0; i < n; i++) value[i] = fv_objective_value(&obj[i], &b.plan, i);
        if (grad) memcpy(grad, b.g, (size_t)n * b.size * sizeof(float));
    }
    batch_free(&b);
    free(seeded);
    return rc;
}

size_t synth_theta_size(const struct synth_cfg *cfg, int h, int w, int c) {
    int H, W;
    struct fv_param p;
    synth_display_size(cfg, h, w, &H, &W);
    if (fv_param_init(&p, &cfg->param, H, W, c, NULL)) return 0;
    size_t n = fv_param_size(&p);
    fv_param_free(&p);
    return n;
}
