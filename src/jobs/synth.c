#include "jobs/synth.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/par.h"
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
    return FV_OK;
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
    int n, h, w, c, hl, wl;    /* hl, wl: resolution of the coarse phase */
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

static int batch_init(struct batch *b, const struct fv_model *m, const struct synth_cfg *cfg, int n,
                      int h, int w, int c, int upto, int flags, struct fv_error *err) {
    memset(b, 0, sizeof *b);
    b->n = n, b->h = h, b->w = w, b->c = c;
    int f = cfg->coarse > 0 && cfg->param.basis == FV_PARAM_PIXEL ? cfg->coarse_factor : 1;
    b->hl = (h + f - 1) / f, b->wl = (w + f - 1) / f;
    int rc = fv_param_init(&b->param, &cfg->param, h, w, c, err);
    if (!rc && f > 1) rc = fv_param_init(&b->param_lo, &cfg->param, b->hl, b->wl, c, err);
    if (!rc) rc = fv_plan_init_upto(&b->plan, m, n, h, w, flags, upto, err);
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
    b->t = calloc(N, sizeof *b->t);
    b->pick = calloc(N, sizeof *b->pick);
    b->best_score = calloc(N, sizeof *b->best_score);
    b->warps = calloc(N, sizeof *b->warps);
    if (!ok || !b->t || !b->pick || !b->best_score || !b->warps)
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory for a batch of %d images of %dx%dx%d", n, h, w, c);
    return FV_OK;
}

/* Objectives of every image at display images u (no transforms). */
static void evaluate(struct batch *b, const struct fv_preproc *pp, const struct fv_objective *obj,
                     int top, const float *u, double *out) {
    synth_to_model(pp, u, b->plan.x, (size_t)b->n * (size_t)b->h * (size_t)b->w, b->c);
    fv_forward(&b->plan, top);
    for (int i = 0; i < b->n; i++) out[i] = fv_objective_value(&obj[i], &b->plan, i);
}

/* One ascent step on all images. lo: the coarse phase. */
static void step(struct batch *b, const struct fv_preproc *pp, const struct synth_cfg *cfg,
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
    for (int i = 0; i < b->n; i++) {
        struct fv_transform_params tp;
        fv_transform_sample(&b->tcfg, cfg->seed, keys[i], (uint64_t)s, &tp);
        fv_warp_from_params(&tp, b->h, b->w, &b->warps[i]);
    }
    fv_warp_forward(b->warps, &b->tcfg, b->u, b->warped, b->n, b->h, b->w, b->c);
    synth_to_model(pp, b->warped, b->plan.x, pixels, b->c);
    fv_forward(&b->plan, top);
    /* backward: objectives -> model input -> warped -> u (+ regularizers) -> theta */
    fv_grad_zero(&b->plan);
    for (int i = 0; i < b->n; i++) fv_objective_seed(&obj[i], &b->plan, i, 1.0f);
    b->plan.escape_relu = s < cfg->escape_steps;
    fv_backward(&b->plan, top);
    memset(b->dv, 0, pixels * (size_t)b->c * sizeof(float));
    memset(b->du, 0, pixels * (size_t)b->c * sizeof(float));
    synth_to_model_backward(pp, b->plan.dx, b->dv, pixels, b->c);
    fv_warp_backward(b->warps, &b->tcfg, b->dv, b->du, b->n, b->h, b->w, b->c);
    if (cfg->l2 > 0) fv_reg_lp(b->u, b->n, b->img, cfg->p, cfg->l2_center, cfg->l2, b->du, NULL);
    /* tv weighs the SUM of absolute neighbour differences (Lucid's
     * total_variation); fv_reg_tv_l1 divides by the element count */
    if (cfg->tv > 0) fv_reg_tv_l1(b->u, b->n, b->h, b->w, b->c, cfg->tv * (float)b->img, b->du, NULL);
    size_t size = fv_param_size(param);
    memset(b->g, 0, (size_t)b->n * size * sizeof(float));
    if (lo) {
        size_t nlo = (size_t)b->n * (size_t)b->hl * (size_t)b->wl * (size_t)b->c;
        memset(b->du_lo, 0, nlo * sizeof(float));
        fv_resize_bilinear_backward(b->du, b->h, b->w, b->du_lo, b->hl, b->wl, b->c, b->n);
        fv_param_backward(param, b->u_lo, b->du_lo, b->g, b->n, b->ws);
    } else {
        fv_param_backward(param, b->u, b->du, b->g, b->n, b->ws);
    }
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
                    int c, const uint64_t *keys, int top, int flags, float *u, double *score,
                    struct fv_error *err) {
    int rc = FV_OK;
    if (bb->n != n) {
        batch_free(bb);
        rc = batch_init(bb, m, cfg, n, h, w, c, top, flags, err);
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
            fv_resize_bilinear(bb->u_lo, bb->hl, bb->wl, bb->u, h, w, c, n);
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
        fv_resize_bilinear(bb->u_lo, bb->hl, bb->wl, bb->u, h, w, c, n);
    } else {
        fv_param_forward(&bb->param, bb->theta, bb->u, n, bb->ws);
    }
    evaluate(bb, pp, obj, top, bb->u, now);
    for (int i = 0; i < n; i++) {
        int use_best = cfg->keep_best && bb->best_score[i] > now[i];
        memcpy(u + (size_t)i * bb->img, (use_best ? bb->best : bb->u) + (size_t)i * bb->img, bb->img * sizeof(float));
        score[i] = use_best ? bb->best_score[i] : now[i];
    }
    free(now);
    return FV_OK;
}

/* SYNTH_LANE (synth.h), images per lane at most: a lane's plan (activations
 * and gradients of its images) stays small, and Dense weights are still read
 * once per several images (measured on the bench network: 11 beat 4, 8 and 22). */

int synth_lanes(int n, int *start) {
    int lanes = (n + SYNTH_LANE - 1) / SYNTH_LANE;
    for (int k = 0; k <= lanes; k++) start[k] = (int)((long long)n * k / (lanes ? lanes : 1));
    return lanes;
}

int synth_run(const struct fv_model *m, const struct fv_preproc *pp, const struct synth_cfg *cfg,
              const struct fv_objective *obj, int n, int h, int w, int c, const uint64_t *keys,
              float *u, double *score, struct fv_error *err) {
    int *start = malloc(((size_t)n / SYNTH_LANE + 2) * sizeof *start);
    if (!start) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    int lanes = synth_lanes(n, start);
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
    int flags = FV_PLAN_GRAD | FV_PLAN_FUSE; /* ReLUs in place unless an objective reads before one */
    for (int i = 0; i < n; i++)
        if (fv_objective_reads_pre_relu(&obj[i], m)) flags = FV_PLAN_GRAD;
    if (lanes <= 1) {
        struct batch b = {0};
        int rc = lane_run(&b, m, pp, cfg, obj, n, h, w, c, keys, top, flags, u, score, err);
        batch_free(&b);
        return rc;
    }
    size_t img = (size_t)h * (size_t)w * (size_t)c;
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
            int r = lane_run(&b, m, pp, cfg, obj + first, cnt, h, w, c, keys + first, top, flags,
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
    return rc;
}
