/* Bars: the bar primitive, a wrapped bar strip for a vector (Dense layer
 * activations) and a bar chart with axes for per-channel statistics. Layouts
 * are described in include/featviz/render.h. */
#include "featviz/render.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define MARGIN 8
#define MAX_TITLE_W 1024
#define LABEL_H (FV_FONT_H + 4) /* a line of scale-1 text and its gap */

/* ---- the primitive ---- */

/* Band row of value u: 0 at hi (band top), h at lo. */
static int row_of(float u, float lo, float hi, int h) {
    if (u < lo) u = lo;
    if (u > hi) u = hi;
    return (int)lround(((double)hi - (double)u) / ((double)hi - (double)lo) * h);
}

void fv_canvas_bars(struct fv_canvas *c, int y, int x, int h, const float *v, int n, float lo,
                    float hi, int bar_w, uint32_t color, const int *highlight) {
    if (!v || n <= 0 || h <= 0 || !isfinite(lo) || !isfinite(hi) || !(hi > lo)) return;
    if (bar_w < 1) bar_w = 1;
    int bw = bar_w >= 4 ? bar_w - 1 : bar_w;
    int rb = row_of(0.0f, lo, hi, h); /* baseline: clamp(0, lo, hi) */
    long span = (long)n * bar_w;
    if (lo < 0 && hi > 0) fv_canvas_fill(c, y + rb, x, 1, span > c->w ? c->w : (int)span, FV_GRAY);
    for (int i = 0; i < n; i++) {
        long bx = x + (long)i * bar_w;
        if (bx >= c->w) break;
        if (bx + bw <= 0 || isnan(v[i])) continue;
        int r = row_of(v[i], lo, hi, h);
        int top = r < rb ? r : rb, len = r < rb ? rb - r : r - rb;
        fv_canvas_fill(c, y + top, (int)bx, len, bw, highlight && highlight[i] ? FV_RED : color);
    }
}

/* Title line at (y, x) in width w: scale 2 if it fits, else 1 shortened.
 * Returns the band height it takes (0 without a title). */
static int title_band(struct fv_canvas *c, int y, int x, int w, const char *title) {
    if (!title || !title[0]) return 0;
    int ns = fv_text_width(title, 2) <= w ? 2 : 1;
    if (c) fv_canvas_text_box(c, y, x, w, title, ns, FV_TEXT, FV_ALIGN_LEFT);
    return ns * FV_FONT_H + 8;
}

/* Width for a picture whose content is content_w, widened for the title. */
static long widen_for_title(long content_w, const char *title) {
    long t = title && title[0] ? fv_text_width(title, 1) + 2L * MARGIN : 0;
    if (t > MAX_TITLE_W) t = MAX_TITLE_W;
    return content_w > t ? content_w : t;
}

/* Finite range of v widened to include 0; [lo, lo + 1] when it is one value. */
static void range_with_zero(const float *v, int n, float *lo, float *hi) {
    fv_finite_range(v, n > 0 ? (size_t)n : 0, lo, hi);
    if (*lo > 0) *lo = 0;
    if (*hi < 0) *hi = 0;
    if (!(*hi > *lo)) *hi = *lo + 1;
}

/* ---- bar strip ---- */

