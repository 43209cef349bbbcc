/* The item runner (items.h): resume state, dealing, results, failures. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "dist/items.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dist/dist.h"
#include "featviz/progress.h"
#include "featviz/tmpfile.h"

static int resume;

void fv_items_set_resume(int on) { resume = on; }
int fv_items_resuming(void) { return resume; }
int fv_items_leader(void) { return fv_dist_rank() == 0; }

enum { MANIFEST = -1, COMPLETE = -2 };

static void state_path(const struct fv_items *it, int item, char *out, size_t cap) {
    if (item == COMPLETE) snprintf(out, cap, "%s/.featviz-resume/%s.complete", it->dir, it->job);
    else if (item < 0) snprintf(out, cap, "%s/.featviz-resume/%s.manifest", it->dir, it->job);
    else snprintf(out, cap, "%s/.featviz-resume/%s_%07d.bin", it->dir, it->job, item);
}

/* FNV-1a over every setting, the item count and the result size: a resume
 * with other settings would mix two different runs. */
static uint64_t fingerprint(const struct fv_items *it) {
    uint64_t h = 1469598103934665603ull;
    char buf[64];
    const struct fv_settings *s = it->s;
    for (int i = 0; s && i <= s->n; i++) {
        const char *parts[3] = {"", "", ""};
        if (i < s->n) parts[0] = s->v[i].key->section, parts[1] = s->v[i].key->name, parts[2] = s->v[i].text ? s->v[i].text : "";
        else snprintf(buf, sizeof buf, "%d %zu", it->n, it->blob_size), parts[0] = buf;
        for (int k = 0; k < 3; k++)
            for (const char *p = parts[k];; p++) {
                h = (h ^ (unsigned char)*p) * 1099511628211ull;
                if (!*p) break;
            }
    }
    return h;
}

/* Temporary files a killed run left ("<name>.tmp.XXXXXX", see tmpfile.c). */
static int remove_stale_tmp(const char *path, const struct stat *st, int type, struct FTW *f) {
    (void)st;
    const char *name = path + f->base, *t = strstr(name, ".tmp.");
    if (type == FTW_F && t && strlen(t) == 11) unlink(path);
    return 0;
}

static size_t units_of(const struct fv_items *it, int item) {
    return it->item_units ? it->item_units(it->ctx, item) : it->units;
}

/* rank 0's view of the run, for the queue's on_done */
struct tally {
    struct fv_items *it;
    FILE *manifest;
    unsigned char *done;
    int n_done;
};

static void on_done(void *ctx, int first, int count, int remote) {
    struct tally *t = ctx;
    for (int i = first; i < first + count; i++) {
        if (!t->done[i]) t->n_done++;
        t->done[i] = 1;
        if (t->manifest) fprintf(t->manifest, "done %d\n", i);
        if (remote) fv_progress_add(units_of(t->it, i)); /* local items count as they run */
    }
    if (t->manifest) fflush(t->manifest);
}

/* Rank 0: the manifest of a stopped run (done items whose result is there),
 * or a fresh one. */
