/* ONNX operators on runtime tensors -> featviz layer nodes, with weights in
 * the layouts of src/layers/layers.h. Shapes here are ONNX shapes without the
 * batch axis ((C, H, W) for images), known for the declared input size; the
 * layers check them again at plan time for any size.
 *
 *   Conv               conv2d (groups) or depthwise, explicit pads (ONNX pads
 *                      are not TensorFlow's 'same' for stride 2)
 *   Gemm, MatMul       dense (weights constant)
 *   Add/Sub/Mul/Div    two computed tensors of one shape: merge; with a scalar
 *                      constant: affine; with a per-channel constant: batchnorm's scale/shift
 *   activations        fused kinds of src/kernels/act.c (Clip(0,6) is ReLU max 6)
 *   pooling            explicit pads, ceil_mode, count_include_pad
 *   Flatten, Reshape, Squeeze, Unsqueeze   reshape in ONNX (logical) order
 *   Transpose          permute (the batch axis stays first)
 *   Pad, Resize, Upsample, Concat, ReduceMean, BatchNormalization, Dropout, Identity */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/onnx/onnx.h"
#include "layers/layers.h"

#define FAIL(code, ...) return fv_error_set(err, code, __VA_ARGS__)

static const char *const refused[] = {
    "LSTM", "GRU", "RNN", "ConvTranspose", "Loop", "If", "Scan", "ConvInteger", "QLinearConv",
    "DeformConv", "NonMaxSuppression", "RoiAlign", "Attention", NULL};

int onnx_op_refused(const char *op) {
    for (int i = 0; refused[i]; i++)
        if (!strcmp(op, refused[i])) return 1;
    return 0;
}

static int64_t attr_i(const struct onnx_node *n, const char *name, int64_t def) {
    const struct onnx_attr *a = onnx_attr_get(n, name);
    return a ? a->i : def;
}

static float attr_f(const struct onnx_node *n, const char *name, float def) {
    const struct onnx_attr *a = onnx_attr_get(n, name);
    return a ? a->f : def;
}

static const char *attr_s(const struct onnx_node *n, const char *name, const char *def) {
    const struct onnx_attr *a = onnx_attr_get(n, name);
    return a && a->s ? a->s : def;
}

/* A pair of ints attribute (kernel_shape, strides, dilations) with default. */
static int attr_pair(const struct onnx_node *n, const char *name, int def, int out[2]) {
    const struct onnx_attr *a = onnx_attr_get(n, name);
    out[0] = out[1] = def;
    if (!a) return 1;
    if (a->n_ints != 2) return 0;
    for (int i = 0; i < 2; i++) {
        if (a->ints[i] < 1 || a->ints[i] > 65536) return 0;
        out[i] = (int)a->ints[i];
    }
    return 1;
}

static const char *node_name(const struct onnx_node *n) { return *n->name ? n->name : n->out[0]; }

static int emit(struct onnx_builder *b, const struct onnx_node *n, const struct onnx_val *ins,
                int n_in, struct fv_error *err) {
    return onnx_add_node(b, node_name(n), n->op, ins, n_in, err);
}

static float *to_float(const double *v, size_t n, struct fv_error *err) {
    float *f = malloc((n ? n : 1) * sizeof *f);
    if (!f) return fv_error_set(err, FV_ERR_NOMEM, "out of memory"), NULL;
    for (size_t i = 0; i < n; i++) f[i] = (float)v[i];
    return f;
}

/* ---- convolution ---- */

struct pads {
    int t, b, l, r;
    int same_upper;
};

/* pads / auto_pad of Conv and pooling, for an input of h x w (-1: unknown). */
static int read_pads(struct onnx_builder *b, const struct onnx_node *n, const int k[2],
                     const int s[2], const int d[2], int64_t h, int64_t w, struct pads *p,
                     struct fv_error *err) {
    memset(p, 0, sizeof *p);
    const char *ap = attr_s(n, "auto_pad", "NOTSET");
    if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
        int64_t in[2] = {h, w};
        int tot[2];
        for (int i = 0; i < 2; i++) {
            if (in[i] < 1)
                FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): auto_pad %s needs the input size, which the model does not declare", onnx_path(b), node_name(n), n->op, ap);
            int64_t out = (in[i] + s[i] - 1) / s[i], t = (out - 1) * s[i] + (int64_t)d[i] * (k[i] - 1) + 1 - in[i];
            tot[i] = t > 0 ? (int)t : 0;
        }
        int upper = ap[5] == 'U';
        p->t = upper ? tot[0] / 2 : tot[0] - tot[0] / 2;
        p->b = tot[0] - p->t;
        p->l = upper ? tot[1] / 2 : tot[1] - tot[1] / 2;
        p->r = tot[1] - p->l;
        return FV_OK;
    }
    if (strcmp(ap, "NOTSET") && strcmp(ap, "VALID"))
        FAIL(FV_ERR_FORMAT, "%s: node '%s' (%s): auto_pad '%s'", onnx_path(b), node_name(n), n->op, ap);
    const struct onnx_attr *a = onnx_attr_get(n, "pads");
    if (a && strcmp(ap, "VALID")) {
        if (a->n_ints != 4) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): pads has %zu values; featviz takes 2-D (4 values)", onnx_path(b), node_name(n), n->op, a->n_ints);
        for (int i = 0; i < 4; i++)
            if (a->ints[i] < 0 || a->ints[i] > 65536) FAIL(FV_ERR_FORMAT, "%s: node '%s' (%s): pads out of range", onnx_path(b), node_name(n), n->op);
        p->t = (int)a->ints[0], p->l = (int)a->ints[1], p->b = (int)a->ints[2], p->r = (int)a->ints[3];
    }
    return FV_OK;
}

