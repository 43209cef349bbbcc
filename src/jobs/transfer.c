/* `featviz transfer`: are the class images recognizable by other models?
 * Each judge (another model of the same classes, with its own preprocessing)
 * classifies every class image; per class the fraction of judges that give
 * it its class, per judge the fraction of images it recognizes, and the mean
 * transfer rate over all (image, judge) pairs.
 *
 * The images are a `featviz classes` output directory (classes.npy and
 * classes.csv), or, without transfer.input, made first with MODEL and the
 * [classes] settings into output.dir. Each judge sees every image as the
 * model did during the optimization: downsampled with the anti-aliased
 * filter to its input size, converted to its channels and value mapping. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/items.h"
#include "featviz/jobs.h"
#include "featviz/progress.h"
#include "jobs/common.h"
#include "jobs/synth.h"
#include "kernels/resample.h"

struct judge {
    char name[256];      /* file name, for the report */
    struct fv_settings s;
    struct fv_model m;
    struct fv_preproc pp;
    int h, w, c, loaded;
    int *map, n_map;     /* output index -> class (class_map), or NULL: the identity */
};

/* The class of each image: column 1 of classes.csv (after the header). */
static int read_targets(const char *dir, int n, int *target, struct fv_error *err) {
    char path[4200], line[1024];
    snprintf(path, sizeof path, "%s/classes.csv", dir);
    FILE *f = fopen(path, "r");
    if (!f) return fv_error_set(err, FV_ERR_IO, "%s: %s", path, strerror(errno));
    int k = 0, rc = FV_OK;
    if (!fgets(line, sizeof line, f)) rc = fv_error_set(err, FV_ERR_FORMAT, "%s: empty", path);
    while (!rc && k < n && fgets(line, sizeof line, f)) {
        char *end;
        long v = strtol(line, &end, 10);
        if (end == line || *end != ',' || v < 0 || v > 1000000)
            rc = fv_error_set(err, FV_ERR_FORMAT, "%s:%d: expected a class index first", path, k + 2);
        else target[k++] = (int)v;
    }
    if (!rc && k != n)
        rc = fv_error_set(err, FV_ERR_FORMAT, "%s: %d rows for %d images in classes.npy", path, k, n);
    fclose(f);
    return rc;
}

/* One integer per line. */
static int read_map(const char *path, struct judge *j, struct fv_error *err) {
    FILE *f = fopen(path, "r");
    if (!f) return fv_error_set(err, FV_ERR_IO, "%s: %s", path, strerror(errno));
    char line[256];
    int cap = 0, rc = FV_OK, lineno = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        lineno++;
        char *end, *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '\n' || *p == '#' || !*p) continue;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 1000000) {
            rc = fv_error_set(err, FV_ERR_FORMAT, "%s:%d: expected a class index", path, lineno);
            break;
        }
        if (j->n_map == cap) {
            cap = cap ? 2 * cap : 64;
            int *m = realloc(j->map, (size_t)cap * sizeof *m);
            if (!m) {
                rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
                break;
            }
            j->map = m;
        }
        j->map[j->n_map++] = (int)v;
    }
    fclose(f);
    return rc;
}

/* A judge: an INI file with a [model] section (path, preprocessing, class_map),
 * or a bare .h5 with the default preprocessing. */
static int judge_load(const char *spec, struct judge *j, struct fv_error *err) {
    const char *slash = strrchr(spec, '/');
    snprintf(j->name, sizeof j->name, "%s", slash ? slash + 1 : spec);
    fv_settings_init(&j->s);
    size_t n = strlen(spec);
    int rc = n > 4 && !strcmp(spec + n - 4, ".ini") ? fv_settings_load_ini(&j->s, spec, err)
                                                    : fv_settings_set(&j->s, "model", "path", spec, "transfer.judges", err);
    if (!rc) rc = job_load_model(&j->s, &j->m, err);
    if (rc) return rc;
    j->loaded = 1;
    fv_model_input_hwc(&j->m, &j->h, &j->w, &j->c);
    if (j->m.in_rank != 3 || j->h < 1 || j->w < 1 || (j->c != 1 && j->c != 3))
        return fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: a judge needs an image input of declared size with 1 or 3 channels", j->m.path);
    if ((rc = job_preproc(&j->s, j->c, &j->pp, err))) return rc;
    const char *map = fv_get_str(&j->s, "model", "class_map");
    if (map && *map && (rc = read_map(map, j, err))) return rc;
    const char *path = fv_get_str(&j->s, "model", "path");
    slash = strrchr(path, '/');
    snprintf(j->name, sizeof j->name, "%s", slash ? slash + 1 : path);
    return FV_OK;
}

static void judge_free(struct judge *j) {
    if (j->loaded) fv_model_free(&j->m);
    fv_settings_free(&j->s);
    free(j->map);
}

