/* Image loading by content (magic bytes), image file names, directory listing. */
#include "io/decode.h"

#include <dirent.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* 50 megapixels: a 4K photo has 8.3; images are decoded to floats (12 bytes
 * a pixel for RGB), so this is 600 MB before any work. */
static size_t max_pixels = FV_IMAGE_MAX_PIXELS_DEFAULT;

void fv_image_set_max_pixels(size_t n) { max_pixels = n ? n : FV_IMAGE_MAX_PIXELS_DEFAULT; }
size_t fv_image_max_pixels(void) { return max_pixels; }

size_t fv_file_bytes(FILE *fp) {
    struct stat st;
    if (fstat(fileno(fp), &st) || !S_ISREG(st.st_mode)) return SIZE_MAX;
    return (size_t)st.st_size;
}

int fv_image_check_dims(const char *path, const char *format, size_t w, size_t h,
                        size_t file_bytes, double px_per_byte, struct fv_error *err) {
    double px = (double)w * (double)h;
    if (px > (double)max_pixels)
        return fv_error_set(err, FV_ERR_FORMAT,
                            "%s: %s of %zux%zu pixels is above the limit of %zu pixels "
                            "(raise it with --max-image-pixels N, key model.max_image_pixels)",
                            path, format, w, h, max_pixels);
    /* a little slack for tiny images */
    if (file_bytes != SIZE_MAX && px > ((double)file_bytes + 64.0) * px_per_byte)
        return fv_error_set(err, FV_ERR_FORMAT,
                            "%s: %s declares %zux%zu pixels, more than its %zu bytes can hold "
                            "(truncated or corrupt)",
                            path, format, w, h, file_bytes);
    return FV_OK;
}

enum image_kind { KIND_UNKNOWN, KIND_PNG, KIND_JPEG, KIND_PNM };

static enum image_kind sniff(const unsigned char *b, size_t n) {
    static const unsigned char png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 8 && memcmp(b, png_magic, 8) == 0) return KIND_PNG;
    if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return KIND_JPEG;
    if (n >= 2 && b[0] == 'P' && (b[1] == '2' || b[1] == '3' || b[1] == '5' || b[1] == '6'))
        return KIND_PNM;
    return KIND_UNKNOWN;
}

int fv_image_load(const char *path, struct fv_image *img, struct fv_error *err) {
    memset(img, 0, sizeof *img);
    FILE *fp = fopen(path, "rb");
    if (!fp) return fv_error_set(err, FV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char head[8];
    size_t n = fread(head, 1, sizeof head, fp);
    int bad = ferror(fp);
    fclose(fp);
    if (bad) return fv_error_set(err, FV_ERR_IO, "%s: read error", path);
    if (n == 0) return fv_error_set(err, FV_ERR_FORMAT, "%s: empty file, not an image", path);
    switch (sniff(head, n)) {
    case KIND_PNG:
        return fv_png_read(path, img, err);
    case KIND_JPEG:
        return fv_jpeg_read(path, img, err);
    case KIND_PNM:
        return fv_pnm_read(path, img, err);
    default:
        return fv_error_set(err, FV_ERR_FORMAT, "%s: not a PNG, PPM/PGM or JPEG image", path);
    }
}

void fv_image_free(struct fv_image *img) {
    if (!img) return;
    free(img->data);
    img->data = NULL;
    img->h = img->w = img->c = 0;
}

int fv_is_image_name(const char *path) {
    static const char *const exts[] = {".png", ".ppm", ".pgm", ".pnm", ".jpg", ".jpeg"};
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base) return 0; /* no extension, or a hidden file ".png" */
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (strcasecmp(dot, exts[i]) == 0) return 1;
    return 0;
}

void fv_paths_free(char **p, int n) {
    if (!p) return;
    for (int i = 0; i < n; i++) free(p[i]);
    free(p);
}

static int cmp_paths(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int fv_list_images(const char *dir, char ***out, int *n, struct fv_error *err) {
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return fv_error_set(err, FV_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    char **list = NULL;
    int count = 0, cap = 0, rc = FV_OK;
    size_t dlen = strlen(dir);
    int slash = dlen > 0 && dir[dlen - 1] == '/';
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) break;
        if (!fv_is_image_name(e->d_name)) continue;
        size_t len = dlen + 1 + strlen(e->d_name) + 1;
        char *full = malloc(len);
        if (!full) {
            rc = fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory listing directory", dir);
            goto fail;
        }
        snprintf(full, len, "%s%s%s", dir, slash ? "" : "/", e->d_name);
        struct stat st;
        if (stat(full, &st) != 0 || !S_ISREG(st.st_mode)) { /* skip dirs, broken links */
            free(full);
            continue;
        }
        if (count == cap) {
            int ncap = cap ? 2 * cap : 16;
            char **nl = realloc(list, (size_t)ncap * sizeof *nl);
            if (!nl) {
                free(full);
                rc = fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory listing directory", dir);
                goto fail;
            }
            list = nl;
            cap = ncap;
        }
        list[count++] = full;
    }
    if (errno != 0) {
        rc = fv_error_set(err, FV_ERR_IO, "%s: cannot read directory: %s", dir, strerror(errno));
        goto fail;
    }
    closedir(d);
    if (count == 0) {
        free(list);
        return fv_error_set(err, FV_ERR_IO,
                            "%s: no image files (.png .ppm .pgm .pnm .jpg .jpeg) in directory", dir);
    }
    qsort(list, (size_t)count, sizeof *list, cmp_paths);
    *out = list;
    *n = count;
    return FV_OK;
fail:
    closedir(d);
    fv_paths_free(list, count);
    return rc;
}