static int64_t out_size(int64_t in, int k, int s, int d, int before, int after, int ceil_mode) {
    if (in < 0) return -1;
    int64_t e = in + before + after - ((int64_t)d * (k - 1) + 1);
    if (e < 0) return 0;
    int64_t o = (ceil_mode ? (e + s - 1) / s : e / s) + 1;
    if (ceil_mode && o > 1 && (o - 1) * s >= in + before) o--;
    return o;
}

static int need_image(struct onnx_builder *b, const struct onnx_node *n, const struct onnx_val *x,
                      struct fv_error *err) {
    if (x->rank != 3)
        FAIL(FV_ERR_SHAPE, "%s: node '%s' (%s) needs an (N, C, H, W) input, its input has %d dimensions",
             onnx_path(b), node_name(n), n->op, x->rank + 1);
    return FV_OK;
}

static int op_conv(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                   struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    const char *path = onnx_path(b);
    const struct onnx_val *x = rt[0];
    int rc = need_image(b, n, x, err);
    if (rc) return rc;
    const struct onnx_const *W = n->n_in > 1 ? cst[1] : NULL, *B = n->n_in > 2 ? cst[2] : NULL;
    if (!W) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Conv): the kernel is not a constant", path, node_name(n));
    if (n->n_in > 2 && *n->in[2] && !B) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Conv): the bias is not a constant", path, node_name(n));
    if (W->rank != 4) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Conv): kernel of rank %d; featviz runs 2-D convolutions", path, node_name(n), W->rank);
    int64_t OC = W->dims[0], CG = W->dims[1], KH = W->dims[2], KW = W->dims[3];
    int64_t G = attr_i(n, "group", 1), C = x->dims[0];
    if (G < 1 || OC < 1 || CG < 1 || KH < 1 || KW < 1 || KH > 4096 || KW > 4096 || OC > 1000000 || OC % G ||
        (C > 0 && C != CG * G))
        FAIL(FV_ERR_SHAPE, "%s: node '%s' (Conv): kernel (%lld, %lld, %lld, %lld) with group %lld does not fit an input of %lld channels",
             path, node_name(n), (long long)OC, (long long)CG, (long long)KH, (long long)KW, (long long)G, (long long)C);
    C = CG * G;
    int k[2] = {(int)KH, (int)KW}, s[2], d[2], ks[2];
    if (!attr_pair(n, "strides", 1, s) || !attr_pair(n, "dilations", 1, d) || !attr_pair(n, "kernel_shape", (int)KH, ks) ||
        ks[0] != KH || (onnx_attr_get(n, "kernel_shape") && ks[1] != KW))
        FAIL(FV_ERR_FORMAT, "%s: node '%s' (Conv): bad kernel_shape, strides or dilations", path, node_name(n));
    struct pads p;
    if ((rc = read_pads(b, n, k, s, d, x->dims[1], x->dims[2], &p, err))) return rc;
    if (B && (B->count != (size_t)OC))
        FAIL(FV_ERR_SHAPE, "%s: node '%s' (Conv): bias has %zu values for %lld filters", path, node_name(n), B->count, (long long)OC);
    int i = emit(b, n, x, 1, err);
    if (i < 0) return err->code;
    struct fv_layer *l = onnx_node_at(b, i);
    struct fv_conv_params *cp = &l->p.conv;
    cp->kh = k[0], cp->kw = k[1], cp->sh = s[0], cp->sw = s[1], cp->dh = d[0], cp->dw = d[1];
    cp->pad_explicit = 1;
    cp->pad_t = p.t, cp->pad_b = p.b, cp->pad_l = p.l, cp->pad_r = p.r;
    cp->use_bias = B != NULL;
    cp->groups = 1;
    cp->multiplier = 1;
    l->cf = 1;
    int depthwise = G > 1 && G == C && CG == 1;
    size_t taps = (size_t)KH * (size_t)KW;
    float *w = malloc(W->count * sizeof *w);
    if (!w) FAIL(FV_ERR_NOMEM, "out of memory");
    if (depthwise) { /* (C*M, 1, KH, KW) -> (KH, KW, C, M) */
        int64_t M = OC / C;
        l->ops = &fv_depthwise_ops;
        cp->multiplier = (int)M;
        for (size_t t = 0; t < taps; t++)
            for (int64_t c = 0; c < C; c++)
                for (int64_t m = 0; m < M; m++) w[(t * (size_t)C + (size_t)c) * (size_t)M + (size_t)m] = (float)W->v[(size_t)(c * M + m) * taps + t];
    } else { /* (OC, C/G, KH, KW) -> (KH, KW, C/G, OC) */
        l->ops = &fv_conv2d_ops;
        cp->filters = (int)OC;
        cp->groups = (int)G;
        for (size_t t = 0; t < taps; t++)
            for (int64_t c = 0; c < CG; c++)
                for (int64_t o = 0; o < OC; o++) w[(t * (size_t)CG + (size_t)c) * (size_t)OC + (size_t)o] = (float)W->v[((size_t)o * (size_t)CG + (size_t)c) * taps + t];
    }
    onnx_node_weight(b, i, w, W->count);
    if (B) {
        float *bf = to_float(B->v, B->count, err);
        if (!bf) return err->code;
        onnx_node_weight(b, i, bf, B->count);
    }
    out->node = i;
    out->rank = 3;
    out->dims[0] = OC;
    out->dims[1] = out_size(x->dims[1], k[0], s[0], d[0], p.t, p.b, 0);
    out->dims[2] = out_size(x->dims[2], k[1], s[1], d[1], p.l, p.r, 0);
    if (out->dims[1] == 0 || out->dims[2] == 0)
        FAIL(FV_ERR_SHAPE, "%s: node '%s' (Conv): input %lldx%lld is too small for its kernel", path, node_name(n), (long long)x->dims[1], (long long)x->dims[2]);
    return FV_OK;
}

