/* Update rules for theta (n, size), ASCENT, each image from its own numbers:
 * Adam, normalized gradient ascent (DeepDream), RMSprop, gradient clipping. */
#include <math.h>

#include "featviz/optim.h"

void fv_adam_default(struct fv_adam *a) {
    a->lr = 0.05f;
    a->beta1 = 0.9f;
    a->beta2 = 0.999f;
    a->eps = 1e-8f;
}

void fv_adam_step(const struct fv_adam *a, float *theta, const float *g, float *m, float *v,
                  int *t, int n, size_t size) {
    float b1 = a->beta1, b2 = a->beta2, lr = a->lr, eps = a->eps; /* locals: the loop vectorizes */
#pragma omp parallel for schedule(static) if ((size_t)n * size >= FV_OPTIM_PAR_MIN)
    for (int b = 0; b < n; b++) {
        int step = ++t[b];
        float bc1 = (float)(1.0 - pow((double)b1, (double)step));
        float bc2 = (float)(1.0 - pow((double)b2, (double)step));
        size_t off = (size_t)b * size;
        float *th = theta + off, *mb = m + off, *vb = v + off;
        const float *gb = g + off;
        for (size_t i = 0; i < size; i++) {
            mb[i] = b1 * mb[i] + (1.f - b1) * gb[i];
            vb[i] = b2 * vb[i] + (1.f - b2) * gb[i] * gb[i];
            /* theta += lr * m_hat / (sqrt(v_hat) + eps) */
            th[i] += lr * (mb[i] / bc1) / (sqrtf(vb[i] / bc2) + eps);
        }
    }
}

static double grad_norm(const float *g, size_t size, enum fv_grad_norm norm) {
    double s = 0;
    switch (norm) {
    case FV_NORM_NONE:
        return 1.0;
    case FV_NORM_MEAN_ABS:
        for (size_t i = 0; i < size; i++) s += fabs((double)g[i]);
        return s / (double)size;
    case FV_NORM_RMS:
        for (size_t i = 0; i < size; i++) s += (double)g[i] * (double)g[i];
        return sqrt(s / (double)size);
    case FV_NORM_L2:
        for (size_t i = 0; i < size; i++) s += (double)g[i] * (double)g[i];
        return sqrt(s);
    }
    return 1.0;
}

void fv_ascent_step(float lr, enum fv_grad_norm norm, float *theta, const float *g, int n,
                    size_t size) {
#pragma omp parallel for schedule(static) if ((size_t)n * size >= FV_OPTIM_PAR_MIN)
    for (int b = 0; b < n; b++) {
        const float *gb = g + (size_t)b * size;
        float *th = theta + (size_t)b * size;
        /* theta += lr * g / (norm(g) + 1e-8); plain lr * g without a norm */
        float k = norm == FV_NORM_NONE
                      ? lr
                      : (float)((double)lr / (grad_norm(gb, size, norm) + 1e-8));
        for (size_t i = 0; i < size; i++) th[i] += k * gb[i];
    }
}

void fv_rmsprop_step(float lr, float rho, float eps, float *theta, const float *g, float *v,
                     int n, size_t size) {
    size_t count = (size_t)n * size;
    for (size_t i = 0; i < count; i++) {
        v[i] = rho * v[i] + (1.f - rho) * g[i] * g[i];
        theta[i] += lr * g[i] / (sqrtf(v[i]) + eps);
    }
}

void fv_grad_clip_value(float *g, size_t count, float clip) {
    for (size_t i = 0; i < count; i++) g[i] = g[i] > clip ? clip : g[i] < -clip ? -clip : g[i];
}

void fv_grad_clip_norm(float *g, int n, size_t size, float max_norm) {
    for (int b = 0; b < n; b++) {
        float *gb = g + (size_t)b * size;
        double s = grad_norm(gb, size, FV_NORM_L2);
        if (s > (double)max_norm && s > 0) {
            float k = (float)((double)max_norm / s);
            for (size_t i = 0; i < size; i++) gb[i] *= k;
        }
    }
}
