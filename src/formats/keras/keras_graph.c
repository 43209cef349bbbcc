/* model.h5 -> struct fv_model: reads model_config (or an architecture JSON),
 * turns Sequential / Functional / nested models into one flat graph in
 * topological order, and attaches each layer's weights.
 * See ../shared/docs/keras-h5-format.md sections 3, 7 and 8. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/front_ends.h"
#include "formats/keras/keras.h"

struct wcache {                /* all weights of one top-level group (nested models) */
    char *group;
    struct fv_h5_weight *w;
    int n;
};

struct builder {
    struct fv_kctx ctx;
    struct fv_h5 *h5;
    const char *wroot;         /* "model_weights" or "" (weights-only file) */
    struct fv_layer *nodes;
    struct fv_kspec *specs;
    char **wgroup;             /* per node: top-level layer whose group holds its weights */
    char **store;              /* per node: Keras 3 weights path "layers/<key>[/layers/<key>]" */
    int keras3_store;          /* weights in the Keras 3 layout (model.weights.h5) */
    struct fv_group *groups;   /* nested models met so far */
    int n_groups;
    int cur_group;             /* 1 + the one being built; 0: top level */
    int *names;                /* hash of node names: node index per slot, -1 empty */
    int *next_call;            /* per node: the k of the next "name@k" of its layer */
    size_t n_slots;            /* a power of two, at least twice cap */
    const json_t *seq_build_shape; /* the Sequential's build_input_shape, or NULL */
    const json_t *build_shape; /* Keras 3 build_input_shape / build_config.input_shape of the
                                  Sequential being started, or NULL */
    int n, cap;
    int input;
    int in_rank, in_dims[FV_MAX_RANK];
    struct wcache *cache;
    int n_cache;
    int depth;                 /* models nested in models, while building */
};

/* The slot of `name` in the hash of node names: the node's index, or -1 where
 * it would go (so that making names unique stays linear in the layers, even
 * for a nested model called thousands of times). */
static int *name_slot(const struct builder *b, const char *name) {
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) h = (h ^ *p) * 1099511628211ull;
    for (size_t i = (size_t)h & (b->n_slots - 1);; i = (i + 1) & (b->n_slots - 1)) {
        int k = b->names[i]; /* -2: a node taken back (add_layer_call) */
        if (k == -1 || (k >= 0 && !strcmp(b->nodes[k].name, name))) return &b->names[i];
    }
}

static int grow(struct builder *b, struct fv_error *err) {
    if (b->n >= FV_MODEL_MAX_LAYERS)
        return fv_error_set(err, FV_ERR_FORMAT, "%s: more than %d layers", b->ctx.path, FV_MODEL_MAX_LAYERS);
    if (b->n < b->cap) return FV_OK;
    int cap = b->cap ? b->cap * 2 : 64;
    struct fv_layer *nodes = realloc(b->nodes, (size_t)cap * sizeof *nodes);
    if (nodes) b->nodes = nodes;
    struct fv_kspec *specs = realloc(b->specs, (size_t)cap * sizeof *specs);
    if (specs) b->specs = specs;
    char **wg = realloc(b->wgroup, (size_t)cap * sizeof *wg);
    if (wg) b->wgroup = wg;
    char **st = realloc(b->store, (size_t)cap * sizeof *st);
    if (st) b->store = st;
    int *nc = realloc(b->next_call, (size_t)cap * sizeof *nc);
    if (nc) b->next_call = nc;
    int *names = malloc((size_t)cap * 2 * sizeof *names);
    if (!nodes || !specs || !wg || !st || !nc || !names) {
        free(names);
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory building the graph");
    }
    free(b->names);
    b->names = names;
    b->n_slots = (size_t)cap * 2;
    b->cap = cap;
    for (size_t i = 0; i < b->n_slots; i++) b->names[i] = -1;
    for (int i = 0; i < b->n; i++) *name_slot(b, b->nodes[i].name) = i;
    return FV_OK;
}