/* ---- dense ---- */

static int op_gemm(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                   struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    const char *path = onnx_path(b);
    const struct onnx_val *x = rt[0];
    int gemm = !strcmp(n->op, "Gemm");
    const struct onnx_const *B = n->n_in > 1 ? cst[1] : NULL, *C = gemm && n->n_in > 2 ? cst[2] : NULL;
    if (!B || B->rank != 2)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): the second input must be a constant matrix (featviz multiplies by weights)", path, node_name(n), n->op);
    if (gemm && n->n_in > 2 && *n->in[2] && !C) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Gemm): C is not a constant", path, node_name(n));
    if (gemm && (attr_i(n, "transA", 0) || x->rank != 1))
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Gemm): featviz multiplies (N, K) inputs, not transposed ones", path, node_name(n));
    int tb = gemm && attr_i(n, "transB", 0);
    float alpha = gemm ? attr_f(n, "alpha", 1.f) : 1.f, beta = gemm ? attr_f(n, "beta", 1.f) : 1.f;
    int64_t K = tb ? B->dims[1] : B->dims[0], N = tb ? B->dims[0] : B->dims[1];
    if (x->rank < 1 || (x->dims[x->rank - 1] >= 0 && x->dims[x->rank - 1] != K))
        FAIL(FV_ERR_SHAPE, "%s: node '%s' (%s): input has %lld features, the weights take %lld", path, node_name(n), n->op,
             (long long)(x->rank ? x->dims[x->rank - 1] : 0), (long long)K);
    if (C && C->count != 1 && C->count != (size_t)N)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Gemm): C of %zu values for %lld outputs", path, node_name(n), C->count, (long long)N);
    int i = emit(b, n, x, 1, err);
    if (i < 0) return err->code;
    struct fv_layer *l = onnx_node_at(b, i);
    l->ops = &fv_dense_ops;
    l->p.conv.filters = (int)N;
    l->p.conv.use_bias = C != NULL;
    float *w = malloc(B->count * sizeof *w);
    if (!w) FAIL(FV_ERR_NOMEM, "out of memory");
    for (int64_t k = 0; k < K; k++)
        for (int64_t o = 0; o < N; o++)
            w[k * N + o] = (float)((double)alpha * (tb ? B->v[o * K + k] : B->v[k * N + o]));
    onnx_node_weight(b, i, w, B->count);
    if (C) {
        float *bias = malloc((size_t)N * sizeof *bias);
        if (!bias) FAIL(FV_ERR_NOMEM, "out of memory");
        for (int64_t o = 0; o < N; o++) bias[o] = (float)((double)beta * C->v[C->count == 1 ? 0 : o]);
        onnx_node_weight(b, i, bias, (size_t)N);
    }
    *out = *x;
    out->node = i;
    out->dims[x->rank - 1] = N;
    return FV_OK;
}

/* ---- elementwise ---- */

static int set_act(struct onnx_builder *b, const struct onnx_node *n, struct fv_act *a,
                   struct onnx_const **cst, struct fv_error *err) {
    memset(a, 0, sizeof *a);
    a->max_value = -1;
    const char *op = n->op;
    if (!strcmp(op, "Relu")) a->kind = FV_ACT_RELU;
    else if (!strcmp(op, "LeakyRelu")) a->kind = FV_ACT_RELU, a->alpha = attr_f(n, "alpha", 0.01f);
    else if (!strcmp(op, "Sigmoid")) a->kind = FV_ACT_SIGMOID;
    else if (!strcmp(op, "Tanh")) a->kind = FV_ACT_TANH;
    else if (!strcmp(op, "Softplus")) a->kind = FV_ACT_SOFTPLUS;
    else if (!strcmp(op, "Softsign")) a->kind = FV_ACT_SOFTSIGN;
    else if (!strcmp(op, "Elu")) a->kind = FV_ACT_ELU, a->alpha = attr_f(n, "alpha", 1.f);
    else if (!strcmp(op, "HardSwish")) a->kind = FV_ACT_HARD_SWISH;
    else if (!strcmp(op, "HardSigmoid")) {
        a->alpha = attr_f(n, "alpha", 0.2f);
        a->threshold = attr_f(n, "beta", 0.5f);
        a->kind = a->alpha == 0.2f && a->threshold == 0.5f ? FV_ACT_HARD_SIGMOID : FV_ACT_HARD_SIGMOID_AB;
        if (a->kind == FV_ACT_HARD_SIGMOID) a->alpha = a->threshold = 0;
    } else if (!strcmp(op, "Clip")) {
        float lo = -INFINITY, hi = INFINITY;
        if (onnx_attr_get(n, "min")) lo = attr_f(n, "min", lo);
        if (onnx_attr_get(n, "max")) hi = attr_f(n, "max", hi);
        for (int k = 1; k <= 2 && k < n->n_in; k++) {
            if (!*n->in[k]) continue;
            if (!cst[k] || cst[k]->count != 1)
                FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Clip): the %s bound is not a constant scalar", onnx_path(b), node_name(n), k == 1 ? "lower" : "upper");
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

static int op_activation(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                         struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    struct fv_act a;
    if (!set_act(b, n, &a, cst, err)) return err->code ? err->code : FV_ERR_UNSUPPORTED;
    int i = emit(b, n, rt[0], 1, err);
    if (i < 0) return err->code;
    struct fv_layer *l = onnx_node_at(b, i);
    l->ops = &fv_identity_ops;
    l->act = a;
    *out = *rt[0];
    out->node = i;
    return FV_OK;
}

static int op_softmax(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                      struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    (void)cst;
    const struct onnx_val *x = rt[0];
    int64_t axis = attr_i(n, "axis", onnx_opset(b) >= 13 ? -1 : 1), r = x->rank + 1;
    if (axis < 0) axis += r;
    if (axis < 1 || axis >= r)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Softmax): axis %lld (featviz normalizes one axis other than the batch)", onnx_path(b), node_name(n), (long long)attr_i(n, "axis", 0));
    if (onnx_opset(b) < 13 && axis != r - 1)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Softmax): before opset 13 Softmax normalizes axes %lld.. together; featviz normalizes one axis",
             onnx_path(b), node_name(n), (long long)axis);
    int i = emit(b, n, x, 1, err);
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

