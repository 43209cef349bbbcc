/* Activation functions: Keras names, forward and backward side by side.
 *
 * Elementwise kinds see the tensor as one flat array of outer*dim*inner
 * floats. Softmax sees it as (outer, dim, inner) and normalises along dim,
 * with the max subtracted first.
 *
 * Keras references (tf.keras 2.x backend / Keras 3 ops):
 *   relu        keras.layers.ReLU: f(x) = max_value          if x >= max_value
 *                                         x                  if threshold < x < max_value
 *                                         alpha*(x-threshold) otherwise
 *               (the Keras code computes x*(x > threshold), clipped to [0, max_value],
 *               minus alpha*relu(threshold - x): at x == threshold the result is 0.)
 *   elu         x if x > 0 else alpha*(exp(x)-1)
 *   selu        scale * elu(x, alpha) with the fixed SELU constants
 *   hard_sigmoid  Keras 2: clip(0.2x + 0.5, 0, 1); Keras 3: relu6(x + 3) / 6
 *   gelu        0.5x(1 + erf(x/sqrt 2)); approximate: 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3)))
 *   swish/silu  x*sigmoid(x)
 * ONNX kinds (no Keras name):
 *   hard_sigmoid_ab  clip(alpha*x + beta, 0, 1) (HardSigmoid with its attributes)
 *   hard_swish       x*relu6(x + 3)/6
 *   clip             min(max(x, lo), hi)
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "featviz/layer.h"
#include "kernels/simd.h"

#define SELU_ALPHA 1.67326324235437728481f
#define SELU_SCALE 1.05070098735548049342f
#define GELU_K 0.79788456080286535588f  /* sqrt(2/pi) */
#define GELU_C 0.044715f
#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f

/* Parallel loops only pay off on big tensors. */
#define ACT_PAR_MIN 65536

/* ---- names ---- */

int fv_act_parse(const char *name, int keras3, struct fv_act *out, struct fv_error *err) {
    struct fv_act a = {FV_ACT_LINEAR, 0.f, -1.f, 0.f};
    if (!name || !*name || !strcmp(name, "linear") || !strcmp(name, "None")) {
        a.kind = FV_ACT_LINEAR;
    } else if (!strcmp(name, "relu")) {
        a.kind = FV_ACT_RELU;
    } else if (!strcmp(name, "relu6")) {
        a.kind = FV_ACT_RELU;
        a.max_value = 6.f;
    } else if (!strcmp(name, "leaky_relu")) {
        a.kind = FV_ACT_RELU;  /* Keras 3 activations.leaky_relu: negative_slope 0.2 */
        a.alpha = 0.2f;
    } else if (!strcmp(name, "elu")) {
        a.kind = FV_ACT_ELU;
        a.alpha = 1.f;
    } else if (!strcmp(name, "selu")) {
        a.kind = FV_ACT_SELU;
    } else if (!strcmp(name, "sigmoid")) {
        a.kind = FV_ACT_SIGMOID;
    } else if (!strcmp(name, "hard_sigmoid")) {
        a.kind = keras3 ? FV_ACT_HARD_SIGMOID3 : FV_ACT_HARD_SIGMOID;
    } else if (!strcmp(name, "tanh")) {
        a.kind = FV_ACT_TANH;
    } else if (!strcmp(name, "softmax")) {
        a.kind = FV_ACT_SOFTMAX;
    } else if (!strcmp(name, "softplus")) {
        a.kind = FV_ACT_SOFTPLUS;
    } else if (!strcmp(name, "softsign")) {
        a.kind = FV_ACT_SOFTSIGN;
    } else if (!strcmp(name, "swish") || !strcmp(name, "silu")) {
        a.kind = FV_ACT_SWISH;
    } else if (!strcmp(name, "gelu")) {
        a.kind = FV_ACT_GELU;
    } else if (!strcmp(name, "exponential")) {
        a.kind = FV_ACT_EXPONENTIAL;
    } else {
        return fv_error_set(err, FV_ERR_UNSUPPORTED, "unknown activation '%s'", name);
    }
    if (out) *out = a;
    return FV_OK;
}

