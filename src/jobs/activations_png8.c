/* activations.format = png8: the cheap picture output. One 8-bit gray PNG per
 * image and layer with every channel's map at its own resolution (no upscale,
 * no colour map, no labels), written fast (zlib level 1): a quarter of the
 * .npy export's bytes before compression, and what a script slices back into
 * maps with the geometry and value range kept in the file's text chunks. */
#include "jobs/activations_png8.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "featviz/image.h"
#include "featviz/render.h"

void acts_map_dims(const struct fv_shape *s, int *H, int *W, int *C) {
    switch (s->rank) {
    case 2: *H = 1, *W = s->d[0], *C = s->d[1]; break;
    case 3: *H = s->d[0], *W = s->d[1], *C = s->d[2]; break;
    case 4: *H = s->d[0] * s->d[1], *W = s->d[2], *C = s->d[3]; break;
    default: *H = 1, *W = 1, *C = s->rank ? s->d[0] : 1; break;
    }
}

/* t = (v - mean) / (std + 1e-5) * 0.1 + 0.5 = (v - lo) / (hi - lo)
 * with lo = mean - 5 (std + 1e-5), hi = mean + 5 (std + 1e-5). */
void acts_quiver_range(const float *v, size_t n, float *lo, float *hi) {
    double sum = 0, sq = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i])) sum += (double)v[i], k++;
    double mean = k ? sum / (double)k : 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i])) sq += ((double)v[i] - mean) * ((double)v[i] - mean);
    double sd = (k ? sqrt(sq / (double)k) : 0) + 1e-5;
    *lo = (float)(mean - 5 * sd);
    *hi = (float)(mean + 5 * sd);
}

void acts_layer_range(const float *y, size_t n, float *lo, float *hi) {
    fv_finite_range(y, n, lo, hi);
    if (*lo > 0) *lo = 0;
}

/* "%.9g" values separated by spaces (n * 17 bytes fit). */
static void format_values(char *out, const float *v, int n) {
    char *p = out;
    for (int i = 0; i < n; i++) p += sprintf(p, i ? " %.9g" : "%.9g", (double)v[i]);
    *p = 0;
}

int acts_png8_write(const struct fv_layer *l, const struct fv_shape *s, const float *y, int norm,
                    float lo_fixed, float hi_fixed, const char *path, struct fv_error *err) {
    int H, W, C;
    float *keras = NULL; /* a rank-1 output in Keras order */
    if (s->rank <= 1) {
        H = 1, W = (int)fv_shape_count(s), C = 1;
        if (!(keras = malloc((size_t)(W ? W : 1) * sizeof *keras)))
            return fv_error_set(err, FV_ERR_NOMEM, "out of memory writing %s", path);
        fv_to_keras(l, s, y, keras);
        y = keras;
    } else {
        acts_map_dims(s, &H, &W, &C);
    }
    int cols = 1;
    while (cols * cols < C) cols++;
    int rows = (C + cols - 1) / cols, ch_norms = norm == ACTS_NORM_MAP ? C : 1;
    size_t HW = (size_t)H * (size_t)W, gw = (size_t)cols * (size_t)W;
    unsigned char *pix = calloc((size_t)rows * (size_t)H * gw, 1);
    float *lo = malloc((size_t)C * 2 * sizeof *lo), *hi = lo ? lo + C : NULL;
    float *map = norm == ACTS_NORM_MAP ? malloc(HW * sizeof *map) : NULL;
    char *text_lo = malloc((size_t)ch_norms * 17 + 1), *text_hi = malloc((size_t)ch_norms * 17 + 1);
    int rc = FV_OK;
    if (!pix || !lo || !text_lo || !text_hi || (norm == ACTS_NORM_MAP && !map)) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory writing %s", path);
        goto done;
    }
    for (int c = 0; c < C; c++) {
        if (norm == ACTS_NORM_MAP) {
            for (size_t i = 0; i < HW; i++) map[i] = y[i * (size_t)C + (size_t)c];
            acts_quiver_range(map, HW, &lo[c], &hi[c]);
        } else if (norm == ACTS_NORM_LAYER) {
            if (c == 0) acts_layer_range(y, HW * (size_t)C, &lo[0], &hi[0]);
            lo[c] = lo[0], hi[c] = hi[0];
        } else {
            lo[c] = lo_fixed, hi[c] = hi_fixed;
        }
    }
    /* per channel t = (v - lo) * (1 / (hi - lo)); the channels of a pixel are
     * adjacent in y, each lands in its own tile */
    for (int c = 0; c < C; c++) {
        double span = (double)hi[c] - (double)lo[c];
        float inv = span != 0 ? (float)(1.0 / span) : 0.0f, l0 = lo[c];
        unsigned char *tile = pix + (size_t)(c / cols) * (size_t)H * gw + (size_t)(c % cols) * (size_t)W;
        for (int r = 0; r < H; r++) {
            const float *src = y + (size_t)r * (size_t)W * (size_t)C + (size_t)c;
            unsigned char *dst = tile + (size_t)r * gw;
            for (int x = 0; x < W; x++) {
                float t = (src[(size_t)x * (size_t)C] - l0) * inv;
                if (!(t > 0)) t = 0; /* also NaN */
                if (t > 1) t = 1;
                dst[x] = (unsigned char)(t * 255.0f + 0.5f);
            }
        }
    }
    static const char *const norm_names[] = {"map", "layer", "fixed"};
    char maps[128];
    snprintf(maps, sizeof maps, "channels=%d height=%d width=%d columns=%d", C, H, W, cols);
    format_values(text_lo, lo, ch_norms);
    format_values(text_hi, hi, ch_norms);
    struct fv_png_text text[] = {
        {"featviz.layer", l->name}, {"featviz.maps", maps}, {"featviz.norm", norm_names[norm]},
        {"featviz.lo", text_lo}, {"featviz.hi", text_hi},
    };
    rc = fv_png_write_gray8(path, pix, rows * H, (int)gw, text, 5, err);
done:
    free(text_hi);
    free(text_lo);
    free(map);
    free(lo);
    free(pix);
    free(keras);
    return rc;
}
