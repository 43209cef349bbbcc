/* Plans: all activation and gradient memory of one (batch, input size) in one
 * block, with every node's fv_io filled in so the passes just call the ops.
 * Planning is the only place that allocates; forward/backward never do. */
#include <stdlib.h>
#include <string.h>

#include "core/par.h"
#include "kernels/transpose.h"
#include "featviz/graph.h"

#define ALIGN_FLOATS 16 /* 64 bytes */

static size_t round_up(size_t n) { return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS; }

static int nonlinear(const struct fv_layer *l) { return l->act.kind != FV_ACT_LINEAR; }

/* A ReLU without slope or threshold, capped (ReLU6) or not: its derivative
 * is a function of its output, 0 < y < cap, so FV_PLAN_FUSE runs it in place. */
static int relu_from_output(const struct fv_act *a) {
    return a->kind == FV_ACT_RELU && a->alpha == 0.f && a->threshold == 0.f &&
           (a->max_value < 0.f || a->max_value > 0.f);
}

/* Whether node l keeps its pre-activation value apart from y. */
static int keeps_pre(const struct fv_layer *l, int flags) {
    return nonlinear(l) && !((flags & FV_PLAN_FUSE) && relu_from_output(&l->act));
}

void fv_keras_shape(const struct fv_layer *l, const struct fv_shape *phys, struct fv_shape *keras) {
    keras->rank = phys->rank;
    for (int i = 0; i < phys->rank; i++) keras->d[i] = phys->d[l->kperm[i]];
}

void fv_model_input_hwc(const struct fv_model *m, int *h, int *w, int *c) {
    const struct fv_layer *in = &m->layers[m->input];
    int phys[FV_MAX_RANK] = {1, 1, 1, 1};
    for (int i = 0; i < m->in_rank; i++) phys[in->kperm[i]] = m->in_dims[i];
    if (m->in_rank == 3) {
        *h = phys[0], *w = phys[1], *c = phys[2];
    } else {
        size_t n = 1;
        for (int i = 0; i < m->in_rank; i++) n *= (size_t)(phys[i] > 0 ? phys[i] : 1);
        *h = *w = 1;
        *c = (int)n;
    }
}

/* Physical input shape of a plan: declared dims with H and W replaced. */
static int input_shape(const struct fv_model *m, int h, int w, struct fv_shape *s,
                       struct fv_error *err) {
    const struct fv_layer *in = &m->layers[m->input];
    s->rank = m->in_rank;
    for (int i = 0; i < m->in_rank; i++) s->d[in->kperm[i]] = m->in_dims[i];
    if (m->in_rank == 3) {
        s->d[0] = h, s->d[1] = w;
        if (h < 1 || w < 1 || h > 65536 || w > 65536)
            return fv_error_set(err, FV_ERR_SHAPE, "%s: input size %dx%d is out of range", m->path, h, w);
    }
    for (int i = 0; i < s->rank; i++)
        if (s->d[i] < 1)
            return fv_error_set(err, FV_ERR_SHAPE, "%s: the input's dimension %d is not declared (None); featviz needs it", m->path, i + 1);
    return FV_OK;
}

/* Every node's output shape and scratch size for a batch of n at h x w;
 * count[i] = elements of node i's output for the whole batch. */
static int shape_pass(const struct fv_model *m, int n, int h, int w, int grad,
                      const unsigned char *need, struct fv_io *ios, size_t *count, size_t *ws,
                      struct fv_error *err) {
    *ws = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const struct fv_layer *l = &m->layers[i];
        struct fv_io *io = &ios[i];
        io->n = n;
        io->grad = grad;
        count[i] = 0;
        if (need && !need[i]) continue; /* not on the way to the plan's target */
        int rc;
        if (i == m->input) {
            if ((rc = input_shape(m, h, w, &io->out, err))) return rc;
        } else {
            io->n_in = l->n_in;
            for (int j = 0; j < l->n_in; j++) io->in[j] = ios[l->in[j]].out;
            if ((rc = l->ops->shape(l, io, err))) return fv_error_prefix(err, "%s", m->path);
        }
        size_t per = fv_shape_count(&io->out), all;
        if (!fv_mul_size(per, (size_t)n, &all) || all > ((size_t)1 << 40))
            return fv_error_set(err, FV_ERR_SHAPE, "%s: layer '%s' output is too large", m->path, l->name);
        count[i] = all;
        if (io->ws_floats > *ws) *ws = io->ws_floats;
    }
    return FV_OK;
}

