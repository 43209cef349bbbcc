/* ONNX operators with weights or windows: Conv, Gemm/MatMul, BatchNormalization, pooling. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/onnx/onnx_ops.h"
#include "layers/layers.h"

/* ---- convolution ---- */

struct pads {
    int t, b, l, r;
};

/* pads / auto_pad of Conv and pooling, for an input of h x w (-1: unknown). */
static int read_pads(struct onnx_builder *b, const struct onnx_node *n, const int k[2],
                     const int s[2], const int d[2], int64_t h, int64_t w, struct pads *p,
                     struct fv_error *err) {
    memset(p, 0, sizeof *p);
    const char *ap = onnx_attr_s(n, "auto_pad", "NOTSET");
    if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
        int64_t in[2] = {h, w};
        int tot[2];
        for (int i = 0; i < 2; i++) {
            if (in[i] < 1)
                FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): auto_pad %s needs the input size, which the model does not declare", onnx_path(b), onnx_node_name(n), n->op, ap);
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
        FAIL(FV_ERR_FORMAT, "%s: node '%s' (%s): auto_pad '%s'", onnx_path(b), onnx_node_name(n), n->op, ap);
    const struct onnx_attr *a = onnx_attr_get(n, "pads");
    if (a && strcmp(ap, "VALID")) {
        if (a->n_ints != 4) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): pads has %zu values; featviz takes 2-D (4 values)", onnx_path(b), onnx_node_name(n), n->op, a->n_ints);
        for (int i = 0; i < 4; i++)
            if (a->ints[i] < 0 || a->ints[i] > 65536) FAIL(FV_ERR_FORMAT, "%s: node '%s' (%s): pads out of range", onnx_path(b), onnx_node_name(n), n->op);
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

int onnx_need_image(struct onnx_builder *b, const struct onnx_node *n, const struct onnx_val *x,
                      struct fv_error *err) {
    if (x->rank != 3)
        FAIL(FV_ERR_SHAPE, "%s: node '%s' (%s) needs an (N, C, H, W) input, its input has %d dimensions",
             onnx_path(b), onnx_node_name(n), n->op, x->rank + 1);
    return FV_OK;
}

int onnx_op_conv(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                   struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    const char *path = onnx_path(b);
    const struct onnx_val *x = rt[0];
    int rc = onnx_need_image(b, n, x, err);
    if (rc) return rc;
    const struct onnx_const *W = n->n_in > 1 ? cst[1] : NULL, *B = n->n_in > 2 ? cst[2] : NULL;
    if (!W) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Conv): the kernel is not a constant", path, onnx_node_name(n));
    if (n->n_in > 2 && *n->in[2] && !B) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Conv): the bias is not a constant", path, onnx_node_name(n));
    if (W->rank != 4) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Conv): kernel of rank %d; featviz runs 2-D convolutions", path, onnx_node_name(n), W->rank);
    int64_t OC = W->dims[0], CG = W->dims[1], KH = W->dims[2], KW = W->dims[3];
    int64_t G = onnx_attr_i(n, "group", 1), C = x->dims[0];
    if (G < 1 || OC < 1 || CG < 1 || KH < 1 || KW < 1 || KH > 4096 || KW > 4096 || OC > 1000000 || OC % G ||
        (C > 0 && C != CG * G))
        FAIL(FV_ERR_SHAPE, "%s: node '%s' (Conv): kernel (%lld, %lld, %lld, %lld) with group %lld does not fit an input of %lld channels",
             path, onnx_node_name(n), (long long)OC, (long long)CG, (long long)KH, (long long)KW, (long long)G, (long long)C);
    C = CG * G;
    int k[2] = {(int)KH, (int)KW}, s[2], d[2], ks[2];
    if (!onnx_attr_pair(n, "strides", 1, s) || !onnx_attr_pair(n, "dilations", 1, d) || !onnx_attr_pair(n, "kernel_shape", (int)KH, ks) ||
        ks[0] != KH || (onnx_attr_get(n, "kernel_shape") && ks[1] != KW))
        FAIL(FV_ERR_FORMAT, "%s: node '%s' (Conv): bad kernel_shape, strides or dilations", path, onnx_node_name(n));
    struct pads p;
    if ((rc = read_pads(b, n, k, s, d, x->dims[1], x->dims[2], &p, err))) return rc;
    if (B && (B->count != (size_t)OC))
        FAIL(FV_ERR_SHAPE, "%s: node '%s' (Conv): bias has %zu values for %lld filters", path, onnx_node_name(n), B->count, (long long)OC);
    int i = onnx_emit(b, n, x, 1, err);
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
        float *bf = onnx_to_float(B->v, B->count, err);
        if (!bf) return err->code;
        onnx_node_weight(b, i, bf, B->count);
    }
    out->node = i;
    out->rank = 3;
    out->dims[0] = OC;
    out->dims[1] = out_size(x->dims[1], k[0], s[0], d[0], p.t, p.b, 0);
    out->dims[2] = out_size(x->dims[2], k[1], s[1], d[1], p.l, p.r, 0);
    if (out->dims[1] == 0 || out->dims[2] == 0)
        FAIL(FV_ERR_SHAPE, "%s: node '%s' (Conv): input %lldx%lld is too small for its kernel", path, onnx_node_name(n), (long long)x->dims[1], (long long)x->dims[2]);
    return FV_OK;
}

