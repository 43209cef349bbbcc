/* Drawing: the small raster library behind every picture featviz writes
 * (class montages, filter grids, activation maps, Dense bar strips, per-layer
 * bar charts, saliency overlays). No third-party drawing or font library.
 *
 *   canvas (RGB bytes) <- fill / frame / blit / blend / text -> fv_canvas_save (PNG)
 *
 * Coordinates: (y, x) = (row, column), origin top-left, always in canvas
 * pixels. Every drawing call clips at the canvas border, so any position or
 * size (negative, huge) is safe. Colours are 0xRRGGBB.
 *
 * Text uses a built-in 5x7 bitmap font with descenders (printable ASCII
 * 32..126; any other byte draws as '?'). At integer scale s a glyph fits a box
 * of 5s x 8s pixels (rows 0..6, row 7 for the descenders of g j p q y) and the
 * pen advances 6s per character: a string of len > 0 characters is
 * 6*s*len - s pixels wide and FV_FONT_H*s high; its top-left corner is the
 * (y, x) given to the drawing call.
 *
 * Writers (fv_canvas_save, fv_montage_write, fv_bars_write, fv_bar_chart_write)
 * go through fv_png_write: the file appears whole or not at all. Their errors
 * are one line naming the output path: FV_ERR_USAGE for bad arguments,
 * FV_ERR_SHAPE for a picture that would be too large, FV_ERR_NOMEM, FV_ERR_IO.
 */
#ifndef FEATVIZ_RENDER_H
#define FEATVIZ_RENDER_H

#include <stddef.h>
#include <stdint.h>

#include "featviz/error.h"

/* ---- colours (0xRRGGBB) ---- */
#define FV_WHITE 0xFFFFFFu
#define FV_BLACK 0x000000u
#define FV_RED 0xDD0000u      /* flags: dead filters (frames, chart bars, markers) */
#define FV_BLUE 0x1F77B4u     /* ordinary bars (matplotlib's default blue) */
#define FV_GRAY 0x808080u     /* axes, zero lines, placeholders */
#define FV_LIGHT 0xEEEEEEu    /* plot/band backgrounds */
#define FV_TEXT 0x202020u     /* captions, labels */

/* ---- canvas ---- */

/* Largest canvas side and area we agree to allocate. */
#define FV_CANVAS_MAX_SIDE 32768
#define FV_CANVAS_MAX_PIXELS (1L << 27) /* 134M px = 400 MB of RGB */

struct fv_canvas {
    int h, w;
    unsigned char *pix; /* (h, w, 3) RGB, malloc'd; row y starts at pix + 3*w*y */
};

/* Allocates an h x w canvas filled with bg. h, w >= 1 and within the limits
 * above (FV_ERR_SHAPE otherwise, FV_ERR_NOMEM if malloc fails). On error the
 * canvas is left empty (pix NULL) and fv_canvas_free is still safe. */
int fv_canvas_init(struct fv_canvas *c, int h, int w, uint32_t bg, struct fv_error *err);
void fv_canvas_free(struct fv_canvas *c); /* NULL or empty canvas: no-op */
/* Writes the canvas as an 8-bit RGB PNG (atomic, via fv_png_write). */
int fv_canvas_save(const struct fv_canvas *c, const char *path, struct fv_error *err);

/* Solid rectangle of h x w pixels with top-left (y, x). */
void fv_canvas_fill(struct fv_canvas *c, int y, int x, int h, int w, uint32_t color);
/* Rectangle outline `thick` pixels wide, drawn INSIDE the box (y, x, h, w).
 * To frame a tile without touching it, pass the tile's box grown by thick
 * on each side. */
void fv_canvas_frame(struct fv_canvas *c, int y, int x, int h, int w, int thick, uint32_t color);

/* Copies a tile of th x tw pixels (channels 1 = gray or 3 = RGB, row-major
 * (th, tw, channels)) to top-left (y, x), each tile pixel becoming a
 * scale x scale block (nearest neighbour, exact copy of the values). The drawn
 * area is (th*scale) x (tw*scale). scale < 1 counts as 1. */
void fv_canvas_blit(struct fv_canvas *c, int y, int x, const unsigned char *tile, int th, int tw,
                    int channels, int scale);
/* Like blit, but mixes: dst = (1 - a) * dst + a * tile, rounded, with
 * a = alpha * mask[i] clamped to [0, 1]; mask is (th, tw) or NULL (a = alpha).
 * Used for "activation map / saliency over the input image". */
void fv_canvas_blend(struct fv_canvas *c, int y, int x, const unsigned char *tile, int th, int tw,
                     int channels, int scale, float alpha, const float *mask);

/* Smallest integer k >= 1 with size * k >= min_px (1 when size <= 0). */
int fv_upscale_for(int size, int min_px);

/* ---- text (src/render/font.c) ---- */
#define FV_FONT_W 5       /* glyph width, font pixels */
#define FV_FONT_H 8       /* glyph box height incl. descender row, font pixels */
#define FV_FONT_ADVANCE 6 /* pen advance per character, font pixels */

