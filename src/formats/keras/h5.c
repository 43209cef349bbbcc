/* The only file that includes <hdf5.h>: reads the string attributes and weight
 * datasets of Keras .h5 files (../shared/docs/keras-h5-format.md sections 1-4).
 *
 * Every function closes each handle it opens on every path (one cleanup label
 * per function: `fail:`, or `done:` where success passes through it too), and
 * fv_h5_close asserts that nothing is left open. HDF5's own error printing is
 * switched off; failures are reported as one line that names the file and the
 * group/attribute/dataset. */
#include "formats/keras/h5.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <hdf5.h>

/* Refuse attributes with more strings, and datasets with more elements, than this. */
#define H5_MAX_STRINGS ((hsize_t)1 << 24)
#define H5_MAX_ELEMS ((size_t)1 << 31)
#define H5_MAX_RANK 8

struct fv_h5 {
    hid_t file;
    char *path;   /* as given to fv_h5_open, for messages */
    size_t budget; /* bytes the reads below may still allocate (fv_h5_set_max_bytes) */
};

/* Takes bytes from the budget before an allocation of data the file declares. */
static int spend(struct fv_h5 *h, size_t bytes, const char *what, struct fv_error *err) {
    if (bytes <= h->budget) {
        h->budget -= bytes;
        return FV_OK;
    }
    return fv_error_set(err, FV_ERR_FORMAT, "%s: %s needs %zu bytes, beyond the limit on what a "
                        "model may hold (raise it with --max-model-mb N, key model.max_model_mb)",
                        h->path, what, bytes);
}

void fv_h5_set_max_bytes(struct fv_h5 *h, size_t bytes) { h->budget = bytes; }

/* A growable list of malloc'd strings. */
struct strlist {
    char **s;
    int n, cap;
};

static void strlist_free(struct strlist *l) {
    fv_h5_strings_free(l->s, l->n);
    l->s = NULL;
    l->n = l->cap = 0;
}

/* Takes ownership of str (frees it on failure). */
static int strlist_push(struct strlist *l, char *str, struct fv_error *err) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **p = realloc(l->s, (size_t)cap * sizeof *p);
        if (!p) {
            free(str);
            return fv_error_set(err, FV_ERR_NOMEM, "out of memory growing a string list");
        }
        l->s = p;
        l->cap = cap;
    }
    l->s[l->n++] = str;
    return FV_OK;
}