static int op_arith(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                    struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    const char *path = onnx_path(b), *op = n->op;
    int is_add = !strcmp(op, "Add"), is_sub = !strcmp(op, "Sub"), is_mul = !strcmp(op, "Mul"), is_div = !strcmp(op, "Div");
    if (n->n_in != 2) FAIL(FV_ERR_FORMAT, "%s: node '%s' (%s) has %d inputs", path, node_name(n), op, n->n_in);
    if (rt[0] && rt[1]) {
        const struct onnx_val *x = rt[0], *y = rt[1];
        int same = x->rank == y->rank;
        for (int k = 0; same && k < x->rank; k++) same = x->dims[k] == y->dims[k];
        if (!same || is_div)
            FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): featviz %s two computed tensors only when they have the same shape%s",
                 path, node_name(n), op, is_div ? "cannot divide" : "combines", is_div ? "" : " (no broadcasting)");
        struct onnx_val ins[2] = {*x, *y};
        int i = emit(b, n, ins, 2, err);
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
    if (!c) FAIL(FV_ERR_FORMAT, "%s: node '%s' (%s): an input is missing", path, node_name(n), op);
    if (is_div && !first)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Div): featviz cannot divide a constant by a computed tensor", path, node_name(n));
    int axis = const_axis(c, x);
    if (axis == -2)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): the constant varies along more than one axis (or along the batch); featviz applies scalars and per-channel constants",
             path, node_name(n), op);
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
    int i = emit(b, n, x, 1, err);
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

static int op_batchnorm(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                        struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    const char *path = onnx_path(b);
    const struct onnx_val *x = rt[0];
    if (n->n_in < 5) FAIL(FV_ERR_FORMAT, "%s: node '%s' (BatchNormalization) has %d inputs, needs 5", path, node_name(n), n->n_in);
    int64_t C = x->dims[0];
    for (int k = 1; k < 5; k++)
        if (!cst[k] || (C >= 0 && cst[k]->count != (size_t)C))
            FAIL(FV_ERR_SHAPE, "%s: node '%s' (BatchNormalization): input %d is not a constant of %lld values", path, node_name(n), k, (long long)C);
    size_t len = cst[1]->count;
    float eps = attr_f(n, "epsilon", 1e-5f);
    float *scale = malloc(len * sizeof *scale), *shift = malloc(len * sizeof *shift);
    if (!scale || !shift) {
        free(scale), free(shift);
        FAIL(FV_ERR_NOMEM, "out of memory");
    }
    for (size_t k = 0; k < len; k++) {
        double v = cst[4]->v[k] + (double)eps;
        if (!(v > 0)) {
            free(scale), free(shift);
            FAIL(FV_ERR_FORMAT, "%s: node '%s' (BatchNormalization): variance + epsilon is not positive", path, node_name(n));
        }
        double sc = cst[1]->v[k] / sqrt(v);
        scale[k] = (float)sc;
        shift[k] = (float)(cst[2]->v[k] - cst[3]->v[k] * sc);
    }
    int i = emit(b, n, x, 1, err);
    if (i < 0) {
        free(scale), free(shift);
        return err->code;
    }
    onnx_node_at(b, i)->ops = &fv_batchnorm_ops;
    onnx_node_at(b, i)->p.bn.epsilon = eps;
    onnx_spec_at(b, i)->axis = 1;
    onnx_node_weight(b, i, scale, len);
    onnx_node_weight(b, i, shift, len);
    onnx_node_at(b, i)->params_trainable = 2 * len;
    onnx_node_at(b, i)->params_fixed = 2 * len;
    *out = *x;
    out->node = i;
    return FV_OK;
}

static int op_merge_n(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                      struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    (void)cst;
    struct onnx_val ins[FV_MAX_IN];
    for (int k = 0; k < n->n_in; k++) {
        if (!rt[k]) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): input '%s' is a constant; featviz combines computed tensors", onnx_path(b), node_name(n), n->op, n->in[k]);
        ins[k] = *rt[k];
        if (rt[k]->rank != rt[0]->rank) FAIL(FV_ERR_SHAPE, "%s: node '%s' (%s): inputs of different ranks", onnx_path(b), node_name(n), n->op);
    }
    if (n->n_in == 1) {
        int i = emit(b, n, ins, 1, err);
        if (i < 0) return err->code;
        onnx_node_at(b, i)->ops = &fv_identity_ops;
        *out = ins[0];
        out->node = i;
        return FV_OK;
    }
    int i = emit(b, n, ins, n->n_in, err);
    if (i < 0) return err->code;
    struct fv_layer *l = onnx_node_at(b, i);
    *out = ins[0];
    out->node = i;
    if (!strcmp(n->op, "Concat")) {
        int64_t axis = attr_i(n, "axis", 1), r = rt[0]->rank + 1;
        if (axis < 0) axis += r;
        if (axis < 1 || axis >= r) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Concat): axis %lld (featviz cannot join along the batch)", onnx_path(b), node_name(n), (long long)axis);
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

