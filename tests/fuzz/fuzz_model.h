/* What the model-file targets (fuzz_h5, fuzz_keras, fuzz_onnx) do with a model
 * that loaded: one forward pass on a tiny input, when the model takes images
 * of at most 64x64 (or any size) and the pass fits well under libFuzzer's
 * -rss_limit_mb=2048. */
#ifndef FEATVIZ_FUZZ_MODEL_H
#define FEATVIZ_FUZZ_MODEL_H

#include <stdlib.h>

#include "featviz/formats.h"
#include "featviz/graph.h"
#include "fuzz_common.h"

#define FUZZ_PLAN_MAX_FLOATS ((size_t)64 << 20)

static inline void fuzz_forward_once(const struct fv_model *m) {
    int h, w, c;
    fv_model_input_hwc(m, &h, &w, &c);
    if (h <= 0) h = 8;
    if (w <= 0) w = 8;
    if (h > 64 || w > 64 || c > 64) return;
    struct fv_io *io = calloc((size_t)m->n_layers, sizeof *io);
    if (!io) abort();
    struct fv_error err = {0};
    size_t floats = 0;
    int rc = fv_plan_measure(m, 1, h, w, 0, -1, io, &floats, &err);
    free(io);
    if (rc || floats > FUZZ_PLAN_MAX_FLOATS) return;
    struct fv_plan p;
    if (fv_plan_init(&p, m, 1, h, w, 0, &err)) return;
    size_t n = fv_shape_count(&p.io[m->input].out);
    for (size_t i = 0; i < n; i++) p.x[i] = (float)(i % 7) * 0.25f - 0.5f;
    fv_forward(&p, m->output);
    fv_plan_free(&p);
}

/* The model-file targets that read a named file (fuzz_keras, fuzz_onnx): the
 * input written as `name`, loaded as the user's file would be, one forward
 * pass when it loads, a clear error when it does not. */
static inline int fuzz_model_file(const uint8_t *data, size_t size, const char *name) {
    fuzz_init_once();
    const char *path = fuzz_file(data, size, name);
    struct fv_load_opts o = {.flip_kernels = -1, .max_bytes = (size_t)64 << 20};
    struct fv_error err = {0};
    struct fv_model m;
    if (fv_model_load(&m, path, &o, &err) == FV_OK) {
        fuzz_forward_once(&m);
        fv_model_free(&m);
    } else {
        fuzz_check_error(&err);
    }
    return 0;
}

#endif