/* need[i]: node i is `upto` or something it depends on (all when upto < 0). */
static void mark_upto(const struct fv_model *m, int upto, unsigned char *need) {
    memset(need, upto < 0, (size_t)m->n_layers);
    for (int i = 0; upto < 0 && m->fold && i < m->n_layers; i++) need[i] = m->fold[i] != FV_FOLD_GONE;
    if (upto < 0) return;
    need[upto] = 1;
    for (int i = upto; i >= 0; i--)
        for (int j = 0; need[i] && j < m->layers[i].n_in; j++) need[m->layers[i].in[j]] = 1;
}

/* Floats of a plan's block but the layers' scratch, from the shape pass. */
static size_t plan_floats(const struct fv_model *m, int flags, const struct fv_io *io, const size_t *count) {
    size_t total = 0;
    for (int i = 0; i < m->n_layers; i++) {
        size_t copies = (keeps_pre(&m->layers[i], flags) ? 2 : 1) * (flags & FV_PLAN_GRAD ? 2 : 1);
        total += copies * round_up(count[i]) + (m->prepared ? 0 : round_up(io[i].cache_floats));
    }
    return total;
}

int fv_plan_measure(const struct fv_model *m, int n, int h, int w, int flags, int upto, struct fv_io *io,
                    size_t *floats, struct fv_error *err) {
    int L = m->n_layers;
    unsigned char *need = calloc((size_t)L, 1);
    size_t *count = calloc((size_t)L, sizeof *count), ws;
    memset(io, 0, (size_t)L * sizeof *io);
    int rc = need && count ? FV_OK : fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    if (!rc) mark_upto(m, upto, need);
    if (!rc) rc = shape_pass(m, n, h, w, flags & FV_PLAN_GRAD, upto < 0 ? NULL : need, io, count, &ws, err);
    if (!rc) *floats = plan_floats(m, flags, io, count);
    free(need);
    free(count);
    return rc;
}

int fv_model_check(const struct fv_model *m, int h, int w, struct fv_error *err) {
    struct fv_io *io = calloc((size_t)m->n_layers, sizeof *io);
    size_t *count = calloc((size_t)m->n_layers, sizeof *count), ws;
    int rc = io && count ? shape_pass(m, 1, h, w, 0, NULL, io, count, &ws, err)
                         : fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    free(io);
    free(count);
    return rc;
}

/* io->cache = the model's shared cache of node i, made (in the form with
 * gradients, which every plan can use) if this is the first plan to need it.
 * Plans may be made on several threads at once. */
static int shared_cache(const struct fv_model *m, int i, struct fv_io *io, struct fv_error *err) {
    const struct fv_layer *l = &m->layers[i];
    struct fv_prepared *pr = &m->prepared[i];
    int rc = FV_OK;
    FV_OMP("omp critical(fv_prepared)")
    if (!pr->data) {
        struct fv_io full = *io;
        full.grad = 1;
        rc = l->ops->shape(l, &full, err);
        if (!rc && !(full.cache = malloc(full.cache_floats * sizeof(float))))
            rc = fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory", m->path);
        if (!rc) {
            l->ops->prepare(l, &full);
            pr->data = full.cache, pr->floats = full.cache_floats;
        }
    }
    FV_ASSERT(rc || pr->floats >= io->cache_floats);
    io->cache = pr->data;
    return rc;
}

