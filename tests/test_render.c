/* Drawing library: every picture is written as PNG, decoded again with
 * fv_image_load and checked against what the layout documented in
 * include/featviz/render.h says, computed here independently: picture sizes,
 * tile pixels (exact nearest-neighbour copies), caption ink positions, bar
 * heights, chart colours. Colormaps are checked against matplotlib's published
 * hex values (#440154, #21918C, #FDE725 for viridis; #000004, #FCFFA4 for
 * inferno) and for monotonic luminance. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "featviz/image.h"
#include "featviz/labels.h"
#include "featviz/render.h"
#include "testutil.h"

/* ---- helpers ---- */

static struct fv_image load_png(const char *path) {
    struct fv_image img;
    struct fv_error err = {0};
    int rc = fv_image_load(path, &img, &err);
    if (rc != FV_OK) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, FV_OK);
    assert_int_equal(img.c, 3);
    return img;
}

static unsigned px(const struct fv_image *img, int y, int x, int k) {
    assert_true(y >= 0 && y < img->h && x >= 0 && x < img->w);
    return (unsigned)img->data[((size_t)y * (size_t)img->w + (size_t)x) * 3 + (size_t)k];
}

static uint32_t rgb_at(const struct fv_image *img, int y, int x) {
    return px(img, y, x, 0) << 16 | px(img, y, x, 1) << 8 | px(img, y, x, 2);
}

/* Dark "ink" of text drawn in FV_TEXT or FV_RED on white. */
static int is_ink(const struct fv_image *img, int y, int x) {
    uint32_t c = rgb_at(img, y, x);
    return c == FV_TEXT || c == FV_RED;
}

/* Bounding box of ink in rows [y0, y1) and columns [x0, x1); count returned. */
static int ink_box(const struct fv_image *img, int y0, int y1, int x0, int x1, int box[4]) {
    int n = 0;
    box[0] = box[1] = 1 << 30; /* min y, min x */
    box[2] = box[3] = -1;      /* max y, max x */
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            if (is_ink(img, y, x)) {
                n++;
                if (y < box[0]) box[0] = y;
                if (x < box[1]) box[1] = x;
                if (y > box[2]) box[2] = y;
                if (x > box[3]) box[3] = x;
            }
    return n;
}

/* Documented text width: 6 s len - s. */
static int text_w(const char *s, int scale) {
    size_t n = strlen(s);
    return n ? (int)(6 * (size_t)scale * n) - scale : 0;
}

static unsigned char *random_tiles(int n, int th, int tw, int ch, uint64_t seed) {
    size_t count = (size_t)n * (size_t)th * (size_t)tw * (size_t)ch;
    float *f = malloc(count * sizeof *f);
    unsigned char *t = malloc(count);
    fill_uniform(f, count, seed, 0.0f, 256.0f);
    for (size_t i = 0; i < count; i++) t[i] = (unsigned char)(f[i] >= 255.0f ? 255 : (int)f[i]);
    free(f);
    return t;
}

static int file_exists(const char *path) {
    return access(path, F_OK) == 0;
}

/* ---- sizes and colormaps ---- */

static void test_upscale_for(void **state) {
    (void)state;
    assert_int_equal(fv_upscale_for(32, 128), 4);
    assert_int_equal(fv_upscale_for(32, 129), 5);
    assert_int_equal(fv_upscale_for(30, 100), 4);
    assert_int_equal(fv_upscale_for(48, 48), 1);
    assert_int_equal(fv_upscale_for(200, 128), 1);
    assert_int_equal(fv_upscale_for(1, 64), 64);
    assert_int_equal(fv_upscale_for(0, 64), 1);
    assert_int_equal(fv_upscale_for(-3, 64), 1);
    assert_int_equal(fv_upscale_for(7, 0), 1);
}

static uint32_t cmap(enum fv_cmap m, float t) {
    unsigned char c[3];
    fv_colormap(m, t, c);
    return (uint32_t)c[0] << 16 | (uint32_t)c[1] << 8 | c[2];
}

static void test_colormap_references(void **state) {
    (void)state;
    /* matplotlib: to_hex(cm.viridis(0.0 / 0.5 / 1.0)) */
    assert_int_equal(cmap(FV_CMAP_VIRIDIS, 0.0f), 0x440154);
    assert_int_equal(cmap(FV_CMAP_VIRIDIS, 0.5f), 0x21918C);
    assert_int_equal(cmap(FV_CMAP_VIRIDIS, 1.0f), 0xFDE725);
    assert_int_equal(cmap(FV_CMAP_INFERNO, 0.0f), 0x000004);
    assert_int_equal(cmap(FV_CMAP_INFERNO, 1.0f), 0xFCFFA4);
    assert_int_equal(cmap(FV_CMAP_GRAY, 0.0f), 0x000000);
    assert_int_equal(cmap(FV_CMAP_GRAY, 1.0f), 0xFFFFFF);
    assert_int_equal(cmap(FV_CMAP_GRAY, 0.5f), 0x808080); /* round(127.5) */
    /* clamping and NaN */
    for (int m = 0; m < FV_CMAP_COUNT; m++) {
        assert_int_equal(cmap((enum fv_cmap)m, -3.0f), cmap((enum fv_cmap)m, 0.0f));
        assert_int_equal(cmap((enum fv_cmap)m, 7.0f), cmap((enum fv_cmap)m, 1.0f));
        assert_int_equal(cmap((enum fv_cmap)m, NAN), cmap((enum fv_cmap)m, 0.0f));
        assert_int_equal(cmap((enum fv_cmap)m, INFINITY), cmap((enum fv_cmap)m, 1.0f));
    }
    /* names */
    assert_int_equal(fv_cmap_parse("viridis"), FV_CMAP_VIRIDIS);
    assert_int_equal(fv_cmap_parse("inferno"), FV_CMAP_INFERNO);
    assert_int_equal(fv_cmap_parse("gray"), FV_CMAP_GRAY);
    assert_int_equal(fv_cmap_parse("jet"), -1);
    assert_int_equal(fv_cmap_parse(NULL), -1);
    assert_string_equal(fv_cmap_name(FV_CMAP_VIRIDIS), "viridis");
}

