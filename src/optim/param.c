/* Image parameterizations theta -> u (see include/featviz/optim.h):
 *   pixel (clip), pixel + [colour decorrelation] + sigmoid,
 *   Lucid's Fourier spectrum (1/f scale) + [colour decorrelation] + sigmoid;
 * and the colour decorrelation matrix, from ImageNet (Lucid) or from data
 * (dream-creator calc_cm.py).
 *
 * theta (n, size); u (n, H, W, C); per image scratch p->ws_image floats:
 *   FOURIER: t (H, W, C) then the DFT scratch.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "featviz/optim.h"

/* Floats of work for n images, to decide on threads (FV_OPTIM_PAR_MIN). */
#define PARAM_WORK(p, n)                                                                           \
    ((size_t)(n) * (size_t)(p)->h * (size_t)(p)->w * (size_t)(p)->c *                              \
     ((p)->cfg.basis == FV_PARAM_FOURIER ? (size_t)((p)->h + (p)->w) : 1))

/* Lucid: the image is divided by this "magic" constant after the irfft2. */
static const float fourier_gain = 0.25f;

/* Lucid color_correlation_svd_sqrt (lucid/optvis/param/color.py). */
static const float imagenet_svd_sqrt[9] = {0.26f, 0.09f, 0.02f,  //
                                           0.27f, 0.00f, -0.05f, //
                                           0.27f, -0.09f, 0.03f};

void fv_color_matrix_imagenet(float m[9]) {
    double max_norm = 0;
    for (int j = 0; j < 3; j++) {
        double s = 0;
        for (int i = 0; i < 3; i++) {
            double x = (double)imagenet_svd_sqrt[3 * i + j];
            s += x * x;
        }
        if (sqrt(s) > max_norm) max_norm = sqrt(s);
    }
    for (int i = 0; i < 9; i++) m[i] = (float)((double)imagenet_svd_sqrt[i] / max_norm);
}

void fv_param_config_default(struct fv_param_config *cfg, enum fv_param_basis basis) {
    memset(cfg, 0, sizeof *cfg);
    cfg->basis = basis;
    cfg->decay = 1.f;
    if (basis == FV_PARAM_PIXEL) {
        cfg->sigmoid = 0;
        cfg->decorrelate = 0;
        cfg->init_uniform = 1;
        cfg->init_mean = 0.5f;
        cfg->init_sd = 0.05f;
    } else {
        cfg->sigmoid = 1;
        cfg->decorrelate = 1;
        cfg->init_uniform = 0;
        cfg->init_mean = 0.f;
        cfg->init_sd = 0.01f;
    }
}

/* numpy.fft.fftfreq(n)[k] */
static double fftfreq(int k, int n) {
    return (double)(k <= (n - 1) / 2 ? k : k - n) / (double)n;
}

static int fill_scale(struct fv_param *p, struct fv_error *err) {
    int h = p->h, w = p->w, wf = w / 2 + 1;
    p->scale = fv_malloc((size_t)h * (size_t)wf * sizeof(float), err);
    if (!p->scale) return FV_ERR_NOMEM;
    double fmin = 1.0 / (double)(h > w ? h : w);
    for (int ky = 0; ky < h; ky++)
        for (int kx = 0; kx < wf; kx++) {
            double fy = fftfreq(ky, h), fx = (double)kx / (double)w; /* rfftfreq */
            double f = sqrt(fy * fy + fx * fx);
            if (f < fmin) f = fmin;
            p->scale[(size_t)ky * wf + kx] =
                (float)(sqrt((double)h * (double)w) / pow(f, (double)p->cfg.decay));
        }
    return FV_OK;
}

