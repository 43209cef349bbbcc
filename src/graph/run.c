/* Forward and backward passes over a plan.
 * Forward: each needed node runs its ops (into `pre`), then its fused
 * activation (pre -> y). Backward walks the same nodes in reverse: the
 * activation's gradient is added to dpre (which objectives on pre-activation
 * values may have seeded), then the ops add J^T dpre into their inputs' dy. */
#include <string.h>

#include "featviz/graph.h"

/* Marks `t` and everything it depends on (all nodes when t < 0). */
static void mark_needed(struct fv_plan *p, int t) {
    const struct fv_model *m = p->m;
    if (t < 0) { /* all but the nodes a folded model leaves out */
        for (int i = 0; i < m->n_layers; i++) p->active[i] = !m->fold || m->fold[i] != FV_FOLD_GONE;
        return;
    }
    memset(p->active, 0, (size_t)m->n_layers);
    p->active[t] = 1;
    for (int i = t; i >= 0; i--) {
        if (!p->active[i]) continue;
        const struct fv_layer *l = &m->layers[i];
        for (int j = 0; j < l->n_in; j++) p->active[l->in[j]] = 1;
    }
}

/* The (outer, dim, inner) view for a node's activation: softmax runs along
 * its Keras axis, elementwise kinds see one flat run. */
static void act_view(const struct fv_plan *p, int i, size_t *outer, int *dim, size_t *inner) {
    const struct fv_layer *l = &p->m->layers[i];
    const struct fv_shape *s = &p->io[i].out;
    size_t count = fv_shape_count(s);
    if (l->act.kind != FV_ACT_SOFTMAX) {
        *outer = (size_t)p->n * count, *dim = 1, *inner = 1;
        return;
    }
    int ka = l->act_axis < 0 ? s->rank + l->act_axis : l->act_axis;
    if (ka < 0 || ka >= s->rank) ka = s->rank - 1;
    int a = l->kperm[ka];
    size_t before = 1, after = 1;
    for (int k = 0; k < a; k++) before *= (size_t)s->d[k];
    for (int k = a + 1; k < s->rank; k++) after *= (size_t)s->d[k];
    *outer = (size_t)p->n * before, *dim = s->d[a], *inner = after;
}

/* Ghost-network dropout (fv_plan.drop): node t's element e of image i is
 * dropped when a splitmix64 hash of (key, step, t, e) falls below drop;
 * kept elements are divided by 1 - drop. x is the output (forward) or its
 * gradient (backward): the same mask for both. */
static int drops(const struct fv_plan *p, int t) {
    const struct fv_layer *l = &p->m->layers[t];
    return p->drop > 0.0f && p->drop_keys && p->buf[t].relu_in_place && l->ops && (l->ops->flags & FV_OPF_FILTERS) &&
           !(p->m->fold && p->m->fold[t] == FV_FOLD_MERGED); /* as in the original: a BatchNorm or ReLU layer */
}

static uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void drop_apply(const struct fv_plan *p, int t, float *x) {
    size_t per = fv_shape_count(&p->io[t].out);
    uint64_t below = (uint64_t)((double)p->drop * 18446744073709551616.0);
    float keep = 1.0f / (1.0f - p->drop);
    for (int i = 0; i < p->n; i++) {
        uint64_t base = mix64(mix64(p->drop_keys[i] ^ mix64(p->drop_step)) ^ (uint64_t)t);
        float *xi = x + (size_t)i * per;
        for (size_t e = 0; e < per; e++) xi[e] = mix64(base + e) < below ? 0.0f : xi[e] * keep;
    }
}

/* Node i is an activation layer (ReLU, ReLU6 & co.) run in place: its forward
 * goes straight from its input, without first copying it, and its backward
 * straight into its input's gradient. */
static int act_direct(const struct fv_plan *p, int i) {
    const struct fv_layer *l = &p->m->layers[i];
    return (l->ops->flags & FV_OPF_IDENTITY) && l->act.kind != FV_ACT_LINEAR && p->buf[i].pre == p->buf[i].y &&
           l->n_in == 1;
}

void fv_forward(struct fv_plan *p, int upto) {
    const struct fv_model *m = p->m;
    if (upto < 0) upto = p->upto;
    FV_ASSERT(p->upto < 0 || upto <= p->upto);
    mark_needed(p, upto);
    for (int i = 0; i < m->n_layers; i++) {
        if (!p->active[i] || i == m->input) continue;
        const struct fv_layer *l = &m->layers[i];
        int direct = act_direct(p, i);
        if (!direct) l->ops->forward(l, &p->io[i]);
        if (l->act.kind != FV_ACT_LINEAR && !p->io[i].relu) {
            size_t outer, inner;
            int dim;
            act_view(p, i, &outer, &dim, &inner);
            fv_act_forward(&l->act, direct ? p->io[i].x[0] : p->buf[i].pre, p->buf[i].y, outer, dim, inner);
        }
        if (drops(p, i)) drop_apply(p, i, p->buf[i].y);
    }
}

