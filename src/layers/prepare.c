/* A layer's cache outside a plan (plans share theirs through the model). */
#include <stdlib.h>

#include "featviz/layer.h"

int fv_layer_prepare(const struct fv_layer *l, struct fv_io *io) {
    io->cache = NULL;
    if (!io->cache_floats) return FV_OK;
    if (!(io->cache = malloc(io->cache_floats * sizeof(float)))) return FV_ERR_NOMEM;
    l->ops->prepare(l, io);
    return FV_OK;
}
