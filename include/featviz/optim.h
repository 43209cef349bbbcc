/* The pure-math pieces of image optimization, each a forward/backward pair
 * working on a batch of n images (no model involved):
 *
 *   theta --fv_param_forward--> u (n,H,W,C) in [0,1], the "display image", RGB
 *         --fv_warp_forward (random per image per step)--> v (n,H,W,C)
 *         --> model (the lead's code maps v to model input and back) --> dv
 *         --fv_warp_backward--> du  (+ regularizer gradients, fv_reg_*)
 *         --fv_param_backward--> dtheta --fv_adam_step / fv_ascent_step--> theta
 *
 * Conventions, everywhere in this header:
 *  - Images are float, per image row-major (H, W, C), C = 1 or 3, images one
 *    after another. A "per image" size is the count of one image's part of a
 *    batch buffer; image b starts at b * that size.
 *  - Gradients are +d(objective)/d(x) and we ASCEND: theta += lr * step.
 *    Regularizers are penalties R >= 0 SUBTRACTED from the objective, so they
 *    add -weight * dR/du into du.
 *  - Every backward ACCUMULATES (dx += J^T dy): zero the gradient buffers once
 *    per step.
 *  - Everything is deterministic and independent of the thread count: work is
 *    split over images only (OpenMP, schedule(static)), and each image's
 *    arithmetic is serial. Random numbers come from counter-keyed streams
 *    (fv_rng_seed), so image b's transform at step s is the same whatever the
 *    batch composition or call order.
 *  - Functions that only compute assume valid arguments (checked by the *_init
 *    / *_resolve functions, which return fv_status codes).
 */
#ifndef FEATVIZ_OPTIM_H
#define FEATVIZ_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "featviz/error.h"

/* Loops over images run in parallel only when the batch has at least this
 * many floats of work: tiny batches pay more for thread wake-ups (and for
 * spinning when the cores are shared) than they gain. */
#define FV_OPTIM_PAR_MIN ((size_t)1 << 15)

/* ======================================================================
 * Random numbers (src/optim/rng.c): xoshiro256** seeded through splitmix64
 * from a key. Same key -> same sequence, on every platform.
 * ====================================================================== */

/* Key domains, so that init noise and transforms never share a stream. */
enum fv_rng_domain {
    FV_RNG_INIT = 1,      /* fv_param_init_values: (seed, INIT, image, 0) */
    FV_RNG_TRANSFORM = 2, /* fv_transform_sample: (seed, TRANSFORM, image, step) */
    FV_RNG_USER = 16      /* first value free for the caller's own streams */
};

struct fv_rng {
    uint64_t s[4];
};

/* Seeds a stream from the key (seed, domain, a, b), e.g. a = image index,
 * b = step. Different keys give unrelated streams. */
void fv_rng_seed(struct fv_rng *r, uint64_t seed, uint64_t domain, uint64_t a, uint64_t b);
uint64_t fv_rng_next(struct fv_rng *r);
/* Uniform in [0, 1) with 24 random bits. */
float fv_rng_uniform(struct fv_rng *r);
/* Uniform in [lo, hi) (lo when lo == hi). */
float fv_rng_range(struct fv_rng *r, float lo, float hi);
/* Uniform integer in [lo, hi] inclusive (lo <= hi). */
int fv_rng_int(struct fv_rng *r, int lo, int hi);
/* Standard normal (Box-Muller in double, one value per call, two draws). */
float fv_rng_normal(struct fv_rng *r);

/* ======================================================================
 * Real 2-D DFT with precomputed tables (src/optim/fourier.c).
 * Spectra are (h, wf, 2) with wf = w/2 + 1 and (re, im) innermost: the
 * layout of numpy.fft.rfft2 of an (h, w) array.
 * Cost O(h*w*(h+w)) per call; meant for sizes up to ~512.
 * ====================================================================== */

struct fv_dft2 {
    int h, w, wf;
    float *ch, *sh; /* (h, h): cos/sin(2 pi ky y / h), indexed [ky*h + y] */
    float *cw, *sw; /* (wf, w): g_k cos(2 pi k x / w), -g_k sin(...), g_k = 1 for the
                       DC and Nyquist bins (whose sine row is exactly 0), 2 otherwise */
    float *b2;      /* (2 wf, w): rows cw[0], sw[0], cw[1], sw[1], ... */
};

int fv_dft2_init(struct fv_dft2 *d, int h, int w, struct fv_error *err);
void fv_dft2_free(struct fv_dft2 *d);
/* Scratch floats one call of the functions below needs. */
size_t fv_dft2_ws_floats(const struct fv_dft2 *d);