static const char *jstr(const json_t *o, const char *key) {
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Name of a layer entry: Functional entries carry it outside the config. */
static const char *entry_name(const json_t *entry) {
    const char *n = jstr(entry, "name");
    return n ? n : jstr(json_object_get(entry, "config"), "name");
}

static int find_node(const struct builder *b, const char *name) {
    return b->n_slots ? *name_slot(b, name) : -1;
}

/* Takes the last node back (an InputLayer inside a nested model). */
static void drop_last_node(struct builder *b) {
    b->n--;
    *name_slot(b, b->nodes[b->n].name) = -2;
    free(b->wgroup[b->n]);
    free(b->store[b->n]);
}

/* Adds a node named `name` (made unique when a shared layer is called again),
 * its weights in legacy group `group` or at Keras 3 path `store`. */
static int add_node(struct builder *b, const char *name, const char *group, const char *store,
                    struct fv_error *err) {
    if (grow(b, err)) return -1;
    int i = b->n;
    struct fv_layer *l = &b->nodes[i];
    memset(l, 0, sizeof *l);
    memset(&b->specs[i], 0, sizeof b->specs[i]);
    l->group = b->cur_group;
    snprintf(l->name, sizeof l->name, "%s", name);
    int first = find_node(b, l->name);
    if (first >= 0) /* a shared layer called again: name@1, name@2, ... */
        for (int k = b->next_call[first]; find_node(b, l->name) >= 0; k++) {
            /* the suffix always fits: a name cut at FV_NAME_MAX stayed the same (endless loop) */
            snprintf(l->name, sizeof l->name, "%.*s@%d", (int)sizeof l->name - 13, name, k);
            b->next_call[first] = k + 1;
        }
    b->next_call[i] = 1;
    b->wgroup[i] = group ? strdup(group) : NULL;
    b->store[i] = store ? strdup(store) : NULL;
    if ((group && !b->wgroup[i]) || (store && !b->store[i])) {
        free(b->wgroup[i]);
        free(b->store[i]);
        fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        return -1;
    }
    *name_slot(b, l->name) = i;
    b->n++;
    return i;
}

/* Input shape from batch_input_shape / batch_shape / input_shape / input_dim. */
static int read_input_shape(struct builder *b, const json_t *cfg, const char *lname,
                            struct fv_error *err) {
    const json_t *v = json_object_get(cfg, "batch_input_shape");
    int skip = 1;
    if (!json_is_array(v)) v = json_object_get(cfg, "batch_shape");
    /* Keras 3 Sequential without an InputLayer: the shape the model was built with */
    if (!json_is_array(v)) v = b->build_shape;
    if (!json_is_array(v)) v = json_object_get(cfg, "input_shape"), skip = 0;
    if (!json_is_array(v)) {
        const json_t *d = json_object_get(cfg, "input_dim");
        if (json_is_integer(d)) {
            b->in_rank = 1;
            b->in_dims[0] = (int)json_integer_value(d);
            return FV_OK;
        }
        return fv_error_set(err, FV_ERR_FORMAT, "%s: layer '%s' does not declare the input shape (no batch_input_shape)", b->ctx.path, lname);
    }
    int rank = (int)json_array_size(v) - skip;
    if (rank < 1 || rank > FV_MAX_RANK)
        return fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: input of layer '%s' has %d dimensions; featviz takes 1 to %d", b->ctx.path, lname, rank, FV_MAX_RANK);
    b->in_rank = rank;
    for (int i = 0; i < rank; i++) {
        const json_t *d = json_array_get(v, (size_t)(i + skip));
        if (json_is_null(d)) b->in_dims[i] = -1;
        else if (json_is_integer(d) && json_integer_value(d) > 0 && json_integer_value(d) < (1 << 24))
            b->in_dims[i] = (int)json_integer_value(d);
        else
            return fv_error_set(err, FV_ERR_FORMAT, "%s: input shape of layer '%s' has a bad dimension", b->ctx.path, lname);
    }
    return FV_OK;
}

static int make_input_node(struct builder *b, const json_t *cfg, const char *name,
                           struct fv_error *err) {
    if (b->input >= 0)
        return fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: the model has more than one input ('%s' and '%s'); featviz takes models with one input",
                            b->ctx.path, b->nodes[b->input].name, name);
    int rc = read_input_shape(b, cfg, name, err);
    if (rc) return -1;
    int i = add_node(b, name, NULL, NULL, err);
    if (i < 0) return -1;
    snprintf(b->nodes[i].keras_class, sizeof b->nodes[i].keras_class, "InputLayer");
    b->nodes[i].act.max_value = -1;
    b->specs[i].node.is_input = 1;
    b->specs[i].min_inputs = b->specs[i].max_inputs = 0;
    b->nodes[i].out_rank = b->in_rank;
    b->input = i;
    return i;
}

static int is_model_class(const char *cls) {
    return !strcmp(cls, "Sequential") || !strcmp(cls, "Model") || !strcmp(cls, "Functional");
}

static int build_model(struct builder *b, const json_t *model, const char *group,
                       const char *store, int in_node, int *out_node, struct fv_error *err);

/* Keras 3's name for Python class names (keras.src.utils.naming.to_snake_case):
 * "Conv2D" -> "conv2d", "BatchNormalization" -> "batch_normalization",
 * "ReLU" -> "re_lu". */
static void snake_case(const char *cls, char *out, size_t cap) {
    char w[256], t[512];
    size_t n = 0, m = 0;
    for (const char *p = cls; *p && n + 1 < sizeof w; p++) /* drop non-word characters */
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_')
            w[n++] = *p;
    w[n] = 0;
    /* (.)([A-Z][a-z]+) -> \1_\2 */
    for (size_t i = 0; i < n && m + 2 < sizeof t; i++) {
        if (i > 0 && w[i] >= 'A' && w[i] <= 'Z' && w[i + 1] >= 'a' && w[i + 1] <= 'z') t[m++] = '_';
        t[m++] = w[i];
    }
    t[m] = 0;
    /* ([a-z])([A-Z]) -> \1_\2, then lower case */
    size_t k = 0;
    for (size_t i = 0; i < m && k + 2 < cap; i++) {
        if (i > 0 && t[i] >= 'A' && t[i] <= 'Z' && t[i - 1] >= 'a' && t[i - 1] <= 'z') out[k++] = '_';
        out[k++] = (char)(t[i] >= 'A' && t[i] <= 'Z' ? t[i] - 'A' + 'a' : t[i]);
    }
    out[k] = 0;
}

