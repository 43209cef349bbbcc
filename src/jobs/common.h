/* Shared by the jobs: the model, preprocessing and labels a job's settings ask for. */
#ifndef FEATVIZ_JOBS_COMMON_H
#define FEATVIZ_JOBS_COMMON_H

#include "featviz/labels.h"
#include "featviz/model.h"
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
/* Writes a JSON string literal (with quotes) for s. */
void job_json_string(FILE *f, const char *s);

#endif
