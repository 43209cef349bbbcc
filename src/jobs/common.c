#include "jobs/common.h"

#include <ctype.h>

#include "dist/items.h"
#include "featviz/image.h"
#include "featviz/render.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* "NAME=identity NAME2=0.5,-1" -> declarations */
static int parse_lambdas(const char *text, struct fv_lambda_decl **out, int *n, const char *origin,
                         struct fv_error *err) {
    *out = NULL;
    *n = 0;
    if (!text || !*text) return FV_OK;
    char *buf = strdup(text), *save = NULL;
    if (!buf) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    for (char *tok = strtok_r(buf, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        struct fv_lambda_decl *d = realloc(*out, (size_t)(*n + 1) * sizeof *d);
        if (!d) {
            free(buf);
            return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        }
        *out = d;
        d = &d[*n];
        memset(d, 0, sizeof *d);
        char *eq = strchr(tok, '=');
        char *end1 = NULL, *end2 = NULL;
        if (!eq || eq == tok) goto bad;
        snprintf(d->name, sizeof d->name, "%.*s", (int)(eq - tok), tok);
        if (!strcmp(eq + 1, "identity")) {
            d->identity = 1;
        } else {
            d->scale = strtof(eq + 1, &end1);
            if (end1 == eq + 1 || *end1 != ',') goto bad;
            d->offset = strtof(end1 + 1, &end2);
            if (end2 == end1 + 1 || *end2) goto bad;
        }
        (*n)++;
        continue;
    bad:
        /* the message names tok, which points into buf: set it before freeing */
        fv_error_set(err, FV_ERR_USAGE, "%s: lambda '%s' is not NAME=identity or NAME=SCALE,OFFSET", origin, tok);
        free(buf);
        free(*out);
        *out = NULL;
        *n = 0;
        return FV_ERR_USAGE;
    }
    free(buf);
    return FV_OK;
}

/* NaN or infinite weights make every later value NaN (probabilities print as
 * -nan, filters look dead): said once, naming the first such layer. */
static void warn_nonfinite(const struct fv_model *m) {
    int bad_layers = 0;
    const char *first = NULL;
    for (int i = 0; i < m->n_layers; i++) {
        const struct fv_layer *l = &m->layers[i];
        int bad = 0;
        for (int k = 0; k < l->n_w && !bad; k++)
            for (size_t j = 0; j < l->w_len[k] && !bad; j++) bad = !isfinite(l->w[k][j]);
        if (bad && !bad_layers++) first = l->name;
    }
    if (bad_layers)
        fprintf(stderr, "featviz: warning: %s: layer '%s'%s has NaN or infinite weights; every value computed from it is NaN\n",
                m->path, first, bad_layers > 1 ? " (and others)" : "");
}

int job_load_model(const struct fv_settings *s, struct fv_model *m, struct fv_error *err) {
    const char *path = fv_get_str(s, "model", "path");
    if (!path || !*path) return fv_error_set(err, FV_ERR_USAGE, "no model given (model.path)");
    struct fv_load_opts o = {0};
    o.arch_json = fv_get_str(s, "model", "arch");
    const char *flip = fv_get_str(s, "model", "flip_kernels");
    o.flip_kernels = !strcmp(flip, "yes") ? 1 : !strcmp(flip, "no") ? 0 : -1;
    struct fv_lambda_decl *decl = NULL;
    int rc = parse_lambdas(fv_get_str(s, "model", "lambda"), &decl, &o.n_lambdas,
                           fv_get_origin(s, "model", "lambda"), err);
    if (rc) return rc;
    o.lambdas = decl;
    o.max_bytes = (size_t)fv_get_int(s, "model", "max_model_mb") << 20;
    rc = fv_model_load(m, path, &o, err);
    for (int i = 0; !rc && i < o.n_lambdas; i++)
        if (fv_model_find(m, decl[i].name) < 0) {
            rc = fv_error_set(err, FV_ERR_USAGE, "%s: lambda '%s' names no layer of %s", fv_get_origin(s, "model", "lambda"), decl[i].name, path);
            fv_model_free(m);
        }
    if (!rc) warn_nonfinite(m);
    free(decl);
    return rc;
}

int job_preproc(const struct fv_settings *s, int c, struct fv_preproc *p, struct fv_error *err) {
    fv_preproc_default(p);
    int rc = fv_resize_parse(fv_get_str(s, "model", "resize"), &p->resize, err);
    if (!rc) rc = fv_color_parse(fv_get_str(s, "model", "color"), &p->color, err);
    if (rc) return rc;
    p->scale = (float)fv_get_float(s, "model", "scale");
    p->offset = (float)fv_get_float(s, "model", "offset");
    const char *names[2] = {"mean", "std"};
    float *dst[2] = {p->mean, p->std};
    for (int k = 0; k < 2; k++) {
        float v[3];
        int n = fv_get_floats(s, "model", names[k], v, 3); /* counts values beyond 3 too */
        if (n == 0) continue;
        if (n != 1 && n != c)
            return fv_error_set(err, FV_ERR_USAGE, "%s: model.%s has %d values; the model has %d channels", fv_get_origin(s, "model", names[k]), names[k], n, c);
        for (int i = 0; i < 3; i++) dst[k][i] = v[n == 1 ? 0 : (i < n ? i : 0)];
        if (k == 1)
            for (int i = 0; i < 3; i++)
                if (dst[k][i] == 0) return fv_error_set(err, FV_ERR_USAGE, "%s: model.std contains 0", fv_get_origin(s, "model", "std"));
    }
    return fv_preproc_mode(p, fv_get_str(s, "model", "preprocess"), err);
}

int job_labels(const struct fv_settings *s, struct fv_labels *l, struct fv_error *err) {
    memset(l, 0, sizeof *l);
    const char *path = fv_get_str(s, "model", "labels");
    if (!path || !*path) return FV_OK;
    return fv_labels_load(path, l, err);
}

int job_mkdirs(const char *dir, struct fv_error *err) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || !*p) {
            char keep = *p;
            *p = 0;
            if (mkdir(buf, 0777) && errno != EEXIST)
                return fv_error_set(err, FV_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
            *p = keep;
            if (!keep) break;
        }
    }
    struct stat st;
    if (stat(dir, &st) || !S_ISDIR(st.st_mode)) return fv_error_set(err, FV_ERR_IO, "%s: not a directory", dir);
    fv_tmpfile_sweep(dir); /* what a killed run left half-written */
    return FV_OK;
}

