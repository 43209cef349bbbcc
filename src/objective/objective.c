/* Objective grammar, values and gradient seeds (the explicit "kick off the
 * chain rule" step: each term writes d value / d output into dy or dpre). */
#include "featviz/objective.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BAD(...) fv_error_set(err, FV_ERR_USAGE, __VA_ARGS__)

static int read_int(const char **s, int *out) {
    const char *c = *s;
    if (!isdigit((unsigned char)*c)) return 0;
    long v = strtol(c, (char **)s, 10);
    if (v > 100000000) return 0;
    *out = (int)v;
    return 1;
}

/* A layer name runs to ':', whitespace, '+', '*' or the end. */
static int read_name(const char **s, char *out, size_t cap) {
    size_t n = 0;
    const char *c = *s;
    while (*c && *c != ':' && !isspace((unsigned char)*c) && *c != '+' && *c != '*') {
        if (n + 1 >= cap) return 0;
        out[n++] = *c++;
    }
    out[n] = 0;
    *s = c;
    return n > 0;
}

static int parse_term(const char **s, const struct fv_model *m, struct fv_term *t, const char *text,
                      struct fv_error *err) {
    static const struct { const char *name; enum fv_term_kind kind; int ints; } kinds[] = {
        {"class", FV_TERM_CLASS, 1}, {"filter", FV_TERM_FILTER, 1},
        {"neuron", FV_TERM_NEURON, 3}, {"dream", FV_TERM_DREAM, 0}, {"logprob", FV_TERM_LOGPROB, 1}};
    const char *c = *s;
    int k = -1;
    for (int i = 0; i < 5; i++) {
        size_t len = strlen(kinds[i].name);
        if (!strncmp(c, kinds[i].name, len) && c[len] == ':') {
            k = i;
            c += len + 1;
            break;
        }
    }
    if (k < 0)
        return BAD("objective '%s': expected class:C, logprob:C, filter:LAYER:F, neuron:LAYER:F:Y:X or dream:LAYER at '%s'", text, c);
    t->kind = kinds[k].kind;
    if (t->kind == FV_TERM_CLASS || t->kind == FV_TERM_LOGPROB) {
        if (!read_int(&c, &t->channel)) return BAD("objective '%s': %s needs a class index", text, kinds[k].name);
        t->node = fv_model_logits(m, &t->pre);
    } else {
        char name[FV_NAME_MAX];
        if (!read_name(&c, name, sizeof name)) return BAD("objective '%s': %s needs a layer name", text, kinds[k].name);
        if ((t->node = fv_model_find(m, name)) < 0)
            return BAD("objective '%s': no layer named '%s' in %s (see featviz info)", text, name, m->path);
        if (t->node == m->input) return BAD("objective '%s': '%s' is the input layer", text, name);
        int *dst[3] = {&t->channel, &t->y, &t->x};
        for (int i = 0; i < kinds[k].ints; i++) {
            if (*c != ':' || (c++, !read_int(&c, dst[i])))
                return BAD("objective '%s': %s:%s needs %s", text, kinds[k].name, name,
                           t->kind == FV_TERM_NEURON ? "F:Y:X (channel, row, column)" : "a filter index");
        }
        if (!strncmp(c, ":pre", 4)) {
            c += 4;
            t->pre = 1;
        }
    }
    if (*c && !isspace((unsigned char)*c) && *c != '+' && *c != '-')
        return BAD("objective '%s': unexpected '%s'", text, c);
    *s = c;
    return FV_OK;
}

