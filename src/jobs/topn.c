#include "jobs/topn.h"

#include <string.h>

#include "jobs/common.h"

void topn_indices(const float *v, int n, int k, int *idx) {
    for (int i = 0; i < k; i++) idx[i] = -1;
    for (int j = 0; j < n; j++) {
        int pos = k;
        while (pos > 0 && (idx[pos - 1] < 0 || v[j] > v[idx[pos - 1]])) pos--;
        if (pos >= k) continue;
        memmove(idx + pos + 1, idx + pos, (size_t)(k - pos - 1) * sizeof *idx);
        idx[pos] = j;
    }
}

int topn_is_prob(const struct fv_model *m) {
    int pre, logits = fv_model_logits(m, &pre);
    return logits != m->output || pre;
}

void topn_item_name(const struct fv_inputs *in, size_t item, char *out, size_t cap) {
    size_t idx;
    const struct fv_source *s = fv_inputs_source(in, item, &idx);
    if (!s) snprintf(out, cap, "item %zu", item);
    else if (s->batched) snprintf(out, cap, "%s[%zu]", s->path, idx);
    else snprintf(out, cap, "%s", s->path);
}

void topn_print_text(FILE *f, const char *name, const float *v, const int *idx, int top,
                     const struct fv_labels *labels) {
    fprintf(f, "%s\n", name);
    for (int t = 0; t < top; t++) {
        const char *lab = fv_labels_get(labels, idx[t]);
        fprintf(f, "  %4d  %-50s %10.6f\n", idx[t], lab ? lab : "", (double)v[idx[t]]);
    }
}

void topn_print_json(FILE *f, const char *name, const float *v, const int *idx, int top,
                     const struct fv_labels *labels, int probs) {
    fprintf(f, "{\"input\": ");
    job_json_string(f, name);
    fprintf(f, ", \"top\": [");
    for (int t = 0; t < top; t++) {
        fprintf(f, "%s{\"class\": %d, \"label\": ", t ? ", " : "", idx[t]);
        const char *lab = fv_labels_get(labels, idx[t]);
        if (lab) job_json_string(f, lab);
        else fprintf(f, "null");
        fprintf(f, ", \"%s\": %.6g}", probs ? "probability" : "value", (double)v[idx[t]]);
    }
    fprintf(f, "]}");
}