/* Width in pixels of s drawn at scale (0 for NULL or ""); scale < 1 counts as 1. */
int fv_text_width(const char *s, int scale);
/* Copies s into out (out_size bytes, NUL-terminated), shortened with a
 * trailing "..." so that it is at most max_w pixels wide at scale. If not even
 * "..." fits, keeps the longest prefix of "..." that does (possibly "").
 * Returns 1 if s was shortened. */
int fv_text_fit(const char *s, int scale, int max_w, char *out, size_t out_size);
/* Draws s with its top-left corner at (y, x), clipped at the canvas border.
 * Returns the text width (as fv_text_width). */
int fv_canvas_text(struct fv_canvas *c, int y, int x, const char *s, int scale, uint32_t color);

enum fv_align { FV_ALIGN_LEFT, FV_ALIGN_CENTER, FV_ALIGN_RIGHT };
/* Draws s in the box of width w starting at x: shortened with "..." to fit w
 * (fv_text_fit), then aligned inside the box. Never draws outside [x, x+w).
 * Returns the drawn width. */
int fv_canvas_text_box(struct fv_canvas *c, int y, int x, int w, const char *s, int scale,
                       uint32_t color, enum fv_align align);

/* ---- colormaps (src/render/colormap.c) ---- */
enum fv_cmap {
    FV_CMAP_GRAY,    /* black -> white, v = round(255 t) */
    FV_CMAP_VIRIDIS, /* matplotlib's viridis (256-entry table): activations, statistics */
    FV_CMAP_INFERNO, /* matplotlib's inferno: black -> red -> yellow-white; the heat map
                        for saliency (dark = no attribution, so it overlays well) */
    FV_CMAP_COUNT
};

/* t in [0, 1] -> colour. t is clamped; NaN counts as 0. Table maps use
 * matplotlib's lookup: entry min(255, floor(256 t)), each channel rounded to
 * the nearest byte (as matplotlib.colors.to_hex). */
void fv_colormap(enum fv_cmap m, float t, unsigned char rgb[3]);
/* rgb (n, 3) from v (n): t = (v - lo) / (hi - lo). hi == lo, NaN values or a
 * non-finite t give t = 0. */
void fv_map_to_rgb(const float *v, size_t n, float lo, float hi, enum fv_cmap m,
                   unsigned char *rgb);
/* Min and max of the finite values of v; both 0 when there are none. */
void fv_finite_range(const float *v, size_t n, float *lo, float *hi);
/* "gray", "viridis", "inferno" <-> enum; fv_cmap_parse returns -1 for others. */
int fv_cmap_parse(const char *name);
const char *fv_cmap_name(enum fv_cmap m);

/* ---- montage (src/render/montage.c) ---- */

/* A grid of equally sized tiles with a caption under each, e.g. 43 class
 * images with "14 Stop", a layer's filters with dead ones framed red, or a
 * layer's activation maps numbered 0..C-1 (number_tiles).
 *
 * Layout (all in pixels; m = margin, s = scale, ts = caption text scale,
 * ns = title text scale):
 *   cols' = min(cols, n), rows = ceil(n / cols')
 *   cell_w = tw*s, cell_h = th*s
 *   cap_h  = ts*FV_FONT_H + 6 if any caption is drawn, else 0
 *   title_h = ns*FV_FONT_H + 8 if title (non-empty), else 0
 *   grid_w = m + cols' * (cell_w + m)
 *   width  = max(grid_w, min(fv_text_width(title, 1) + 2m, 1024))
 *   height = m + title_h + rows * (cell_h + cap_h + m)
 *   tile i (r = i / cols', k = i % cols') has its top-left at
 *     x = m + k*(cell_w + m),  y = m + title_h + r*(cell_h + cap_h + m)
 *   its caption's top is at y + cell_h + 4, centred over [x, x + cell_w),
 *   shortened with "..." to cell_w; the title's top is at y = m, left-aligned
 *   at x = m, shortened to width - 2m.
 * Auto text scale (text_scale 0): 2 if every caption fits the cell width at
 * scale 2, else 1. Title scale: 2 if the title fits width - 2m at 2, else 1.
 * A flagged tile gets a red frame max(1, min(3, m/2)) wide drawn in the margin
 * around it (inside the tile when m < 2) and its caption is drawn red.
 * Tiles are copied exactly (nearest neighbour); a NULL tile is drawn FV_LIGHT.
 * n = 0 gives a small picture with the title and "(empty)" (no error).
 * Example: 43 tiles of 32 x 32, cols 7, scale 4, margin 8, GTSRB captions
 * ("1 Speed limit (30km/h)": ts 1) and a short title -> 960 x 1082 px.
 * C does not convert `unsigned char **` / `char **` to the const-qualified
 * pointer arrays below implicitly: declare `const unsigned char *tiles[n]`
 * and `const char *captions[n]` (or cast). */
