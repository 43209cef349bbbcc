/* Load-time evaluation of operators whose inputs are all constants: the
 * Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains PyTorch emits
 * before a Reshape or Pad, Casts of float16 weights, arithmetic on constants.
 * Values are doubles (exact for the integers of shapes and indices). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "formats/onnx/onnx.h"

void onnx_const_free(struct onnx_const *c) {
    if (!c) return;
    free(c->v);
    c->v = NULL;
}

static int alloc_out(struct onnx_const *o, int rank, const int64_t *dims, struct fv_error *err) {
    memset(o, 0, sizeof *o);
    o->rank = rank;
    size_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0 || (dims[i] > 0 && n > (size_t)ONNX_MAX_ELEMS / (size_t)dims[i]))
            return fv_error_set(err, FV_ERR_SHAPE, "constant too large");
        o->dims[i] = dims[i];
        n *= (size_t)dims[i];
    }
    o->count = n;
    o->v = calloc(n ? n : 1, sizeof *o->v);
    if (!o->v) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    return FV_OK;
}

static const struct onnx_attr *attr(const struct onnx_node *n, const char *name) {
    return onnx_attr_get(n, name);
}

static int64_t attr_i(const struct onnx_node *n, const char *name, int64_t def) {
    const struct onnx_attr *a = attr(n, name);
    return a ? a->i : def;
}

/* Axes from the attribute (old opsets) or from input k (new ones). */
static int get_axes(const struct onnx_node *n, struct onnx_const **in, int n_in, int k,
                    int64_t *axes, int *n_axes) {
    const struct onnx_attr *a = attr(n, "axes");
    *n_axes = 0;
    if (a) {
        if (a->n_ints > ONNX_MAX_RANK) return 0;
        for (size_t i = 0; i < a->n_ints; i++) axes[(*n_axes)++] = a->ints[i];
        return 1;
    }
    if (n_in > k && in[k]) {
        if (in[k]->count > ONNX_MAX_RANK) return 0;
        for (size_t i = 0; i < in[k]->count; i++) axes[(*n_axes)++] = (int64_t)in[k]->v[i];
    }
    return 1;
}

static size_t offset_of(const int64_t *idx, const int64_t *dims, int rank) {
    size_t o = 0;
    for (int i = 0; i < rank; i++) o = o * (size_t)dims[i] + (size_t)idx[i];
    return o;
}

static int next_index(int64_t *idx, const int64_t *dims, int rank) {
    for (int i = rank - 1; i >= 0; i--) {
        if (++idx[i] < dims[i]) return 1;
        idx[i] = 0;
    }
    return 0;
}

/* numpy broadcasting of a and b */
static int binary(const char *op, const struct onnx_const *a, const struct onnx_const *b,
                  struct onnx_const *o, struct fv_error *err) {
    int rank = a->rank > b->rank ? a->rank : b->rank;
    int64_t da[ONNX_MAX_RANK], db[ONNX_MAX_RANK], d[ONNX_MAX_RANK];
    for (int i = 0; i < rank; i++) {
        int ia = i - (rank - a->rank), ib = i - (rank - b->rank);
        da[i] = ia >= 0 ? a->dims[ia] : 1;
        db[i] = ib >= 0 ? b->dims[ib] : 1;
        if (da[i] != db[i] && da[i] != 1 && db[i] != 1) return fv_error_set(err, FV_ERR_SHAPE, "shapes do not broadcast");
        d[i] = da[i] == 1 ? db[i] : da[i];
    }
    int rc = alloc_out(o, rank, d, err);
    if (rc) return rc;
    o->is_int = a->is_int && b->is_int;
    int64_t idx[ONNX_MAX_RANK] = {0}, ia[ONNX_MAX_RANK], ib[ONNX_MAX_RANK];
    for (size_t k = 0; k < o->count; k++) {
        for (int i = 0; i < rank; i++) ia[i] = da[i] == 1 ? 0 : idx[i], ib[i] = db[i] == 1 ? 0 : idx[i];
        double x = a->v[offset_of(ia, da, rank)], y = b->v[offset_of(ib, db, rank)], r;
        if (!strcmp(op, "Add")) r = x + y;
        else if (!strcmp(op, "Sub")) r = x - y;
        else if (!strcmp(op, "Mul")) r = x * y;
        else if (o->is_int) r = y != 0 ? trunc(x / y) : 0;
        else r = x / y;
        o->v[k] = r;
        next_index(idx, d, rank);
    }
    return FV_OK;
}

static int norm_axis(int64_t a, int rank, int *out) {
    if (a < 0) a += rank;
    if (a < 0 || a >= rank) return 0;
    *out = (int)a;
    return 1;
}