/* x = alpha * numpy.fft.irfft2(scale .* spec, s=(h, w)), exactly numpy's
 * semantics: a complex inverse DFT along h on every column, then a real
 * inverse DFT along w that ignores the imaginary parts of the DC column and
 * (w even) the Nyquist column (after the h transform). Normalized by 1/(h*w).
 *   spec  (h, wf, 2)      scale (h, wf) or NULL (= 1)
 *   x     (h, w) written with element stride xs (xs = C writes one channel of
 *         an (h, w, C) image in place; xs = 1 for a plain plane)
 *   ws    fv_dft2_ws_floats(d) floats */
void fv_irfft2(const struct fv_dft2 *d, const float *spec, const float *scale, float alpha,
               float *x, int xs, float *ws);
/* Exact adjoint (transpose) of fv_irfft2 with the same scale and alpha:
 * dspec += J^T dx. ACCUMULATES into dspec. */
void fv_irfft2_adjoint(const struct fv_dft2 *d, const float *dx, int xs, const float *scale,
                       float alpha, float *dspec, float *ws);
/* spec = numpy.fft.rfft2(x) (overwrites spec), x (h, w) with stride xs.
 * fv_irfft2(fv_rfft2(x)) == x up to rounding. */
void fv_rfft2(const struct fv_dft2 *d, const float *x, int xs, float *spec, float *ws);

/* ======================================================================
 * Image parameterizations (src/optim/param.c).
 *
 *   pixel, clip      u = theta; fv_param_project clips theta to [0,1] after each step.
 *                    theta (n, H, W, C).
 *   pixel, sigmoid   t = theta (n,H,W,C); [t = M t per pixel]; u = sigmoid(t).
 *   fourier          (Lucid param.image(fft=True, decorrelate=True)):
 *                    theta (n, C, H, W/2+1, 2): real+imag spectrum per channel;
 *                    t[.,.,c] = irfft2(scale .* theta[c]) / 4   (numpy semantics,
 *                               output size exactly (H, W), also for odd W *)
 *                    scale[ky][kx] = sqrt(H*W) / max(f, 1/max(H,W))^decay,
 *                    f = sqrt(fftfreq(H)[ky]^2 + rfftfreq(W)[kx]^2);
 *                    [C = 3 and decorrelate: t_pixel = M t_pixel];
 *                    u = sigmoid(t).
 *   * Lucid, for odd W, keeps W/2+2 columns and crops a (W+1)-wide irfft;
 *     we use numpy's exact-size irfft2 (W/2+1 columns) instead.
 *
 * Colour decorrelation (Lucid _linear_decorrelate_color, t_flat @ M.T):
 * out[i] = sum_j M[i][j] in[j]. M defaults to Lucid's ImageNet
 * color_correlation_svd_sqrt divided by its largest column norm
 * (fv_color_matrix_imagenet), or a user matrix used as given (e.g. from
 * fv_color_stats_matrix). Ignored when C != 3.
 * ====================================================================== */

enum fv_param_basis { FV_PARAM_PIXEL = 0, FV_PARAM_FOURIER };

struct fv_param_config {
    enum fv_param_basis basis;
    int sigmoid;           /* u = sigmoid(t). Required for FOURIER and for decorrelate;
                              0 only with PIXEL: u = theta, clipped by fv_param_project */
    int decorrelate;       /* colour decorrelation (C = 3 only; ignored otherwise) */
    int custom_matrix;     /* 1: use color_matrix below instead of the ImageNet one */
    float color_matrix[9]; /* row-major 3x3, used as given (no normalization) */
    float decay;           /* FOURIER spectrum decay power; Lucid default 1 */
    /* FOURIER, MACO (Fel et al. 2023): the magnitude spectrum is fixed to this
     * (c, h, w/2+1) array (fv_spectrum_*) and theta is the phase only,
     * (n, c, h, w/2+1): spectrum = magnitude .* (cos theta, sin theta),
     * t = irfft2(spectrum) / 4, then the colour and sigmoid stages as above.
     * NULL: Lucid's free spectrum. Not copied: keep it alive with the param. */
    const float *magnitude;
    /* Initial theta (fv_param_init_values): init_mean + init_sd * N(0,1), or
     * with init_uniform: init_mean + U(-init_sd, init_sd) (init_sd = half-width). */
    int init_uniform;
    float init_mean, init_sd;
};

