/* Preprocessing pipeline: resize -> channels (gray/RGB/BGR) -> x*scale+offset
 * -> (x - mean[c]) / std[c], c counting channels in the model's order; and its
 * inverse for display. */
#include "featviz/preprocess.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void fv_preproc_default(struct fv_preproc *p) {
    memset(p, 0, sizeof *p);
    p->resize = FV_RESIZE_BILINEAR;
    p->color = FV_COLOR_RGB;
    p->scale = 1.0f / 255.0f;
    p->offset = 0.0f;
    for (int i = 0; i < 3; i++) {
        p->mean[i] = 0.0f;
        p->std[i] = 1.0f;
    }
}

/* Sets mean/std given in RGB order, stored in the model's channel order. */
static void set_mean_std_rgb(struct fv_preproc *p, const float *mean, const float *std) {
    int bgr = p->color == FV_COLOR_BGR;
    for (int i = 0; i < 3; i++) {
        p->mean[i] = mean[bgr ? 2 - i : i];
        p->std[i] = std[bgr ? 2 - i : i];
    }
}

/* The mode decides the value mapping; caffe also switches the channel order
 * to BGR (except for gray models). Apply the color choice before the mode. */
int fv_preproc_mode(struct fv_preproc *p, const char *mode, struct fv_error *err) {
    static const float ones[3] = {1.0f, 1.0f, 1.0f};
    if (strcmp(mode, "none") == 0) return FV_OK;
    if (strcmp(mode, "caffe") == 0) {
        static const float mean_rgb[3] = {123.68f, 116.779f, 103.939f};
        if (p->color != FV_COLOR_GRAY) p->color = FV_COLOR_BGR;
        p->scale = 1.0f;
        p->offset = 0.0f;
        set_mean_std_rgb(p, mean_rgb, ones);
        if (p->color == FV_COLOR_GRAY) p->mean[0] = 103.939f; /* Keras: mean[0] of the BGR list */
        return FV_OK;
    }
    if (strcmp(mode, "tf") == 0) {
        static const float zeros[3] = {0.0f, 0.0f, 0.0f};
        p->scale = 1.0f / 127.5f;
        p->offset = -1.0f;
        set_mean_std_rgb(p, zeros, ones);
        return FV_OK;
    }
    if (strcmp(mode, "torch") == 0) {
        static const float mean_rgb[3] = {0.485f, 0.456f, 0.406f};
        static const float std_rgb[3] = {0.229f, 0.224f, 0.225f};
        p->scale = 1.0f / 255.0f;
        p->offset = 0.0f;
        set_mean_std_rgb(p, mean_rgb, std_rgb);
        return FV_OK;
    }
    return fv_error_set(err, FV_ERR_USAGE,
                        "unknown preprocessing mode '%s' (choose none, caffe, tf or torch)", mode);
}

int fv_resize_parse(const char *s, enum fv_resize *out, struct fv_error *err) {
    static const struct {
        const char *name;
        enum fv_resize v;
    } names[] = {{"bilinear", FV_RESIZE_BILINEAR},
                 {"nearest", FV_RESIZE_NEAREST},
                 {"area", FV_RESIZE_AREA},
                 {"bicubic", FV_RESIZE_BICUBIC}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].v;
            return FV_OK;
        }
    }
    return fv_error_set(err, FV_ERR_USAGE,
                        "unknown resize method '%s' (choose bilinear, nearest, area or bicubic)", s);
}

int fv_color_parse(const char *s, enum fv_color *out, struct fv_error *err) {
    if (strcasecmp(s, "rgb") == 0) {
        *out = FV_COLOR_RGB;
    } else if (strcasecmp(s, "bgr") == 0) {
        *out = FV_COLOR_BGR;
    } else if (strcasecmp(s, "gray") == 0 || strcasecmp(s, "grayscale") == 0) {
        *out = FV_COLOR_GRAY;
    } else {
        return fv_error_set(err, FV_ERR_USAGE,
                            "unknown color order '%s' (choose rgb, bgr or gray)", s);
    }
    return FV_OK;
}

/* PIL "L": ITU-R 601-2 luma, kept in float. */
static float luma(const float *rgb) {
    return (rgb[0] * 299.0f + rgb[1] * 587.0f + rgb[2] * 114.0f) / 1000.0f;
}

int fv_preprocess(const struct fv_preproc *p, const struct fv_image *img, int h, int w, int c,
                  float *out, struct fv_error *err) {
    if (c != 1 && c != 3)
        return fv_error_set(err, FV_ERR_SHAPE, "preprocess: model wants %d channels, not 1 or 3",
                            c);
    if (img->c != 1 && img->c != 3)
        return fv_error_set(err, FV_ERR_SHAPE, "preprocess: image has %d channels, not 1 or 3",
                            img->c);
    struct fv_image r = {0};
    int rc = fv_image_resize(img, h, w, p->resize, &r, err);
    if (rc != FV_OK) return rc;
    size_t n = (size_t)h * (size_t)w;
    for (size_t i = 0; i < n; i++) {
        const float *s = r.data + i * (size_t)r.c; /* (r.c) source pixel, RGB or gray */
        float *d = out + i * (size_t)c;            /* (c) model pixel */
        float v[3];
        if (c == 1) {
            v[0] = r.c == 1 ? s[0] : luma(s);
        } else if (r.c == 1 || p->color == FV_COLOR_GRAY) {
            v[0] = v[1] = v[2] = r.c == 1 ? s[0] : luma(s);
        } else if (p->color == FV_COLOR_BGR) {
            v[0] = s[2];
            v[1] = s[1];
            v[2] = s[0];
        } else {
            v[0] = s[0];
            v[1] = s[1];
            v[2] = s[2];
        }
        for (int k = 0; k < c; k++) d[k] = (v[k] * p->scale + p->offset - p->mean[k]) / p->std[k];
    }
    fv_image_free(&r);
    return FV_OK;
}

void fv_deprocess(const struct fv_preproc *p, const float *in, int h, int w, int c,
                  unsigned char *out) {
    size_t n = (size_t)h * (size_t)w;
    int swap = c == 3 && p->color == FV_COLOR_BGR;
    float scale = p->scale != 0.0f ? p->scale : 1.0f;
    for (size_t i = 0; i < n; i++) {
        const float *s = in + i * (size_t)c; /* (c) model order */
        unsigned char *d = out + i * (size_t)c; /* (c) RGB or gray */
        for (int k = 0; k < c; k++) {
            /* inverse of d = (v*scale + offset - mean) / std */
            float v = ((s[k] * p->std[k] + p->mean[k]) - p->offset) / scale;
            v = v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v;
            if (isnan(v)) v = 0.0f;
            d[swap ? 2 - k : k] = (unsigned char)floorf(v + 0.5f);
        }
    }
}
