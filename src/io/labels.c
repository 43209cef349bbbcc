/* Class-name files. Two forms:
 *   - one name per line (trailing spaces and \r dropped, trailing blank lines
 *     ignored, a blank line inside means "no name"); when EVERY line starts
 *     with its own index and a space ("0 cardboard", Teachable Machine's
 *     labels.txt), that prefix is removed;
 *   - a CSV whose header has the columns ClassId and SignName (any order),
 *     with "quoted, fields" allowed. */
#include "featviz/labels.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LABELS_MAX_ID 1000000
#define LABELS_MAX_BYTES (64 << 20)

static char *dup_str(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static char *read_all(const char *path, size_t *len, struct fv_error *err) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fv_error_set(err, FV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (cap - n < 2) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, fp);
        n += got;
        if (got == 0) break;
        if (n > LABELS_MAX_BYTES) { /* /dev/zero, or not a labels file */
            free(buf);
            fclose(fp);
            fv_error_set(err, FV_ERR_FORMAT, "%s: labels file larger than %d MB", path, LABELS_MAX_BYTES >> 20);
            return NULL;
        }
    }
    if (!buf) {
        fclose(fp);
        fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory reading labels", path);
        return NULL;
    }
    if (ferror(fp)) {
        fclose(fp);
        free(buf);
        fv_error_set(err, FV_ERR_IO, "%s: read error", path);
        return NULL;
    }
    fclose(fp);
    buf[n] = 0;
    *len = n;
    return buf;
}

/* Splits text in place into lines without their trailing "\r", spaces, tabs. */
static int split_lines(char *text, size_t len, char ***out, int *n) {
    int cap = 64, cnt = 0;
    char **lines = malloc((size_t)cap * sizeof *lines);
    if (!lines) return -1;
    char *p = text, *end = text + len;
    if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) p += 3; /* UTF-8 BOM */
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *stop = nl ? nl : end;
        char *e = stop;
        while (e > p && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t')) e--;
        *e = 0;
        if (cnt == cap) {
            char **nlines = realloc(lines, (size_t)cap * 2 * sizeof *lines);
            if (!nlines) {
                free(lines);
                return -1;
            }
            lines = nlines;
            cap *= 2;
        }
        lines[cnt++] = p;
        p = nl ? nl + 1 : end;
    }
    while (cnt > 0 && lines[cnt - 1][0] == 0) cnt--; /* trailing blank lines */
    *out = lines;
    *n = cnt;
    return 0;
}

/* ---- CSV ---- */

struct csv_row {
    int n;
    char *f[64]; /* malloc'd fields */
};

static void csv_row_free(struct csv_row *r) {
    for (int i = 0; i < r->n; i++) free(r->f[i]);
    r->n = 0;
}

/* Parses one line; returns NULL or a static reason. */
static const char *csv_parse(const char *s, struct csv_row *r) {
    r->n = 0;
    for (;;) {
        while (*s == ' ' || *s == '\t') s++;
        if (r->n == 64) return "more than 64 fields";
        size_t cap = strlen(s) + 1, k = 0;
        char *f = malloc(cap);
        if (!f) return "out of memory";
        r->f[r->n++] = f;
        if (*s == '"') {
            s++;
            for (;;) {
                if (*s == 0) return "unterminated quoted field";
                if (*s == '"') {
                    if (s[1] != '"') break;
                    s++;
                }
                f[k++] = *s++;
            }
            s++;
            while (*s == ' ' || *s == '\t') s++;
            if (*s != ',' && *s != 0) return "text after a closing quote";
        } else {
            while (*s != ',' && *s != 0) f[k++] = *s++;
            while (k > 0 && (f[k - 1] == ' ' || f[k - 1] == '\t')) k--;
        }
        f[k] = 0;
        if (*s == 0) return NULL;
        s++; /* the comma */
    }
}

static int find_col(const struct csv_row *r, const char *name) {
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->f[i], name) == 0) return i;
    return -1;
}

static int parse_id(const char *s, long *out) {
    if (*s < '0' || *s > '9') return 0;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end != 0 || errno != 0 || v > LABELS_MAX_ID) return 0;
    *out = v;
    return 1;
}