static char *dup_bytes(const char *p, size_t len, struct fv_error *err) {
    char *s = fv_malloc(len + 1, err);
    if (!s) return NULL;
    memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

static int is_root(const char *group) {
    return !group || !group[0] || strcmp(group, "/") == 0;
}

/* The group as shown in messages. */
static const char *gname(const char *group) {
    return is_root(group) ? "/" : group;
}

static const char *class_name(H5T_class_t c) {
    switch (c) {
    case H5T_INTEGER: return "integer";
    case H5T_FLOAT: return "float";
    case H5T_STRING: return "string";
    case H5T_BITFIELD: return "bitfield";
    case H5T_OPAQUE: return "opaque";
    case H5T_COMPOUND: return "compound";
    case H5T_REFERENCE: return "reference";
    case H5T_ENUM: return "enum";
    case H5T_VLEN: return "vlen";
    case H5T_ARRAY: return "array";
    default: return "unknown";
    }
}

/* 1 if every component of the relative path `path` exists below loc. */
static int path_exists(hid_t loc, const char *path) {
    size_t len = strlen(path);
    char *buf = malloc(len + 1);
    int ok = 1;
    if (!buf) return 0;
    memcpy(buf, path, len + 1);
    for (size_t i = 0; ok && i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        if (i == 0) continue;
        char save = buf[i];
        buf[i] = '\0';
        if (buf[i - 1] != '/') ok = H5Lexists(loc, buf, H5P_DEFAULT) > 0;
        buf[i] = save;
    }
    free(buf);
    return ok;
}

/* Opens the group or returns a negative id (no error set). */
static hid_t group_open_quiet(struct fv_h5 *h, const char *group) {
    if (is_root(group)) return H5Gopen2(h->file, "/", H5P_DEFAULT);
    if (!path_exists(h->file, group)) return -1;
    return H5Gopen2(h->file, group, H5P_DEFAULT);
}

static hid_t group_open(struct fv_h5 *h, const char *group, struct fv_error *err) {
    hid_t g = group_open_quiet(h, group);
    if (g < 0)
        fv_error_set(err, FV_ERR_FORMAT, "%s: group '%s' is missing", h->path, gname(group));
    return g;
}

int fv_h5_open(struct fv_h5 **out, const char *path, struct fv_error *err) {
    *out = NULL;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    struct stat st;
    FILE *fp = fopen(path, "rb");
    if (!fp) return fv_error_set(err, FV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    int is_dir = fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode);
    fclose(fp);
    if (is_dir) return fv_error_set(err, FV_ERR_IO, "%s: is a directory, not an HDF5 file", path);
    if (H5Fis_hdf5(path) <= 0)
        return fv_error_set(err, FV_ERR_FORMAT, "%s: not an HDF5 file", path);
    struct fv_h5 *h = fv_calloc(1, sizeof *h, err);
    if (!h) return FV_ERR_NOMEM;
    int rc = FV_ERR_NOMEM;
    h->file = -1;
    h->path = dup_bytes(path, strlen(path), err);
    if (!h->path) goto fail;
    h->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (h->file < 0) {
        rc = fv_error_set(err, FV_ERR_FORMAT, "%s: not an HDF5 file (or truncated)", path);
        goto fail;
    }
    h->budget = SIZE_MAX;
    *out = h;
    return FV_OK;
fail:
    free(h->path);
    free(h);
    return rc;
}

int fv_h5_open_image(struct fv_h5 **out, const void *buf, size_t len, const char *name,
                     struct fv_error *err) {
    static const unsigned char magic[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    *out = NULL;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (len < sizeof magic || memcmp(buf, magic, sizeof magic))
        return fv_error_set(err, FV_ERR_FORMAT, "%s: not an HDF5 file", name);
    struct fv_h5 *h = fv_calloc(1, sizeof *h, err);
    if (!h) return FV_ERR_NOMEM;
    int rc = FV_ERR_NOMEM;
    h->file = -1;
    hid_t fapl = -1;
    h->path = dup_bytes(name, strlen(name), err);
    if (!h->path) goto fail;
    /* the core driver reads a copy of the image; nothing touches the disk */
    fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_core(fapl, 1 << 16, 0) < 0 ||
        H5Pset_file_image(fapl, (void *)buf, len) < 0) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "%s: cannot open in memory", name);
        goto fail;
    }
    h->file = H5Fopen(name, H5F_ACC_RDONLY, fapl);
    if (h->file < 0) {
        rc = fv_error_set(err, FV_ERR_FORMAT, "%s: not an HDF5 file (or truncated)", name);
        goto fail;
    }
    H5Pclose(fapl);
    h->budget = SIZE_MAX;
    *out = h;
    return FV_OK;
fail:
    if (fapl >= 0) H5Pclose(fapl);
    free(h->path);
    free(h);
    return rc;
}

void fv_h5_close(struct fv_h5 *h) {
    if (!h) return;
    if (h->file >= 0) {
        /* Every function here closes what it opens: a leak is a bug. */
        ssize_t open = H5Fget_obj_count(h->file, H5F_OBJ_DATASET | H5F_OBJ_GROUP |
                                                     H5F_OBJ_DATATYPE | H5F_OBJ_ATTR);
        FV_ASSERT(open <= 0);
        H5Fclose(h->file);
    }
    free(h->path);
    free(h);
}

int fv_h5_has_group(struct fv_h5 *h, const char *group) {
    hid_t g = group_open_quiet(h, group);
    if (g < 0) return 0;
    H5Gclose(g);
    return 1;
}

static int attr_exists(hid_t g, const char *attr) {
    return H5Aexists(g, attr) > 0;
}

int fv_h5_has_attr(struct fv_h5 *h, const char *group, const char *attr) {
    hid_t g = group_open_quiet(h, group);
    if (g < 0) return 0;
    char chunk0[512];
    snprintf(chunk0, sizeof chunk0, "%s0", attr);
    int yes = attr_exists(g, attr) || attr_exists(g, chunk0);
    H5Gclose(g);
    return yes;
}

/* Fixed-length element of `size` bytes: not NUL-terminated when it fills the
 * slot, so copy exactly size bytes and trim according to the padding. */
