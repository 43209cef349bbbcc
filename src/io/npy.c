/* .npy arrays (NumPy format 1.0/2.0/3.0): little-endian, C order, numeric
 * dtypes converted to float32. The reader streams rows of axis 0, so a
 * dataset need not fit in memory; the writer produces '<f4' version 1.0
 * exactly as numpy.save does (data aligned to 64 bytes). */
#include "featviz/image.h"

#include "core/par.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define NPY_MAX_RANK 8
#define NPY_MAX_HEADER (1u << 20) /* far above any real header */

enum npy_type { T_F2, T_F4, T_F8, T_U1, T_I1, T_U2, T_I2, T_U4, T_I4, T_U8, T_I8, T_B1 };

static const struct {
    const char *code; /* descr without the byte-order character */
    enum npy_type type;
    size_t size;
} npy_types[] = {
    {"f2", T_F2, 2}, {"f4", T_F4, 4}, {"f8", T_F8, 8}, {"u1", T_U1, 1},
    {"i1", T_I1, 1}, {"u2", T_U2, 2}, {"i2", T_I2, 2}, {"u4", T_U4, 4},
    {"i4", T_I4, 4}, {"u8", T_U8, 8}, {"i8", T_I8, 8}, {"b1", T_B1, 1},
};

struct fv_npy_reader {
    FILE *fp;
    char *path;
    enum npy_type type;
    size_t item;      /* bytes per element */
    off_t data_off;   /* where the raw array starts */
    size_t rows;      /* dims[0] (1 for a rank-0 array) */
    size_t row_elems; /* product of dims[1..] */
};

/* ---- header: a Python dict literal, e.g.
 * {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } ---- */

struct npy_header {
    char descr[16];
    int fortran;
    int rank;
    size_t dims[NPY_MAX_RANK];
    int have_descr, have_fortran, have_shape;
};

struct cursor {
    const char *p, *end;
};

static void skip_ws(struct cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int accept(struct cursor *c, char ch) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted Python string literal without escapes, into buf. */
static int parse_str(struct cursor *c, char *buf, size_t cap) {
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return 0;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || n + 1 >= cap) return 0;
        buf[n++] = *c->p++;
    }
    if (c->p >= c->end) return 0;
    c->p++;
    buf[n] = 0;
    return 1;
}

static int parse_shape(struct cursor *c, struct npy_header *h) {
    if (!accept(c, '(')) return 0;
    h->rank = 0;
    for (;;) {
        if (accept(c, ')')) return 1;
        skip_ws(c);
        if (c->p >= c->end || *c->p < '0' || *c->p > '9') return 0;
        size_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            size_t d = (size_t)(*c->p++ - '0');
            if (v > (SIZE_MAX - d) / 10) return 0;
            v = v * 10 + d;
        }
        if (c->p < c->end && *c->p == 'L') c->p++; /* Python 2 longs */
        if (h->rank == NPY_MAX_RANK) return -1;
        h->dims[h->rank++] = v;
        if (!accept(c, ',')) return accept(c, ')');
    }
}

static int parse_header(const char *text, size_t len, struct npy_header *h, const char **why) {
    struct cursor c = {text, text + len};
    memset(h, 0, sizeof *h);
    *why = "header is not a dict";
    if (!accept(&c, '{')) return 0;
    for (;;) {
        if (accept(&c, '}')) break;
        char key[32];
        *why = "bad key in header";
        if (!parse_str(&c, key, sizeof key) || !accept(&c, ':')) return 0;
        if (strcmp(key, "descr") == 0) {
            *why = "bad 'descr' (structured dtypes are not supported)";
            if (!parse_str(&c, h->descr, sizeof h->descr)) return 0;
            h->have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0) {
            skip_ws(&c);
            *why = "bad 'fortran_order'";
            if (c.end - c.p >= 4 && memcmp(c.p, "True", 4) == 0) {
                h->fortran = 1;
                c.p += 4;
            } else if (c.end - c.p >= 5 && memcmp(c.p, "False", 5) == 0) {
                h->fortran = 0;
                c.p += 5;
            } else {
                return 0;
            }
            h->have_fortran = 1;
        } else if (strcmp(key, "shape") == 0) {
            int st = parse_shape(&c, h);
            *why = st < 0 ? "shape has more than 8 dimensions" : "bad 'shape'";
            if (st <= 0) return 0;
            h->have_shape = 1;
        } else {
            *why = "unexpected key in header";
            return 0;
        }
        if (!accept(&c, ',')) {
            *why = "bad header dict";
            if (!accept(&c, '}')) return 0;
            break;
        }
    }
    *why = "header lacks 'descr', 'fortran_order' or 'shape'";
    return h->have_descr && h->have_fortran && h->have_shape;
}