/* ---- pooling ---- */

static int op_pool(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                   struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    (void)cst;
    const struct onnx_val *x = rt[0];
    int rc = need_image(b, n, x, err);
    if (rc) return rc;
    int k[2], s[2], d[2];
    const struct onnx_attr *ka = onnx_attr_get(n, "kernel_shape");
    if (!ka || !attr_pair(n, "kernel_shape", 1, k) || !attr_pair(n, "strides", 1, s) || !attr_pair(n, "dilations", 1, d))
        FAIL(FV_ERR_FORMAT, "%s: node '%s' (%s): bad kernel_shape, strides or dilations", onnx_path(b), node_name(n), n->op);
    if (d[0] != 1 || d[1] != 1) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): dilated pooling", onnx_path(b), node_name(n), n->op);
    struct pads p;
    if ((rc = read_pads(b, n, k, s, d, x->dims[1], x->dims[2], &p, err))) return rc;
    int i = emit(b, n, x, 1, err);
    if (i < 0) return err->code;
    struct fv_layer *l = onnx_node_at(b, i);
    struct fv_pool_params *pp = &l->p.pool;
    l->ops = !strcmp(n->op, "MaxPool") ? &fv_maxpool_ops : &fv_avgpool_ops;
    l->cf = 1;
    pp->ph = k[0], pp->pw = k[1], pp->sh = s[0], pp->sw = s[1];
    pp->pad_explicit = 1;
    pp->pad_t = p.t, pp->pad_b = p.b, pp->pad_l = p.l, pp->pad_r = p.r;
    pp->ceil_mode = (int)attr_i(n, "ceil_mode", 0);
    pp->count_include_pad = (int)attr_i(n, "count_include_pad", 0);
    *out = *x;
    out->node = i;
    out->dims[1] = out_size(x->dims[1], k[0], s[0], 1, p.t, p.b, pp->ceil_mode);
    out->dims[2] = out_size(x->dims[2], k[1], s[1], 1, p.l, p.r, pp->ceil_mode);
    if (out->dims[1] == 0 || out->dims[2] == 0)
        FAIL(FV_ERR_SHAPE, "%s: node '%s' (%s): input too small for the window", onnx_path(b), node_name(n), n->op);
    return FV_OK;
}

static int global_pool(struct onnx_builder *b, const struct onnx_node *n, const struct onnx_val *x,
                       int max, struct onnx_val *out, struct fv_error *err) {
    int rc = need_image(b, n, x, err);
    if (rc) return rc;
    int i = emit(b, n, x, 1, err);
    if (i < 0) return err->code;
    struct fv_layer *l = onnx_node_at(b, i);
    l->ops = max ? &fv_gmaxpool_ops : &fv_gavgpool_ops;
    l->cf = 1;
    l->p.pool.keepdims = 1;
    *out = *x;
    out->node = i;
    out->dims[1] = out->dims[2] = 1;
    return FV_OK;
}

static int op_global_pool(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                          struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    (void)cst;
    return global_pool(b, n, rt[0], !strcmp(n->op, "GlobalMaxPool"), out, err);
}

/* ---- shapes ---- */

static int emit_reshape(struct onnx_builder *b, const struct onnx_node *n, const struct onnx_val *x,
                        int rank, const int64_t *dims, int flatten, struct onnx_val *out,
                        struct fv_error *err) {
    if (rank < 1 || rank > FV_MAX_RANK)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): result has %d dimensions besides the batch; featviz takes 1 to %d",
             onnx_path(b), node_name(n), n->op, rank, FV_MAX_RANK);
    int i = emit(b, n, x, 1, err);
    if (i < 0) return err->code;
    struct fv_layer *l = onnx_node_at(b, i);
    l->ops = &fv_reshape_ops;
    l->p.reshape.rank = rank;
    int unknown = 0;
    for (int k = 0; k < rank; k++) {
        l->p.reshape.d[k] = dims[k] < 0 ? -1 : (int)dims[k];
        unknown += dims[k] < 0;
    }
    if (unknown > 1) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): more than one dimension depends on the input size", onnx_path(b), node_name(n), n->op);
    onnx_spec_at(b, i)->flatten = flatten;
    out->node = i;
    out->rank = rank;
    memcpy(out->dims, dims, (size_t)rank * sizeof *dims);
    return FV_OK;
}

static int64_t count_of(const struct onnx_val *x) {
    int64_t c = 1;
    for (int k = 0; k < x->rank; k++) {
        if (x->dims[k] < 0) return -1;
        c *= x->dims[k];
    }
    return c;
}

static int op_flatten(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                      struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    (void)cst;
    if (attr_i(n, "axis", 1) != 1)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Flatten): axis %lld; featviz flattens everything after the batch (axis 1)",
             onnx_path(b), node_name(n), (long long)attr_i(n, "axis", 1));
    int64_t d = count_of(rt[0]);
    return emit_reshape(b, n, rt[0], 1, &d, 1, out, err);
}