static char *fixed_to_string(const char *p, size_t size, H5T_str_t pad, struct fv_error *err) {
    size_t len = size;
    if (pad == H5T_STR_NULLTERM) {
        const char *z = memchr(p, '\0', size);
        if (z) len = (size_t)(z - p);
    } else {
        while (len > 0 && (p[len - 1] == '\0' || (pad == H5T_STR_SPACEPAD && p[len - 1] == ' ')))
            len--;
    }
    return dup_bytes(p, len, err);
}

/* Appends the strings of the open attribute `a` to l. Zero elements of any type
 * is an empty list (Keras writes [] as float64[0]). `what` names it in messages. */
static int attr_read_strings(struct fv_h5 *h, hid_t a, const char *what, struct strlist *l,
                             struct fv_error *err) {
    hid_t ftype = -1, space = -1, mtype = -1;
    char *buf = NULL;
    char **vbuf = NULL;
    hsize_t np = 0;
    int rc = FV_ERR_FORMAT;

    space = H5Aget_space(a);
    ftype = H5Aget_type(a);
    if (space < 0 || ftype < 0) {
        fv_error_set(err, FV_ERR_FORMAT, "%s: cannot read %s", h->path, what);
        goto done;
    }
    hssize_t npoints = H5Sget_simple_extent_npoints(space);
    if (npoints < 0) {
        fv_error_set(err, FV_ERR_FORMAT, "%s: cannot read the size of %s", h->path, what);
        goto done;
    }
    np = (hsize_t)npoints;
    if (np == 0) {
        rc = FV_OK;
        goto done;
    }
    H5T_class_t cls = H5Tget_class(ftype);
    if (cls != H5T_STRING) {
        fv_error_set(err, FV_ERR_FORMAT, "%s: %s is %s, expected a string", h->path, what,
                     class_name(cls));
        goto done;
    }
    if (np > H5_MAX_STRINGS) {
        fv_error_set(err, FV_ERR_FORMAT, "%s: %s has too many strings (%llu)", h->path, what,
                     (unsigned long long)np);
        goto done;
    }
    H5T_cset_t cset = H5Tget_cset(ftype);
    htri_t var = H5Tis_variable_str(ftype);
    size_t size = H5Tget_size(ftype);
    H5T_str_t pad = H5Tget_strpad(ftype);
    if (cset < 0 || var < 0 || size == 0 || pad < 0) {
        fv_error_set(err, FV_ERR_FORMAT, "%s: %s has an unreadable string type", h->path, what);
        goto done;
    }
    mtype = H5Tcopy(H5T_C_S1);
    if (mtype < 0 || H5Tset_cset(mtype, cset) < 0 ||
        H5Tset_size(mtype, var ? H5T_VARIABLE : size) < 0 ||
        H5Tset_strpad(mtype, var ? H5T_STR_NULLTERM : pad) < 0) {
        fv_error_set(err, FV_ERR_FORMAT, "%s: %s has an unsupported string type", h->path, what);
        goto done;
    }
    if (var) {
        if ((rc = spend(h, (size_t)np * sizeof *vbuf, what, err))) goto done;
        rc = FV_ERR_FORMAT;
        vbuf = fv_calloc((size_t)np, sizeof *vbuf, err);
        if (!vbuf) {
            rc = FV_ERR_NOMEM;
            goto done;
        }
        if (H5Aread(a, mtype, vbuf) < 0) {
            fv_error_set(err, FV_ERR_FORMAT, "%s: cannot read %s", h->path, what);
            goto done;
        }
        for (hsize_t i = 0; i < np; i++) {
            const char *s = vbuf[i] ? vbuf[i] : "";
            char *c = dup_bytes(s, strlen(s), err);
            if (!c || strlist_push(l, c, err) != FV_OK) {
                rc = err ? err->code : FV_ERR_NOMEM;
                goto done;
            }
        }
    } else {
        size_t bytes;
        if (!fv_mul_size((size_t)np, size, &bytes)) {
            fv_error_set(err, FV_ERR_FORMAT, "%s: %s is too large", h->path, what);
            goto done;
        }
        if ((rc = spend(h, bytes, what, err))) goto done;
        rc = FV_ERR_FORMAT;
        buf = fv_malloc(bytes, err);
        if (!buf) {
            rc = FV_ERR_NOMEM;
            goto done;
        }
        if (H5Aread(a, mtype, buf) < 0) {
            fv_error_set(err, FV_ERR_FORMAT, "%s: cannot read %s", h->path, what);
            goto done;
        }
        for (hsize_t i = 0; i < np; i++) {
            char *c = fixed_to_string(buf + i * size, size, pad, err);
            if (!c || strlist_push(l, c, err) != FV_OK) {
                rc = err ? err->code : FV_ERR_NOMEM;
                goto done;
            }
        }
    }
    rc = FV_OK;
done:
    if (vbuf) {
        for (hsize_t i = 0; i < np; i++)
            if (vbuf[i]) H5free_memory(vbuf[i]);
        free(vbuf);
    }
    free(buf);
    if (mtype >= 0) H5Tclose(mtype);
    if (ftype >= 0) H5Tclose(ftype);
    if (space >= 0) H5Sclose(space);
    return rc;
}

