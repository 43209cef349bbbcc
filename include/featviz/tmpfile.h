/* Atomic file writing used by every writer: open path.tmp.XXXXXX, then commit
 * renames it over path (or abort removes it), so no reader ever sees a
 * half-written file. */
#ifndef FEATVIZ_TMPFILE_H
#define FEATVIZ_TMPFILE_H

#include "featviz/error.h"

struct fv_tmpfile {
    char path[4096];
    char tmp[4160];
    void *fp;      /* FILE* */
};
int fv_tmpfile_open(struct fv_tmpfile *t, const char *path, struct fv_error *err);
int fv_tmpfile_commit(struct fv_tmpfile *t, struct fv_error *err);
void fv_tmpfile_abort(struct fv_tmpfile *t);
/* Removes the "*.tmp.XXXXXX" files that writers killed before their rename
 * (SIGKILL) left in dir: those no live writer holds locked. Returns how many. */
int fv_tmpfile_sweep(const char *dir);

#endif
