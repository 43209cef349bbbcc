/* The only interface to libhdf5 (src/formats/keras/h5.c is the only file that includes
 * <hdf5.h>). It reads what a Keras loader needs and nothing else: string
 * attributes in every storage variant Keras ever wrote, chunked name lists,
 * and weight datasets in `weight_names` order, converted to float32.
 * See ../shared/docs/keras-h5-format.md sections 1-4. */
#ifndef FEATVIZ_H5_H
#define FEATVIZ_H5_H

#include <stddef.h>

#include "featviz/error.h"

struct fv_h5;

/* Opens read-only. Not-HDF5, truncated or unreadable files give one error line
 * naming the path. */
int fv_h5_open(struct fv_h5 **out, const char *path, struct fv_error *err);
/* The same for a file held in memory (an archive member): `name` is used in
 * messages; buf can be freed once this returns. */
int fv_h5_open_image(struct fv_h5 **out, const void *buf, size_t len, const char *name,
                     struct fv_error *err);
/* Bytes that reads of attributes and datasets may allocate in total, checked
 * before each allocation (default: no limit). */
void fv_h5_set_max_bytes(struct fv_h5 *h, size_t bytes);
void fv_h5_close(struct fv_h5 *h);

/* Names of the groups (groups = 1) or datasets (0) directly in `group`, in
 * name order; an absent group gives *n = 0. Free with fv_h5_strings_free. */
int fv_h5_list(struct fv_h5 *h, const char *group, int groups, char ***out, int *n,
               struct fv_error *err);

/* 1 if the group (path relative to the root, "/" or "" for the root) exists. */
int fv_h5_has_group(struct fv_h5 *h, const char *group);
/* 1 if the attribute (or its chunked form attr0) exists on the group. */
int fv_h5_has_attr(struct fv_h5 *h, const char *group, const char *attr);

/* A scalar (or 1-element) string attribute, fixed or variable length, ASCII or
 * UTF-8. *out is malloc'd (caller frees), NULL when the attribute is absent. */
int fv_h5_attr_string(struct fv_h5 *h, const char *group, const char *attr, char **out,
                      struct fv_error *err);

/* A list-of-strings attribute such as layer_names / weight_names: fixed-length
 * (NULLPAD, not NUL-terminated when full) or vlen; chunked as attr0, attr1, ...;
 * an empty float64 array means an empty list. *out is a malloc'd array of
 * malloc'd strings (free with fv_h5_strings_free). Absent attribute: *n = -1. */
int fv_h5_attr_strings(struct fv_h5 *h, const char *group, const char *attr, char ***out, int *n,
                       struct fv_error *err);
void fv_h5_strings_free(char **s, int n);

struct fv_h5_weight {
    char *name;          /* as in weight_names, e.g. "conv2d/kernel:0" */
    int rank;
    size_t dims[8];
    size_t count;        /* product of dims */
    float *data;         /* float32, C order, malloc'd */
};

/* Reads the group's `weight_names` (chunked too) and each dataset at
 * group/<weight name>, in that order; any float or integer dataset type is
 * converted to float32. Errors name the file, group and dataset. */
int fv_h5_read_weights(struct fv_h5 *h, const char *group, struct fv_h5_weight **out, int *n,
                       struct fv_error *err);
void fv_h5_weights_free(struct fv_h5_weight *w, int n);

/* One dataset by its path from the root, as float32 (any float or integer
 * type, and Keras 3's 2-byte values marked dtype="bfloat16"). w->name is the
 * path; free w->name and w->data. */
int fv_h5_read_dataset(struct fv_h5 *h, const char *path, struct fv_h5_weight *w,
                       struct fv_error *err);

#endif
