/* Physical layouts: every node stores its output in one physical order
 * (spatial tensors (H,W,C)); kperm records Keras' order of the same data.
 * Here each node gets its kperm, Permute nodes are inserted where a layer needs
 * its input in another order (a channels_first conv after a channels_last one,
 * Flatten of a channels_first tensor, ...) and Keras axes become physical axes.
 * Keras' data_format is per layer and honoured literally (format notes §5.2). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/build.h"
#include "layers/layers.h"

static void identity(int *p, int rank) {
    for (int i = 0; i < FV_MAX_RANK; i++) p[i] = i < rank ? i : 0;
}

static void spatial(int *p, int cf) {
    identity(p, 3);
    if (cf) p[0] = 2, p[1] = 0, p[2] = 1; /* Keras (C,H,W) = physical (H,W,C) */
}

static int same_perm(const int *a, const int *b, int rank) {
    for (int i = 0; i < rank; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

/* The order node l needs for its inputs, given input 0's layout. */
static int required_perm(const struct fv_layer *l, const struct fv_node_spec *s, const int *in_perm,
                         int in_rank, int *req) {
    enum fv_layout_need need = l->ops ? l->ops->need : FV_NEED_ANY;
    if (s->flatten) {
        if (in_rank == 3) spatial(req, l->cf);
        else identity(req, in_rank);
        return 1;
    }
    if (need == FV_NEED_SPATIAL) {
        if (in_rank != 3) return 0;
        spatial(req, l->cf);
    } else if (need == FV_NEED_KERAS) {
        identity(req, in_rank);
    } else {
        memcpy(req, in_perm, FV_MAX_RANK * sizeof *req);
    }
    return 1;
}

/* Logical axis (counting the batch axis; negative from the end) -> physical. */
static int physical_axis(int axis, int rank, const int *perm, int *out) {
    int a = axis > 0 ? axis - 1 : rank + axis;
    if (a < 0 || a >= rank) return 0;
    *out = perm[a];
    return 1;
}

/* Output rank of l for an input of in_rank dims (-1: it cannot take it). */
static int out_rank(const struct fv_layer *l, const struct fv_node_spec *s, int in_rank) {
    const struct fv_layer_ops *o = l->ops;
    if (!o) return in_rank;
    if (o->out_rank) return o->out_rank(l, in_rank);
    if (o->need == FV_NEED_SPATIAL && !s->flatten) return in_rank == 3 ? 3 : -1;
    if (s->is_permute) return in_rank == l->p.reshape.rank ? in_rank : -1;
    return in_rank;
}

int fv_resolve_layouts(struct fv_layer **nodes_io, struct fv_node_spec **specs_io, int *n_io,
                       int *input, int *output, const char *path, struct fv_error *err) {
    struct fv_layer *in = *nodes_io;
    struct fv_node_spec *ins = *specs_io;
    int n = *n_io, cap = n + 4, m = 0;
    for (int i = 0; i < n; i++) cap += in[i].n_in;
    struct fv_layer *out = calloc((size_t)cap, sizeof *out);
    struct fv_node_spec *outs = calloc((size_t)cap, sizeof *outs);
    int *map = malloc((size_t)n * sizeof *map);   /* old index -> new index */
    int *rank = malloc((size_t)cap * sizeof *rank);
    if (!out || !outs || !map || !rank) {
        free(out), free(outs), free(map), free(rank);
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    }
    int rc = FV_OK;
    for (int i = 0; i < n; i++) {
        struct fv_layer l = in[i];
        struct fv_node_spec s = ins[i];
        if (s.is_input) {
            int cf = l.cf; /* a front end may declare a channels_first input (ONNX) */
            for (int k = i + 1; k < n; k++)
                for (int j = 0; j < in[k].n_in; j++)
                    if (in[k].in[j] == i && in[k].ops && in[k].ops->need == FV_NEED_SPATIAL && in[k].cf && !ins[k].flatten)
                        cf = 1;
            rank[m] = l.out_rank;
            if (rank[m] == 3) spatial(l.kperm, cf);
            else identity(l.kperm, rank[m]);
            map[i] = m;
            out[m] = l, outs[m] = s, m++;
            continue;
        }
        int req[FV_MAX_RANK], r0 = rank[map[l.in[0]]];
        if (!required_perm(&l, &s, out[map[l.in[0]]].kperm, r0, req)) {
            rc = fv_error_set(err, FV_ERR_SHAPE, "%s: layer '%s' (%s) needs a 3-dimensional (image) input, its input has %d dimensions",
                              path, l.name, l.keras_class, r0);
            goto done;
        }
        for (int j = 0; j < l.n_in; j++) {
            int src = map[l.in[j]];
            if (rank[src] != r0) {
                rc = fv_error_set(err, FV_ERR_SHAPE, "%s: inputs of layer '%s' have different ranks (%d and %d)", path, l.name, r0, rank[src]);
                goto done;
            }
            if (same_perm(out[src].kperm, req, r0)) {
                l.in[j] = src;
                continue;
            }
            /* reuse a Permute already made for this source and order */
            int found = -1;
            for (int k = 0; k < m; k++)
                if (out[k].hidden && out[k].in[0] == src && same_perm(out[k].kperm, req, r0)) found = k;
            if (found < 0) {
                struct fv_layer *p = &out[m];
                memset(p, 0, sizeof *p);
                memset(&outs[m], 0, sizeof outs[m]);
                char srcname[FV_NAME_MAX];
                snprintf(srcname, sizeof srcname, "%s", out[src].name);
                snprintf(p->name, sizeof p->name, "%.100s/permute%d", srcname, m);
                snprintf(p->keras_class, sizeof p->keras_class, "(layout)");
                p->ops = &fv_permute_ops;
                p->hidden = 1;
                p->act.max_value = -1;
                p->n_in = 1;
                p->in[0] = src;
                p->out_rank = r0;
                p->p.permute.rank = r0;
                for (int a = 0; a < r0; a++) p->p.permute.perm[req[a]] = out[src].kperm[a];
                memcpy(p->kperm, req, sizeof p->kperm);
                rank[m] = r0;
                found = m++;
            }
            l.in[j] = found;
        }
        int orank = out_rank(&l, &s, r0);
        if (orank < 1) {
            rc = fv_error_set(err, FV_ERR_SHAPE, "%s: layer '%s' (%s) cannot take a %d-dimensional input", path, l.name, l.keras_class, r0);
            goto done;
        }
        l.out_rank = orank;
        enum fv_layout_need need = l.ops ? l.ops->need : FV_NEED_ANY;
        if (s.is_permute) {
            for (int a = 0; a < orank; a++) l.kperm[a] = req[s.permute_dims[a]];
        } else if (need == FV_NEED_SPATIAL && !s.flatten && orank == 3) {
            spatial(l.kperm, l.cf);
        } else if (need == FV_NEED_ANY) {
            memcpy(l.kperm, req, sizeof l.kperm);
        } else {
            identity(l.kperm, orank);
        }
        if (l.ops && l.ops->axis && !physical_axis(s.axis, r0, req, l.ops->axis(&l))) {
            rc = fv_error_set(err, FV_ERR_SHAPE, "%s: layer '%s': axis %d does not exist in a %d-dimensional input", path, l.name, s.axis, r0);
            goto done;
        }
        rank[m] = orank;
        map[i] = m;
        out[m] = l, outs[m] = s, m++;
    }
    *input = map[*input];
    *output = map[*output];
done:
    free(map);
    free(rank);
    if (rc) {
        free(out);
        free(outs);
        return rc;
    }
    free(in);
    free(ins);
    *nodes_io = out;
    *specs_io = outs;
    *n_io = m;
    return FV_OK;
}