int fv_param_init(struct fv_param *p, const struct fv_param_config *cfg, int h, int w, int c,
                  struct fv_error *err) {
    memset(p, 0, sizeof *p);
    if (h < 1 || w < 1 || h > 65536 || w > 65536)
        return fv_error_set(err, FV_ERR_USAGE, "image parameterization: bad size %dx%d", h, w);
    if (c != 1 && c != 3)
        return fv_error_set(err, FV_ERR_USAGE,
                            "image parameterization: %d channels, expected 1 or 3", c);
    if (cfg->basis != FV_PARAM_PIXEL && cfg->basis != FV_PARAM_FOURIER)
        return fv_error_set(err, FV_ERR_USAGE, "image parameterization: unknown basis %d",
                            (int)cfg->basis);
    if (cfg->basis == FV_PARAM_FOURIER && !cfg->sigmoid)
        return fv_error_set(err, FV_ERR_USAGE,
                            "image parameterization: fourier needs the sigmoid output");
    if (cfg->decorrelate && c == 3 && !cfg->sigmoid)
        return fv_error_set(err, FV_ERR_USAGE,
                            "image parameterization: colour decorrelation needs the "
                            "sigmoid output");
    if (!isfinite(cfg->decay) || !isfinite(cfg->init_mean) || !isfinite(cfg->init_sd) ||
        cfg->init_sd < 0.f)
        return fv_error_set(err, FV_ERR_USAGE,
                            "image parameterization: bad decay or init (need finite, sd >= 0)");
    p->cfg = *cfg;
    p->h = h;
    p->w = w;
    p->c = c;
    p->decorrelate = cfg->decorrelate && c == 3;
    if (cfg->custom_matrix)
        memcpy(p->m, cfg->color_matrix, sizeof p->m);
    else
        fv_color_matrix_imagenet(p->m);
    size_t hwc = (size_t)h * (size_t)w * (size_t)c;
    if (cfg->basis == FV_PARAM_PIXEL) {
        p->size = hwc;
        p->ws_image = 0;
        return FV_OK;
    }
    int rc = fill_scale(p, err);
    if (rc == FV_OK) rc = fv_dft2_init(&p->dft, h, w, err);
    if (rc != FV_OK) {
        fv_param_free(p);
        return rc;
    }
    size_t bins = (size_t)c * (size_t)h * (size_t)(w / 2 + 1);
    p->size = cfg->magnitude ? bins : 2 * bins; /* MACO: phases only */
    p->ws_image = hwc + fv_dft2_ws_floats(&p->dft) + (cfg->magnitude ? 2 * bins : 0);
    return FV_OK;
}

void fv_param_free(struct fv_param *p) {
    if (!p) return;
    free(p->scale);
    p->scale = NULL;
    fv_dft2_free(&p->dft);
}

size_t fv_param_size(const struct fv_param *p) {
    return p->size;
}

size_t fv_param_ws_floats(const struct fv_param *p, int n) {
    return p->ws_image * (size_t)n;
}

void fv_param_init_values(const struct fv_param *p, float *theta, int n, uint64_t seed,
                          uint64_t first_image) {
    float mean = p->cfg.init_mean, sd = p->cfg.init_sd;
    for (int b = 0; b < n; b++) {
        struct fv_rng r;
        fv_rng_seed(&r, seed, FV_RNG_INIT, first_image + (uint64_t)b, 0);
        float *th = theta + (size_t)b * p->size;
        for (size_t i = 0; i < p->size; i++)
            th[i] = p->cfg.magnitude ? fv_rng_range(&r, -3.14159265f, 3.14159265f) /* MACO: any phase */
                                     : mean + (p->cfg.init_uniform ? fv_rng_range(&r, -sd, sd) : sd * fv_rng_normal(&r));
    }
}

/* ---- per-pixel colour and output stage: t -> u, in place ---- */

static void colour_forward(const struct fv_param *p, float *u, size_t pixels) {
    const float *m = p->m;
    for (size_t i = 0; i < pixels; i++) {
        float *t = u + i * (size_t)p->c;
        if (p->decorrelate) {
            /* t_flat @ M.T: out[r] = sum_j M[r][j] t[j] */
            float a = t[0], b = t[1], c = t[2];
            t[0] = m[0] * a + m[1] * b + m[2] * c;
            t[1] = m[3] * a + m[4] * b + m[5] * c;
            t[2] = m[6] * a + m[7] * b + m[8] * c;
        }
        if (p->cfg.sigmoid)
            for (int k = 0; k < p->c; k++) t[k] = 1.f / (1.f + expf(-t[k]));
    }
}

