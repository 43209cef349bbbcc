/* Internal interface between the Keras graph builder (keras_graph.c), the
 * per-class translation of Keras layers (keras_layers.c) and the layout
 * resolution (layout.c). */
#ifndef FEATVIZ_KERAS_H
#define FEATVIZ_KERAS_H

#include <jansson.h>

#include "featviz/formats.h"
#include "formats/keras/h5.h"
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

#endif
