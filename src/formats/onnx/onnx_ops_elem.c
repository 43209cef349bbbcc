/* ONNX elementwise operators: activations, Softmax, arithmetic with constants
 * or between tensors, Concat/Sum/Max/Min. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/onnx/onnx_ops.h"
#include "layers/layers.h"

/* ---- elementwise ---- */

static int set_act(struct onnx_builder *b, const struct onnx_node *n, struct fv_act *a,
                   struct onnx_const **cst, struct fv_error *err) {
    memset(a, 0, sizeof *a);
    a->max_value = -1;
    const char *op = n->op;
    if (!strcmp(op, "Relu")) a->kind = FV_ACT_RELU;
    else if (!strcmp(op, "LeakyRelu")) a->kind = FV_ACT_RELU, a->alpha = onnx_attr_f(n, "alpha", 0.01f);
    else if (!strcmp(op, "Sigmoid")) a->kind = FV_ACT_SIGMOID;
    else if (!strcmp(op, "Tanh")) a->kind = FV_ACT_TANH;
    else if (!strcmp(op, "Softplus")) a->kind = FV_ACT_SOFTPLUS;
    else if (!strcmp(op, "Softsign")) a->kind = FV_ACT_SOFTSIGN;
    else if (!strcmp(op, "Elu")) a->kind = FV_ACT_ELU, a->alpha = onnx_attr_f(n, "alpha", 1.f);
    else if (!strcmp(op, "HardSwish")) a->kind = FV_ACT_HARD_SWISH;
    else if (!strcmp(op, "HardSigmoid")) {
        a->alpha = onnx_attr_f(n, "alpha", 0.2f);
        a->threshold = onnx_attr_f(n, "beta", 0.5f);
        a->kind = a->alpha == 0.2f && a->threshold == 0.5f ? FV_ACT_HARD_SIGMOID : FV_ACT_HARD_SIGMOID_AB;
        if (a->kind == FV_ACT_HARD_SIGMOID) a->alpha = a->threshold = 0;
    } else if (!strcmp(op, "Clip")) {
        float lo = -INFINITY, hi = INFINITY;
        if (onnx_attr_get(n, "min")) lo = onnx_attr_f(n, "min", lo);
        if (onnx_attr_get(n, "max")) hi = onnx_attr_f(n, "max", hi);
        for (int k = 1; k <= 2 && k < n->n_in; k++) {
            if (!*n->in[k]) continue;
            if (!cst[k] || cst[k]->count != 1)
                FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Clip): the %s bound is not a constant scalar", onnx_path(b), onnx_node_name(n), k == 1 ? "lower" : "upper");
            if (k == 1) lo = (float)cst[k]->v[0];
            else hi = (float)cst[k]->v[0];
        }
        if (lo == 0.f && (isinf(hi) || hi >= 0.f)) {
            a->kind = FV_ACT_RELU;
            a->max_value = isinf(hi) ? -1.f : hi;
        } else {
            a->kind = FV_ACT_CLIP;
            a->alpha = lo;
            a->max_value = hi;
        }
    } else return 0;
    return 1;
}

int onnx_op_activation(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                         struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    struct fv_act a;
    if (!set_act(b, n, &a, cst, err)) return err->code ? err->code : FV_ERR_UNSUPPORTED;
    int i = onnx_emit(b, n, rt[0], 1, err);
    if (i < 0) return err->code;
    struct fv_layer *l = onnx_node_at(b, i);
    l->ops = &fv_identity_ops;
    l->act = a;
    *out = *rt[0];
    out->node = i;
    return FV_OK;
}

int onnx_op_softmax(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                      struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    (void)cst;
    const struct onnx_val *x = rt[0];
    int64_t axis = onnx_attr_i(n, "axis", onnx_opset(b) >= 13 ? -1 : 1), r = x->rank + 1;
    if (axis < 0) axis += r;
    if (axis < 1 || axis >= r)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Softmax): axis %lld (featviz normalizes one axis other than the batch)", onnx_path(b), onnx_node_name(n), (long long)onnx_attr_i(n, "axis", 0));
    if (onnx_opset(b) < 13 && axis != r - 1)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Softmax): before opset 13 Softmax normalizes axes %lld.. together; featviz normalizes one axis",
             onnx_path(b), onnx_node_name(n), (long long)axis);
    int i = onnx_emit(b, n, x, 1, err);
    if (i < 0) return err->code;
    struct fv_layer *l = onnx_node_at(b, i);
    l->ops = &fv_identity_ops;
    l->act.kind = FV_ACT_SOFTMAX;
    l->act_axis = axis == r - 1 ? -1 : (int)axis - 1;
    *out = *x;
    out->node = i;
    return FV_OK;
}

/* The single axis (of x's logical shape) along which constant c varies; -1
 * when c is a scalar, -2 when it varies along several or does not broadcast. */
static int const_axis(const struct onnx_const *c, const struct onnx_val *x) {
    int r = x->rank + 1, axis = -1;
    if (c->rank > r) {
        for (int i = 0; i < c->rank - r; i++)
            if (c->dims[i] != 1) return -2;
    }
    for (int i = 0; i < c->rank; i++) {
        int xa = r - c->rank + i; /* axis of x counting the batch */
        if (c->dims[i] == 1 || xa < 0) continue;
        if (xa == 0 || axis >= 0) return -2;
        if (x->dims[xa - 1] >= 0 && x->dims[xa - 1] != c->dims[i]) return -2;
        axis = xa - 1;
    }
    return axis;
}

