/* `featviz activations`: every chosen layer's output for every input.
 * With npy = true: DIR/<input stem>/<layer>.npy in the layer's Keras layout
 * with a leading batch axis (1 for an image or an unbatched array, N for an
 * N-image array). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "featviz/jobs.h"
#include "jobs/common.h"
#include "jobs/inputs.h"

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

static void file_name(const char *layer, const char *suffix, char *out, size_t cap) {
    snprintf(out, cap, "%s%s.npy", layer, suffix);
    for (char *p = out; *p; p++)
        if (*p == '/') *p = '_';
}

int fv_job_activations(const struct fv_settings *s, struct fv_error *err) {
    struct fv_model m;
    struct fv_preproc pp;
    struct fv_inputs in = {0};
    struct fv_plan p = {0};
    int *layers = NULL, n_layers = 0;
    float **keep = NULL;
    int rc = job_load_model(s, &m, err);
    if (rc) return rc;
    int h, w, c;
    fv_model_input_hwc(&m, &h, &w, &c);
    if ((rc = job_preproc(s, c, &pp, err))) goto done;
    if ((rc = pick_layers(s, &m, &layers, &n_layers, err))) goto done;
    if ((rc = fv_inputs_open(&in, fv_get_str(s, "activations", "inputs"), &m, &pp, 0, 0, err))) goto done;
    if (!fv_get_bool(s, "activations", "npy")) {
        rc = fv_error_set(err, FV_ERR_USAGE, "activations: nothing to write (use --npy)");
        goto done;
    }
    int want_pre = fv_get_bool(s, "activations", "pre");
    const char *dir = fv_get_str(s, "output", "dir");
    int batch = 32;
    if ((size_t)batch > in.total) batch = (int)in.total;
    if ((rc = fv_plan_init(&p, &m, batch, in.h, in.w, 0, err))) goto done;
    size_t per_in = (size_t)in.h * (size_t)in.w * (size_t)in.c;
    int views = want_pre ? 2 : 1;
    keep = calloc((size_t)n_layers * (size_t)views, sizeof *keep);
    if (!keep) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        goto done;
    }
    int top = -1;
    for (int k = 0; k < n_layers; k++) top = layers[k] > top ? layers[k] : top;
    for (int f = 0; f < in.n_src && !rc; f++) {
        const struct fv_source *src = &in.src[f];
        size_t N = src->count;
        for (int k = 0; k < n_layers * views; k++) {
            size_t per = fv_shape_count(&p.io[layers[k / views]].out);
            if (!(keep[k] = malloc(N * per * sizeof(float)))) {
                rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory keeping %zu activations of %s", N, src->path);
                break;
            }
        }
        for (size_t first = 0; first < N && !rc; first += (size_t)batch) {
            size_t count = N - first < (size_t)batch ? N - first : (size_t)batch;
            memset(p.x, 0, (size_t)batch * per_in * sizeof(float));
            if ((rc = fv_inputs_read(&in, src->first + first, count, p.x, err))) break;
            fv_forward(&p, top);
            for (int k = 0; k < n_layers * views; k++) {
                int t = layers[k / views];
                size_t per = fv_shape_count(&p.io[t].out);
                float *tmp = malloc((size_t)batch * per * sizeof(float));
                if (!tmp) {
                    rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
                    break;
                }
                fv_plan_read_keras(&p, t, k % views == 1, tmp);
                memcpy(keep[k] + first * per, tmp, count * per * sizeof(float));
                free(tmp);
            }
        }
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", dir, src->stem);
        if (!rc) rc = job_mkdirs(sub, err);
        for (int k = 0; k < n_layers * views && !rc; k++) {
            int t = layers[k / views];
            struct fv_shape ks;
            fv_keras_shape(&m.layers[t], &p.io[t].out, &ks);
            size_t dims[FV_MAX_RANK + 1];
            dims[0] = N;
            for (int d = 0; d < ks.rank; d++) dims[d + 1] = (size_t)ks.d[d];
            char name[300], path[4500];
            file_name(m.layers[t].name, k % views ? ".pre" : "", name, sizeof name);
            snprintf(path, sizeof path, "%s/%s", sub, name);
            rc = fv_npy_save(path, keep[k], ks.rank + 1, dims, err);
        }
        for (int k = 0; k < n_layers * views; k++) {
            free(keep[k]);
            keep[k] = NULL;
        }
        if (!rc) printf("%s: %d layer%s -> %s/\n", src->path, n_layers * views, n_layers * views == 1 ? "" : "s", sub);
    }
done:
    free(keep);
    free(layers);
    fv_plan_free(&p);
    fv_inputs_close(&in);
    fv_model_free(&m);
    return rc;
}