const char *fv_act_name(const struct fv_act *a) {
    switch (a->kind) {
    case FV_ACT_LINEAR: return "linear";
    case FV_ACT_RELU:
        if (a->alpha == 0.f && a->threshold == 0.f && a->max_value == 6.f) return "relu6";
        if (a->alpha != 0.f && a->threshold == 0.f && a->max_value < 0.f) return "leaky_relu";
        return "relu";
    case FV_ACT_ELU: return "elu";
    case FV_ACT_SELU: return "selu";
    case FV_ACT_SIGMOID: return "sigmoid";
    case FV_ACT_HARD_SIGMOID: return "hard_sigmoid";
    case FV_ACT_HARD_SIGMOID3: return "hard_sigmoid";
    case FV_ACT_TANH: return "tanh";
    case FV_ACT_SOFTMAX: return "softmax";
    case FV_ACT_SOFTPLUS: return "softplus";
    case FV_ACT_SOFTSIGN: return "softsign";
    case FV_ACT_SWISH: return "swish";
    case FV_ACT_GELU: return "gelu";
    case FV_ACT_GELU_TANH: return "gelu";
    case FV_ACT_EXPONENTIAL: return "exponential";
    case FV_ACT_HARD_SIGMOID_AB: return "hard_sigmoid";
    case FV_ACT_HARD_SWISH: return "hard_swish";
    case FV_ACT_CLIP: return "clip";
    case FV_ACT_COUNT: break;
    }
    return "?";
}

/* ---- scalar helpers ---- */

static float sigmoidf(float x) {
    if (x >= 0.f) return 1.f / (1.f + expf(-x));
    float e = expf(x);
    return e / (1.f + e);
}

/* Keras ReLU, the way the Keras code computes it:
 *   pos = x if x > threshold else 0;  pos = clip(pos, 0, max_value) if max_value given
 *   y   = pos - alpha * relu(threshold - x) */
static float relu_f(const struct fv_act *a, float x) {
    float pos = x > a->threshold ? x : 0.f;
    if (a->max_value >= 0.f) pos = fminf(fmaxf(pos, 0.f), a->max_value);
    if (a->alpha != 0.f && x < a->threshold) pos += a->alpha * (x - a->threshold);
    return pos;
}

static float act_one(const struct fv_act *a, float x) {
    switch (a->kind) {
    case FV_ACT_RELU: return relu_f(a, x);
    case FV_ACT_ELU: return x > 0.f ? x : a->alpha * expm1f(x);
    case FV_ACT_SELU: return SELU_SCALE * (x > 0.f ? x : SELU_ALPHA * expm1f(x));
    case FV_ACT_SIGMOID: return sigmoidf(x);
    case FV_ACT_HARD_SIGMOID: return fminf(fmaxf(0.2f * x + 0.5f, 0.f), 1.f);
    case FV_ACT_HARD_SIGMOID3: return fminf(fmaxf(x + 3.f, 0.f), 6.f) / 6.f;
    case FV_ACT_TANH: return tanhf(x);
    case FV_ACT_SOFTPLUS: /* log(1+exp(x)) without overflow */
        return fmaxf(x, 0.f) + log1pf(expf(-fabsf(x)));
    case FV_ACT_SOFTSIGN: return x / (1.f + fabsf(x));
    case FV_ACT_SWISH: return x * sigmoidf(x);
    case FV_ACT_GELU: return 0.5f * x * (1.f + erff(x * INV_SQRT2));
    case FV_ACT_GELU_TANH: return 0.5f * x * (1.f + tanhf(GELU_K * (x + GELU_C * x * x * x)));
    case FV_ACT_EXPONENTIAL: return expf(x);
    case FV_ACT_HARD_SIGMOID_AB: return fminf(fmaxf(a->alpha * x + a->threshold, 0.f), 1.f);
    case FV_ACT_HARD_SWISH: return x * (fminf(fmaxf(x + 3.f, 0.f), 6.f) / 6.f);
    case FV_ACT_CLIP: return fminf(fmaxf(x, a->alpha), a->max_value);
    case FV_ACT_LINEAR:
    case FV_ACT_SOFTMAX:
    case FV_ACT_COUNT: break;
    }
    return x;
}

/* d relu_f / dx (0 on the flat parts). */
static float relu_d(const struct fv_act *a, float x) {
    float d = 0.f;
    if (x > a->threshold) /* pos = x, or clip(x, 0, max_value) */
        d = (a->max_value < 0.f || (x > 0.f && x < a->max_value)) ? 1.f : 0.f;
    if (x < a->threshold) d += a->alpha;
    return d;
}

