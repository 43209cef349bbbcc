/* Winograd F(4x4, 3x3) transforms for 3x3, stride 1, dilation 1 convolutions
 * (Lavin & Gray 2016), NHWC batches.
 *
 * Output tiles of 4x4 pixels, TH = ceil(OH/4) by TW = ceil(OW/4) per image,
 * numbered t = (img*TH + ty)*TW + tx over the batch. Tile t reads the 6x6
 * input patch d at rows 4*ty - PT .., columns 4*tx - PL .. (zero outside):
 *     V = B^T d B,  U = G g G^T,  M = V (.) U summed over input channels,
 *     y = A^T M A, with
 *     B^T = [4  0 -5  0 1 0;  0 -4 -4  1 1 0;  0 4 -4 -1 1 0;
 *            0 -2 -1  2 1 0;  0  2 -1 -2 1 0;  0 4  0 -5 0 1]
 *     G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6;
 *            1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
 *     A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
 * The 36 elements xi = 6*i + j of a transformed tile are 36 planes, so the
 * channel sum is 36 independent GEMMs M_xi (tiles, OC) = V_xi (tiles, C) .
 * U_xi (C, OC): 4x fewer multiplications than the direct convolution.
 * V and M keep each tile's 36 planes together, (tiles, 36, C): the
 * transforms then read and write one contiguous run per tile, and plane xi
 * is a matrix with row stride 36*C. */
#ifndef FEATVIZ_KERNELS_WINOGRAD_H
#define FEATVIZ_KERNELS_WINOGRAD_H

#include <stddef.h>

#include "kernels/im2col.h" /* struct fv_conv_geom */

#define FV_WINO_M 4                 /* output tile side */
#define FV_WINO_A 6                 /* input tile side: FV_WINO_M + 2 */
#define FV_WINO_PLANES 36           /* FV_WINO_A squared */

/* v[(r*36 + xi)*C + c] = V of tile t0 + r, channel c, for r < rows.
 * x: (n, H, W, C) per g; zero: C zeros. */
void fv_wino_input(float *v, const float *x, const struct fv_conv_geom *g, size_t t0, size_t rows,
                   const float *zero);
/* u[(xi*C + c)*OC + o] = U of kernel k (3, 3, C, OC) (in double, rounded once). */
void fv_wino_kernel(float *u, const float *k, int c, int oc);
/* y[img][oy][ox][o] (= | +=) (A^T M A)[i][j] (+ bias[o]) for the pixels of tiles
 * t0 .. t0+rows-1 inside the output; m[(r*36 + xi)*OC + o]. y: (n, OH, OW, OC).
 * relu (without accumulate): y = max(0, y) after the bias. gate (or NULL,
 * without accumulate; laid out as y): y = 0 where gate <= 0 (the derivative
 * of the ReLU whose output gate is). */
void fv_wino_output(float *y, const float *m, const struct fv_conv_geom *g, int oc, size_t t0,
                    size_t rows, const float *bias, int accumulate, int relu, const float *gate);

#endif