static int op_reshape(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                      struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    const struct onnx_val *x = rt[0];
    const struct onnx_const *s = n->n_in > 1 ? cst[1] : NULL;
    if (!s || s->count < 1 || s->count > FV_MAX_RANK + 1)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Reshape): the target shape is not a constant of 1 to %d values", onnx_path(b), node_name(n), FV_MAX_RANK + 1);
    int64_t t[FV_MAX_RANK + 1], d[FV_MAX_RANK];
    int r = (int)s->count;
    for (int k = 0; k < r; k++) t[k] = (int64_t)s->v[k];
    if (t[0] != 0 && t[0] != 1 && t[0] != -1)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Reshape): target shape starts with %lld; featviz keeps the batch axis first", onnx_path(b), node_name(n), (long long)t[0]);
    int64_t total = count_of(x), known = 1;
    int infer = -1;
    for (int k = 1; k < r; k++) {
        d[k - 1] = t[k] == 0 && k - 1 < x->rank ? x->dims[k - 1] : t[k];
        if (d[k - 1] == -1) {
            if (infer >= 0) FAIL(FV_ERR_FORMAT, "%s: node '%s' (Reshape): two -1 in the target shape", onnx_path(b), node_name(n));
            infer = k - 1;
        } else if (d[k - 1] < 1) {
            FAIL(FV_ERR_FORMAT, "%s: node '%s' (Reshape): bad target dimension %lld", onnx_path(b), node_name(n), (long long)d[k - 1]);
        } else {
            known *= d[k - 1];
        }
    }
    if (t[0] == -1 && infer >= 0)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Reshape): the batch and another dimension are both -1", onnx_path(b), node_name(n));
    if (infer >= 0 && total >= 0) {
        if (total % known) FAIL(FV_ERR_SHAPE, "%s: node '%s' (Reshape): %lld values do not fit the target shape", onnx_path(b), node_name(n), (long long)total);
        d[infer] = total / known;
    } else if (infer < 0 && total >= 0 && total != known) {
        FAIL(FV_ERR_SHAPE, "%s: node '%s' (Reshape): %lld values per image, the target shape holds %lld", onnx_path(b), node_name(n), (long long)total, (long long)known);
    }
    return emit_reshape(b, n, x, r - 1, d, 0, out, err);
}

static int get_axes(const struct onnx_node *n, struct onnx_const **cst, int64_t *axes, int *na) {
    const struct onnx_attr *a = onnx_attr_get(n, "axes");
    *na = 0;
    if (a) {
        if (a->n_ints > ONNX_MAX_RANK) return 0;
        for (size_t i = 0; i < a->n_ints; i++) axes[(*na)++] = a->ints[i];
    } else if (n->n_in > 1 && *n->in[1]) {
        if (!cst[1] || cst[1]->count > ONNX_MAX_RANK) return 0;
        for (size_t i = 0; i < cst[1]->count; i++) axes[(*na)++] = (int64_t)cst[1]->v[i];
    }
    return 1;
}

static int op_squeeze(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                      struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    const struct onnx_val *x = rt[0];
    int64_t axes[ONNX_MAX_RANK], d[ONNX_MAX_RANK];
    int na, unsq = n->op[0] == 'U';
    if (!get_axes(n, cst, axes, &na)) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): axes is not a constant list", onnx_path(b), node_name(n), n->op);
    int r = x->rank + 1, outr = unsq ? r + na : r;
    unsigned mask = 0;
    for (int k = 0; k < na; k++) {
        int64_t a = axes[k] < 0 ? axes[k] + outr : axes[k];
        if (a < 1 || a >= outr)
            FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): axis %lld (featviz keeps the batch axis)", onnx_path(b), node_name(n), n->op, (long long)axes[k]);
        mask |= 1u << a;
    }
    int m = 0;
    if (unsq) {
        int src = 0;
        for (int a = 1; a < outr; a++) d[m++] = (mask >> a) & 1 ? 1 : x->dims[src++];
    } else {
        for (int a = 1; a < r; a++) {
            int drop = na ? (mask >> a) & 1 : x->dims[a - 1] == 1;
            if (drop && x->dims[a - 1] != 1 && x->dims[a - 1] >= 0)
                FAIL(FV_ERR_SHAPE, "%s: node '%s' (Squeeze): axis %d has size %lld", onnx_path(b), node_name(n), a, (long long)x->dims[a - 1]);
            if (!drop) d[m++] = x->dims[a - 1];
        }
    }
    return emit_reshape(b, n, x, m, d, 0, out, err);
}

static int op_transpose(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                        struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    (void)cst;
    const struct onnx_val *x = rt[0];
    const struct onnx_attr *pa = onnx_attr_get(n, "perm");
    int r = x->rank + 1, perm[FV_MAX_RANK + 1];
    if (!pa) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Transpose): no perm (reversing all axes moves the batch)", onnx_path(b), node_name(n));
    if ((int)pa->n_ints != r) FAIL(FV_ERR_FORMAT, "%s: node '%s' (Transpose): perm has %zu values for %d dimensions", onnx_path(b), node_name(n), pa->n_ints, r);
    unsigned seen = 0;
    for (int k = 0; k < r; k++) {
        int64_t p = pa->ints[k] < 0 ? pa->ints[k] + r : pa->ints[k];
        if (p < 0 || p >= r || (seen >> p) & 1) FAIL(FV_ERR_FORMAT, "%s: node '%s' (Transpose): perm is not a permutation", onnx_path(b), node_name(n));
        seen |= 1u << p;
        perm[k] = (int)p;
    }
    if (perm[0] != 0) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Transpose): moves the batch axis", onnx_path(b), node_name(n));
    int i = emit(b, n, x, 1, err);
    if (i < 0) return err->code;
    struct fv_layer *l = onnx_node_at(b, i);
    struct fv_node_spec *s = onnx_spec_at(b, i);
    l->ops = &fv_identity_ops;
    l->p.reshape.rank = x->rank;
    s->is_permute = 1;
    out->node = i;
    out->rank = x->rank;
    for (int k = 0; k < x->rank; k++) {
        s->permute_dims[k] = perm[k + 1] - 1;
        out->dims[k] = x->dims[perm[k + 1] - 1];
    }
    return FV_OK;
}

