/* Format decoders behind fv_image_load (src/io/image.c sniffs the magic bytes
 * and dispatches). Each one fills img (h, w, c floats 0..255, c = 1 or 3) or
 * sets err with a one-line message naming path; img is untouched on failure.
 * Each third-party library stays behind its own file: png.c, jpeg.c. */
#ifndef FEATVIZ_IO_DECODE_H
#define FEATVIZ_IO_DECODE_H

#include <stdio.h>

#include "featviz/error.h"
#include "featviz/image.h"

/* Checks a declared w x h before anything is allocated: refuses images above
 * the pixel limit (fv_image_set_max_pixels) and images that a file of
 * file_bytes cannot hold, at most px_per_byte pixels per byte of file (the
 * format's best compression); errors name path and the limit. */
int fv_image_check_dims(const char *path, const char *format, size_t w, size_t h,
                        size_t file_bytes, double px_per_byte, struct fv_error *err);
/* Size of an open file in bytes (SIZE_MAX when it is not a regular file). */
size_t fv_file_bytes(FILE *fp);

int fv_png_read(const char *path, struct fv_image *img, struct fv_error *err);
int fv_jpeg_read(const char *path, struct fv_image *img, struct fv_error *err);
int fv_pnm_read(const char *path, struct fv_image *img, struct fv_error *err);

#endif
