/* A loaded model as a graph of fv_layer nodes in topological order, and a
 * plan: the memory for one batch size and input size, with forward and
 * backward passes over it. Nothing here knows which file format the model
 * came from.
 *
 *   format front end (src/formats/) -> graph (struct fv_model, src/graph/)
 *     -> plan (n, H, W) -> forward/backward
 */
#ifndef FEATVIZ_GRAPH_H
#define FEATVIZ_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "featviz/error.h"
#include "featviz/layer.h"

/* A model nested in the model (Keras' base_model inside a Sequential): its
 * layers are nodes of the one graph; it is addressed by its name, meaning
 * its output. */
struct fv_group {
    char name[FV_NAME_MAX];
    char cls[64];                /* "Functional", "Sequential" */
    char output[FV_NAME_MAX];    /* name of the node that is its output */
    int parent;                  /* 1 + index of the enclosing group; 0: top level */
};

struct fv_model {
    char path[1024];
    char format[32];         /* the front end's name for the file: "Keras HDF5",
                                "Keras 3 archive", "Keras 3 folder", "ONNX", ... */
    char producer[96];       /* the framework that wrote it, as the file says */
    char keras_version[64];  /* "" when the file does not say (Keras 1) */
    char backend[64];
    char model_class[64];    /* "Sequential", "Functional", "Model" */
    char name[FV_NAME_MAX];

    int n_layers;
    struct fv_layer *layers; /* topological order; layers[input] is the InputLayer */
    int input;               /* node index of the input */
    int output;              /* node index of the model output */

    /* Declared input shape (Keras order, without batch); -1 = None. */
    int in_rank;
    int in_dims[FV_MAX_RANK];

    int n_groups;
    struct fv_group *groups; /* nested models, outer ones first */

    void *weights_mem;       /* one block holding every weight */

    /* Per layer, the kernel in the forms the passes multiply by (transposed,
     * Winograd-transformed: ops->prepare), made by the first plan that needs
     * it, in the form with gradients, and shared by every later plan (NULL:
     * each plan makes its own). */
    struct fv_prepared {
        float *data;
        size_t floats;
    } *prepared;

    /* The same network with every BatchNorm (and the ReLU-like activation
     * layer after it, if any) folded into the convolution or Dense before it
     * (src/graph/fold.c), for plans with FV_PLAN_FOLD; NULL when nothing
     * folds. Its nodes have the same indices: fold[i] says which of them
     * took over the work of the ones before (FV_FOLD_MERGED: the
     * convolution with folded weights, under the last folded node's name and
     * activation) and which are left out (FV_FOLD_GONE). */
    struct fv_model *folded;
    unsigned char *fold;     /* (n_layers), in the folded model only */
    const struct fv_model *base; /* the folded model's original */
};

enum { FV_FOLD_GONE = 1, FV_FOLD_MERGED = 2 };

/* Makes m->folded (left NULL when nothing folds). Returns FV_OK or FV_ERR_NOMEM. */
int fv_model_fold(struct fv_model *m, struct fv_error *err);

void fv_model_free(struct fv_model *m);

/* Node index of a layer by name; -1 when absent. A nested model's name
 * stands for its output node, and its layers can also be named by their path
 * "outer/inner". */
int fv_model_find(const struct fv_model *m, const char *name);

/* The node whose output is the last softmax's input (the logits) and whether
 * the model ends in a softmax at all. Walks back over Dropout-like identities.
 * Returns the node index; *pre is set when the logits are the pre-activation
 * value of that node (softmax fused into a Dense). */
int fv_model_logits(const struct fv_model *m, int *pre);

/* Input height/width/channels for a plan, from the declared input
 * (channels_first inputs are reported as H,W,C too). */
void fv_model_input_hwc(const struct fv_model *m, int *h, int *w, int *c);

/* Checks that every layer's shapes fit for an h x w input (no memory planned). */
int fv_model_check(const struct fv_model *m, int h, int w, struct fv_error *err);

/* ---- plans ---- */