/* Where Keras 3 keeps the weights of entry k of a container's layer list:
 * "<store>/layers/<key>", the key being the snake_case class name numbered
 * by how many entries of that class come before it (saving_lib's
 * _save_container_state; not the layer's name). */
static void store_path(const json_t *layers, size_t k, const char *store, char *out, size_t cap) {
    char key[256], other[256];
    snake_case(jstr(json_array_get(layers, k), "class_name"), key, sizeof key);
    int before = 0;
    for (size_t j = 0; j < k; j++) {
        const char *c = jstr(json_array_get(layers, j), "class_name");
        if (!c) continue;
        snake_case(c, other, sizeof other);
        before += !strcmp(other, key);
    }
    if (before) snprintf(out, cap, "%s%slayers/%s_%d", store, *store ? "/" : "", key, before);
    else snprintf(out, cap, "%s%slayers/%s", store, *store ? "/" : "", key);
}

/* Custom layers hold Python code: refused by name. */
static int check_builtin(const struct builder *b, const json_t *entry, const char *name,
                         const char *cls, struct fv_error *err) {
    const char *reg = jstr(entry, "registered_name"), *mod = jstr(entry, "module");
    int custom = (reg && strncmp(reg, "keras", 5) && strcmp(reg, cls)) ||
                 (mod && strcmp(mod, "keras") && strncmp(mod, "keras.", 6));
    if (!custom) return FV_OK;
    return fv_error_set(err, FV_ERR_UNSUPPORTED,
                        "%s: layer '%s' has class '%s' (%s%s): custom layers are not supported, featviz runs Keras' built-in layers only",
                        b->ctx.path, name, cls, reg ? "registered as " : "module ", reg ? reg : mod);
}

/* One call of a (non-model) layer on the given input nodes; store: where its
 * Keras 3 weights are (NULL for legacy files). */
static int add_layer_call(struct builder *b, const json_t *entry, const char *group,
                          const char *store, const int *ins, int n_in, int *out_node,
                          struct fv_error *err) {
    const char *cls = jstr(entry, "class_name");
    const char *name = entry_name(entry);
    const json_t *cfg = json_object_get(entry, "config");
    if (!cls || !name || !json_is_object(cfg))
        return fv_error_set(err, FV_ERR_FORMAT, "%s: a layer in model_config has no class_name, name or config", b->ctx.path);
    int rc = check_builtin(b, entry, name, cls, err);
    if (rc) return rc;
    if (is_model_class(cls)) {
        if (n_in != 1)
            return fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: nested model '%s' is called on %d inputs; featviz takes one", b->ctx.path, name, n_in);
        struct fv_group *gs = realloc(b->groups, (size_t)(b->n_groups + 1) * sizeof *gs);
        if (!gs) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        b->groups = gs;
        int g = b->n_groups++;
        memset(&gs[g], 0, sizeof gs[g]);
        snprintf(gs[g].name, sizeof gs[g].name, "%s", name);
        snprintf(gs[g].cls, sizeof gs[g].cls, "%s", cls);
        gs[g].parent = b->cur_group;
        if (b->depth >= FV_MODEL_MAX_DEPTH)
            return fv_error_set(err, FV_ERR_FORMAT, "%s: model '%s' is nested more than %d deep", b->ctx.path, name, FV_MODEL_MAX_DEPTH);
        int outer = b->cur_group;
        b->cur_group = g + 1;
        b->depth++;
        rc = build_model(b, entry, group ? group : name, store, ins[0], out_node, err);
        b->depth--;
        b->cur_group = outer;
        if (!rc) snprintf(b->groups[g].output, sizeof b->groups[g].output, "%s", b->nodes[*out_node].name);
        return rc;
    }
    int i = add_node(b, name, group ? group : name, store, err);
    if (i < 0) return err->code;
    struct fv_layer *l = &b->nodes[i];
    rc = fv_keras_make_layer(&b->ctx, cls, cfg, l, &b->specs[i], err);
    if (rc) return rc;
    const struct fv_kspec *s = &b->specs[i];
    if (s->node.is_input) { /* an InputLayer inside a nested model: just the incoming tensor */
        drop_last_node(b);
        *out_node = ins[0];
        return FV_OK;
    }
    if (n_in < s->min_inputs || n_in > s->max_inputs)
        return fv_error_set(err, FV_ERR_FORMAT, "%s: layer '%s' (%s) is called on %d inputs", b->ctx.path, l->name, cls, n_in);
    l->n_in = n_in;
    memcpy(l->in, ins, (size_t)n_in * sizeof *ins);
    *out_node = i;
    return FV_OK;
}

