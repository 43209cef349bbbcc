/* model.onnx -> struct onnx_file: reads the file (size-checked), unpacks the
 * ModelProto with protobuf-c (code generated at build time from Debian's
 * onnx.proto) and makes a plain view of the graph. The only file that
 * includes the generated header. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/onnx/onnx.h"
#include "onnx.pb-c.h"

int onnx_sniff(const unsigned char *head, size_t len) {
    if (len < 2) return 0;
    /* a ModelProto starts with one of its fields: ir_version (1, varint, small),
     * producer_name (2), producer_version (3), graph (7) or opset_import (8) */
    return (head[0] == 0x08 && head[1] < 0x80) || head[0] == 0x12 || head[0] == 0x1a ||
           head[0] == 0x3a || head[0] == 0x42;
}

const struct onnx_attr *onnx_attr_get(const struct onnx_node *n, const char *name) {
    for (int i = 0; i < n->n_attr; i++)
        if (!strcmp(n->attr[i].name, name)) return &n->attr[i];
    return NULL;
}

/* A bump allocator over one block: everything of the view is freed at once. */
struct arena {
    char *p;
    size_t used, cap;
};

static void *arena_get(struct arena *a, size_t bytes) {
    bytes = (bytes + 15) & ~(size_t)15;
    if (bytes > a->cap - a->used) return NULL;
    void *r = a->p + a->used;
    a->used += bytes;
    return r;
}

static const char *str(const char *s) { return s ? s : ""; }

static int conv_tensor(const Onnx__TensorProto *t, struct onnx_tensor *o, const char *path,
                       struct fv_error *err) {
    memset(o, 0, sizeof *o);
    o->name = str(t->name);
    o->dtype = t->has_data_type ? t->data_type : 0;
    if (t->n_dims > ONNX_MAX_RANK)
        return fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: tensor '%s' has %zu dimensions; featviz reads up to %d",
                            path, o->name, t->n_dims, ONNX_MAX_RANK);
    o->rank = (int)t->n_dims;
    for (int i = 0; i < o->rank; i++) {
        if (t->dims[i] < 0)
            return fv_error_set(err, FV_ERR_FORMAT, "%s: tensor '%s' has a negative dimension", path, o->name);
        o->dims[i] = t->dims[i];
    }
    o->has_raw = t->has_raw_data;
    o->raw = t->raw_data.data;
    o->raw_len = t->raw_data.len;
    o->f = t->float_data, o->n_f = t->n_float_data;
    o->i32 = t->int32_data, o->n_i32 = t->n_int32_data;
    o->i64 = t->int64_data, o->n_i64 = t->n_int64_data;
    o->f64 = t->double_data, o->n_f64 = t->n_double_data;
    o->ext_offset = o->ext_length = -1;
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        o->external = 1;
        for (size_t k = 0; k < t->n_external_data; k++) {
            const char *key = str(t->external_data[k]->key), *v = str(t->external_data[k]->value);
            if (!strcmp(key, "location")) o->ext_location = v;
            else if (!strcmp(key, "offset")) o->ext_offset = strtoll(v, NULL, 10);
            else if (!strcmp(key, "length")) o->ext_length = strtoll(v, NULL, 10);
        }
        if (!o->ext_location)
            return fv_error_set(err, FV_ERR_FORMAT, "%s: tensor '%s' is stored externally but names no file", path, o->name);
    }
    return FV_OK;
}

static int conv_value_info(const Onnx__ValueInfoProto *v, struct onnx_value_info *o) {
    memset(o, 0, sizeof *o);
    o->name = str(v->name);
    o->rank = -1;
    if (!v->type || v->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !v->type->tensor_type)
        return FV_OK;
    const Onnx__TypeProto__Tensor *tt = v->type->tensor_type;
    o->dtype = tt->has_elem_type ? tt->elem_type : 0;
    if (!tt->shape || tt->shape->n_dim > ONNX_MAX_RANK) return FV_OK;
    o->rank = (int)tt->shape->n_dim;
    for (int i = 0; i < o->rank; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        o->dims[i] = d && d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && d->dim_value > 0
                         ? d->dim_value
                         : -1;
    }
    return FV_OK;
}

/* Bytes the view needs: counted first so that one allocation holds it all. */
static size_t view_bytes(const Onnx__GraphProto *g) {
    size_t b = 256;
    b += (g->n_node + 1) * sizeof(struct onnx_node) + (g->n_initializer + 1) * sizeof(struct onnx_tensor);
    b += (g->n_input + g->n_output + 2) * sizeof(struct onnx_value_info);
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        b += (n->n_input + n->n_output + 2) * sizeof(char *) + 64;
        b += (n->n_attribute + 1) * (sizeof(struct onnx_attr) + sizeof(struct onnx_tensor) + 32);
        for (size_t k = 0; k < n->n_attribute; k++)
            if (n->attribute[k]->has_s) b += n->attribute[k]->s.len + 16;
    }
    return b;
}

