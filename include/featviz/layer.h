/* One node of the network graph, and the contract every layer type fulfils.
 *
 * Tensor layout (the one internal layout, fixed at load):
 *   A batch of n images is stored image after image. Inside one image a tensor
 *   is a row-major array of its *physical* dims `struct fv_shape`:
 *     spatial tensors  rank 3: (H, W, C)   channels innermost, whatever Keras' data_format;
 *     vectors          rank 1: (C);
 *     other            rank 2..4, e.g. the output of a Reshape.
 *   Keras' own (logical) order of a node's output is recorded in fv_layer.kperm:
 *   Keras dim i is physical dim kperm[i]. A channels_first tensor (C,H,W) stored as
 *   (H,W,C) has kperm = {2,0,1}. The graph builder inserts Permute nodes where a
 *   layer needs another physical order than its input has (see fv_layout_need).
 *
 * Weights are frozen: backward only gives the gradient with respect to inputs.
 * backward ACCUMULATES (dx += J^T dy); the runtime zeros gradients once per pass,
 * so fan-out and fan-in need no special cases.
 */
#ifndef FEATVIZ_LAYER_H
#define FEATVIZ_LAYER_H

#include <stddef.h>

#include "featviz/error.h"

#define FV_MAX_RANK 4
#define FV_MAX_IN 32
#define FV_MAX_W 4
#define FV_NAME_MAX 128

struct fv_shape {
    int rank;
    int d[FV_MAX_RANK];
};

/* Number of elements of one image's tensor. */
size_t fv_shape_count(const struct fv_shape *s);

/* ---- activations (fused into Conv/Dense, or standalone layers) ---- */
enum fv_act_kind {
    FV_ACT_LINEAR = 0,
    FV_ACT_RELU,         /* Keras ReLU: max_value, negative_slope, threshold */
    FV_ACT_ELU,          /* alpha */
    FV_ACT_SELU,
    FV_ACT_SIGMOID,
    FV_ACT_HARD_SIGMOID, /* Keras 2: clip(0.2x+0.5,0,1) */
    FV_ACT_HARD_SIGMOID3,/* Keras 3: relu6(x+3)/6 */
    FV_ACT_TANH,
    FV_ACT_SOFTMAX,      /* over one axis: see fv_act_forward */
    FV_ACT_SOFTPLUS,
    FV_ACT_SOFTSIGN,
    FV_ACT_SWISH,        /* x*sigmoid(x), also "silu" */
    FV_ACT_GELU,         /* exact erf form; approximate=true uses tanh form */
    FV_ACT_GELU_TANH,
    FV_ACT_EXPONENTIAL,
    FV_ACT_HARD_SIGMOID_AB, /* ONNX HardSigmoid: clip(alpha*x + beta, 0, 1), beta in threshold */
    FV_ACT_HARD_SWISH,   /* x*relu6(x+3)/6 */
    FV_ACT_CLIP,         /* ONNX Clip: min(max(x, alpha), max_value) */
    FV_ACT_COUNT
};

struct fv_act {
    enum fv_act_kind kind;
    float alpha;      /* ReLU negative_slope, LeakyReLU/ELU alpha */
    float max_value;  /* ReLU max_value; <0 means none */
    float threshold;  /* ReLU threshold */
};

/* Parses a Keras activation name ("relu", "relu6", "leaky_relu", ...).
 * keras3 selects the Keras 3 meaning of names that changed (hard_sigmoid).
 * Returns FV_ERR_UNSUPPORTED for unknown names. */
int fv_act_parse(const char *name, int keras3, struct fv_act *out, struct fv_error *err);
const char *fv_act_name(const struct fv_act *a);

/* The tensor is seen as (outer, dim, inner); softmax normalises along dim,
 * elementwise kinds ignore the structure. y may equal x. */
void fv_act_forward(const struct fv_act *a, const float *x, float *y, size_t outer, int dim,
                    size_t inner);