static int build_sequential(struct builder *b, const json_t *layers, const char *group,
                            const char *store, int in_node, int *out_node, struct fv_error *err) {
    int cur = in_node;
    size_t k;
    const json_t *entry;
    json_array_foreach(layers, k, entry) {
        const char *cls = jstr(entry, "class_name");
        const json_t *cfg = json_object_get(entry, "config");
        const char *name = entry_name(entry);
        if (!cls || !name || !json_is_object(cfg))
            return fv_error_set(err, FV_ERR_FORMAT, "%s: layer %zu of a Sequential model has no class_name, name or config", b->ctx.path, k);
        for (size_t j = 0; j < k; j++) {
            const char *other = entry_name(json_array_get(layers, j));
            if (other && !strcmp(other, name))
                return fv_error_set(err, FV_ERR_FORMAT, "%s: two layers of a Sequential model are named '%s'", b->ctx.path, name);
        }
        if (cur < 0) { /* the first layer declares the model input */
            const json_t *bc = json_object_get(json_object_get(entry, "build_config"), "input_shape");
            b->build_shape = json_is_array(bc) ? bc : b->seq_build_shape;
            char iname[FV_NAME_MAX + 8];
            snprintf(iname, sizeof iname, "%s%s", name, strcmp(cls, "InputLayer") ? "_input" : "");
            cur = make_input_node(b, cfg, iname, err);
            b->build_shape = NULL;
            if (cur < 0) return err->code;
            if (!strcmp(cls, "InputLayer")) continue;
        }
        char path[1024];
        store_path(layers, k, store ? store : "", path, sizeof path);
        int rc = add_layer_call(b, entry, group, store ? path : NULL, &cur, 1, &cur, err);
        if (rc) return rc;
    }
    if (cur < 0) return fv_error_set(err, FV_ERR_FORMAT, "%s: a Sequential model has no layers", b->ctx.path);
    *out_node = cur;
    return FV_OK;
}

/* ---- Functional ---- */

struct calls {                 /* node ids of each call of one layer entry */
    const json_t *entry;
    const char *name;
    int is_model;
    int n_calls, done;
    int node[64];
};

/* Collects [name, node, tensor] references of one call, in any Keras dialect. */
static int collect_refs(const json_t *v, const char **names, int *idx, int *tensor, int *n,
                        int max) {
    if (json_is_object(v)) {
        const json_t *cfg = json_object_get(v, "config");
        const json_t *hist = json_object_get(cfg, "keras_history");
        if (json_is_array(hist)) return collect_refs(hist, names, idx, tensor, n, max);
        const json_t *args = json_object_get(v, "args");
        if (args) return collect_refs(args, names, idx, tensor, n, max);
        return 0;
    }
    if (!json_is_array(v)) return 0;
    size_t len = json_array_size(v);
    if (len >= 3 && json_is_string(json_array_get(v, 0)) && json_is_integer(json_array_get(v, 1))) {
        if (*n >= max) return -1;
        names[*n] = json_string_value(json_array_get(v, 0));
        idx[*n] = (int)json_integer_value(json_array_get(v, 1));
        tensor[*n] = json_is_integer(json_array_get(v, 2)) ? (int)json_integer_value(json_array_get(v, 2)) : 0;
        (*n)++;
        return 0;
    }
    size_t k;
    const json_t *x;
    json_array_foreach(v, k, x) if (collect_refs(x, names, idx, tensor, n, max)) return -1;
    return 0;
}

static struct calls *find_calls(struct calls *c, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(c[i].name, name)) return &c[i];
    return NULL;
}

/* Node id of reference (name, call index); -1 when not built yet, -2 when unknown. */
static int resolve_ref(struct calls *c, int n, const char *name, int call) {
    struct calls *t = find_calls(c, n, name);
    if (!t) return -2;
    /* A nested model's node 0 is its own internal node: references count from 1. */
    if (t->is_model && call >= 1 && call - 1 < t->n_calls && call >= t->n_calls) call -= 1;
    if (call < t->n_calls) return t->node[call];
    return -1;
}

