#include "featviz/error.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fv_error_set(struct fv_error *err, enum fv_status code, const char *fmt, ...) {
    if (!err) return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

int fv_error_prefix(struct fv_error *err, const char *fmt, ...) {
    if (!err) return FV_ERR_IO;
    char head[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    /* keep what fits: the context first, then as much of the old message */
    size_t n = strlen(head);
    if (n > sizeof err->msg - 3) n = sizeof err->msg - 3;
    memcpy(err->msg, head, n);
    memcpy(err->msg + n, ": ", 2);
    size_t rest = sizeof err->msg - n - 3;
    size_t m = strnlen(old, rest);
    memcpy(err->msg + n + 2, old, m);
    err->msg[n + 2 + m] = 0;
    return err->code;
}

_Noreturn void fv_abort(const char *file, int line, const char *what) {
    fprintf(stderr, "featviz: internal error at %s:%d: assertion '%s' failed\n", file, line, what);
    abort();
}

void *fv_malloc(size_t bytes, struct fv_error *err) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) fv_error_set(err, FV_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
    return p;
}

void *fv_calloc(size_t count, size_t size, struct fv_error *err) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) fv_error_set(err, FV_ERR_NOMEM, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

int fv_mul_size(size_t a, size_t b, size_t *out) {
    if (a && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}