static double luminance(uint32_t c) { /* Rec. 709 weights on the sRGB bytes */
    return 0.2126 * (c >> 16) + 0.7152 * (c >> 8 & 255) + 0.0722 * (c & 255);
}

static void test_colormap_monotonic(void **state) {
    (void)state;
    for (int m = 0; m < FV_CMAP_COUNT; m++) {
        double prev = -1;
        for (int i = 0; i < 256; i++) { /* neighbours: allow byte rounding */
            double l = luminance(cmap((enum fv_cmap)m, (float)i / 255.0f));
            assert_true(l >= prev - 0.5);
            prev = l;
        }
        prev = -1;
        for (int i = 0; i <= 16; i++) { /* coarse steps: strictly brighter */
            double l = luminance(cmap((enum fv_cmap)m, (float)i / 16.0f));
            assert_true(l > prev);
            prev = l;
        }
    }
    /* viridis is dark blue-violet at the bottom, bright yellow at the top */
    assert_true(luminance(0x440154) < 40 && luminance(0xFDE725) > 200);
}

static void test_map_to_rgb(void **state) {
    (void)state;
    const float v[7] = {2.0f, 6.0f, 4.0f, NAN, -10.0f, 100.0f, 3.0f};
    unsigned char rgb[7 * 3];
    fv_map_to_rgb(v, 7, 2.0f, 6.0f, FV_CMAP_GRAY, rgb);
    /* t = 0, 1, 0.5, NaN -> 0, clamped 0, clamped 1, 0.25 -> round(63.75) */
    const unsigned char want[7] = {0, 255, 128, 0, 0, 255, 64};
    for (int i = 0; i < 7; i++)
        for (int k = 0; k < 3; k++) assert_int_equal(rgb[3 * i + k], want[i]);

    fv_map_to_rgb(v, 3, 2.0f, 6.0f, FV_CMAP_VIRIDIS, rgb);
    assert_memory_equal(rgb, "\x44\x01\x54\xFD\xE7\x25\x21\x91\x8C", 9);

    /* hi == lo: everything at the bottom colour */
    fv_map_to_rgb(v, 7, 5.0f, 5.0f, FV_CMAP_VIRIDIS, rgb);
    for (int i = 0; i < 7; i++) assert_memory_equal(rgb + 3 * i, "\x44\x01\x54", 3);
    /* reversed range flips */
    fv_map_to_rgb(v, 2, 6.0f, 2.0f, FV_CMAP_GRAY, rgb);
    assert_int_equal(rgb[0], 255);
    assert_int_equal(rgb[3], 0);
    /* extreme range: no overflow to NaN */
    const float big[2] = {-3e38f, 3e38f};
    fv_map_to_rgb(big, 2, -3e38f, 3e38f, FV_CMAP_GRAY, rgb);
    assert_int_equal(rgb[0], 0);
    assert_int_equal(rgb[3], 255);

    float lo, hi;
    fv_finite_range(v, 7, &lo, &hi);
    assert_true(lo == -10.0f && hi == 100.0f);
    const float nans[2] = {NAN, INFINITY};
    fv_finite_range(nans, 2, &lo, &hi);
    assert_true(lo == 0.0f && hi == 0.0f);
}

/* ---- text ---- */

/* The glyphs of the classic 5x7 font, typed from the published font. */
static const char *const art_F[8] = {"#####", "#....", "#....", "####.",
                                     "#....", "#....", "#....", "....."};
static const char *const art_7[8] = {"#####", "....#", "...#.", "..#..",
                                     ".#...", ".#...", ".#...", "....."};
static const char *const art_p[8] = {".....", ".....", "####.", "#...#",
                                     "#...#", "####.", "#....", "#...."};

static void check_glyph(const struct fv_canvas *c, int y, int x, int s, const char *const art[8]) {
    for (int r = 0; r < 8 * s; r++)
        for (int k = 0; k < 5 * s; k++) {
            const unsigned char *p = c->pix + ((size_t)(y + r) * (size_t)c->w + (size_t)(x + k)) * 3;
            int ink = p[0] == 0 && p[1] == 0 && p[2] == 0;
            assert_int_equal(ink, art[r / s][k / s] == '#');
        }
}

