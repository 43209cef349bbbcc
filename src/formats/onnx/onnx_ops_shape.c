/* ONNX operators that move values: Flatten, Reshape, Squeeze/Unsqueeze,
 * Transpose, Identity/Dropout, Pad, Resize/Upsample, ReduceMean/ReduceMax. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/onnx/onnx_ops.h"
#include "layers/layers.h"

/* ---- shapes ---- */

static int emit_reshape(struct onnx_builder *b, const struct onnx_node *n, const struct onnx_val *x,
                        int rank, const int64_t *dims, int flatten, struct onnx_val *out,
                        struct fv_error *err) {
    if (rank < 1 || rank > FV_MAX_RANK)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): result has %d dimensions besides the batch; featviz takes 1 to %d",
             onnx_path(b), onnx_node_name(n), n->op, rank, FV_MAX_RANK);
    int i = onnx_emit(b, n, x, 1, err);
    if (i < 0) return err->code;
    struct fv_layer *l = onnx_node_at(b, i);
    l->ops = &fv_reshape_ops;
    l->p.reshape.rank = rank;
    int unknown = 0;
    for (int k = 0; k < rank; k++) {
        l->p.reshape.d[k] = dims[k] < 0 ? -1 : (int)dims[k];
        unknown += dims[k] < 0;
    }
    if (unknown > 1) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): more than one dimension depends on the input size", onnx_path(b), onnx_node_name(n), n->op);
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

int onnx_op_flatten(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                      struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    (void)cst;
    if (onnx_attr_i(n, "axis", 1) != 1)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Flatten): axis %lld; featviz flattens everything after the batch (axis 1)",
             onnx_path(b), onnx_node_name(n), (long long)onnx_attr_i(n, "axis", 1));
    int64_t d = count_of(rt[0]);
    return emit_reshape(b, n, rt[0], 1, &d, 1, out, err);
}

int onnx_op_reshape(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                      struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    const struct onnx_val *x = rt[0];
    const struct onnx_const *s = n->n_in > 1 ? cst[1] : NULL;
    if (!s || s->count < 1 || s->count > FV_MAX_RANK + 1)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Reshape): the target shape is not a constant of 1 to %d values", onnx_path(b), onnx_node_name(n), FV_MAX_RANK + 1);
    int64_t t[FV_MAX_RANK + 1], d[FV_MAX_RANK];
    int r = (int)s->count;
    for (int k = 0; k < r; k++) t[k] = (int64_t)s->v[k];
    if (t[0] != 0 && t[0] != 1 && t[0] != -1)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Reshape): target shape starts with %lld; featviz keeps the batch axis first", onnx_path(b), onnx_node_name(n), (long long)t[0]);
    int64_t total = count_of(x), known = 1;
    int infer = -1;
    for (int k = 1; k < r; k++) {
        d[k - 1] = t[k] == 0 && k - 1 < x->rank ? x->dims[k - 1] : t[k];
        if (d[k - 1] == -1) {
            if (infer >= 0) FAIL(FV_ERR_FORMAT, "%s: node '%s' (Reshape): two -1 in the target shape", onnx_path(b), onnx_node_name(n));
            infer = k - 1;
        } else if (d[k - 1] < 1) {
            FAIL(FV_ERR_FORMAT, "%s: node '%s' (Reshape): bad target dimension %lld", onnx_path(b), onnx_node_name(n), (long long)d[k - 1]);
        } else {
            known *= d[k - 1];
        }
    }
    if (t[0] == -1 && infer >= 0)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Reshape): the batch and another dimension are both -1", onnx_path(b), onnx_node_name(n));
    if (infer >= 0 && total >= 0) {
        if (total % known) FAIL(FV_ERR_SHAPE, "%s: node '%s' (Reshape): %lld values do not fit the target shape", onnx_path(b), onnx_node_name(n), (long long)total);
        d[infer] = total / known;
    } else if (infer < 0 && total >= 0 && total != known) {
        FAIL(FV_ERR_SHAPE, "%s: node '%s' (Reshape): %lld values per image, the target shape holds %lld", onnx_path(b), onnx_node_name(n), (long long)total, (long long)known);
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

int onnx_op_squeeze(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                      struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    const struct onnx_val *x = rt[0];
    int64_t axes[ONNX_MAX_RANK], d[ONNX_MAX_RANK];
    int na, unsq = n->op[0] == 'U';
    if (!get_axes(n, cst, axes, &na)) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): axes is not a constant list", onnx_path(b), onnx_node_name(n), n->op);
    int r = x->rank + 1, outr = unsq ? r + na : r;
    unsigned mask = 0;
    for (int k = 0; k < na; k++) {
        int64_t a = axes[k] < 0 ? axes[k] + outr : axes[k];
        if (a < 1 || a >= outr)
            FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): axis %lld (featviz keeps the batch axis)", onnx_path(b), onnx_node_name(n), n->op, (long long)axes[k]);
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
                FAIL(FV_ERR_SHAPE, "%s: node '%s' (Squeeze): axis %d has size %lld", onnx_path(b), onnx_node_name(n), a, (long long)x->dims[a - 1]);
            if (!drop) d[m++] = x->dims[a - 1];
        }
    }
    return emit_reshape(b, n, x, m, d, 0, out, err);
}

