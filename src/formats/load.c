/* Which front end reads a model file: decided from its first bytes (or from
 * it being a folder), never from its name. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/front_ends.h"
#include "formats/onnx/onnx.h"

static const unsigned char zip_magic[4] = {'P', 'K', 3, 4};

int fv_model_load(struct fv_model *m, const char *path, const struct fv_load_opts *opts,
                  struct fv_error *err) {
    memset(m, 0, sizeof *m);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return fv_keras3_load(m, path, 1, opts, err);
    unsigned char head[8] = {0};
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(head, 1, sizeof head, f) : 0;
    if (f) fclose(f);
    if (got >= sizeof zip_magic && !memcmp(head, zip_magic, sizeof zip_magic))
        return fv_keras3_load(m, path, 0, opts, err);
    size_t len = strlen(path);
    /* ONNX by its first bytes; a file named .onnx that matches nothing gets
     * the ONNX reader's error rather than the HDF5 reader's */
    if (onnx_sniff(head, got) || (len > 5 && !strcmp(path + len - 5, ".onnx") &&
                                  memcmp(head, "\x89HDF\r\n\x1a\n", 8)))
        return fv_onnx_load(m, path, opts, err);
    /* HDF5 and everything unrecognised: the HDF5 reader says what is wrong */
    return fv_keras_h5_load(m, path, opts, err);
}