static int build_functional(struct builder *b, const json_t *cfg, const char *group,
                            const char *store, int in_node, int *out_node, struct fv_error *err) {
    const json_t *layers = json_object_get(cfg, "layers");
    int n = (int)json_array_size(layers);
    struct calls *c = calloc((size_t)(n ? n : 1), sizeof *c);
    if (!c) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    int rc = FV_OK;
    for (int i = 0; i < n; i++) {
        c[i].entry = json_array_get(layers, (size_t)i);
        c[i].name = entry_name(c[i].entry);
        const char *cls = jstr(c[i].entry, "class_name");
        if (!c[i].name || !cls) {
            rc = fv_error_set(err, FV_ERR_FORMAT, "%s: layer %d of a functional model has no name or class_name", b->ctx.path, i);
            goto done;
        }
        for (int k = 0; k < i; k++)
            if (!strcmp(c[k].name, c[i].name)) {
                rc = fv_error_set(err, FV_ERR_FORMAT, "%s: two layers of model '%s' are named '%s'", b->ctx.path, jstr(cfg, "name") ? jstr(cfg, "name") : "?", c[i].name);
                goto done;
            }
        const json_t *inb = json_object_get(c[i].entry, "inbound_nodes");
        if (inb && !json_is_array(inb)) {
            rc = fv_error_set(err, FV_ERR_FORMAT, "%s: layer '%s': inbound_nodes is not a list", b->ctx.path, c[i].name);
            goto done;
        }
        c[i].is_model = is_model_class(cls);
        if (!strcmp(cls, "InputLayer")) {
            int id = in_node;
            if (id < 0 && (id = make_input_node(b, json_object_get(c[i].entry, "config"), c[i].name, err)) < 0) {
                rc = err->code;
                goto done;
            }
            c[i].node[0] = id;
            c[i].n_calls = 1;
            c[i].done = 1;
        }
    }
    /* Build calls whose inputs exist, until nothing changes. */
    for (int progress = 1; progress;) {
        progress = 0;
        for (int i = 0; i < n; i++) {
            if (c[i].done) continue;
            const json_t *inb = json_object_get(c[i].entry, "inbound_nodes");
            int total = json_is_array(inb) ? (int)json_array_size(inb) : 0;
            if (total > 64) {
                rc = fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: layer '%s' is called %d times", b->ctx.path, c[i].name, total);
                goto done;
            }
            while (c[i].n_calls < total) {
                const char *names[FV_MAX_IN];
                int idx[FV_MAX_IN], tens[FV_MAX_IN], m = 0, ins[FV_MAX_IN];
                if (collect_refs(json_array_get(inb, (size_t)c[i].n_calls), names, idx, tens, &m, FV_MAX_IN)) {
                    rc = fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: layer '%s' has more than %d inputs", b->ctx.path, c[i].name, FV_MAX_IN);
                    goto done;
                }
                int ready = 1;
                for (int k = 0; k < m; k++) {
                    ins[k] = resolve_ref(c, n, names[k], idx[k]);
                    if (ins[k] == -2) {
                        rc = fv_error_set(err, FV_ERR_FORMAT, "%s: layer '%s' takes its input from '%s', which is not a layer of model '%s'",
                                          b->ctx.path, c[i].name, names[k], jstr(cfg, "name") ? jstr(cfg, "name") : "?");
                        goto done;
                    }
                    if (tens[k] != 0) {
                        rc = fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: layer '%s' uses output %d of '%s'; featviz layers have one output",
                                          b->ctx.path, c[i].name, tens[k], names[k]);
                        goto done;
                    }
                    if (ins[k] < 0) ready = 0;
                }
                if (!ready) break;
                if (m == 0) {
                    rc = fv_error_set(err, FV_ERR_FORMAT, "%s: layer '%s' has an inbound node without inputs", b->ctx.path, c[i].name);
                    goto done;
                }
                int out;
                char path[1024];
                store_path(layers, (size_t)i, store ? store : "", path, sizeof path);
                if ((rc = add_layer_call(b, c[i].entry, group, store ? path : NULL, ins, m, &out, err))) goto done;
                c[i].node[c[i].n_calls++] = out;
                progress = 1;
            }
            if (c[i].n_calls == total) c[i].done = 1;
        }
    }
    for (int i = 0; i < n; i++) {
        if (c[i].done) continue;
        if (c[i].n_calls == 0 && !json_array_size(json_object_get(c[i].entry, "inbound_nodes")))
            continue; /* never called: not part of this model */
        rc = fv_error_set(err, FV_ERR_FORMAT, "%s: the graph has a cycle through layer '%s'", b->ctx.path, c[i].name);
        goto done;
    }
    const json_t *outs = json_object_get(cfg, "output_layers");
    const char *names[FV_MAX_IN];
    int idx[FV_MAX_IN], tens[FV_MAX_IN], m = 0;
    if (collect_refs(outs, names, idx, tens, &m, FV_MAX_IN) || m < 1) {
        rc = fv_error_set(err, FV_ERR_FORMAT, "%s: functional model '%s' has no output_layers", b->ctx.path, jstr(cfg, "name") ? jstr(cfg, "name") : "?");
        goto done;
    }
    int o = resolve_ref(c, n, names[0], idx[0]);
    if (o < 0) {
        rc = fv_error_set(err, FV_ERR_FORMAT, "%s: output layer '%s' is not built from the model's input", b->ctx.path, names[0]);
        goto done;
    }
    *out_node = o;
done:
    free(c);
    return rc;
}

static int build_model(struct builder *b, const json_t *model, const char *group,
                       const char *store, int in_node, int *out_node, struct fv_error *err) {
    const char *cls = jstr(model, "class_name");
    const json_t *cfg = json_object_get(model, "config");
    if (!cls || !cfg)
        return fv_error_set(err, FV_ERR_FORMAT, "%s: model_config has no class_name or config", b->ctx.path);
    if (!strcmp(cls, "Sequential")) {
        const json_t *layers = json_is_array(cfg) ? cfg : json_object_get(cfg, "layers");
        const json_t *bis = json_object_get(cfg, "build_input_shape");
        b->seq_build_shape = json_is_array(bis) ? bis : NULL;
        if (!json_is_array(layers))
            return fv_error_set(err, FV_ERR_FORMAT, "%s: Sequential config has no layer list", b->ctx.path);
        return build_sequential(b, layers, group, store, in_node, out_node, err);
    }
    if (!strcmp(cls, "Model") || !strcmp(cls, "Functional")) {
        if (!json_is_array(json_object_get(cfg, "layers")))
            return fv_error_set(err, FV_ERR_FORMAT, "%s: functional config has no layer list", b->ctx.path);
        return build_functional(b, cfg, group, store, in_node, out_node, err);
    }
    return fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: model class '%s' is not Sequential or Functional", b->ctx.path, cls);
}

