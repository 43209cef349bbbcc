/* Model inputs from the command line or a config: image files, directories
 * (every image in them, sorted by name) and .npy arrays, read in batches so
 * that any number of images fits in bounded memory.
 *   - images and uint8 .npy arrays (N,H,W,C or H,W,C, values 0..255) go through
 *     the declared preprocessing;
 *   - float .npy arrays are ready model input in the model's own (Keras) input
 *     layout, with or without a batch axis: no preprocessing. */
#ifndef FEATVIZ_INPUTS_H
#define FEATVIZ_INPUTS_H

#include <stddef.h>

#include "featviz/image.h"
#include "featviz/graph.h"
#include "featviz/preprocess.h"

struct fv_source {
    char *path;
    char stem[256];        /* file name without directory and extension */
    int npy;               /* 1: .npy file */
    int raw;               /* float .npy: model input as is */
    int batched;           /* .npy with a leading batch axis */
    size_t first, count;   /* item range in the whole list */
    struct fv_npy_reader *reader;
    struct fv_array header;
};

struct fv_inputs {
    const struct fv_model *m;
    const struct fv_preproc *pp;
    int h, w, c;           /* physical model input (H, W, C) */
    int n_src;
    struct fv_source *src;
    size_t total;          /* items (images) in all sources */
    float *scratch;        /* one item in Keras order */
};

/* list: comma-separated paths (or separate argv entries joined by commas).
 * h, w: the planned input size (the model's declared size, or when it is
 * None, the first input's size when h = w = 0). */
int fv_inputs_open(struct fv_inputs *in, const char *list, const struct fv_model *m,
                   const struct fv_preproc *pp, int h, int w, struct fv_error *err);
/* Reads items [first, first+count) into out (count, H, W, C) physical order. */
int fv_inputs_read(struct fv_inputs *in, size_t first, size_t count, float *out,
                   struct fv_error *err);
/* Source of an item, and its index inside that source. */
const struct fv_source *fv_inputs_source(const struct fv_inputs *in, size_t item, size_t *index);
void fv_inputs_close(struct fv_inputs *in);

#endif
