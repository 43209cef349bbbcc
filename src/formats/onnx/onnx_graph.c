/* model.onnx -> struct fv_model. Orders the nodes (refusing cycles and
 * inputs nothing produces), keeps a table of every tensor name as either a
 * constant (initializers, Constant nodes, folded Shape chains) or a runtime
 * value computed by a featviz node, translates each operator on runtime
 * values (onnx_ops.c) and then runs the layout pass every front end shares.
 *
 * ONNX tensors are (N, C, H, W): the logical order without the batch axis is
 * (C, H, W), which is the Keras channels_first convention, so spatial layers
 * are cf = 1 and everything after the graph runs as for a Keras model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/onnx/onnx.h"
#include "layers/layers.h"
#include "formats/front_ends.h"

enum { V_UNSET = 0, V_RUNTIME, V_CONST, V_INIT, V_DEAD };

struct value {
    const char *name;
    int kind;
    struct onnx_val rt;
    struct onnx_const c;           /* V_CONST */
    const struct onnx_tensor *t;   /* V_INIT: decoded on use */
    const char *dead_op;           /* V_DEAD: produced by this op's extra output */
};

struct onnx_builder {
    struct onnx_file f;
    const char *path;
    struct fv_layer *nodes;
    struct fv_node_spec *specs;
    int n, cap;
    struct value *vals;
    int n_vals, cap_vals;
    struct onnx_const *tmp[16];    /* big initializers decoded for one node */
    int n_tmp;
    int input;
    int in_rank;
    int64_t in_dims[FV_MAX_RANK];
};

struct fv_layer *onnx_node_at(struct onnx_builder *b, int i) { return &b->nodes[i]; }
struct fv_node_spec *onnx_spec_at(struct onnx_builder *b, int i) { return &b->specs[i]; }
const char *onnx_path(const struct onnx_builder *b) { return b->path; }
int onnx_opset(const struct onnx_builder *b) { return b->f.opset; }

void onnx_node_weight(struct onnx_builder *b, int i, float *w, size_t len) {
    struct fv_layer *l = &b->nodes[i];
    l->w[l->n_w] = w;
    l->w_len[l->n_w++] = len;
    l->params_trainable += len;
}

static int find_node_name(const struct onnx_builder *b, const char *name) {
    for (int i = 0; i < b->n; i++)
        if (!strcmp(b->nodes[i].name, name)) return i;
    return -1;
}

int onnx_add_node(struct onnx_builder *b, const char *name, const char *op, const struct onnx_val *ins,
                  int n_in, struct fv_error *err) {
    if (b->n == b->cap) {
        int cap = b->cap ? b->cap * 2 : 64;
        struct fv_layer *nodes = realloc(b->nodes, (size_t)cap * sizeof *nodes);
        if (nodes) b->nodes = nodes;
        struct fv_node_spec *specs = realloc(b->specs, (size_t)cap * sizeof *specs);
        if (specs) b->specs = specs;
        if (!nodes || !specs) return fv_error_set(err, FV_ERR_NOMEM, "out of memory building the graph"), -1;
        b->cap = cap;
    }
    if (n_in > FV_MAX_IN) return fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: node '%s' has more than %d inputs", b->path, name, FV_MAX_IN), -1;
    int i = b->n;
    struct fv_layer *l = &b->nodes[i];
    memset(l, 0, sizeof *l);
    memset(&b->specs[i], 0, sizeof b->specs[i]);
    snprintf(l->name, sizeof l->name, "%s", name);
    for (int k = 1; find_node_name(b, l->name) >= 0; k++) snprintf(l->name, sizeof l->name, "%.100s@%d", name, k);
    snprintf(l->keras_class, sizeof l->keras_class, "%s", op);
    l->act.max_value = -1;
    l->act_axis = -1;
    l->n_in = n_in;
    for (int k = 0; k < n_in; k++) l->in[k] = ins[k].node;
    b->n++;
    return i;
}

static struct value *lookup(struct onnx_builder *b, const char *name) {
    for (int i = b->n_vals - 1; i >= 0; i--)
        if (!strcmp(b->vals[i].name, name)) return &b->vals[i];
    return NULL;
}