static void test_glyphs(void **state) {
    (void)state;
    struct fv_canvas c;
    struct fv_error err = {0};
    assert_int_equal(fv_canvas_init(&c, 40, 60, FV_WHITE, &err), FV_OK);
    assert_int_equal(fv_canvas_text(&c, 1, 2, "F7p", 1, FV_BLACK), text_w("F7p", 1));
    check_glyph(&c, 1, 2, 1, art_F);
    check_glyph(&c, 1, 8, 1, art_7);
    check_glyph(&c, 1, 14, 1, art_p);
    assert_int_equal(fv_canvas_text(&c, 12, 3, "7", 3, FV_BLACK), 15);
    check_glyph(&c, 12, 3, 3, art_7);
    /* clipped at every border without touching memory outside (ASan) */
    fv_canvas_text(&c, -5, -4, "WWWWWWWWWWWWWWW", 2, FV_BLACK);
    fv_canvas_text(&c, 35, 50, "clip me", 4, FV_BLACK);
    fv_canvas_text(&c, 1000, -100000, "far", 1, FV_BLACK);
    fv_canvas_free(&c);
    fv_canvas_free(&c); /* twice: no-op */

    assert_int_equal(fv_text_width("14 Stop", 1), 41);
    assert_int_equal(fv_text_width("14 Stop", 2), 82);
    assert_int_equal(fv_text_width("", 3), 0);
    assert_int_equal(fv_text_width(NULL, 3), 0);
}

static void test_text_fit(void **state) {
    (void)state;
    char out[64];
    assert_int_equal(fv_text_fit("Stop", 1, 23, out, sizeof out), 0);
    assert_string_equal(out, "Stop");
    assert_int_equal(fv_text_fit("Speed limit (30km/h)", 1, 60, out, sizeof out), 1);
    assert_string_equal(out, "Speed l...");
    assert_true(text_w(out, 1) <= 60);
    fv_text_fit("Speed limit (30km/h)", 2, 128, out, sizeof out);
    assert_string_equal(out, "Speed l...");
    fv_text_fit("Stop", 1, 22, out, sizeof out);
    assert_string_equal(out, "...");
    fv_text_fit("Stop", 1, 5, out, sizeof out);
    assert_string_equal(out, ".");
    fv_text_fit("Stop", 1, 0, out, sizeof out);
    assert_string_equal(out, "");
    fv_text_fit("Stop", 1, -7, out, sizeof out);
    assert_string_equal(out, "");
    fv_text_fit(NULL, 1, 100, out, sizeof out);
    assert_string_equal(out, "");
    char small[5];
    fv_text_fit("a long caption", 1, 1000, small, sizeof small);
    assert_string_equal(small, "a...");
}

static void test_blend_and_frame(void **state) {
    (void)state;
    struct fv_canvas c;
    struct fv_error err = {0};
    assert_int_equal(fv_canvas_init(&c, 10, 10, FV_WHITE, &err), FV_OK);
    const unsigned char black[4] = {0, 0, 0, 0};
    const float mask[4] = {1.0f, 0.0f, NAN, 2.0f};
    fv_canvas_blend(&c, 0, 0, black, 2, 2, 1, 2, 0.25f, NULL);
    assert_int_equal(c.pix[0], 191); /* 255 * 0.75 = 191.25 */
    assert_int_equal(c.pix[(3 * 10 + 3) * 3], 191);
    assert_int_equal(c.pix[(4 * 10 + 4) * 3], 255);
    fv_canvas_blend(&c, 5, 5, black, 2, 2, 1, 1, 0.5f, mask);
    assert_int_equal(c.pix[(5 * 10 + 5) * 3], 128);  /* a = 0.5: 127.5, rounded */
    assert_int_equal(c.pix[(5 * 10 + 6) * 3], 255);  /* mask 0 */
    assert_int_equal(c.pix[(6 * 10 + 5) * 3], 255);  /* mask NaN */
    assert_int_equal(c.pix[(6 * 10 + 6) * 3], 0);    /* a = 1 (clamped) */
    fv_canvas_blend(&c, -1, 8, black, 2, 2, 1, 3, 1.0f, NULL); /* clipped */

    fv_canvas_fill(&c, 0, 0, 10, 10, FV_WHITE);
    fv_canvas_frame(&c, 2, 2, 6, 6, 1, FV_RED);
    const unsigned char red[3] = {0xDD, 0, 0};
    assert_memory_equal(c.pix + (2 * 10 + 2) * 3, red, 3);
    assert_memory_equal(c.pix + (7 * 10 + 7) * 3, red, 3);
    assert_memory_equal(c.pix + (2 * 10 + 7) * 3, red, 3);
    assert_int_equal(c.pix[(3 * 10 + 3) * 3 + 1], 255); /* inside untouched */
    assert_int_equal(c.pix[(1 * 10 + 1) * 3 + 1], 255); /* outside untouched */
    fv_canvas_free(&c);
}

/* ---- montage ---- */

/* Size from the documented layout, computed here. */
static void montage_size(int n, int cols, int th, int tw, int s, int m, int cap_ts,
                         const char *title, int *w, int *h) {
    if (cols > n) cols = n;
    int rows = (n + cols - 1) / cols;
    int cap_h = cap_ts ? cap_ts * 8 + 6 : 0;
    int grid_w = m + cols * (tw * s + m);
    int tw1 = title ? text_w(title, 1) + 2 * m : 0;
    if (tw1 > 1024) tw1 = 1024;
    *w = grid_w > tw1 ? grid_w : tw1;
    int ns = title && text_w(title, 2) <= *w - 2 * m ? 2 : 1;
    int title_h = title ? ns * 8 + 8 : 0;
    *h = m + title_h + rows * (th * s + cap_h + m);
}

