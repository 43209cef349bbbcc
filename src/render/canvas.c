/* The RGB canvas: allocation, PNG output, and the pixel primitives (filled
 * and outlined rectangles, nearest-neighbour blit, alpha blend). Every
 * primitive clips to the canvas, so callers never check bounds. */
#include "featviz/render.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "featviz/image.h"

int fv_canvas_init(struct fv_canvas *c, int h, int w, uint32_t bg, struct fv_error *err) {
    c->h = c->w = 0;
    c->pix = NULL;
    if (h < 1 || w < 1)
        return fv_error_set(err, FV_ERR_SHAPE, "bad picture size %d x %d px", w, h);
    if (h > FV_CANVAS_MAX_SIDE || w > FV_CANVAS_MAX_SIDE || (long)h * (long)w > FV_CANVAS_MAX_PIXELS)
        return fv_error_set(err, FV_ERR_SHAPE,
                            "a %d x %d px picture is too large (limit %d px a side, %ld px)", w, h,
                            FV_CANVAS_MAX_SIDE, (long)FV_CANVAS_MAX_PIXELS);
    size_t bytes = (size_t)h * (size_t)w * 3; /* bounded by the limits above */
    unsigned char *pix = fv_malloc(bytes, err);
    if (!pix) return FV_ERR_NOMEM;
    c->h = h;
    c->w = w;
    c->pix = pix;
    fv_canvas_fill(c, 0, 0, h, w, bg);
    return FV_OK;
}

void fv_canvas_free(struct fv_canvas *c) {
    if (!c) return;
    free(c->pix);
    c->pix = NULL;
    c->h = c->w = 0;
}

int fv_canvas_save(const struct fv_canvas *c, const char *path, struct fv_error *err) {
    if (!c->pix) return fv_error_set(err, FV_ERR_USAGE, "%s: nothing drawn to write", path);
    return fv_png_write(path, c->pix, c->h, c->w, 3, err);
}

/* Clips [*a, *a + *len) to [0, limit); returns 0 when nothing is left. */
static int clip_span(long *a, long *len, long limit) {
    if (*a < 0) {
        *len += *a;
        *a = 0;
    }
    if (*a + *len > limit) *len = limit - *a;
    return *len > 0;
}

void fv_canvas_fill(struct fv_canvas *c, int y, int x, int h, int w, uint32_t color) {
    long y0 = y, x0 = x, hh = h, ww = w;
    if (!c->pix || !clip_span(&y0, &hh, c->h) || !clip_span(&x0, &ww, c->w)) return;
    unsigned char r = (unsigned char)(color >> 16), g = (unsigned char)(color >> 8),
                  b = (unsigned char)color;
    for (long yy = y0; yy < y0 + hh; yy++) {
        unsigned char *p = c->pix + ((size_t)yy * (size_t)c->w + (size_t)x0) * 3;
        for (long k = 0; k < ww; k++, p += 3) {
            p[0] = r;
            p[1] = g;
            p[2] = b;
        }
    }
}

void fv_canvas_frame(struct fv_canvas *c, int y, int x, int h, int w, int thick, uint32_t color) {
    if (h <= 0 || w <= 0 || thick <= 0) return;
    if (2L * thick >= h || 2L * thick >= w) {
        fv_canvas_fill(c, y, x, h, w, color); /* no hole left */
        return;
    }
    fv_canvas_fill(c, y, x, thick, w, color);                 /* top */
    fv_canvas_fill(c, y + h - thick, x, thick, w, color);     /* bottom */
    fv_canvas_fill(c, y + thick, x, h - 2 * thick, thick, color);          /* left */
    fv_canvas_fill(c, y + thick, x + w - thick, h - 2 * thick, thick, color); /* right */
}

/* Shared walk of blit and blend: for every visible canvas pixel of the
 * scaled tile, calls back with the canvas pixel and the tile pixel index. */
struct tile_op {
    const unsigned char *tile; /* (th, tw, channels) */
    int channels;
    float alpha;               /* blend only; < 0 means copy */
    const float *mask;         /* (th, tw) or NULL */
};

static void put_pixel(unsigned char *dst, const struct tile_op *op, size_t ti) {
    const unsigned char *src = op->tile + ti * (size_t)op->channels;
    unsigned char rgb[3] = {src[0], src[op->channels == 3 ? 1 : 0], src[op->channels == 3 ? 2 : 0]};
    if (op->alpha < 0) {
        memcpy(dst, rgb, 3);
        return;
    }
    float a = op->mask ? op->alpha * op->mask[ti] : op->alpha;
    if (!(a > 0)) return; /* also NaN */
    if (a > 1) a = 1;
    for (int k = 0; k < 3; k++)
        dst[k] = (unsigned char)lrintf((1 - a) * (float)dst[k] + a * (float)rgb[k]);
}

static void walk_tile(struct fv_canvas *c, int y, int x, int th, int tw, int scale,
                      const struct tile_op *op) {
    if (!c->pix || !op->tile || th <= 0 || tw <= 0) return;
    if (op->channels != 1 && op->channels != 3) return;
    if (scale < 1) scale = 1;
    long y0 = y, x0 = x, hh = (long)th * scale, ww = (long)tw * scale;
    long cy = y0, cx = x0;
    if (!clip_span(&cy, &hh, c->h) || !clip_span(&cx, &ww, c->w)) return;
    for (long yy = cy; yy < cy + hh; yy++) {
        size_t ty = (size_t)((yy - y0) / scale);
        unsigned char *dst = c->pix + ((size_t)yy * (size_t)c->w + (size_t)cx) * 3;
        for (long xx = cx; xx < cx + ww; xx++, dst += 3)
            put_pixel(dst, op, ty * (size_t)tw + (size_t)((xx - x0) / scale));
    }
}

void fv_canvas_blit(struct fv_canvas *c, int y, int x, const unsigned char *tile, int th, int tw,
                    int channels, int scale) {
    struct tile_op op = {tile, channels, -1.0f, NULL};
    walk_tile(c, y, x, th, tw, scale, &op);
}

void fv_canvas_blend(struct fv_canvas *c, int y, int x, const unsigned char *tile, int th, int tw,
                     int channels, int scale, float alpha, const float *mask) {
    if (!(alpha > 0)) return;
    struct tile_op op = {tile, channels, alpha > 1 ? 1.0f : alpha, mask};
    walk_tile(c, y, x, th, tw, scale, &op);
}

int fv_upscale_for(int size, int min_px) {
    if (size <= 0 || min_px <= size) return 1;
    return (int)(((long)min_px + size - 1) / size);
}
