/* Image synthesis by gradient ascent, shared by `classes` and `filters`:
 *
 *   theta -param-> u (display RGB/gray in [0,1]) -random warp-> v
 *         -preprocessing values-> model input -> objective of each image
 *   and back: the model's input gradient -> v -> u (+ regularizers) -> theta -> Adam.
 *
 * Images of a batch are independent (own objective, own random stream keyed
 * by seed and the image's index), so the result for a given seed does not
 * depend on the batch size or the number of threads.
 *
 * The display image can be larger than the model's input (synth_display_size):
 * it is then warped at its own size and downsampled, anti-aliased, to the
 * input; gradients flow back through both. */
#ifndef FEATVIZ_SYNTH_H
#define FEATVIZ_SYNTH_H

#include <stdint.h>

#include "featviz/graph.h"
#include "featviz/objective.h"
#include "featviz/optim.h"
#include "featviz/preprocess.h"
#include "featviz/settings.h"

/* DeepInversion's feature statistics of real images (features.c): per chosen
 * layer l (node[l]), channels off[l] .. off[l+1]-1 of mu and var. */
struct synth_features {
    int layers, top;           /* top: the deepest of them */
    int *node, *off;
    float *mu, *var;           /* one block: mu (off[layers]) then var */
};

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
    int relative;              /* penalties weigh against the objective gradient scaled to mean |g| = 1 */
    float size;                /* display image: pixels of the longer side, or a multiple of the input */
    int size_times;            /* size is a multiple ("4x") */
    int size_min;              /* with a multiple: at least this many pixels */
    int per_class;             /* images per objective, consecutive; lanes keep them together */
    float diversity;           /* weight of the diversity penalty between them (x |objective|) */
    const char *diversity_layer; /* its layer; NULL or "": the deepest image layer up to the objectives */
    const struct synth_features *features; /* feature-statistics prior, or NULL */
    float features_weight;     /* its weight (x |objective|) */
    int copies;                /* transformed copies per step, gradients summed */
    float drop;                /* Ghost-network dropout on filter layers' outputs each step (fv_plan.drop) */
    float contrast;            /* random contrast and brightness on the model's input each step */
    float noise;               /* sd of Gaussian noise on the model's input each step (display units) */
};

/* The display image's size (H, W) for a model input of h x w: the images are
 * optimized and written at that size and downsampled (anti-aliased) to the
 * input every step. */
void synth_display_size(const struct synth_cfg *cfg, int h, int w, int *H, int *W);

/* Reads the optimization keys of a job section ([classes], [filters]). */
int synth_cfg_read(const struct fv_settings *s, const char *section, struct synth_cfg *c,
                   struct fv_error *err);

/* Optimizes n images for a model input of h x w x c (c = the model's input
 * channels), image i maximizing obj[i]. keys[i] keys image i's random streams
 * (e.g. its class), so an image does not change with the batch it is in.
 * Writes u (n, H, W, c) display images in [0, 1] (synth_display_size) and score[i], the objective of the
 * kept image without transforms. upto: the highest node any objective reads.
 * Stops early (keeping what it has) when fv_interrupted(). */
int synth_run(const struct fv_model *m, const struct fv_preproc *pp, const struct synth_cfg *cfg,
              const struct fv_objective *obj, int n, int h, int w, int c, const uint64_t *keys,
              float *u, double *score, struct fv_error *err);

/* The images share lanes of up to `lane` images (a plan each, one thread
 * each for all steps). Which images share a lane changes the result in the
 * last bits (a lane's batch size changes the kernels' summation order), so
 * lanes depend on the image count and the model's input size only, never on
 * the thread count (nor on the MPI ranks that run them): synth_lane_size(h, w)
 * is SYNTH_LANE images of up to 48x48, fewer of larger ones (at least one):
 * the lane's plan holds every layer's activations and gradients of its
 * images. synth_lanes splits n images into ceil(n / lane) nearly equal lanes
 * of whole groups of `per` consecutive images (per_class: one class's
 * images, which the diversity term compares, stay in one lane; at most one
 * group per lane when a group is larger than `lane`), images
 * [start[k], start[k+1]) (start: n / per + 1 entries at most), and returns
 * the number of lanes. per that does not divide n counts as 1. */
#define SYNTH_LANE 11
#define SYNTH_LANE_PIXELS (SYNTH_LANE * 48 * 48)
int synth_lane_size(int h, int w);
int synth_lanes(int n, int per, int lane, int *start);
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

/* *out (malloc'd, n, h, w, c): the display images u (n, H, W, c) as the model
 * sees them, downsampled with the anti-aliased filter of the optimization. */
int synth_downsample(const float *u, int n, int H, int W, int h, int w, int c, float **out,
                     struct fv_error *err);

/* For tests: step s's objective values of the warped, downsampled images
 * (value[i]) and, unless grad is NULL, the gradient with respect to theta
 * (n, synth_theta_size) the optimizer would ascend (no update is made). */
int synth_probe(const struct fv_model *m, const struct fv_preproc *pp, const struct synth_cfg *cfg,
                const struct fv_objective *obj, int n, int h, int w, int c, const uint64_t *keys, int s,
                const float *theta, double *value, float *grad, struct fv_error *err);
size_t synth_theta_size(const struct synth_cfg *cfg, int h, int w, int c);

/* MACO's magnitude spectrum (*mag, malloc'd, (c, H, W/2+1)) for display images
 * of H x W x c, from `from`: a directory or .npy array of 8-bit images (each
 * resized to H x W), or a spectrum.npy of exactly that size. Written to
 * out_dir/spectrum.npy when out_dir is not NULL. origin names the setting in
 * errors. */
int synth_spectrum(const char *from, const char *origin, const struct synth_cfg *cfg, int H, int W, int c,
                   const char *out_dir, float **mag, struct fv_error *err);

/* The feature statistics of the images in `from` (a directory, image files or
 * an .npy of 8-bit images, through the model with its preprocessing pp at its
 * input h x w) at `layers` ("all": every conv layer, or names), or a
 * features.npy (2, channels) that an earlier run wrote. Written to
 * out_dir/features.npy when out_dir is not NULL. origin names the setting in
 * errors. Free with synth_features_free. */
int synth_features(const char *from, const char *layers, const char *origin, const struct fv_model *m,
                   const struct fv_preproc *pp, int h, int w, const char *out_dir, struct synth_features *f,
                   struct fv_error *err);
void synth_features_free(struct synth_features *f);

/* Display image (h, w, c) in [0,1] -> bytes (h, w, c), rounded. */
void synth_to_bytes(const float *u, unsigned char *out, size_t count);

#endif