/* ---- weights ---- */

static void cache_free(struct builder *b) {
    for (int i = 0; i < b->n_cache; i++) {
        fv_h5_weights_free(b->cache[i].w, b->cache[i].n);
        free(b->cache[i].group);
    }
    free(b->cache);
    b->cache = NULL;
    b->n_cache = 0;
}

static int group_path(const struct builder *b, const char *group, char *out, size_t cap) {
    int len = snprintf(out, cap, "%s%s%s", b->wroot, *b->wroot ? "/" : "", group);
    return len > 0 && (size_t)len < cap;
}

/* Layer name of a weight: the path component before the variable name
 * ("Conv1/kernel:0" -> Conv1, "sequential/conv2d/kernel" -> conv2d). */
static int weight_owner_is(const char *wname, const char *layer) {
    const char *last = strrchr(wname, '/');
    if (!last) return 0;
    const char *start = last;
    while (start > wname && start[-1] != '/') start--;
    size_t len = (size_t)(last - start);
    return strlen(layer) == len && !strncmp(start, layer, len);
}

/* Weights of nested layers all sit in their top-level ancestor's group. Match
 * each sub-layer by name; when that fails, fall back to Keras' own order
 * (every trainable weight first, then the non-trainable ones). */
static int in_group(const struct builder *b, int i, const char *group) {
    return b->wgroup[i] && !strcmp(b->wgroup[i], group) && b->specs[i].n_trainable + b->specs[i].n_fixed > 0;
}

static int assign_nested(struct builder *b, const char *group, struct wcache *wc,
                         struct fv_error *err) {
    int by_name = 1, trainable = 0;
    for (int i = 0; i < b->n; i++) {
        if (!in_group(b, i, group)) continue;
        int want = b->specs[i].n_trainable + b->specs[i].n_fixed, got = 0;
        for (int k = 0; k < wc->n; k++) got += weight_owner_is(wc->w[k].name, b->nodes[i].name);
        by_name &= got == want;
        trainable += b->specs[i].n_trainable;
    }
    int t = 0, f = trainable;
    for (int i = 0; i < b->n; i++) {
        if (!in_group(b, i, group)) continue;
        const struct fv_kspec *s = &b->specs[i];
        struct fv_h5_weight tmp[FV_MAX_W + 4];
        int from[FV_MAX_W + 4], m = 0;
        if (s->n_trainable + s->n_fixed > FV_MAX_W + 4)
            return fv_error_set(err, FV_ERR_FORMAT, "%s: layer '%s' wants too many weights", b->ctx.path, b->nodes[i].name);
        if (by_name) {
            for (int k = 0; k < wc->n; k++)
                if (weight_owner_is(wc->w[k].name, b->nodes[i].name)) from[m++] = k;
        } else {
            if (t + s->n_trainable > trainable || f + s->n_fixed > wc->n)
                return fv_error_set(err, FV_ERR_FORMAT, "%s: group '%s' has %d weights, too few for its layers", b->ctx.path, group, wc->n);
            for (int k = 0; k < s->n_trainable; k++) from[m++] = t++;
            for (int k = 0; k < s->n_fixed; k++) from[m++] = f++;
        }
        for (int k = 0; k < m; k++) tmp[k] = wc->w[from[k]];
        int rc = fv_keras_set_weights(&b->ctx, &b->nodes[i], s, tmp, m, err);
        for (int k = 0; k < m; k++)
            if (!tmp[k].data) wc->w[from[k]].data = NULL; /* taken over by the layer */
        if (rc) return rc;
    }
    return FV_OK;
}

static int load_weights(struct builder *b, struct fv_error *err) {
    char **names = NULL;
    int n_names = -1;
    const char *attr_group = *b->wroot ? b->wroot : "/";
    int rc = fv_h5_attr_strings(b->h5, attr_group, "layer_names", &names, &n_names, err);
    if (rc) return rc;
    if (n_names < 0)
        return fv_error_set(err, FV_ERR_FORMAT, "%s: no layer_names attribute on '%s'", b->ctx.path, attr_group);
    for (int i = 0; i < b->n && !rc; i++) {
        struct fv_kspec *s = &b->specs[i];
        int want = s->n_trainable + s->n_fixed;
        if (s->node.is_input || !b->wgroup[i] || !want) continue;
        const char *group = b->wgroup[i];
        int listed = 0;
        for (int k = 0; k < n_names; k++) listed |= !strcmp(names[k], group);
        if (!listed) {
            rc = fv_error_set(err, FV_ERR_FORMAT, "%s: no weights for layer '%s': '%s' is not in layer_names", b->ctx.path, b->nodes[i].name, group);
            break;
        }
        char path[1024];
        if (!group_path(b, group, path, sizeof path)) {
            rc = fv_error_set(err, FV_ERR_FORMAT, "%s: layer name too long", b->ctx.path);
            break;
        }
        /* a layer (or a shared layer's further call) with its own group */
        const char *base = b->nodes[i].name;
        char plain[FV_NAME_MAX];
        snprintf(plain, sizeof plain, "%s", base);
        char *at = strchr(plain, '@');
        if (at) *at = 0;
        if (!strcmp(plain, group)) {
            struct fv_h5_weight *w = NULL;
            int n = 0;
            if ((rc = fv_h5_read_weights(b->h5, path, &w, &n, err))) break;
            rc = fv_keras_set_weights(&b->ctx, &b->nodes[i], s, w, n, err);
            fv_h5_weights_free(w, n);
            continue;
        }
        /* nested: read the group once, then hand out its weights */
        int done = 0;
        for (int k = 0; k < b->n_cache; k++) done |= !strcmp(b->cache[k].group, group);
        if (done) continue;
        struct wcache *nc = realloc(b->cache, (size_t)(b->n_cache + 1) * sizeof *nc);
        if (!nc) {
            rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
            break;
        }
        b->cache = nc;
        struct wcache *wc = &b->cache[b->n_cache];
        memset(wc, 0, sizeof *wc);
        if (!(wc->group = strdup(group))) {
            rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
            break;
        }
        b->n_cache++;
        if ((rc = fv_h5_read_weights(b->h5, path, &wc->w, &wc->n, err))) break;
        rc = assign_nested(b, group, wc, err);
    }
    fv_h5_strings_free(names, n_names);
    return rc;
}