int job_mkdirs_for(const char *path, struct fv_error *err) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return FV_OK;
    *slash = 0;
    return job_mkdirs(dir, err);
}

void job_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

int job_write_config(const struct fv_settings *s, const char *job, const char *dir,
                     struct fv_error *err) {
    /* rank 0 only: the other ranks' copies would be the same bytes, and on
     * --resume rank 0 sweeps the job's folder for stopped writers' temporary
     * files while they could be writing theirs (test_mpi saw one vanish) */
    if (!fv_items_leader()) return FV_OK;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.ini", dir, job);
    const char *sections[3] = {"model", "output", job};
    return fv_settings_write(s, sections, 3, path, err);
}

int job_write_image(const char *path, const float *u, int h, int w, int c, int min_size,
                    struct fv_error *err) {
    size_t n = (size_t)h * (size_t)w * (size_t)c;
    unsigned char *bytes = malloc(n);
    if (!bytes) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        float v = u[i] * 255.0f + 0.5f;
        bytes[i] = (unsigned char)(v > 0.0f ? (v < 255.0f ? v : 255.0f) : 0.0f);
    }
    int k = fv_upscale_for(h > w ? h : w, min_size);
    struct fv_canvas cv;
    int rc = fv_canvas_init(&cv, h * k, w * k, FV_WHITE, err);
    if (!rc) {
        fv_canvas_blit(&cv, 0, 0, bytes, h, w, c, k);
        rc = fv_canvas_save(&cv, path, err);
    }
    fv_canvas_free(&cv);
    free(bytes);
    return rc;
}

void job_slug(const char *text, char *out, size_t cap) {
    size_t n = 0;
    int dash = 0;
    for (const char *p = text; p && *p && n + 2 < cap; p++) {
        unsigned char ch = (unsigned char)*p;
        if (isalnum(ch)) {
            if (dash && n) out[n++] = '-';
            out[n++] = (char)tolower(ch);
            dash = 0;
        } else {
            dash = 1;
        }
    }
    out[n] = 0;
}

int job_index_list(const char *text, int n, const char *what, const char *origin, int **out,
                   int *count, struct fv_error *err) {
    *out = malloc((size_t)(n > 0 ? n : 1) * sizeof **out);
    *count = 0;
    if (!*out) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    if (!text || !strcmp(text, "all")) {
        for (int i = 0; i < n; i++) (*out)[(*count)++] = i;
        return FV_OK;
    }
    const char *c = text;
    while (*c) {
        char *end;
        long v = strtol(c, &end, 10);
        if (end == c || v < 0 || v >= n) {
            free(*out);
            *out = NULL;
            return fv_error_set(err, FV_ERR_USAGE, "%s: %s '%s' is not all or a list of numbers in 0..%d", origin, what, text, n - 1);
        }
        if (*count < n) (*out)[(*count)++] = (int)v;
        c = end;
        while (*c == ' ' || *c == ',') c++;
    }
    return FV_OK;
}

/* Layer names as file names: every character other than letters, digits,
 * '.', '-' and '_' becomes '_' (nested Keras "outer/inner" -> outer_inner),
 * leading '/' of ONNX names are dropped ("/layer1/layer1.0/conv1/Conv" ->
 * layer1_layer1.0_conv1_Conv), and a name starting with '.' gets a '_' first. */
void job_safe_name(const char *layer, char *out, size_t cap) {
    while (*layer == '/') layer++;
    snprintf(out, cap, "%s%s", *layer == '.' || !*layer ? "_" : "", layer);
    for (char *p = out; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                 c == '-' || c == '_';
        if (!ok) *p = '_';
    }
}

int job_path(char *out, size_t cap, struct fv_error *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap) return fv_error_set(err, FV_ERR_USAGE, "%.80s...: output path too long", out);
    return FV_OK;
}
