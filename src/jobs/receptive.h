/* Receptive fields: which input rows a layer's output rows read. */
#ifndef FEATVIZ_JOBS_RECEPTIVE_H
#define FEATVIZ_JOBS_RECEPTIVE_H

#include "featviz/graph.h"

/* Input rows [*lo, *hi] (clipped to the image) that rows a..b of node t read,
 * following every path back to the input through the layers' ops->rows; a
 * layer that mixes all rows (Flatten, Dense, global pooling) gives the whole
 * image. For columns, pass a plan of the image transposed (w x h): the layers'
 * row geometry then describes the columns (square kernels, strides, pads). */
int receptive_rows(const struct fv_plan *p, int t, int a, int b, int *lo, int *hi,
                   struct fv_error *err);

#endif
