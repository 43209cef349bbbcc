/* Contents of ONNX tensors as doubles: typed fields or raw little-endian
 * bytes, float16 converted, EXTERNAL data read from the file the tensor names
 * beside the model (a relative path that stays in the model's directory).
 * Sizes are checked against the dims before anything is allocated. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/onnx/onnx.h"

int onnx_tensor_count(const struct onnx_tensor *t, size_t *count, const char *path,
                      struct fv_error *err) {
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) {
        if (t->dims[i] < 0 || (t->dims[i] > 0 && n > ONNX_MAX_ELEMS / t->dims[i]))
            return fv_error_set(err, FV_ERR_SHAPE, "%s: tensor '%s' has dimensions whose product overflows (more than %lld elements)",
                                path, t->name, (long long)ONNX_MAX_ELEMS);
        n *= t->dims[i];
    }
    *count = (size_t)n;
    return FV_OK;
}

static int elem_size(int dtype) {
    switch (dtype) {
    case ONNX_FLOAT: case ONNX_INT32: return 4;
    case ONNX_INT64: case ONNX_DOUBLE: return 8;
    case ONNX_FLOAT16: return 2;
    case ONNX_UINT8: case ONNX_INT8: case ONNX_BOOL: return 1;
    default: return 0;
    }
}

static double half_to_double(uint16_t h) {
    int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0) v = ldexp(m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexp(m + 1024, e - 25);
    return sign ? -v : v;
}

static double raw_elem(const uint8_t *p, int dtype) {
    switch (dtype) {
    case ONNX_FLOAT: { float v; memcpy(&v, p, 4); return v; }
    case ONNX_DOUBLE: { double v; memcpy(&v, p, 8); return v; }
    case ONNX_INT32: { int32_t v; memcpy(&v, p, 4); return v; }
    case ONNX_INT64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case ONNX_FLOAT16: { uint16_t v; memcpy(&v, p, 2); return half_to_double(v); }
    case ONNX_INT8: return (int8_t)p[0];
    default: return p[0];
    }
}

/* The external file: its name relative to the model's directory, no escape. */
static int read_external(const struct onnx_tensor *t, const char *model_path, size_t bytes,
                         uint8_t **out, struct fv_error *err) {
    const char *loc = t->ext_location;
    if (!*loc || loc[0] == '/' || strstr(loc, ".."))
        return fv_error_set(err, FV_ERR_FORMAT, "%s: tensor '%s' names external data '%s', which is not a file beside the model",
                            model_path, t->name, loc);
    char file[2048];
    const char *slash = strrchr(model_path, '/');
    int dir = slash ? (int)(slash - model_path + 1) : 0;
    if (snprintf(file, sizeof file, "%.*s%s", dir, model_path, loc) >= (int)sizeof file)
        return fv_error_set(err, FV_ERR_FORMAT, "%s: external data path too long", model_path);
    FILE *fp = fopen(file, "rb");
    if (!fp)
        return fv_error_set(err, FV_ERR_IO, "%s: tensor '%s' is stored in '%s', which cannot be opened", model_path, t->name, file);
    struct stat st;
    long long off = t->ext_offset > 0 ? t->ext_offset : 0;
    if (fstat(fileno(fp), &st) || (t->ext_length >= 0 && (size_t)t->ext_length != bytes) ||
        off > (long long)st.st_size || (unsigned long long)(st.st_size - off) < bytes) {
        fclose(fp);
        return fv_error_set(err, FV_ERR_FORMAT, "%s: tensor '%s' needs %zu bytes at offset %lld of '%s', which does not hold them",
                            model_path, t->name, bytes, off, file);
    }
    uint8_t *buf = malloc(bytes ? bytes : 1);
    if (!buf) {
        fclose(fp);
        return fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory", model_path);
    }
    int ok = fseeko(fp, (off_t)off, SEEK_SET) == 0 && fread(buf, 1, bytes, fp) == bytes;
    fclose(fp);
    if (!ok) {
        free(buf);
        return fv_error_set(err, FV_ERR_IO, "%s: cannot read tensor '%s' from '%s'", model_path, t->name, file);
    }
    *out = buf;
    return FV_OK;
}

int onnx_tensor_values(const struct onnx_tensor *t, const char *model_path, double **out,
                       size_t *count, struct fv_error *err) {
    size_t n = 0;
    int rc = onnx_tensor_count(t, &n, model_path, err);
    if (rc) return rc;
    int es = elem_size(t->dtype);
    if (!es)
        return fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: tensor '%s' has data type %d; featviz reads float, float16, double and integer tensors",
                            model_path, t->name, t->dtype);
    size_t have;
    if (t->external || t->has_raw) have = n;
    else if (t->dtype == ONNX_FLOAT) have = t->n_f;
    else if (t->dtype == ONNX_DOUBLE) have = t->n_f64;
    else if (t->dtype == ONNX_INT64) have = t->n_i64;
    else have = t->n_i32; /* int32, float16 (bits), int8, uint8, bool */
    if (have != n)
        return fv_error_set(err, FV_ERR_SHAPE, "%s: tensor '%s' has %zu values, its dimensions say %zu", model_path, t->name, have, n);
    if (t->has_raw && !t->external && t->raw_len != n * (size_t)es)
        return fv_error_set(err, FV_ERR_SHAPE, "%s: tensor '%s' has %zu bytes of data, its dimensions say %zu",
                            model_path, t->name, t->raw_len, n * (size_t)es);
    uint8_t *ext = NULL;
    if (t->external && (rc = read_external(t, model_path, n * (size_t)es, &ext, err))) return rc;
    double *v = malloc((n ? n : 1) * sizeof *v);
    if (!v) {
        free(ext);
        return fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory for tensor '%s'", model_path, t->name);
    }
    const uint8_t *raw = ext ? ext : t->has_raw ? t->raw : NULL;
    for (size_t i = 0; i < n; i++) {
        if (raw) v[i] = raw_elem(raw + i * (size_t)es, t->dtype);
        else if (t->dtype == ONNX_FLOAT) v[i] = t->f[i];
        else if (t->dtype == ONNX_DOUBLE) v[i] = t->f64[i];
        else if (t->dtype == ONNX_INT64) v[i] = (double)t->i64[i];
        else if (t->dtype == ONNX_FLOAT16) v[i] = half_to_double((uint16_t)t->i32[i]);
        else v[i] = t->i32[i];
    }
    free(ext);
    *out = v;
    *count = n;
    return FV_OK;
}