/* dx += dact/dx * dy, from the activation's input x and output y.
 * escape: Lucid's "redirected ReLU" for the dead-ReLU escape: where the plain
 * gradient would be blocked, pass it through if it points towards activating. */
void fv_act_backward(const struct fv_act *a, const float *x, const float *y, const float *dy,
                     float *dx, size_t outer, int dim, size_t inner, int escape);
/* The same for a ReLU (no slope, no threshold) whose input was overwritten by
 * its output: g = g * (y > 0) in place (escape: where y == 0, g = max(g, 0));
 * cap > 0: the ReLU's max_value (ReLU6: 6), g = g * (0 < y < cap). */
void fv_relu_backward_in_place(const float *y, float *g, size_t count, int escape, float cap);
/* The same (no escape) into another buffer: dx = (assign ? 0 : dx) + g * (0 < y < cap), the
 * same bits as the in-place mask followed by dx += g. */
void fv_relu_backward_to(const float *y, const float *g, float *dx, size_t count, float cap, int assign);
/* dx = dx where 0 < y (< cap when cap > 0), else +0: the same bits as the
 * in-place mask (serial: for layers that gate what they just wrote). */
void fv_relu_gate(float *dx, const float *y, size_t count, float cap);

/* ---- layer contract ---- */

/* What physical order a layer needs for its inputs. */
enum fv_layout_need {
    FV_NEED_ANY = 0,  /* elementwise: any order; multiple inputs must agree (builder unifies) */
    FV_NEED_SPATIAL,  /* (H,W,C) as seen by the layer's data_format (fv_layer.cf) */
    FV_NEED_KERAS     /* Keras' own row-major order (kperm = identity) */
};

/* How a layer's output rows read its input rows: output row r depends on
 * rows r*stride - pad .. r*stride - pad + extent - 1 of each input only, the
 * same way for every r (rows outside the input are the layer's padding).
 * Networks made of such layers can run on bands of rows (src/graph/bands.c). */
struct fv_rows {
    int stride, pad, extent;
};

/* Buffers and shapes of one call, for a batch of n images. Built by the planner. */
struct fv_io {
    int n;                       /* images in the batch */
    int n_in;
    struct fv_shape in[FV_MAX_IN];  /* per-image input shapes */
    struct fv_shape out;            /* per-image output shape (set by ops->shape) */
    size_t ws_floats;               /* scratch the layer asks for (set by ops->shape, for batch n) */

    const float *x[FV_MAX_IN];   /* inputs, each (n, in[i]) */
    float *y;                    /* output (n, out); before the fused activation, if any */
    const float *dy;             /* gradient wrt y (n, out) */
    float *dx[FV_MAX_IN];        /* gradient wrt x[i], accumulated; NULL: not needed */
    int dx_assign[FV_MAX_IN];    /* nothing wrote dx[i] yet: ops with assigns_dx overwrite it
                                    (all of it) instead of adding to it */
    int dx_relu[FV_MAX_IN];      /* with dx_assign: x[i] is the output of a plain ReLU that only
                                    this layer reads; ops with masks_dx write dx[i] already
                                    through its derivative, (x[i] > 0) * J^T dy */
    float dx_relu_cap[FV_MAX_IN]; /* with dx_relu, > 0 (ops with masks_dx_cap only): the ReLU is
                                    capped there (ReLU6), the derivative (0 < x[i] < cap) */
    float *ws;                   /* scratch, ws_floats long; contents undefined on entry */
    int relu;                    /* forward ends with y = max(0, y) (ops with fuses_relu only) */
    float relu_cap;              /* with relu, > 0: then y = min(y, relu_cap) (ReLU6: 6) */
    int grad;                    /* set before ops->shape: the plan will run backward too */
    const int *pick;             /* or NULL: of image i's output only channel pick[i] is read
                                    (a filter objective), so ops with picks may compute just
                                    that one (set by fv_plan_pick) */
    float *cache;                /* values derived from the weights for this plan (transformed
                                    kernels), cache_floats long (set by ops->shape): filled
                                    once by ops->prepare, read-only in the passes */
    size_t cache_floats;
};