static int open_state(struct fv_items *it, struct tally *t, struct fv_error *err) {
    char path[4400], line[128], head[128];
    snprintf(path, sizeof path, "%s/.featviz-resume", it->dir);
    for (char *p = path + 1;; p++) /* and its parents */
        if (*p == '/' || !*p) {
            char keep = *p;
            *p = 0;
            if (mkdir(path, 0777) && errno != EEXIST)
                return fv_error_set(err, FV_ERR_IO, "%s: cannot create directory: %s", path, strerror(errno));
            if (!(*p = keep)) break;
        }
    snprintf(head, sizeof head, "featviz-manifest 1 %s %016" PRIx64 "\n", it->job, fingerprint(it));
    /* a job a stopped `featviz run` completed: nothing to do again */
    state_path(it, COMPLETE, path, sizeof path);
    FILE *f = resume ? fopen(path, "r") : NULL;
    int same = f && fgets(line, sizeof line, f) && !strcmp(line, head);
    if (f) fclose(f);
    if (same) {
        for (int i = 0; i < it->n; i++) t->done[i] = 1;
        t->n_done = it->n;
        it->already = 1;
        printf("%s: already complete in %s (resumed run)\n", it->job, it->dir);
        fflush(stdout);
        return FV_OK;
    }
    unlink(path);
    state_path(it, MANIFEST, path, sizeof path);
    f = resume ? fopen(path, "r") : NULL;
    int found = 0;
    if (f) {
        if (!fgets(line, sizeof line, f) || strcmp(line, head)) {
            fclose(f);
            return fv_error_set(err, FV_ERR_USAGE,
                                "%s: the stopped run had other settings or another model; run without --resume to start again", path);
        }
        int item;
        while (fgets(line, sizeof line, f)) { /* a line cut by a kill has no newline: not trusted */
            if (!strchr(line, '\n') || sscanf(line, "done %d", &item) != 1 || item < 0 || item >= it->n) continue;
            char bin[4400];
            struct stat st;
            state_path(it, item, bin, sizeof bin);
            if (!stat(bin, &st) && (size_t)st.st_size == it->blob_size && !t->done[item]) t->done[item] = 1, t->n_done++;
        }
        fclose(f);
        found = 1;
        nftw(it->dir, remove_stale_tmp, 16, FTW_PHYS);
    } else {
        for (int i = 0; i < it->n; i++) { /* results of an earlier run must not pass for this one's */
            state_path(it, i, path, sizeof path);
            unlink(path);
        }
    }
    state_path(it, MANIFEST, path, sizeof path);
    if (!(t->manifest = fopen(path, found ? "a" : "w")))
        return fv_error_set(err, FV_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    if (!found) fputs(head, t->manifest);
    fflush(t->manifest);
    if (resume && found) printf("%s: resuming: %d of %d items already done\n", it->job, t->n_done, it->n);
    else if (resume) printf("%s: nothing to resume in %s; starting from the beginning\n", it->job, it->dir);
    fflush(stdout);
    return FV_OK;
}

static int save_blob(const struct fv_items *it, int item, const unsigned char *blob, struct fv_error *err) {
    char path[4400];
    struct fv_tmpfile t;
    state_path(it, item, path, sizeof path);
    int rc = fv_tmpfile_open(&t, path, err);
    if (rc) return rc;
    if (fwrite(blob, 1, it->blob_size, t.fp) != it->blob_size) {
        fv_tmpfile_abort(&t);
        return fv_error_set(err, FV_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    return fv_tmpfile_commit(&t, err);
}

/* Removes the results and the manifest; complete: leaves
 * <job>.complete (the manifest's first line) so that a resumed `featviz run`
 * skips this job; else removes the folder if nothing else is in it. */
static void remove_state(const struct fv_items *it, int complete) {
    char path[4400], head[128];
    for (int i = 0; i < it->n; i++) {
        state_path(it, i, path, sizeof path);
        unlink(path);
    }
    state_path(it, MANIFEST, path, sizeof path);
    unlink(path);
    if (complete) {
        struct fv_tmpfile t;
        struct fv_error e = {0};
        snprintf(head, sizeof head, "featviz-manifest 1 %s %016" PRIx64 "\n", it->job, fingerprint(it));
        state_path(it, COMPLETE, path, sizeof path);
        if (!fv_tmpfile_open(&t, path, &e)) {
            fputs(head, t.fp);
            fv_tmpfile_commit(&t, &e);
        }
        return;
    }
    snprintf(path, sizeof path, "%s/.featviz-resume", it->dir);
    rmdir(path); /* fails while another job's state is there */
}

/* A failed item: with several ranks the whole job ends here, naming it. */
static int item_failed(const struct fv_items *it, int first, int count, int rc, struct fv_error *err) {
    if (fv_dist_size() < 2) return rc;
    char a[256], b[256], msg[2048];
    it->name(it->ctx, first, a, sizeof a);
    it->name(it->ctx, first + count - 1, b, sizeof b);
    if (count == 1) snprintf(msg, sizeof msg, "[%s] item %d (%s) failed: %s", it->job, first, a, err->msg);
    else snprintf(msg, sizeof msg, "[%s] items %d-%d (%s .. %s) failed: %s", it->job, first, first + count - 1, a, b, err->msg);
    fv_dist_fail(rc == FV_ERR_USAGE ? 2 : 1, msg);
}

int fv_items_run(struct fv_items *it, struct fv_error *err) {
    struct tally t = {.it = it};
    int rc = FV_OK, leader = fv_items_leader();
    it->have = NULL, it->n_have = 0, it->complete = 0, it->stopped = 0, it->already = 0;
    if (leader) {
        t.done = calloc((size_t)it->n + 1, 1);
        it->have = calloc((size_t)it->n + 1, 1);
        if (!t.done || !it->have) rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        if (!rc) rc = open_state(it, &t, err);
        if (rc) fv_dist_fail(rc == FV_ERR_USAGE ? 2 : 1, err->msg); /* the others would wait forever */
        size_t total = 0;
        for (int i = 0; i < it->n; i++)
            if (!t.done[i]) total += units_of(it, i);
        fv_progress_start(it->job, total);
    }
    unsigned char *blobs = calloc((size_t)(it->max_take > 0 ? it->max_take : 1), it->blob_size);
    if (!blobs) fv_dist_fail(1, "out of memory");
    struct fv_queue_spec q = {.n = it->n, .group = it->group, .skip = t.done, .on_done = on_done, .ctx = &t};
    fv_dist_queue_open(&q);
    int first, count, done = 0, stopped = 0;
    while (!rc && (count = fv_dist_queue_take(it->max_take, done, &first)) > 0) {
        memset(blobs, 0, (size_t)count * it->blob_size);
        rc = it->run(it->ctx, first, count, blobs, err);
        if (rc && rc != FV_ERR_INTERRUPTED) rc = item_failed(it, first, count, rc, err);
        for (int i = 0; i < count && (!rc || rc == FV_ERR_INTERRUPTED); i++) {
            int r = save_blob(it, first + i, blobs + (size_t)i * it->blob_size, err);
            if (r) rc = item_failed(it, first + i, 1, r, err);
        }
        done = !rc && !fv_interrupted();
        if (fv_interrupted() || rc == FV_ERR_INTERRUPTED) {
            stopped = 1;
            if (!rc || rc == FV_ERR_INTERRUPTED) fv_dist_queue_take(0, 0, &first); /* leave: the job stops */
            break;
        }
    }
    if (rc == FV_ERR_INTERRUPTED) rc = FV_OK; /* reported as stopped */
    fv_dist_queue_close();
    free(blobs);
    it->stopped = fv_dist_any(stopped);
    if (leader) {
        fv_progress_end();
        if (t.manifest) fclose(t.manifest);
        for (int i = 0; i < it->n; i++) {
            char path[4400];
            struct stat st;
            state_path(it, i, path, sizeof path);
            it->have[i] = !stat(path, &st) && (size_t)st.st_size == it->blob_size;
            it->n_have += it->have[i];
        }
        it->complete = t.n_done == it->n;
        if (rc && t.n_done == 0) remove_state(it, 0); /* a failure before any item was done: nothing to resume */
        free(t.done);
    }
    return rc;
}

int fv_items_load(const struct fv_items *it, int item, unsigned char *blob, struct fv_error *err) {
    char path[4400];
    state_path(it, item, path, sizeof path);
    FILE *f = fopen(path, "rb");
    if (!f) return fv_error_set(err, FV_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    size_t got = fread(blob, 1, it->blob_size, f);
    fclose(f);
    if (got != it->blob_size) return fv_error_set(err, FV_ERR_IO, "%s: truncated result of item %d", path, item);
    return FV_OK;
}

void fv_items_finish(struct fv_items *it) {
    if (fv_items_leader() && it->complete && !it->already) remove_state(it, 1);
    free(it->have);
    it->have = NULL;
}
