/* How a format front end hands its graph over: nodes in topological order
 * with ops, parameters and weights in the internal layouts of
 * src/layers/layers.h, plus for each node the facts about its tensor order
 * that only the front end knows (fv_node_spec). fv_graph_finish then decides
 * every node's physical layout (inserting Permute nodes), resolves axes,
 * checks the shapes, and makes the struct fv_model every later stage runs. */
#ifndef FEATVIZ_GRAPH_BUILD_H
#define FEATVIZ_GRAPH_BUILD_H

#include "featviz/graph.h"

struct fv_node_spec {
    int is_input;            /* the model input */
    int axis;                /* for ops with ops->axis: the logical axis, counting the
                                batch axis as 0, negative from the end */
    int flatten;             /* Flatten: reads its input in the order l->cf says */
    int is_permute;          /* a logical transpose (Keras Permute) ... */
    int permute_dims[FV_MAX_RANK]; /* ... output dim i is input dim permute_dims[i] */
};

/* Decides every node's physical layout (kperm), inserts Permute nodes where a
 * layer needs another order, and resolves logical axes to physical ones.
 * nodes/specs are reallocated; *n grows. Errors name the file (path). */
int fv_resolve_layouts(struct fv_layer **nodes, struct fv_node_spec **specs, int *n, int *input,
                       int *output, const char *path, struct fv_error *err);

/* Makes m from the front end's graph. The caller has filled m->path,
 * m->format, m->name and the declared input (m->in_rank, m->in_dims); nodes
 * and specs (n of each, malloc'd) are taken over in every case, and on error
 * m is freed. */
int fv_graph_finish(struct fv_model *m, struct fv_layer *nodes, struct fv_node_spec *specs, int n,
                    int input, int output, struct fv_error *err);

#endif
