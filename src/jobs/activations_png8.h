/* activations.format = png8: a layer's maps of one image as one 8-bit gray PNG,
 * and the map geometry and normalisation the colour pictures share. */
#ifndef FEATVIZ_JOBS_ACTIVATIONS_PNG8_H
#define FEATVIZ_JOBS_ACTIVATIONS_PNG8_H

#include <stddef.h>

#include "featviz/graph.h"

enum { ACTS_NORM_MAP, ACTS_NORM_LAYER, ACTS_NORM_FIXED };

/* How a node's per-image output is drawn: rank 1 as bars, else H x W maps of C channels. */
void acts_map_dims(const struct fv_shape *s, int *H, int *W, int *C);
/* lo..hi of one map under Quiver's normalisation (activations.norm = map). */
void acts_quiver_range(const float *v, size_t n, float *lo, float *hi);
/* lo..hi of one image's layer output (norm = layer): min..max, lo at most 0. */
void acts_layer_range(const float *y, size_t n, float *lo, float *hi);

/* Writes node t's output y (one image, physical layout) as an 8-bit gray PNG
 * at path: channel c's H x W map is tile (c / cols, c % cols) of a grid of
 * cols = ceil(sqrt(C)) columns, no gaps, unused tiles 0; a rank-1 output is
 * one row of its units in Keras order. Pixel = round(255 t), t the value
 * normalised by norm (lo, hi: norm = fixed) and clipped to [0, 1]; tEXt
 * chunks featviz.layer, featviz.maps ("channels=C height=H width=W
 * columns=cols"), featviz.norm, featviz.lo and featviz.hi (one value, or one
 * per channel for norm = map) give it back: v = lo + pixel / 255 (hi - lo). */
int acts_png8_write(const struct fv_layer *l, const struct fv_shape *s, const float *y, int norm,
                    float lo, float hi, const char *path, struct fv_error *err);

#endif
