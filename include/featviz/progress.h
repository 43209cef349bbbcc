/* Progress on a terminal (a bar with ETA on stderr; silent when stderr is not
 * a TTY) and a clean stop on Ctrl-C: long loops poll fv_interrupted() and
 * write what they have. */
#ifndef FEATVIZ_PROGRESS_H
#define FEATVIZ_PROGRESS_H

#include <stddef.h>

/* Starts a bar for `total` units of work named `label`. */
void fv_progress_start(const char *label, size_t total);
/* Advances by n units (redraws at most ~10 times a second). */
void fv_progress_add(size_t n);
/* No bar from this process (the ranks of an MPI job other than 0). */
void fv_progress_silence(void);
/* Clears the bar's line. */
void fv_progress_end(void);
/* A prefix shown before every label, e.g. "[2/5] " under `featviz run`. */
void fv_progress_prefix(const char *prefix);

/* Installs the SIGINT and SIGTERM handler (the first requests a stop, the
 * second kills as usual). */
void fv_interrupt_install(void);
int fv_interrupted(void);

#endif