/* dt (one pixel, c values) from u and du: the transpose of colour_forward. */
static void colour_backward(const struct fv_param *p, const float *u, const float *du, float *dt) {
    const float *m = p->m;
    for (int k = 0; k < p->c; k++)
        /* u = sigmoid(t): du/dt = u (1 - u) */
        dt[k] = p->cfg.sigmoid ? du[k] * u[k] * (1.f - u[k]) : du[k];
    if (p->decorrelate) {
        /* out[r] = sum_j M[r][j] t[j]  ->  dt[j] = sum_r M[r][j] dout[r] */
        float a = dt[0], b = dt[1], c = dt[2];
        dt[0] = m[0] * a + m[3] * b + m[6] * c;
        dt[1] = m[1] * a + m[4] * b + m[7] * c;
        dt[2] = m[2] * a + m[5] * b + m[8] * c;
    }
}

void fv_param_forward(const struct fv_param *p, const float *theta, float *u, int n, float *ws) {
    int h = p->h, w = p->w, c = p->c;
    size_t pixels = (size_t)h * w, hwc = pixels * c;
    size_t plane = (size_t)h * (size_t)(w / 2 + 1) * 2; /* one channel's spectrum */
#pragma omp parallel for schedule(static) if (PARAM_WORK(p, n) >= FV_OPTIM_PAR_MIN)
    for (int b = 0; b < n; b++) {
        const float *th = theta + (size_t)b * p->size;
        float *ub = u + (size_t)b * hwc; /* (h, w, c) */
        if (p->cfg.basis == FV_PARAM_PIXEL) {
            memcpy(ub, th, hwc * sizeof(float));
        } else {
            float *wsb = ws + (size_t)b * p->ws_image + hwc; /* DFT scratch */
            const float *spec = th, *scale = p->scale;
            if (p->cfg.magnitude) { /* MACO: the spectrum from the fixed magnitude and the phases */
                float *sp = wsb + fv_dft2_ws_floats(&p->dft);
                for (size_t i = 0; i < (size_t)c * plane / 2; i++) {
                    float m = p->cfg.magnitude[i];
                    sp[2 * i] = m * cosf(th[i]), sp[2 * i + 1] = m * sinf(th[i]);
                }
                spec = sp, scale = NULL;
            }
            for (int k = 0; k < c; k++)
                fv_irfft2(&p->dft, spec + (size_t)k * plane, scale, fourier_gain, ub + k, c, wsb);
        }
        colour_forward(p, ub, pixels);
    }
}

void fv_param_backward(const struct fv_param *p, const float *theta, const float *u, const float *du,
                       float *dtheta, int n, float *ws) {
    int h = p->h, w = p->w, c = p->c;
    size_t pixels = (size_t)h * w, hwc = pixels * c;
    size_t plane = (size_t)h * (size_t)(w / 2 + 1) * 2;
#pragma omp parallel for schedule(static) if (PARAM_WORK(p, n) >= FV_OPTIM_PAR_MIN)
    for (int b = 0; b < n; b++) {
        const float *ub = u + (size_t)b * hwc, *dub = du + (size_t)b * hwc;
        float *dth = dtheta + (size_t)b * p->size;
        if (p->cfg.basis == FV_PARAM_PIXEL && !p->cfg.sigmoid && !p->decorrelate) {
            for (size_t i = 0; i < hwc; i++) dth[i] += dub[i]; /* u = theta */
            continue;
        }
        if (p->cfg.basis == FV_PARAM_PIXEL) {
            float dt[3];
            for (size_t i = 0; i < pixels; i++) {
                colour_backward(p, ub + i * c, dub + i * c, dt);
                for (int k = 0; k < c; k++) dth[i * c + k] += dt[k];
            }
            continue;
        }
        float *dt = ws + (size_t)b * p->ws_image; /* (h, w, c) */
        for (size_t i = 0; i < pixels; i++) colour_backward(p, ub + i * c, dub + i * c, dt + i * c);
        /* t[., ., k] = irfft2(scale .* theta[k]) / 4 */
        if (p->cfg.magnitude) { /* MACO: through spectrum = m (cos theta, sin theta) */
            float *dsp = dt + hwc + fv_dft2_ws_floats(&p->dft);
            memset(dsp, 0, (size_t)c * plane * sizeof(float));
            for (int k = 0; k < c; k++)
                fv_irfft2_adjoint(&p->dft, dt + k, c, NULL, fourier_gain, dsp + (size_t)k * plane, dt + hwc);
            const float *th = theta + (size_t)b * p->size;
            for (size_t i = 0; i < (size_t)c * plane / 2; i++) {
                float m = p->cfg.magnitude[i];
                dth[i] += m * (cosf(th[i]) * dsp[2 * i + 1] - sinf(th[i]) * dsp[2 * i]);
            }
            continue;
        }
        for (int k = 0; k < c; k++)
            fv_irfft2_adjoint(&p->dft, dt + k, c, p->scale, fourier_gain, dth + (size_t)k * plane,
                              dt + hwc);
    }
}