/* ---- dense ---- */

int onnx_op_gemm(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                   struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    const char *path = onnx_path(b);
    const struct onnx_val *x = rt[0];
    int gemm = !strcmp(n->op, "Gemm");
    const struct onnx_const *B = n->n_in > 1 ? cst[1] : NULL, *C = gemm && n->n_in > 2 ? cst[2] : NULL;
    if (!B || B->rank != 2)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): the second input must be a constant matrix (featviz multiplies by weights)", path, onnx_node_name(n), n->op);
    if (gemm && n->n_in > 2 && *n->in[2] && !C) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Gemm): C is not a constant", path, onnx_node_name(n));
    if (gemm && (onnx_attr_i(n, "transA", 0) || x->rank != 1))
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Gemm): featviz multiplies (N, K) inputs, not transposed ones", path, onnx_node_name(n));
    int tb = gemm && onnx_attr_i(n, "transB", 0);
    float alpha = gemm ? onnx_attr_f(n, "alpha", 1.f) : 1.f, beta = gemm ? onnx_attr_f(n, "beta", 1.f) : 1.f;
    int64_t K = tb ? B->dims[1] : B->dims[0], N = tb ? B->dims[0] : B->dims[1];
    if (x->rank < 1 || (x->dims[x->rank - 1] >= 0 && x->dims[x->rank - 1] != K))
        FAIL(FV_ERR_SHAPE, "%s: node '%s' (%s): input has %lld features, the weights take %lld", path, onnx_node_name(n), n->op,
             (long long)(x->rank ? x->dims[x->rank - 1] : 0), (long long)K);
    if (C && C->count != 1 && C->count != (size_t)N)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Gemm): C of %zu values for %lld outputs", path, onnx_node_name(n), C->count, (long long)N);
    int i = onnx_emit(b, n, x, 1, err);
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

