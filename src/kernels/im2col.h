/* Patch extraction for convolutions on NHWC tensors, and the geometry they share.
 *
 * A batch of n images (H, W, C) is convolved into (OH, OW, ...). The output
 * pixels of the whole batch are numbered m = (img*OH + oy)*OW + ox; row m of
 * the patch matrix holds the input window of that pixel, in the kernel's own
 * (ky, kx, c) order, so that it multiplies a (KH, KW, C, OC) kernel seen as
 * a (KH*KW*C, OC) matrix:
 *     col[m][(ky*KW + kx)*cg + c] = x[img][oy*SH - PT + ky*DH][ox*SW - PL + kx*DW][c0 + c]
 * (0 where the window hangs over the padding).
 */
#ifndef FEATVIZ_KERNELS_IM2COL_H
#define FEATVIZ_KERNELS_IM2COL_H

#include <stddef.h>

struct fv_conv_geom {
    int n;                      /* images in the batch */
    int h, w, c;                /* input (H, W, C) */
    int oh, ow;                 /* output spatial size */
    int kh, kw, sh, sw, dh, dw; /* kernel, strides, dilation */
    int pt, pl;                 /* padding before the first row / column (TF: the smaller half) */
};

/* Keras/TensorFlow output size and leading pad along one axis of size `in`.
 * 'valid': out = floor((in - d*(k-1) - 1)/s) + 1, pad 0;
 * 'same':  out = ceil(in/s), total = max((out-1)*s + d*(k-1) + 1 - in, 0),
 *          pad before = total/2 (the extra pixel goes after).
 * Returns out, which is < 1 when the input is too small. Inputs must be >= 1. */
long long fv_conv_out_size(long long in, long long k, long long s, long long d, int same,
                           int *pad_before);

/* col: (rows, KH*KW*cg) for output pixels m0 .. m0+rows-1, channels c0 .. c0+cg-1.
 * x: (n, H, W, C). */
void fv_im2col(float *col, const float *x, const struct fv_conv_geom *g, size_t m0, size_t rows,
               int c0, int cg);

/* Integer division rounding towards -infinity / +infinity (b > 0). */
static inline long long fv_floor_div(long long a, long long b) {
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}
static inline long long fv_ceil_div(long long a, long long b) {
    return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

#endif
