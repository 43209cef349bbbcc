/* Keras 3 native files: a .keras zip archive (metadata.json, config.json,
 * model.weights.h5), or the same archive unzipped into a folder. The archive
 * is read in memory, never extracted (format notes §9). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "formats/front_ends.h"
#include "formats/keras/keras.h"
#include "formats/keras/zip.h"

#define MAX_METADATA ((size_t)1 << 20)
#define MAX_WEIGHTS ((size_t)8 << 30)

/* keras_version from metadata.json (malloc'd; NULL when absent or unreadable:
 * the metadata is informative only). */
static char *metadata_version(const char *text) {
    json_error_t jerr;
    json_t *root = text ? json_loads(text, 0, &jerr) : NULL;
    const json_t *v = json_object_get(root, "keras_version");
    char *out = json_is_string(v) ? strdup(json_string_value(v)) : NULL;
    json_decref(root);
    return out;
}

static int load_zip(struct fv_model *m, const char *path, const struct fv_load_opts *opts,
                    struct fv_error *err) {
    struct fv_zip *z = NULL;
    char *meta = NULL, *config = NULL;
    void *weights = NULL;
    size_t len;
    struct fv_h5 *h5 = NULL;
    int rc = fv_zip_open(&z, path, err);
    if (rc) return rc;
    if (!fv_zip_has(z, "config.json")) {
        rc = fv_error_set(err, FV_ERR_FORMAT, "%s: not a Keras model archive: it has no config.json", path);
        goto done;
    }
    if (!fv_zip_has(z, "model.weights.h5")) {
        rc = fv_error_set(err, FV_ERR_FORMAT, "%s: the archive has no model.weights.h5 (the weights)", path);
        goto done;
    }
    if (fv_zip_has(z, "metadata.json") &&
        (rc = fv_zip_read(z, "metadata.json", MAX_METADATA, (void **)&meta, &len, err)))
        goto done;
    if ((rc = fv_zip_read(z, "config.json", FV_KERAS_MAX_JSON, (void **)&config, &len, err))) goto done;
    if ((rc = fv_zip_read(z, "model.weights.h5", MAX_WEIGHTS, &weights, &len, err))) goto done;
    char name[1200];
    snprintf(name, sizeof name, "%s/model.weights.h5", path);
    rc = fv_h5_open_image(&h5, weights, len, name, err);
    free(weights);
    weights = NULL;
    if (rc) goto done;
    fv_h5_set_max_bytes(h5, opts && opts->max_bytes ? opts->max_bytes : FV_MODEL_MAX_BYTES);
    char *version = metadata_version(meta);
    struct fv_keras_source src = {.path = path, .format = "Keras 3 archive", .config = config,
                                  .config_what = "config.json", .version = version,
                                  .h5 = h5, .keras3_store = 1};
    rc = fv_keras_build(m, &src, opts, err);
    free(version);
done:
    fv_h5_close(h5);
    free(weights);
    free(meta);
    free(config);
    fv_zip_close(z);
    return rc;
}

static int load_folder(struct fv_model *m, const char *path, const struct fv_load_opts *opts,
                       struct fv_error *err) {
    char cfg_path[1100], meta_path[1100], w_path[1100];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", path);
    snprintf(meta_path, sizeof meta_path, "%s/metadata.json", path);
    snprintf(w_path, sizeof w_path, "%s/model.weights.h5", path);
    char *config = NULL, *meta = NULL;
    struct fv_h5 *h5 = NULL;
    FILE *f = fopen(cfg_path, "rb");
    if (!f)
        return fv_error_set(err, FV_ERR_FORMAT, "%s: a folder, but not an unzipped Keras model: it has no config.json", path);
    fclose(f);
    int rc = fv_read_text_file(cfg_path, FV_KERAS_MAX_JSON, &config, "config.json", err);
    if (rc) goto done;
    struct fv_error ignore;
    if (fv_read_text_file(meta_path, MAX_METADATA, &meta, "metadata.json", &ignore)) meta = NULL;
    if ((f = fopen(w_path, "rb")) == NULL) {
        rc = fv_error_set(err, FV_ERR_FORMAT, "%s: the folder has no model.weights.h5 (the weights)", path);
        goto done;
    }
    fclose(f);
    if ((rc = fv_h5_open(&h5, w_path, err))) goto done;
    fv_h5_set_max_bytes(h5, opts && opts->max_bytes ? opts->max_bytes : FV_MODEL_MAX_BYTES);
    char *version = metadata_version(meta);
    struct fv_keras_source src = {.path = path, .format = "Keras 3 folder", .config = config,
                                  .config_file = cfg_path, .config_what = "config.json",
                                  .version = version, .h5 = h5, .keras3_store = 1};
    rc = fv_keras_build(m, &src, opts, err);
    free(version);
done:
    fv_h5_close(h5);
    free(meta);
    free(config);
    return rc;
}

int fv_keras3_load(struct fv_model *m, const char *path, int folder,
                   const struct fv_load_opts *opts, struct fv_error *err) {
    memset(m, 0, sizeof *m);
    return folder ? load_folder(m, path, opts, err) : load_zip(m, path, opts, err);
}
