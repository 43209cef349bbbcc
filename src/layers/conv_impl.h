/* Internals shared by conv2d.c, depthwise.c and separable.c (not a public API). */
#ifndef FEATVIZ_LAYERS_CONV_IMPL_H
#define FEATVIZ_LAYERS_CONV_IMPL_H

#include "featviz/layer.h"
#include "kernels/im2col.h"

/* Checks the spatial hyper-parameters of l->p.conv against the input shape
 * `in` (rank 3, (H, W, C)) and fills g for a batch of n images. Errors name
 * the layer. */
int fv_conv_geom_init(const struct fv_layer *l, const struct fv_shape *in, int n,
                      struct fv_conv_geom *g, struct fv_error *err);

/* ops->rows of Conv2D, DepthwiseConv2D and SeparableConv2D (conv2d.c). */
int fv_conv_rows(const struct fv_layer *l, const struct fv_io *io, struct fv_rows *r);

/* Depthwise kernel w[0] (KH, KW, C, M) against g->c input channels: sets
 * *mult = M (checked against p.conv.multiplier when that is > 0) and checks
 * the output size. Errors name the layer. (depthwise.c) */
int fv_depthwise_mult(const struct fv_layer *l, const struct fv_conv_geom *g, int *mult,
                      struct fv_error *err);

/* Depthwise convolution (depthwise.c), channel multiplier mult:
 *   y[img][oy][ox][c*mult + m] = bias[c*mult + m]
 *       + sum_{ky,kx} x[img][oy*SH-PT+ky*DH][ox*SW-PL+kx*DW][c] * k[ky][kx][c][m]
 * x: (n, H, W, C)   k: (KH, KW, C, mult)   bias: (C*mult) or NULL   y: (n, OH, OW, C*mult)
 * then y = max(0, y) when relu, capped at cap when cap > 0 (fv_bias_relu). */
void fv_depthwise_fwd(float *y, const float *x, const float *k, const float *bias,
                      const struct fv_conv_geom *g, int mult, int relu, float cap);
/* dx += J^T dy of the above (assign: dx = 0 + J^T dy, whatever dx held),
 * then with gate (assign only; laid out as dx): dx = 0 where not 0 < gate
 * (< cap when cap > 0), the derivative of the ReLU whose output gate is.
 * dx: (n, H, W, C)   dy: (n, OH, OW, C*mult) */
void fv_depthwise_bwd(float *dx, const float *dy, const float *k, const struct fv_conv_geom *g,
                      int mult, int assign, const float *gate, float cap);

/* Conv2D forward of channel pick[img] of each image only (conv_pick.c):
 *   y[img][oy][ox][f] = bias[f] + sum_{ky,kx,c} x[img][..][..][c0 + c] * w[ky][kx][c][f],
 *   f = pick[img], c0 the first input channel of f's group, then max(0, .) with relu
 *   (and min(cap, .) when cap > 0).
 * The other channels of y are not written. w: (KH, KW, cg, OC); ws: at least
 * KH*KW*cg floats per thread. */
void fv_conv_pick_fwd(float *y, const float *x, const float *w, const float *bias,
                      const struct fv_conv_geom *g, int oc, int cg, const int *pick, int relu,
                      float cap, float *ws, size_t ws_floats);

#endif