int fv_plan_init(struct fv_plan *p, const struct fv_model *m, int n, int h, int w, int flags,
                 struct fv_error *err) {
    return fv_plan_init_upto(p, m, n, h, w, flags, -1, err);
}

/* Buffers by lifetime (fv_plan_init_shared), on one time line: node i's
 * forward runs at time i, objectives seed at L, node i's backward at 2L - i,
 * and the input's gradient is read at 2L + 1.
 * - Node j's output (y, and pre where kept) is written at j and read by the
 *   forward of its last active reader; it lives on to the backward of j when
 *   j has an activation (whose derivative reads it) and to that of every
 *   reader whose backward reads its inputs (no ops->backward_skips_x).
 * - Its gradient is written from the backward of its last active reader
 *   (from L when seeded: objectives write it) and read by its own backward.
 * - The input and the seeded nodes (objectives and penalties read their
 *   values between the passes, fv_plan_pick zeroes theirs once) keep their
 *   values for the whole time line.
 * Buffers whose lifetimes meet get disjoint memory: first fit, largest first.
 * off[4 j + k], k = Y, PRE, DY, DPRE: offsets; returns the floats needed. */
enum { BUF_Y, BUF_PRE, BUF_DY, BUF_DPRE };

struct life {
    int node, kind, start, end;
    size_t size, off;
};

static int by_size(const void *a, const void *b) {
    const struct life *x = a, *y = b;
    if (x->size != y->size) return x->size < y->size ? 1 : -1;
    return x->node != y->node ? x->node - y->node : x->kind - y->kind;
}

/* The time node j's output is last read (see above). */
static int output_end(const struct fv_model *m, const unsigned char *active, int j) {
    int L = m->n_layers, end = j;
    if (nonlinear(&m->layers[j])) end = 2 * L - j;
    for (int r = j + 1; r < L; r++) {
        const struct fv_layer *l = &m->layers[r];
        for (int k = 0; active[r] && k < l->n_in; k++) {
            if (l->in[k] != j) continue;
            if (r > end) end = r;
            if (!l->ops->backward_skips_x && 2 * L - r > end) end = 2 * L - r;
        }
    }
    return end;
}

static size_t share_buffers(const struct fv_model *m, const unsigned char *active, const size_t *count,
                            int flags, const unsigned char *seeded, size_t *off, int *ok) {
    int L = m->n_layers, k = 0;
    struct life *it = malloc((size_t)(4 * L + 1) * sizeof *it);
    int *last = malloc((size_t)(L + 1) * sizeof *last);
    *ok = it && last;
    size_t total = 0;
    if (!*ok) goto done;
    for (int j = 0; j < L; j++) last[j] = -1;
    for (int i = 0; i < L; i++)
        for (int j = 0; active[i] && i != m->input && j < m->layers[i].n_in; j++)
            if (i > last[m->layers[i].in[j]]) last[m->layers[i].in[j]] = i;
    for (int j = 0; j < L; j++) {
        if (!active[j] || !count[j]) continue;
        int whole = j == m->input || seeded[j], pre = keeps_pre(&m->layers[j], flags);
        int y0 = whole ? 0 : j, y1 = whole ? 2 * L + 1 : output_end(m, active, j);
        int g0 = seeded[j] ? L : last[j] >= 0 ? 2 * L - last[j] : 2 * L - j;
        int g1 = j == m->input ? 2 * L + 1 : 2 * L - j;
        size_t size = round_up(count[j]);
        it[k++] = (struct life){j, BUF_Y, y0, y1, size, 0};
        if (pre) it[k++] = (struct life){j, BUF_PRE, y0, y1, size, 0};
        it[k++] = (struct life){j, BUF_DY, g0, g1, size, 0};
        if (pre) it[k++] = (struct life){j, BUF_DPRE, g0, g1, size, 0};
    }
    qsort(it, (size_t)k, sizeof *it, by_size);
    for (int a = 0; a < k; a++) {
        size_t at = 0;
        for (int moved = 1; moved;) { /* lowest offset clear of every placed item that lives meanwhile */
            moved = 0;
            for (int b = 0; b < a; b++)
                if (it[b].start <= it[a].end && it[a].start <= it[b].end && at < it[b].off + it[b].size &&
                    it[b].off < at + it[a].size)
                    at = it[b].off + it[b].size, moved = 1;
        }
        it[a].off = at;
        if (at + it[a].size > total) total = at + it[a].size;
        off[4 * it[a].node + it[a].kind] = at;
    }
done:
    free(it);
    free(last);
    return total;
}