static struct value *add_value(struct onnx_builder *b, const char *name, struct fv_error *err) {
    if (b->n_vals == b->cap_vals) {
        int cap = b->cap_vals ? b->cap_vals * 2 : 256;
        struct value *v = realloc(b->vals, (size_t)cap * sizeof *v);
        if (!v) return fv_error_set(err, FV_ERR_NOMEM, "out of memory"), NULL;
        b->vals = v;
        b->cap_vals = cap;
    }
    struct value *v = &b->vals[b->n_vals++];
    memset(v, 0, sizeof *v);
    v->name = name;
    return v;
}

/* The constant behind an initializer: small ones are decoded once and kept,
 * big ones (weights) for the current node only. */
static int value_const(struct onnx_builder *b, struct value *v, struct onnx_const **out,
                       struct fv_error *err) {
    if (v->kind == V_CONST) {
        *out = &v->c;
        return FV_OK;
    }
    struct onnx_const c;
    memset(&c, 0, sizeof c);
    const struct onnx_tensor *t = v->t;
    int rc = onnx_tensor_values(t, b->path, &c.v, &c.count, err);
    if (rc) return rc;
    c.rank = t->rank;
    memcpy(c.dims, t->dims, sizeof c.dims);
    c.is_int = t->dtype != ONNX_FLOAT && t->dtype != ONNX_FLOAT16 && t->dtype != ONNX_DOUBLE;
    if (c.count <= 4096) {
        v->kind = V_CONST;
        v->c = c;
        *out = &v->c;
        return FV_OK;
    }
    if (b->n_tmp == (int)(sizeof b->tmp / sizeof b->tmp[0])) {
        onnx_const_free(&c);
        return fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: a node reads too many weight tensors", b->path);
    }
    struct onnx_const *h = malloc(sizeof *h);
    if (!h) {
        onnx_const_free(&c);
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    }
    *h = c;
    b->tmp[b->n_tmp++] = h;
    *out = h;
    return FV_OK;
}

static void tmp_free(struct onnx_builder *b) {
    for (int i = 0; i < b->n_tmp; i++) {
        onnx_const_free(b->tmp[i]);
        free(b->tmp[i]);
    }
    b->n_tmp = 0;
}

/* Constant node: value (tensor) or value_float(s) / value_int(s). */
static int constant_node(struct onnx_builder *b, const struct onnx_node *n, struct onnx_const *c,
                         struct fv_error *err) {
    memset(c, 0, sizeof *c);
    const struct onnx_attr *a;
    if ((a = onnx_attr_get(n, "value")) && a->t) {
        int rc = onnx_tensor_values(a->t, b->path, &c->v, &c->count, err);
        if (rc) return rc;
        c->rank = a->t->rank;
        memcpy(c->dims, a->t->dims, sizeof c->dims);
        c->is_int = a->t->dtype != ONNX_FLOAT && a->t->dtype != ONNX_FLOAT16 && a->t->dtype != ONNX_DOUBLE;
        return FV_OK;
    }
    int is_list = 0, is_int = 0;
    size_t cnt = 1;
    if ((a = onnx_attr_get(n, "value_float"))) ;
    else if ((a = onnx_attr_get(n, "value_int"))) is_int = 1;
    else if ((a = onnx_attr_get(n, "value_floats"))) is_list = 1, cnt = a->n_floats;
    else if ((a = onnx_attr_get(n, "value_ints"))) is_list = 1, is_int = 1, cnt = a->n_ints;
    else return fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: Constant node '%s' has no value featviz reads", b->path, n->name);
    c->v = malloc((cnt ? cnt : 1) * sizeof *c->v);
    if (!c->v) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    c->count = cnt;
    c->rank = is_list;
    c->dims[0] = (int64_t)cnt;
    c->is_int = is_int;
    for (size_t i = 0; i < cnt; i++)
        c->v[i] = is_list ? (is_int ? (double)a->ints[i] : (double)a->floats[i]) : (is_int ? (double)a->i : (double)a->f);
    return FV_OK;
}