struct fv_layer;

/* What a layer is, for code outside the layer and its front ends (which never
 * compare ops pointers). */
enum {
    FV_OPF_FILTERS = 1,      /* output channels are learned filters (convolutions):
                                each has a preferred pattern */
    FV_OPF_UNITS = 2,        /* output units are learned weighted sums (Dense) */
    FV_OPF_KERNEL_IMAGE = 4, /* w[0] is a (KH,KW,C,OC) kernel that can be drawn as images */
    FV_OPF_IDENTITY = 8,     /* output = input (before the fused activation): Dropout & co */
    FV_OPF_SCALE_SHIFT = 16, /* y = x * w[0][k] + w[1][k], k the index along the physical axis
                                p.bn.axis (BatchNorm at inference) */
    FV_OPF_FOLDS_SCALE = 32  /* linear in its input with weights w[0] whose element e belongs to
                                output channel e % OC (the last physical axis) and an optional
                                (OC) bias w[1] (p.conv.use_bias): a scale and shift per output
                                channel after it can be folded into them (src/graph/fold.c) */
};

struct fv_layer_ops {
    const char *kind;            /* internal kind, e.g. "conv2d" */
    enum fv_layout_need need;
    unsigned flags;              /* FV_OPF_* */
    /* Output rank for an input of in_rank dimensions, -1 when the layer cannot
     * take it (NULL: spatial layers need and keep rank 3, others keep in_rank). */
    int (*out_rank)(const struct fv_layer *l, int in_rank);
    /* The parameter that holds the PHYSICAL axis the layer works along (BN,
     * Concatenate), which the graph builder resolves from the front end's
     * logical axis (NULL: the layer has none). */
    int *(*axis)(struct fv_layer *l);
    /* Sets io->out and io->ws_floats from io->in and io->n; checks they fit.
     * Errors name the layer. */
    int (*shape)(const struct fv_layer *l, struct fv_io *io, struct fv_error *err);
    void (*forward)(const struct fv_layer *l, const struct fv_io *io);
    void (*backward)(const struct fv_layer *l, const struct fv_io *io);
    /* Fills io->cache from the weights; called once when a plan is made
     * (NULL: no cache). */
    void (*prepare)(const struct fv_layer *l, const struct fv_io *io);
    /* forward can apply a plain or capped ReLU (ReLU6) to its own output
     * while it is still in cache (io->relu, io->relu_cap), so the plan need
     * not keep the value before it nor pass over it again */
    int fuses_relu;
    /* backward honours io->dx_assign (saves zeroing dx first) */
    int assigns_dx;
    /* ... and io->dx_relu (saves a pass over dx for the ReLU) */
    int masks_dx;
    /* ... also for a capped ReLU (io->dx_relu_cap: ReLU6) */
    int masks_dx_cap;
    /* forward honours io->pick (writes only the picked channel of each image) */
    int picks;
    /* backward reads only dy and the weights, never the values of io->x
     * (except through io->dx_relu, whose input the planner keeps anyway), so
     * a plan that shares memory by lifetime may reuse the inputs' memory once
     * the forward pass is past them */
    int backward_skips_x;
    /* Sets *r for the shapes in io (after ops->shape) and returns 1 when the
     * layer maps rows that way; NULL or 0: its output rows mix all input rows
     * (Flatten, Dense, global pooling, ...). */
    int (*rows)(const struct fv_layer *l, const struct fv_io *io, struct fv_rows *r);
    /* Multiply-adds x2 for one image (NULL: count as 0). */
    double (*flops)(const struct fv_layer *l, const struct fv_io *io);
};

/* For callers that run one layer outside a plan (tests, benchmarks): after
 * ops->shape, allocates io->cache (malloc; the caller frees it) and fills it
 * with ops->prepare. Returns FV_OK or FV_ERR_NOMEM. */
