/* The layer types featviz computes. Each lives in one file with its shape,
 * forward and backward side by side; the format front ends (src/formats/, e.g. keras/keras_layers.c)
 * maps Keras classes onto them and converts weights to the layouts below.
 *
 * Weight layouts (fv_layer.w[i]):
 *   conv2d     w[0] kernel (KH,KW,C,OC)   w[1] bias (OC) if use_bias
 *   depthwise  w[0] kernel (KH,KW,C,M)    w[1] bias (C*M) if use_bias; out channel c*M+m
 *   separable  w[0] depthwise (KH,KW,C,M) w[1] pointwise (C*M,OC) w[2] bias (OC) if use_bias
 *   dense      w[0] kernel (IN,OUT)       w[1] bias (OUT) if use_bias; acts on the last physical axis
 *   batchnorm  w[0] scale (D) w[1] shift (D): y = x*scale + shift along physical axis p.bn.axis
 *   prelu      w[0] alpha, shaped like the input with 1 on shared axes (p.reshape holds that shape)
 */
#ifndef FEATVIZ_LAYERS_H
#define FEATVIZ_LAYERS_H

#include "featviz/layer.h"

extern const struct fv_layer_ops fv_conv2d_ops;
extern const struct fv_layer_ops fv_depthwise_ops;
extern const struct fv_layer_ops fv_separable_ops;
extern const struct fv_layer_ops fv_dense_ops;

extern const struct fv_layer_ops fv_maxpool_ops;
extern const struct fv_layer_ops fv_avgpool_ops;
extern const struct fv_layer_ops fv_gmaxpool_ops;
extern const struct fv_layer_ops fv_gavgpool_ops;

extern const struct fv_layer_ops fv_batchnorm_ops;
extern const struct fv_layer_ops fv_zeropad_ops;
extern const struct fv_layer_ops fv_crop_ops;
extern const struct fv_layer_ops fv_upsample_ops;
extern const struct fv_layer_ops fv_resize_ops;    /* p.resize: to a fixed size (Keras Resizing) */

enum fv_merge_op { FV_MERGE_ADD, FV_MERGE_SUB, FV_MERGE_MUL, FV_MERGE_AVG, FV_MERGE_MAX, FV_MERGE_MIN };
extern const struct fv_layer_ops fv_merge_ops;   /* p.merge.op, n_in >= 2 (SUB: exactly 2) */
extern const struct fv_layer_ops fv_concat_ops;  /* p.merge.axis: PHYSICAL axis to join on */

extern const struct fv_layer_ops fv_reshape_ops; /* p.reshape: target shape (-1 infers) */
extern const struct fv_layer_ops fv_permute_ops; /* p.permute: out dim i = in dim perm[i] */
extern const struct fv_layer_ops fv_identity_ops;/* Dropout & co, and standalone activations */
extern const struct fv_layer_ops fv_prelu_ops;
extern const struct fv_layer_ops fv_affine_ops;  /* p.affine: x*scale+offset (Lambda replacement, Rescaling) */

/* ops->rows of layers that work position by position on (H, W, C) images:
 * row r of the output reads row r of each input. (rows.c) */
int fv_rows_elementwise(const struct fv_layer *l, const struct fv_io *io, struct fv_rows *r);

#endif