static void tile_origin(int i, int cols, int th, int tw, int s, int m, int cap_h, int title_h,
                        int *y, int *x) {
    *x = m + (i % cols) * (tw * s + m);
    *y = m + title_h + (i / cols) * (th * s + cap_h + m);
}

static void test_montage_geometry(void **state) {
    (void)state;
    static const struct { int n, cols, th, tw, scale, margin, ch; const char *title; } cases[] = {
        {43, 7, 32, 32, 4, 8, 3, "class images"},
        {7, 3, 5, 3, 3, 5, 1, NULL},
        {1, 5, 9, 4, 1, 0, 3, NULL},
        {5, 10, 2, 2, 1, 2, 1, "a title much wider than the little grid of tiles"},
        {16, 4, 1, 1, 6, 1, 3, "x"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int n = cases[k].n, th = cases[k].th, tw = cases[k].tw, ch = cases[k].ch;
        int s = cases[k].scale, m = cases[k].margin, cols = cases[k].cols;
        unsigned char *data = random_tiles(n, th, tw, ch, 100 + k);
        const unsigned char **tiles = malloc((size_t)n * sizeof *tiles);
        for (int i = 0; i < n; i++) tiles[i] = data + (size_t)i * (size_t)(th * tw * ch);
        struct fv_montage_spec spec = {.tiles = tiles, .n = n, .th = th, .tw = tw, .channels = ch,
                                       .cols = cols, .scale = s, .margin = m,
                                       .title = cases[k].title};
        const char *path = tmp_path("render_geometry.png");
        struct fv_error err = {0};
        assert_int_equal(fv_montage_write(path, &spec, &err), FV_OK);
        struct fv_image img = load_png(path);
        int w, h;
        montage_size(n, cols, th, tw, s, m, 0, cases[k].title, &w, &h);
        printf("montage case %zu: %d x %d (expected %d x %d)\n", k, img.w, img.h, w, h);
        assert_int_equal(img.w, w);
        assert_int_equal(img.h, h);

        /* every tile pixel lands exactly, upscaled by s */
        int eff_cols = cols > n ? n : cols;
        int ns = cases[k].title && text_w(cases[k].title, 2) <= w - 2 * m ? 2 : 1;
        int title_h = cases[k].title ? ns * 8 + 8 : 0;
        for (int i = 0; i < n; i++) {
            int y0, x0;
            tile_origin(i, eff_cols, th, tw, s, m, 0, title_h, &y0, &x0);
            for (int yy = 0; yy < th * s; yy++)
                for (int xx = 0; xx < tw * s; xx++) {
                    const unsigned char *src = tiles[i] + ((size_t)(yy / s) * tw + (size_t)(xx / s)) * ch;
                    for (int c = 0; c < 3; c++)
                        assert_int_equal(px(&img, y0 + yy, x0 + xx, c), src[ch == 3 ? c : 0]);
                }
        }
        /* the margin column left of the first tile and the bottom margin row are background */
        for (int y = title_h + m; m > 0 && y < h; y++) assert_int_equal(rgb_at(&img, y, 0), FV_WHITE);
        for (int x = 0; m > 0 && x < w; x++) assert_int_equal(rgb_at(&img, h - 1, x), FV_WHITE);

        struct fv_montage_layout lay;
        assert_int_equal(fv_montage_layout(&spec, &lay, &err), FV_OK);
        assert_int_equal(lay.w, w);
        assert_int_equal(lay.h, h);
        int ly, lx, ty, tx;
        fv_montage_tile_pos(&lay, n - 1, &ly, &lx);
        tile_origin(n - 1, eff_cols, th, tw, s, m, 0, title_h, &ty, &tx);
        assert_int_equal(ly, ty);
        assert_int_equal(lx, tx);
        fv_image_free(&img);
        free(tiles);
        free(data);
    }
}

static void test_montage_captions(void **state) {
    (void)state;
    const int th = 16, tw = 16, s = 2, m = 6, cell = 32;
    unsigned char *data = random_tiles(3, th, tw, 3, 7);
    const unsigned char *tiles[3] = {data, data + th * tw * 3, data + 2 * th * tw * 3};
    const char *caps[3] = {"AB", "WWWWWWWWWWWWWWWWWWWWWWWWWWWW", NULL};
    struct fv_montage_spec spec = {.tiles = tiles, .n = 3, .th = th, .tw = tw, .captions = caps,
                                   .cols = 3, .scale = s, .margin = m, .text_scale = 1};
    const char *path = tmp_path("render_captions.png");
    struct fv_error err = {0};
    assert_int_equal(fv_montage_write(path, &spec, &err), FV_OK);
    struct fv_image img = load_png(path);
    int w, h;
    montage_size(3, 3, th, tw, s, m, 1, NULL, &w, &h);
    assert_int_equal(img.w, w);
    assert_int_equal(img.h, h);

    int band0 = m + cell + 4, band1 = band0 + 8; /* caption rows */
    int box[4];
    /* "AB" centred under tile 0: 11 x 7 px of ink */
    int x0 = m;
    assert_true(ink_box(&img, band0, band1, x0, x0 + cell, box) > 0);
    assert_int_equal(box[3] - box[1] + 1, text_w("AB", 1));
    assert_int_equal(box[2] - box[0] + 1, 7);
    assert_int_equal(box[1], x0 + (cell - text_w("AB", 1)) / 2);
    assert_int_equal(box[0], band0);
    /* the long caption stays inside tile 1's columns, ending in "..." */
    int x1 = m + (cell + m);
    assert_true(ink_box(&img, band0, band1, x1, x1 + cell, box) > 0);
    assert_int_equal(box[1], x1 + (cell - text_w("WW...", 1)) / 2); /* 'W' inks its column 0 */
    assert_int_equal(box[3], box[1] + 4 * 6 + 2);                  /* '.' inks columns 1-2 */
    int dots_x = box[1] + 2 * 6; /* the three dots: ink only in glyph rows 5 and 6 */
    for (int y = band0; y < band1; y++)
        for (int x = dots_x; x < dots_x + 17; x++)
            if (is_ink(&img, y, x)) assert_true(y == band0 + 5 || y == band0 + 6);
    /* nothing in the margins between cells, nothing under tile 2 */
    assert_int_equal(ink_box(&img, band0 - 4, h, 0, x0, box), 0);
    assert_int_equal(ink_box(&img, band0 - 4, h, x0 + cell, x1, box), 0);
    assert_int_equal(ink_box(&img, band0 - 4, h, x1 + cell, w, box), 0);
    fv_image_free(&img);

    /* numbered tiles: ink under every tile, auto text scale 2 when numbers fit */
    struct fv_montage_spec nums = {.tiles = tiles, .n = 3, .th = th, .tw = tw, .number_tiles = 1,
                                   .cols = 2, .scale = s, .margin = m};
    assert_int_equal(fv_montage_write(path, &nums, &err), FV_OK);
    img = load_png(path);
    montage_size(3, 2, th, tw, s, m, 2, NULL, &w, &h);
    assert_int_equal(img.w, w);
    assert_int_equal(img.h, h);
    for (int i = 0; i < 3; i++) {
        int y, x;
        tile_origin(i, 2, th, tw, s, m, 2 * 8 + 6, 0, &y, &x);
        assert_true(ink_box(&img, y + cell + 4, y + cell + 4 + 16, x, x + cell, box) > 0);
        if (i != 1) /* '0' and '2' fill all 5 columns, '1' only 3 */
            assert_int_equal(box[3] - box[1] + 1, text_w("0", 2));
        assert_int_equal(box[2] - box[0] + 1, 14);
    }
    fv_image_free(&img);
    free(data);
}

static void test_montage_flags_and_odd_inputs(void **state) {
    (void)state;
    const int th = 4, tw = 4, s = 3, m = 8;
    unsigned char *data = random_tiles(2, th, tw, 1, 3);
    const unsigned char *tiles[3] = {data, NULL, data + th * tw};
    const int flagged[3] = {0, 0, 1};
    struct fv_montage_spec spec = {.tiles = tiles, .n = 3, .th = th, .tw = tw, .channels = 1,
                                   .flagged = flagged, .cols = 3, .scale = s, .margin = m};
    const char *path = tmp_path("render_flags.png");
    struct fv_error err = {0};
    assert_int_equal(fv_montage_write(path, &spec, &err), FV_OK);
    struct fv_image img = load_png(path);
    int cell = th * s;
    int x2 = m + 2 * (cell + m), y2 = m;
    /* red frame 3 px wide (min(3, m/2)) around tile 2, tile itself untouched */
    for (int d = 1; d <= 3; d++) {
        assert_int_equal(rgb_at(&img, y2 - d, x2 + 5), FV_RED);
        assert_int_equal(rgb_at(&img, y2 + cell - 1 + d, x2 + 5), FV_RED);
        assert_int_equal(rgb_at(&img, y2 + 5, x2 - d), FV_RED);
        assert_int_equal(rgb_at(&img, y2 + 5, x2 + cell - 1 + d), FV_RED);
    }
    assert_int_equal(rgb_at(&img, y2 - 4, x2 + 5), FV_WHITE);
    for (int y = 0; y < cell; y++)
        for (int x = 0; x < cell; x++)
            assert_int_equal(px(&img, y2 + y, x2 + x, 1), tiles[2][(y / s) * tw + x / s]);
    /* no frame around tile 0; the NULL tile is a light placeholder */
    assert_int_equal(rgb_at(&img, y2 - 1, m + 5), FV_WHITE);
    assert_int_equal(rgb_at(&img, y2 + 2, m + cell + m + 2), FV_LIGHT);
    fv_image_free(&img);

    /* margin 0: the frame goes inside the tile */
    spec.margin = 0;
    assert_int_equal(fv_montage_write(path, &spec, &err), FV_OK);
    img = load_png(path);
    assert_int_equal(rgb_at(&img, 0, 2 * cell), FV_RED);
    assert_int_equal(rgb_at(&img, cell - 1, 3 * cell - 1), FV_RED);
    assert_int_equal(px(&img, 1, 2 * cell + 1, 0), tiles[2][0]);
    fv_image_free(&img);

    /* n = 0 is a picture, not an error; tiny tiles at scale 1 work */
    struct fv_montage_spec none = {.n = 0, .title = "conv2d_9: no filters", .margin = -1};
    assert_int_equal(fv_montage_write(path, &none, &err), FV_OK);
    img = load_png(path);
    assert_true(img.w >= text_w("conv2d_9: no filters", 1));
    fv_image_free(&img);
    struct fv_montage_spec tiny = {.tiles = tiles, .n = 1, .th = 1, .tw = 1, .channels = 1,
                                   .number_tiles = 1, .scale = 1, .margin = 0};
    assert_int_equal(fv_montage_write(path, &tiny, &err), FV_OK);

    /* bad specs fail with a message naming the file */
    struct fv_montage_spec bad = spec;
    bad.th = 0;
    assert_int_equal(fv_montage_write(path, &bad, &err), FV_ERR_USAGE);
    assert_non_null(strstr(err.msg, path));
    bad = spec;
    bad.channels = 2;
    assert_int_equal(fv_montage_write(path, &bad, &err), FV_ERR_USAGE);
    bad = spec;
    bad.n = -1;
    assert_int_equal(fv_montage_write(path, &bad, &err), FV_ERR_USAGE);
    bad = spec;
    bad.tiles = NULL;
    assert_int_equal(fv_montage_write(path, &bad, &err), FV_ERR_USAGE);
    bad = spec;
    bad.scale = 100000; /* tiles of 400000 px */
    assert_int_equal(fv_montage_write(path, &bad, &err), FV_ERR_SHAPE);
    assert_non_null(strstr(err.msg, path));
    assert_null(strchr(err.msg, '\n'));

    /* a huge number of tiles: refused by size, not allocated */
    int big_n = 2000000;
    const unsigned char **many = calloc((size_t)big_n, sizeof *many);
    struct fv_montage_spec huge = {.tiles = many, .n = big_n, .th = 32, .tw = 32, .scale = 4};
    assert_int_equal(fv_montage_write(path, &huge, &err), FV_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "2000000"));
    free(many);
    free(data);
}