/* Images u (n, H, W, c) in the judge's channels: gray from RGB with PIL's
 * luma, RGB from gray replicated. */
static void convert_channels(const float *u, size_t pixels, int c, float *out, int jc) {
    for (size_t i = 0; i < pixels; i++) {
        const float *p = u + i * (size_t)c;
        if (c == jc) {
            for (int k = 0; k < c; k++) out[i * (size_t)c + (size_t)k] = p[k];
        } else if (jc == 1) {
            out[i] = (p[0] * 299.0f + p[1] * 587.0f + p[2] * 114.0f) / 1000.0f;
        } else {
            for (int k = 0; k < 3; k++) out[i * 3 + (size_t)k] = p[0];
        }
    }
}

/* pred[i], prob[i]: the judge's top class (mapped) and its probability for image i. */
static int judge_run(struct judge *j, const float *u, int n, int H, int W, int c, int *pred, double *prob,
                     struct fv_error *err) {
    size_t px = (size_t)n * (size_t)H * (size_t)W, jimg = (size_t)j->h * (size_t)j->w * (size_t)j->c;
    float *conv = malloc(px * (size_t)j->c * sizeof(float)), *small = NULL;
    if (!conv) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    convert_channels(u, px, c, conv, j->c);
    int rc = synth_downsample(conv, n, H, W, j->h, j->w, j->c, &small, err);
    free(conv);
    if (rc) return rc;
    struct fv_plan p;
    int batch = n < 16 ? n : 16;
    if ((rc = fv_plan_init(&p, &j->m, batch, j->h, j->w, FV_PLAN_FUSE, err))) {
        free(small);
        return rc;
    }
    int k = (int)fv_shape_count(&p.io[j->m.output].out);
    for (int first = 0; first < n; first += batch) {
        int cnt = n - first < batch ? n - first : batch;
        memset(p.x, 0, (size_t)batch * jimg * sizeof(float));
        synth_to_model(&j->pp, small + (size_t)first * jimg, p.x, (size_t)cnt * (size_t)j->h * (size_t)j->w, j->c);
        fv_forward(&p, j->m.output);
        for (int i = 0; i < cnt; i++) {
            const float *y = p.buf[j->m.output].y + (size_t)i * (size_t)k;
            int best = 0;
            for (int q = 1; q < k; q++)
                if (y[q] > y[best]) best = q;
            pred[first + i] = j->map ? (best < j->n_map ? j->map[best] : -1) : best;
            prob[first + i] = y[best];
        }
    }
    fv_plan_free(&p);
    free(small);
    return FV_OK;
}

static int write_report(const char *dir, struct judge *jd, int nj, const int *target, int n, const int *pred,
                        const double *prob, double mean, struct fv_error *err) {
    char path[4200];
    struct fv_tmpfile t;
    snprintf(path, sizeof path, "%s/transfer.csv", dir);
    int rc = fv_tmpfile_open(&t, path, err);
    if (rc) return rc;
    fprintf(t.fp, "image,class,judge,predicted,probability,recognized\n");
    for (int i = 0; i < n; i++)
        for (int k = 0; k < nj; k++) {
            int pr = pred[(size_t)k * n + i];
            fprintf(t.fp, "%d,%d,\"%s\",%d,%.6g,%d\n", i, target[i], jd[k].name, pr, prob[(size_t)k * n + i], pr == target[i]);
        }
    if ((rc = fv_tmpfile_commit(&t, err))) return rc;
    /* the layout tools/transfer.py writes and `featviz report` reads
     * (judges by name; per class transfer_hits, transfer_judges,
     * recognized_by), plus the predictions and the rates */
    snprintf(path, sizeof path, "%s/transfer.json", dir);
    if ((rc = fv_tmpfile_open(&t, path, err))) return rc;
    fprintf(t.fp, "{\"judges\": [");
    for (int k = 0; k < nj; k++) {
        fprintf(t.fp, "%s", k ? ", " : "");
        job_json_string(t.fp, jd[k].name);
    }
    fprintf(t.fp, "],\n \"mean_transfer\": %.6g,\n \"judge_rates\": [", mean);
    for (int k = 0; k < nj; k++) {
        int hits = 0;
        for (int i = 0; i < n; i++) hits += pred[(size_t)k * n + i] == target[i];
        fprintf(t.fp, "%s\n  {\"judge\": ", k ? "," : "");
        job_json_string(t.fp, jd[k].name);
        fprintf(t.fp, ", \"recognized\": %d, \"images\": %d, \"rate\": %.6g}", hits, n, n ? (double)hits / n : 0.0);
    }
    fprintf(t.fp, "],\n \"classes\": [");
    for (int i = 0; i < n; i++) {
        int hits = 0;
        for (int k = 0; k < nj; k++) hits += pred[(size_t)k * n + i] == target[i];
        fprintf(t.fp, "%s\n  {\"class\": %d, \"index\": %d, \"transfer_hits\": %d, \"transfer_judges\": %d, \"recognized_by\": [",
                i ? "," : "", target[i], i, hits, nj);
        for (int k = 0, first = 1; k < nj; k++)
            if (pred[(size_t)k * n + i] == target[i]) {
                fprintf(t.fp, "%s", first ? "" : ", ");
                job_json_string(t.fp, jd[k].name);
                first = 0;
            }
        fprintf(t.fp, "], \"predicted\": [");
        for (int k = 0; k < nj; k++) fprintf(t.fp, "%s%d", k ? ", " : "", pred[(size_t)k * n + i]);
        fprintf(t.fp, "]}");
    }
    fprintf(t.fp, "\n]}\n");
    return fv_tmpfile_commit(&t, err);
}