int fv_objective_parse(const char *text, const struct fv_model *m, struct fv_objective *o,
                       struct fv_error *err) {
    memset(o, 0, sizeof *o);
    snprintf(o->text, sizeof o->text, "%s", text ? text : "");
    const char *c = text ? text : "";
    float sign = 1;
    for (;;) {
        while (isspace((unsigned char)*c)) c++;
        if (!*c) /* empty text, or an operator with nothing after it */
            return BAD("objective '%s': expected class:C, filter:LAYER:F, neuron:LAYER:F:Y:X or dream:LAYER at the end", text);
        if (o->n == FV_MAX_TERMS) return BAD("objective '%s': more than %d terms", text, FV_MAX_TERMS);
        struct fv_term *t = &o->t[o->n];
        t->weight = sign;
        if (*c == '-' || *c == '+') {
            if (*c == '-') t->weight = -t->weight;
            c++;
            while (isspace((unsigned char)*c)) c++;
        }
        if (isdigit((unsigned char)*c) || *c == '.') {
            char *end;
            double wgt = strtod(c, &end);
            const char *star = end;
            while (isspace((unsigned char)*star)) star++;
            if (*star == '*') {
                t->weight *= (float)wgt;
                c = star + 1;
                while (isspace((unsigned char)*c)) c++;
            }
        }
        int rc = parse_term(&c, m, t, text, err);
        if (rc) return rc;
        o->n++;
        while (isspace((unsigned char)*c)) c++;
        if (!*c) break;
        if (*c != '+' && *c != '-') return BAD("objective '%s': expected + or - at '%s'", text, c);
        sign = *c == '-' ? -1.f : 1.f;
        c++;
    }
    /* channels can be checked without a plan for rank-1 outputs; the rest in fv_objective_check */
    return FV_OK;
}

/* Channel count and spatial size of a node's output (physical: channels last). */
static void dims(const struct fv_plan *p, int node, int *hw, int *ch, int *h, int *w) {
    const struct fv_shape *s = &p->io[node].out;
    *ch = s->d[s->rank - 1];
    *hw = (int)(fv_shape_count(s) / (size_t)*ch);
    *h = s->rank == 3 ? s->d[0] : 1;
    *w = s->rank == 3 ? s->d[1] : *hw;
}

int fv_objective_check(const struct fv_objective *o, const struct fv_plan *p,
                       struct fv_error *err) {
    for (int i = 0; i < o->n; i++) {
        const struct fv_term *t = &o->t[i];
        int hw, ch, h, w;
        dims(p, t->node, &hw, &ch, &h, &w);
        const char *name = p->m->layers[t->node].name;
        if (t->kind != FV_TERM_DREAM && t->channel >= ch)
            return BAD("objective '%s': %s %d is out of range: '%s' has %d", o->text,
                       t->kind == FV_TERM_CLASS || t->kind == FV_TERM_LOGPROB ? "class" : "channel", t->channel, name, ch);
        if (t->kind == FV_TERM_NEURON && (t->y >= h || t->x >= w))
            return BAD("objective '%s': position (%d,%d) is outside '%s' (%dx%d)", o->text, t->y, t->x, name, h, w);
        if (t->pre && p->buf[t->node].relu_in_place) /* the caller planned with FV_PLAN_FUSE */
            return BAD("objective '%s': this plan does not keep the values before the ReLU of '%s'",
                       o->text, name);
    }
    return FV_OK;
}

int fv_objective_reads_pre_relu(const struct fv_objective *o, const struct fv_model *m) {
    for (int i = 0; i < o->n; i++)
        if (o->t[i].pre && m->layers[o->t[i].node].act.kind == FV_ACT_RELU) return 1;
    return 0;
}

int fv_objective_top(const struct fv_objective *o) {
    int top = -1;
    for (int i = 0; i < o->n; i++)
        if (o->t[i].node > top) top = o->t[i].node;
    return top;
}

int fv_objective_channel(const struct fv_objective *o, int node) {
    int ch = -1;
    for (int i = 0; i < o->n; i++) {
        const struct fv_term *t = &o->t[i];
        if (t->node != node || (t->kind != FV_TERM_FILTER && t->kind != FV_TERM_NEURON) ||
            (ch >= 0 && t->channel != ch))
            return -1;
        ch = t->channel;
    }
    return ch;
}

static double log_sum_exp(const float *y, int n) {
    double mx = -INFINITY, s = 0;
    for (int j = 0; j < n; j++) mx = (double)y[j] > mx ? (double)y[j] : mx;
    for (int j = 0; j < n; j++) s += exp((double)y[j] - mx);
    return mx + log(s);
}

static const float *term_data(const struct fv_plan *p, const struct fv_term *t, int img) {
    const struct fv_node_buf *b = &p->buf[t->node];
    size_t per = fv_shape_count(&p->io[t->node].out);
    return (t->pre ? b->pre : b->y) + (size_t)img * per;
}

