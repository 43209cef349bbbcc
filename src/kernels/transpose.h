/* Matrix transpose, for moving tensors between (H, W, C) and (C, H, W). */
#ifndef FEATVIZ_KERNELS_TRANSPOSE_H
#define FEATVIZ_KERNELS_TRANSPOSE_H

#include <stddef.h>

/* dst (cols, rows) = src (rows, cols) transposed. */
void fv_transpose(const float *src, float *dst, size_t rows, size_t cols);

#endif