int fv_plan_init_upto(struct fv_plan *p, const struct fv_model *m, int n, int h, int w, int flags,
                      int upto, struct fv_error *err) {
    return fv_plan_init_shared(p, m, n, h, w, flags, upto, NULL, err);
}

/* m->folded, when FV_PLAN_FOLD asks for it and it leaves out neither `upto`
 * nor a seeded node (whose values or gradients the caller reads). */
static const struct fv_model *folded(const struct fv_model *m, int flags, int upto, const unsigned char *seeded) {
    const struct fv_model *f = m->folded;
    if (!(flags & FV_PLAN_FOLD) || !f || (upto >= 0 && f->fold[upto] == FV_FOLD_GONE)) return m;
    for (int i = 0; seeded && i < m->n_layers; i++)
        if (seeded[i] && f->fold[i] == FV_FOLD_GONE) return m;
    return f;
}

int fv_plan_init_shared(struct fv_plan *p, const struct fv_model *m, int n, int h, int w, int flags,
                        int upto, const unsigned char *seeded, struct fv_error *err) {
    memset(p, 0, sizeof *p);
    m = folded(m, flags, upto, seeded);
    p->m = m, p->n = n, p->h = h, p->w = w, p->flags = flags;
    int L = m->n_layers, grad = flags & FV_PLAN_GRAD;
    if (n < 1 || n > 1000000) return fv_error_set(err, FV_ERR_SHAPE, "batch of %d images is out of range", n);
    p->io = calloc((size_t)L, sizeof *p->io);
    p->buf = calloc((size_t)L, sizeof *p->buf);
    p->active = calloc((size_t)L, 1);
    p->uses = calloc((size_t)L, sizeof *p->uses);
    size_t *count = calloc((size_t)L, sizeof *count);
    size_t *off = seeded && grad ? calloc((size_t)4 * (size_t)L, sizeof *off) : NULL;
    int rc = FV_OK;
    if (!p->io || !p->buf || !p->active || !p->uses || !count || (seeded && grad && !off)) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory planning %d layers", L);
        goto fail;
    }
    /* pass 1: shapes, sizes (only the nodes `upto` depends on, when given) */
    size_t total = 0, ws = 0;
    p->upto = upto;
    mark_upto(m, upto, p->active);
    if ((rc = shape_pass(m, n, h, w, grad, upto < 0 ? NULL : p->active, p->io, count, &ws, err))) goto fail;
    total = plan_floats(m, flags, p->io, count) + round_up(ws);
    size_t shared = 0;
    if (off) {
        int ok;
        shared = share_buffers(m, p->active, count, flags, seeded, off, &ok);
        if (!ok) {
            rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory planning %d layers", L);
            goto fail;
        }
        total = round_up(ws) + shared;
        for (int i = 0; !m->prepared && i < L; i++) total += round_up(p->io[i].cache_floats);
        p->shared_memory = 1;
    }
    p->mem_floats = total;
    if (!fv_mul_size(total, sizeof(float), &total) || !(p->mem = aligned_alloc(64, (total + 63) / 64 * 64))) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory: a batch of %d at %dx%d needs %zu MB",
                          m->path, n, h, w, p->mem_floats * sizeof(float) >> 20);
        goto fail;
    }
    /* pass 2: carve the block */
    float *cur = p->mem;
    for (int i = 0; i < L; i++) {
        const struct fv_layer *l = &m->layers[i];
        struct fv_node_buf *b = &p->buf[i];
        int pre = keeps_pre(l, flags);
        b->relu_in_place = nonlinear(l) && !pre;
        b->relu_cap = b->relu_in_place && l->act.max_value > 0.f ? l->act.max_value : 0.f;
        if (off) {
            b->y = b->pre = b->dy = b->dpre = NULL; /* below, in the shared region */
            b->shared = i != m->input && !seeded[i];
        } else {
            b->y = cur, cur += round_up(count[i]);
            b->pre = pre ? (cur += round_up(count[i])) - round_up(count[i]) : b->y;
        }
        if (grad && !off) {
            b->dy = cur, cur += round_up(count[i]);
            b->dpre = pre ? (cur += round_up(count[i])) - round_up(count[i]) : b->dy;
        }
        if (!m->prepared) {
            p->io[i].cache = p->io[i].cache_floats ? cur : NULL;
            cur += round_up(p->io[i].cache_floats);
        }
    }
    float *wsp = ws ? cur : NULL;
    cur += round_up(ws);
    for (int i = 0; off && i < L; i++) {
        int pre = keeps_pre(&m->layers[i], flags);
        p->buf[i].y = cur + off[4 * i + BUF_Y];
        p->buf[i].pre = pre ? cur + off[4 * i + BUF_PRE] : p->buf[i].y;
        p->buf[i].dy = cur + off[4 * i + BUF_DY];
        p->buf[i].dpre = pre ? cur + off[4 * i + BUF_DPRE] : p->buf[i].dy;
    }
    for (int i = 0; i < L; i++) {
        const struct fv_layer *l = &m->layers[i];
        struct fv_io *io = &p->io[i];
        for (int j = 0; j < io->n_in; j++) {
            io->x[j] = p->buf[l->in[j]].y;
            io->dx[j] = p->buf[l->in[j]].dy;
        }
        io->y = p->buf[i].pre;
        io->dy = p->buf[i].dpre;
        io->ws = wsp;
        io->relu = p->buf[i].relu_in_place && l->ops->fuses_relu;
        io->relu_cap = io->relu ? p->buf[i].relu_cap : 0.f;
        if (!io->cache_floats) continue;
        if (!m->prepared) {
            l->ops->prepare(l, io);
        } else if ((rc = shared_cache(m, i, io, err))) {
            goto fail;
        }
    }
    p->x = p->buf[m->input].y;
    p->dx = p->buf[m->input].dy;
    free(count);
    free(off);
    return FV_OK;