int fv_bars_write(const char *path, const struct fv_bars_spec *s, struct fv_error *err) {
    int n = s->n;
    if (n < 0 || (n > 0 && !s->v))
        return fv_error_set(err, FV_ERR_USAGE, "%s: bar strip of %d values without data", path, n);
    float lo = s->lo, hi = s->hi;
    if (lo == hi) range_with_zero(s->v, n, &lo, &hi);
    if (!isfinite(lo) || !isfinite(hi) || !(hi > lo))
        return fv_error_set(err, FV_ERR_USAGE, "%s: bad value range [%g, %g]", path, (double)lo,
                            (double)hi);
    int bar_w = s->bar_w > 0 ? s->bar_w : n <= 128 ? 4 : n <= 512 ? 2 : 1;
    int bar_h = s->bar_h > 0 ? s->bar_h : 80;
    long max_w = s->max_w > 0 ? s->max_w : 1024;
    if (bar_w > FV_CANVAS_MAX_SIDE || bar_h > FV_CANVAS_MAX_SIDE)
        return fv_error_set(err, FV_ERR_SHAPE, "%s: bars of %d x %d px are too large", path, bar_w,
                            bar_h);
    long per_row = (max_w - 2 * MARGIN) / bar_w;
    if (per_row < 1) per_row = 1;
    long cols = n < per_row ? n : per_row;
    long rows = n ? (n + per_row - 1) / per_row : 1; /* n = 0: one row saying "(empty)" */
    long w = widen_for_title(2L * MARGIN + cols * bar_w, s->title);
    if (n == 0 && w < 2L * MARGIN + fv_text_width("(empty)", 1)) w = 2L * MARGIN + fv_text_width("(empty)", 1);
    int title_h = title_band(NULL, 0, 0, (int)(w - 2 * MARGIN), s->title);
    long row_h = (long)bar_h + LABEL_H + MARGIN;
    long h = MARGIN + title_h + rows * row_h;
    if (h > FV_CANVAS_MAX_SIDE) /* before fv_canvas_init: keeps the int casts below exact */
        return fv_error_set(err, FV_ERR_SHAPE, "%s: a bar strip of %d values would be %ld px high",
                            path, n, h);

    struct fv_canvas c;
    int rc = fv_canvas_init(&c, (int)h, (int)w, FV_WHITE, err);
    if (rc != FV_OK) return fv_error_prefix(err, "%s", path);
    title_band(&c, MARGIN, MARGIN, (int)(w - 2 * MARGIN), s->title);
    if (n == 0) fv_canvas_text(&c, MARGIN + title_h, MARGIN, "(empty)", 1, FV_GRAY);
    for (long r = 0; r < rows && n > 0; r++) {
        int first = (int)(r * per_row);
        int cnt = n - first < per_row ? n - first : (int)per_row;
        int y = (int)(MARGIN + title_h + r * row_h), band_w = cnt * bar_w;
        fv_canvas_fill(&c, y, MARGIN, bar_h, band_w, FV_LIGHT);
        fv_canvas_bars(&c, y, MARGIN, bar_h, s->v + first, cnt, lo, hi, bar_w, FV_BLUE,
                       s->highlight ? s->highlight + first : NULL);
        char a[16], b[16];
        snprintf(a, sizeof a, "%d", first);
        snprintf(b, sizeof b, "%d", first + cnt - 1);
        int ly = y + bar_h + 2;
        fv_canvas_text_box(&c, ly, MARGIN, band_w, a, 1, FV_TEXT, FV_ALIGN_LEFT);
        int used = fv_text_width(a, 1) + fv_text_width(b, 1) + 12;
        if (cnt > 1 && used <= band_w)
            fv_canvas_text_box(&c, ly, MARGIN, band_w, b, 1, FV_TEXT, FV_ALIGN_RIGHT);
        char range[64];
        snprintf(range, sizeof range, "%.3g .. %.3g", (double)lo, (double)hi);
        if (r == 0 && used + fv_text_width(range, 1) + 12 <= band_w)
            fv_canvas_text_box(&c, ly, MARGIN, band_w, range, 1, FV_GRAY, FV_ALIGN_CENTER);
    }
    rc = fv_canvas_save(&c, path, err);
    fv_canvas_free(&c);
    return rc;
}

/* ---- bar chart with axes ---- */

