/* `featviz predict`: the top N classes of each input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "featviz/jobs.h"
#include "jobs/common.h"
#include "jobs/inputs.h"
#include "jobs/topn.h"

int fv_job_predict(const struct fv_settings *s, struct fv_error *err) {
    struct fv_model m;
    struct fv_labels labels = {0};
    struct fv_preproc pp;
    struct fv_inputs in = {0};
    struct fv_plan p = {0};
    float *out = NULL;
    int *idx = NULL;
    int rc = job_load_model(s, &m, err);
    if (rc) return rc;
    int h, w, c;
    fv_model_input_hwc(&m, &h, &w, &c);
    if ((rc = job_preproc(s, c, &pp, err)) || (rc = job_labels(s, &labels, err))) goto done;
    if ((rc = fv_inputs_open(&in, fv_get_str(s, "predict", "inputs"), &m, &pp, 0, 0, err))) goto done;
    int batch = fv_get_int(s, "predict", "batch");
    if ((size_t)batch > in.total) batch = (int)in.total;
    if ((rc = fv_plan_init(&p, &m, batch, in.h, in.w, FV_PLAN_FUSE, err))) goto done;
    int probs = topn_is_prob(&m);
    size_t per_in = (size_t)in.h * (size_t)in.w * (size_t)in.c;
    int k = (int)fv_shape_count(&p.io[m.output].out);
    int top = fv_get_int(s, "predict", "top");
    if (top > k) top = k;
    out = malloc((size_t)batch * (size_t)k * sizeof *out);
    idx = malloc((size_t)top * sizeof *idx);
    if (!out || !idx) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        goto done;
    }
    int json = fv_get_bool(s, "predict", "json");
    if (json) printf("[");
    for (size_t first = 0; first < in.total; first += (size_t)batch) {
        size_t count = in.total - first < (size_t)batch ? in.total - first : (size_t)batch;
        memset(p.x, 0, (size_t)batch * per_in * sizeof(float));
        if ((rc = fv_inputs_read(&in, first, count, p.x, err))) goto done;
        fv_forward(&p, m.output);
        fv_plan_read_keras(&p, m.output, 0, out);
        for (size_t b = 0; b < count; b++) {
            const float *v = out + b * (size_t)k;
            char name[4200];
            topn_item_name(&in, first + b, name, sizeof name);
            topn_indices(v, k, top, idx);
            if (json) {
                printf("%s\n ", first + b ? "," : "");
                topn_print_json(stdout, name, v, idx, top, &labels, probs);
            } else {
                topn_print_text(stdout, name, v, idx, top, &labels);
            }
        }
    }
    if (json) printf("\n]\n");
done:
    free(out);
    free(idx);
    fv_plan_free(&p);
    fv_inputs_close(&in);
    fv_labels_free(&labels);
    fv_model_free(&m);
    return rc;
}