int onnx_op_arith(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                    struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    const char *path = onnx_path(b), *op = n->op;
    int is_add = !strcmp(op, "Add"), is_sub = !strcmp(op, "Sub"), is_mul = !strcmp(op, "Mul"), is_div = !strcmp(op, "Div");
    if (n->n_in != 2) FAIL(FV_ERR_FORMAT, "%s: node '%s' (%s) has %d inputs", path, onnx_node_name(n), op, n->n_in);
    if (rt[0] && rt[1]) {
        const struct onnx_val *x = rt[0], *y = rt[1];
        int same = x->rank == y->rank;
        for (int k = 0; same && k < x->rank; k++) same = x->dims[k] == y->dims[k];
        if (!same || is_div)
            FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): featviz %s two computed tensors only when they have the same shape%s",
                 path, onnx_node_name(n), op, is_div ? "cannot divide" : "combines", is_div ? "" : " (no broadcasting)");
        struct onnx_val ins[2] = {*x, *y};
        int i = onnx_emit(b, n, ins, 2, err);
        if (i < 0) return err->code;
        struct fv_layer *l = onnx_node_at(b, i);
        l->ops = &fv_merge_ops;
        l->p.merge.op = is_add ? FV_MERGE_ADD : is_sub ? FV_MERGE_SUB : FV_MERGE_MUL;
        *out = *x;
        out->node = i;
        return FV_OK;
    }
    int first = rt[0] != NULL;
    const struct onnx_val *x = first ? rt[0] : rt[1];
    const struct onnx_const *c = first ? cst[1] : cst[0];
    if (!c) FAIL(FV_ERR_FORMAT, "%s: node '%s' (%s): an input is missing", path, onnx_node_name(n), op);
    if (is_div && !first)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Div): featviz cannot divide a constant by a computed tensor", path, onnx_node_name(n));
    int axis = const_axis(c, x);
    if (axis == -2)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): the constant varies along more than one axis (or along the batch); featviz applies scalars and per-channel constants",
             path, onnx_node_name(n), op);
    /* y = x*scale + shift, per element of the constant */
    size_t len = axis < 0 ? 1 : c->count;
    float *scale = malloc(len * sizeof *scale), *shift = malloc(len * sizeof *shift);
    if (!scale || !shift) {
        free(scale), free(shift);
        FAIL(FV_ERR_NOMEM, "out of memory");
    }
    for (size_t k = 0; k < len; k++) {
        double v = c->v[k];
        double sc = 1, sh = 0;
        if (is_add) sh = v;
        else if (is_sub) sc = first ? 1 : -1, sh = first ? -v : v;
        else if (is_mul) sc = v;
        else if (is_div) sc = 1.0 / v;
        scale[k] = (float)sc, shift[k] = (float)sh;
    }
    int i = onnx_emit(b, n, x, 1, err);
    if (i < 0) {
        free(scale), free(shift);
        return err->code;
    }
    struct fv_layer *l = onnx_node_at(b, i);
    if (axis < 0) {
        l->ops = &fv_affine_ops;
        l->p.affine.scale = scale[0];
        l->p.affine.offset = shift[0];
        free(scale), free(shift);
    } else {
        l->ops = &fv_batchnorm_ops;
        onnx_spec_at(b, i)->axis = axis + 1;
        onnx_node_weight(b, i, scale, len);
        onnx_node_weight(b, i, shift, len);
        l->params_trainable = 0;
        l->params_fixed = len; /* the constant */
    }
    *out = *x;
    out->node = i;
    return FV_OK;
}

int onnx_op_merge_n(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                      struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    (void)cst;
    struct onnx_val ins[FV_MAX_IN];
    for (int k = 0; k < n->n_in; k++) {
        if (!rt[k]) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): input '%s' is a constant; featviz combines computed tensors", onnx_path(b), onnx_node_name(n), n->op, n->in[k]);
        ins[k] = *rt[k];
        if (rt[k]->rank != rt[0]->rank) FAIL(FV_ERR_SHAPE, "%s: node '%s' (%s): inputs of different ranks", onnx_path(b), onnx_node_name(n), n->op);
    }
    if (n->n_in == 1) {
        int i = onnx_emit(b, n, ins, 1, err);
        if (i < 0) return err->code;
        onnx_node_at(b, i)->ops = &fv_identity_ops;
        *out = ins[0];
        out->node = i;
        return FV_OK;
    }
    int i = onnx_emit(b, n, ins, n->n_in, err);
    if (i < 0) return err->code;
    struct fv_layer *l = onnx_node_at(b, i);
    *out = ins[0];
    out->node = i;
    if (!strcmp(n->op, "Concat")) {
        int64_t axis = onnx_attr_i(n, "axis", 1), r = rt[0]->rank + 1;
        if (axis < 0) axis += r;
        if (axis < 1 || axis >= r) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Concat): axis %lld (featviz cannot join along the batch)", onnx_path(b), onnx_node_name(n), (long long)axis);
        l->ops = &fv_concat_ops;
        onnx_spec_at(b, i)->axis = (int)axis;
        out->dims[axis - 1] = 0;
        for (int k = 0; k < n->n_in; k++)
            out->dims[axis - 1] = rt[k]->dims[axis - 1] < 0 || out->dims[axis - 1] < 0 ? -1 : out->dims[axis - 1] + rt[k]->dims[axis - 1];
        return FV_OK;
    }
    l->ops = &fv_merge_ops;
    l->p.merge.op = !strcmp(n->op, "Max") ? FV_MERGE_MAX : !strcmp(n->op, "Min") ? FV_MERGE_MIN : FV_MERGE_ADD;
    return FV_OK;
}

