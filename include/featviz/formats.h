/* Format front ends: each turns one kind of model file into the one graph
 * of featviz/graph.h. fv_model_load recognises the format from the file's
 * bytes (HDF5 signature, zip magic, a folder), not from its name. */
#ifndef FEATVIZ_FORMATS_H
#define FEATVIZ_FORMATS_H

#include "featviz/error.h"
#include "featviz/graph.h"

/* How to run a Lambda layer, declared by the user (Lambda holds Python bytecode). */
struct fv_lambda_decl {
    char name[FV_NAME_MAX];
    int identity;            /* else x*scale+offset */
    float scale, offset;
};

struct fv_load_opts {
    const char *arch_json;   /* model.to_json() file for weights-only .h5, or NULL */
    const struct fv_lambda_decl *lambdas;
    int n_lambdas;
    int flip_kernels;        /* -1 auto (Theano), 0 never, 1 always */
    size_t max_bytes;        /* weights and attributes read at most (0: FV_MODEL_MAX_BYTES) */
};

/* Limits checked while loading, before allocating (model.max_model_mb sets max_bytes). */
#define FV_MODEL_MAX_BYTES ((size_t)2048 << 20)
#define FV_MODEL_MAX_LAYERS 100000
#define FV_MODEL_MAX_DEPTH 32    /* models nested in models */

int fv_model_load(struct fv_model *m, const char *path, const struct fv_load_opts *opts,
                  struct fv_error *err);
/* A Keras .h5 from a file image in memory (HDF5's core driver; the fuzz
 * target fuzz_h5); name stands for the file in messages. */
int fv_model_load_image(struct fv_model *m, const void *image, size_t len, const char *name,
                        const struct fv_load_opts *opts, struct fv_error *err);

#endif