fail:
    free(count);
    free(off);
    fv_plan_free(p);
    return rc;
}

void fv_plan_free(struct fv_plan *p) {
    if (!p) return;
    free(p->io);
    free(p->buf);
    free(p->active);
    free(p->uses);
    free(p->mem);
    memset(p, 0, sizeof *p);
}

int fv_plan_pick(struct fv_plan *p, int t, const int *channels) {
    const struct fv_layer *l = &p->m->layers[t];
    struct fv_io *io = &p->io[t];
    io->pick = NULL;
    if (!channels || t != p->upto || !l->ops->picks || l->act.kind == FV_ACT_SOFTMAX ||
        io->out.rank != 3 || p->buf[t].shared) /* the zeros must last */
        return 0;
    for (int i = 0; i < p->n; i++) FV_ASSERT(channels[i] >= 0 && channels[i] < io->out.d[2]);
    /* the channels no image picks stay 0 */
    size_t count = (size_t)p->n * fv_shape_count(&io->out);
    memset(p->buf[t].pre, 0, count * sizeof(float));
    if (p->buf[t].y != p->buf[t].pre) memset(p->buf[t].y, 0, count * sizeof(float));
    io->pick = channels;
    return 1;
}

/* Copies one image between physical order and Keras order: Keras dim a is
 * physical dim perm[a]. to_keras selects the direction. */
