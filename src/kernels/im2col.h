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

/* ---- Winograd F(2x2, 3x3) for 3x3, stride 1, dilation 1 convolutions ----
 *
 * Output tiles of 2x2 pixels, TH = ceil(OH/2) by TW = ceil(OW/2) per image,
 * numbered t = (img*TH + ty)*TW + tx over the batch. Tile t reads the 4x4
 * input patch d at rows 2*ty - PT .., columns 2*tx - PL .. (zero outside):
 *     V = B^T d B,  U = G g G^T,  M = V (.) U summed over input channels,
 *     y = A^T M A   (Lavin & Gray 2016), with
 *     B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
 *     G   = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]
 *     A^T = [1 1 1 0; 0 1 -1 -1]
 * The 16 elements xi = 4*i + j of a transformed tile are 16 planes, so the
 * channel sum is 16 independent GEMMs M_xi (tiles, OC) = V_xi (tiles, C) .
 * U_xi (C, OC). */

/* v[xi*ldv + r*C + c] = V of tile t0 + r, channel c, for r < rows.
 * x: (n, H, W, C) per g; zero: C zeros. */
void fv_wino_input(float *v, size_t ldv, const float *x, const struct fv_conv_geom *g,
                   size_t t0, size_t rows, const float *zero);
/* u[(xi*C + c)*OC + o] = U of kernel k (3, 3, C, OC) (in double, rounded once). */
void fv_wino_kernel(float *u, const float *k, int c, int oc);
/* y[img][oy][ox][o] (= | +=) (A^T M A)[i][j] (+ bias[o]) for the pixels of tiles
 * t0 .. t0+rows-1 inside the output; m[xi*ldm + r*OC + o]. y: (n, OH, OW, OC).
 * relu (without accumulate): y = max(0, y) after the bias. */
void fv_wino_output(float *y, const float *m, size_t ldm, const struct fv_conv_geom *g, int oc,
                    size_t t0, size_t rows, const float *bias, int accumulate, int relu);

/* Integer division rounding towards -infinity / +infinity (b > 0). */
static inline long long fv_floor_div(long long a, long long b) {
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}
static inline long long fv_ceil_div(long long a, long long b) {
    return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

#endif