/* The GTSRB picture of the brief: 43 classes, 7 columns, 32 x 32 at 4x. */
static void test_montage_gtsrb_size(void **state) {
    (void)state;
    struct fv_labels l;
    struct fv_error err = {0};
    assert_int_equal(fv_labels_load(shared_path("keras-real/signnames.csv"), &l, &err), FV_OK);
    assert_int_equal(l.n, 43);
    unsigned char *data = random_tiles(43, 32, 32, 3, 43);
    const unsigned char *tiles[43];
    char names[43][96];
    const char *caps[43];
    for (int i = 0; i < 43; i++) {
        tiles[i] = data + (size_t)i * 32 * 32 * 3;
        snprintf(names[i], sizeof names[i], "%d %s", i, fv_labels_get(&l, i));
        caps[i] = names[i];
    }
    struct fv_montage_spec spec = {.tiles = tiles, .n = 43, .th = 32, .tw = 32, .captions = caps,
                                   .cols = 7, .scale = 4, .margin = 8, .title = "class images"};
    const char *path = tmp_path("render_gtsrb.png");
    assert_int_equal(fv_montage_write(path, &spec, &err), FV_OK);
    struct fv_image img = load_png(path);
    int w, h;
    montage_size(43, 7, 32, 32, 4, 8, 1, "class images", &w, &h); /* long names: scale-1 text */
    printf("gtsrb montage: %d x %d\n", img.w, img.h);
    assert_int_equal(img.w, w);
    assert_int_equal(img.h, h);
    assert_true(img.w >= 900 && img.w <= 1100 && img.h >= 1000 && img.h <= 1200);
    /* "14 Stop" (41 px) is under tile 14 (row 2, column 0), centred */
    int y, x, box[4];
    tile_origin(14, 7, 32, 32, 4, 8, 8 + 6, 2 * 8 + 8, &y, &x);
    assert_true(ink_box(&img, y + 128 + 4, y + 128 + 12, x, x + 128, box) > 0);
    assert_int_equal(box[1], x + (128 - 41) / 2 + 1); /* '1' inks from its column 1 */
    assert_int_equal(box[3], x + (128 - 41) / 2 + 40); /* 'p' inks its column 4 */
    fv_image_free(&img);
    fv_labels_free(&l);
    free(data);
}

