/* features_from: DeepInversion's feature-statistics prior from the user's own
 * images. Per chosen layer and channel, the mean over real images of each
 * image's spatial mean and variance of the activations (through the model
 * itself, with the declared preprocessing), or those numbers as a
 * features.npy that an earlier run wrote. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "featviz/layer.h"
#include "jobs/common.h"
#include "jobs/inputs.h"
#include "jobs/synth.h"

void synth_features_free(struct synth_features *f) {
    free(f->node), free(f->off), free(f->mu);
    memset(f, 0, sizeof *f);
}

/* The channels of node t's output as (positions, channels), or 0 when it is not an image. */
static int channels_of(const struct fv_io *io, int t) {
    return io[t].out.rank == 3 ? io[t].out.d[2] : 0;
}

/* "all" (every conv layer) or named layers with an image output; io: the
 * shapes of a one-image plan of the whole model. */
static int pick_layers(const struct fv_model *m, const struct fv_io *io, const char *list, const char *origin,
                       struct synth_features *f, struct fv_error *err) {
    f->node = malloc((size_t)m->n_layers * sizeof *f->node);
    f->off = malloc(((size_t)m->n_layers + 1) * sizeof *f->off);
    if (!f->node || !f->off) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    f->layers = 0;
    if (!strcmp(list, "all")) {
        for (int i = 0; i < m->n_layers; i++)
            if (m->layers[i].ops && (m->layers[i].ops->flags & FV_OPF_FILTERS) && channels_of(io, i) > 0)
                f->node[f->layers++] = i;
        if (!f->layers) return fv_error_set(err, FV_ERR_USAGE, "%s: %s has no conv layers for features_from", origin, m->path);
    } else {
        char buf[2048];
        snprintf(buf, sizeof buf, "%s", list);
        char *save = NULL;
        for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ') tok++;
            int t = fv_model_find(m, tok);
            if (t < 0 || t == m->input)
                return fv_error_set(err, FV_ERR_USAGE, "%s: no layer named '%s' in %s (see featviz info)", origin, tok, m->path);
            if (channels_of(io, t) <= 0)
                return fv_error_set(err, FV_ERR_USAGE, "%s: layer '%s' has no image output (height, width, channels)", origin, tok);
            if (f->layers < m->n_layers) f->node[f->layers++] = t;
        }
        if (!f->layers) return fv_error_set(err, FV_ERR_USAGE, "%s: no layers named", origin);
    }
    f->off[0] = 0;
    f->top = -1;
    for (int l = 0; l < f->layers; l++) {
        f->off[l + 1] = f->off[l] + channels_of(io, f->node[l]);
        if (f->node[l] > f->top) f->top = f->node[l];
    }
    return FV_OK;
}

/* Sums over the images of `from` of each image's per-channel spatial mean
 * and variance into f->mu / f->var; *used: the images. */