int onnx_op_transpose(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                        struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    (void)cst;
    const struct onnx_val *x = rt[0];
    const struct onnx_attr *pa = onnx_attr_get(n, "perm");
    int r = x->rank + 1, perm[FV_MAX_RANK + 1];
    if (!pa) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Transpose): no perm (reversing all axes moves the batch)", onnx_path(b), onnx_node_name(n));
    if ((int)pa->n_ints != r) FAIL(FV_ERR_FORMAT, "%s: node '%s' (Transpose): perm has %zu values for %d dimensions", onnx_path(b), onnx_node_name(n), pa->n_ints, r);
    unsigned seen = 0;
    for (int k = 0; k < r; k++) {
        int64_t p = pa->ints[k] < 0 ? pa->ints[k] + r : pa->ints[k];
        if (p < 0 || p >= r || (seen >> p) & 1) FAIL(FV_ERR_FORMAT, "%s: node '%s' (Transpose): perm is not a permutation", onnx_path(b), onnx_node_name(n));
        seen |= 1u << p;
        perm[k] = (int)p;
    }
    if (perm[0] != 0) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Transpose): moves the batch axis", onnx_path(b), onnx_node_name(n));
    int i = onnx_emit(b, n, x, 1, err);
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

int onnx_op_identity(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                       struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    (void)cst;
    int i = onnx_emit(b, n, rt[0], 1, err);
    if (i < 0) return err->code;
    onnx_node_at(b, i)->ops = &fv_identity_ops;
    *out = *rt[0];
    out->node = i;
    return FV_OK;
}

int onnx_op_pad(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                  struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    const char *path = onnx_path(b);
    const struct onnx_val *x = rt[0];
    int rc = onnx_need_image(b, n, x, err);
    if (rc) return rc;
    if (strcmp(onnx_attr_s(n, "mode", "constant"), "constant"))
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Pad): mode '%s'; featviz pads with a constant", path, onnx_node_name(n), onnx_attr_s(n, "mode", ""));
    int64_t p[8];
    const struct onnx_attr *pa = onnx_attr_get(n, "pads");
    double value = onnx_attr_f(n, "value", 0.f);
    if (pa) {
        if (pa->n_ints != 8) FAIL(FV_ERR_FORMAT, "%s: node '%s' (Pad): pads has %zu values", path, onnx_node_name(n), pa->n_ints);
        for (int k = 0; k < 8; k++) p[k] = pa->ints[k];
    } else {
        if (n->n_in < 2 || !cst[1] || cst[1]->count != 8)
            FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Pad): pads is not a constant of 8 values", path, onnx_node_name(n));
        for (int k = 0; k < 8; k++) p[k] = (int64_t)cst[1]->v[k];
        if (n->n_in > 2 && *n->in[2]) {
            if (!cst[2] || cst[2]->count != 1) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Pad): the value is not a constant", path, onnx_node_name(n));
            value = cst[2]->v[0];
        }
    }
    if (value != 0)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Pad): pads with %g; featviz pads with zeros", path, onnx_node_name(n), value);
    if (p[0] || p[1] || p[4] || p[5])
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Pad): pads the batch or channel axis", path, onnx_node_name(n));
    int64_t t = p[2], l = p[3], bo = p[6], r = p[7];
    int grow = t >= 0 && l >= 0 && bo >= 0 && r >= 0, shrink = t <= 0 && l <= 0 && bo <= 0 && r <= 0;
    if ((!grow && !shrink) || t < -65536 || t > 65536 || l < -65536 || l > 65536 || bo < -65536 || bo > 65536 || r < -65536 || r > 65536)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (Pad): pads that both grow and crop", path, onnx_node_name(n));
    int i = onnx_emit(b, n, x, 1, err);
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

