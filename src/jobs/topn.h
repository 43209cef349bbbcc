/* The top-N classes of one model output, as `featviz predict` prints them and
 * `featviz activations` writes them beside the maps (text and JSON). */
#ifndef FEATVIZ_JOBS_TOPN_H
#define FEATVIZ_JOBS_TOPN_H

#include <stddef.h>
#include <stdio.h>

#include "featviz/labels.h"
#include "featviz/graph.h"
#include "jobs/inputs.h"

/* Indices of the k largest of v (n values), largest first (ties: lower index first). */
void topn_indices(const float *v, int n, int k, int *idx);
/* 1 when the model output is probabilities (the model ends in a softmax). */
int topn_is_prob(const struct fv_model *m);
/* "path" or "path[i]" for an item of a batched array. */
void topn_item_name(const struct fv_inputs *in, size_t item, char *out, size_t cap);
/* name, then one line per class: "  %4d  %-50s %10.6f". */
void topn_print_text(FILE *f, const char *name, const float *v, const int *idx, int top,
                     const struct fv_labels *labels);
/* {"input": name, "top": [{"class": i, "label": "..." or null, "probability" or "value": x}, ...]} */
void topn_print_json(FILE *f, const char *name, const float *v, const int *idx, int top,
                     const struct fv_labels *labels, int probs);

#endif
