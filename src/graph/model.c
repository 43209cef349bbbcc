/* Queries on a loaded model: layers by name, where the logits are. */
#include <stdlib.h>
#include <string.h>

#include "featviz/graph.h"

static int find_node(const struct fv_model *m, const char *name) {
    for (int i = 0; i < m->n_layers; i++)
        if (!m->layers[i].hidden && !strcmp(m->layers[i].name, name)) return i;
    return -1;
}

/* 1 when group g (1-based) or one of its ancestors is named `name`. */
static int inside(const struct fv_model *m, int g, const char *name, size_t len) {
    for (; g > 0; g = m->groups[g - 1].parent)
        if (strlen(m->groups[g - 1].name) == len && !strncmp(m->groups[g - 1].name, name, len)) return 1;
    return 0;
}

int fv_model_find(const struct fv_model *m, const char *name) {
    int t = find_node(m, name);
    if (t >= 0) return t;
    for (int i = 0; i < m->n_layers; i++) /* the name of a node's output tensor (ONNX) */
        if (!m->layers[i].hidden && *m->layers[i].tensor && !strcmp(m->layers[i].tensor, name)) return i;
    for (int g = 0; g < m->n_groups; g++)
        if (!strcmp(m->groups[g].name, name)) return find_node(m, m->groups[g].output);
    const char *slash = strrchr(name, '/'); /* "outer/inner" */
    if (!slash || (t = fv_model_find(m, slash + 1)) < 0) return -1;
    const char *outer = slash;
    while (outer > name && outer[-1] != '/') outer--;
    return inside(m, m->layers[t].group, outer, (size_t)(slash - outer)) ? t : -1;
}

/* Dropout & co: identity ops without an activation. */
static int passthrough(const struct fv_layer *l) {
    return l->ops && (l->ops->flags & FV_OPF_IDENTITY) && l->act.kind == FV_ACT_LINEAR && l->n_in == 1;
}

int fv_model_logits(const struct fv_model *m, int *pre) {
    int t = m->output;
    for (;;) {
        const struct fv_layer *l = &m->layers[t];
        if (l->act.kind == FV_ACT_SOFTMAX) {
            if (l->ops && (l->ops->flags & FV_OPF_IDENTITY)) { /* Activation('softmax') / Softmax layer */
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

void fv_model_free(struct fv_model *m) {
    if (!m) return;
    if (m->folded) {
        fv_model_free(m->folded);
        free(m->folded);
    }
    /* a folded model owns only its merged nodes' weights; the rest are its base's */
    for (int i = 0; m->layers && i < m->n_layers; i++)
        for (int k = 0; (!m->base || (m->fold && m->fold[i] == FV_FOLD_MERGED)) && k < m->layers[i].n_w; k++)
            free(m->layers[i].w[k]);
    for (int i = 0; m->prepared && i < m->n_layers; i++) free(m->prepared[i].data);
    free(m->prepared);
    free(m->layers);
    free(m->fold);
    if (!m->base) free(m->groups);
    memset(m, 0, sizeof *m);
}