/* ---- bars ---- */

static int count_color_in_column(const struct fv_image *img, int x, int y0, int y1, uint32_t c,
                                 int *top) {
    int n = 0;
    *top = -1;
    for (int y = y0; y < y1; y++)
        if (rgb_at(img, y, x) == c) {
            if (*top < 0) *top = y;
            n++;
        }
    return n;
}

static void test_bars_heights(void **state) {
    (void)state;
    const int m = 8, bar_h = 64, bar_w = 3;
    const float v[6] = {0.25f, 0.5f, 1.0f, 0.0f, 0.75f, 0.3f};
    const int hl[6] = {0, 0, 0, 0, 1, 0};
    struct fv_bars_spec s = {.v = v, .n = 6, .lo = 0, .hi = 1, .bar_w = bar_w, .bar_h = bar_h,
                             .highlight = hl};
    const char *path = tmp_path("render_bars.png");
    struct fv_error err = {0};
    assert_int_equal(fv_bars_write(path, &s, &err), FV_OK);
    struct fv_image img = load_png(path);
    assert_int_equal(img.w, 2 * m + 6 * bar_w);
    assert_int_equal(img.h, m + bar_h + 12 + m);
    const int want[6] = {16, 32, 64, 0, 48, 19}; /* 0.3 * 64 = 19.2 */
    for (int i = 0; i < 6; i++)
        for (int k = 0; k < bar_w; k++) { /* bars are bar_w wide (no gap below 4 px) */
            int top, x = m + i * bar_w + k;
            uint32_t c = hl[i] ? FV_RED : FV_BLUE;
            assert_int_equal(count_color_in_column(&img, x, 0, img.h, c, &top), want[i]);
            if (want[i]) assert_int_equal(top, m + bar_h - want[i]); /* standing on the bottom */
            assert_int_equal(count_color_in_column(&img, x, 0, img.h, hl[i] ? FV_BLUE : FV_RED, &top), 0);
        }
    fv_image_free(&img);

    /* negative values: bars hang from the zero line in the middle of the band */
    const float nv[4] = {-0.5f, 0.5f, -1.0f, NAN};
    struct fv_bars_spec ns = {.v = nv, .n = 4, .lo = -1, .hi = 1, .bar_w = 5, .bar_h = 40};
    assert_int_equal(fv_bars_write(path, &ns, &err), FV_OK);
    img = load_png(path);
    int zero = m + 20, top;
    assert_int_equal(count_color_in_column(&img, m + 0 * 5, 0, img.h, FV_BLUE, &top), 10);
    assert_int_equal(top, zero);
    assert_int_equal(count_color_in_column(&img, m + 1 * 5, 0, img.h, FV_BLUE, &top), 10);
    assert_int_equal(top, zero - 10);
    assert_int_equal(rgb_at(&img, zero, m + 5), FV_GRAY); /* zero line under the positive bar */
    assert_int_equal(count_color_in_column(&img, m + 2 * 5, 0, img.h, FV_BLUE, &top), 20);
    assert_int_equal(count_color_in_column(&img, m + 3 * 5, 0, img.h, FV_BLUE, &top), 0); /* NaN */
    assert_int_equal(count_color_in_column(&img, m + 4, 0, img.h, FV_BLUE, &top), 0); /* 1 px gap */
    fv_image_free(&img);

    /* wrapping: 100 values, 30 per row -> 4 rows; value i at row i/30 */
    float wv[100];
    for (int i = 0; i < 100; i++) wv[i] = (float)(i % 10 + 1);
    struct fv_bars_spec ws = {.v = wv, .n = 100, .lo = 0, .hi = 10, .bar_w = 2, .bar_h = 20,
                              .max_w = 2 * m + 60};
    assert_int_equal(fv_bars_write(path, &ws, &err), FV_OK);
    img = load_png(path);
    int row_h = 20 + 12 + m;
    assert_int_equal(img.w, 2 * m + 60);
    assert_int_equal(img.h, m + 4 * row_h);
    for (int i = 0; i < 100; i += 7) {
        int r = i / 30, k = i % 30, y0 = m + r * row_h;
        assert_int_equal(count_color_in_column(&img, m + 2 * k, y0, y0 + 20, FV_BLUE, &top),
                         2 * (i % 10 + 1));
    }
    fv_image_free(&img);

    /* auto range, n = 0, and bad input */
    struct fv_bars_spec as = {.v = nv, .n = 3};
    assert_int_equal(fv_bars_write(path, &as, &err), FV_OK);
    struct fv_bars_spec es = {.n = 0, .title = "dense_9"};
    assert_int_equal(fv_bars_write(path, &es, &err), FV_OK);
    struct fv_bars_spec bs = {.v = NULL, .n = 3};
    assert_int_equal(fv_bars_write(path, &bs, &err), FV_ERR_USAGE);
    assert_non_null(strstr(err.msg, path));
    struct fv_bars_spec rs = {.v = nv, .n = 3, .lo = 2, .hi = 1};
    assert_int_equal(fv_bars_write(path, &rs, &err), FV_ERR_USAGE);
    float *big = calloc(5000000, sizeof *big);
    struct fv_bars_spec hs = {.v = big, .n = 5000000, .bar_w = 1};
    assert_int_equal(fv_bars_write(path, &hs, &err), FV_ERR_SHAPE);
    assert_non_null(strstr(err.msg, path));
    free(big);
}