static int read_file(const char *path, uint8_t **buf, size_t *len, struct fv_error *err) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return fv_error_set(err, FV_ERR_IO, "%s: cannot open", path);
    struct stat st;
    if (fstat(fileno(fp), &st) || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return fv_error_set(err, FV_ERR_IO, "%s: not a regular file", path);
    }
    if ((unsigned long long)st.st_size > ONNX_MAX_FILE) {
        fclose(fp);
        return fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: %lld bytes; featviz reads ONNX files up to 2 GB (store weights as external data)",
                            path, (long long)st.st_size);
    }
    *len = (size_t)st.st_size;
    *buf = malloc(*len ? *len : 1);
    if (!*buf) {
        fclose(fp);
        return fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory for %zu bytes", path, *len);
    }
    size_t got = fread(*buf, 1, *len, fp);
    fclose(fp);
    if (got != *len) {
        free(*buf);
        return fv_error_set(err, FV_ERR_IO, "%s: read %zu of %zu bytes", path, got, *len);
    }
    return FV_OK;
}

int onnx_file_read(struct onnx_file *f, const char *path, struct fv_error *err) {
    memset(f, 0, sizeof *f);
    f->path = path;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = read_file(path, &buf, &len, err);
    if (rc) return rc;
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
    free(buf);
    if (!m)
        return fv_error_set(err, FV_ERR_FORMAT, "%s: not an ONNX model (the protobuf message cannot be decoded: truncated or another format)", path);
    f->pb = m;
    if (!m->graph || m->graph->n_node == 0) {
        onnx_file_free(f);
        return fv_error_set(err, FV_ERR_FORMAT, "%s: not an ONNX model (no graph, or a graph without nodes)", path);
    }
    f->ir_version = m->has_ir_version ? (int)m->ir_version : 0;
    snprintf(f->producer, sizeof f->producer, "%s%s%s", str(m->producer_name),
             m->producer_version && *m->producer_version ? " " : "", str(m->producer_version));
    f->opset = -1;
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[i];
        if ((!o->domain || !*o->domain || !strcmp(o->domain, "ai.onnx")) && o->has_version)
            f->opset = (int)o->version;
    }
    const Onnx__GraphProto *g = m->graph;
    f->graph_name = str(g->name);
    struct arena a = {.cap = view_bytes(g)};
    if (!(a.p = calloc(1, a.cap))) {
        onnx_file_free(f);
        return fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory", path);
    }
    f->mem = a.p;
    f->n_nodes = (int)g->n_node;
    f->n_inits = (int)g->n_initializer;
    f->n_inputs = (int)g->n_input;
    f->n_outputs = (int)g->n_output;
    if (g->n_node > 1000000 || g->n_initializer > 1000000 || g->n_input > 100000 || g->n_output > 100000) {
        onnx_file_free(f);
        return fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: graph too large", path);
    }
    f->nodes = arena_get(&a, (g->n_node + 1) * sizeof *f->nodes);
    f->inits = arena_get(&a, (g->n_initializer + 1) * sizeof *f->inits);
    f->inputs = arena_get(&a, (g->n_input + 1) * sizeof *f->inputs);
    f->outputs = arena_get(&a, (g->n_output + 1) * sizeof *f->outputs);
    for (size_t i = 0; i < g->n_initializer && !rc; i++) rc = conv_tensor(g->initializer[i], &f->inits[i], path, err);
    for (size_t i = 0; i < g->n_input; i++) conv_value_info(g->input[i], &f->inputs[i]);
    for (size_t i = 0; i < g->n_output; i++) conv_value_info(g->output[i], &f->outputs[i]);
    for (size_t i = 0; i < g->n_node && !rc; i++) {
        const Onnx__NodeProto *n = g->node[i];
        struct onnx_node *o = &f->nodes[i];
        o->name = str(n->name);
        o->op = str(n->op_type);
        o->domain = str(n->domain);
        o->n_in = (int)n->n_input;
        o->n_out = (int)n->n_output;
        o->in = arena_get(&a, (n->n_input + 1) * sizeof(char *));
        o->out = arena_get(&a, (n->n_output + 1) * sizeof(char *));
        for (size_t k = 0; k < n->n_input; k++) o->in[k] = str(n->input[k]);
        for (size_t k = 0; k < n->n_output; k++) o->out[k] = str(n->output[k]);
        o->n_attr = (int)n->n_attribute;
        o->attr = arena_get(&a, (n->n_attribute + 1) * sizeof *o->attr);
        for (size_t k = 0; k < n->n_attribute && !rc; k++) {
            const Onnx__AttributeProto *p = n->attribute[k];
            struct onnx_attr *t = &o->attr[k];
            t->name = str(p->name);
            t->type = p->has_type ? (int)p->type : 0;
            t->f = p->f;
            t->i = p->i;
            if (p->has_s) {
                char *s = arena_get(&a, p->s.len + 1);
                memcpy(s, p->s.data, p->s.len);
                s[p->s.len] = 0;
                t->s = s;
            }
            t->n_ints = p->n_ints, t->ints = p->ints;
            t->n_floats = p->n_floats, t->floats = p->floats;
            if (p->t) {
                t->t = arena_get(&a, sizeof *t->t);
                rc = conv_tensor(p->t, t->t, path, err);
            }
        }
    }
    if (rc) onnx_file_free(f);
    return rc;
}

void onnx_file_free(struct onnx_file *f) {
    if (f->pb) onnx__model_proto__free_unpacked(f->pb, NULL);
    free(f->mem);
    f->pb = NULL;
    f->mem = NULL;
}
