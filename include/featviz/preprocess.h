/* Preprocessing: the file does not record it, so the user declares it.
 * image (0..255, H,W,C) -> resize -> color order -> scale/offset -> mean/std
 *                       -> model input (H, W, C) float.
 * Named Keras modes (keras.applications.imagenet_utils.preprocess_input):
 *   caffe: RGB->BGR, subtract [103.939,116.779,123.68], no scaling
 *   tf:    x/127.5 - 1
 *   torch: x/255, subtract [0.485,0.456,0.406], divide by [0.229,0.224,0.225]
 * Default: RGB, bilinear, scale 1/255. */
#ifndef FEATVIZ_PREPROCESS_H
#define FEATVIZ_PREPROCESS_H

#include "featviz/error.h"
#include "featviz/image.h"

enum fv_resize { FV_RESIZE_BILINEAR, FV_RESIZE_NEAREST, FV_RESIZE_AREA, FV_RESIZE_BICUBIC };
enum fv_color { FV_COLOR_RGB, FV_COLOR_BGR, FV_COLOR_GRAY };

struct fv_preproc {
    enum fv_resize resize;
    enum fv_color color;   /* channel order the model expects */
    float scale;           /* x*scale + offset, then (x - mean[c]) / std[c] */
    float offset;
    float mean[3];
    float std[3];
};

void fv_preproc_default(struct fv_preproc *p);
/* Applies a named mode ("none", "caffe", "tf", "torch") on top of p. */
int fv_preproc_mode(struct fv_preproc *p, const char *mode, struct fv_error *err);
int fv_resize_parse(const char *s, enum fv_resize *out, struct fv_error *err);
int fv_color_parse(const char *s, enum fv_color *out, struct fv_error *err);

/* Resizes with the chosen filter to (h, w), keeping channels. */
int fv_image_resize(const struct fv_image *src, int h, int w, enum fv_resize how,
                    struct fv_image *dst, struct fv_error *err);

/* Full pipeline into out (h, w, c) where c is 1 or 3 as the model needs;
 * gray from RGB uses ITU-R 601 luma (PIL "L"), gray to RGB replicates. */
int fv_preprocess(const struct fv_preproc *p, const struct fv_image *img, int h, int w, int c,
                  float *out, struct fv_error *err);

/* Inverse of the value mapping (not of the resize): model input (h,w,c) ->
 * displayable 0..255 RGB or gray bytes, clipped. */
void fv_deprocess(const struct fv_preproc *p, const float *in, int h, int w, int c,
                  unsigned char *out);

#endif
