/* Runtime errors: a status code plus one line of context, set once where the
 * problem is found and passed up unchanged (optionally with a prefix).
 * Library code never exits; only src/cli/ turns an error into an exit code. */
#ifndef FEATVIZ_ERROR_H
#define FEATVIZ_ERROR_H

#include <stddef.h>

enum fv_status {
    FV_OK = 0,
    FV_ERR_IO,       /* file missing, unreadable, unwritable */
    FV_ERR_FORMAT,   /* file readable but not what we expect */
    FV_ERR_UNSUPPORTED, /* valid Keras, but a layer/option we refuse */
    FV_ERR_SHAPE,    /* shapes that do not fit together or overflow */
    FV_ERR_USAGE,    /* bad option or argument */
    FV_ERR_NOMEM,
    FV_ERR_INTERRUPTED
};

struct fv_error {
    enum fv_status code;
    char msg[1024];
};

/* Sets the error (first setter wins is NOT enforced: callers return right away)
 * and returns code, so `return fv_error_set(err, ...)` reads naturally.
 * err may be NULL. */
int fv_error_set(struct fv_error *err, enum fv_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "context: " to the message; returns err->code. */
int fv_error_prefix(struct fv_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Invariant checks: print file:line and abort. For programming errors only. */
#define FV_ASSERT(x)                                                                               \
    do {                                                                                           \
        if (!(x)) fv_abort(__FILE__, __LINE__, #x);                                                \
    } while (0)
_Noreturn void fv_abort(const char *file, int line, const char *what);

/* malloc/calloc that set FV_ERR_NOMEM with the size on failure. */
void *fv_malloc(size_t bytes, struct fv_error *err);
void *fv_calloc(size_t count, size_t size, struct fv_error *err);

/* Overflow-checked size arithmetic: returns 0 on overflow. */
int fv_mul_size(size_t a, size_t b, size_t *out);

#endif