/* dact/dx at x, recomputed from x (more accurate than from y near saturation). */
static float act_d(const struct fv_act *a, float x) {
    switch (a->kind) {
    case FV_ACT_RELU: return relu_d(a, x);
    case FV_ACT_ELU: /* y = alpha*(exp(x)-1)  ->  dy/dx = alpha*exp(x) */
        return x > 0.f ? 1.f : a->alpha * expf(x);
    case FV_ACT_SELU: return x > 0.f ? SELU_SCALE : SELU_SCALE * SELU_ALPHA * expf(x);
    case FV_ACT_SIGMOID: /* s(x)*(1-s(x)) with 1-s(x) = s(-x): no cancellation */
        return sigmoidf(x) * sigmoidf(-x);
    case FV_ACT_HARD_SIGMOID: {
        float t = 0.2f * x + 0.5f;
        return (t > 0.f && t < 1.f) ? 0.2f : 0.f;
    }
    case FV_ACT_HARD_SIGMOID3: return (x > -3.f && x < 3.f) ? 1.f / 6.f : 0.f;
    case FV_ACT_TANH: { /* 1 - tanh^2 = sech^2 = 4e/(1+e)^2, e = exp(-2|x|) */
        float e = expf(-2.f * fabsf(x));
        return 4.f * e / ((1.f + e) * (1.f + e));
    }
    case FV_ACT_SOFTPLUS: return sigmoidf(x);
    case FV_ACT_SOFTSIGN: {
        float t = 1.f + fabsf(x);
        return 1.f / (t * t);
    }
    case FV_ACT_SWISH: { /* d(x s) = s + x s (1-s) */
        float s = sigmoidf(x);
        return s + x * s * sigmoidf(-x);
    }
    case FV_ACT_GELU: /* Phi(x) + x phi(x) */
        return 0.5f * (1.f + erff(x * INV_SQRT2)) + x * INV_SQRT_2PI * expf(-0.5f * x * x);
    case FV_ACT_GELU_TANH: {
        float t = tanhf(GELU_K * (x + GELU_C * x * x * x));
        return 0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * GELU_K * (1.f + 3.f * GELU_C * x * x);
    }
    case FV_ACT_EXPONENTIAL: return expf(x);
    case FV_ACT_HARD_SIGMOID_AB: {
        float t = a->alpha * x + a->threshold;
        return (t > 0.f && t < 1.f) ? a->alpha : 0.f;
    }
    case FV_ACT_HARD_SWISH: /* x(x+3)/6 inside, x outside on the right */
        return x <= -3.f ? 0.f : x >= 3.f ? 1.f : (2.f * x + 3.f) / 6.f;
    case FV_ACT_CLIP: return (x > a->alpha && x < a->max_value) ? 1.f : 0.f;
    case FV_ACT_LINEAR:
    case FV_ACT_SOFTMAX:
    case FV_ACT_COUNT: break;
    }
    return 1.f;
}

/* ---- softmax along dim of (outer, dim, inner) ---- */

static void softmax_forward(const float *x, float *y, size_t outer, int dim, size_t inner) {
    size_t lines = outer * inner;
#pragma omp parallel for schedule(static) if (lines * (size_t)dim > ACT_PAR_MIN)
    for (size_t l = 0; l < lines; l++) {
        size_t o = l / inner, i = l % inner;
        const float *xl = x + o * (size_t)dim * inner + i; /* stride inner */
        float *yl = y + o * (size_t)dim * inner + i;
        float m = -INFINITY;
        for (int d = 0; d < dim; d++) m = fmaxf(m, xl[(size_t)d * inner]);
        float s = 0.f;
        for (int d = 0; d < dim; d++) {
            float e = expf(xl[(size_t)d * inner] - m);
            yl[(size_t)d * inner] = e;
            s += e;
        }
        float inv = 1.f / s;
        for (int d = 0; d < dim; d++) yl[(size_t)d * inner] *= inv;
    }
}

