/* Queries on a loaded model: layers by name, where the logits are. */
#include <string.h>

#include "featviz/model.h"
#include "layers/layers.h"

int fv_model_find(const struct fv_model *m, const char *name) {
    for (int i = 0; i < m->n_layers; i++)
        if (!m->layers[i].hidden && !strcmp(m->layers[i].name, name)) return i;
    for (int i = 0; i < m->n_layers; i++) /* ONNX: the output tensor's name */
        if (!m->layers[i].hidden && *m->layers[i].tensor && !strcmp(m->layers[i].tensor, name)) return i;
    return -1;
}

/* Dropout & co: identity ops without an activation. */
static int passthrough(const struct fv_layer *l) {
    return l->ops == &fv_identity_ops && l->act.kind == FV_ACT_LINEAR && l->n_in == 1;
}

int fv_model_logits(const struct fv_model *m, int *pre) {
    int t = m->output;
    for (;;) {
        const struct fv_layer *l = &m->layers[t];
        if (l->act.kind == FV_ACT_SOFTMAX) {
            if (l->ops == &fv_identity_ops) { /* Activation('softmax') / Softmax layer */
                *pre = 0;
                return l->in[0];
            }
            *pre = 1; /* softmax fused into Dense/Conv */
            return t;
        }
        if (!passthrough(l)) break;
        t = l->in[0];
    }
    *pre = 0;
    return m->output;
}