static int op_identity(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                       struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    (void)cst;
    int i = emit(b, n, rt[0], 1, err);
    if (i < 0) return err->code;
    onnx_node_at(b, i)->ops = &fv_identity_ops;
    *out = *rt[0];
    out->node = i;
    return FV_OK;
}

static int op_pad(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                  struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    const char *path = onnx_path(b);
    const struct onnx_val *x = rt[0];
    int rc = need_image(b, n, x, err);
    if (rc) return rc;
    if (strcmp(attr_s(n, "mode", "constant"), "constant"))
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Pad): mode '%s'; featviz pads with a constant", path, node_name(n), attr_s(n, "mode", ""));
    int64_t p[8];
    const struct onnx_attr *pa = onnx_attr_get(n, "pads");
    double value = attr_f(n, "value", 0.f);
    if (pa) {
        if (pa->n_ints != 8) FAIL(FV_ERR_FORMAT, "%s: node '%s' (Pad): pads has %zu values", path, node_name(n), pa->n_ints);
        for (int k = 0; k < 8; k++) p[k] = pa->ints[k];
    } else {
        if (n->n_in < 2 || !cst[1] || cst[1]->count != 8)
            FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Pad): pads is not a constant of 8 values", path, node_name(n));
        for (int k = 0; k < 8; k++) p[k] = (int64_t)cst[1]->v[k];
        if (n->n_in > 2 && *n->in[2]) {
            if (!cst[2] || cst[2]->count != 1) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Pad): the value is not a constant", path, node_name(n));
            value = cst[2]->v[0];
        }
    }
    if (value != 0)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Pad): pads with %g; featviz pads with zeros", path, node_name(n), value);
    if (p[0] || p[1] || p[4] || p[5])
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Pad): pads the batch or channel axis", path, node_name(n));
    int64_t t = p[2], l = p[3], bo = p[6], r = p[7];
    int grow = t >= 0 && l >= 0 && bo >= 0 && r >= 0, shrink = t <= 0 && l <= 0 && bo <= 0 && r <= 0;
    if ((!grow && !shrink) || t < -65536 || t > 65536 || l < -65536 || l > 65536 || bo < -65536 || bo > 65536 || r < -65536 || r > 65536)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Pad): pads that both grow and crop", path, node_name(n));
    int i = emit(b, n, x, 1, err);
    if (i < 0) return err->code;
    struct fv_layer *ly = onnx_node_at(b, i);
    ly->ops = grow ? &fv_zeropad_ops : &fv_crop_ops;
    ly->cf = 1;
    int sg = grow ? 1 : -1;
    ly->p.pad.top = (int)(sg * t), ly->p.pad.bottom = (int)(sg * bo), ly->p.pad.left = (int)(sg * l), ly->p.pad.right = (int)(sg * r);
    *out = *x;
    out->node = i;
    if (x->dims[1] >= 0) out->dims[1] = x->dims[1] + t + bo;
    if (x->dims[2] >= 0) out->dims[2] = x->dims[2] + l + r;
    return FV_OK;
}

static int op_resize(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                     struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    const char *path = onnx_path(b);
    const struct onnx_val *x = rt[0];
    int rc = need_image(b, n, x, err);
    if (rc) return rc;
    double sc[4] = {1, 1, 1, 1};
    const struct onnx_const *scales = NULL, *sizes = NULL;
    const struct onnx_attr *sa = onnx_attr_get(n, "scales");
    int upsample = !strcmp(n->op, "Upsample");
    if (upsample || onnx_opset(b) < 11) scales = n->n_in > 1 ? cst[1] : NULL;
    else {
        scales = n->n_in > 2 && *n->in[2] ? cst[2] : NULL;
        sizes = n->n_in > 3 && *n->in[3] ? cst[3] : NULL;
        if (scales && scales->count == 0) scales = NULL;
    }
    if (sa && sa->n_floats == 4)
        for (int k = 0; k < 4; k++) sc[k] = sa->floats[k];
    else if (scales && scales->count == 4)
        for (int k = 0; k < 4; k++) sc[k] = scales->v[k];
    else if (sizes && sizes->count == 4) {
        if (x->dims[1] < 1 || x->dims[2] < 1)
            FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): sizes need the input size, which the model does not declare", path, node_name(n), n->op);
        sc[1] = sizes->v[1] / (double)x->dims[0];
        sc[2] = sizes->v[2] / (double)x->dims[1];
        sc[3] = sizes->v[3] / (double)x->dims[2];
    } else {
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): scales or sizes are not constants of 4 values", path, node_name(n), n->op);
    }
    if (sc[0] != 1 || sc[1] != 1 || sc[2] != floor(sc[2]) || sc[3] != floor(sc[3]) || sc[2] < 1 || sc[3] < 1 || sc[2] > 4096 || sc[3] > 4096)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): scales (%g, %g, %g, %g); featviz enlarges H and W by whole factors",
             path, node_name(n), n->op, sc[0], sc[1], sc[2], sc[3]);
    const char *mode = attr_s(n, "mode", "nearest");
    const char *ct = attr_s(n, "coordinate_transformation_mode", onnx_opset(b) >= 11 && !upsample ? "half_pixel" : "asymmetric");
    int bilinear;
    if (!strcmp(mode, "nearest")) {
        if (!strcmp(ct, "align_corners"))
            FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): nearest with align_corners", path, node_name(n), n->op);
        bilinear = 0; /* for whole factors every other rule picks floor(dst / scale) */
    } else if (!strcmp(mode, "linear") || !strcmp(mode, "bilinear")) {
        if (!strcmp(ct, "half_pixel") || !strcmp(ct, "pytorch_half_pixel")) bilinear = 1;
        else if (!strcmp(ct, "asymmetric")) bilinear = 2;
        else FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): linear with coordinate_transformation_mode '%s'", path, node_name(n), n->op, ct);
    } else {
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): mode '%s' (featviz knows nearest and linear)", path, node_name(n), n->op, mode);
    }
    int i = emit(b, n, x, 1, err);
    if (i < 0) return err->code;
    struct fv_layer *l = onnx_node_at(b, i);
    l->ops = &fv_upsample_ops;
    l->cf = 1;
    l->p.up.fh = (int)sc[2], l->p.up.fw = (int)sc[3];
    l->p.up.bilinear = bilinear;
    *out = *x;
    out->node = i;
    if (x->dims[1] >= 0) out->dims[1] = x->dims[1] * (int64_t)sc[2];
    if (x->dims[2] >= 0) out->dims[2] = x->dims[2] * (int64_t)sc[3];
    return FV_OK;
}