void fv_grad_zero(struct fv_plan *p) {
    if (!(p->flags & FV_PLAN_GRAD)) return;
    for (int i = 0; i < p->m->n_layers; i++)
        p->buf[i].grad_stale = p->io[i].out.rank != 0, p->buf[i].grad_masked = 0;
}

float *fv_plan_grad(struct fv_plan *p, int t, int pre) {
    struct fv_node_buf *b = &p->buf[t];
    FV_ASSERT(p->flags & FV_PLAN_GRAD);
    if (b->grad_stale) {
        size_t count = (size_t)p->n * fv_shape_count(&p->io[t].out);
        memset(b->dy, 0, count * sizeof(float));
        if (b->dpre != b->dy) memset(b->dpre, 0, count * sizeof(float));
        b->grad_stale = 0;
    }
    return pre ? b->dpre : b->dy;
}

/* Zeroing each gradient buffer just before its first write (instead of all
 * of them up front) touches it while it is about to be used anyway, and a
 * node nothing wrote to has a zero gradient: its backward is skipped. */
void fv_backward(struct fv_plan *p, int from) {
    const struct fv_model *m = p->m;
    FV_ASSERT(p->flags & FV_PLAN_GRAD);
    FV_ASSERT(from >= 0 && (p->upto < 0 || from <= p->upto));
    mark_needed(p, from);
    memset(p->uses, 0, (size_t)m->n_layers * sizeof *p->uses);
    for (int i = 0; i <= from; i++)
        for (int j = 0; p->active[i] && i != m->input && j < m->layers[i].n_in; j++)
            p->uses[m->layers[i].in[j]]++;
    for (int i = from; i >= 0; i--) {
        if (!p->active[i] || i == m->input || p->buf[i].grad_stale) continue;
        const struct fv_layer *l = &m->layers[i];
        struct fv_node_buf *b = &p->buf[i];
        if (drops(p, i)) drop_apply(p, i, b->dy); /* before the ReLU's mask: both elementwise */
        if (act_direct(p, i) && b->relu_in_place && !b->grad_masked && !p->escape_relu) {
            struct fv_node_buf *in = &p->buf[l->in[0]];
            int assign = in->grad_stale && in->dy == in->dpre;
            if (assign) in->grad_stale = 0;
            else fv_plan_grad(p, l->in[0], 0);
            in->grad_masked = 0;
            fv_relu_backward_to(b->y, b->dy, in->dy, (size_t)p->n * fv_shape_count(&p->io[i].out), b->relu_cap,
                                assign);
            continue;
        }
        if (b->grad_masked) {
            /* the layer that wrote dy applied the ReLU's derivative */
        } else if (b->relu_in_place) {
            fv_relu_backward_in_place(b->y, b->dy, (size_t)p->n * fv_shape_count(&p->io[i].out),
                                      p->escape_relu, b->relu_cap);
        } else if (l->act.kind != FV_ACT_LINEAR) {
            size_t outer, inner;
            int dim;
            act_view(p, i, &outer, &dim, &inner);
            fv_act_backward(&l->act, b->pre, b->y, b->dy, b->dpre, outer, dim, inner, p->escape_relu);
        }
        for (int j = 0; j < l->n_in; j++) {
            struct fv_node_buf *in = &p->buf[l->in[j]];
            struct fv_io *io = &p->io[i];
            io->dx_assign[j] = in->grad_stale && l->ops->assigns_dx && in->dy == in->dpre;
            /* the only reader of a ReLU's output can apply its derivative as it writes */
            io->dx_relu[j] = io->dx_assign[j] && l->ops->masks_dx && in->relu_in_place &&
                             (in->relu_cap == 0.f || l->ops->masks_dx_cap) && !p->escape_relu &&
                             p->uses[l->in[j]] == 1;
            io->dx_relu_cap[j] = io->dx_relu[j] ? in->relu_cap : 0.f;
            in->grad_masked = io->dx_relu[j];
            if (io->dx_assign[j])
                in->grad_stale = 0; /* the layer writes all of it */
            else
                fv_plan_grad(p, l->in[j], 0);
        }
        l->ops->backward(l, &p->io[i]);
    }
    for (int i = 0; i < m->n_layers; i++) /* gradients nothing reached are zero */
        if (p->buf[i].grad_stale && (!p->shared_memory || i == m->input)) fv_plan_grad(p, i, 0);
}
