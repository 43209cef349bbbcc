/* Reading members of a zip archive (a Keras 3 .keras file) into memory,
 * through libzip (src/formats/keras/zip.c is its only user). */
#ifndef FEATVIZ_ZIP_H
#define FEATVIZ_ZIP_H

#include <stddef.h>

#include "featviz/error.h"

#define FV_ZIP_MAX_ENTRIES 100000
#define FV_ZIP_MAX_RATIO 100                       /* inflated / compressed */
#define FV_ZIP_RATIO_ALLOWANCE ((size_t)16 << 20)  /* bytes always allowed */

struct fv_zip;

/* Opens read-only and checks the archive's consistency; refuses archives
 * with an entry named to leave the folder ("../x", "/x"). Errors name path. */
int fv_zip_open(struct fv_zip **z, const char *path, struct fv_error *err);
void fv_zip_close(struct fv_zip *z);

/* 1 when the archive has a member of that name. */
int fv_zip_has(struct fv_zip *z, const char *name);

/* The member's bytes (malloc'd, NUL-terminated past *len), refused when it
 * declares or inflates to more than max bytes (or far more than it takes in
 * the archive), is missing, damaged or truncated. */
int fv_zip_read(struct fv_zip *z, const char *name, size_t max, void **out, size_t *len,
                struct fv_error *err);

#endif