/* Defaults: PIXEL: clip, init 0.5 + U(-0.05, 0.05) (peers.md section 3).
 *           FOURIER: sigmoid, decorrelate (ImageNet), decay 1, init 0.01*N(0,1) (Lucid).
 * For a sigmoid pixel image (Lucid param.image(fft=False)) take PIXEL and set
 * sigmoid = 1, init_uniform = 0, init_mean = 0, init_sd = 0.01. */
void fv_param_config_default(struct fv_param_config *cfg, enum fv_param_basis basis);

struct fv_param {
    struct fv_param_config cfg;
    int h, w, c;
    int decorrelate;   /* effective: cfg.decorrelate && c == 3 */
    size_t size;       /* theta floats per image */
    size_t ws_image;   /* scratch floats per image */
    float m[9];        /* effective colour matrix, row-major */
    float *scale;      /* FOURIER: (h, w/2+1) spectrum scale; else NULL */
    struct fv_dft2 dft;/* FOURIER tables */
};

/* Checks the config against the sizes (h, w >= 1, c = 1 or 3) and builds the
 * tables. Errors are FV_ERR_USAGE with a one-line reason. On error nothing
 * needs freeing; fv_param_free is safe on a zeroed or freed struct. */
int fv_param_init(struct fv_param *p, const struct fv_param_config *cfg, int h, int w, int c,
                  struct fv_error *err);
void fv_param_free(struct fv_param *p);
/* theta floats per image (p->size). */
size_t fv_param_size(const struct fv_param *p);
/* Scratch floats fv_param_forward/backward/from_image need for n images;
 * 0 for PIXEL (ws may then be NULL). Contents undefined between calls. */
size_t fv_param_ws_floats(const struct fv_param *p, int n);

/* Random initial theta (n, size): image b draws from the stream
 * (seed, FV_RNG_INIT, first_image + b, 0), elements in memory order, so an
 * image's start does not depend on the batch it is in. */
void fv_param_init_values(const struct fv_param *p, float *theta, int n, uint64_t seed,
                          uint64_t first_image);

/* u (n,H,W,C) from theta (n,size). ws: fv_param_ws_floats(p, n) floats. */
void fv_param_forward(const struct fv_param *p, const float *theta, float *u, int n, float *ws);
/* dtheta += J^T du. u is fv_param_forward's output for the same theta (the
 * sigmoid derivative is u(1-u)). ACCUMULATES into dtheta. */
void fv_param_backward(const struct fv_param *p, const float *theta, const float *u, const float *du, float *dtheta,
                       int n, float *ws);
/* After each step: PIXEL without sigmoid clips theta to [0,1]; otherwise nothing. */
void fv_param_project(const struct fv_param *p, float *theta, int n);
/* theta such that fv_param_forward(theta) ~= u (overwrites theta): starting from
 * a real image (DeepDream), or re-parameterizing after an upsample (coarse to
 * fine: u_hi = fv_resize_bilinear(fv_param_forward(theta_lo)), then
 * theta_hi = fv_param_from_image(u_hi)). With a sigmoid, u is first clamped to
 * [1e-4, 1 - 1e-4]; with decorrelation, M must be invertible (else
 * FV_ERR_USAGE). ws: fv_param_ws_floats(p, n). */
int fv_param_from_image(const struct fv_param *p, const float *u, float *theta, int n, float *ws,
                        struct fv_error *err);

/* MACO's magnitude spectrum from real images: the mean over images of
 * |rfft2(t_k)| / 4 per channel k, where t is what the FOURIER
 * parameterization would have to produce to give the image: t = M^-1
 * logit(u) per pixel (u clamped to [0.01, 0.99]; M the colour matrix when
 * decorrelating). img (n, h, w, c) in [0, 1]; mag (c, h, w/2+1) is
 * overwritten. ws: fv_param_ws_floats(p, 1) + 2 h (w/2+1) floats. p: a
 * FOURIER param of the same size (its magnitude is not used). */
void fv_spectrum_from_images(const struct fv_param *p, const float *img, int n, float *mag, float *ws);

/* Lucid's ImageNet color_correlation_svd_sqrt / its largest column norm. */
void fv_color_matrix_imagenet(float m[9]);