int onnx_const_eval(const struct onnx_node *n, struct onnx_const **in, int n_in,
                    struct onnx_const *o, const char *path, struct fv_error *err) {
    const char *op = n->op;
    struct onnx_const *x = n_in > 0 ? in[0] : NULL;
    int rc;
#define BAD(...) return fv_error_set(err, FV_ERR_FORMAT, "%s: node '%s' (%s): " __VA_ARGS__)
    if (!x && strcmp(op, "Concat")) BAD("%s", path, n->name, op, "no input");
    if (!strcmp(op, "Identity") || !strcmp(op, "Cast") || !strcmp(op, "Dropout")) {
        if ((rc = alloc_out(o, x->rank, x->dims, err))) return rc;
        memcpy(o->v, x->v, x->count * sizeof *o->v);
        o->is_int = x->is_int;
        if (!strcmp(op, "Cast")) {
            int64_t to = attr_i(n, "to", ONNX_FLOAT);
            o->is_int = to != ONNX_FLOAT && to != ONNX_FLOAT16 && to != ONNX_DOUBLE;
            for (size_t i = 0; i < o->count; i++)
                o->v[i] = o->is_int ? trunc(o->v[i]) : to == ONNX_FLOAT ? (double)(float)o->v[i] : o->v[i];
        }
        return FV_OK;
    }
    if (!strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul") || !strcmp(op, "Div")) {
        if (n_in < 2 || !in[1]) BAD("%s", path, n->name, op, "needs two inputs");
        return binary(op, x, in[1], o, err) ? fv_error_prefix(err, "%s: node '%s' (%s)", path, n->name, op) : FV_OK;
    }
    if (!strcmp(op, "Neg") || !strcmp(op, "Sqrt") || !strcmp(op, "Floor") || !strcmp(op, "Ceil")) {
        if ((rc = alloc_out(o, x->rank, x->dims, err))) return rc;
        o->is_int = x->is_int;
        for (size_t i = 0; i < o->count; i++) {
            double v = x->v[i];
            o->v[i] = op[0] == 'N' ? -v : op[0] == 'S' ? sqrt(v) : op[0] == 'F' ? floor(v) : ceil(v);
        }
        return FV_OK;
    }
    if (!strcmp(op, "Shape")) { /* of a constant */
        int64_t d = x->rank;
        if ((rc = alloc_out(o, 1, &d, err))) return rc;
        for (int i = 0; i < x->rank; i++) o->v[i] = (double)x->dims[i];
        o->is_int = 1;
        return FV_OK;
    }
    if (!strcmp(op, "Gather")) {
        if (n_in < 2 || !in[1]) BAD("%s", path, n->name, op, "needs indices");
        int axis;
        if (!norm_axis(attr_i(n, "axis", 0), x->rank, &axis)) BAD("%s", path, n->name, op, "axis out of range");
        const struct onnx_const *ind = in[1];
        int64_t d[ONNX_MAX_RANK];
        int r = 0;
        for (int i = 0; i < axis; i++) d[r++] = x->dims[i];
        if (ind->rank + x->rank - 1 > ONNX_MAX_RANK) BAD("%s", path, n->name, op, "rank too large");
        for (int i = 0; i < ind->rank; i++) d[r++] = ind->dims[i];
        for (int i = axis + 1; i < x->rank; i++) d[r++] = x->dims[i];
        if ((rc = alloc_out(o, r, d, err))) return rc;
        o->is_int = x->is_int;
        size_t outer = 1, inner = 1;
        for (int i = 0; i < axis; i++) outer *= (size_t)x->dims[i];
        for (int i = axis + 1; i < x->rank; i++) inner *= (size_t)x->dims[i];
        size_t k = 0;
        for (size_t a = 0; a < outer; a++)
            for (size_t j = 0; j < ind->count; j++) {
                int64_t id = (int64_t)ind->v[j];
                if (id < 0) id += x->dims[axis];
                if (id < 0 || id >= x->dims[axis]) BAD("%s", path, n->name, op, "index out of range");
                for (size_t b = 0; b < inner; b++)
                    o->v[k++] = x->v[(a * (size_t)x->dims[axis] + (size_t)id) * inner + b];
            }
        return FV_OK;
    }
    if (!strcmp(op, "Unsqueeze") || !strcmp(op, "Squeeze")) {
        int64_t axes[ONNX_MAX_RANK];
        int na;
        if (!get_axes(n, in, n_in, 1, axes, &na)) BAD("%s", path, n->name, op, "too many axes");
        int64_t d[ONNX_MAX_RANK];
        int r = 0;
        if (op[0] == 'U') {
            int rank = x->rank + na, src = 0;
            if (rank > ONNX_MAX_RANK) BAD("%s", path, n->name, op, "rank too large");
            unsigned mask = 0;
            for (int i = 0; i < na; i++) {
                int a;
                if (!norm_axis(axes[i], rank, &a)) BAD("%s", path, n->name, op, "axis out of range");
                mask |= 1u << a;
            }
            for (int i = 0; i < rank; i++) d[r++] = (mask >> i) & 1 ? 1 : x->dims[src++];
        } else {
            unsigned mask = 0;
            for (int i = 0; i < na; i++) {
                int a;
                if (!norm_axis(axes[i], x->rank, &a)) BAD("%s", path, n->name, op, "axis out of range");
                mask |= 1u << a;
            }
            for (int i = 0; i < x->rank; i++)
                if (!(na ? (mask >> i) & 1 : x->dims[i] == 1)) d[r++] = x->dims[i];
        }
        if ((rc = alloc_out(o, r, d, err))) return rc;
        memcpy(o->v, x->v, x->count * sizeof *o->v);
        o->is_int = x->is_int;
        return FV_OK;
    }
    if (!strcmp(op, "Concat")) {
        if (n_in < 1) BAD("%s", path, n->name, op, "no inputs");
        for (int i = 0; i < n_in; i++)
            if (!in[i] || in[i]->rank != in[0]->rank) BAD("%s", path, n->name, op, "inputs of different ranks");
        int axis;
        if (!norm_axis(attr_i(n, "axis", 0), in[0]->rank, &axis)) BAD("%s", path, n->name, op, "axis out of range");
        int64_t d[ONNX_MAX_RANK];
        memcpy(d, in[0]->dims, sizeof d);
        d[axis] = 0;
        for (int i = 0; i < n_in; i++) d[axis] += in[i]->dims[axis];
        if ((rc = alloc_out(o, in[0]->rank, d, err))) return rc;
        size_t outer = 1;
        for (int i = 0; i < axis; i++) outer *= (size_t)d[i];
        size_t k = 0;
        o->is_int = 1;
        for (size_t a = 0; a < outer; a++)
            for (int i = 0; i < n_in; i++) {
                size_t chunk = in[i]->count / (outer ? outer : 1);
                memcpy(o->v + k, in[i]->v + a * chunk, chunk * sizeof *o->v);
                k += chunk;
                o->is_int &= in[i]->is_int;
            }
        return FV_OK;
    }
    if (!strcmp(op, "Reshape")) {
        if (n_in < 2 || !in[1] || in[1]->count > ONNX_MAX_RANK) BAD("%s", path, n->name, op, "bad shape input");
        int64_t d[ONNX_MAX_RANK];
        int r = (int)in[1]->count, infer = -1;
        size_t known = 1;
        for (int i = 0; i < r; i++) {
            d[i] = (int64_t)in[1]->v[i];
            if (d[i] == 0 && i < x->rank) d[i] = x->dims[i];
            if (d[i] == -1) infer = i;
            else if (d[i] < 0) BAD("%s", path, n->name, op, "bad shape");
            else known *= (size_t)d[i];
        }
        if (infer >= 0) d[infer] = known ? (int64_t)(x->count / known) : 0;
        if ((rc = alloc_out(o, r, d, err))) return rc;
        if (o->count != x->count) BAD("%s", path, n->name, op, "shape does not keep the element count");
        memcpy(o->v, x->v, x->count * sizeof *o->v);
        o->is_int = x->is_int;
        return FV_OK;
    }
    if (!strcmp(op, "Transpose")) {
        const struct onnx_attr *p = attr(n, "perm");
        int perm[ONNX_MAX_RANK];
        int64_t d[ONNX_MAX_RANK];
        for (int i = 0; i < x->rank; i++) perm[i] = x->rank - 1 - i;
        if (p) {
            if ((int)p->n_ints != x->rank) BAD("%s", path, n->name, op, "perm does not match the rank");
            for (int i = 0; i < x->rank; i++)
                if (!norm_axis(p->ints[i], x->rank, &perm[i])) BAD("%s", path, n->name, op, "bad perm");
        }
        for (int i = 0; i < x->rank; i++) d[i] = x->dims[perm[i]];
        if ((rc = alloc_out(o, x->rank, d, err))) return rc;
        o->is_int = x->is_int;
        int64_t idx[ONNX_MAX_RANK] = {0}, src[ONNX_MAX_RANK];
        for (size_t k = 0; k < o->count; k++) {
            for (int i = 0; i < x->rank; i++) src[perm[i]] = idx[i];
            o->v[k] = x->v[offset_of(src, x->dims, x->rank)];
            next_index(idx, d, x->rank);
        }
        return FV_OK;
    }
    if (!strcmp(op, "Slice")) {
        /* opset >= 10: starts, ends, axes, steps as inputs; opset 9: attributes */
        int64_t st[ONNX_MAX_RANK], en[ONNX_MAX_RANK], ax[ONNX_MAX_RANK], sp[ONNX_MAX_RANK];
        int k = 0;
        const struct onnx_attr *as = attr(n, "starts"), *ae = attr(n, "ends"), *aa = attr(n, "axes");
        if (as && ae) {
            k = (int)as->n_ints;
            if (k > x->rank || (int)ae->n_ints != k) BAD("%s", path, n->name, op, "bad starts/ends");
            for (int i = 0; i < k; i++) st[i] = as->ints[i], en[i] = ae->ints[i], ax[i] = aa && i < (int)aa->n_ints ? aa->ints[i] : i, sp[i] = 1;
        } else {
            if (n_in < 3 || !in[1] || !in[2]) BAD("%s", path, n->name, op, "needs starts and ends");
            k = (int)in[1]->count;
            if (k > x->rank || (int)in[2]->count != k) BAD("%s", path, n->name, op, "bad starts/ends");
            for (int i = 0; i < k; i++) {
                st[i] = (int64_t)fmax(fmin(in[1]->v[i], 9e18), -9e18);
                en[i] = (int64_t)fmax(fmin(in[2]->v[i], 9e18), -9e18);
                ax[i] = n_in > 3 && in[3] && (size_t)i < in[3]->count ? (int64_t)in[3]->v[i] : i;
                sp[i] = n_in > 4 && in[4] && (size_t)i < in[4]->count ? (int64_t)in[4]->v[i] : 1;
            }
        }
        int64_t b[ONNX_MAX_RANK], s[ONNX_MAX_RANK], d[ONNX_MAX_RANK];
        for (int i = 0; i < x->rank; i++) b[i] = 0, s[i] = 1, d[i] = x->dims[i];
        for (int i = 0; i < k; i++) {
            int a;
            if (!norm_axis(ax[i], x->rank, &a) || sp[i] == 0) BAD("%s", path, n->name, op, "bad axis or step");
            int64_t dim = x->dims[a], lo = st[i], hi = en[i];
            if (lo < 0) lo += dim;
            if (hi < 0) hi += dim;
            if (sp[i] > 0) {
                lo = lo < 0 ? 0 : lo > dim ? dim : lo;
                hi = hi < 0 ? 0 : hi > dim ? dim : hi;
                d[a] = hi > lo ? (hi - lo + sp[i] - 1) / sp[i] : 0;
            } else {
                lo = lo < 0 ? -1 : lo > dim - 1 ? dim - 1 : lo;
                hi = hi < -1 ? -1 : hi > dim - 1 ? dim - 1 : hi;
                d[a] = lo > hi ? (lo - hi - sp[i] - 1) / -sp[i] : 0;
            }
            b[a] = lo, s[a] = sp[i];
        }
        if ((rc = alloc_out(o, x->rank, d, err))) return rc;
        o->is_int = x->is_int;
        int64_t idx[ONNX_MAX_RANK] = {0}, src[ONNX_MAX_RANK];
        for (size_t q = 0; q < o->count; q++) {
            for (int i = 0; i < x->rank; i++) src[i] = b[i] + idx[i] * s[i];
            o->v[q] = x->v[offset_of(src, x->dims, x->rank)];
            next_index(idx, d, x->rank);
        }
        return FV_OK;
    }
    if (!strcmp(op, "ConstantOfShape")) {
        if (x->count > ONNX_MAX_RANK) BAD("%s", path, n->name, op, "shape too long");
        int64_t d[ONNX_MAX_RANK];
        for (size_t i = 0; i < x->count; i++) d[i] = (int64_t)x->v[i];
        if ((rc = alloc_out(o, (int)x->count, d, err))) return rc;
        const struct onnx_attr *a = attr(n, "value");
        double val = 0;
        int is_int = 0;
        if (a && a->t) {
            double *tv;
            size_t tc;
            if ((rc = onnx_tensor_values(a->t, path, &tv, &tc, err))) return rc;
            val = tc ? tv[0] : 0;
            is_int = a->t->dtype != ONNX_FLOAT && a->t->dtype != ONNX_FLOAT16 && a->t->dtype != ONNX_DOUBLE;
            free(tv);
        }
        for (size_t i = 0; i < o->count; i++) o->v[i] = val;
        o->is_int = is_int;
        return FV_OK;
    }
#undef BAD
    return ONNX_NOT_FOLDABLE;
}