int onnx_op_resize(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                     struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    const char *path = onnx_path(b);
    const struct onnx_val *x = rt[0];
    int rc = onnx_need_image(b, n, x, err);
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
            FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): sizes need the input size, which the model does not declare", path, onnx_node_name(n), n->op);
        sc[1] = sizes->v[1] / (double)x->dims[0];
        sc[2] = sizes->v[2] / (double)x->dims[1];
        sc[3] = sizes->v[3] / (double)x->dims[2];
    } else {
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): scales or sizes are not constants of 4 values", path, onnx_node_name(n), n->op);
    }
    if (sc[0] != 1 || sc[1] != 1 || sc[2] != floor(sc[2]) || sc[3] != floor(sc[3]) || sc[2] < 1 || sc[3] < 1 || sc[2] > 4096 || sc[3] > 4096)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): scales (%g, %g, %g, %g); featviz enlarges H and W by whole factors",
             path, onnx_node_name(n), n->op, sc[0], sc[1], sc[2], sc[3]);
    const char *mode = onnx_attr_s(n, "mode", "nearest");
    const char *ct = onnx_attr_s(n, "coordinate_transformation_mode", onnx_opset(b) >= 11 && !upsample ? "half_pixel" : "asymmetric");
    int bilinear;
    if (!strcmp(mode, "nearest")) {
        if (!strcmp(ct, "align_corners"))
            FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): nearest with align_corners", path, onnx_node_name(n), n->op);
        bilinear = 0; /* for whole factors every other rule picks floor(dst / scale) */
    } else if (!strcmp(mode, "linear") || !strcmp(mode, "bilinear")) {
        if (!strcmp(ct, "half_pixel") || !strcmp(ct, "pytorch_half_pixel")) bilinear = 1;
        else if (!strcmp(ct, "asymmetric")) bilinear = 2;
        else FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): linear with coordinate_transformation_mode '%s'", path, onnx_node_name(n), n->op, ct);
    } else {
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): mode '%s' (featviz knows nearest and linear)", path, onnx_node_name(n), n->op, mode);
    }
    int i = onnx_emit(b, n, x, 1, err);
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

int onnx_op_reduce(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,
                     struct onnx_const **cst, struct onnx_val *out, struct fv_error *err) {
    const struct onnx_val *x = rt[0];
    int64_t axes[ONNX_MAX_RANK];
    int na;
    if (!get_axes(n, cst, axes, &na)) FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): axes is not a constant list", onnx_path(b), onnx_node_name(n), n->op);
    unsigned mask = 0;
    for (int k = 0; k < na; k++) mask |= 1u << (axes[k] < 0 ? axes[k] + x->rank + 1 : axes[k]);
    if (x->rank != 3 || mask != 0xC)
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): featviz reduces the H and W axes (2, 3) of an image", onnx_path(b), onnx_node_name(n), n->op);
    struct onnx_val pooled;
    int rc = onnx_global_pool(b, n, x, !strcmp(n->op, "ReduceMax"), &pooled, err);
    if (rc) return rc;
    if (onnx_attr_i(n, "keepdims", 1)) {
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