struct fv_montage_spec {
    const unsigned char *const *tiles; /* n pointers to (th, tw, channels); NULL entry: blank */
    int n;
    int th, tw;
    int channels;                      /* 1 gray or 3 RGB; 0 means 3 */
    const char *const *captions;       /* n strings or NULL; NULL entries: no caption */
    int number_tiles;                  /* 1: when captions is NULL, caption tile i with "i" */
    const int *flagged;                /* n ints or NULL; nonzero: red frame + red caption */
    int cols;                          /* >= 1; <= 0: ceil(sqrt(n)) */
    int scale;                         /* >= 1; <= 0: fv_upscale_for(max(th, tw), 128) */
    int margin;                        /* >= 0 pixels; < 0 means 8 */
    int text_scale;                    /* caption scale >= 1; 0: auto (see above) */
    const char *title;                 /* optional line at the top */
};

struct fv_montage_layout {
    int w, h;             /* picture size */
    int cols, rows;       /* cols' and rows above */
    int cell_w, cell_h;   /* scaled tile size */
    int cap_h, title_h;
    int margin, scale, text_scale, title_scale;
};

/* Computes the layout (validating the spec: FV_ERR_USAGE for bad sizes,
 * FV_ERR_SHAPE when the picture would exceed the canvas limits). */
int fv_montage_layout(const struct fv_montage_spec *s, struct fv_montage_layout *lay,
                      struct fv_error *err);
/* Top-left pixel of tile i in a layout. */
void fv_montage_tile_pos(const struct fv_montage_layout *lay, int i, int *y, int *x);
/* Draws the montage on a new canvas (free with fv_canvas_free). */
int fv_montage_render(const struct fv_montage_spec *s, struct fv_canvas *out, struct fv_error *err);
/* Renders and writes a PNG. Errors name path. */
int fv_montage_write(const char *path, const struct fv_montage_spec *s, struct fv_error *err);

/* ---- bars and charts (src/render/chart.c) ---- */

/* One row of n bars in the band of height h with top-left (y, x): bar i
 * covers columns [x + i*bar_w, x + i*bar_w + bw) with bw = bar_w - 1 when
 * bar_w >= 4 (a 1 px gap) else bar_w. Values map to rows by
 *   r(u) = round((hi - clamp(u, lo, hi)) / (hi - lo) * h)   (0 = band top)
 * and bar i covers the rows between r(v[i]) and r(b), b = clamp(0, lo, hi),
 * i.e. |r(v[i]) - r(b)| pixels, up from the baseline for values above 0 and
 * down for values below. When lo < 0 < hi a 1 px FV_GRAY zero line is drawn
 * at row r(0) first. NaN values draw nothing. hi <= lo draws nothing.
 * highlight[i] nonzero (optional, n ints) draws bar i in FV_RED, else `color`. */
void fv_canvas_bars(struct fv_canvas *c, int y, int x, int h, const float *v, int n, float lo,
                    float hi, int bar_w, uint32_t color, const int *highlight);

/* A bar strip for a vector (Dense activations), wrapped into rows.
 * Layout (m = margin = 8):
 *   per_row = max(1, (max_w - 2m) / bar_w), rows = ceil(n / per_row)
 *   label_h = FV_FONT_H + 4: under each row the index of its first and last
 *             bar, and under row 0 also the value range "lo .. hi" (when
 *             they fit)
 *   title_h = ns*FV_FONT_H + 8 if title (ns = 2 if it fits at scale 2), else 0
 *   width  = 2m + min(n, per_row) * bar_w, widened for the title as a montage
 *   height = m + title_h + rows * (bar_h + label_h + m)
 *   row r's band (FV_LIGHT background) has its top-left at
 *     (m + title_h + r*(bar_h + label_h + m), m), drawn with fv_canvas_bars. */
struct fv_bars_spec {
    const float *v;       /* (n) values */
    int n;
    float lo, hi;         /* value range; lo == hi: from the data, always including 0 */
    int bar_w;            /* px per bar; <= 0: 4 if n <= 128, 2 if n <= 512, else 1 */
    int bar_h;            /* band height; <= 0: 80 */
    int max_w;            /* wrap width; <= 0: 1024 */
    const int *highlight; /* optional (n): red bars */
    const char *title;    /* optional */
};
int fv_bars_write(const char *path, const struct fv_bars_spec *s, struct fv_error *err);

/* A bar chart with axes, one bar per channel (e.g. mean activation per
 * filter), highlight[i] nonzero (e.g. dead filters) drawn red with a red
 * marker under the x axis so that zero-height bars still show. The y range
 * covers 0 and the finite values, widened to "nice" ticks (1, 2, 5 x 10^k);
 * NaN values draw nothing. Title, xlabel (under the axis) and ylabel (above
 * the y axis) are optional. Bars are max(1, min(24, 800 / n)) px wide. */
int fv_bar_chart_write(const char *path, const char *title, int n, const float *values,
                       const int *highlight, const char *xlabel, const char *ylabel,
                       struct fv_error *err);

#endif