/* Colour decorrelation matrix from data, dream-creator calc_cm.py style:
 * the mean over images of each image's RGB covariance (pixels centred on the
 * image's own mean, divided by H*W - 1), then M = U sqrt(S + 1e-10) from its
 * eigen-decomposition (eigenvalues descending, each eigenvector's sign chosen
 * so that its first component with |.| > 1e-4 * max|.| is positive, which
 * reproduces the signs of Lucid's matrix), divided by the largest column norm
 * like Lucid's. M M^T is proportional to the covariance. Feed images in
 * [0,1] or 0..255 (the normalization removes the unit), in any number of
 * fv_color_stats_add calls. */
struct fv_color_stats {
    double cov_sum[9]; /* sum over images of their covariance */
    long images;
};
void fv_color_stats_init(struct fv_color_stats *s);
/* img (n, h, w, 3); images with h*w < 2 are skipped. */
void fv_color_stats_add(struct fv_color_stats *s, const float *img, int n, int h, int w);
/* FV_ERR_USAGE when no image was added or the covariance is all zero. */
int fv_color_stats_matrix(const struct fv_color_stats *s, float m[9], struct fv_error *err);

/* ======================================================================
 * Bilinear resize, for coarse-to-fine (src/optim/transform.c).
 * Half-pixel centres, no antialiasing: tf.image.resize(bilinear) =
 * torch interpolate(mode='bilinear', align_corners=False):
 *   src = (dst + 0.5) * in / out - 0.5, clamped below at 0; lower = floor(src),
 *   upper = min(lower + 1, in - 1), weight of upper = src - lower.
 * For PIXEL bases theta has the image layout, so theta itself can be resized.
 * ====================================================================== */

/* dst (n, H, W, c) from src (n, h, w, c). FV_ERR_NOMEM (nothing written) when
 * its small tables cannot be allocated; FV_ERR_USAGE for sizes < 1. */
int fv_resize_bilinear(const float *src, int h, int w, float *dst, int H, int W, int c, int n);
/* dsrc += J^T ddst. ACCUMULATES. Errors as fv_resize_bilinear. */
int fv_resize_bilinear_backward(const float *ddst, int H, int W, float *dsrc, int h, int w, int c,
                                 int n);

/* ======================================================================
 * Transformation robustness (src/optim/transform.c): one composite affine
 * warp with bilinear sampling per image per step.
 *
 * Geometry, equivalent to Lucid's pad -> jitter -> scale -> rotate -> jitter,
 * followed by taking the centre H x W (all operations act about the image
 * centre). Centred pixel coordinates: pixel (row i, col j) sits at
 * x = j - (W-1)/2, y = i - (H-1)/2 (y down). A content point q moves to
 *     p = R(a) (s (q + t1)) + t2,   R(a) = [[cos a, sin a], [-sin a, cos a]]
 * i.e. translate by t1 = (jx1, jy1) (+x right, +y down), scale by s about the
 * centre, rotate by a degrees counter-clockwise as displayed, translate by t2.
 * The warp samples the inverse: v(p) = u~(q), q = R(-a) (p - t2) / s - t1.
 *
 * Outside the image: u~ is the canvas = u padded by `pad` pixels on every side
 * (the band is `fill` for FV_PAD_CONSTANT, numpy 'reflect' mirroring about the
 * edge pixels for FV_PAD_REFLECT, the edge pixel for FV_PAD_EDGE); beyond the
 * canvas, coordinates clamp to the canvas border. So pad > 0 with CONSTANT
 * shows `fill` wherever the warp looks outside the image, and pad = 0 (any
 * mode but WRAP) replicates the image border. FV_PAD_WRAP makes the image
 * periodic (coordinates modulo H, W) whatever pad is. Bilinear weights
 * between the last image pixel and the band mix image and fill, as on a real
 * padded canvas.
 *
 * Lucid's defaults at 128 px: pad(12) jitter(8) scale .9-1.1 rotate +-10
 * jitter(4). Lucid's jitter(d) crops d pixels, i.e. a shift of +-d/2 around
 * the centre: jitter1 = 4, jitter2 = 2 here.
 * ====================================================================== */

enum fv_pad_mode {
    FV_PAD_CONSTANT = 0,
    FV_PAD_REFLECT,
    FV_PAD_EDGE,
    FV_PAD_WRAP /* periodic, pad ignored: integer jitter = Google DeepDream's np.roll */
};
enum fv_unit { FV_UNIT_PX = 0, FV_UNIT_FRACTION };