static int op_reduce(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                     struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    const struct onnx_val *x = rt[0];
    int64_t axes[ONNX_MAX_RANK];
    int na;
    if (!get_axes(n, cst, axes, &na)) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): axes is not a constant list", onnx_path(b), node_name(n), n->op);
    unsigned mask = 0;
    for (int k = 0; k < na; k++) mask |= 1u << (axes[k] < 0 ? axes[k] + x->rank + 1 : axes[k]);
    if (x->rank != 3 || mask != 0xC)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): featviz reduces the H and W axes (2, 3) of an image", onnx_path(b), node_name(n), n->op);
    struct onnx_val pooled;
    int rc = global_pool(b, n, x, !strcmp(n->op, "ReduceMax"), &pooled, err);
    if (rc) return rc;
    if (attr_i(n, "keepdims", 1)) {
        *out = pooled;
        return FV_OK;
    }
    /* (C, 1, 1) -> (C): a reshape named after the node, the pooling before it */
    struct fv_layer *pl = onnx_node_at(b, pooled.node);
    char name[FV_NAME_MAX];
    snprintf(name, sizeof name, "%s", pl->name);
    snprintf(pl->name, sizeof pl->name, "%.100s/pool", name);
    int64_t d = x->dims[0];
    int i = onnx_add_node(b, name, n->op, &pooled, 1, err);
    if (i < 0) return err->code;
    struct fv_layer *l = onnx_node_at(b, i);
    l->ops = &fv_reshape_ops;
    l->p.reshape.rank = 1;
    l->p.reshape.d[0] = d < 0 ? -1 : (int)d;
    out->node = i;
    out->rank = 1;
    out->dims[0] = d;
    return FV_OK;
}

typedef int (*op_fn)(struct onnx_builder *, const struct onnx_node *, struct onnx_val **,
                     struct onnx_const **, struct onnx_val *, struct fv_error *);

static const struct {
    const char *op;
    op_fn fn;
} table[] = {
    {"Conv", op_conv},
    {"Gemm", op_gemm},
    {"MatMul", op_gemm},
    {"Add", op_arith},
    {"Sub", op_arith},
    {"Mul", op_arith},
    {"Div", op_arith},
    {"Sum", op_merge_n},
    {"Max", op_merge_n},
    {"Min", op_merge_n},
    {"Concat", op_merge_n},
    {"Relu", op_activation},
    {"LeakyRelu", op_activation},
    {"Sigmoid", op_activation},
    {"Tanh", op_activation},
    {"Softplus", op_activation},
    {"Softsign", op_activation},
    {"Elu", op_activation},
    {"HardSigmoid", op_activation},
    {"HardSwish", op_activation},
    {"Clip", op_activation},
    {"Softmax", op_softmax},
    {"MaxPool", op_pool},
    {"AveragePool", op_pool},
    {"GlobalAveragePool", op_global_pool},
    {"GlobalMaxPool", op_global_pool},
    {"BatchNormalization", op_batchnorm},
    {"Flatten", op_flatten},
    {"Reshape", op_reshape},
    {"Squeeze", op_squeeze},
    {"Unsqueeze", op_squeeze},
    {"Transpose", op_transpose},
    {"Dropout", op_identity},
    {"Identity", op_identity},
    {"Pad", op_pad},
    {"Resize", op_resize},
    {"Upsample", op_resize},
    {"ReduceMean", op_reduce},
    {"ReduceMax", op_reduce},
};

int onnx_op_known(const char *op) {
    for (size_t k = 0; k < sizeof table / sizeof table[0]; k++)
        if (!strcmp(table[k].op, op)) return 1;
    return 0;
}

int onnx_op_translate(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                      struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    const char *path = onnx_path(b);
    if (!strcmp(n->op, "LSTM") || !strcmp(n->op, "GRU") || !strcmp(n->op, "RNN"))
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' is a recurrent layer (%s), which featviz does not support (2-D image models only)", path, node_name(n), n->op);
    if (onnx_op_refused(n->op))
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' has operator %s, which featviz does not implement", path, node_name(n), n->op);
    for (size_t k = 0; k < sizeof table / sizeof table[0]; k++) {
        if (strcmp(table[k].op, n->op)) continue;
        if (!rt[0] && strcmp(n->op, "Add") && strcmp(n->op, "Sub") && strcmp(n->op, "Mul") && strcmp(n->op, "Div"))
            FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): its first input is a constant", path, node_name(n), n->op);
        return table[k].fn(b, n, rt, cst, out, err);
    }
    FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' has operator '%s', which featviz does not know", path, node_name(n), n->op);
}