/* Tick step: 1, 2 or 5 x 10^k, about span/5. */
static double nice_step(double span) {
    double raw = span / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

static void tick_label(char *buf, size_t cap, double v, double step) {
    if (fabs(v) < step * 1e-6) v = 0; /* no "-0" or 1e-17 */
    snprintf(buf, cap, "%g", v);
}

/* Smallest of 1, 2, 5, 10, 20, 50, ... channels whose bars span min_px. */
static int label_step(int bar_w, int min_px) {
    static const int mant[3] = {1, 2, 5};
    for (long dec = 1; dec <= 100000000L; dec *= 10)
        for (int k = 0; k < 3; k++)
            if (dec * mant[k] * bar_w >= min_px) return (int)(dec * mant[k]);
    return 1000000000;
}

struct chart_geom {
    double lo, hi, step;  /* y range (tick multiples) and tick step */
    int n_ticks;
    int bar_w, plot_w, plot_h;
    int px, py;           /* plot area top-left */
    int xstep;            /* channels between x labels */
    int w, h;
    int title_h;
};

static int chart_geometry(int n, const float *values, const char *title, const char *xlabel,
                          const char *ylabel, struct chart_geom *g) {
    memset(g, 0, sizeof *g);
    float flo, fhi;
    range_with_zero(values, n, &flo, &fhi);
    g->step = nice_step((double)fhi - (double)flo);
    g->lo = floor((double)flo / g->step) * g->step;
    g->hi = ceil((double)fhi / g->step) * g->step;
    g->n_ticks = (int)lround((g->hi - g->lo) / g->step) + 1;

    int label_w = 0; /* widest y tick label */
    for (int k = 0; k < g->n_ticks; k++) {
        char buf[32];
        tick_label(buf, sizeof buf, g->lo + k * g->step, g->step);
        int tw = fv_text_width(buf, 1);
        if (tw > label_w) label_w = tw;
    }
    g->bar_w = n > 0 ? 800 / n : 24;
    if (g->bar_w > 24) g->bar_w = 24;
    if (g->bar_w < 1) g->bar_w = 1;
    long plot_w = n > 0 ? (long)n * g->bar_w : 200;
    if (plot_w > FV_CANVAS_MAX_SIDE) return -1;
    g->plot_w = (int)plot_w;
    g->plot_h = 300;

    char last[16];
    snprintf(last, sizeof last, "%d", n > 0 ? n - 1 : 0);
    int xl_w = fv_text_width(last, 1);
    g->xstep = label_step(g->bar_w, xl_w + 8);

    long w = MARGIN + label_w + 8 + plot_w + xl_w / 2 + MARGIN;
    w = widen_for_title(w, title);
    if (w > FV_CANVAS_MAX_SIDE) return -1;
    g->w = (int)w;
    g->title_h = title_band(NULL, 0, 0, g->w - 2 * MARGIN, title);
    g->px = MARGIN + label_w + 8;
    g->py = MARGIN + g->title_h + (ylabel && ylabel[0] ? LABEL_H + 2 : 0) + 4;
    g->h = g->py + g->plot_h + 8 + FV_FONT_H + (xlabel && xlabel[0] ? 6 + FV_FONT_H : 0) + MARGIN;
    return 0;
}

int fv_bar_chart_write(const char *path, const char *title, int n, const float *values,
                       const int *highlight, const char *xlabel, const char *ylabel,
                       struct fv_error *err) {
    if (n < 0 || (n > 0 && !values))
        return fv_error_set(err, FV_ERR_USAGE, "%s: bar chart of %d values without data", path, n);
    struct chart_geom g;
    if (chart_geometry(n, values, title, xlabel, ylabel, &g) != 0)
        return fv_error_set(err, FV_ERR_SHAPE, "%s: a bar chart of %d bars is too wide", path, n);
    struct fv_canvas c;
    int rc = fv_canvas_init(&c, g.h, g.w, FV_WHITE, err);
    if (rc != FV_OK) return fv_error_prefix(err, "%s", path);

    title_band(&c, MARGIN, MARGIN, g.w - 2 * MARGIN, title);
    if (ylabel && ylabel[0])
        fv_canvas_text_box(&c, g.py - 4 - LABEL_H, MARGIN, g.w - 2 * MARGIN, ylabel, 1, FV_TEXT,
                           FV_ALIGN_LEFT);
    /* y ticks: grid line, tick mark, label centred on the tick */
    for (int k = 0; k < g.n_ticks; k++) {
        double v = g.lo + k * g.step;
        int ty = g.py + (int)lround((g.hi - v) / (g.hi - g.lo) * g.plot_h);
        char buf[32];
        tick_label(buf, sizeof buf, v, g.step);
        fv_canvas_fill(&c, ty, g.px, 1, g.plot_w, FV_LIGHT);
        fv_canvas_fill(&c, ty, g.px - 4, 1, 4, FV_GRAY);
        fv_canvas_text_box(&c, ty - FV_FONT_H / 2, MARGIN, g.px - 8 - MARGIN, buf, 1, FV_TEXT,
                           FV_ALIGN_RIGHT);
    }
    if (n == 0) fv_canvas_text(&c, g.py + g.plot_h / 2, g.px + 8, "(empty)", 1, FV_GRAY);
    fv_canvas_bars(&c, g.py, g.px, g.plot_h, values, n, (float)g.lo, (float)g.hi, g.bar_w, FV_BLUE,
                   highlight);
    /* axes: y on the left, x at the bottom, markers for highlighted bars under it */
    fv_canvas_fill(&c, g.py, g.px - 1, g.plot_h + 1, 1, FV_GRAY);
    fv_canvas_fill(&c, g.py + g.plot_h, g.px - 1, 1, g.plot_w + 1, FV_GRAY);
    int bw = g.bar_w >= 4 ? g.bar_w - 1 : g.bar_w;
    for (int i = 0; highlight && i < n; i++)
        if (highlight[i]) fv_canvas_fill(&c, g.py + g.plot_h + 2, g.px + i * g.bar_w, 4, bw, FV_RED);
    /* x labels: channel numbers centred under their bars */
    int ly = g.py + g.plot_h + 8;
    for (int i = 0; i < n; i += g.xstep) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", i);
        int cx = g.px + i * g.bar_w + bw / 2;
        fv_canvas_text(&c, ly, cx - fv_text_width(buf, 1) / 2, buf, 1, FV_TEXT);
    }
    if (xlabel && xlabel[0])
        fv_canvas_text_box(&c, ly + FV_FONT_H + 6, g.px, g.plot_w, xlabel, 1, FV_TEXT,
                           FV_ALIGN_CENTER);
    rc = fv_canvas_save(&c, path, err);
    fv_canvas_free(&c);
    return rc;
}
