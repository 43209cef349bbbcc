/* Receptive fields through ops->rows: output row r of a layer reads input
 * rows r*stride - pad .. r*stride - pad + extent - 1, so an interval of rows
 * maps to an interval; intervals of several paths are joined. */
#include <stdlib.h>

#include "jobs/receptive.h"

static int rows_of(const struct fv_io *io) { return io->out.rank == 3 ? io->out.d[0] : 0; }

int receptive_rows(const struct fv_plan *p, int t, int a, int b, int *lo, int *hi,
                   struct fv_error *err) {
    const struct fv_model *m = p->m;
    int H = rows_of(&p->io[m->input]);
    *lo = 0, *hi = H - 1;
    int *l0 = malloc((size_t)m->n_layers * 2 * sizeof *l0);
    if (!l0) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    int *l1 = l0 + m->n_layers;
    for (int i = 0; i < m->n_layers; i++) l0[i] = 1, l1[i] = 0; /* empty */
    l0[t] = a, l1[t] = b;
    int whole = 0;
    /* nodes are in topological order: walk down from t */
    for (int i = t; i > m->input && !whole; i--) {
        if (l0[i] > l1[i]) continue;
        const struct fv_layer *l = &m->layers[i];
        struct fv_rows r;
        if (!l->ops || !l->ops->rows || !l->ops->rows(l, &p->io[i], &r) || rows_of(&p->io[i]) < 1) {
            whole = 1;
            break;
        }
        for (int j = 0; j < l->n_in; j++) {
            int in = l->in[j], n = rows_of(&p->io[in]);
            int s = l0[i] * r.stride - r.pad, e = l1[i] * r.stride - r.pad + r.extent - 1;
            if (s < 0) s = 0;
            if (e > n - 1) e = n - 1;
            if (s > e) continue; /* only padding */
            if (l0[in] > l1[in]) l0[in] = s, l1[in] = e;
            else {
                if (s < l0[in]) l0[in] = s;
                if (e > l1[in]) l1[in] = e;
            }
        }
    }
    if (!whole && l0[m->input] <= l1[m->input]) *lo = l0[m->input], *hi = l1[m->input];
    free(l0);
    return FV_OK;
}
