/* Internal interface between the Keras graph builder (keras_graph.c), the
 * per-class translation of Keras layers (keras_layers.c) and the layout
 * resolution (layout.c). */
#ifndef FEATVIZ_KERAS_H
#define FEATVIZ_KERAS_H

#include <jansson.h>

#include "featviz/formats.h"
#include "formats/keras/h5.h"
#include "core/textfile.h"
#include "graph/build.h"

/* What the file tells about how to read its layers. */
struct fv_kctx {
    const char *path;        /* for messages */
    int keras_major;         /* 1, 2, 3 (0: unknown, treated as 2) */
    int theano;              /* backend says theano */
    int flip_kernels;        /* -1 auto, 0, 1 */
    int legacy_resize;       /* bilinear resizing without half-pixel centres
                                (standalone Keras 2.x, tf.keras of TF 1.x) */
    const struct fv_load_opts *opts;
};

/* How a Keras layer stores its weights, filled by fv_keras_make_layer. */
struct fv_kspec {
    int n_trainable;         /* weights in weight_names order: trainable first ... */
    int n_fixed;             /* ... then non-trainable (BN moving statistics) */
    struct fv_node_spec node;/* InputLayer, Keras axis (BN, Concatenate), Flatten, Permute */
    int th_kernel;           /* Keras 1 dim_ordering th: kernel stored (out,in,kh,kw) */
    int flip;                /* rotate conv kernels by 180 degrees (Theano) */
    int bn_scale, bn_center; /* BatchNormalization gamma/beta present */
    float bn_epsilon;
    int norm, norm_invert;   /* Normalization (weights: mean, variance, count) */
    int min_inputs, max_inputs;
};

/* Translates one Keras layer config (the "config" object) of class cls into l
 * (ops, parameters, fused activation, data_format) and spec. Errors name the
 * layer, its class and the file. */
int fv_keras_make_layer(const struct fv_kctx *ctx, const char *cls, const json_t *cfg,
                        struct fv_layer *l, struct fv_kspec *spec, struct fv_error *err);

/* Converts the layer's weights (n = spec->n_trainable + spec->n_fixed, file
 * order) to the internal layouts of src/layers/layers.h. The float arrays are
 * taken over (set to NULL in w) and owned by the model afterwards. */
int fv_keras_set_weights(const struct fv_kctx *ctx, struct fv_layer *l,
                         const struct fv_kspec *spec, struct fv_h5_weight *w, int n,
                         struct fv_error *err);

/* Where a Keras model comes from: the config JSON and the open weights file. */
struct fv_keras_source {
    const char *path;         /* the file or folder the user named (messages) */
    const char *format;       /* fv_model.format */
    const char *config;       /* model config JSON text */
    const char *config_file;  /* file the JSON came from when not `path` (--arch), or NULL */
    const char *config_what;  /* "model_config", "config.json", ... (messages) */
    const char *version;      /* keras_version, or NULL (then read from the JSON) */
    const char *backend;
    struct fv_h5 *h5;         /* the weights */
    int keras3_store;         /* weights as Keras 3 saves them (layers/<key>/vars/<i>) ... */
    const char *wroot;        /* ... or legacy: under this group ("model_weights" or "") */
};

#define FV_KERAS_MAX_JSON ((size_t)64 << 20)

/* Config -> graph -> weights -> fv_graph_finish (keras_graph.c). */
int fv_keras_build(struct fv_model *m, const struct fv_keras_source *src,
                   const struct fv_load_opts *opts, struct fv_error *err);

/* Keras 3 weights (keras3_weights.c): each node with weights reads
 * <store[i]>/vars/0, 1, ... (trainable first, then non-trainable). */
int fv_keras3_weights(const struct fv_kctx *ctx, struct fv_h5 *h5, struct fv_layer *nodes,
                      const struct fv_kspec *specs, char *const *store, int n,
                      struct fv_error *err);

#endif
