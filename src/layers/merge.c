/* Elementwise merges of n_in >= 2 equal-shaped inputs (p.merge.op):
 *   Add y = sum_i x_i     Subtract y = x_0 - x_1 (exactly 2)   Multiply y = prod_i x_i
 *   Average y = sum_i x_i / n_in   Maximum/Minimum y = max_i/min_i x_i
 * Max/min backward gives dy to the first input holding the extreme value.
 *
 * x_i (n,...)  y (n,...), all the same shape
 */
#include "layers/layers.h"

static const char *merge_name(int op) {
    switch (op) {
    case FV_MERGE_ADD: return "add";
    case FV_MERGE_SUB: return "subtract";
    case FV_MERGE_MUL: return "multiply";
    case FV_MERGE_AVG: return "average";
    case FV_MERGE_MAX: return "maximum";
    case FV_MERGE_MIN: return "minimum";
    }
    return "?";
}

static int same_shape(const struct fv_shape *a, const struct fv_shape *b) {
    if (a->rank != b->rank) return 0;
    for (int i = 0; i < a->rank; i++)
        if (a->d[i] != b->d[i]) return 0;
    return 1;
}

static int merge_shape(const struct fv_layer *l, struct fv_io *io, struct fv_error *err) {
    int op = l->p.merge.op;
    if (op < FV_MERGE_ADD || op > FV_MERGE_MIN)
        return fv_error_set(err, FV_ERR_UNSUPPORTED, "layer '%s': unknown merge op %d", l->name,
                            op);
    if (io->n_in < 2 || io->n_in > FV_MAX_IN)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': %s needs at least 2 inputs, got %d",
                            l->name, merge_name(op), io->n_in);
    if (op == FV_MERGE_SUB && io->n_in != 2)
        return fv_error_set(err, FV_ERR_SHAPE, "layer '%s': subtract needs exactly 2 inputs, got %d",
                            l->name, io->n_in);
    for (int i = 1; i < io->n_in; i++)
        if (!same_shape(&io->in[0], &io->in[i]))
            return fv_error_set(err, FV_ERR_SHAPE,
                                "layer '%s': input %d has another shape than input 0 (%zu vs %zu "
                                "values, rank %d vs %d)",
                                l->name, i, fv_shape_count(&io->in[i]),
                                fv_shape_count(&io->in[0]), io->in[i].rank, io->in[0].rank);
    io->out = io->in[0];
    io->ws_floats = 0;
    return FV_OK;
}

static double merge_flops(const struct fv_layer *l, const struct fv_io *io) {
    (void)l;
    return (double)(io->n_in - 1) * (double)fv_shape_count(&io->out);
}

static void merge_forward(const struct fv_layer *l, const struct fv_io *io) {
    int op = l->p.merge.op, m = io->n_in;
    size_t count = (size_t)io->n * fv_shape_count(&io->out);
    float *y = io->y; /* (count) */
#pragma omp parallel for schedule(static) if (count > 65536)
    for (size_t k = 0; k < count; k++) {
        float v = io->x[0][k];
        switch (op) {
        case FV_MERGE_ADD:
        case FV_MERGE_AVG:
            for (int i = 1; i < m; i++) v += io->x[i][k];
            if (op == FV_MERGE_AVG) v /= (float)m;
            break;
        case FV_MERGE_SUB: v -= io->x[1][k]; break;
        case FV_MERGE_MUL:
            for (int i = 1; i < m; i++) v *= io->x[i][k];
            break;
        case FV_MERGE_MAX:
            for (int i = 1; i < m; i++)
                if (io->x[i][k] > v) v = io->x[i][k];
            break;
        case FV_MERGE_MIN:
            for (int i = 1; i < m; i++)
                if (io->x[i][k] < v) v = io->x[i][k];
            break;
        }
        y[k] = v;
    }
}

/* Index of the first input holding the max (sign +1) or min (sign -1) at k. */
static int arg_extreme(const struct fv_io *io, size_t k, float sign) {
    int arg = 0;
    float best = sign * io->x[0][k];
    for (int i = 1; i < io->n_in; i++)
        if (sign * io->x[i][k] > best) {
            best = sign * io->x[i][k];
            arg = i;
        }
    return arg;
}

static void merge_backward(const struct fv_layer *l, const struct fv_io *io) {
    int op = l->p.merge.op, m = io->n_in;
    size_t count = (size_t)io->n * fv_shape_count(&io->out);
    const float *dy = io->dy; /* (count) */
#pragma omp parallel for schedule(static) if (count > 65536)
    for (size_t k = 0; k < count; k++) {
        switch (op) {
        case FV_MERGE_ADD: /* forward: v = x_0 + x_1 + ... */
            for (int i = 0; i < m; i++)
                if (io->dx[i]) io->dx[i][k] += dy[k];
            break;
        case FV_MERGE_AVG: /* forward: v = (x_0 + x_1 + ...) / m */
            for (int i = 0; i < m; i++)
                if (io->dx[i]) io->dx[i][k] += dy[k] / (float)m;
            break;
        case FV_MERGE_SUB: /* forward: v = x_0 - x_1 */
            if (io->dx[0]) io->dx[0][k] += dy[k];
            if (io->dx[1]) io->dx[1][k] -= dy[k];
            break;
        case FV_MERGE_MUL: /* forward: v = x_0 * x_1 * ...; product of the others, no division */
            for (int i = 0; i < m; i++) {
                if (!io->dx[i]) continue;
                float p = dy[k];
                for (int j = 0; j < m; j++)
                    if (j != i) p *= io->x[j][k];
                io->dx[i][k] += p;
            }
            break;
        case FV_MERGE_MAX:
        case FV_MERGE_MIN: { /* forward: v = max/min over inputs, first one wins */
            int i = arg_extreme(io, k, op == FV_MERGE_MAX ? 1.f : -1.f);
            if (io->dx[i]) io->dx[i][k] += dy[k];
            break;
        }
        }
    }
}

const struct fv_layer_ops fv_merge_ops = {
    .kind = "merge",
    .need = FV_NEED_ANY,
    .shape = merge_shape,
    .forward = merge_forward,
    .backward = merge_backward,
    .flops = merge_flops,
    .rows = fv_rows_elementwise,
};
