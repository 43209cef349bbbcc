/* spectrum_from: MACO's magnitude spectrum for the Fourier parameterization,
 * from the user's own images (a directory, image files, or an .npy array of
 * N 8-bit images) or from a spectrum.npy written by an earlier run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "featviz/preprocess.h"
#include "jobs/common.h"
#include "jobs/synth.h"

/* Adds one image (h, w, ic) of 0..255 values to the spectrum sum, resized
 * (PIL bicubic, anti-aliased) to the display size and converted to c channels. */
static int add_image(const struct fv_param *p, const struct fv_image *img, float *acc, float *one, float *u,
                     float *ws, struct fv_error *err) {
    struct fv_image sized = {0};
    const struct fv_image *src = img;
    if (img->h != p->h || img->w != p->w) {
        int rc = fv_image_resize(img, p->h, p->w, FV_RESIZE_BICUBIC, &sized, err);
        if (rc) return rc;
        src = &sized;
    }
    size_t pixels = (size_t)p->h * (size_t)p->w;
    for (size_t i = 0; i < pixels; i++) {
        const float *q = src->data + i * (size_t)src->c;
        for (int k = 0; k < p->c; k++) {
            float v = src->c == p->c ? q[k] : p->c == 1 ? (q[0] * 299.0f + q[1] * 587.0f + q[2] * 114.0f) / 1000.0f : q[0];
            u[i * (size_t)p->c + (size_t)k] = v / 255.0f;
        }
    }
    fv_image_free(&sized);
    fv_spectrum_from_images(p, u, 1, one, ws);
    size_t bins = (size_t)p->c * (size_t)p->h * (size_t)(p->w / 2 + 1);
    for (size_t i = 0; i < bins; i++) acc[i] += one[i];
    return FV_OK;
}

int synth_spectrum(const char *from, const char *origin, const struct synth_cfg *cfg, int H, int W, int c,
                   const char *out_dir, float **mag, struct fv_error *err) {
    *mag = NULL;
    struct fv_param p;
    struct fv_param_config pc = cfg->param;
    pc.magnitude = NULL;
    if (pc.basis != FV_PARAM_FOURIER)
        return fv_error_set(err, FV_ERR_USAGE, "%s: spectrum_from needs param = fourier", origin);
    int rc = fv_param_init(&p, &pc, H, W, c, err);
    if (rc) return rc;
    int wf = W / 2 + 1;
    size_t bins = (size_t)c * (size_t)H * (size_t)wf, hwc = (size_t)H * W * c;
    float *acc = calloc(bins, sizeof *acc), *one = malloc(bins * sizeof *one), *u = malloc(hwc * sizeof *u);
    float *ws = malloc((fv_param_ws_floats(&p, 1) + 2 * (size_t)H * wf) * sizeof *ws);
    struct fv_array a = {0};
    char **files = NULL;
    int n_files = 0, used = 0;
    if (!acc || !one || !u || !ws) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t len = strlen(from);
    if (len > 4 && !strcmp(from + len - 4, ".npy")) {
        if ((rc = fv_npy_load(from, &a, err))) goto done;
        if (a.rank == 3 && a.dims[0] == (size_t)c && a.dims[1] == (size_t)H && a.dims[2] == (size_t)wf && strcmp(a.dtype, "u1")) {
            memcpy(acc, a.data, bins * sizeof *acc); /* a spectrum written by an earlier run */
            used = 1;
        } else if (a.rank == 4 && !strcmp(a.dtype, "u1") && (a.dims[3] == 1 || a.dims[3] == 3) && a.dims[1] <= 65536 && a.dims[2] <= 65536) {
            for (size_t i = 0; i < a.dims[0] && !rc; i++) {
                struct fv_image img = {(int)a.dims[1], (int)a.dims[2], (int)a.dims[3],
                                       a.data + i * a.dims[1] * a.dims[2] * a.dims[3]};
                rc = add_image(&p, &img, acc, one, u, ws, err);
                used++;
            }
        } else if (a.rank == 3) {
            rc = fv_error_set(err, FV_ERR_USAGE, "%s: %s is a spectrum of %zux%zux%zu; these images need %dx%dx%d (channels, height, width/2+1): make it from images",
                              origin, from, a.dims[0], a.dims[1], a.dims[2], c, H, wf);
        } else {
            rc = fv_error_set(err, FV_ERR_USAGE, "%s: %s: expected 8-bit images (N, H, W, 1 or 3) or a spectrum (C, H, W/2+1)", origin, from);
        }
    } else {
        if ((rc = fv_list_images(from, &files, &n_files, err))) goto done;
        for (int i = 0; i < n_files && !rc; i++) {
            struct fv_image img = {0};
            if (!(rc = fv_image_load(files[i], &img, err))) rc = add_image(&p, &img, acc, one, u, ws, err);
            fv_image_free(&img);
            used++;
        }
    }
    if (rc) goto done;
    if (!used) {
        rc = fv_error_set(err, FV_ERR_USAGE, "%s: %s: no images", origin, from);
        goto done;
    }
    if (used > 1 || a.rank == 4)
        for (size_t i = 0; i < bins; i++) acc[i] /= (float)used;
    if (out_dir) { /* for later runs (spectrum_from = this file) */
        char path[4200];
        size_t dims[3] = {(size_t)c, (size_t)H, (size_t)wf};
        snprintf(path, sizeof path, "%s/spectrum.npy", out_dir);
        if ((rc = fv_npy_save(path, acc, 3, dims, err))) goto done;
    }
    *mag = acc;
    acc = NULL;
done:
    fv_paths_free(files, n_files);
    fv_array_free(&a);
    fv_param_free(&p);
    free(acc), free(one), free(u), free(ws);
    return rc;
}
