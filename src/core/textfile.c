#include "core/textfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int fv_read_text_file(const char *path, size_t max, char **out, const char *what,
                      struct fv_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return fv_error_set(err, FV_ERR_IO, "%s: cannot open %s: %s", path, what, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return fv_error_set(err, FV_ERR_IO, "%s: %s is not a regular file", path, what);
    }
    if ((unsigned long long)st.st_size > max) {
        fclose(f);
        return fv_error_set(err, FV_ERR_FORMAT, "%s: %s is %lld bytes, more than the %zu featviz reads",
                            path, what, (long long)st.st_size, max);
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size + 1);
    if (!buf) {
        fclose(f);
        return fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory reading %s", path, what);
    }
    size_t got = fread(buf, 1, size, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != size) {
        free(buf);
        return fv_error_set(err, FV_ERR_IO, "%s: cannot read %s", path, what);
    }
    buf[got] = 0;
    *out = buf;
    return FV_OK;
}
