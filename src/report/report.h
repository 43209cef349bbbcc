/* The report of a run folder (index.html + report.json); see report.c. */
#ifndef FEATVIZ_REPORT_REPORT_H
#define FEATVIZ_REPORT_REPORT_H

#include "featviz/settings.h"

/* Writes root/report.json and root/index.html for what the jobs of s wrote
 * under root (<root>/<job>/). */
int fv_report_write(const struct fv_settings *s, const char *root, struct fv_error *err);

#endif