/* ---- entry point ---- */

static int version_major(const char *v) {
    if (!v || !*v) return 1; /* Keras 1 wrote no keras_version in weights files */
    return atoi(v);
}

/* Standalone Keras 2.0-2.3 and the tf.keras of TF 1.x ("2.1.6-tf", "2.2.4-tf")
 * resized bilinearly without half-pixel centres; TF 2 ("2.3.0-tf", "2.4.0"
 * on) and Keras 3 use them. */
static int legacy_resize(const char *v) {
    if (!v || strncmp(v, "2.", 2)) return 0;
    if (strstr(v, "-tf")) return strcmp(v, "2.3") < 0;
    return atoi(v + 2) < 4;
}

static void free_groups(struct builder *b) {
    for (int i = 0; b->wgroup && i < b->n; i++) free(b->wgroup[i]);
    for (int i = 0; b->store && i < b->n; i++) free(b->store[i]);
    free(b->wgroup);
    free(b->store);
    b->wgroup = NULL;
    b->store = NULL;
}

static void builder_free(struct builder *b) {
    free_groups(b);
    for (int i = 0; b->nodes && i < b->n; i++)
        for (int k = 0; k < b->nodes[i].n_w; k++) free(b->nodes[i].w[k]);
    free(b->nodes);
    free(b->specs);
    free(b->groups);
    free(b->names);
    free(b->next_call);
    cache_free(b);
}

/* Hands the graph to fv_graph_finish (which takes the nodes over). */
static int finish(struct builder *b, struct fv_model *m, int out, struct fv_error *err) {
    struct fv_node_spec *specs = malloc((size_t)(b->n ? b->n : 1) * sizeof *specs);
    if (!specs) return fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory", b->ctx.path);
    for (int i = 0; i < b->n; i++) specs[i] = b->specs[i].node;
    snprintf(m->path, sizeof m->path, "%s", b->ctx.path);
    m->in_rank = b->in_rank;
    memcpy(m->in_dims, b->in_dims, sizeof m->in_dims);
    m->groups = b->groups;
    m->n_groups = b->n_groups;
    b->groups = NULL;
    struct fv_layer *nodes = b->nodes;
    int n = b->n;
    b->nodes = NULL;
    b->n = 0;
    return fv_graph_finish(m, nodes, specs, n, b->input, out, err);
}

int fv_keras_build(struct fv_model *m, const struct fv_keras_source *src,
                   const struct fv_load_opts *opts, struct fv_error *err) {
    memset(m, 0, sizeof *m);
    struct fv_load_opts none = {.flip_kernels = -1};
    if (!opts) opts = &none;
    struct builder b;
    memset(&b, 0, sizeof b);
    b.input = -1;
    b.ctx.path = src->path;
    b.ctx.opts = opts;
    b.ctx.flip_kernels = opts->flip_kernels;
    b.h5 = src->h5;
    b.wroot = src->wroot ? src->wroot : "";
    b.keras3_store = src->keras3_store;
    int rc;
    json_error_t jerr;
    json_t *root = json_loads(src->config, JSON_ALLOW_NUL, &jerr);
    if (!root)
        return fv_error_set(err, FV_ERR_FORMAT, "%s: %s is not valid JSON (line %d: %s)",
                            src->config_file ? src->config_file : src->path, src->config_what,
                            jerr.line, jerr.text);
    const char *version = src->version ? src->version : jstr(root, "keras_version");
    const char *backend = src->backend ? src->backend : jstr(root, "backend");
    snprintf(m->format, sizeof m->format, "%s", src->format);
    snprintf(m->producer, sizeof m->producer, "Keras %s", version ? version : src->keras3_store ? "3" : "1.x");
    snprintf(m->keras_version, sizeof m->keras_version, "%s", version ? version : "");
    snprintf(m->backend, sizeof m->backend, "%s", backend ? backend : "");
    b.ctx.keras_major = src->keras3_store && !version ? 3 : version_major(version);
    b.ctx.theano = backend && !strcmp(backend, "theano");
    b.ctx.legacy_resize = legacy_resize(version);

    snprintf(m->model_class, sizeof m->model_class, "%s", jstr(root, "class_name") ? jstr(root, "class_name") : "?");
    const json_t *cfg = json_object_get(root, "config");
    snprintf(m->name, sizeof m->name, "%s", json_is_object(cfg) && jstr(cfg, "name") ? jstr(cfg, "name") : "model");
    int out = -1;
    /* what the graph says is the JSON's doing: with --arch its errors name it */
    if (src->config_file) b.ctx.path = src->config_file;
    rc = build_model(&b, root, NULL, b.keras3_store ? "" : NULL, -1, &out, err);
    b.ctx.path = src->path;
    if (rc) goto fail;
    if (b.input < 0) {
        rc = fv_error_set(err, FV_ERR_FORMAT, "%s: the model has no input layer", src->path);
        goto fail;
    }
    if (b.keras3_store)
        rc = fv_keras3_weights(&b.ctx, b.h5, b.nodes, b.specs, b.store, b.n, err);
    else
        rc = load_weights(&b, err);
    if (rc) goto fail;
    free_groups(&b);
    cache_free(&b);
    rc = finish(&b, m, out, err);
fail:
    builder_free(&b);
    json_decref(root);
    if (rc) fv_model_free(m);
    return rc;
}

