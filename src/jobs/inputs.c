#include "jobs/inputs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static void stem_of(const char *path, char *out, size_t cap) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(out, cap, "%s", base);
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcasecmp(s + a - b, suffix);
}

static int add_source(struct fv_inputs *in, const char *path, struct fv_error *err) {
    struct fv_source *s = realloc(in->src, (size_t)(in->n_src + 1) * sizeof *s);
    if (!s) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    in->src = s;
    s = &s[in->n_src];
    memset(s, 0, sizeof *s);
    if (!(s->path = strdup(path))) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    in->n_src++;
    stem_of(path, s->stem, sizeof s->stem);
    s->npy = ends_with(path, ".npy");
    s->count = 1;
    return FV_OK;
}

/* Checks an .npy header against the model input and decides how to read it. */
static int check_npy(struct fv_inputs *in, struct fv_source *s, struct fv_error *err) {
    const struct fv_model *m = in->m;
    struct fv_array *a = &s->header;
    int r = a->rank;
    s->raw = a->dtype[0] == 'f';
    if (s->raw) {
        /* model input in Keras layout, with or without a batch axis */
        if (r != m->in_rank && r != m->in_rank + 1)
            goto shape;
        s->batched = r == m->in_rank + 1;
        const size_t *d = a->dims + s->batched;
        for (int i = 0; i < m->in_rank; i++)
            if (m->in_dims[i] > 0 && d[i] != (size_t)m->in_dims[i]) goto shape;
    } else {
        /* 8-bit images (H,W,C) or (N,H,W,C), preprocessed like image files */
        if (r != 3 && r != 4) goto shape;
        s->batched = r == 4;
        size_t c = a->dims[r - 1];
        if (c != 1 && c != 3) goto shape;
    }
    s->count = s->batched ? a->dims[0] : 1;
    if (s->count == 0) return fv_error_set(err, FV_ERR_FORMAT, "%s: the array holds no images", s->path);
    return FV_OK;
shape: {
    char want[128] = "", got[128] = "";
    size_t len = 0;
    for (int i = 0; i < m->in_rank; i++)
        len += (size_t)snprintf(want + len, sizeof want - len, "%s%d", i ? "," : "", m->in_dims[i]);
    len = 0;
    for (int i = 0; i < r && len < sizeof got; i++)
        len += (size_t)snprintf(got + len, sizeof got - len, "%s%zu", i ? "," : "", a->dims[i]);
    return fv_error_set(err, FV_ERR_SHAPE, "%s: array of shape (%s) and type %s fits neither the model input (N,%s) as float nor 8-bit images (N,H,W,C)",
                        s->path, got, a->dtype, want);
}
}

