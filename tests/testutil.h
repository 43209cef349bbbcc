/* Helpers shared by the tests (cmocka runs each test_*.c). */
#ifndef FEATVIZ_TESTUTIL_H
#define FEATVIZ_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the three includes above first */
#include <cmocka.h>

#include "featviz/layer.h"

/* ../shared/<rel>, tests/data/<rel>, <build>/tests/tmp/<rel> (created). */
const char *shared_path(const char *rel);
const char *data_path(const char *rel);
const char *tmp_path(const char *rel);

/* max|a-b| / max|b| */
double rel_err_f64(const float *a, const double *b, size_t n);
double rel_err_f32(const float *a, const float *b, size_t n);

/* Deterministic uniform numbers in [lo, hi). */
void fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi);
/* Distinct values (a shuffled ramp over [lo, hi]) so that max-pool/ReLU kinks
 * stay at least (hi-lo)/n apart. */
void fill_distinct(float *x, size_t n, uint64_t seed, float lo, float hi);

/* Gradient check of one layer's ops: L = sum(w .* y) with fixed random w;
 * compares ops->backward (dx = J^T w) with central differences of L
 * computed in double, for every input element (or a sample of at most
 * max_points). x[i] are the inputs (may be NULL: fill_distinct in [-2,2]).
 * Returns max |analytic - numeric| / max |numeric| over all inputs. */
double gradcheck_layer(const struct fv_layer *l, int n, int n_in, const struct fv_shape *in,
                       float *const *x, double eps, size_t max_points, uint64_t seed);

/* Runs a shell command, returns its exit status; stdout+stderr go to *out
 * (malloc'd, may be NULL). */
int run_capture(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One array of a fixture file of lines "name count v0 v1 ..." under
 * tests/data (malloc'd doubles); fails the test when the name is missing or
 * the count is not `expect`. */
double *fixture_array(const char *file, const char *name, size_t expect);
/* The count of that array. */
size_t fixture_length(const char *file, const char *name);

/* A tiny .npy reader for references (little-endian <f4 / <f8, C order),
 * values as double: NULL on success, else a static message. */
struct test_npy {
    int rank;
    size_t dims[8];
    size_t count;
    double *data;   /* (count), malloc'd */
};
const char *test_npy_read(const char *path, struct test_npy *a);
void test_npy_free(struct test_npy *a);

/* Reads a whole file (malloc'd, NUL-terminated); NULL if missing. */
char *read_text(const char *path, size_t *len);

#endif
