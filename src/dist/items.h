/* A job as a list of items (one class image, one filter, one input's maps, one
 * shard of the statistics' images), run by whichever rank draws them from the
 * work queue (dist.h), each item's result kept in a file so that rank 0 can
 * write the summaries at the end and `--resume` can skip what is done:
 *
 *   <dir>/.featviz-resume/<job>.manifest   the settings' fingerprint, then one
 *                                          "done <item>" line per completed item
 *   <dir>/.featviz-resume/<job>_<item>.bin that item's result (blob_size bytes)
 *
 * When every item is done and the summaries are written, these go and
 * <job>.complete (the manifest's first line) stays: a resumed `featviz run`
 * skips that job. A run without --resume starts afresh. */
#ifndef FEATVIZ_DIST_ITEMS_H
#define FEATVIZ_DIST_ITEMS_H

#include <stddef.h>

#include "featviz/error.h"
#include "featviz/settings.h"

struct fv_items {
    const char *job;              /* names the state files and the items in messages */
    const char *dir;              /* the job's output directory */
    const struct fv_settings *s;  /* a resume needs the same settings */
    int n;                        /* items */
    const int *group;             /* (n) or NULL: consecutive items of a group may run together */
    int max_take;                 /* items one call of run may take */
    size_t blob_size;             /* bytes of each item's result (>= 1) */
    size_t units;                 /* progress units per item (the job's run adds them as it goes) */
    size_t (*item_units)(void *ctx, int item); /* or per item (NULL: units) */
    /* Computes items [first, first + count): writes their own files and puts
     * item first + i's result at blobs + i * blob_size (zeroed before). */
    int (*run)(void *ctx, int first, int count, unsigned char *blobs, struct fv_error *err);
    /* Names an item in messages ("class 14", "conv2d_2 filter 7"). */
    void (*name)(void *ctx, int item, char *buf, size_t cap);
    void *ctx;
    /* set by fv_items_run, on rank 0 */
    unsigned char *have;          /* (n) a result exists: done, or reached when a stop came */
    int n_have;
    int complete;                 /* every item done */
    int already;                  /* rank 0: done by an earlier run (resumed): write nothing again */
    int stopped;                  /* stopped early (Ctrl-C on any rank): on every rank */
};

/* --resume: skip the items a stopped run completed. */
void fv_items_set_resume(int on);
int fv_items_resuming(void);
/* Rank 0 writes the summaries. */
int fv_items_leader(void);

/* Runs this rank's share of the items. A failing item ends the whole job
 * (fv_dist_fail) when there are several ranks; returns the error otherwise. */
int fv_items_run(struct fv_items *it, struct fv_error *err);
/* Rank 0: an item's result. */
int fv_items_load(const struct fv_items *it, int item, unsigned char *blob, struct fv_error *err);
/* Frees; on rank 0, when complete, removes the resume state. */
void fv_items_finish(struct fv_items *it);

#endif