/* Opens attribute `attr` of the open group g and appends its strings to l. */
static int attr_append(struct fv_h5 *h, hid_t g, const char *group, const char *attr,
                       struct strlist *l, struct fv_error *err) {
    char what[768];
    snprintf(what, sizeof what, "attribute '%s' of group '%s'", attr, gname(group));
    hid_t a = H5Aopen(g, attr, H5P_DEFAULT);
    if (a < 0) return fv_error_set(err, FV_ERR_FORMAT, "%s: cannot open %s", h->path, what);
    int rc = attr_read_strings(h, a, what, l, err);
    H5Aclose(a);
    return rc;
}

int fv_h5_attr_string(struct fv_h5 *h, const char *group, const char *attr, char **out,
                      struct fv_error *err) {
    struct strlist l = {0};
    int rc;
    *out = NULL;
    hid_t g = group_open(h, group, err);
    if (g < 0) return FV_ERR_FORMAT;
    if (!attr_exists(g, attr)) {
        rc = FV_OK;
        goto done;
    }
    rc = attr_append(h, g, group, attr, &l, err);
    if (rc != FV_OK) goto done;
    if (l.n != 1) {
        rc = fv_error_set(err, FV_ERR_FORMAT,
                          "%s: attribute '%s' of group '%s' has %d strings, expected one",
                          h->path, attr, gname(group), l.n);
        goto done;
    }
    *out = l.s[0];
    l.n = 0;
done:
    strlist_free(&l);
    H5Gclose(g);
    return rc;
}

/* Reads `attr`, or its chunks attr0, attr1, ... into l; *found = 0 if neither exists. */
static int attr_strings_group(struct fv_h5 *h, hid_t g, const char *group, const char *attr,
                              struct strlist *l, int *found, struct fv_error *err) {
    *found = 1;
    if (attr_exists(g, attr)) return attr_append(h, g, group, attr, l, err);
    char chunk[512];
    for (int i = 0;; i++) {
        snprintf(chunk, sizeof chunk, "%s%d", attr, i);
        if (!attr_exists(g, chunk)) {
            if (i == 0) *found = 0;
            return FV_OK;
        }
        int rc = attr_append(h, g, group, chunk, l, err);
        if (rc != FV_OK) return rc;
    }
}

int fv_h5_attr_strings(struct fv_h5 *h, const char *group, const char *attr, char ***out, int *n,
                       struct fv_error *err) {
    struct strlist l = {0};
    int found = 0;
    *out = NULL;
    *n = -1;
    hid_t g = group_open(h, group, err);
    if (g < 0) return FV_ERR_FORMAT;
    int rc = attr_strings_group(h, g, group, attr, &l, &found, err);
    H5Gclose(g);
    if (rc != FV_OK) {
        strlist_free(&l);
        return rc;
    }
    if (found) {
        *out = l.s;
        *n = l.n;
    }
    return FV_OK;
}

void fv_h5_strings_free(char **s, int n) {
    if (!s) return;
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
}

