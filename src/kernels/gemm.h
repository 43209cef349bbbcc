/* Single-precision matrix product for the conv and dense layers.
 *
 *   C[M,N] = (accumulate ? C : 0) + A[M,K] . op(B)
 *   op(B) = B       with B stored (K, N) row-major, leading dimension ldb
 *   op(B) = B^T     with B stored (N, K) row-major (transb = 1)
 *
 * All matrices are row-major with explicit leading dimensions, so column
 * slices (a group of channels) are plain pointer offsets.
 *
 * Determinism: every element of C is computed the same way wherever it lies
 * in the matrix and however the caller tiles M and N: K is walked in fixed
 * blocks of FV_GEMM_KC, each block summed in k order from 0 and then added to
 * C. Splitting rows or columns across threads therefore never changes a bit;
 * K is never split across threads. The SIMD micro-kernel (AVX-512, AVX2+FMA
 * or the portable SSE one) is chosen from the CPU at run time; results differ
 * between those paths in the last bits (fused multiply-adds), never between
 * thread counts.
 */
#ifndef FEATVIZ_KERNELS_GEMM_H
#define FEATVIZ_KERNELS_GEMM_H

#include <stddef.h>

#include "core/par.h"

#define FV_GEMM_KC 288 /* K block: fixed, it decides the summation order */

/* Parallel loops run on one thread below this many multiply-adds (or element
 * updates): starting threads costs more than such small layers, and on a busy
 * machine much more. Never changes results. */
#define FV_PAR_MIN_WORK 65536.0

/* Serial kernel: callers parallelize over disjoint blocks of C.
 * C must not overlap A or B. */
void fv_gemm(size_t m, int n, int k, const float *a, size_t lda, const float *b, size_t ldb,
             int transb, float *c, size_t ldc, int accumulate);

/* The product for `groups` problems sharing B, with a "segmented" A (an
 * implicit im2col: a convolution reads its patches straight from the image):
 *   for g < groups:  C_g[i][j] (=|+=) sum_kk A_g(i, kk) * B[kk][j]
 *   A_g(i, kk) = a[g*agroup + i*lda + s*segstride + t],  kk = s*seglen + t, t < seglen
 *   C_g[i][j]  = c[g*cgroup + i*ldc + j]
 * B is (k, n) row-major, leading dimension ldb. Every element is computed the
 * same way wherever it lies (fixed K blocks, each summed in k order), so
 * results do not depend on how callers split the work. Serial. */
void fv_gemm_seg(int groups, size_t m, int n, int k, const float *a, size_t agroup, size_t lda,
                 int seglen, size_t segstride, const float *b, size_t ldb, float *c, size_t cgroup,
                 size_t ldc, int accumulate);

/* Same product, split over fixed tiles of rows and columns of C with an OpenMP
 * parallel for (bit-identical to fv_gemm whatever the thread count). For
 * callers outside any parallel region. */
void fv_gemm_par(size_t m, int n, int k, const float *a, size_t lda, const float *b, size_t ldb,
                 int transb, float *c, size_t ldc, int accumulate);

/* y[r][j] += bias[j] for r < rows, j < n (y has row stride n). Serial. */
void fv_bias_add(float *y, const float *bias, size_t rows, int n);
/* The same with bias possibly NULL, then y = max(0, y) when relu, capped at
 * cap when cap > 0 (ReLU6: the values of fv_act_forward's). Serial. */
void fv_bias_relu(float *y, const float *bias, size_t rows, int n, int relu, float cap);
/* The same as fv_bias_add, parallel over rows; for callers outside any parallel region. */
void fv_bias_add_par(float *y, const float *bias, size_t rows, int n);

#endif
