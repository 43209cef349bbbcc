/* The only file that includes <zip.h> (libzip): reads members of a .keras
 * archive into memory. Nothing is extracted to disk, and what a member may
 * inflate to is capped before and while it is read (zip bombs). */
#include "formats/keras/zip.h"

#include <stdlib.h>
#include <string.h>

#include <zip.h>

struct fv_zip {
    zip_t *z;
    char *path;
};

/* A member name that would leave the folder it is extracted into. */
static int escapes(const char *name) {
    if (name[0] == '/' || name[0] == '\\' || strchr(name, ':')) return 1;
    for (const char *p = name; *p;) {
        size_t len = strcspn(p, "/\\");
        if (len == 2 && p[0] == '.' && p[1] == '.') return 1;
        p += len;
        if (*p) p++;
    }
    return 0;
}

int fv_zip_open(struct fv_zip **out, const char *path, struct fv_error *err) {
    *out = NULL;
    int ze = 0;
    zip_t *z = zip_open(path, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
    if (!z) {
        zip_error_t e;
        zip_error_init_with_code(&e, ze);
        int rc = fv_error_set(err, ze == ZIP_ER_OPEN || ze == ZIP_ER_NOENT ? FV_ERR_IO : FV_ERR_FORMAT,
                              "%s: not a readable zip archive, truncated or damaged (%s)", path, zip_error_strerror(&e));
        zip_error_fini(&e);
        return rc;
    }
    zip_int64_t n = zip_get_num_entries(z, 0);
    if (n > FV_ZIP_MAX_ENTRIES) {
        zip_discard(z);
        return fv_error_set(err, FV_ERR_FORMAT, "%s: archive has %lld entries (at most %d)", path,
                            (long long)n, FV_ZIP_MAX_ENTRIES);
    }
    for (zip_int64_t i = 0; i < n; i++) {
        const char *name = zip_get_name(z, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
        if (!name || escapes(name)) {
            int rc = fv_error_set(err, FV_ERR_FORMAT, "%s: archive entry '%s' points outside the archive",
                                  path, name ? name : "?");
            zip_discard(z); /* owns name */
            return rc;
        }
    }
    struct fv_zip *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        free(r);
        zip_discard(z);
        return fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory", path);
    }
    r->z = z;
    *out = r;
    return FV_OK;
}

void fv_zip_close(struct fv_zip *z) {
    if (!z) return;
    zip_discard(z->z);
    free(z->path);
    free(z);
}

int fv_zip_has(struct fv_zip *z, const char *name) {
    return zip_name_locate(z->z, name, 0) >= 0;
}

int fv_zip_read(struct fv_zip *z, const char *name, size_t max, void **out, size_t *len,
                struct fv_error *err) {
    *out = NULL;
    *len = 0;
    zip_int64_t idx = zip_name_locate(z->z, name, 0);
    if (idx < 0) return fv_error_set(err, FV_ERR_FORMAT, "%s: the archive has no %s", z->path, name);
    zip_stat_t st;
    if (zip_stat_index(z->z, (zip_uint64_t)idx, 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE))
        return fv_error_set(err, FV_ERR_FORMAT, "%s: cannot read the size of %s", z->path, name);
    /* Inflating may not give more than the member declares, nor more than
     * FV_ZIP_MAX_RATIO times what it takes in the archive (past a small
     * allowance): real weights and JSON compress by far less. */
    size_t cap = max;
    if ((st.valid & ZIP_STAT_COMP_SIZE) && st.comp_method != ZIP_CM_STORE) {
        zip_uint64_t by_ratio = st.comp_size * FV_ZIP_MAX_RATIO + FV_ZIP_RATIO_ALLOWANCE;
        if (by_ratio < cap) cap = (size_t)by_ratio;
    }
    if (st.size > cap)
        return fv_error_set(err, FV_ERR_FORMAT, "%s: %s declares %llu bytes, more than the %zu featviz accepts for it",
                            z->path, name, (unsigned long long)st.size, cap);
    zip_file_t *f = zip_fopen_index(z->z, (zip_uint64_t)idx, 0);
    if (!f)
        return fv_error_set(err, FV_ERR_FORMAT, "%s: cannot read %s (%s)", z->path, name,
                            zip_strerror(z->z));
    size_t want = (size_t)st.size;
    unsigned char *buf = malloc(want + 1);
    int rc = FV_OK;
    if (!buf) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory reading %s", z->path, name);
        goto done;
    }
    size_t got = 0;
    for (;;) {
        /* one byte more than declared: libzip then reports a size mismatch */
        zip_int64_t r = zip_fread(f, buf + got, want + 1 - got);
        if (r < 0) {
            rc = fv_error_set(err, FV_ERR_FORMAT, "%s: %s is damaged (%s)", z->path, name,
                              zip_file_strerror(f));
            goto done;
        }
        if (r == 0) break;
        got += (size_t)r;
        if (got > want) {
            rc = fv_error_set(err, FV_ERR_FORMAT, "%s: %s inflates to more than it declares",
                              z->path, name);
            goto done;
        }
    }
    if (got != want) {
        rc = fv_error_set(err, FV_ERR_FORMAT, "%s: %s is truncated", z->path, name);
        goto done;
    }
    buf[got] = 0;
    *out = buf;
    *len = got;
    buf = NULL;
done:
    free(buf);
    zip_fclose(f);
    return rc;
}