struct fv_transform_config {
    enum fv_unit unit;       /* pad, jitter1, jitter2: pixels, or fractions of max(H, W)
                                (jitter 0.0625 = 2 px at 32 px) */
    float pad;               /* band width; rounded to whole pixels by fv_transform_resolve */
    enum fv_pad_mode pad_mode;
    float fill;              /* CONSTANT band value (0.5 = grey) */
    float jitter1, jitter2;  /* translations uniform in [-J, J] per axis */
    int jitter_integer;      /* 1: whole pixels, uniform integer in [-floor(J), floor(J)] */
    float scale_min, scale_max; /* uniform in [min, max]; 1, 1 = off */
    float rotate_deg;        /* uniform in [-R, R] degrees */
};

/* Identity: unit px, pad 0 CONSTANT fill 0.5, no jitter, scale 1..1, rotate 0. */
void fv_transform_config_default(struct fv_transform_config *cfg);
/* peers.md section 3 for small models, as fractions so that it scales with the
 * image: pad 1/16 (2 px at 32) CONSTANT 0.5, jitter1 1/16, scale 0.95..1.05,
 * rotate 5 degrees, jitter2 1/32, integer jitter. */
void fv_transform_config_standard(struct fv_transform_config *cfg);
/* Validates cfg and writes it in pixels for an h x w image (pad rounded to an
 * integer). FV_ERR_USAGE for negative sizes, scale_min <= 0, min > max,
 * non-finite values. out may equal in. */
int fv_transform_resolve(const struct fv_transform_config *in, int h, int w,
                         struct fv_transform_config *out, struct fv_error *err);

/* One image's transform. */
struct fv_transform_params {
    float jx1, jy1;    /* first translation (px) */
    float scale;
    float angle_deg;   /* counter-clockwise as displayed */
    float jx2, jy2;    /* second translation (px) */
};

/* Samples image `image`'s transform for `step` from the stream
 * (seed, FV_RNG_TRANSFORM, image, step); cfg in pixels (fv_transform_resolve).
 * Always draws jx1, jy1, scale, angle, jx2, jy2 in that order, so changing one
 * range does not change the others' draws. */
void fv_transform_sample(const struct fv_transform_config *cfg, uint64_t seed, uint64_t image,
                         uint64_t step, struct fv_transform_params *out);

/* The warp as q = A p + b in pixel index coordinates (x = column, y = row). */
struct fv_warp {
    float a[4]; /* row-major 2x2: qx = a[0] x + a[1] y + b[0]; qy = a[2] x + a[3] y + b[1] */
    float b[2];
};
void fv_warp_from_params(const struct fv_transform_params *tp, int h, int w, struct fv_warp *out);
/* Identity params (scale 1, the rest 0). */
void fv_transform_params_identity(struct fv_transform_params *tp);

/* Convenience: params and warps for images first_image .. first_image+n-1 at
 * step. params may be NULL. */
void fv_transform_sample_batch(const struct fv_transform_config *cfg, uint64_t seed,
                               uint64_t first_image, uint64_t step, int n, int h, int w,
                               struct fv_transform_params *params, struct fv_warp *warps);

/* v (n,h,w,c) = warp of u (n,h,w,c), image b with warps[b]; pad/pad_mode/fill
 * from cfg (in pixels). */
void fv_warp_forward(const struct fv_warp *warps, const struct fv_transform_config *cfg,
                     const float *u, float *v, int n, int h, int w, int c);
/* du += J^T dv: each output pixel's gradient scattered to its (up to four)
 * source pixels with the bilinear weights (fill takes none). ACCUMULATES;
 * serial within an image. */
void fv_warp_backward(const struct fv_warp *warps, const struct fv_transform_config *cfg,
                      const float *dv, float *du, int n, int h, int w, int c);

/* ======================================================================
 * Regularizers on u (src/optim/regularizer.c). Per image b:
 * values[b] = R(u_b) (unweighted; values may be NULL) and, if du is not NULL,
 * du_b += -weight * dR/du_b (the objective becomes f - weight * R).
 * N = h*w*c, the number of elements of one image.
 * ====================================================================== */

/* R = mean over the N elements of |u - center|^p, p >= 1; count = N.
 * Usual settings: p = 2, center = 0.5 (an L2 pull towards grey); keras-vis
 * LPNorm is p = 6 with center 0 on its input range. At u == center the
 * gradient is taken as 0. */
void fv_reg_lp(const float *u, int n, size_t count, float p, float center, float weight,
               float *du, float *values);
/* Anisotropic L1 total variation, normalized:
 * R = (sum_{y<h-1,x,c} |u[y+1][x][c] - u[y][x][c]|
 *      + sum_{y,x<w-1,c} |u[y][x+1][c] - u[y][x][c]|) / N.
 * Lucid objectives.total_variation (tf.image.total_variation) is the sum
 * without "/ N": weight_lucid = weight * N. Gradient of |0| taken as 0. */