/* FV_PLAN_GRAD: gradients too. FV_PLAN_FUSE: nodes with a plain ReLU (or a
 * capped one, ReLU6, without slope or threshold) keep
 * only the activated values (half the memory; layers that can apply the ReLU
 * in their own output pass), so their pre-activation values are not there to
 * read: for callers that only read outputs after activation. FV_PLAN_FOLD
 * (fv_plan_init_shared only): the plan runs m->folded where no seeded node
 * and not `upto` is one it leaves out (p->m says which model ran): the same
 * function rounded differently, without the BatchNorm passes. */
enum { FV_PLAN_GRAD = 1, FV_PLAN_FUSE = 2, FV_PLAN_FOLD = 4 };

struct fv_node_buf {
    float *y;        /* output after activation (n, out) */
    float *pre;      /* before the fused activation; == y when linear */
    float *dy;       /* gradient wrt y, NULL without FV_PLAN_GRAD */
    float *dpre;     /* gradient wrt pre; == dy when linear. Objectives on the
                        pre-activation value seed it directly. */
    int relu_in_place; /* FV_PLAN_FUSE and a plain or capped ReLU: pre == y, dpre == dy */
    float relu_cap;    /* relu_in_place and capped (ReLU6: 6), else 0 */
    int grad_stale;  /* dy/dpre not zeroed since fv_grad_zero (see fv_plan_grad) */
    int grad_masked; /* relu_in_place, and the layer that wrote dy applied the ReLU's derivative */
    int shared;      /* fv_plan_init_shared: y and pre share memory with other buffers by
                        lifetime, so their values are there only while the passes need them */
};

struct fv_plan {
    const struct fv_model *m;
    int n, h, w;                 /* batch and input size */
    int flags;
    struct fv_io *io;            /* per node, ready to call */
    struct fv_node_buf *buf;     /* per node */
    float *x;                    /* model input (n, H, W, C) physical; aliases buf[input].y */
    float *dx;                   /* gradient wrt input, aliases buf[input].dy */
    unsigned char *active;       /* scratch mask used by forward/backward */
    int *uses;                   /* scratch: readers of each node among the active ones */
    void *mem;                   /* one block for everything */
    size_t mem_floats;
    int escape_relu;             /* dead-ReLU escape in backward */
    int upto;                    /* highest planned node (-1: all) */
    int shared_memory;           /* fv_plan_init_shared: buffers reused by lifetime */
    /* Random dropout on the output of every filter layer (conv, Dense) whose
     * ReLU is applied in place (FV_PLAN_FUSE), for image synthesis (Ghost
     * networks, Li et al. 2020: each step sees a slightly different model).
     * Element e of node t's output of image i is kept (and divided by 1 -
     * drop) unless hash(drop_keys[i], drop_step, t, e) falls below drop; the
     * backward applies the same mask. drop = 0 (the default): off. */
    float drop;
    const uint64_t *drop_keys;   /* (n) one key per image */
    uint64_t drop_step;
};

/* Plans for n images of h x w (the input's spatial size; ignored for non-image inputs).
 * Shapes are checked here: errors name the layer. */
int fv_plan_init(struct fv_plan *p, const struct fv_model *m, int n, int h, int w, int flags,
                 struct fv_error *err);
/* The same, planning only the nodes that `upto` depends on (upto < 0: all):
 * a conv trunk can then run at any size even when later Dense layers could
 * not, and memory is spent only where it is needed. Passes must not go
 * beyond upto. */
int fv_plan_init_upto(struct fv_plan *p, const struct fv_model *m, int n, int h, int w, int flags,
                      int upto, struct fv_error *err);
/* The same with FV_PLAN_GRAD, for callers (the optimizer) that read no
 * gradient after fv_backward but the input's (p->dx) and no value but those of
 * the input and of the nodes seeded[] marks (the ones objectives and
 * penalties read and seed, which only those may seed): every other output and
 * gradient lives only while the passes need it (an output until its last
 * reader's forward, or its last reader's backward where that reads its
 * inputs, or its own when it has an activation; a gradient from its last
 * reader's backward to its own), and buffers that are never live at the same
 * time share memory, so the plan takes about as much as the largest few
 * layers instead of the whole network. */
int fv_plan_init_shared(struct fv_plan *p, const struct fv_model *m, int n, int h, int w, int flags,
                        int upto, const unsigned char *seeded, struct fv_error *err);
void fv_plan_free(struct fv_plan *p);