static int h5_load(struct fv_model *m, const char *path, const void *image, size_t image_len,
                   const struct fv_load_opts *opts, struct fv_error *err);

int fv_keras_h5_load(struct fv_model *m, const char *path, const struct fv_load_opts *opts,
                     struct fv_error *err) {
    return h5_load(m, path, NULL, 0, opts, err);
}

int fv_model_load_image(struct fv_model *m, const void *image, size_t len, const char *name,
                        const struct fv_load_opts *opts, struct fv_error *err) {
    return h5_load(m, name, image, len, opts, err);
}

static int h5_load(struct fv_model *m, const char *path, const void *image, size_t image_len,
                   const struct fv_load_opts *opts, struct fv_error *err) {
    memset(m, 0, sizeof *m);
    struct fv_load_opts none = {.flip_kernels = -1};
    if (!opts) opts = &none;
    struct fv_h5 *h5 = NULL;
    char *config = NULL, *version = NULL, *backend = NULL;
    struct fv_keras_source src = {.path = path, .format = "Keras HDF5", .config_what = "model_config", .wroot = ""};
    int rc = image ? fv_h5_open_image(&h5, image, image_len, path, err) : fv_h5_open(&h5, path, err);
    if (rc) return rc;
    fv_h5_set_max_bytes(h5, opts->max_bytes ? opts->max_bytes : FV_MODEL_MAX_BYTES);
    src.h5 = h5;
    if ((rc = fv_h5_attr_string(h5, "/", "model_config", &config, err))) goto fail;
    if (config) {
        src.wroot = "model_weights";
        if (!fv_h5_has_group(h5, "model_weights")) {
            rc = fv_error_set(err, FV_ERR_FORMAT, "%s: has model_config but no model_weights group", path);
            goto fail;
        }
    } else if (fv_h5_has_attr(h5, "/", "layer_names")) {
        src.wroot = "";
        if (!opts->arch_json) {
            rc = fv_error_set(err, FV_ERR_USAGE, "%s: holds weights only (save_weights); give the architecture with --arch model.json", path);
            goto fail;
        }
    } else if (fv_h5_has_group(h5, "layers") || fv_h5_has_group(h5, "vars")) {
        src.keras3_store = 1; /* a Keras 3 model.weights.h5 / *.weights.h5 */
        src.format = "Keras 3 weights";
        if (!opts->arch_json) {
            rc = fv_error_set(err, FV_ERR_USAGE, "%s: holds Keras 3 weights only (*.weights.h5); give the architecture with --arch config.json", path);
            goto fail;
        }
    } else {
        rc = fv_error_set(err, FV_ERR_FORMAT, "%s: not a Keras model: no model_config and no layer_names", path);
        goto fail;
    }
    if (opts->arch_json) {
        free(config);
        config = NULL;
        src.config_file = opts->arch_json;
        src.config_what = "the architecture";
        if ((rc = fv_read_text_file(opts->arch_json, FV_KERAS_MAX_JSON, &config, "architecture file", err))) goto fail;
    }
    const char *wattr = *src.wroot ? src.wroot : "/";
    if ((rc = fv_h5_attr_string(h5, "/", "keras_version", &version, err))) goto fail;
    if (!version && !src.keras3_store && (rc = fv_h5_attr_string(h5, wattr, "keras_version", &version, err))) goto fail;
    if ((rc = fv_h5_attr_string(h5, "/", "backend", &backend, err))) goto fail;
    if (!backend && !src.keras3_store && (rc = fv_h5_attr_string(h5, wattr, "backend", &backend, err))) goto fail;
    src.config = config;
    src.version = version;
    src.backend = backend;
    rc = fv_keras_build(m, &src, opts, err);
fail:
    free(config);
    free(version);
    free(backend);
    fv_h5_close(h5);
    return rc;
}
