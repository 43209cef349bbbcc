/* Image resizing with the separable resample kernel (kernels/resample.c): a
 * horizontal pass (h_in, w_out, C) and a vertical pass (h_out, w_out, C).
 *   nearest  cv2 INTER_NEAREST: src = floor(dst * in/out)
 *   bilinear half-pixel centres, no antialiasing: cv2 INTER_LINEAR,
 *            torch interpolate(mode='bilinear', align_corners=False)
 *   area     box average with fractional coverage on a shrinking axis (cv2
 *            INTER_AREA, torch adaptive_avg_pool2d for integer factors); an
 *            axis that grows uses bilinear
 *   bicubic  PIL Image.resize(BICUBIC): a = -0.5, support widened by the
 *            shrink factor (antialiasing), weights normalised; kept in float */
#include "featviz/preprocess.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/resample.h"

static enum fv_resample_filter filter_of(enum fv_resize how) {
    switch (how) {
    case FV_RESIZE_NEAREST:
        return FV_RS_NEAREST;
    case FV_RESIZE_AREA:
        return FV_RS_AREA;
    case FV_RESIZE_BICUBIC:
        return FV_RS_CUBIC_PIL;
    default:
        return FV_RS_LINEAR;
    }
}

int fv_image_resize(const struct fv_image *src, int h, int w, enum fv_resize how,
                    struct fv_image *dst, struct fv_error *err) {
    if (!src->data || src->h <= 0 || src->w <= 0 || src->c <= 0)
        return fv_error_set(err, FV_ERR_USAGE, "resize: empty source image");
    if (h <= 0 || w <= 0)
        return fv_error_set(err, FV_ERR_USAGE, "resize: bad target size %dx%d", h, w);
    if ((unsigned)how > FV_RESIZE_BICUBIC)
        return fv_error_set(err, FV_ERR_USAGE, "resize: unknown method %d", (int)how);
    size_t c = (size_t)src->c, n_tmp, n_out;
    if (!fv_mul_size((size_t)src->h * (size_t)w, c, &n_tmp) ||
        !fv_mul_size((size_t)h * (size_t)w, c, &n_out) || n_tmp > SIZE_MAX / sizeof(float) ||
        n_out > SIZE_MAX / sizeof(float))
        return fv_error_set(err, FV_ERR_SHAPE, "resize: %dx%d image too large", h, w);

    if (h == src->h && w == src->w) { /* PIL returns a copy */
        if (!(dst->data = fv_malloc(n_out * sizeof(float), err))) return FV_ERR_NOMEM;
        memcpy(dst->data, src->data, n_out * sizeof(float));
        dst->h = h, dst->w = w, dst->c = src->c;
        return FV_OK;
    }
    struct fv_resample r;
    float *tmp = NULL, *out = NULL;
    int rc = fv_resample_init(&r, src->h, src->w, h, w, filter_of(how), err);
    if (rc) return rc;
    tmp = fv_malloc(n_tmp * sizeof(float), err); /* (src->h, w, C) */
    out = fv_malloc(n_out * sizeof(float), err); /* (h, w, C) */
    if (!tmp || !out) {
        rc = FV_ERR_NOMEM;
        goto done;
    }
    /* a horizontal pass into tmp, then a vertical one */
    fv_resample_forward(&r, src->data, out, src->c, 1, tmp);
    dst->h = h;
    dst->w = w;
    dst->c = src->c;
    dst->data = out;
    out = NULL;
done:
    fv_resample_free(&r);
    free(tmp);
    free(out);
    return rc;
}