/* Of node t's output, only channel channels[i] of image i will be read (one
 * filter per image): t may compute just those, and its other channels are
 * then 0 before the activation. Only for the plan's highest node (`upto`: nothing in the plan
 * reads it) and layers that can (ops->picks), with an elementwise activation.
 * channels must stay valid while the passes run; NULL: every channel again.
 * Returns 1 when t computes only the picked channels. */
int fv_plan_pick(struct fv_plan *p, int t, const int *channels);

/* What fv_plan_init_upto would plan, without the memory: io (m->n_layers
 * entries) gets the shapes of every node `upto` needs, *floats the size of
 * the plan's block without the layers' scratch (which grows with the number
 * of threads: decisions made on *floats do not). */
int fv_plan_measure(const struct fv_model *m, int n, int h, int w, int flags, int upto,
                    struct fv_io *io, size_t *floats, struct fv_error *err);

/* ---- bands of rows (bands.c) ----
 * A network whose layers up to `top` all map rows (ops->rows: convolutions,
 * pooling, padding, elementwise layers) can run on a crop of the image's rows
 * instead of the whole image: away from the crop's edges, its rows of top are
 * exactly those of the whole image. An objective that sums over top's
 * positions then gets its exact gradient as the sum, over bands, of each
 * band's gradient from the rows it owns, in memory for one band. */
struct fv_band {
    int y0;      /* first input row of the band's crop */
    int off;     /* the crop's row r of top is the whole image's row r + off */
    int r0, r1;  /* the crop's rows of top this band owns: exact, and no other band's */
};

struct fv_bands {
    int rows;    /* input rows of every crop */
    int top_h;   /* rows of top for the whole image */
    int n;
    struct fv_band *band;
};

/* Bands of about `rows` input rows (rounded up by less than the network's
 * total stride) covering every row of top of an h x w input. Sets b->n = 0
 * (and returns FV_OK) when bands cannot be used: a layer up to top mixes
 * rows, rows >= h, or no crop computes some row exactly. */
int fv_bands_make(const struct fv_model *m, int top, int h, int w, int rows, struct fv_bands *b,
                  struct fv_error *err);
void fv_bands_free(struct fv_bands *b);

/* Runs the nodes needed for `upto` (all nodes when upto < 0) on plan->x. */
void fv_forward(struct fv_plan *p, int upto);
/* Zeros all gradients (lazily: each node's when it is first written). Then
 * the caller seeds fv_plan_grad(p, t, pre) and calls fv_backward to get
 * plan->dx; after that every dy and dpre holds its gradient. */
void fv_grad_zero(struct fv_plan *p);
/* Node t's gradient buffer (dy, or dpre when pre) for the whole batch,
 * zeroed if nothing wrote it since fv_grad_zero. */
float *fv_plan_grad(struct fv_plan *p, int t, int pre);
/* Backpropagates from every node with a seeded gradient down to the input.
 * `from` is the highest node that was seeded. */
void fv_backward(struct fv_plan *p, int from);

/* Copies node t's output for the whole batch into out, in Keras order
 * (n, Keras dims); pre selects the value before the fused activation. */
void fv_plan_read_keras(const struct fv_plan *p, int t, int pre, float *out);
/* The same for images first..first+count-1 only (serial: for callers that
 * cut a batch into pieces which stay in cache). */
void fv_plan_read_keras_images(const struct fv_plan *p, int t, int pre, int first, int count, float *out);
/* Converts a batch given in the model input's Keras order (n, Keras dims)
 * into plan->x. */
void fv_plan_write_input(struct fv_plan *p, const float *keras_x);
/* Converts a gradient/array in physical input order (plan->dx layout) to Keras order. */
void fv_plan_input_to_keras(const struct fv_plan *p, const float *phys, float *keras);

/* One image of node l's output between physical order `phys` and Keras order. */
void fv_to_keras(const struct fv_layer *l, const struct fv_shape *phys, const float *src, float *dst);
void fv_from_keras(const struct fv_layer *l, const struct fv_shape *phys, const float *src,
                   float *dst);

/* Keras-order view of a node's output shape (without batch). */
void fv_keras_shape(const struct fv_layer *l, const struct fv_shape *phys, struct fv_shape *keras);

#endif
