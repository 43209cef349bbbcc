/* Reading a whole text file with a bound, so that /dev/zero or a huge file
 * is refused instead of read forever. */
#ifndef FEATVIZ_TEXTFILE_H
#define FEATVIZ_TEXTFILE_H

#include <stddef.h>

#include "featviz/error.h"

/* *out: the file's bytes, NUL-terminated (malloc'd). Files that are not
 * regular files or pass max bytes are refused; errors name path and `what`
 * ("architecture file", "config.json", ...). */
int fv_read_text_file(const char *path, size_t max, char **out, const char *what,
                      struct fv_error *err);

#endif
