/* The format front ends fv_model_load chooses from (src/formats/load.c). Each
 * builds its graph and ends with fv_graph_finish (src/graph/build.h). */
#ifndef FEATVIZ_FRONT_ENDS_H
#define FEATVIZ_FRONT_ENDS_H

#include "featviz/formats.h"

/* Keras HDF5: model.save("x.h5") of every generation, save_weights() + --arch. */
int fv_keras_h5_load(struct fv_model *m, const char *path, const struct fv_load_opts *opts,
                     struct fv_error *err);

/* Keras 3 native: a .keras zip archive, or the folder it unzips to (folder = 1). */
int fv_keras3_load(struct fv_model *m, const char *path, int folder,
                   const struct fv_load_opts *opts, struct fv_error *err);

/* ONNX: a ModelProto (protobuf), weights inline or in files beside it. */
int fv_onnx_load(struct fv_model *m, const char *path, const struct fv_load_opts *opts,
                 struct fv_error *err);

#endif