static void softmax_backward(const float *y, const float *dy, float *dx, size_t outer, int dim,
                             size_t inner) {
    size_t lines = outer * inner;
#pragma omp parallel for schedule(static) if (lines * (size_t)dim > ACT_PAR_MIN)
    for (size_t l = 0; l < lines; l++) {
        size_t off = (l / inner) * (size_t)dim * inner + l % inner;
        /* forward: y_d = exp(x_d - m) / sum_k exp(x_k - m)
         * so: dx_d = y_d * (dy_d - sum_k dy_k y_k) */
        float dot = 0.f;
        for (int d = 0; d < dim; d++) dot += dy[off + (size_t)d * inner] * y[off + (size_t)d * inner];
        for (int d = 0; d < dim; d++) {
            size_t k = off + (size_t)d * inner;
            dx[k] += y[k] * (dy[k] - dot);
        }
    }
}

/* ---- public ---- */

void fv_act_forward(const struct fv_act *a, const float *x, float *y, size_t outer, int dim,
                    size_t inner) {
    if (a->kind == FV_ACT_SOFTMAX) {
        softmax_forward(x, y, outer, dim, inner);
        return;
    }
    size_t count = outer * (size_t)dim * inner;
    if (a->kind == FV_ACT_LINEAR) {
        if (y != x) memmove(y, x, count * sizeof(float));
        return;
    }
    if (a->kind == FV_ACT_RELU && a->alpha == 0.f && a->max_value < 0.f && a->threshold == 0.f) {
        /* plain relu (vectorizable) */
#pragma omp parallel for schedule(static) if (count > ACT_PAR_MIN)
        for (size_t i = 0; i < count; i++) y[i] = x[i] > 0.f ? x[i] : 0.f;
        return;
    }
    if (a->kind == FV_ACT_RELU && a->alpha == 0.f && a->max_value >= 0.f && a->threshold == 0.f) {
        /* relu6 & co.: relu_f without the fminf/fmaxf calls (the same values,
         * NaN included: it gives 0), which gcc then vectorizes */
        float m = a->max_value;
#pragma omp parallel for schedule(static) if (count > ACT_PAR_MIN)
        for (size_t i = 0; i < count; i++) y[i] = x[i] > 0.f ? (x[i] < m ? x[i] : m) : 0.f;
        return;
    }
#pragma omp parallel for schedule(static) if (count > ACT_PAR_MIN)
    for (size_t i = 0; i < count; i++) y[i] = act_one(a, x[i]);
}

/* Dead-ReLU escape: the unit is "off" when x sits in the flat region below the
 * threshold (or is clipped up to 0), not when it is saturated at max_value. */
static int relu_off(const struct fv_act *a, float x) {
    if (a->max_value >= 0.f && x >= a->max_value) return 0;
    return relu_d(a, x) == 0.f;
}

void fv_act_backward(const struct fv_act *a, const float *x, const float *y, const float *dy,
                     float *dx, size_t outer, int dim, size_t inner, int escape) {
    if (a->kind == FV_ACT_SOFTMAX) {
        softmax_backward(y, dy, dx, outer, dim, inner);
        return;
    }
    size_t count = outer * (size_t)dim * inner;
    if (a->kind == FV_ACT_LINEAR) {
        /* forward: y = x */
        for (size_t i = 0; i < count; i++) dx[i] += dy[i];
        return;
    }
    if (a->kind == FV_ACT_RELU && escape) {
        /* forward: y = relu_f(x); where the unit is off, let a gradient through
         * that would turn it on (dy > 0: the objective wants y larger). */
#pragma omp parallel for schedule(static) if (count > ACT_PAR_MIN)
        for (size_t i = 0; i < count; i++) {
            if (relu_off(a, x[i]))
                dx[i] += dy[i] > 0.f ? dy[i] : 0.f;
            else
                dx[i] += relu_d(a, x[i]) * dy[i];
        }
        return;
    }
    if (a->kind == FV_ACT_RELU && a->alpha == 0.f && a->max_value < 0.f && a->threshold == 0.f) {
        /* plain relu: act'(x) = x > 0 (vectorizable) */
#pragma omp parallel for schedule(static) if (count > ACT_PAR_MIN)
        for (size_t i = 0; i < count; i++) dx[i] += (x[i] > 0.f ? 1.f : 0.f) * dy[i];
        return;
    }
    if (a->kind == FV_ACT_RELU && a->alpha == 0.f && a->max_value >= 0.f && a->threshold == 0.f) {
        /* relu6 & co.: relu_d inline (vectorizable) */
        float m = a->max_value;
#pragma omp parallel for schedule(static) if (count > ACT_PAR_MIN)
        for (size_t i = 0; i < count; i++) dx[i] += (x[i] > 0.f && x[i] < m ? 1.f : 0.f) * dy[i];
        return;
    }
    /* forward: y = act_one(x)  ->  dx = act'(x) * dy */
#pragma omp parallel for schedule(static) if (count > ACT_PAR_MIN)
    for (size_t i = 0; i < count; i++) dx[i] += act_d(a, x[i]) * dy[i];
}