void fv_reg_tv_l1(const float *u, int n, int h, int w, int c, float weight, float *du,
                  float *values);
/* keras-vis TotalVariation(beta):
 * R = sum_{y<h-1, x<w-1, c} ((u[y+1][x] - u[y][x])^2 + (u[y][x+1] - u[y][x])^2)^(beta/2) / N.
 * beta >= 1 (keras-vis default 2). For beta < 2 the gradient where both
 * differences are 0 is taken as 0. */
void fv_reg_tv_beta(const float *u, int n, int h, int w, int c, float beta, float weight,
                    float *du, float *values);

/* DeepInversion's feature-statistics prior (Yin et al., CVPR 2020), per image
 * b over its positions: a (n, hw, ch) a layer's activations, mu_b[k] and
 * var_b[k] (population variance) the mean and variance of channel k over the
 * hw positions of image b, mu_r and var_r (ch) those expected of real images:
 *   R_b = ||mu_b - mu_r||_2 / ||mu_r||_2 + ||var_b - var_r||_2 / ||var_r||_2
 * (a zero reference norm counts as 1). values[b] = R_b (NULL: not written);
 * with da and weight: da[b] += -weight[b] dR_b/da[b] (ACCUMULATES; a term
 * whose distance is 0 adds 0). ws: 4 ch doubles of scratch. */
void fv_reg_featstats(const float *a, int n, size_t hw, int ch, const float *mu_r, const float *var_r,
                      const float *weight, float *da, float *values, double *ws);

/* Gaussian blur in place (an operation, not a gradient; e.g. every 4 steps),
 * separable, scipy.ndimage.gaussian_filter conventions: radius
 * r = (int)(4 sigma + 0.5), weights exp(-k^2 / (2 sigma^2)) / sum, borders
 * 'reflect' (d c b a | a b c d, the edge pixel repeated). sigma <= 0: no-op.
 * ws: fv_blur_ws_floats(n, h, w, c) floats, or NULL to allocate (then
 * FV_ERR_NOMEM is possible). */
size_t fv_blur_ws_floats(int n, int h, int w, int c);
int fv_blur_gaussian(float *u, int n, int h, int w, int c, float sigma, float *ws,
                     struct fv_error *err);

/* ======================================================================
 * Steps (src/optim/step.c). theta and g are (n, size); every image is
 * updated from its own numbers only. ASCENT.
 * ====================================================================== */

struct fv_adam {
    float lr;     /* Lucid: 0.05 */
    float beta1;  /* 0.9 */
    float beta2;  /* 0.999 */
    float eps;    /* 1e-8 */
};
void fv_adam_default(struct fv_adam *a);
/* Per image b (t[b] counts that image's steps; start at 0 with m = v = 0):
 *   t += 1; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 *   theta += lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * (PyTorch/Kingma form). m, v (n, size) and t (n) are the caller's state,
 * reset them when theta is re-parameterized. */
void fv_adam_step(const struct fv_adam *a, float *theta, const float *g, float *m, float *v,
                  int *t, int n, size_t size);

/* Normalized gradient ascent: theta += lr * g / (norm(g) + 1e-8) per image. */
enum fv_grad_norm {
    FV_NORM_NONE = 0, /* plain: theta += lr * g */
    FV_NORM_MEAN_ABS, /* mean |g| (Google DeepDream) */
    FV_NORM_RMS,      /* sqrt(mean g^2) (Keras conv_filter_visualization, flashtorch) */
    FV_NORM_L2        /* ||g||_2 (keras-io, keras-vis) */
};
void fv_ascent_step(float lr, enum fv_grad_norm norm, float *theta, const float *g, int n,
                    size_t size);

/* RMSprop (Keras form, tf-keras-vis default rho .999, lr 1 in 0..255 units):
 *   v = rho v + (1-rho) g^2;  theta += lr * g / (sqrt(v) + eps). v (n, size), start 0. */
void fv_rmsprop_step(float lr, float rho, float eps, float *theta, const float *g, float *v,
                     int n, size_t size);

/* Clip every element of g to [-clip, clip] (clip > 0). */
void fv_grad_clip_value(float *g, size_t count, float clip);
/* Per image: if ||g_b||_2 > max_norm, scale g_b down to norm max_norm. */
void fv_grad_clip_norm(float *g, int n, size_t size, float max_norm);

#endif