/* Shape of a runtime value, with batch 1 (opset 15 start/end too). */
static int shape_of(const struct onnx_node *n, const struct onnx_val *v, struct onnx_const *c,
                    const char *path, struct fv_error *err) {
    int64_t full[FV_MAX_RANK + 1];
    int rank = v->rank + 1;
    full[0] = 1;
    for (int i = 0; i < v->rank; i++) {
        if (v->dims[i] < 0)
            return fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: node '%s' (Shape) needs a dimension that depends on the input size; declare the input size in the model", path, n->name);
        full[i + 1] = v->dims[i];
    }
    const struct onnx_attr *s = onnx_attr_get(n, "start"), *e = onnx_attr_get(n, "end");
    int64_t lo = s ? s->i : 0, hi = e ? e->i : rank;
    if (lo < 0) lo += rank;
    if (hi < 0) hi += rank;
    lo = lo < 0 ? 0 : lo > rank ? rank : lo;
    hi = hi < lo ? lo : hi > rank ? rank : hi;
    memset(c, 0, sizeof *c);
    c->rank = 1;
    c->count = (size_t)(hi - lo);
    c->dims[0] = hi - lo;
    c->is_int = 1;
    if (!(c->v = malloc((c->count + 1) * sizeof *c->v))) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    for (int64_t i = lo; i < hi; i++) c->v[i - lo] = (double)full[i];
    return FV_OK;
}

/* Node order: ONNX requires a topological order, but check: every input must
 * be produced by an earlier node, an initializer or a graph input. */
static int order_nodes(struct onnx_builder *b, int *order, struct fv_error *err) {
    const struct onnx_file *f = &b->f;
    int n = f->n_nodes;
    char *done = calloc((size_t)n + 1, 1);
    if (!done) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    int m = 0, rc = FV_OK;
    /* available names: values already in the table (inputs, initializers) plus outputs of done nodes */
    for (int progress = 1; progress && m < n;) {
        progress = 0;
        for (int i = 0; i < n; i++) {
            if (done[i]) continue;
            const struct onnx_node *nd = &f->nodes[i];
            int ready = 1;
            for (int k = 0; k < nd->n_in && ready; k++) {
                if (!*nd->in[k] || lookup(b, nd->in[k])) continue;
                ready = 0;
            }
            if (!ready) continue;
            for (int k = 0; k < nd->n_out; k++) {
                struct value *v = add_value(b, nd->out[k], err);
                if (!v) {
                    free(done);
                    return err->code;
                }
                v->kind = V_UNSET;
            }
            done[i] = 1;
            order[m++] = i;
            progress = 1;
        }
    }
    if (m < n) {
        /* a name nothing produces, or a cycle */
        for (int i = 0; i < n && !rc; i++) {
            if (done[i]) continue;
            const struct onnx_node *nd = &f->nodes[i];
            for (int k = 0; k < nd->n_in && !rc; k++) {
                if (!*nd->in[k] || lookup(b, nd->in[k])) continue;
                int made = 0;
                for (int j = 0; j < n && !made; j++)
                    for (int o = 0; o < f->nodes[j].n_out; o++) made |= !strcmp(f->nodes[j].out[o], nd->in[k]);
                if (!made)
                    rc = fv_error_set(err, FV_ERR_FORMAT, "%s: node '%s' (%s) reads '%s', which no node, initializer or graph input provides",
                                      b->path, nd->name, nd->op, nd->in[k]);
            }
        }
        for (int i = 0; i < n && !rc; i++)
            if (!done[i])
                rc = fv_error_set(err, FV_ERR_FORMAT, "%s: the graph has a cycle through node '%s' (%s)", b->path, f->nodes[i].name, f->nodes[i].op);
    }
    free(done);
    return rc;
}

static int graph_input(struct onnx_builder *b, const struct onnx_value_info *in, struct fv_error *err) {
    if (in->rank < 2 || in->rank > FV_MAX_RANK + 1)
        return fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: input '%s' has %d dimensions; featviz takes (N, C, H, W) images or (N, features)",
                            b->path, in->name, in->rank);
    if (in->dtype && in->dtype != ONNX_FLOAT)
        return fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: input '%s' has data type %d; featviz feeds float inputs", b->path, in->name, in->dtype);
    struct onnx_val v = {.rank = in->rank - 1};
    for (int i = 1; i < in->rank; i++) {
        if (in->dims[i] > (1 << 24))
            return fv_error_set(err, FV_ERR_SHAPE, "%s: input '%s' has a dimension of %lld", b->path, in->name, (long long)in->dims[i]);
        v.dims[i - 1] = in->dims[i];
    }
    int i = onnx_add_node(b, in->name, "Input", NULL, 0, err);
    if (i < 0) return err->code;
    b->specs[i].is_input = 1;
    b->nodes[i].out_rank = v.rank;
    b->nodes[i].cf = v.rank == 3; /* images are (C, H, W): stored (H, W, C) */
    snprintf(b->nodes[i].tensor, sizeof b->nodes[i].tensor, "%s", in->name);
    v.node = i;
    b->input = i;
    b->in_rank = v.rank;
    memcpy(b->in_dims, v.dims, sizeof b->in_dims);
    struct value *val = add_value(b, in->name, err);
    if (!val) return err->code;
    val->kind = V_RUNTIME;
    val->rt = v;
    return FV_OK;
}