void fv_param_project(const struct fv_param *p, float *theta, int n) {
    if (p->cfg.basis != FV_PARAM_PIXEL || p->cfg.sigmoid) return;
    size_t count = p->size * (size_t)n;
    for (size_t i = 0; i < count; i++) {
        float x = theta[i];
        theta[i] = x < 0.f ? 0.f : x > 1.f ? 1.f : x;
    }
}

/* inv = m^-1 (row-major 3x3); 0 if singular. */
static int invert3(const float m[9], float inv[9]) {
    double a[9];
    for (int i = 0; i < 9; i++) a[i] = (double)m[i];
    double c00 = a[4] * a[8] - a[5] * a[7], c01 = a[5] * a[6] - a[3] * a[8],
           c02 = a[3] * a[7] - a[4] * a[6];
    double det = a[0] * c00 + a[1] * c01 + a[2] * c02;
    double scale = 0;
    for (int i = 0; i < 9; i++) scale = fmax(scale, fabs(a[i]));
    if (!(fabs(det) > 1e-9 * scale * scale * scale)) return 0;
    double r[9] = {c00, a[2] * a[7] - a[1] * a[8], a[1] * a[5] - a[2] * a[4],
                   c01, a[0] * a[8] - a[2] * a[6], a[2] * a[3] - a[0] * a[5],
                   c02, a[1] * a[6] - a[0] * a[7], a[0] * a[4] - a[1] * a[3]};
    for (int i = 0; i < 9; i++) inv[i] = (float)(r[i] / det);
    return 1;
}

