/* Image synthesis by gradient ascent, shared by `classes` and `filters`:
 *
 *   theta -param-> u (display RGB/gray in [0,1]) -random warp-> v
 *         -preprocessing values-> model input -> objective of each image
 *   and back: the model's input gradient -> v -> u (+ regularizers) -> theta -> Adam.
 *
 * Images of a batch are independent (own objective, own random stream keyed
 * by seed and the image's index), so the result for a given seed does not
 * depend on the batch size or the number of threads. */
#ifndef FEATVIZ_SYNTH_H
#define FEATVIZ_SYNTH_H

#include <stdint.h>

#include "featviz/graph.h"
#include "featviz/objective.h"
#include "featviz/optim.h"
#include "featviz/preprocess.h"
#include "featviz/settings.h"

struct synth_cfg {
    int steps;
    uint64_t seed;
    int normalized;            /* normalized gradient ascent instead of Adam */
    float lr;
    struct fv_param_config param;
    int clip;                  /* pixel basis: keep theta in [0,1] after each step */
    struct fv_transform_config transform; /* pad/jitter as given: < 1 = fraction */
    float l2, p, l2_center, tv;
    int blur_every;
    float blur_sigma;
    float coarse;              /* fraction of steps at lower resolution (pixel basis) */
    int coarse_factor;
    int escape_steps;
    int keep_best;
    int batch;
};

/* Reads the optimization keys of a job section ([classes], [filters]). */
int synth_cfg_read(const struct fv_settings *s, const char *section, struct synth_cfg *c,
                   struct fv_error *err);

/* Optimizes n images of h x w x c (c = the model's input channels), image i
 * maximizing obj[i]. keys[i] keys image i's random streams (e.g. its class),
 * so an image does not change with the batch it is in. Writes u
 * (n, h, w, c) display images in [0, 1] and score[i], the objective of the
 * kept image without transforms. upto: the highest node any objective reads.
 * Stops early (keeping what it has) when fv_interrupted(). */
int synth_run(const struct fv_model *m, const struct fv_preproc *pp, const struct synth_cfg *cfg,
              const struct fv_objective *obj, int n, int h, int w, int c, const uint64_t *keys,
              float *u, double *score, struct fv_error *err);

/* The images share lanes of up to SYNTH_LANE (a plan each, one thread each
 * for all steps). Which images share a lane changes the result in the last
 * bits (a lane's batch size changes the kernels' summation order), so lanes
 * depend on n only, never on the thread count: synth_lanes splits n images
 * into ceil(n / SYNTH_LANE) nearly equal lanes, images [start[k], start[k+1])
 * (start: lanes + 1 entries), and returns the number of lanes. */
#define SYNTH_LANE 11
int synth_lanes(int n, int *start);
/* synth_run on given lanes: images start[0]..start[lanes]-1 of obj, keys, and
 * u, score counted from start[0] (u, score hold start[lanes] - start[0]). */
int synth_run_lanes(const struct fv_model *m, const struct fv_preproc *pp, const struct synth_cfg *cfg,
                    const struct fv_objective *obj, const int *start, int lanes, int h, int w, int c,
                    const uint64_t *keys, float *u, double *score, struct fv_error *err);

/* Display image (h, w, c) in [0,1] -> model input (h, w, c) with the
 * preprocessing's value mapping, and the transpose for gradients. */
void synth_to_model(const struct fv_preproc *pp, const float *v, float *x, size_t pixels, int c);
void synth_to_model_backward(const struct fv_preproc *pp, const float *dx, float *dv,
                             size_t pixels, int c);

/* Display image (h, w, c) in [0,1] -> bytes (h, w, c), rounded. */
void synth_to_bytes(const float *u, unsigned char *out, size_t count);

#endif
