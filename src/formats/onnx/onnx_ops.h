/* Shared by the ONNX operator files (onnx_ops*.c): attribute access, node
 * creation, and one function per operator family, all with the signature of
 * onnx_op_translate (src/formats/onnx/onnx.h). */
#ifndef FEATVIZ_FORMATS_ONNX_OPS_H
#define FEATVIZ_FORMATS_ONNX_OPS_H

#include "formats/onnx/onnx.h"

#define FAIL(code, ...) return fv_error_set(err, code, __VA_ARGS__)

int64_t onnx_attr_i(const struct onnx_node *n, const char *name, int64_t def);
float onnx_attr_f(const struct onnx_node *n, const char *name, float def);
const char *onnx_attr_s(const struct onnx_node *n, const char *name, const char *def);
/* A pair of ints in 1..65536 (kernel_shape, strides, dilations), def when absent; 0: bad. */
int onnx_attr_pair(const struct onnx_node *n, const char *name, int def, int out[2]);
/* The node's name, or its first output's when it has none. */
const char *onnx_node_name(const struct onnx_node *n);
/* A layer node for n reading ins (named after n). */
int onnx_emit(struct onnx_builder *b, const struct onnx_node *n, const struct onnx_val *ins,
              int n_in, struct fv_error *err);
float *onnx_to_float(const double *v, size_t n, struct fv_error *err);
/* Checks that x is an image (C, H, W); errors name the node. */
int onnx_need_image(struct onnx_builder *b, const struct onnx_node *n, const struct onnx_val *x,
                    struct fv_error *err);
/* GlobalAverage/MaxPool of x with keepdims (ReduceMean/ReduceMax use it too). */
int onnx_global_pool(struct onnx_builder *b, const struct onnx_node *n, const struct onnx_val *x,
                     int max, struct onnx_val *out, struct fv_error *err);

#define ONNX_OP(name)                                                                              \
    int name(struct onnx_builder *b, const struct onnx_node *n, struct onnx_val **rt,               \
             struct onnx_const **cst, struct onnx_val *out, struct fv_error *err)
/* onnx_ops_nn.c */
ONNX_OP(onnx_op_conv);
ONNX_OP(onnx_op_gemm);
ONNX_OP(onnx_op_batchnorm);
ONNX_OP(onnx_op_pool);
ONNX_OP(onnx_op_global_pool);
/* onnx_ops_elem.c */
ONNX_OP(onnx_op_activation);
ONNX_OP(onnx_op_softmax);
ONNX_OP(onnx_op_arith);
ONNX_OP(onnx_op_merge_n);
/* onnx_ops_shape.c */
ONNX_OP(onnx_op_flatten);
ONNX_OP(onnx_op_reshape);
ONNX_OP(onnx_op_squeeze);
ONNX_OP(onnx_op_transpose);
ONNX_OP(onnx_op_identity);
ONNX_OP(onnx_op_pad);
ONNX_OP(onnx_op_resize);
ONNX_OP(onnx_op_reduce);

#endif