int onnx_op_batchnorm(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                        struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    const char *path = onnx_path(b);
    const struct onnx_val *x = rt[0];
    if (n->n_in < 5) FAIL(FV_ERR_FORMAT, "%s: node '%s' (BatchNormalization) has %d inputs, needs 5", path, onnx_node_name(n), n->n_in);
    int64_t C = x->dims[0];
    for (int k = 1; k < 5; k++)
        if (!cst[k] || (C >= 0 && cst[k]->count != (size_t)C))
            FAIL(FV_ERR_SHAPE, "%s: node '%s' (BatchNormalization): input %d is not a constant of %lld values", path, onnx_node_name(n), k, (long long)C);
    size_t len = cst[1]->count;
    float eps = onnx_attr_f(n, "epsilon", 1e-5f);
    float *scale = malloc(len * sizeof *scale), *shift = malloc(len * sizeof *shift);
    if (!scale || !shift) {
        free(scale), free(shift);
        FAIL(FV_ERR_NOMEM, "out of memory");
    }
    for (size_t k = 0; k < len; k++) {
        double v = cst[4]->v[k] + (double)eps;
        if (!(v > 0)) {
            free(scale), free(shift);
            FAIL(FV_ERR_FORMAT, "%s: node '%s' (BatchNormalization): variance + epsilon is not positive", path, onnx_node_name(n));
        }
        double sc = cst[1]->v[k] / sqrt(v);
        scale[k] = (float)sc;
        shift[k] = (float)(cst[2]->v[k] - cst[3]->v[k] * sc);
    }
    int i = onnx_emit(b, n, x, 1, err);
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

/* ---- pooling ---- */

int onnx_op_pool(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                   struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    (void)cst;
    const struct onnx_val *x = rt[0];
    int rc = onnx_need_image(b, n, x, err);
    if (rc) return rc;
    int k[2], s[2], d[2];
    const struct onnx_attr *ka = onnx_attr_get(n, "kernel_shape");
    if (!ka || !onnx_attr_pair(n, "kernel_shape", 1, k) || !onnx_attr_pair(n, "strides", 1, s) || !onnx_attr_pair(n, "dilations", 1, d))
        FAIL(FV_ERR_FORMAT, "%s: node '%s' (%s): bad kernel_shape, strides or dilations", onnx_path(b), onnx_node_name(n), n->op);
    if (d[0] != 1 || d[1] != 1) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): dilated pooling", onnx_path(b), onnx_node_name(n), n->op);
    struct pads p;
    if ((rc = read_pads(b, n, k, s, d, x->dims[1], x->dims[2], &p, err))) return rc;
    int i = onnx_emit(b, n, x, 1, err);
    if (i < 0) return err->code;
    struct fv_layer *l = onnx_node_at(b, i);
    struct fv_pool_params *pp = &l->p.pool;
    l->ops = !strcmp(n->op, "MaxPool") ? &fv_maxpool_ops : &fv_avgpool_ops;
    l->cf = 1;
    pp->ph = k[0], pp->pw = k[1], pp->sh = s[0], pp->sw = s[1];
    pp->pad_explicit = 1;
    pp->pad_t = p.t, pp->pad_b = p.b, pp->pad_l = p.l, pp->pad_r = p.r;
    pp->ceil_mode = (int)onnx_attr_i(n, "ceil_mode", 0);
    pp->count_include_pad = (int)onnx_attr_i(n, "count_include_pad", 0);
    *out = *x;
    out->node = i;
    out->dims[1] = out_size(x->dims[1], k[0], s[0], 1, p.t, p.b, pp->ceil_mode);
    out->dims[2] = out_size(x->dims[2], k[1], s[1], 1, p.l, p.r, pp->ceil_mode);
    if (out->dims[1] == 0 || out->dims[2] == 0)
        FAIL(FV_ERR_SHAPE, "%s: node '%s' (%s): input too small for the window", onnx_path(b), onnx_node_name(n), n->op);
    return FV_OK;
}

int onnx_global_pool(struct onnx_builder *b, const struct onnx_node *n, const struct onnx_val *x,
                       int max, struct onnx_val *out, struct fv_error *err) {
    int rc = onnx_need_image(b, n, x, err);
    if (rc) return rc;
    int i = onnx_emit(b, n, x, 1, err);
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

int onnx_op_global_pool(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                          struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    (void)cst;
    return onnx_global_pool(b, n, rt[0], !strcmp(n->op, "GlobalMaxPool"), out, err);
}

