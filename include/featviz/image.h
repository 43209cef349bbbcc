/* Decoded images and raw arrays.
 * Images are float, row-major (H, W, C), values 0..255 (16-bit sources are
 * scaled to that range), C = 1 (gray) or 3 (RGB). Alpha is dropped and
 * palettes are expanded, as Keras' load_img (PIL convert) does. */
#ifndef FEATVIZ_IMAGE_H
#define FEATVIZ_IMAGE_H

#include <stddef.h>

#include "featviz/error.h"
#include "featviz/tmpfile.h"

struct fv_image {
    int h, w, c;
    float *data;   /* (h, w, c), malloc'd */
};

/* PNG (8/16-bit, gray, gray+alpha, RGB, RGBA, palette), PPM/PGM (P5/P6, maxval
 * up to 65535), JPEG; chosen by content, not by extension. */
int fv_image_load(const char *path, struct fv_image *img, struct fv_error *err);
void fv_image_free(struct fv_image *img);
/* The largest image (width x height) the decoders accept, checked before
 * they allocate (model.max_image_pixels); 0 restores the default. */
#define FV_IMAGE_MAX_PIXELS_DEFAULT ((size_t)50000000)
void fv_image_set_max_pixels(size_t n);
size_t fv_image_max_pixels(void);
/* 1 if the file name has an image extension we read (.png .ppm .pgm .pnm .jpg .jpeg). */
int fv_is_image_name(const char *path);

/* Writes 8-bit PNG from (h, w, c) bytes, c = 1, 3 or 4, through a temporary
 * file renamed into place: never a half-written file. */
int fv_png_write(const char *path, const unsigned char *pix, int h, int w, int c,
                 struct fv_error *err);
/* Writes an 8-bit grayscale PNG from (h, w) bytes fast (zlib level 1, the
 * Sub filter), with tEXt chunks key = value (at most 8), atomically as
 * fv_png_write. */
struct fv_png_text {
    const char *key, *value;
};
int fv_png_write_gray8(const char *path, const unsigned char *pix, int h, int w,
                       const struct fv_png_text *text, int n_text, struct fv_error *err);

/* Lists a directory's image files, sorted by name (strcmp). *out: malloc'd
 * array of malloc'd full paths. An empty directory is an error. */
int fv_list_images(const char *dir, char ***out, int *n, struct fv_error *err);
void fv_paths_free(char **p, int n);

/* ---- .npy (NumPy format 1.0/2.0/3.0, little-endian, C order) ---- */
struct fv_array {
    int rank;
    size_t dims[8];
    size_t count;
    float *data;   /* converted to float32 from f4, f8, u1, i1, u2, i2, i4, i8, f2 */
    char dtype[4]; /* NumPy type code without byte order: "f4", "u1", ... */
};
int fv_npy_load(const char *path, struct fv_array *a, struct fv_error *err);
/* Streams rows: opens, reads the header; then fv_npy_read_rows reads `rows`
 * items along axis 0 starting at `first`. For datasets bigger than memory. */
struct fv_npy_reader;
int fv_npy_open(const char *path, struct fv_npy_reader **r, struct fv_array *header_only,
                struct fv_error *err);
int fv_npy_read_rows(struct fv_npy_reader *r, size_t first, size_t rows, float *out,
                     struct fv_error *err);
void fv_npy_close(struct fv_npy_reader *r);
void fv_array_free(struct fv_array *a);
/* Writes float32 .npy with the given shape, via temporary file and rename. */
int fv_npy_save(const char *path, const float *data, int rank, const size_t *dims,
                struct fv_error *err);

/* Streaming .npy writer: the header first (the shape is known), then the
 * data in pieces, e.g. one batch at a time; committed only when complete.
 * A writer is written either in order (fv_npy_writer_write) or in pieces at
 * their places (fv_npy_writer_write_at, from any thread), never both. */
struct fv_npy_writer {
    struct fv_tmpfile t;
    size_t left;       /* values still to write */
    long long data_at; /* file offset of the first value */
    int open;
};
int fv_npy_writer_open(struct fv_npy_writer *w, const char *path, int rank, const size_t *dims,
                       struct fv_error *err);
int fv_npy_writer_write(struct fv_npy_writer *w, const float *data, size_t count,
                        struct fv_error *err);
/* Values at..at+count-1 of the array (threads may write disjoint pieces at
 * once); on error the writer stays open for the caller to abort. */
int fv_npy_writer_write_at(struct fv_npy_writer *w, const float *data, size_t count, size_t at,
                           struct fv_error *err);
int fv_npy_writer_commit(struct fv_npy_writer *w, struct fv_error *err);
void fv_npy_writer_abort(struct fv_npy_writer *w);

#endif