double fv_objective_value(const struct fv_objective *o, const struct fv_plan *p, int img) {
    double total = 0;
    for (int i = 0; i < o->n; i++) {
        const struct fv_term *t = &o->t[i];
        const float *y = term_data(p, t, img);
        int hw, ch, h, w;
        dims(p, t->node, &hw, &ch, &h, &w);
        double v = 0;
        switch (t->kind) {
        case FV_TERM_CLASS:
            v = (double)y[t->channel];
            break;
        case FV_TERM_LOGPROB: /* log softmax of the logits: y[C] - log sum exp y */
            v = (double)y[t->channel] - log_sum_exp(y, ch);
            break;
        case FV_TERM_FILTER: /* value = mean over positions of y[pos, F] */
            for (int k = 0; k < hw; k++) v += (double)y[(size_t)k * ch + t->channel];
            v /= hw;
            break;
        case FV_TERM_NEURON:
            v = (double)y[((size_t)t->y * w + t->x) * ch + t->channel];
            break;
        case FV_TERM_DREAM: { /* value = mean(y^2) */
            size_t n = (size_t)hw * ch;
            for (size_t k = 0; k < n; k++) v += (double)y[k] * (double)y[k];
            v /= (double)n;
            break;
        }
        }
        total += (double)t->weight * v;
    }
    return total;
}

/* Seeds rows [r0, r1) of filter and dream terms, whose means divide by
 * full_h rows (r1 < 0: all rows, of the plan's own size). */
static void seed_rows(const struct fv_objective *o, struct fv_plan *p, int img, float scale, int r0,
                      int r1, int full_h) {
    for (int i = 0; i < o->n; i++) {
        const struct fv_term *t = &o->t[i];
        size_t per = fv_shape_count(&p->io[t->node].out);
        float *g = fv_plan_grad(p, t->node, t->pre) + (size_t)img * per;
        const float *y = term_data(p, t, img);
        int hw, ch, h, w;
        dims(p, t->node, &hw, &ch, &h, &w);
        int a = r1 < 0 ? 0 : r0, b = r1 < 0 ? h : r1, full = r1 < 0 ? h : full_h; /* rows seeded, rows in all */
        size_t k0 = (size_t)a * (size_t)(hw / h), k1 = (size_t)b * (size_t)(hw / h); /* their positions */
        float wgt = t->weight * scale;
        switch (t->kind) {
        case FV_TERM_CLASS:
            g[t->channel] += wgt;
            break;
        case FV_TERM_LOGPROB: { /* d/dy_j = [j == C] - softmax_j */
            double lse = log_sum_exp(y, ch);
            for (int j = 0; j < ch; j++) g[j] -= wgt * (float)exp((double)y[j] - lse);
            g[t->channel] += wgt;
            break;
        }
        case FV_TERM_FILTER: { /* d mean / d y[pos, F] = 1/HW */
            float d = wgt / (float)((size_t)full * (size_t)(hw / h));
            for (size_t k = k0; k < k1; k++) g[k * (size_t)ch + (size_t)t->channel] += d;
            break;
        }
        case FV_TERM_NEURON: /* not in bands (fv_objective_bands_ok) */
            g[((size_t)t->y * w + t->x) * ch + t->channel] += wgt;
            break;
        case FV_TERM_DREAM: { /* d mean(y^2) / dy = 2y/N */
            float n = (float)((size_t)full * (size_t)(hw / h) * (size_t)ch);
            for (size_t k = k0 * (size_t)ch; k < k1 * (size_t)ch; k++) g[k] += wgt * 2.0f * y[k] / n;
            break;
        }
        }
    }
}

void fv_objective_seed(const struct fv_objective *o, struct fv_plan *p, int img, float scale) {
    seed_rows(o, p, img, scale, 0, -1, 0);
}

int fv_objective_bands_ok(const struct fv_objective *o, int top) {
    for (int i = 0; i < o->n; i++)
        if (o->t[i].node != top || (o->t[i].kind != FV_TERM_FILTER && o->t[i].kind != FV_TERM_DREAM))
            return 0;
    return o->n > 0;
}

void fv_objective_seed_band(const struct fv_objective *o, struct fv_plan *p, int img, float scale,
                            const struct fv_band *b, int top_h) {
    seed_rows(o, p, img, scale, b->r0, b->r1, top_h);
}