static void permute_image(const float *src, float *dst, const struct fv_shape *phys,
                          const int *perm, int to_keras) {
    int r = phys->rank, identity = 1;
    size_t stride[FV_MAX_RANK], kd[FV_MAX_RANK];
    size_t s = 1;
    for (int i = r - 1; i >= 0; i--) stride[i] = s, s *= (size_t)phys->d[i];
    for (int a = 0; a < r; a++) kd[a] = (size_t)phys->d[perm[a]], identity &= perm[a] == a;
    if (identity || r == 0) {
        memcpy(dst, src, s * sizeof(float));
        return;
    }
    if (r == 3 && perm[0] == 2 && perm[1] == 0 && perm[2] == 1) { /* (H, W, C) <-> (C, H, W) */
        size_t hw = (size_t)phys->d[0] * (size_t)phys->d[1], c = (size_t)phys->d[2];
        if (to_keras) fv_transpose(src, dst, hw, c);
        else fv_transpose(src, dst, c, hw);
        return;
    }
    /* Keras-order runs along the last Keras axis: one physical stride each */
    size_t run = kd[r - 1], rs = stride[perm[r - 1]];
    size_t idx[FV_MAX_RANK] = {0}, total = s;
    for (size_t k = 0; k < total; k += run) {
        size_t off = 0;
        for (int a = 0; a < r - 1; a++) off += idx[a] * stride[perm[a]];
        if (to_keras)
            for (size_t j = 0; j < run; j++) dst[k + j] = src[off + j * rs];
        else
            for (size_t j = 0; j < run; j++) dst[off + j * rs] = src[k + j];
        for (int a = r - 2; a >= 0; a--) {
            if (++idx[a] < kd[a]) break;
            idx[a] = 0;
        }
    }
}

void fv_to_keras(const struct fv_layer *l, const struct fv_shape *phys, const float *src, float *dst) {
    permute_image(src, dst, phys, l->kperm, 1);
}

void fv_from_keras(const struct fv_layer *l, const struct fv_shape *phys, const float *src,
                   float *dst) {
    permute_image(src, dst, phys, l->kperm, 0);
}

static void convert_batch(const struct fv_plan *p, int t, const float *src, float *dst,
                          int to_keras) {
    const struct fv_shape *s = &p->io[t].out;
    size_t per = fv_shape_count(s);
    int par = (double)p->n * (double)per >= 65536.0; /* threads only pay off for big batches */
    (void)par;
    FV_OMP("omp parallel for schedule(static) if(par)")
    for (int i = 0; i < p->n; i++)
        permute_image(src + (size_t)i * per, dst + (size_t)i * per, s, p->m->layers[t].kperm, to_keras);
}

void fv_plan_read_keras_images(const struct fv_plan *p, int t, int pre, int first, int count, float *out) {
    const struct fv_shape *s = &p->io[t].out;
    size_t per = fv_shape_count(s);
    const float *src = (pre ? p->buf[t].pre : p->buf[t].y) + (size_t)first * per;
    FV_ASSERT(first >= 0 && count >= 0 && first + count <= p->n);
    for (int i = 0; i < count; i++)
        permute_image(src + (size_t)i * per, out + (size_t)i * per, s, p->m->layers[t].kperm, 1);
}

void fv_plan_read_keras(const struct fv_plan *p, int t, int pre, float *out) {
    convert_batch(p, t, pre ? p->buf[t].pre : p->buf[t].y, out, 1);
}

void fv_plan_write_input(struct fv_plan *p, const float *keras_x) {
    convert_batch(p, p->m->input, keras_x, p->x, 0);
}

void fv_plan_input_to_keras(const struct fv_plan *p, const float *phys, float *keras) {
    convert_batch(p, p->m->input, phys, keras, 1);
}