static int run_node(struct onnx_builder *b, const struct onnx_node *n, struct fv_error *err) {
    struct onnx_val *rt[FV_MAX_IN];
    struct onnx_const *cst[FV_MAX_IN];
    int n_rt = 0, rc = FV_OK;
    if (n->n_in > FV_MAX_IN)
        return fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: node '%s' (%s) has %d inputs", b->path, n->name, n->op, n->n_in);
    if (n->n_out < 1) return fv_error_set(err, FV_ERR_FORMAT, "%s: node '%s' (%s) has no output", b->path, n->name, n->op);
    if (*n->domain && strcmp(n->domain, "ai.onnx"))
        return fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: node '%s' has operator '%s' of domain '%s', which featviz does not know",
                            b->path, n->name, n->op, n->domain);
    for (int k = 0; k < n->n_in; k++) {
        rt[k] = NULL;
        cst[k] = NULL;
        if (!*n->in[k]) continue;
        struct value *v = lookup(b, n->in[k]);
        if (!v || v->kind == V_UNSET)
            return fv_error_set(err, FV_ERR_FORMAT, "%s: node '%s' (%s) reads '%s' before it is computed", b->path, n->name, n->op, n->in[k]);
        if (v->kind == V_DEAD)
            return fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: node '%s' (%s) reads '%s', a second output of a %s node; featviz computes first outputs only",
                                b->path, n->name, n->op, n->in[k], v->dead_op);
        if (v->kind == V_RUNTIME) rt[k] = &v->rt, n_rt++;
        else if ((rc = value_const(b, v, &cst[k], err))) return rc;
    }
    struct value *outv = lookup(b, n->out[0]);
    if (!outv) return fv_error_set(err, FV_ERR_FORMAT, "%s: node '%s' output missing", b->path, n->name);
    if (outv->kind != V_UNSET) /* ONNX graphs are SSA: a second writer would overwrite (and leak) the first value */
        return fv_error_set(err, FV_ERR_FORMAT, "%s: node '%s' (%s) writes '%s', which another node or the graph already defines",
                            b->path, n->name, n->op, n->out[0]);
    for (int k = 1; k < n->n_out; k++) {
        struct value *x = lookup(b, n->out[k]);
        if (x) x->kind = V_DEAD, x->dead_op = n->op;
    }
    if (!strcmp(n->op, "Constant")) {
        if ((rc = constant_node(b, n, &outv->c, err))) return rc;
        outv->kind = V_CONST;
        return FV_OK;
    }
    if (!strcmp(n->op, "Shape") && n->n_in == 1 && rt[0]) {
        if ((rc = shape_of(n, rt[0], &outv->c, b->path, err))) return rc;
        outv->kind = V_CONST;
        return FV_OK;
    }
    if (n_rt == 0 && !onnx_op_refused(n->op)) {
        rc = onnx_const_eval(n, cst, n->n_in, &outv->c, b->path, err);
        if (rc == FV_OK) {
            outv->kind = V_CONST;
            return FV_OK;
        }
        if (rc != ONNX_NOT_FOLDABLE) return rc;
        if (onnx_op_known(n->op))
            return fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: node '%s' computes %s on constants only, which featviz cannot evaluate at load time",
                                b->path, n->name, n->op);
    }
    struct onnx_val out = {.node = -1};
    int first = b->n;
    rc = onnx_op_translate(b, n, rt, cst, &out, err);
    if (rc) return rc;
    if (out.node < 0 || out.node >= b->n) return fv_error_set(err, FV_ERR_FORMAT, "%s: node '%s' produced nothing", b->path, n->name);
    /* the last node made carries the ONNX node's name; helpers get suffixes */
    if (out.node >= first) {
        struct fv_layer *l = &b->nodes[out.node];
        snprintf(l->tensor, sizeof l->tensor, "%s", n->out[0]);
    }
    outv->kind = V_RUNTIME;
    outv->rt = out;
    return FV_OK;
}