int fv_inputs_open(struct fv_inputs *in, const char *list, const struct fv_model *m,
                   const struct fv_preproc *pp, int h, int w, struct fv_error *err) {
    memset(in, 0, sizeof *in);
    in->m = m, in->pp = pp;
    int rc = FV_OK;
    if (!list || !*list) return fv_error_set(err, FV_ERR_USAGE, "no inputs given");
    char *buf = strdup(list), *save = NULL;
    if (!buf) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    for (char *tok = strtok_r(buf, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        struct stat st;
        if (stat(tok, &st)) {
            rc = fv_error_set(err, FV_ERR_IO, "%s: no such file or directory", tok);
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            char **paths = NULL;
            int n = 0;
            if ((rc = fv_list_images(tok, &paths, &n, err))) break;
            for (int i = 0; i < n && !rc; i++) rc = add_source(in, paths[i], err);
            fv_paths_free(paths, n);
        } else {
            rc = add_source(in, tok, err);
        }
    }
    free(buf);
    if (rc) goto fail;
    int mh, mw, mc;
    fv_model_input_hwc(m, &mh, &mw, &mc);
    in->c = mc;
    for (int i = 0; i < in->n_src && !rc; i++) {
        struct fv_source *s = &in->src[i];
        if (s->npy) {
            if ((rc = fv_npy_open(s->path, &s->reader, &s->header, err))) break;
            rc = check_npy(in, s, err);
        }
        s->first = in->total;
        in->total += s->count;
    }
    if (rc) goto fail;
    /* input size: the model's, else the caller's, else the first input's */
    in->h = mh > 0 ? mh : h, in->w = mw > 0 ? mw : w;
    if (m->in_rank == 3 && (in->h <= 0 || in->w <= 0)) {
        struct fv_source *s = &in->src[0];
        if (s->npy) {
            const size_t *d = s->header.dims + s->batched;
            if (s->raw) {
                int phys[3];
                for (int k = 0; k < 3; k++) phys[m->layers[m->input].kperm[k]] = (int)d[k];
                in->h = phys[0], in->w = phys[1];
            } else {
                in->h = (int)d[0], in->w = (int)d[1];
            }
        } else {
            struct fv_image img;
            if ((rc = fv_image_load(s->path, &img, err))) goto fail;
            in->h = img.h, in->w = img.w;
            fv_image_free(&img);
        }
    }
    if (m->in_rank != 3) in->h = in->w = 1;
    if (in->c < 1 && m->in_rank == 3) {
        rc = fv_error_set(err, FV_ERR_SHAPE, "%s: the model does not declare its number of input channels", m->path);
        goto fail;
    }
    size_t per = (size_t)in->h * (size_t)in->w * (size_t)in->c;
    for (int i = 0; i < in->n_src; i++) {
        struct fv_source *s = &in->src[i];
        size_t items = 1;
        for (int k = s->batched; s->npy && s->raw && k < s->header.rank; k++) items *= s->header.dims[k];
        if (s->npy && s->raw && items != per) {
            rc = fv_error_set(err, FV_ERR_SHAPE, "%s: each array item has %zu values, the model input (%dx%dx%d) has %zu",
                              s->path, items, in->h, in->w, in->c, per);
            goto fail;
        }
    }
    if (!(in->scratch = malloc(per * sizeof(float)))) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    return FV_OK;
fail:
    fv_inputs_close(in);
    return rc;
}

const struct fv_source *fv_inputs_source(const struct fv_inputs *in, size_t item, size_t *index) {
    for (int i = 0; i < in->n_src; i++) {
        const struct fv_source *s = &in->src[i];
        if (item >= s->first && item < s->first + s->count) {
            if (index) *index = item - s->first;
            return s;
        }
    }
    return NULL;
}

/* One 8-bit image from a uint8 array row, preprocessed into out (physical). */
static int read_npy_image(struct fv_inputs *in, struct fv_source *s, size_t row, float *out,
                          struct fv_error *err) {
    const size_t *d = s->header.dims + s->batched;
    struct fv_image img = {.h = (int)d[0], .w = (int)d[1], .c = (int)d[2]};
    size_t n = (size_t)img.h * (size_t)img.w * (size_t)img.c;
    if (!(img.data = malloc(n * sizeof(float)))) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    int rc = s->batched ? fv_npy_read_rows(s->reader, row, 1, img.data, err)
                        : fv_npy_read_rows(s->reader, 0, (size_t)img.h, img.data, err);
    if (!rc) rc = fv_preprocess(in->pp, &img, in->h, in->w, in->c, out, err);
    free(img.data);
    return rc;
}

int fv_inputs_read(struct fv_inputs *in, size_t first, size_t count, float *out,
                   struct fv_error *err) {
    const struct fv_model *m = in->m;
    size_t per = (size_t)in->h * (size_t)in->w * (size_t)in->c;
    struct fv_shape phys = {.rank = m->in_rank};
    if (m->in_rank == 3) phys.d[0] = in->h, phys.d[1] = in->w, phys.d[2] = in->c;
    else
        for (int i = 0; i < m->in_rank; i++) phys.d[m->layers[m->input].kperm[i]] = m->in_dims[i];
    for (size_t k = 0; k < count; k++) {
        size_t idx;
        struct fv_source *s = (struct fv_source *)fv_inputs_source(in, first + k, &idx);
        float *dst = out + k * per;
        int rc;
        if (!s) return fv_error_set(err, FV_ERR_USAGE, "input item %zu does not exist", first + k);
        if (!s->npy) {
            struct fv_image img;
            if ((rc = fv_image_load(s->path, &img, err))) return rc;
            rc = fv_preprocess(in->pp, &img, in->h, in->w, in->c, dst, err);
            fv_image_free(&img);
        } else if (s->raw) {
            rc = s->batched ? fv_npy_read_rows(s->reader, idx, 1, in->scratch, err)
                            : fv_npy_read_rows(s->reader, 0, s->header.dims[0], in->scratch, err);
            if (!rc) fv_from_keras(&m->layers[m->input], &phys, in->scratch, dst);
        } else {
            rc = read_npy_image(in, s, idx, dst, err);
        }
        if (rc) return rc;
    }
    return FV_OK;
}

void fv_inputs_close(struct fv_inputs *in) {
    for (int i = 0; i < in->n_src; i++) {
        free(in->src[i].path);
        if (in->src[i].reader) fv_npy_close(in->src[i].reader);
        fv_array_free(&in->src[i].header);
    }
    free(in->src);
    free(in->scratch);
    memset(in, 0, sizeof *in);
}
