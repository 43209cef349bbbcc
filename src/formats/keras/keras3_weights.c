/* Weights as Keras 3 saves them (model.weights.h5, *.weights.h5; format notes
 * §9.2): each layer's variables are datasets "0", "1", ... in
 * layers/<key>/vars, trainable ones first, nested models under
 * layers/<key>/layers/... The key comes from the layer's class, not its name
 * (keras_graph.c, store_path); newer files also name the layer in a `name`
 * attribute on vars, which is used to find a layer whose key does not match. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/keras/keras.h"

/* a/b into out; 0 when it does not fit (the path then names nothing). */
static int join(char *out, size_t cap, const char *a, const char *b) {
    int len = snprintf(out, cap, "%s/%s", a, b);
    if (len < 0 || (size_t)len >= cap) {
        out[0] = 0;
        return 0;
    }
    return 1;
}

/* The layer name without the "@k" featviz adds to further calls of a shared layer. */
static void plain_name(const char *name, char *out, size_t cap) {
    snprintf(out, cap, "%s", name);
    char *at = strchr(out, '@');
    if (at) *at = 0;
}

/* 1 when group/vars has a `name` attribute naming someone else than `layer`. */
static int named_other(struct fv_h5 *h5, const char *group, const char *layer) {
    char vars[1200], *name = NULL;
    struct fv_error ignore;
    if (!join(vars, sizeof vars, group, "vars")) return 0;
    if (fv_h5_attr_string(h5, vars, "name", &name, &ignore) != FV_OK || !name) return 0;
    int other = strcmp(name, layer) != 0;
    free(name);
    return other;
}

/* The sibling of `path` whose vars are named `layer` (into out), if any. */
static int find_by_name(struct fv_h5 *h5, const char *path, const char *layer, char *out,
                        size_t cap, struct fv_error *err) {
    char parent[1024];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (!slash) return 0;
    *slash = 0;
    char **groups = NULL;
    int n = 0, found = 0;
    if (fv_h5_list(h5, parent, 1, &groups, &n, err)) return -1;
    for (int i = 0; i < n && !found; i++) {
        char cand[1200];
        if (!join(cand, sizeof cand, parent, groups[i])) continue;
        if (fv_h5_has_group(h5, cand) && !named_other(h5, cand, layer) && strcmp(cand, path)) {
            char vars[1300], *name = NULL;
            if (!join(vars, sizeof vars, cand, "vars")) continue;
            if (fv_h5_attr_string(h5, vars, "name", &name, err) == FV_OK && name) {
                found = 1;
                snprintf(out, cap, "%s", cand);
            }
            free(name);
        }
    }
    fv_h5_strings_free(groups, n);
    return found;
}

static int by_number(const void *a, const void *b) {
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    size_t lx = strlen(x), ly = strlen(y);
    return lx != ly ? (lx < ly ? -1 : 1) : strcmp(x, y);
}

static int layer_weights(const struct fv_kctx *ctx, struct fv_h5 *h5, struct fv_layer *l,
                         const struct fv_kspec *spec, const char *store, struct fv_error *err) {
    int want = spec->n_trainable + spec->n_fixed;
    char layer[FV_NAME_MAX], path[1200], vars[1300];
    plain_name(l->name, layer, sizeof layer);
    snprintf(path, sizeof path, "%s", store);
    if (named_other(h5, path, layer) || !fv_h5_has_group(h5, path)) {
        int f = find_by_name(h5, store, layer, path, sizeof path, err);
        if (f < 0) return err->code;
        if (!f) snprintf(path, sizeof path, "%s", store);
    }
    if (!join(vars, sizeof vars, path, "vars") || !fv_h5_has_group(h5, vars))
        return fv_error_set(err, FV_ERR_FORMAT, "%s: no weights for layer '%s' (%s): '%s' is missing in the weights file",
                            ctx->path, l->name, l->keras_class, vars);
    char **names = NULL;
    int n = 0;
    if (fv_h5_list(h5, vars, 0, &names, &n, err)) return err->code;
    int rc = FV_OK;
    struct fv_h5_weight w[FV_MAX_W + 4];
    memset(w, 0, sizeof w);
    if (n != want) {
        rc = fv_error_set(err, FV_ERR_FORMAT, "%s: layer '%s' (%s) has %d weights in '%s', expected %d",
                          ctx->path, l->name, l->keras_class, n, vars, want);
        goto done;
    }
    if (n > FV_MAX_W + 4) {
        rc = fv_error_set(err, FV_ERR_FORMAT, "%s: layer '%s' wants too many weights", ctx->path, l->name);
        goto done;
    }
    qsort(names, (size_t)n, sizeof *names, by_number);
    for (int k = 0; k < n; k++) {
        char ds[1400];
        join(ds, sizeof ds, vars, names[k]);
        char expect[12];
        snprintf(expect, sizeof expect, "%d", k);
        if (strcmp(names[k], expect)) {
            rc = fv_error_set(err, FV_ERR_FORMAT, "%s: '%s' has variables that are not numbered 0..%d", ctx->path, vars, n - 1);
            goto done;
        }
        if ((rc = fv_h5_read_dataset(h5, ds, &w[k], err))) goto done;
    }
    rc = fv_keras_set_weights(ctx, l, spec, w, n, err);
done:
    for (int k = 0; k < FV_MAX_W + 4; k++) {
        free(w[k].name);
        free(w[k].data);
    }
    fv_h5_strings_free(names, n);
    return rc;
}

int fv_keras3_weights(const struct fv_kctx *ctx, struct fv_h5 *h5, struct fv_layer *nodes,
                      const struct fv_kspec *specs, char *const *store, int n,
                      struct fv_error *err) {
    for (int i = 0; i < n; i++) {
        const struct fv_kspec *s = &specs[i];
        if (s->node.is_input || !store[i] || s->n_trainable + s->n_fixed == 0) continue;
        int rc = layer_weights(ctx, h5, &nodes[i], s, store[i], err);
        if (rc) return rc;
    }
    return FV_OK;
}