int fv_param_from_image(const struct fv_param *p, const float *u, float *theta, int n, float *ws,
                        struct fv_error *err) {
    int h = p->h, w = p->w, c = p->c;
    size_t pixels = (size_t)h * w, hwc = pixels * c;
    size_t plane = (size_t)h * (size_t)(w / 2 + 1) * 2;
    float minv[9];
    if (p->cfg.magnitude)
        return fv_error_set(err, FV_ERR_USAGE, "image parameterization: a fixed magnitude spectrum (MACO) cannot start from an image");
    if (p->decorrelate && !invert3(p->m, minv))
        return fv_error_set(err, FV_ERR_USAGE,
                            "image parameterization: colour matrix is not invertible");
#pragma omp parallel for schedule(static) if (PARAM_WORK(p, n) >= FV_OPTIM_PAR_MIN)
    for (int b = 0; b < n; b++) {
        const float *ub = u + (size_t)b * hwc;
        float *th = theta + (size_t)b * p->size;
        /* t: theta itself for pixels, else scratch (h, w, c) */
        float *t = p->cfg.basis == FV_PARAM_PIXEL ? th : ws + (size_t)b * p->ws_image;
        for (size_t i = 0; i < pixels; i++) {
            float *tp = t + i * c;
            for (int k = 0; k < c; k++) {
                float x = ub[i * c + k];
                if (p->cfg.sigmoid) {
                    /* inverse of u = sigmoid(t) */
                    x = x < 1e-4f ? 1e-4f : x > 1.f - 1e-4f ? 1.f - 1e-4f : x;
                    x = logf(x / (1.f - x));
                }
                tp[k] = x;
            }
            if (p->decorrelate) {
                float a = tp[0], bb = tp[1], cc = tp[2];
                tp[0] = minv[0] * a + minv[1] * bb + minv[2] * cc;
                tp[1] = minv[3] * a + minv[4] * bb + minv[5] * cc;
                tp[2] = minv[6] * a + minv[7] * bb + minv[8] * cc;
            }
        }
        if (p->cfg.basis == FV_PARAM_PIXEL) continue;
        /* t = irfft2(scale .* theta) / 4  ->  theta = rfft2(t) / (scale / 4)... per bin */
        size_t bins = plane / 2;
        for (int k = 0; k < c; k++) {
            float *sp = th + (size_t)k * plane;
            fv_rfft2(&p->dft, t + k, c, sp, t + hwc);
            for (size_t i = 0; i < bins; i++) {
                float g = 1.f / (fourier_gain * p->scale[i]);
                sp[2 * i] *= g;
                sp[2 * i + 1] *= g;
            }
        }
    }
    return FV_OK;
}

/* ---- colour decorrelation matrix from data ---- */

void fv_color_stats_init(struct fv_color_stats *s) {
    memset(s, 0, sizeof *s);
}

void fv_color_stats_add(struct fv_color_stats *s, const float *img, int n, int h, int w) {
    size_t pixels = (size_t)h * (size_t)w;
    if (h < 1 || w < 1 || pixels < 2) return;
    for (int b = 0; b < n; b++) {
        const float *x = img + (size_t)b * pixels * 3; /* (h, w, 3) */
        double mean[3] = {0, 0, 0}, cov[9] = {0};
        for (size_t i = 0; i < pixels; i++)
            for (int k = 0; k < 3; k++) mean[k] += (double)x[i * 3 + k];
        for (int k = 0; k < 3; k++) mean[k] /= (double)pixels;
        for (size_t i = 0; i < pixels; i++) {
            double d[3];
            for (int k = 0; k < 3; k++) d[k] = (double)x[i * 3 + k] - mean[k];
            for (int r = 0; r < 3; r++)
                for (int q = 0; q < 3; q++) cov[r * 3 + q] += d[r] * d[q];
        }
        for (int i = 0; i < 9; i++) s->cov_sum[i] += cov[i] / (double)(pixels - 1);
        s->images++;
    }
}

/* Eigen-decomposition of a symmetric 3x3 matrix by cyclic Jacobi rotations:
 * a is destroyed (its diagonal ends as the eigenvalues), v[r*3+j] = component
 * r of eigenvector j. */
