/* Format decoders behind fv_image_load (src/io/image.c sniffs the magic bytes
 * and dispatches). Each one fills img (h, w, c floats 0..255, c = 1 or 3) or
 * sets err with a one-line message naming path; img is untouched on failure.
 * Each third-party library stays behind its own file: png.c, jpeg.c. */
#ifndef FEATVIZ_IO_DECODE_H
#define FEATVIZ_IO_DECODE_H

#include "featviz/error.h"
#include "featviz/image.h"

int fv_png_read(const char *path, struct fv_image *img, struct fv_error *err);
int fv_jpeg_read(const char *path, struct fv_image *img, struct fv_error *err);
int fv_pnm_read(const char *path, struct fv_image *img, struct fv_error *err);

#endif