/* ---- chart ---- */

static void test_chart_highlight(void **state) {
    (void)state;
    float v[10];
    int hl[10] = {0};
    for (int i = 0; i < 10; i++) v[i] = (float)(i + 1);
    v[5] = 0; /* a dead filter: zero height, still marked */
    hl[3] = hl[5] = 1;
    const char *path = tmp_path("render_chart.png");
    struct fv_error err = {0};
    assert_int_equal(fv_bar_chart_write(path, "conv2d_1 mean activation", 10, v, hl, "filter",
                                        "mean", &err), FV_OK);
    struct fv_image img = load_png(path);
    /* the x axis: the row just under the lowest blue pixel */
    int axis = -1;
    for (int y = 0; y < img.h; y++)
        for (int x = 0; x < img.w; x++)
            if (rgb_at(&img, y, x) == FV_BLUE && y + 1 > axis) axis = y + 1;
    assert_true(axis > 0);
    /* runs of columns holding bar pixels above the axis */
    int runs = 0, run_x[10], run_w[10], run_h[10], run_red[10], in_run = 0;
    for (int x = 0; x < img.w; x++) {
        int top, nb = count_color_in_column(&img, x, 0, axis, FV_BLUE, &top);
        int nr = count_color_in_column(&img, x, 0, axis, FV_RED, &top);
        if (nb + nr > 0 && !in_run) {
            assert_true(runs < 10);
            run_x[runs] = x;
            run_w[runs] = 0;
            run_h[runs] = nb + nr;
            run_red[runs] = nr > 0;
            runs++;
        }
        if (nb + nr > 0) run_w[runs - 1]++;
        in_run = nb + nr > 0;
    }
    assert_int_equal(runs, 9); /* bar 5 has no height */
    const int bar_of_run[9] = {0, 1, 2, 3, 4, 6, 7, 8, 9};
    for (int r = 0; r < 9; r++) {
        int i = bar_of_run[r];
        assert_int_equal(run_w[r], run_w[0]); /* equal widths */
        assert_int_equal(run_red[r], hl[i]);
        /* height proportional to the value (to a pixel) */
        double want = (double)run_h[9 - 1] * (double)v[i] / (double)v[9];
        assert_true(fabs(run_h[r] - want) <= 1.0);
    }
    /* red markers under the axis at bars 3 and 5 only (bar 5 sits between runs 4 and 5) */
    int pitch = run_x[1] - run_x[0];
    for (int i = 0; i < 10; i++) {
        int x = run_x[0] + i * pitch + run_w[0] / 2, top;
        int red = count_color_in_column(&img, x, axis, axis + 8, FV_RED, &top);
        assert_int_equal(red > 0, hl[i]);
    }
    fv_image_free(&img);

    /* negative, NaN, empty and huge inputs */
    const float odd[4] = {-2.0f, NAN, 3.5f, INFINITY};
    assert_int_equal(fv_bar_chart_write(path, NULL, 4, odd, NULL, NULL, NULL, &err), FV_OK);
    assert_int_equal(fv_bar_chart_write(path, "empty", 0, NULL, NULL, "x", "y", &err), FV_OK);
    const float same[3] = {0, 0, 0};
    assert_int_equal(fv_bar_chart_write(path, "zeros", 3, same, NULL, "x", "y", &err), FV_OK);
    assert_int_equal(fv_bar_chart_write(path, NULL, 3, NULL, NULL, NULL, NULL, &err), FV_ERR_USAGE);
    float *big = calloc(1000000, sizeof *big);
    const char *huge = tmp_path("render_chart_huge.png");
    unlink(huge);
    assert_int_equal(fv_bar_chart_write(huge, NULL, 1000000, big, NULL, NULL, NULL, &err),
                     FV_ERR_SHAPE);
    assert_non_null(strstr(err.msg, huge));
    assert_false(file_exists(huge));
    free(big);
}