/* g = g * (y > 0) (escape: max(g, 0) where y <= 0) over one run; with a cap
 * (ReLU6 & co., cap > 0): g * (0 < y < cap), escape: max(g, 0) where y <= 0,
 * 0 where y >= cap, as fv_act_backward gives from the input (y == cap exactly
 * where x >= cap, y == 0 where x <= 0) */
FV_BODY void relu_mask_run_body(const float *restrict y, float *restrict g, size_t count,
                                int escape, float cap) {
    if (cap > 0.f) {
        if (escape)
            for (size_t i = 0; i < count; i++) g[i] = y[i] > 0.f ? (y[i] < cap ? g[i] : 0.f) : (g[i] > 0.f ? g[i] : 0.f);
        else
            for (size_t i = 0; i < count; i++) g[i] = y[i] > 0.f && y[i] < cap ? g[i] : 0.f;
    } else if (escape) {
        for (size_t i = 0; i < count; i++) g[i] = y[i] > 0.f || g[i] > 0.f ? g[i] : 0.f;
    } else {
        for (size_t i = 0; i < count; i++) g[i] = y[i] > 0.f ? g[i] : 0.f;
    }
}
FV_ISA_VERSIONS(static, relu_mask_run, (const float *restrict y, float *restrict g, size_t count, int escape, float cap),
                (y, g, count, escape, cap))

/* dx (=|+=) g * (0 < y < cap) over one run (cap 0: g * (y > 0)), in 8-lane
 * vectors: written as loops, gcc moved the add under the test and left it
 * branching and scalar. Where the mask is off, dx = +0 (assign) or dx + 0:
 * the bits of the in-place mask followed by dx += g. */
typedef float act_v8f __attribute__((vector_size(32)));
typedef int act_v8i __attribute__((vector_size(32)));
FV_BODY void relu_mask_to_run_body(const float *restrict y, const float *restrict g, float *restrict dx,
                                   size_t count, float cap, int assign) {
    const act_v8f zero = {0}, capv = zero + (cap > 0.f ? cap : 0.f);
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        act_v8f yv, gv, dv;
        memcpy(&yv, y + i, sizeof yv);
        memcpy(&gv, g + i, sizeof gv);
        act_v8i on = yv > zero;
        if (cap > 0.f) on &= yv < capv;
        if (assign) {
            dv = (act_v8f)((act_v8i)(zero + gv) & on);
        } else {
            memcpy(&dv, dx + i, sizeof dv);
            dv = (act_v8f)(((act_v8i)(dv + gv) & on) | ((act_v8i)(dv + zero) & ~on));
        }
        memcpy(dx + i, &dv, sizeof dv);
    }
    for (; i < count; i++) {
        float m = y[i] > 0.f && (cap <= 0.f || y[i] < cap) ? g[i] : 0.f;
        dx[i] = assign ? 0.f + m : dx[i] + m;
    }
}
FV_ISA_VERSIONS(static, relu_mask_to_run, (const float *restrict y, const float *restrict g, float *restrict dx, size_t count, float cap, int assign),
                (y, g, dx, count, cap, assign))

void fv_relu_backward_to(const float *y, const float *g, float *dx, size_t count, float cap, int assign) {
    size_t chunk = 16384, parts = (count + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (count > ACT_PAR_MIN)
    for (size_t k = 0; k < parts; k++)
        relu_mask_to_run(y + k * chunk, g + k * chunk, dx + k * chunk,
                         count - k * chunk < chunk ? count - k * chunk : chunk, cap, assign);
}

void fv_relu_gate(float *dx, const float *y, size_t count, float cap) {
    relu_mask_run(y, dx, count, 0, cap);
}

void fv_relu_backward_in_place(const float *y, float *g, size_t count, int escape, float cap) {
    size_t chunk = 16384, parts = (count + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (count > ACT_PAR_MIN)
    for (size_t k = 0; k < parts; k++)
        relu_mask_run(y + k * chunk, g + k * chunk, count - k * chunk < chunk ? count - k * chunk : chunk,
                      escape, cap);
}