static int lookup_type(const struct npy_header *h, const char *path, enum npy_type *type,
                       size_t *size, struct fv_error *err) {
    const char *d = h->descr;
    char order = d[0];
    if (order != '<' && order != '|' && order != '>' && order != '=')
        return fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: unsupported dtype '%s'", path, d);
    for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++) {
        if (strcmp(d + 1, npy_types[i].code) != 0) continue;
        if ((order == '>' || order == '=') && npy_types[i].size > 1)
            return fv_error_set(err, FV_ERR_UNSUPPORTED,
                                "%s: dtype '%s' is not little-endian; save it with '<%s'", path,
                                d, npy_types[i].code);
        *type = npy_types[i].type;
        *size = npy_types[i].size;
        return FV_OK;
    }
    return fv_error_set(err, FV_ERR_UNSUPPORTED,
                        "%s: unsupported dtype '%s' (need f2, f4, f8, u1, i1, u2, i2, u4, i4, u8, "
                        "i8 or b1)",
                        path, d);
}

/* ---- element conversion (little-endian bytes, any host) ---- */

static uint64_t le_bits(const unsigned char *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = n; i > 0; i--) v = (v << 8) | p[i - 1];
    return v;
}

static float half_to_float(unsigned h) {
    unsigned exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    float v;
    if (exp == 0)
        v = ldexpf((float)man, -24);
    else if (exp == 31)
        v = man ? NAN : INFINITY;
    else
        v = ldexpf((float)(man | 0x400), (int)exp - 25);
    return (h & 0x8000) ? -v : v;
}

