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

#endif
