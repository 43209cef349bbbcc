/* Internal interface of the ONNX front end (src/formats/onnx/):
 *
 *   onnx_pb.c     file -> struct onnx_file (protobuf-c, the only user of the generated code)
 *   onnx_tensor.c tensor contents (inline, raw, float16, EXTERNAL data) -> doubles
 *   onnx_const.c  load-time evaluation of constant subgraphs (Shape->Gather->...->Reshape chains)
 *   onnx_ops.c    one ONNX operator -> featviz layer nodes
 *   onnx_graph.c  the entry point: order, values, names, then the common layout pass
 *
 * The structs below are a plain view of the protobuf message: pointers into it,
 * valid until onnx_file_free. */
#ifndef FEATVIZ_FORMATS_ONNX_H
#define FEATVIZ_FORMATS_ONNX_H

#include <stddef.h>
#include <stdint.h>

#include "featviz/formats.h"
#include "graph/build.h"

#define ONNX_MAX_RANK 8

/* TensorProto.DataType values featviz reads */
enum { ONNX_FLOAT = 1, ONNX_UINT8 = 2, ONNX_INT8 = 3, ONNX_INT32 = 6, ONNX_INT64 = 7,
       ONNX_BOOL = 9, ONNX_FLOAT16 = 10, ONNX_DOUBLE = 11 };

struct onnx_tensor {
    const char *name;
    int dtype;
    int rank;
    int64_t dims[ONNX_MAX_RANK];
    /* contents: one of these */
    const uint8_t *raw; size_t raw_len; int has_raw;
    const float *f; size_t n_f;
    const int32_t *i32; size_t n_i32;
    const int64_t *i64; size_t n_i64;
    const double *f64; size_t n_f64;
    /* data_location EXTERNAL */
    int external;
    const char *ext_location;
    int64_t ext_offset, ext_length; /* -1: not given */
};

enum { ONNX_ATTR_FLOAT = 1, ONNX_ATTR_INT = 2, ONNX_ATTR_STRING = 3, ONNX_ATTR_TENSOR = 4,
       ONNX_ATTR_FLOATS = 6, ONNX_ATTR_INTS = 7 };

struct onnx_attr {
    const char *name;
    int type;
    float f;
    int64_t i;
    const char *s;           /* NUL-terminated copy */
    size_t n_ints;
    const int64_t *ints;
    size_t n_floats;
    const float *floats;
    struct onnx_tensor *t;
};

struct onnx_node {
    const char *name, *op, *domain;
    int n_in, n_out;
    const char **in, **out;  /* "" = optional input left out */
    int n_attr;
    struct onnx_attr *attr;
};

struct onnx_value_info {
    const char *name;
    int dtype;
    int rank;                /* -1: unknown */
    int64_t dims[ONNX_MAX_RANK]; /* -1: symbolic */
};

struct onnx_file {
    const char *path;
    char producer[128];
    int opset;               /* default domain */
    int ir_version;
    const char *graph_name;
    int n_nodes, n_inits, n_inputs, n_outputs;
    struct onnx_node *nodes;
    struct onnx_tensor *inits;
    struct onnx_value_info *inputs, *outputs;
    void *pb;                /* the unpacked message */
    void *mem;               /* everything else, freed together */
};

/* Reads and unpacks path (at most ONNX_MAX_FILE bytes). Errors name the file. */
#define ONNX_MAX_FILE ((size_t)2 << 30)
int onnx_file_read(struct onnx_file *f, const char *path, struct fv_error *err);
void onnx_file_free(struct onnx_file *f);
/* 1 when a file's first bytes look like an ONNX ModelProto (HDF5 and zip
 * files start otherwise). */
int onnx_sniff(const unsigned char *head, size_t len);

/* Attribute by name, or NULL. */
const struct onnx_attr *onnx_attr_get(const struct onnx_node *n, const char *name);

/* ---- tensor contents (onnx_tensor.c) ---- */
/* Element count from dims, checked (0 on overflow or above ONNX_MAX_ELEMS). */
#define ONNX_MAX_ELEMS ((int64_t)1 << 31)
int onnx_tensor_count(const struct onnx_tensor *t, size_t *count, const char *path,
                      struct fv_error *err);
/* Contents as doubles (malloc'd, *count elements), converting float16/ints;
 * external data is read from the file beside model_path. */
int onnx_tensor_values(const struct onnx_tensor *t, const char *model_path, double **out,
                       size_t *count, struct fv_error *err);

/* ---- constants (onnx_const.c) ---- */
struct onnx_const {
    int rank;
    int64_t dims[ONNX_MAX_RANK];
    size_t count;
    double *v;
    int is_int;              /* integer dtype (shapes, indices) */
};
/* Evaluates node n whose inputs are all constants (in[i] NULL for a left-out
 * optional input). Returns FV_OK and fills out, an error, or
 * ONNX_NOT_FOLDABLE (err untouched) for operators it does not evaluate. */
#define ONNX_NOT_FOLDABLE (-1)
int onnx_const_eval(const struct onnx_node *n, struct onnx_const **in, int n_in,
                    struct onnx_const *out, const char *path, struct fv_error *err);
void onnx_const_free(struct onnx_const *c);

/* ---- graph building (onnx_graph.c, onnx_ops.c) ---- */

/* A runtime tensor: the node computing it and its ONNX shape without the batch
 * axis (dims known for the declared input size; -1 unknown). */
struct onnx_val {
    int node;
    int rank;
    int64_t dims[FV_MAX_RANK];
};

struct onnx_builder;

/* Translates one operator whose first input is a runtime tensor. Inputs:
 * rt[i] the runtime value of input i or NULL, cst[i] its constant or NULL.
 * Adds nodes with onnx_add_node and sets *out. */
int onnx_op_translate(struct onnx_builder *b, const struct onnx_node *n,
                      struct onnx_val **rt, struct onnx_const **cst, struct onnx_val *out,
                      struct fv_error *err);
/* 1 for operators featviz refuses by name (recurrent, ConvTranspose, ...). */
int onnx_op_refused(const char *op);
/* 1 for operators featviz translates. */
int onnx_op_known(const char *op);

/* Adds a layer node reading the runtime values ins[0..n_in) and returns its
 * index (or -1 with err set). name is made unique; its spec is zeroed. */
int onnx_add_node(struct onnx_builder *b, const char *name, const char *op, const struct onnx_val *ins,
                  int n_in, struct fv_error *err);
struct fv_layer *onnx_node_at(struct onnx_builder *b, int i);
struct fv_node_spec *onnx_spec_at(struct onnx_builder *b, int i);
const char *onnx_path(const struct onnx_builder *b);
int onnx_opset(const struct onnx_builder *b);
/* Hands a malloc'd weight array to layer i. */
void onnx_node_weight(struct onnx_builder *b, int i, float *w, size_t len);


#endif
