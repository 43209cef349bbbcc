/* The end of every front end: layouts, shape checks, the struct fv_model. */
#include <stdlib.h>
#include <string.h>

#include "graph/build.h"

int fv_graph_finish(struct fv_model *m, struct fv_layer *nodes, struct fv_node_spec *specs, int n,
                    int input, int output, struct fv_error *err) {
    int rc = fv_resolve_layouts(&nodes, &specs, &n, &input, &output, m->path, err);
    free(specs);
    if (rc) {
        for (int i = 0; i < n; i++)
            for (int k = 0; k < nodes[i].n_w; k++) free(nodes[i].w[k]);
        free(nodes);
        fv_model_free(m);
        return rc;
    }
    m->layers = nodes;
    m->n_layers = n;
    m->input = input;
    m->output = output;
    /* a model whose declared input does not fit its layers is refused now */
    int h, w, c, declared = 1;
    for (int i = 0; i < m->in_rank; i++) declared &= m->in_dims[i] > 0;
    fv_model_input_hwc(m, &h, &w, &c);
    if (declared && (rc = fv_model_check(m, h, w, err))) goto fail;
    if (!(m->prepared = calloc((size_t)m->n_layers, sizeof *m->prepared))) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory", m->path);
        goto fail;
    }
    if ((rc = fv_model_fold(m, err))) goto fail;
    return FV_OK;
fail:
    fv_model_free(m);
    return rc;
}
