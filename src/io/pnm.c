/* PPM/PGM reading (Netpbm): P5/P6 binary and P2/P3 ASCII, maxval 1..65535
 * (two big-endian bytes per sample above 255), '#' comments in the header.
 * Samples are scaled to 0..255 as v * 255 / maxval. */
#include "io/decode.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Skips whitespace and '#' comments; returns the next character (not consumed). */
static int pnm_peek(FILE *fp) {
    int ch;
    for (;;) {
        ch = getc(fp);
        if (ch == '#') {
            while (ch != '\n' && ch != '\r' && ch != EOF) ch = getc(fp);
            continue;
        }
        if (ch == EOF || !isspace(ch)) break;
    }
    if (ch != EOF) ungetc(ch, fp);
    return ch;
}

/* Reads a decimal number after optional whitespace/comments.
 * Returns 1 ok, 0 no digits, -1 end of file, -2 larger than max. */
static int pnm_number(FILE *fp, unsigned long max, unsigned long *out) {
    int ch = pnm_peek(fp);
    if (ch == EOF) return -1;
    if (!isdigit(ch)) return 0;
    unsigned long v = 0;
    int big = 0;
    while ((ch = getc(fp)) != EOF && isdigit(ch)) {
        if (v > (max - (unsigned long)(ch - '0')) / 10)
            big = 1;
        else
            v = v * 10 + (unsigned long)(ch - '0');
    }
    if (ch != EOF) ungetc(ch, fp);
    if (big) return -2;
    *out = v;
    return 1;
}

static int pnm_header_field(FILE *fp, const char *path, const char *what, unsigned long max,
                            unsigned long *out, struct fv_error *err) {
    int st = pnm_number(fp, max, out);
    if (st == 1) return FV_OK;
    if (st == -1) return fv_error_set(err, FV_ERR_FORMAT, "%s: truncated header (no %s)", path, what);
    if (st == -2)
        return fv_error_set(err, FV_ERR_FORMAT, "%s: bad header: %s larger than %lu", path, what,
                            max);
    return fv_error_set(err, FV_ERR_FORMAT, "%s: bad header: %s is not a number", path, what);
}

/* samples (n) -> out (n) floats 0..255 */
static int pnm_read_binary(FILE *fp, const char *path, size_t n, unsigned long maxval,
                           float *out, struct fv_error *err) {
    size_t bps = maxval > 255 ? 2 : 1;
    size_t bytes;
    if (!fv_mul_size(n, bps, &bytes))
        return fv_error_set(err, FV_ERR_FORMAT, "%s: image too large", path);
    unsigned char *buf = fv_malloc(bytes, err);
    if (!buf) return fv_error_prefix(err, "%s", path);
    size_t got = fread(buf, 1, bytes, fp);
    if (got != bytes) {
        free(buf);
        if (ferror(fp))
            return fv_error_set(err, FV_ERR_IO, "%s: read error: %s", path, strerror(errno));
        return fv_error_set(err, FV_ERR_FORMAT,
                            "%s: truncated pixel data (expected %zu bytes, got %zu)", path, bytes,
                            got);
    }
    double k = 255.0 / (double)maxval;
    for (size_t i = 0; i < n; i++) {
        unsigned v = bps == 1 ? buf[i] : ((unsigned)buf[2 * i] << 8) | buf[2 * i + 1];
        if (v > maxval) {
            free(buf);
            return fv_error_set(err, FV_ERR_FORMAT, "%s: sample %zu is %u, above maxval %lu",
                                path, i, v, maxval);
        }
        out[i] = maxval == 255 ? (float)v : (float)(v * k);
    }
    free(buf);
    return FV_OK;
}

static int pnm_read_ascii(FILE *fp, const char *path, size_t n, unsigned long maxval, float *out,
                          struct fv_error *err) {
    double k = 255.0 / (double)maxval;
    for (size_t i = 0; i < n; i++) {
        unsigned long v = 0;
        int st = pnm_number(fp, maxval, &v);
        if (st == -1)
            return fv_error_set(err, FV_ERR_FORMAT,
                                "%s: truncated pixel data (expected %zu samples, got %zu)", path,
                                n, i);
        if (st == -2)
            return fv_error_set(err, FV_ERR_FORMAT, "%s: sample %zu is above maxval %lu", path, i,
                                maxval);
        if (st == 0)
            return fv_error_set(err, FV_ERR_FORMAT, "%s: sample %zu is not a number", path, i);
        out[i] = maxval == 255 ? (float)v : (float)((double)v * k);
    }
    return FV_OK;
}

int fv_pnm_read(const char *path, struct fv_image *img, struct fv_error *err) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return fv_error_set(err, FV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    float *data = NULL;
    int rc;
    int m0 = getc(fp), m1 = getc(fp);
    if (m0 != 'P' || (m1 != '2' && m1 != '3' && m1 != '5' && m1 != '6')) {
        rc = fv_error_set(err, FV_ERR_FORMAT, "%s: not a P2/P3/P5/P6 PPM/PGM file", path);
        goto done;
    }
    int c = (m1 == '3' || m1 == '6') ? 3 : 1;
    int binary = m1 == '5' || m1 == '6';
    unsigned long w, h, maxval;
    if ((rc = pnm_header_field(fp, path, "width", INT_MAX, &w, err)) != FV_OK ||
        (rc = pnm_header_field(fp, path, "height", INT_MAX, &h, err)) != FV_OK ||
        (rc = pnm_header_field(fp, path, "maxval", 65535, &maxval, err)) != FV_OK)
        goto done;
    if (w == 0 || h == 0 || maxval == 0) {
        rc = fv_error_set(err, FV_ERR_FORMAT, "%s: bad header: width %lu, height %lu, maxval %lu",
                          path, w, h, maxval);
        goto done;
    }
    if (binary) { /* exactly one whitespace character before the raster */
        int ch = getc(fp);
        if (ch == EOF || !isspace(ch)) {
            rc = fv_error_set(err, FV_ERR_FORMAT,
                              ch == EOF ? "%s: truncated pixel data (no raster)"
                                        : "%s: bad header: no whitespace after maxval",
                              path);
            goto done;
        }
    }
    /* binary rasters hold each sample in 1 or 2 bytes; ASCII ones need a
     * digit per sample */
    double px_per_byte = 1.0 / ((binary && maxval > 255 ? 2.0 : 1.0) * c);
    if ((rc = fv_image_check_dims(path, binary ? "binary PPM/PGM" : "ASCII PPM/PGM", w, h,
                                  fv_file_bytes(fp), px_per_byte, err)))
        goto done;
    size_t n;
    if (!fv_mul_size((size_t)w * (size_t)h, (size_t)c, &n) || n > SIZE_MAX / sizeof(float)) {
        rc = fv_error_set(err, FV_ERR_FORMAT, "%s: image too large (%lux%lu)", path, w, h);
        goto done;
    }
    data = fv_malloc(n * sizeof(float), err);
    if (!data) {
        rc = fv_error_prefix(err, "%s", path);
        goto done;
    }
    rc = binary ? pnm_read_binary(fp, path, n, maxval, data, err)
                : pnm_read_ascii(fp, path, n, maxval, data, err);
    if (rc != FV_OK) goto done;
    img->h = (int)h;
    img->w = (int)w;
    img->c = c;
    img->data = data;
    data = NULL;
done:
    free(data);
    fclose(fp);
    return rc;
}