int fv_layer_prepare(const struct fv_layer *l, struct fv_io *io);

/* Per-type hyper-parameters. Which member is used is the ops' business. */
struct fv_conv_params {          /* Conv2D, DepthwiseConv2D, SeparableConv2D */
    int filters;                 /* output channels */
    int kh, kw, sh, sw, dh, dw;  /* kernel, strides, dilation */
    int same;                    /* padding 'same' (else 'valid') */
    int multiplier;              /* depth_multiplier (depthwise, separable) */
    int use_bias;
    int groups;
    int pad_explicit;            /* pads below instead of same/valid (ONNX) */
    int pad_t, pad_b, pad_l, pad_r;
};
struct fv_pool_params {          /* Max/AveragePooling2D, Global*Pooling2D */
    int ph, pw, sh, sw;
    int same;
    int keepdims;
    int pad_explicit;            /* pads below instead of same/valid (ONNX) */
    int pad_t, pad_b, pad_l, pad_r;
    int ceil_mode;               /* with pad_explicit: output size rounded up */
    int count_include_pad;       /* average: divide by the window inside the padded image */
};
struct fv_pad_params {           /* ZeroPadding2D, Cropping2D */
    int top, bottom, left, right;
};
struct fv_upsample_params {
    int fh, fw;
    int bilinear;
};
struct fv_resize_params {        /* Resizing: to oh x ow, from the centred crop of the
                                    input's aspect ratio when crop (crop_to_aspect_ratio) */
    int oh, ow;
    int bilinear;
    int crop;
};
struct fv_bn_params {
    int axis;                    /* PHYSICAL axis of the normalised dimension */
    float epsilon;
};
struct fv_merge_params {         /* Add/Subtract/Multiply/Average/Maximum/Minimum/Concatenate */
    int op;                      /* enum fv_merge_op in src/layers/merge.c */
    int axis;                    /* Concatenate: PHYSICAL axis to join on */
};
struct fv_reshape_params {       /* Reshape, Flatten */
    int rank;
    int d[FV_MAX_RANK];          /* target Keras shape, -1 = infer */
};
struct fv_permute_params {       /* internal physical transpose: out dim i = in dim perm[i] */
    int rank;
    int perm[FV_MAX_RANK];
};
struct fv_affine_params {        /* declared Lambda replacement: x*scale+offset */
    float scale, offset;
};

struct fv_layer {
    char name[FV_NAME_MAX];      /* Keras layer name (unique in the model) */
    char tensor[FV_NAME_MAX];    /* ONNX: name of the output tensor, also addressable ("" for Keras) */
    char keras_class[64];        /* "Conv2D", "Convolution2D", ... as in the file */
    const struct fv_layer_ops *ops;

    int n_in;
    int in[FV_MAX_IN];           /* indices of input nodes in fv_model.layers */

    int cf;                      /* data_format channels_first */
    int kperm[FV_MAX_RANK];      /* Keras dim i is physical output dim kperm[i] */
    int out_rank;                /* rank of the output (for kperm) */

    struct fv_act act;           /* fused activation applied after ops->forward */
    int act_axis;                /* softmax: Keras axis (no batch dim); -1 = last */
    int hidden;                  /* inserted by featviz (Permute), not a Keras layer */
    int group;                   /* 1 + index in fv_model.groups of the innermost nested
                                    model holding the layer; 0: the top level */

    union {
        struct fv_conv_params conv;
        struct fv_pool_params pool;
        struct fv_pad_params pad;
        struct fv_upsample_params up;
        struct fv_resize_params resize;
        struct fv_bn_params bn;
        struct fv_merge_params merge;
        struct fv_reshape_params reshape;
        struct fv_permute_params permute;
        struct fv_affine_params affine;
    } p;

    /* Weights in internal layout (see each layer file), owned by the model. */
    int n_w;
    float *w[FV_MAX_W];
    size_t w_len[FV_MAX_W];
    size_t params_trainable, params_fixed; /* Keras' parameter counts */
};

#endif
