/* The commands as library functions: each reads its settings (see
 * src/config/schema.c), prints its report on stdout and writes files under
 * output.dir. `featviz run` calls them in the order of a config file. */
#ifndef FEATVIZ_JOBS_H
#define FEATVIZ_JOBS_H

#include "featviz/error.h"
#include "featviz/settings.h"

int fv_job_info(const struct fv_settings *s, struct fv_error *err);
int fv_job_predict(const struct fv_settings *s, struct fv_error *err);
int fv_job_activations(const struct fv_settings *s, struct fv_error *err);
int fv_job_stats(const struct fv_settings *s, struct fv_error *err);
int fv_job_classes(const struct fv_settings *s, struct fv_error *err);
int fv_job_filters(const struct fv_settings *s, struct fv_error *err);
int fv_job_dream(const struct fv_settings *s, struct fv_error *err);
int fv_job_saliency(const struct fv_settings *s, struct fv_error *err);
int fv_job_transfer(const struct fv_settings *s, struct fv_error *err);

/* featviz report: index.html and report.json for the run folder output.dir. */
int fv_job_report(const struct fv_settings *s, struct fv_error *err);
/* Runs the job sections of s in file order (each writing under
 * <output.dir>/<job>/), after writing the effective configuration; then the
 * report (output.report). */
int fv_job_run(const struct fv_settings *s, struct fv_error *err);
/* The job function of a section name, NULL when the section is not a job. */
typedef int (*fv_job_fn)(const struct fv_settings *, struct fv_error *);
fv_job_fn fv_job_find(const char *section);

#endif
