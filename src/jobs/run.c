/* `featviz run CONFIG`: every job section of the file, in file order, each
 * writing under <output.dir>/<job>/, with one progress display; the
 * effective configuration goes to <output.dir>/featviz-run.ini first, and the
 * report (<output.dir>/index.html, src/report/) is written last. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/dist.h"
#include "featviz/jobs.h"
#include "featviz/progress.h"
#include "jobs/common.h"
#include "report/report.h"

static const struct {
    const char *section;
    fv_job_fn run;
    int spread; /* under mpirun its items are split over the ranks; else rank 0 runs it alone */
} jobs[] = {
    {"info", fv_job_info, 0},         {"predict", fv_job_predict, 0}, {"activations", fv_job_activations, 1},
    {"stats", fv_job_stats, 1},       {"classes", fv_job_classes, 1}, {"filters", fv_job_filters, 1},
    {"dream", fv_job_dream, 0},       {"saliency", fv_job_saliency, 0},
    {"transfer", fv_job_transfer, 1}, /* its classes are spread; rank 0 judges them */
};

static int spread(const char *section) {
    for (size_t i = 0; i < sizeof jobs / sizeof jobs[0]; i++)
        if (!strcmp(jobs[i].section, section)) return jobs[i].spread;
    return 0;
}

fv_job_fn fv_job_find(const char *section) {
    for (size_t i = 0; i < sizeof jobs / sizeof jobs[0]; i++)
        if (!strcmp(jobs[i].section, section)) return jobs[i].run;
    return NULL;
}

int fv_job_run(const struct fv_settings *s, struct fv_error *err) {
    const char *dir = fv_get_str(s, "output", "dir");
    int n = 0, rc;
    const char *sections[40] = {"model", "output"};
    for (int i = 0; i < s->n_jobs; i++)
        if (fv_job_find(s->jobs[i])) sections[2 + n++] = s->jobs[i];
    if (!n) return fv_error_set(err, FV_ERR_USAGE, "the config has no job sections (e.g. [classes], [filters], [activations], [stats], [dream])");
    char path[4200];
    snprintf(path, sizeof path, "%s/featviz-run.ini", dir);
    if ((rc = job_mkdirs(dir, err)) || (fv_dist_rank() == 0 && (rc = fv_settings_write(s, sections, 2 + n, path, err))))
        return rc;
    /* each job sees output.dir = <dir>/<job>; a private copy of the settings */
    struct fv_settings job;
    int stop = 0;
    for (int k = 0; k < n && !rc && !stop; k++) {
        fv_settings_init(&job);
        for (int i = 0; i < s->n && !rc; i++)
            rc = fv_settings_set(&job, s->v[i].key->section, s->v[i].key->name, s->v[i].text, s->v[i].origin, err);
        char sub[4200], prefix[32], origin[64];
        snprintf(sub, sizeof sub, "%s/%s", dir, sections[2 + k]);
        snprintf(origin, sizeof origin, "featviz run [%s]", sections[2 + k]);
        if (!rc) rc = fv_settings_set(&job, "output", "dir", sub, origin, err);
        snprintf(prefix, sizeof prefix, "[%d/%d] ", k + 1, n);
        fv_progress_prefix(prefix);
        printf("== %s%s\n", prefix, sections[2 + k]);
        fflush(stdout);
        /* the other ranks wait (without spinning) while rank 0 runs a one-rank job */
        if (!rc && (spread(sections[2 + k]) || fv_dist_rank() == 0)) rc = fv_job_find(sections[2 + k])(&job, err);
        if (rc) fv_error_prefix(err, "[%s]", sections[2 + k]);
        fv_settings_free(&job);
        if (!rc) stop = fv_dist_any(fv_interrupted()); /* Ctrl-C on any rank stops every rank here */
    }
    fv_progress_prefix("");
    /* the report reads every job's outputs: rank 0 writes it once all are done */
    if (!rc && !stop && !fv_interrupted() && fv_get_bool(s, "output", "report") && fv_dist_rank() == 0)
        rc = fv_report_write(s, dir, err);
    if (!rc) printf("results in %s/ (configuration: %s)\n", dir, path);
    return rc;
}