static int load_csv(const char *path, char **lines, int n, int id_col, int name_col,
                    struct fv_labels *l, struct fv_error *err) {
    struct csv_row row = {0};
    int need = (id_col > name_col ? id_col : name_col) + 1;
    for (int i = 1; i < n; i++) {
        if (lines[i][0] == 0) continue;
        const char *why = csv_parse(lines[i], &row);
        if (why) {
            csv_row_free(&row);
            return fv_error_set(err, FV_ERR_FORMAT, "%s:%d: %s", path, i + 1, why);
        }
        if (row.n < need) {
            int got = row.n;
            csv_row_free(&row);
            return fv_error_set(err, FV_ERR_FORMAT, "%s:%d: expected at least %d fields, found %d",
                                path, i + 1, need, got);
        }
        long id;
        if (!parse_id(row.f[id_col], &id)) {
            int rc = fv_error_set(err, FV_ERR_FORMAT,
                                  "%s:%d: ClassId '%.64s' is not an integer in 0..%d", path, i + 1,
                                  row.f[id_col], LABELS_MAX_ID);
            csv_row_free(&row);
            return rc;
        }
        if (id >= l->n) {
            char **nn = realloc(l->names, (size_t)(id + 1) * sizeof *nn);
            if (!nn) {
                csv_row_free(&row);
                return fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory", path);
            }
            for (long k = l->n; k <= id; k++) nn[k] = NULL;
            l->names = nn;
            l->n = (int)id + 1;
        }
        if (l->names[id]) {
            csv_row_free(&row);
            return fv_error_set(err, FV_ERR_FORMAT, "%s:%d: duplicate ClassId %ld", path, i + 1,
                                id);
        }
        l->names[id] = row.f[name_col];
        row.f[name_col] = NULL;
        csv_row_free(&row);
    }
    if (l->n == 0) return fv_error_set(err, FV_ERR_FORMAT, "%s: CSV has no class rows", path);
    return FV_OK;
}

/* ---- one name per line ---- */

/* Length of the "<i> " prefix of line i, or 0. */
static size_t index_prefix(const char *s, int i) {
    char num[16];
    int k = snprintf(num, sizeof num, "%d", i);
    if (strncmp(s, num, (size_t)k) != 0 || (s[k] != ' ' && s[k] != '\t')) return 0;
    return (size_t)k + 1;
}

static int load_plain(const char *path, char **lines, int n, struct fv_labels *l,
                      struct fv_error *err) {
    int indexed = 1;
    for (int i = 0; i < n && indexed; i++) indexed = index_prefix(lines[i], i) > 0;
    l->names = calloc((size_t)n, sizeof *l->names);
    if (!l->names) return fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory", path);
    l->n = n;
    for (int i = 0; i < n; i++) {
        const char *s = lines[i] + (indexed ? index_prefix(lines[i], i) : 0);
        if (!indexed && *s == 0) continue; /* blank line: class without a name */
        l->names[i] = dup_str(s, strlen(s));
        if (!l->names[i]) return fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory", path);
    }
    return FV_OK;
}

int fv_labels_load(const char *path, struct fv_labels *l, struct fv_error *err) {
    memset(l, 0, sizeof *l);
    size_t len;
    char *text = read_all(path, &len, err);
    if (!text) return err ? err->code : FV_ERR_IO;
    if (memchr(text, 0, len)) {
        free(text);
        return fv_error_set(err, FV_ERR_FORMAT, "%s: binary file, not a list of class names", path);
    }
    char **lines = NULL;
    int n = 0, rc;
    if (split_lines(text, len, &lines, &n) != 0) {
        free(text);
        return fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory", path);
    }
    if (n == 0) {
        rc = fv_error_set(err, FV_ERR_FORMAT, "%s: no class names in file", path);
        goto done;
    }
    struct csv_row head = {0};
    int id_col = -1, name_col = -1;
    if (strchr(lines[0], ',') && !csv_parse(lines[0], &head)) {
        id_col = find_col(&head, "ClassId");
        name_col = find_col(&head, "SignName");
    }
    csv_row_free(&head);
    if ((id_col >= 0) != (name_col >= 0)) {
        rc = fv_error_set(err, FV_ERR_FORMAT, "%s:1: CSV header needs both ClassId and SignName",
                          path);
        goto done;
    }
    rc = id_col >= 0 ? load_csv(path, lines, n, id_col, name_col, l, err)
                     : load_plain(path, lines, n, l, err);
done:
    free(lines);
    free(text);
    if (rc != FV_OK) fv_labels_free(l);
    return rc;
}

void fv_labels_free(struct fv_labels *l) {
    if (!l) return;
    for (int i = 0; i < l->n; i++) free(l->names[i]);
    free(l->names);
    l->names = NULL;
    l->n = 0;
}

const char *fv_labels_get(const struct fv_labels *l, int i) {
    if (!l || i < 0 || i >= l->n) return NULL;
    return l->names[i];
}
