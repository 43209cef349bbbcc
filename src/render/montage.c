/* Montage: equally sized tiles in a grid with a caption under each and an
 * optional title line; flagged tiles framed red. The layout formula is in
 * include/featviz/render.h. */
#include "featviz/render.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define DEFAULT_MARGIN 8
#define AUTO_TILE_PX 128 /* scale <= 0: tiles become at least this large */
#define MAX_TITLE_W 1024 /* a long title widens a narrow picture up to this */
#define MAX_TEXT_SCALE 8
static const char empty_note[] = "(empty)";

/* Caption of tile i: the given one, its number, or NULL. buf holds numbers. */
static const char *caption_of(const struct fv_montage_spec *s, int i, char *buf, size_t cap) {
    if (s->captions) return s->captions[i];
    if (!s->number_tiles) return NULL;
    snprintf(buf, cap, "%d", i);
    return buf;
}

/* 1 if some tile has a caption; *fit2 = every caption fits max_w at scale 2. */
static int captions_present(const struct fv_montage_spec *s, long max_w, int *fit2) {
    int any = 0;
    *fit2 = 1;
    for (int i = 0; i < s->n; i++) {
        char buf[16];
        const char *cap = caption_of(s, i, buf, sizeof buf);
        if (!cap || !cap[0]) continue;
        any = 1;
        if (fv_text_width(cap, 2) > max_w) *fit2 = 0;
    }
    return any;
}

static int has_title(const struct fv_montage_spec *s) {
    return s->title && s->title[0];
}

int fv_montage_layout(const struct fv_montage_spec *s, struct fv_montage_layout *lay,
                      struct fv_error *err) {
    memset(lay, 0, sizeof *lay);
    int n = s->n;
    if (n < 0) return fv_error_set(err, FV_ERR_USAGE, "montage: negative tile count %d", n);
    if (n > 0 && !s->tiles) return fv_error_set(err, FV_ERR_USAGE, "montage: %d tiles but no tile data", n);
    int channels = s->channels ? s->channels : 3;
    if (n > 0 && (s->th < 1 || s->tw < 1 || (channels != 1 && channels != 3)))
        return fv_error_set(err, FV_ERR_USAGE, "montage: bad tile size %d x %d x %d", s->th, s->tw,
                            channels);
    long m = s->margin < 0 ? DEFAULT_MARGIN : s->margin;
    if (m > FV_CANVAS_MAX_SIDE) m = FV_CANVAS_MAX_SIDE; /* the size check below refuses it */
    long th = n ? s->th : 0, tw = n ? s->tw : 0;
    long scale = s->scale > 0 ? s->scale : fv_upscale_for((int)(th > tw ? th : tw), AUTO_TILE_PX);
    long cols = s->cols > 0 ? s->cols : (long)ceil(sqrt((double)n));
    if (cols > n) cols = n;
    long rows = n ? (n + cols - 1) / cols : 0;
    long cell_w = tw * scale, cell_h = th * scale; /* th, tw, scale < 2^31: fits a long */
    if (cell_w > FV_CANVAS_MAX_SIDE || cell_h > FV_CANVAS_MAX_SIDE)
        return fv_error_set(err, FV_ERR_SHAPE, "montage: a %ld x %ld px tile is too large", cell_w,
                            cell_h);

    int fit2, ts = 0;
    long cap_h = 0;
    if (captions_present(s, cell_w, &fit2)) {
        ts = s->text_scale > 0 ? s->text_scale : fit2 ? 2 : 1;
        if (ts > MAX_TEXT_SCALE) ts = MAX_TEXT_SCALE;
        cap_h = (long)ts * FV_FONT_H + 6;
    }

    long grid_w = m + cols * (cell_w + m);
    /* widened for the title (up to MAX_TITLE_W) and, without tiles, for "(empty)" */
    long text_w = has_title(s) ? fv_text_width(s->title, 1) + 2 * m : 0;
    if (n == 0 && text_w < fv_text_width(empty_note, 1) + 2 * m)
        text_w = fv_text_width(empty_note, 1) + 2 * m;
    if (text_w > MAX_TITLE_W) text_w = MAX_TITLE_W;
    long w = grid_w > text_w ? grid_w : text_w;
    int ns = has_title(s) && fv_text_width(s->title, 2) <= w - 2 * m ? 2 : 1;
    long title_h = has_title(s) ? (long)ns * FV_FONT_H + 8 : 0;
    long h = m + title_h + rows * (cell_h + cap_h + m);
    if (n == 0) h += FV_FONT_H + m;
    if (w < 1) w = 1;
    if (h < 1) h = 1;
    if (w > FV_CANVAS_MAX_SIDE || h > FV_CANVAS_MAX_SIDE || w * h > FV_CANVAS_MAX_PIXELS)
        return fv_error_set(err, FV_ERR_SHAPE, "montage of %d tiles would be %ld x %ld px, too large",
                            n, w, h);

    lay->w = (int)w;
    lay->h = (int)h;
    lay->cols = (int)cols;
    lay->rows = (int)rows;
    lay->cell_w = (int)cell_w;
    lay->cell_h = (int)cell_h;
    lay->cap_h = (int)cap_h;
    lay->title_h = (int)title_h;
    lay->margin = (int)m;
    lay->scale = (int)scale;
    lay->text_scale = ts;
    lay->title_scale = has_title(s) ? ns : 0;
    return FV_OK;
}