static void builder_free(struct onnx_builder *b) {
    for (int i = 0; b->nodes && i < b->n; i++)
        for (int k = 0; k < b->nodes[i].n_w; k++) free(b->nodes[i].w[k]);
    free(b->nodes);
    free(b->specs);
    for (int i = 0; i < b->n_vals; i++)
        if (b->vals[i].kind == V_CONST) onnx_const_free(&b->vals[i].c);
    free(b->vals);
    tmp_free(b);
    onnx_file_free(&b->f);
}

int fv_onnx_load(struct fv_model *m, const char *path, const struct fv_load_opts *opts,
                 struct fv_error *err) {
    (void)opts;
    memset(m, 0, sizeof *m);
    struct onnx_builder b;
    memset(&b, 0, sizeof b);
    b.path = path;
    b.input = -1;
    int rc = onnx_file_read(&b.f, path, err);
    if (rc) return rc;
    const struct onnx_file *f = &b.f;
    int *order = malloc(((size_t)f->n_nodes + 1) * sizeof *order);
    if (!order) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    /* initializers, then graph inputs that are not initializers */
    for (int i = 0; i < f->n_inits; i++) {
        struct value *v = add_value(&b, f->inits[i].name, err);
        if (!v) goto fail_rc;
        v->kind = V_INIT;
        v->t = &f->inits[i];
        size_t cnt = 0;
        if ((rc = onnx_tensor_count(v->t, &cnt, path, err))) goto fail;
    }
    for (int i = 0; i < f->n_inputs; i++) {
        const struct onnx_value_info *in = &f->inputs[i];
        struct value *v = lookup(&b, in->name);
        if (v && v->kind == V_INIT) continue;
        if (b.input >= 0) {
            rc = fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: the model has more than one input ('%s' and '%s'); featviz takes models with one input",
                              path, b.nodes[b.input].name, in->name);
            goto fail;
        }
        if ((rc = graph_input(&b, in, err))) goto fail;
    }
    if (b.input < 0) {
        rc = fv_error_set(err, FV_ERR_FORMAT, "%s: the graph has no input", path);
        goto fail;
    }
    if ((rc = order_nodes(&b, order, err))) goto fail;
    for (int k = 0; k < f->n_nodes; k++) {
        rc = run_node(&b, &f->nodes[order[k]], err);
        tmp_free(&b);
        if (rc) goto fail;
    }
    if (f->n_outputs < 1) {
        rc = fv_error_set(err, FV_ERR_FORMAT, "%s: the graph has no output", path);
        goto fail;
    }
    struct value *ov = lookup(&b, f->outputs[0].name);
    if (!ov || ov->kind != V_RUNTIME) {
        rc = fv_error_set(err, FV_ERR_FORMAT, "%s: graph output '%s' is not computed from the input", path, f->outputs[0].name);
        goto fail;
    }
    int input = b.input, out = ov->rt.node;
    free(order);
    order = NULL;
    snprintf(m->path, sizeof m->path, "%s", path);
    snprintf(m->format, sizeof m->format, "ONNX");
    snprintf(m->producer, sizeof m->producer, "%.60s, opset %d", *f->producer ? f->producer : "an unknown tool", f->opset);
    snprintf(m->model_class, sizeof m->model_class, "graph");
    snprintf(m->name, sizeof m->name, "%s", *f->graph_name ? f->graph_name : "model");
    m->in_rank = b.in_rank;
    for (int i = 0; i < m->in_rank; i++) m->in_dims[i] = b.in_dims[i] > 0 ? (int)b.in_dims[i] : -1;
    struct fv_layer *nodes = b.nodes;
    struct fv_node_spec *specs = b.specs;
    int n = b.n;
    b.nodes = NULL, b.specs = NULL, b.n = 0;
    builder_free(&b);
    return fv_graph_finish(m, nodes, specs, n, input, out, err); /* takes nodes and specs */
fail_rc:
    rc = err->code;
fail:
    free(order);
    builder_free(&b);
    fv_model_free(m);
    return rc;
}
