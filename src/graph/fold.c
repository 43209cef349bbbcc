/* BatchNorm folded into the convolution before it, for plans that never read
 * the convolution's own output (the optimizer's: FV_PLAN_FOLD).
 *
 * At inference a BatchNorm is a scale and shift per channel,
 *     y[k] = z[k] * s[k] + t[k],   z = W x + b,
 * so y = (W s) x + (b s + t): the convolution (or Dense, or depthwise
 * convolution) with its weights of output channel k multiplied by s[k] and
 * bias b s + t computes y itself, and the BatchNorm's forward and backward
 * passes over the whole tensor disappear. A ReLU-like activation layer that
 * alone reads the BatchNorm's output (MobileNetV2's ReLU6) moves into the
 * merged node too, as its fused activation, which FV_PLAN_FUSE then runs in
 * place.
 *
 * The folded model keeps every node index: the merged node sits where the
 * last folded node was, under its name, and the nodes before it are left out
 * (nothing reads them any more). Its values and gradients are those of the
 * original up to rounding, which is why plans ask for it (FV_PLAN_FOLD). */
#include <stdlib.h>
#include <string.h>

#include "featviz/graph.h"

/* How many nodes read node j's output (an input read twice counts twice). */
static int readers(const struct fv_model *m, int j, int *last) {
    int n = 0;
    for (int i = j + 1; i < m->n_layers; i++)
        for (int k = 0; k < m->layers[i].n_in; k++)
            if (m->layers[i].in[k] == j) n++, *last = i;
    return n;
}

/* The BatchNorm b can fold into its input c. */
static int foldable(const struct fv_model *m, const unsigned char *fold, int b) {
    const struct fv_layer *bn = &m->layers[b];
    if (!bn->ops || !(bn->ops->flags & FV_OPF_SCALE_SHIFT) || bn->n_in != 1 || bn->n_w < 2) return 0;
    int c = bn->in[0], r;
    const struct fv_layer *cv = &m->layers[c];
    size_t D = bn->w_len[0];
    return c != m->input && c != m->output && !fold[c] && cv->ops && (cv->ops->flags & FV_OPF_FOLDS_SCALE) &&
           cv->act.kind == FV_ACT_LINEAR && readers(m, c, &r) == 1 && bn->p.bn.axis == cv->out_rank - 1 &&
           D > 0 && bn->w_len[1] == D && cv->n_w >= 1 && cv->w[0] && cv->w_len[0] % D == 0 &&
           (!cv->p.conv.use_bias || (cv->n_w >= 2 && cv->w[1] && cv->w_len[1] == D));
}

/* The activation layer that alone reads the BatchNorm b and can move into the merged node, or -1. */
static int activation_after(const struct fv_model *m, int b) {
    int r = -1;
    if (b == m->output || m->layers[b].act.kind != FV_ACT_LINEAR || readers(m, b, &r) != 1) return -1;
    const struct fv_layer *a = &m->layers[r];
    int ok = a->ops && (a->ops->flags & FV_OPF_IDENTITY) && a->n_in == 1 && a->act.kind != FV_ACT_LINEAR &&
             a->act.kind != FV_ACT_SOFTMAX;
    return ok ? r : -1;
}

/* f->layers[t] = c with the scale and shift of BatchNorm b folded in, named and activated as t. */
static int merge(struct fv_model *f, const struct fv_model *m, int c, int b, int t) {
    const struct fv_layer *cv = &m->layers[c], *bn = &m->layers[b], *last = &m->layers[t];
    size_t D = bn->w_len[0], n = cv->w_len[0];
    float *w = malloc(n * sizeof *w), *bias = malloc(D * sizeof *bias);
    if (!w || !bias) {
        free(w);
        free(bias);
        return FV_ERR_NOMEM;
    }
    const float *s = bn->w[0], *sh = bn->w[1];
    for (size_t e = 0; e < n; e++) w[e] = cv->w[0][e] * s[e % D];
    for (size_t k = 0; k < D; k++) bias[k] = (cv->p.conv.use_bias ? cv->w[1][k] * s[k] : 0.0f) + sh[k];
    struct fv_layer *l = &f->layers[t];
    *l = *cv;
    memcpy(l->name, last->name, sizeof l->name);
    memcpy(l->tensor, last->tensor, sizeof l->tensor);
    memcpy(l->keras_class, last->keras_class, sizeof l->keras_class);
    l->act = last->act;
    l->act_axis = last->act_axis;
    l->hidden = last->hidden;
    l->group = last->group;
    l->p.conv.use_bias = 1;
    l->n_w = 2;
    l->w[0] = w, l->w_len[0] = n;
    l->w[1] = bias, l->w_len[1] = D;
    for (int k = 2; k < FV_MAX_W; k++) l->w[k] = NULL, l->w_len[k] = 0;
    return FV_OK;
}

int fv_model_fold(struct fv_model *m, struct fv_error *err) {
    int L = m->n_layers, merged = 0;
    struct fv_model *f = calloc(1, sizeof *f);
    if (!f) goto nomem;
    *f = *m;
    f->layers = malloc((size_t)L * sizeof *f->layers);
    f->fold = calloc((size_t)L, 1);
    f->prepared = calloc((size_t)L, sizeof *f->prepared);
    f->folded = NULL, f->base = m, f->weights_mem = NULL;
    if (!f->layers || !f->fold || !f->prepared) goto nomem;
    memcpy(f->layers, m->layers, (size_t)L * sizeof *f->layers);
    for (int b = 0; b < L; b++) {
        if (!foldable(m, f->fold, b)) continue;
        int c = m->layers[b].in[0], r = activation_after(m, b), t = r >= 0 ? r : b;
        if (merge(f, m, c, b, t)) goto nomem;
        f->fold[c] = FV_FOLD_GONE;
        if (r >= 0) f->fold[b] = FV_FOLD_GONE;
        f->fold[t] = FV_FOLD_MERGED;
        merged++;
    }
    if (merged) {
        m->folded = f;
        return FV_OK;
    }
    fv_model_free(f);
    free(f);
    return FV_OK;
nomem:
    fv_model_free(f);
    free(f);
    return fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory", m->path);
}