/* Reads dataset `name` (relative to the open group g) into w as float32. */
static int dataset_read(struct fv_h5 *h, hid_t g, const char *dpath, const char *name,
                        struct fv_h5_weight *w, struct fv_error *err) {
    hid_t d = -1, space = -1, type = -1;
    int rc = FV_ERR_FORMAT;

    if (!path_exists(g, name)) {
        fv_error_set(err, FV_ERR_FORMAT, "%s: dataset '%s' is missing", h->path, dpath);
        goto fail;
    }
    d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0) {
        fv_error_set(err, FV_ERR_FORMAT, "%s: '%s' is not a readable dataset", h->path, dpath);
        goto fail;
    }
    type = H5Dget_type(d);
    space = H5Dget_space(d);
    if (type < 0 || space < 0) {
        fv_error_set(err, FV_ERR_FORMAT, "%s: cannot read dataset '%s'", h->path, dpath);
        goto fail;
    }
    H5T_class_t cls = H5Tget_class(type);
    /* Keras 3 stores bfloat16 variables as 2-byte values marked dtype="bfloat16" */
    char *dt = NULL;
    int bf16 = 0;
    if (attr_exists(d, "dtype")) {
        struct strlist l = {0};
        hid_t a = H5Aopen(d, "dtype", H5P_DEFAULT);
        if (a >= 0 && attr_read_strings(h, a, dpath, &l, err) == FV_OK && l.n == 1) dt = l.s[0], l.s[0] = NULL;
        if (a >= 0) H5Aclose(a);
        strlist_free(&l);
        bf16 = dt && !strcmp(dt, "bfloat16");
        free(dt);
    }
    if (bf16 && H5Tget_size(type) != 2) {
        fv_error_set(err, FV_ERR_FORMAT, "%s: dataset '%s' says bfloat16 but has %zu-byte values",
                     h->path, dpath, H5Tget_size(type));
        goto fail;
    }
    if (!bf16 && cls != H5T_FLOAT && cls != H5T_INTEGER) {
        fv_error_set(err, FV_ERR_FORMAT, "%s: dataset '%s' is %s, expected float or integer",
                     h->path, dpath, class_name(cls));
        goto fail;
    }
    H5S_class_t sc = H5Sget_simple_extent_type(space);
    if (sc != H5S_SCALAR && sc != H5S_SIMPLE) {
        fv_error_set(err, FV_ERR_FORMAT, "%s: dataset '%s' has no data", h->path, dpath);
        goto fail;
    }
    int rank = H5Sget_simple_extent_ndims(space);
    if (rank < 0 || rank > H5_MAX_RANK) {
        fv_error_set(err, FV_ERR_FORMAT, "%s: dataset '%s' has rank %d (at most %d)", h->path,
                     dpath, rank, H5_MAX_RANK);
        goto fail;
    }
    hsize_t dims[H5_MAX_RANK];
    if (rank > 0 && H5Sget_simple_extent_dims(space, dims, NULL) != rank) {
        fv_error_set(err, FV_ERR_FORMAT, "%s: cannot read the shape of dataset '%s'", h->path,
                     dpath);
        goto fail;
    }
    size_t count = 1, bytes;
    w->rank = rank;
    for (int i = 0; i < rank; i++) {
        if (dims[i] > (hsize_t)H5_MAX_ELEMS || !fv_mul_size(count, (size_t)dims[i], &count) ||
            count > H5_MAX_ELEMS) {
            fv_error_set(err, FV_ERR_FORMAT, "%s: dataset '%s' is too large (more than %zu "
                         "elements)", h->path, dpath, H5_MAX_ELEMS);
            goto fail;
        }
        w->dims[i] = (size_t)dims[i];
    }
    w->count = count;
    if (!fv_mul_size(count, sizeof(float), &bytes)) {
        fv_error_set(err, FV_ERR_FORMAT, "%s: dataset '%s' is too large", h->path, dpath);
        goto fail;
    }
    if ((rc = spend(h, bytes, dpath, err))) goto fail;
    rc = FV_ERR_FORMAT;
    w->data = fv_malloc(bytes, err);
    if (!w->data) {
        rc = FV_ERR_NOMEM;
        goto fail;
    }
    if (bf16) {
        /* the upper half of a float32: read the 16 bits into the float
         * buffer's second half, then widen in place from the front */
        uint16_t *raw = (uint16_t *)w->data + count;
        hid_t mem = H5Tcopy(type);
        herr_t st = count > 0 ? H5Dread(d, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) : 0;
        H5Tclose(mem);
        if (st < 0) {
            fv_error_set(err, FV_ERR_FORMAT, "%s: cannot read dataset '%s' (file damaged?)", h->path,
                         dpath);
            goto fail;
        }
        for (size_t i = 0; i < count; i++) {
            uint32_t u = (uint32_t)raw[i] << 16;
            memcpy(&w->data[i], &u, sizeof u);
        }
    } else if (count > 0 && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w->data) < 0) {
        fv_error_set(err, FV_ERR_FORMAT, "%s: cannot read dataset '%s' (file damaged?)", h->path,
                     dpath);
        goto fail;
    }
    rc = FV_OK;