static float to_float(enum npy_type t, const unsigned char *p) {
    switch (t) {
    case T_F2:
        return half_to_float((unsigned)le_bits(p, 2));
    case T_F4: {
        uint32_t u = (uint32_t)le_bits(p, 4);
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    case T_F8: {
        uint64_t u = le_bits(p, 8);
        double d;
        memcpy(&d, &u, 8);
        return (float)d;
    }
    case T_U1:
        return (float)p[0];
    case T_I1:
        return (float)(int8_t)p[0];
    case T_U2:
        return (float)le_bits(p, 2);
    case T_I2:
        return (float)(int16_t)(uint16_t)le_bits(p, 2);
    case T_U4:
        return (float)le_bits(p, 4);
    case T_I4:
        return (float)(int32_t)(uint32_t)le_bits(p, 4);
    case T_U8:
        return (float)le_bits(p, 8);
    case T_I8:
        return (float)(int64_t)le_bits(p, 8);
    case T_B1:
        return p[0] ? 1.0f : 0.0f;
    }
    return 0.0f;
}

/* ---- reader ---- */

void fv_npy_close(struct fv_npy_reader *r) {
    if (!r) return;
    if (r->fp) fclose(r->fp);
    free(r->path);
    free(r);
}

/* Reads magic, version and header; leaves r->fp at the data. */
static int read_header(struct fv_npy_reader *r, struct fv_array *a, struct fv_error *err) {
    const char *path = r->path;
    unsigned char pre[12];
    size_t got = fread(pre, 1, 10, r->fp);
    if (got < 6 || memcmp(pre, "\x93NUMPY", 6) != 0)
        return fv_error_set(err, FV_ERR_FORMAT, "%s: not a .npy file (bad magic)", path);
    if (got < 10) return fv_error_set(err, FV_ERR_FORMAT, "%s: truncated .npy header", path);
    int major = pre[6];
    size_t hlen, pre_len = 10;
    if (major == 1) {
        hlen = (size_t)le_bits(pre + 8, 2);
    } else if (major == 2 || major == 3) {
        if (fread(pre + 10, 1, 2, r->fp) != 2)
            return fv_error_set(err, FV_ERR_FORMAT, "%s: truncated .npy header", path);
        hlen = (size_t)le_bits(pre + 8, 4);
        pre_len = 12;
    } else {
        return fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: .npy format version %d.%d not supported",
                            path, major, pre[7]);
    }
    if (hlen > NPY_MAX_HEADER)
        return fv_error_set(err, FV_ERR_FORMAT, "%s: .npy header length %zu is implausible", path,
                            hlen);
    char *text = fv_malloc(hlen + 1, err);
    if (!text) return fv_error_prefix(err, "%s", path);
    if (fread(text, 1, hlen, r->fp) != hlen) {
        free(text);
        return fv_error_set(err, FV_ERR_FORMAT, "%s: truncated .npy header", path);
    }
    text[hlen] = 0;
    struct npy_header h;
    const char *why = "";
    int ok = parse_header(text, hlen, &h, &why);
    free(text);
    if (!ok) return fv_error_set(err, FV_ERR_FORMAT, "%s: bad .npy header: %s", path, why);
    int rc = lookup_type(&h, path, &r->type, &r->item, err);
    if (rc != FV_OK) return rc;
    size_t count = 1, row_elems = 1;
    for (int i = 0; i < h.rank; i++) {
        if (!fv_mul_size(count, h.dims[i], &count) ||
            (i > 0 && !fv_mul_size(row_elems, h.dims[i], &row_elems)))
            return fv_error_set(err, FV_ERR_SHAPE, "%s: array size overflows", path);
    }
    size_t row_bytes;
    if (!fv_mul_size(row_elems, r->item, &row_bytes) || row_elems > SIZE_MAX / sizeof(float))
        return fv_error_set(err, FV_ERR_SHAPE, "%s: array size overflows", path);
    if (h.fortran && h.rank > 1)
        return fv_error_set(err, FV_ERR_UNSUPPORTED,
                            "%s: array is in Fortran order; save it in C order "
                            "(np.ascontiguousarray)",
                            path);
    size_t data_bytes;
    if (!fv_mul_size(count, r->item, &data_bytes) || count > SIZE_MAX / sizeof(float) ||
        data_bytes > (size_t)INT64_MAX - pre_len - hlen)
        return fv_error_set(err, FV_ERR_SHAPE, "%s: array size overflows", path);
    r->data_off = (off_t)(pre_len + hlen);
    r->rows = h.rank ? h.dims[0] : 1;
    r->row_elems = row_elems;

    struct stat st;
    if (fstat(fileno(r->fp), &st) != 0)
        return fv_error_set(err, FV_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    uint64_t want = (uint64_t)(pre_len + hlen) + (uint64_t)data_bytes;
    uint64_t have = (uint64_t)st.st_size;
    if (have < want)
        return fv_error_set(err, FV_ERR_FORMAT,
                            "%s: truncated .npy data (header needs %llu bytes, file has %llu)",
                            path, (unsigned long long)want, (unsigned long long)have);
    if (have > want)
        return fv_error_set(err, FV_ERR_FORMAT,
                            "%s: %llu unexpected bytes after the .npy data", path,
                            (unsigned long long)(have - want));
    if (a) {
        memset(a, 0, sizeof *a);
        a->rank = h.rank;
        for (int i = 0; i < h.rank; i++) a->dims[i] = h.dims[i];
        a->count = count;
        a->data = NULL;
        memcpy(a->dtype, h.descr + 1, 2); /* a known 2-character code (lookup_type) */
        a->dtype[2] = 0;
    }
    return FV_OK;
}

int fv_npy_open(const char *path, struct fv_npy_reader **out, struct fv_array *header_only,
                struct fv_error *err) {
    *out = NULL;
    struct fv_npy_reader *r = fv_calloc(1, sizeof *r, err);
    if (!r) return fv_error_prefix(err, "%s", path);
    size_t n = strlen(path);
    r->path = fv_malloc(n + 1, err);
    if (!r->path) {
        free(r);
        return fv_error_prefix(err, "%s", path);
    }
    memcpy(r->path, path, n + 1);
    r->fp = fopen(path, "rb");
    if (!r->fp) {
        int rc = fv_error_set(err, FV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        fv_npy_close(r);
        return rc;
    }
    int rc = read_header(r, header_only, err);
    if (rc != FV_OK) {
        fv_npy_close(r);
        return rc;
    }
    *out = r;
    return FV_OK;
}

int fv_npy_read_rows(struct fv_npy_reader *r, size_t first, size_t rows, float *out,
                     struct fv_error *err) {
    if (first > r->rows || rows > r->rows - first)
        return fv_error_set(err, FV_ERR_USAGE, "%s: rows [%zu, %zu) out of range (array has %zu)",
                            r->path, first, first + rows, r->rows);
    size_t row_bytes = r->row_elems * r->item; /* fits: checked against the file size */
    off_t at = r->data_off + (off_t)(first * row_bytes);
    if (fseeko(r->fp, at, SEEK_SET) != 0)
        return fv_error_set(err, FV_ERR_IO, "%s: seek failed: %s", r->path, strerror(errno));
    size_t total = rows * r->row_elems;
    enum { CHUNK = 65536 };
    unsigned char buf[CHUNK];
    size_t per = CHUNK / r->item;
    for (size_t done = 0; done < total;) {
        size_t k = total - done < per ? total - done : per;
        size_t got = fread(buf, r->item, k, r->fp);
        if (got != k) {
            if (ferror(r->fp))
                return fv_error_set(err, FV_ERR_IO, "%s: read error: %s", r->path,
                                    strerror(errno));
            return fv_error_set(err, FV_ERR_FORMAT, "%s: truncated .npy data", r->path);
        }
        for (size_t i = 0; i < k; i++) out[done + i] = to_float(r->type, buf + i * r->item);
        done += k;
    }
    return FV_OK;
}

void fv_array_free(struct fv_array *a) {
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

int fv_npy_load(const char *path, struct fv_array *a, struct fv_error *err) {
    struct fv_npy_reader *r;
    struct fv_array hdr;
    memset(a, 0, sizeof *a);
    int rc = fv_npy_open(path, &r, &hdr, err);
    if (rc != FV_OK) return rc;
    hdr.data = fv_malloc(hdr.count * sizeof(float), err);
    if (!hdr.data) {
        fv_npy_close(r);
        return fv_error_prefix(err, "%s", path);
    }
    rc = fv_npy_read_rows(r, 0, r->rows, hdr.data, err);
    fv_npy_close(r);
    if (rc != FV_OK) {
        free(hdr.data);
        return rc;
    }
    *a = hdr;
    return FV_OK;
}

/* ---- writer ---- */

int fv_npy_writer_open(struct fv_npy_writer *w, const char *path, int rank, const size_t *dims,
                       struct fv_error *err) {
    memset(w, 0, sizeof *w);
    if (rank < 0 || rank > NPY_MAX_RANK)
        return fv_error_set(err, FV_ERR_USAGE, "%s: cannot save a rank-%d array", path, rank);
    size_t count = 1;
    for (int i = 0; i < rank; i++)
        if (!fv_mul_size(count, dims[i], &count) || count > SIZE_MAX / 4)
            return fv_error_set(err, FV_ERR_SHAPE, "%s: array size overflows", path);

    /* The dict as numpy 1.24's _write_array_header spells it, including the
     * spare spaces it leaves for growing axis 0 (21 digits). */
    char head[512];
    int n = snprintf(head, sizeof head, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < rank; i++)
        n += snprintf(head + n, sizeof head - (size_t)n, i ? ", %zu" : "%zu", dims[i]);
    n += snprintf(head + n, sizeof head - (size_t)n, rank == 1 ? ",), }" : "), }");
    if (rank > 0) {
        int digits = snprintf(NULL, 0, "%zu", dims[0]);
        for (int i = digits; i < 21; i++) head[n++] = ' ';
    }
    /* magic(6) + version(2) + length(2) + dict + pad + '\n' = multiple of 64 */
    int hlen = n + 1;
    int pad = 64 - (10 + hlen) % 64;
    for (int i = 0; i < pad; i++) head[n++] = ' ';
    head[n++] = '\n';
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(n & 0xff),
                             (unsigned char)(n >> 8)};

    int rc = fv_tmpfile_open(&w->t, path, err);
    if (rc != FV_OK) return rc;
    if (fwrite(pre, 1, 10, w->t.fp) != 10 || fwrite(head, 1, (size_t)n, w->t.fp) != (size_t)n ||
        fflush(w->t.fp) != 0) { /* flushed: fv_npy_writer_write_at writes past it */
        rc = fv_error_set(err, FV_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        fv_tmpfile_abort(&w->t);
        return rc;
    }
    w->left = count;
    w->data_at = 10 + n;
    w->open = 1;
    return FV_OK;
}

int fv_npy_writer_write(struct fv_npy_writer *w, const float *data, size_t count,
                        struct fv_error *err) {
    FV_ASSERT(w->open && count <= w->left);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    int ok = fwrite(data, 4, count, w->t.fp) == count; /* the host's order is the file's */
#else
    unsigned char buf[4096];
    int ok = 1;
    for (size_t done = 0; ok && done < count;) {
        size_t k = count - done < sizeof buf / 4 ? count - done : sizeof buf / 4;
        for (size_t i = 0; i < k; i++) { /* little-endian whatever the host */
            uint32_t u;
            memcpy(&u, &data[done + i], 4);
            for (int b = 0; b < 4; b++) buf[4 * i + (size_t)b] = (unsigned char)(u >> (8 * b));
        }
        ok = fwrite(buf, 4, k, w->t.fp) == k;
        done += k;
    }
#endif
    if (!ok) {
        int rc = fv_error_set(err, FV_ERR_IO, "%s: write failed: %s", w->t.path, strerror(errno));
        fv_npy_writer_abort(w);
        return rc;
    }
    w->left -= count;
    return FV_OK;
}

/* All of buf at file offset off (pwrite may write less at once). */
static int pwrite_all(int fd, const void *buf, size_t len, long long off) {
    const unsigned char *b = buf;
    while (len) {
        ssize_t k = pwrite(fd, b, len, (off_t)off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return 0;
        b += k, len -= (size_t)k, off += k;
    }
    return 1;
}

int fv_npy_writer_write_at(struct fv_npy_writer *w, const float *data, size_t count, size_t at,
                           struct fv_error *err) {
    FV_ASSERT(w->open && count <= w->left);
    int fd = fileno(w->t.fp);
    long long off = w->data_at + 4 * (long long)at;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    int ok = pwrite_all(fd, data, count * 4, off); /* the host's order is the file's */
#else
    unsigned char buf[4096];
    int ok = 1;
    for (size_t done = 0; ok && done < count;) {
        size_t k = count - done < sizeof buf / 4 ? count - done : sizeof buf / 4;
        for (size_t i = 0; i < k; i++) { /* little-endian whatever the host */
            uint32_t u;
            memcpy(&u, &data[done + i], 4);
            for (int b = 0; b < 4; b++) buf[4 * i + (size_t)b] = (unsigned char)(u >> (8 * b));
        }
        ok = pwrite_all(fd, buf, k * 4, off + 4 * (long long)done);
        done += k;
    }
#endif
    if (!ok) return fv_error_set(err, FV_ERR_IO, "%s: write failed: %s", w->t.path, strerror(errno));
    FV_OMP("omp atomic")
    w->left -= count;
    return FV_OK;
}

int fv_npy_writer_commit(struct fv_npy_writer *w, struct fv_error *err) {
    FV_ASSERT(w->open && w->left == 0);
    w->open = 0;
    return fv_tmpfile_commit(&w->t, err);
}

void fv_npy_writer_abort(struct fv_npy_writer *w) {
    if (w->open) fv_tmpfile_abort(&w->t);
    w->open = 0;
}

int fv_npy_save(const char *path, const float *data, int rank, const size_t *dims,
                struct fv_error *err) {
    struct fv_npy_writer w;
    int rc = fv_npy_writer_open(&w, path, rank, dims, err);
    if (rc == FV_OK) rc = fv_npy_writer_write(&w, data, w.left, err);
    if (rc == FV_OK) rc = fv_npy_writer_commit(&w, err);
    return rc;
}
