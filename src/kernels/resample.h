/* Separable resampling of (H, W, C) images, forward and backward: the one
 * implementation behind UpSampling2D (bilinear), image resizing for model
 * input, coarse-to-fine and the anti-aliased downsample of high-resolution
 * rendering.
 *
 * Each axis has a table: output index o reads source indices start[o] ..
 * start[o] + len[o] - 1 with weights w[o][0 .. len[o]-1]. An output pixel is
 *     y[oy][ox] = sum_j wy[oy][j] * (sum_i wx[ox][i] * x[sy + j][sx + i])
 * summed in that order (the horizontal sums first), with or without scratch:
 * the two give the same bits.
 *
 * Filters (scale = in / out):
 *   NEAREST     cv2 INTER_NEAREST: src = floor(o * in / out)
 *   LINEAR      half-pixel centres, no antialiasing: cv2 INTER_LINEAR, torch
 *               interpolate(bilinear, align_corners=False): src = (o + .5) scale - .5
 *               clamped below at 0, taps floor(src), min(floor(src) + 1, in - 1)
 *   LINEAR_TF   tf.image.resize(bilinear) as Keras UpSampling2D calls it: the same
 *               src, lower = max(floor(src), 0), upper = min(ceil(src), in - 1),
 *               weight of upper = src - floor(src)
 *   LINEAR_ASYM the older tf.image.resize_bilinear (half_pixel_centers=False):
 *               src = o * scale, upper = min(lower + 1, in - 1)
 *   AREA        box average with fractional coverage (cv2 INTER_AREA) when
 *               shrinking; LINEAR when growing
 *   CUBIC_PIL   PIL Image.resize(BICUBIC): a = -0.5, support 2 widened by the
 *               shrink factor (antialiasing), weights normalised
 *   LINEAR_AA   PIL Image.resize(BILINEAR) = torch interpolate(bilinear,
 *               antialias=True): the triangle filter, support 1 widened by the
 *               shrink factor, weights normalised. When growing it is LINEAR
 *               with the edge taps renormalised (PIL's rule).
 */
#ifndef FEATVIZ_KERNELS_RESAMPLE_H
#define FEATVIZ_KERNELS_RESAMPLE_H

#include <stddef.h>

#include "featviz/error.h"

enum fv_resample_filter {
    FV_RS_NEAREST = 0,
    FV_RS_LINEAR,
    FV_RS_LINEAR_TF,
    FV_RS_LINEAR_ASYM,
    FV_RS_AREA,
    FV_RS_CUBIC_PIL,
    FV_RS_LINEAR_AA
};

struct fv_resample_axis {
    int in, out, ksize; /* ksize: table stride (most taps of one output) */
    int *start, *len;   /* (out) */
    float *w;           /* (out, ksize) */
};

struct fv_resample {
    int h, w, oh, ow; /* (h, w) -> (oh, ow) */
    struct fv_resample_axis y, x;
    float *own; /* the tables' memory when fv_resample_init allocated it */
};

/* Tables for (h, w) -> (oh, ow). FV_ERR_USAGE for sizes < 1 or > 2^24,
 * FV_ERR_NOMEM. On error nothing needs freeing; fv_resample_free is safe on a
 * zeroed or freed struct. */
int fv_resample_init(struct fv_resample *r, int h, int w, int oh, int ow,
                     enum fv_resample_filter f, struct fv_error *err);
void fv_resample_free(struct fv_resample *r);

/* The same tables in caller memory (sizes already checked, 1 .. 2^24):
 * fv_resample_table_floats floats; nothing to free. For layers, whose scratch
 * is planned before any pass runs. */
size_t fv_resample_table_floats(int h, int w, int oh, int ow, enum fv_resample_filter f);
void fv_resample_init_at(struct fv_resample *r, int h, int w, int oh, int ow,
                         enum fv_resample_filter f, float *mem);

/* Scratch floats per image for the separable forward: h * ow * c. */
size_t fv_resample_ws_floats(const struct fv_resample *r, int c);

/* dst (n, oh, ow, c) from src (n, h, w, c). ws: NULL (each output pixel sums
 * its own taps: no scratch, parallel over rows), or n * fv_resample_ws_floats
 * floats (a horizontal pass, then a vertical one: fewer operations when the
 * filter is wide). Same result either way. */
void fv_resample_forward(const struct fv_resample *r, const float *src, float *dst, int c, int n,
                         float *ws);
/* dsrc += J^T ddst (the transpose: every output scatters into its taps).
 * ACCUMULATES. Parallel over images. */
void fv_resample_backward(const struct fv_resample *r, const float *ddst, float *dsrc, int c,
                          int n);

#endif
