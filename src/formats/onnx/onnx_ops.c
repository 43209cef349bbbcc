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

#include "formats/onnx/onnx_ops.h"
#include "layers/layers.h"

static const char *const refused[] = {
    "LSTM", "GRU", "RNN", "ConvTranspose", "Loop", "If", "Scan", "ConvInteger", "QLinearConv",
    "DeformConv", "NonMaxSuppression", "RoiAlign", "Attention", NULL};

int onnx_op_refused(const char *op) {
    for (int i = 0; refused[i]; i++)
        if (!strcmp(op, refused[i])) return 1;
    return 0;
}

int64_t onnx_attr_i(const struct onnx_node *n, const char *name, int64_t def) {
    const struct onnx_attr *a = onnx_attr_get(n, name);
    return a ? a->i : def;
}

float onnx_attr_f(const struct onnx_node *n, const char *name, float def) {
    const struct onnx_attr *a = onnx_attr_get(n, name);
    return a ? a->f : def;
}

const char *onnx_attr_s(const struct onnx_node *n, const char *name, const char *def) {
    const struct onnx_attr *a = onnx_attr_get(n, name);
    return a && a->s ? a->s : def;
}

/* A pair of ints attribute (kernel_shape, strides, dilations) with default. */
int onnx_attr_pair(const struct onnx_node *n, const char *name, int def, int out[2]) {
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

const char *onnx_node_name(const struct onnx_node *n) { return *n->name ? n->name : n->out[0]; }

int onnx_emit(struct onnx_builder *b, const struct onnx_node *n, const struct onnx_val *ins,
                int n_in, struct fv_error *err) {
    return onnx_add_node(b, onnx_node_name(n), n->op, ins, n_in, err);
}

float *onnx_to_float(const double *v, size_t n, struct fv_error *err) {
    float *f = malloc((n ? n : 1) * sizeof *f);
    if (!f) return fv_error_set(err, FV_ERR_NOMEM, "out of memory"), NULL;
    for (size_t i = 0; i < n; i++) f[i] = (float)v[i];
    return f;
}

typedef int (*op_fn)(struct onnx_builder *, const struct onnx_node *, struct onnx_val **,
                     struct onnx_const **, struct onnx_val *, struct fv_error *);

static const struct {
    const char *op;
    op_fn fn;
} table[] = {
    {"Conv", onnx_op_conv},
    {"Gemm", onnx_op_gemm},
    {"MatMul", onnx_op_gemm},
    {"Add", onnx_op_arith},
    {"Sub", onnx_op_arith},
    {"Mul", onnx_op_arith},
    {"Div", onnx_op_arith},
    {"Sum", onnx_op_merge_n},
    {"Max", onnx_op_merge_n},
    {"Min", onnx_op_merge_n},
    {"Concat", onnx_op_merge_n},
    {"Relu", onnx_op_activation},
    {"LeakyRelu", onnx_op_activation},
    {"Sigmoid", onnx_op_activation},
    {"Tanh", onnx_op_activation},
    {"Softplus", onnx_op_activation},
    {"Softsign", onnx_op_activation},
    {"Elu", onnx_op_activation},
    {"HardSigmoid", onnx_op_activation},
    {"HardSwish", onnx_op_activation},
    {"Clip", onnx_op_activation},
    {"Softmax", onnx_op_softmax},
    {"MaxPool", onnx_op_pool},
    {"AveragePool", onnx_op_pool},
    {"GlobalAveragePool", onnx_op_global_pool},
    {"GlobalMaxPool", onnx_op_global_pool},
    {"BatchNormalization", onnx_op_batchnorm},
    {"Flatten", onnx_op_flatten},
    {"Reshape", onnx_op_reshape},
    {"Squeeze", onnx_op_squeeze},
    {"Unsqueeze", onnx_op_squeeze},
    {"Transpose", onnx_op_transpose},
    {"Dropout", onnx_op_identity},
    {"Identity", onnx_op_identity},
    {"Pad", onnx_op_pad},
    {"Resize", onnx_op_resize},
    {"Upsample", onnx_op_resize},
    {"ReduceMean", onnx_op_reduce},
    {"ReduceMax", onnx_op_reduce},
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
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' is a recurrent layer (%s), which featviz does not support (2-D image models only)", path, onnx_node_name(n), n->op);
    if (onnx_op_refused(n->op))
        FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' has operator %s, which featviz does not implement", path, onnx_node_name(n), n->op);
    for (size_t k = 0; k < sizeof table / sizeof table[0]; k++) {
        if (strcmp(table[k].op, n->op)) continue;
        if (!rt[0] && strcmp(n->op, "Add") && strcmp(n->op, "Sub") && strcmp(n->op, "Mul") && strcmp(n->op, "Div"))
            FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' (%s): its first input is a constant", path, onnx_node_name(n), n->op);
        return table[k].fn(b, n, rt, cst, out, err);
    }
    FAIL(FV_ERR_UNSUPPORTED, "%s: node '%s' has operator '%s', which featviz does not know", path, onnx_node_name(n), n->op);
}
