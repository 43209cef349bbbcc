/* Shared by the jobs: the model, preprocessing and labels a job's settings ask for. */
#ifndef FEATVIZ_JOBS_COMMON_H
#define FEATVIZ_JOBS_COMMON_H

#include "featviz/labels.h"
#include "featviz/formats.h"
#include "featviz/preprocess.h"
#include "featviz/settings.h"

/* Loads model.path with model.arch, model.lambda and model.flip_kernels. */
int job_load_model(const struct fv_settings *s, struct fv_model *m, struct fv_error *err);
/* Builds the preprocessing from [model]; checks mean/std lengths against channels c. */
int job_preproc(const struct fv_settings *s, int c, struct fv_preproc *p, struct fv_error *err);
/* Loads model.labels if set (l->n = 0 otherwise). */
int job_labels(const struct fv_settings *s, struct fv_labels *l, struct fv_error *err);
/* Creates a directory and its parents. */
int job_mkdirs(const char *dir, struct fv_error *err);
/* A layer name usable as a file name ('/' of nested layers -> '_'). */
void job_safe_name(const char *layer, char *out, size_t cap);
/* snprintf for file paths: a path that does not fit is an error, not a cut. */
int job_path(char *out, size_t cap, struct fv_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Creates the directory a file path lives in (nothing for a bare name). */
int job_mkdirs_for(const char *path, struct fv_error *err);
/* Writes a JSON string literal (with quotes) for s. */
void job_json_string(FILE *f, const char *s);
/* The model as `featviz info --json` prints it (p: a plan of one image). */
void job_info_json(FILE *f, const struct fv_model *m, const struct fv_plan *p);
/* Writes the effective configuration of a job (its section, [model], [output])
 * as <dir>/<job>.ini so the run can be repeated. */
int job_write_config(const struct fv_settings *s, const char *job, const char *dir,
                     struct fv_error *err);
/* Writes a display image (h, w, c) in [0, 1] as PNG, upscaled (nearest) to at
 * least min_size pixels. */
int job_write_image(const char *path, const float *u, int h, int w, int c, int min_size,
                    struct fv_error *err);
/* A file-name-safe version of a label ("Speed limit (30km/h)" -> speed-limit-30km-h). */
void job_slug(const char *text, char *out, size_t cap);
/* Parses "all" or a comma-separated list of integers in [0, n). *out malloc'd. */
int job_index_list(const char *text, int n, const char *what, const char *origin, int **out,
                   int *count, struct fv_error *err);

#endif