static int measure(const char *from, const char *origin, const struct fv_model *m, const struct fv_preproc *pp,
                   int h, int w, struct synth_features *f, size_t *used, struct fv_error *err) {
    struct fv_inputs in;
    int rc = fv_inputs_open(&in, from, m, pp, h, w, err);
    if (rc) {
        fv_error_prefix(err, "%s", origin);
        return rc;
    }
    int batch = in.total < 64 ? (int)(in.total ? in.total : 1) : 64;
    struct fv_plan p;
    if ((rc = fv_plan_init_upto(&p, m, batch, h, w, FV_PLAN_FUSE, f->top, err))) {
        fv_inputs_close(&in);
        return rc;
    }
    int total = f->off[f->layers];
    double *acc = calloc(2 * (size_t)total, sizeof *acc), *ws = malloc(4 * (size_t)total * sizeof *ws);
    if (!acc || !ws) rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    for (size_t first = 0; !rc && first < in.total; first += (size_t)batch) {
        int cnt = in.total - first < (size_t)batch ? (int)(in.total - first) : batch;
        memset(p.x, 0, fv_shape_count(&p.io[m->input].out) * (size_t)batch * sizeof(float));
        if ((rc = fv_inputs_read(&in, first, (size_t)cnt, p.x, err))) break;
        fv_forward(&p, f->top);
        for (int l = 0; l < f->layers; l++) {
            int t = f->node[l], ch = channels_of(p.io, t);
            size_t per = fv_shape_count(&p.io[t].out);
            for (int i = 0; i < cnt; i++) {
                const float *a = p.buf[t].y + (size_t)i * per;
                double *mu = ws, *var = ws + ch;
                size_t hw = per / (size_t)ch;
                for (int k = 0; k < ch; k++) mu[k] = var[k] = 0;
                for (size_t q = 0; q < hw; q++)
                    for (int k = 0; k < ch; k++) mu[k] += (double)a[q * (size_t)ch + (size_t)k];
                for (int k = 0; k < ch; k++) mu[k] /= (double)hw;
                for (size_t q = 0; q < hw; q++)
                    for (int k = 0; k < ch; k++) {
                        double d = (double)a[q * (size_t)ch + (size_t)k] - mu[k];
                        var[k] += d * d;
                    }
                for (int k = 0; k < ch; k++) {
                    acc[f->off[l] + k] += mu[k];
                    acc[total + f->off[l] + k] += var[k] / (double)hw;
                }
            }
        }
    }
    *used = in.total;
    for (int k = 0; !rc && k < 2 * total; k++) f->mu[k] = (float)(acc[k] / (double)(in.total ? in.total : 1));
    free(acc), free(ws);
    fv_plan_free(&p);
    fv_inputs_close(&in);
    return rc;
}

int synth_features(const char *from, const char *layers, const char *origin, const struct fv_model *m,
                   const struct fv_preproc *pp, int h, int w, const char *out_dir, struct synth_features *f,
                   struct fv_error *err) {
    memset(f, 0, sizeof *f);
    struct fv_plan one;
    int rc = fv_plan_init(&one, m, 1, h, w, 0, err);
    if (!rc) {
        rc = pick_layers(m, one.io, layers, origin, f, err);
        fv_plan_free(&one);
    }
    int total = rc ? 0 : f->off[f->layers];
    if (!rc && !(f->mu = calloc(2 * (size_t)total, sizeof *f->mu))) rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    if (rc) {
        synth_features_free(f);
        return rc;
    }
    f->var = f->mu + total;
    size_t len = strlen(from), used = 0;
    struct fv_array a = {0};
    int cached = 0;
    if (len > 4 && !strcmp(from + len - 4, ".npy")) { /* a features.npy of an earlier run? */
        struct fv_npy_reader *r = NULL;
        if ((rc = fv_npy_open(from, &r, &a, err))) {
            fv_error_prefix(err, "%s", origin);
            synth_features_free(f);
            return rc;
        }
        fv_npy_close(r);
        cached = a.dtype[0] == 'f' && a.rank == 2 && a.dims[0] == 2;
        if (cached && a.dims[1] != (size_t)total) {
            rc = fv_error_set(err, FV_ERR_USAGE, "%s: %s holds statistics of %zu channels; the layers chosen (features_layers) have %d: make it from images",
                              origin, from, a.dims[1], total);
        } else if (cached) {
            fv_array_free(&a);
            if (!(rc = fv_npy_load(from, &a, err))) memcpy(f->mu, a.data, 2 * (size_t)total * sizeof *f->mu);
        }
        fv_array_free(&a);
    }
    if (!rc && !cached) rc = measure(from, origin, m, pp, h, w, f, &used, err);
    if (!rc && !cached && !used) rc = fv_error_set(err, FV_ERR_USAGE, "%s: %s: no images", origin, from);
    if (!rc && out_dir) { /* for later runs (features_from = this file) */
        char path[4200];
        size_t dims[2] = {2, (size_t)total};
        if (!(rc = job_path(path, sizeof path, err, "%s/features.npy", out_dir))) rc = fv_npy_save(path, f->mu, 2, dims, err);
    }
    if (rc) synth_features_free(f);
    return rc;
}