static void jacobi3(double a[9], double val[3], double v[9]) {
    for (int i = 0; i < 9; i++) v[i] = i % 4 == 0 ? 1.0 : 0.0;
    for (int sweep = 0; sweep < 64; sweep++) {
        double off = a[1] * a[1] + a[2] * a[2] + a[5] * a[5];
        double diag = a[0] * a[0] + a[4] * a[4] + a[8] * a[8];
        if (off <= 1e-30 * diag || off == 0.0) break;
        for (int p = 0; p < 2; p++)
            for (int q = p + 1; q < 3; q++) {
                double apq = a[p * 3 + q];
                if (apq == 0.0) continue;
                double theta = (a[q * 3 + q] - a[p * 3 + p]) / (2.0 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                /* a = J^T a J with J the rotation in the (p, q) plane */
                for (int k = 0; k < 3; k++) {
                    double akp = a[k * 3 + p], akq = a[k * 3 + q];
                    a[k * 3 + p] = c * akp - s * akq;
                    a[k * 3 + q] = s * akp + c * akq;
                }
                for (int k = 0; k < 3; k++) {
                    double apk = a[p * 3 + k], aqk = a[q * 3 + k];
                    a[p * 3 + k] = c * apk - s * aqk;
                    a[q * 3 + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < 3; k++) {
                    double vkp = v[k * 3 + p], vkq = v[k * 3 + q];
                    v[k * 3 + p] = c * vkp - s * vkq;
                    v[k * 3 + q] = s * vkp + c * vkq;
                }
            }
    }
    for (int i = 0; i < 3; i++) val[i] = a[i * 4];
}

int fv_color_stats_matrix(const struct fv_color_stats *s, float m[9], struct fv_error *err) {
    if (s->images < 1)
        return fv_error_set(err, FV_ERR_USAGE,
                            "colour matrix: no images (need at least 2 pixels each)");
    double a[9], val[3], v[9];
    for (int i = 0; i < 9; i++) a[i] = s->cov_sum[i] / (double)s->images;
    if (!(a[0] + a[4] + a[8] > 0.0))
        return fv_error_set(err, FV_ERR_USAGE,
                            "colour matrix: the images have no colour variance");
    jacobi3(a, val, v);
    int order[3] = {0, 1, 2}; /* eigenvalues descending */
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++)
            if (val[order[j]] > val[order[i]]) {
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    double out[9], max_norm = 0;
    for (int j = 0; j < 3; j++) {
        int e = order[j];
        double big = 0;
        for (int r = 0; r < 3; r++) big = fmax(big, fabs(v[r * 3 + e]));
        double sign = 1;
        for (int r = 0; r < 3; r++)
            if (fabs(v[r * 3 + e]) > 1e-4 * big) {
                sign = v[r * 3 + e] < 0 ? -1 : 1;
                break;
            }
        double sv = sqrt(fmax(val[e], 0.0) + 1e-10), norm = 0;
        for (int r = 0; r < 3; r++) {
            out[r * 3 + j] = sign * v[r * 3 + e] * sv;
            norm += out[r * 3 + j] * out[r * 3 + j];
        }
        max_norm = fmax(max_norm, sqrt(norm));
    }
    for (int i = 0; i < 9; i++) m[i] = (float)(out[i] / max_norm);
    return FV_OK;
}

/* ---- MACO's magnitude spectrum from real images ---- */

void fv_spectrum_from_images(const struct fv_param *p, const float *img, int n, float *mag, float *ws) {
    int h = p->h, w = p->w, c = p->c, wf = w / 2 + 1;
    size_t pixels = (size_t)h * w, hwc = pixels * c, bins = (size_t)h * wf;
    float minv[9];
    int dec = p->decorrelate && invert3(p->m, minv);
    memset(mag, 0, (size_t)c * bins * sizeof(float));
    float *t = ws, *spec = ws + hwc, *dft_ws = spec + 2 * bins;
    for (int b = 0; b < n; b++) {
        const float *ub = img + (size_t)b * hwc;
        for (size_t i = 0; i < pixels; i++) {
            float *tp = t + i * c;
            for (int k = 0; k < c; k++) {
                float x = ub[i * c + k];
                x = x < 0.01f ? 0.01f : x > 0.99f ? 0.99f : x;
                tp[k] = logf(x / (1.f - x)); /* the sigmoid's inverse */
            }
            if (dec) {
                float a = tp[0], bb = tp[1], cc = tp[2];
                tp[0] = minv[0] * a + minv[1] * bb + minv[2] * cc;
                tp[1] = minv[3] * a + minv[4] * bb + minv[5] * cc;
                tp[2] = minv[6] * a + minv[7] * bb + minv[8] * cc;
            }
        }
        for (int k = 0; k < c; k++) {
            fv_rfft2(&p->dft, t + k, c, spec, dft_ws);
            float *m = mag + (size_t)k * bins;
            for (size_t i = 0; i < bins; i++)
                m[i] += hypotf(spec[2 * i], spec[2 * i + 1]) / (fourier_gain * (float)n);
        }
    }
}