int fv_job_transfer(const struct fv_settings *s, struct fv_error *err) {
    const char *in = fv_get_str(s, "transfer", "input"), *dir = fv_get_str(s, "output", "dir");
    const char *judges = fv_get_str(s, "transfer", "judges");
    if (!judges || !*judges)
        return fv_error_set(err, FV_ERR_USAGE, "transfer needs judges: --judges a.ini,b.h5 (transfer.judges)");
    int rc = FV_OK;
    if (!in || !*in) { /* make the class images first */
        if ((rc = fv_job_classes(s, err))) return rc;
        if (fv_interrupted()) return FV_OK;
        in = dir;
    }
    if (!fv_items_leader()) return FV_OK; /* under mpirun the ranks made the classes; rank 0 judges */
    struct fv_array a = {0};
    char path[4200];
    snprintf(path, sizeof path, "%s/classes.npy", in);
    if ((rc = fv_npy_load(path, &a, err))) return rc;
    if (a.rank != 4 || (a.dims[3] != 1 && a.dims[3] != 3) || !a.dims[0] || a.dims[1] > 65536 || a.dims[2] > 65536) {
        fv_array_free(&a);
        return fv_error_set(err, FV_ERR_FORMAT, "%s: expected (n, H, W, 1 or 3) images", path);
    }
    int n = (int)a.dims[0], H = (int)a.dims[1], W = (int)a.dims[2], c = (int)a.dims[3];
    /* count the judges: a comma-separated list */
    char *list = strdup(judges);
    int nj = 0;
    struct judge *jd = NULL;
    int *target = malloc((size_t)n * sizeof *target);
    if (!list || !target) rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    for (char *p = list; !rc && p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) nj++;
    if (!rc) jd = calloc((size_t)nj, sizeof *jd);
    int *pred = jd ? malloc((size_t)nj * (size_t)n * sizeof *pred) : NULL;
    double *prob = jd ? malloc((size_t)nj * (size_t)n * sizeof *prob) : NULL;
    if (!rc && (!jd || !pred || !prob)) rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    if (!rc) rc = read_targets(in, n, target, err);
    int k = 0;
    for (char *tok = rc ? NULL : strtok(list, ","); tok && !rc; tok = strtok(NULL, ","), k++) {
        while (*tok == ' ') tok++;
        if ((rc = judge_load(tok, &jd[k], err))) fv_error_prefix(err, "%s: judge '%s'", fv_get_origin(s, "transfer", "judges"), tok);
        else rc = judge_run(&jd[k], a.data, n, H, W, c, pred + (size_t)k * n, prob + (size_t)k * n, err);
    }
    double mean = 0;
    if (!rc) {
        int hits = 0;
        for (int q = 0; q < nj * n; q++) hits += pred[q] == target[q % n];
        mean = (double)hits / ((double)nj * n);
        if (!(rc = job_mkdirs(dir, err))) rc = write_report(dir, jd, nj, target, n, pred, prob, mean, err);
    }
    if (!rc) {
        printf("transfer of %d class images (%s/classes.npy, %dx%d) to %d judges:\n", n, in, W, H, nj);
        for (int q = 0; q < nj; q++) {
            int hits = 0;
            for (int i = 0; i < n; i++) hits += pred[(size_t)q * n + i] == target[i];
            printf("  %-60s %3d/%d recognized\n", jd[q].name, hits, n);
        }
        printf("  mean transfer %.3f; not recognized by every judge:", mean);
        int all = 1;
        for (int i = 0; i < n; i++) {
            int hits = 0;
            for (int q = 0; q < nj; q++) hits += pred[(size_t)q * n + i] == target[i];
            if (hits < nj) printf(" %d (%d/%d)", target[i], hits, nj), all = 0;
        }
        printf("%s\n  written to %s/transfer.csv and transfer.json\n", all ? " none" : "", dir);
    }
    for (int q = 0; jd && q < nj; q++) judge_free(&jd[q]);
    free(jd), free(pred), free(prob), free(target), free(list);
    fv_array_free(&a);
    return rc;
}
