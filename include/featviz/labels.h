/* Class names: a text file with one name per line, or a CSV whose header has
 * ClassId and SignName columns (any order, e.g. ../shared/keras-real/signnames.csv). */
#ifndef FEATVIZ_LABELS_H
#define FEATVIZ_LABELS_H

#include "featviz/error.h"

struct fv_labels {
    int n;
    char **names;  /* names[i] is class i's name, or NULL when the file skips it */
};

int fv_labels_load(const char *path, struct fv_labels *l, struct fv_error *err);
void fv_labels_free(struct fv_labels *l);
/* Name of class i, or NULL. */
const char *fv_labels_get(const struct fv_labels *l, int i);

#endif