fail:
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    if (d >= 0) H5Dclose(d);
    return rc;
}

int fv_h5_read_weights(struct fv_h5 *h, const char *group, struct fv_h5_weight **out, int *n,
                       struct fv_error *err) {
    struct strlist names = {0};
    struct fv_h5_weight *w = NULL;
    int found = 0, rc;
    *out = NULL;
    *n = 0;
    hid_t g = group_open(h, group, err);
    if (g < 0) return FV_ERR_FORMAT;
    rc = attr_strings_group(h, g, group, "weight_names", &names, &found, err);
    if (rc != FV_OK) goto done;
    if (!found) {
        rc = fv_error_set(err, FV_ERR_FORMAT, "%s: group '%s' has no 'weight_names' attribute",
                          h->path, gname(group));
        goto done;
    }
    w = fv_calloc((size_t)names.n, sizeof *w, err);
    if (!w) {
        rc = FV_ERR_NOMEM;
        goto done;
    }
    for (int i = 0; i < names.n; i++) {
        char dpath[2048];
        if (is_root(group))
            snprintf(dpath, sizeof dpath, "%s", names.s[i]);
        else
            snprintf(dpath, sizeof dpath, "%s/%s", group, names.s[i]);
        w[i].name = names.s[i];
        names.s[i] = NULL;
        rc = dataset_read(h, g, dpath, w[i].name, &w[i], err);
        if (rc != FV_OK) goto done;
    }
    *out = w;
    *n = names.n;
    w = NULL;
    rc = FV_OK;
done:
    fv_h5_weights_free(w, names.n);
    strlist_free(&names);
    H5Gclose(g);
    return rc;
}

void fv_h5_weights_free(struct fv_h5_weight *w, int n) {
    if (!w) return;
    for (int i = 0; i < n; i++) {
        free(w[i].name);
        free(w[i].data);
    }
    free(w);
}

int fv_h5_read_dataset(struct fv_h5 *h, const char *path, struct fv_h5_weight *w,
                       struct fv_error *err) {
    memset(w, 0, sizeof *w);
    hid_t root = H5Gopen2(h->file, "/", H5P_DEFAULT);
    if (root < 0) return fv_error_set(err, FV_ERR_FORMAT, "%s: cannot open the root group", h->path);
    int rc = dataset_read(h, root, path, path, w, err);
    H5Gclose(root);
    if (rc == FV_OK && !(w->name = dup_bytes(path, strlen(path), err))) rc = FV_ERR_NOMEM;
    if (rc) {
        free(w->data);
        w->data = NULL;
    }
    return rc;
}

struct list_ctx {
    struct strlist *l;
    int want_groups;
    struct fv_error *err;
    int rc;
};

static herr_t list_one(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    struct list_ctx *c = data;
    (void)info;
    H5O_info_t oi;
    if (H5Oget_info_by_name2(g, name, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0) return 0;
    if ((oi.type == H5O_TYPE_GROUP) != c->want_groups) return 0;
    if (c->l->n >= 1 << 16) {
        c->rc = fv_error_set(c->err, FV_ERR_FORMAT, "more than %d entries in one group", 1 << 16);
        return -1;
    }
    char *s = dup_bytes(name, strlen(name), c->err);
    if (!s || strlist_push(c->l, s, c->err)) {
        c->rc = FV_ERR_NOMEM;
        return -1;
    }
    return 0;
}

int fv_h5_list(struct fv_h5 *h, const char *group, int groups, char ***out, int *n,
               struct fv_error *err) {
    *out = NULL;
    *n = 0;
    hid_t g = group_open_quiet(h, group);
    if (g < 0) return FV_OK;
    struct strlist l = {0};
    struct list_ctx c = {&l, groups, err, FV_OK};
    hsize_t idx = 0;
    if (H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, list_one, &c) < 0 && c.rc == FV_OK)
        c.rc = fv_error_set(err, FV_ERR_FORMAT, "%s: cannot list group '%s'", h->path, gname(group));
    H5Gclose(g);
    if (c.rc) {
        strlist_free(&l);
        return c.rc;
    }
    *out = l.s;
    *n = l.n;
    return FV_OK;
}