/* ---- failures ---- */

static void test_write_into_missing_dir(void **state) {
    (void)state;
    char path[4200];
    snprintf(path, sizeof path, "%s", tmp_path("no_such_dir/sub/out.png"));
    unsigned char tile[3] = {1, 2, 3};
    const unsigned char *tiles[1] = {tile};
    const float v[2] = {1, 2};
    struct fv_montage_spec ms = {.tiles = tiles, .n = 1, .th = 1, .tw = 1, .scale = 4};
    struct fv_bars_spec bs = {.v = v, .n = 2};
    struct fv_error err = {0};
    for (int k = 0; k < 4; k++) {
        memset(&err, 0, sizeof err);
        int rc;
        if (k == 0) rc = fv_montage_write(path, &ms, &err);
        else if (k == 1) rc = fv_bars_write(path, &bs, &err);
        else if (k == 2) rc = fv_bar_chart_write(path, "t", 2, v, NULL, NULL, NULL, &err);
        else {
            struct fv_canvas c;
            assert_int_equal(fv_canvas_init(&c, 4, 4, FV_WHITE, &err), FV_OK);
            rc = fv_canvas_save(&c, path, &err);
            fv_canvas_free(&c);
        }
        printf("-> %s\n", err.msg);
        assert_int_equal(rc, FV_ERR_IO);
        assert_non_null(strstr(err.msg, path));
        assert_null(strchr(err.msg, '\n'));
        assert_false(file_exists(path));
    }
    /* canvas limits */
    struct fv_canvas c;
    assert_int_equal(fv_canvas_init(&c, 0, 5, FV_WHITE, &err), FV_ERR_SHAPE);
    assert_null(c.pix);
    assert_int_equal(fv_canvas_init(&c, 40000, 5, FV_WHITE, &err), FV_ERR_SHAPE);
    assert_int_equal(fv_canvas_init(&c, 30000, 30000, FV_WHITE, &err), FV_ERR_SHAPE);
    fv_canvas_free(&c);
    assert_int_equal(fv_canvas_save(&c, path, &err), FV_ERR_USAGE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upscale_for),
        cmocka_unit_test(test_colormap_references),
        cmocka_unit_test(test_colormap_monotonic),
        cmocka_unit_test(test_map_to_rgb),
        cmocka_unit_test(test_glyphs),
        cmocka_unit_test(test_text_fit),
        cmocka_unit_test(test_blend_and_frame),
        cmocka_unit_test(test_montage_geometry),
        cmocka_unit_test(test_montage_captions),
        cmocka_unit_test(test_montage_flags_and_odd_inputs),
        cmocka_unit_test(test_montage_gtsrb_size),
        cmocka_unit_test(test_bars_heights),
        cmocka_unit_test(test_chart_highlight),
        cmocka_unit_test(test_write_into_missing_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
