/* Objectives: what the gradient ascent maximizes, one small grammar for the
 * command line and config files.
 *
 *   class:C              pre-softmax logit of class C
 *   filter:LAYER:F       spatial mean of channel F of LAYER's output (Dense: unit F)
 *   filter:LAYER:F:pre   the same before LAYER's fused activation
 *   neuron:LAYER:F:Y:X   one unit (channel F at row Y, column X); :pre allowed
 *   dream:LAYER          mean of the squares of all of LAYER's outputs; :pre allowed
 *   weighted sums:       class:14 - 0.5*class:13,  2*filter:conv2d_1:3 + dream:conv2d_2
 * Put spaces around + and - when a layer name precedes them.
 * In a batch each image has its own objective; its value and gradient depend
 * only on that image. */
#ifndef FEATVIZ_OBJECTIVE_H
#define FEATVIZ_OBJECTIVE_H

#include "featviz/graph.h"

#define FV_MAX_TERMS 16

enum fv_term_kind { FV_TERM_CLASS, FV_TERM_FILTER, FV_TERM_NEURON, FV_TERM_DREAM, FV_TERM_LOGPROB };

struct fv_term {
    enum fv_term_kind kind;
    float weight;
    int node;          /* node whose output the term reads */
    int pre;           /* read the value before the node's fused activation */
    int channel;       /* class index, filter index or unit */
    int y, x;          /* neuron position */
};

struct fv_objective {
    int n;
    struct fv_term t[FV_MAX_TERMS];
    char text[256];
};

/* Parses text against a model; errors quote the text and say what is wrong
 * (unknown layer, channel out of range, ...). Shapes are checked against the
 * plan-independent parts (channels); positions are checked by fv_objective_check. */
int fv_objective_parse(const char *text, const struct fv_model *m, struct fv_objective *o,
                       struct fv_error *err);
/* Checks channel and position ranges against a plan's shapes. */
int fv_objective_check(const struct fv_objective *o, const struct fv_plan *p,
                       struct fv_error *err);
/* Whether it reads a value before a ReLU (which FV_PLAN_FUSE plans do not keep). */
int fv_objective_reads_pre_relu(const struct fv_objective *o, const struct fv_model *m);
/* The highest node the objective reads: run fv_forward/fv_backward up to it. */
int fv_objective_top(const struct fv_objective *o);
/* The one channel of node's output the objective reads (filter and neuron
 * terms on one channel of node only), or -1: for fv_plan_pick. */
int fv_objective_channel(const struct fv_objective *o, int node);
/* Value for image img of the plan's batch (after fv_forward). */
double fv_objective_value(const struct fv_objective *o, const struct fv_plan *p, int img);
/* Adds d value / d output for image img into the plan's gradient buffers. */
void fv_objective_seed(const struct fv_objective *o, struct fv_plan *p, int img, float scale);

/* Whether the objective can be seeded band by band (fv_bands on node top):
 * every term is a mean over top's positions (filter, dream). */
int fv_objective_bands_ok(const struct fv_objective *o, int top);
/* fv_objective_seed for a plan holding the crop of band b: seeds only the
 * rows the band owns, with means over the whole image's top_h rows of top.
 * Summed over the bands, the input gradients are the whole image's. */
void fv_objective_seed_band(const struct fv_objective *o, struct fv_plan *p, int img, float scale,
                            const struct fv_band *b, int top_h);

#endif