void fv_montage_tile_pos(const struct fv_montage_layout *lay, int i, int *y, int *x) {
    int cols = lay->cols > 0 ? lay->cols : 1;
    int r = i / cols, k = i % cols, m = lay->margin;
    *x = m + k * (lay->cell_w + m);
    *y = m + lay->title_h + r * (lay->cell_h + lay->cap_h + m);
}

int fv_montage_render(const struct fv_montage_spec *s, struct fv_canvas *out,
                      struct fv_error *err) {
    struct fv_montage_layout lay;
    out->pix = NULL;
    out->h = out->w = 0;
    int rc = fv_montage_layout(s, &lay, err);
    if (rc == FV_OK) rc = fv_canvas_init(out, lay.h, lay.w, FV_WHITE, err);
    if (rc != FV_OK) return rc;
    int m = lay.margin;
    if (has_title(s))
        fv_canvas_text_box(out, m, m, lay.w - 2 * m, s->title, lay.title_scale, FV_TEXT,
                           FV_ALIGN_LEFT);
    if (s->n == 0)
        fv_canvas_text(out, m + lay.title_h, m, empty_note, 1, FV_GRAY);

    int channels = s->channels ? s->channels : 3;
    int ft = m >= 2 ? (m / 2 < 3 ? m / 2 : 3) : 1; /* flag frame thickness */
    for (int i = 0; i < s->n; i++) {
        int y, x;
        fv_montage_tile_pos(&lay, i, &y, &x);
        if (s->tiles[i])
            fv_canvas_blit(out, y, x, s->tiles[i], s->th, s->tw, channels, lay.scale);
        else
            fv_canvas_fill(out, y, x, lay.cell_h, lay.cell_w, FV_LIGHT);
        int flag = s->flagged && s->flagged[i];
        if (flag && m >= 2)
            fv_canvas_frame(out, y - ft, x - ft, lay.cell_h + 2 * ft, lay.cell_w + 2 * ft, ft, FV_RED);
        else if (flag)
            fv_canvas_frame(out, y, x, lay.cell_h, lay.cell_w, 1, FV_RED);
        char buf[16];
        const char *cap = caption_of(s, i, buf, sizeof buf);
        if (cap && lay.text_scale)
            fv_canvas_text_box(out, y + lay.cell_h + 4, x, lay.cell_w, cap, lay.text_scale,
                               flag ? FV_RED : FV_TEXT, FV_ALIGN_CENTER);
    }
    return FV_OK;
}

int fv_montage_write(const char *path, const struct fv_montage_spec *s, struct fv_error *err) {
    struct fv_canvas c;
    int rc = fv_montage_render(s, &c, err);
    if (rc != FV_OK) return fv_error_prefix(err, "%s", path);
    rc = fv_canvas_save(&c, path, err);
    fv_canvas_free(&c);
    return rc;
}
