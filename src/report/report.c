/* The report of a run folder: OUTPUT_DIR/report.json, one manifest of what
 * the jobs wrote there (the model, its preprocessing and layers, the run's
 * configuration, the class images with their top-3, filter patterns,
 * activation maps, statistics with dataset examples, dreams, saliency maps,
 * the transfer rates of the class images where featviz transfer measured them),
 * and OUTPUT_DIR/index.html: the page of src/report/ (embedded at build time)
 * with that manifest inlined, so it opens from file:// with no server.
 *
 * Every path in the manifest is relative to OUTPUT_DIR and names a file that
 * exists. The report reads what the jobs wrote (their JSON files, directory
 * listings); it runs the model only for the class images' top-3 (a forward
 * pass over classes/classes.npy) and writes the activation inputs as the model
 * sees them (report/inputs/<item>.png). */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "featviz/jobs.h"
#include "jobs/common.h"
#include "jobs/inputs.h"
#include "jobs/synth.h"
#include "jobs/topn.h"
#include "report/assets.h"
#include "report/report.h"

#define PATH_CAP 4400

static int is_file(const char *path) {
    struct stat st;
    return !stat(path, &st) && S_ISREG(st.st_mode);
}

static int is_dir(const char *path) {
    struct stat st;
    return !stat(path, &st) && S_ISDIR(st.st_mode);
}

/* A job's JSON file: *out = NULL when it does not exist; an error when it does
 * but does not parse. */
static int load_json(const char *path, json_t **out, struct fv_error *err) {
    *out = NULL;
    if (!is_file(path)) return FV_OK;
    json_error_t je;
    if (!(*out = json_load_file(path, 0, &je)))
        return fv_error_set(err, FV_ERR_FORMAT, "%s:%d: not valid JSON (%s)", path, je.line, je.text);
    return FV_OK;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in dir (files with the suffix, or directories when suffix is NULL). */
static int list_dir(const char *dir, const char *suffix, char ***names, int *n, struct fv_error *err) {
    *names = NULL, *n = 0;
    DIR *d = opendir(dir);
    if (!d) return FV_OK;
    int cap = 0, rc = FV_OK;
    char path[PATH_CAP];
    for (struct dirent *e; (e = readdir(d)) && !rc;) {
        if (e->d_name[0] == '.') continue;
        size_t len = strlen(e->d_name), sl = suffix ? strlen(suffix) : 0;
        if (suffix && (len <= sl || strcmp(e->d_name + len - sl, suffix))) continue;
        if ((rc = job_path(path, sizeof path, err, "%s/%s", dir, e->d_name))) break;
        if (suffix ? !is_file(path) : !is_dir(path)) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            char **g = realloc(*names, (size_t)cap * sizeof *g);
            if (!g) {
                rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
                break;
            }
            *names = g;
        }
        if (!((*names)[*n] = strdup(e->d_name))) rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        else (*n)++;
    }
    closedir(d);
    if (*names) qsort(*names, (size_t)*n, sizeof **names, cmp_str);
    return rc;
}

static void free_names(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* "sub/name" if root/sub/name is a file, else JSON null. */
static json_t *file_ref(const char *root, const char *rel) {
    char path[PATH_CAP];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", root, rel) >= sizeof path || !is_file(path)) return json_null();
    return json_string(rel);
}

/* ---- model ---- */

static json_t *model_section(const struct fv_settings *s, const struct fv_model *m,
                             const struct fv_labels *labels, struct fv_error *err) {
    struct fv_plan p;
    int h, w, c;
    fv_model_input_hwc(m, &h, &w, &c);
    if (fv_plan_init(&p, m, 1, h > 0 ? h : 224, w > 0 ? w : 224, 0, err)) return NULL;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        fv_plan_free(&p);
        fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    job_info_json(f, m, &p);
    fclose(f);
    fv_plan_free(&p);
    json_t *info = json_loadb(text, len, 0, NULL);
    free(text);
    if (!info) {
        fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    json_t *in = json_array();
    for (int d = 0; d < m->in_rank; d++) json_array_append_new(in, m->in_dims[d] > 0 ? json_integer(m->in_dims[d]) : json_null());
    json_object_set_new(info, "input_shape", in);
    json_t *pre = json_object();
    static const char *keys[] = {"color", "resize", "scale", "offset", "mean", "std", "preprocess", "labels", "arch"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = fv_get_str(s, "model", keys[i]);
        if (v && *v) json_object_set_new(pre, keys[i], json_string(v));
    }
    json_object_set_new(info, "preprocessing", pre);
    json_t *names = json_array();
    for (int i = 0; i < labels->n; i++) {
        const char *l = fv_labels_get(labels, i);
        json_array_append_new(names, l ? json_string(l) : json_null());
    }
    json_object_set_new(info, "labels", names);
    return info;
}

/* ---- classes ---- */

/* top: each class image's 3 most probable classes, by a forward pass over
 * classes.npy (the images as synthesized, display values 0..1, at their own
 * size: the model sees them downsampled as during the optimization). */
static int class_top3(const struct fv_model *m, const struct fv_preproc *pp, const struct fv_labels *labels,
                      const char *npy, json_t *items, struct fv_error *err) {
    struct fv_array a = {0};
    int h, w, c, rc = fv_npy_load(npy, &a, err);
    if (rc) return rc;
    fv_model_input_hwc(m, &h, &w, &c);
    size_t n = json_array_size(items), img = (size_t)h * (size_t)w * (size_t)c;
    if (a.rank != 4 || a.dims[0] != n || a.dims[1] < (size_t)h || a.dims[2] < (size_t)w ||
        a.dims[1] > 1 << 16 || a.dims[2] > 1 << 16 || a.dims[3] != (size_t)c) {
        free(a.data);
        return fv_error_set(err, FV_ERR_SHAPE, "%s: expected %zu images of at least %dx%dx%d as in classes.json", npy, n, h, w, c);
    }
    if (a.dims[1] != (size_t)h || a.dims[2] != (size_t)w) {
        float *small;
        rc = synth_downsample(a.data, (int)n, (int)a.dims[1], (int)a.dims[2], h, w, c, &small, err);
        free(a.data);
        if (rc) return rc;
        a.data = small;
    }
    struct fv_plan p;
    /* 16 images per pass, fewer large ones (as a synth lane): memory stays small */
    int batch = n < 16 ? (int)n : 16;
    if (batch > synth_lane_size(h, w)) batch = synth_lane_size(h, w);
    if ((rc = fv_plan_init(&p, m, batch, h, w, FV_PLAN_FUSE, err))) {
        free(a.data);
        return rc;
    }
    int k = (int)fv_shape_count(&p.io[m->output].out), probs = topn_is_prob(m), idx[3];
    int top = k < 3 ? k : 3;
    for (size_t first = 0; first < n; first += (size_t)batch) {
        size_t cnt = n - first < (size_t)batch ? n - first : (size_t)batch;
        memset(p.x, 0, (size_t)batch * img * sizeof(float));
        synth_to_model(pp, a.data + first * img, p.x, cnt * (size_t)h * (size_t)w, c);
        fv_forward(&p, m->output);
        for (size_t i = 0; i < cnt; i++) {
            const float *y = p.buf[m->output].y + i * (size_t)k;
            topn_indices(y, k, top, idx);
            json_t *t = json_array();
            for (int j = 0; j < top; j++) {
                const char *l = fv_labels_get(labels, idx[j]);
                json_array_append_new(t, json_pack("{s:i, s:o, s:f}", "class", idx[j], "label",
                                                   l ? json_string(l) : json_null(),
                                                   probs ? "probability" : "value", (double)y[idx[j]]));
            }
            json_object_set_new(json_array_get(items, first + i), "top", t);
        }
    }
    fv_plan_free(&p);
    free(a.data);
    return FV_OK;
}

static int classes_section(const char *root, const struct fv_model *m, const struct fv_preproc *pp,
                           const struct fv_labels *labels, json_t **out, struct fv_error *err) {
    char path[PATH_CAP];
    json_t *items;
    int rc = job_path(path, sizeof path, err, "%s/classes/classes.json", root);
    if (rc || (rc = load_json(path, &items, err)) || !items) return rc;
    char **names;
    int n;
    if ((rc = job_path(path, sizeof path, err, "%s/classes", root)) || (rc = list_dir(path, ".png", &names, &n, err))) {
        json_decref(items);
        return rc;
    }
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) {
        char prefix[32], bare[32];
        int cls = (int)json_integer_value(json_object_get(it, "class"));
        snprintf(prefix, sizeof prefix, "class_%02d_", cls);
        snprintf(bare, sizeof bare, "class_%02d.png", cls);
        for (int j = 0; j < n; j++)
            if (!strncmp(names[j], prefix, strlen(prefix)) || !strcmp(names[j], bare)) {
                snprintf(path, sizeof path, "classes/%s", names[j]);
                json_object_set_new(it, "image", json_string(path));
            }
    }
    free_names(names, n);
    if (!(rc = job_path(path, sizeof path, err, "%s/classes/classes.npy", root)) && is_file(path))
        rc = class_top3(m, pp, labels, path, items, err);
    /* transfer rates, where featviz transfer measured them */
    json_t *tr = NULL;
    if (!rc && !(rc = job_path(path, sizeof path, err, "%s/classes/transfer.json", root)) &&
        !(rc = load_json(path, &tr, err)) && tr) {
        size_t j;
        json_t *t;
        json_array_foreach(json_object_get(tr, "classes"), j, t) {
            json_t *c = json_object_get(t, "class");
            json_array_foreach(items, i, it)
                if (json_equal(json_object_get(it, "class"), c)) {
                    static const char *keys[] = {"transfer_hits", "transfer_judges", "recognized_by"};
                    for (int k = 0; k < 3; k++)
                        if (json_object_get(t, keys[k])) json_object_set(it, keys[k], json_object_get(t, keys[k]));
                }
        }
        json_decref(tr);
    }
    if (rc) {
        json_decref(items);
        return rc;
    }
    *out = json_pack("{s:o, s:o}", "items", items, "montage", file_ref(root, "classes/montage.png"));
    return FV_OK;
}

/* ---- filters ---- */

static int filters_section(const char *root, const struct fv_model *m, json_t **out, struct fv_error *err) {
    json_t *layers = json_array();
    char path[PATH_CAP], safe[FV_NAME_MAX], rel[PATH_CAP];
    int rc = FV_OK;
    for (int t = 0; t < m->n_layers && !rc; t++) {
        if (m->layers[t].hidden) continue;
        job_safe_name(m->layers[t].name, safe, sizeof safe);
        json_t *l;
        if ((rc = job_path(path, sizeof path, err, "%s/filters/%s.json", root, safe)) ||
            (rc = load_json(path, &l, err)) || !l)
            continue;
        size_t i;
        json_t *f;
        json_array_foreach(json_object_get(l, "filters"), i, f) {
            snprintf(rel, sizeof rel, "filters/%s/filter_%03d.png", safe, (int)json_integer_value(json_object_get(f, "filter")));
            json_object_set_new(f, "image", file_ref(root, rel));
        }
        snprintf(rel, sizeof rel, "filters/%s.png", safe);
        json_object_set_new(l, "montage", file_ref(root, rel));
        snprintf(rel, sizeof rel, "filters/%s.kernels.png", safe);
        json_object_set_new(l, "kernels", file_ref(root, rel));
        json_array_append_new(layers, l);
    }
    if (rc || !json_array_size(layers)) {
        json_decref(layers);
        return rc;
    }
    *out = json_pack("{s:o}", "layers", layers);
    return FV_OK;
}

/* ---- activations ---- */

/* report/inputs/<item>.png: each activation input as the model sees it (the
 * declared preprocessing undone), named like its folder in activations/. */
static int write_inputs(const char *root, const struct fv_settings *s, const struct fv_model *m,
                        const struct fv_preproc *pp, json_t *items, struct fv_error *err) {
    const char *list = fv_get_str(s, "activations", "inputs");
    if (!list || m->in_rank != 3) return FV_OK;
    struct fv_inputs in = {0};
    struct fv_error e2 = {0};
    if (fv_inputs_open(&in, list, m, pp, 0, 0, &e2)) return FV_OK; /* moved since: no input pictures */
    size_t per = (size_t)in.h * (size_t)in.w * (size_t)in.c;
    float *x = malloc(per * sizeof *x);
    unsigned char *pix = malloc(per);
    char dir[PATH_CAP], name[600], path[PATH_CAP];
    int rc = x && pix ? job_path(dir, sizeof dir, err, "%s/report/inputs", root) : fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    for (size_t item = 0; item < in.total && !rc; item++) {
        size_t idx;
        const struct fv_source *src = fv_inputs_source(&in, item, &idx);
        if (src->batched) snprintf(name, sizeof name, "%s_%zu", src->stem, idx);
        else snprintf(name, sizeof name, "%s", src->stem);
        json_t *it = json_object_get(items, name);
        if (!it) continue;
        if ((rc = fv_inputs_read(&in, item, 1, x, err))) break;
        fv_deprocess(pp, x, in.h, in.w, in.c, pix);
        if (!(rc = job_mkdirs(dir, err)) && !(rc = job_path(path, sizeof path, err, "%s/%s.png", dir, name)) &&
            !(rc = fv_png_write(path, pix, in.h, in.w, in.c, err)))
            json_object_set_new(it, "image", json_string(path + strlen(root) + 1));
    }
    free(x);
    free(pix);
    fv_inputs_close(&in);
    return rc;
}

static int activations_section(const char *root, const struct fv_settings *s, const struct fv_model *m,
                               const struct fv_preproc *pp, json_t **out, struct fv_error *err) {
    char path[PATH_CAP], safe[FV_NAME_MAX], rel[PATH_CAP];
    char **items;
    int n, rc = job_path(path, sizeof path, err, "%s/activations", root);
    if (rc || (rc = list_dir(path, NULL, &items, &n, err)) || !n) return rc;
    json_t *byname = json_object(), *list = json_array();
    for (int i = 0; i < n && !rc; i++) {
        json_t *pred = NULL, *layers = json_array();
        if (!(rc = job_path(path, sizeof path, err, "%s/activations/%s/predictions.json", root, items[i])))
            rc = load_json(path, &pred, err);
        for (int t = 0; t < m->n_layers && !rc; t++) {
            if (m->layers[t].hidden) continue;
            job_safe_name(m->layers[t].name, safe, sizeof safe);
            int maps = 0;
            for (;; maps++) {
                snprintf(rel, sizeof rel, "%s/activations/%s/%s/%s_%d.png", root, items[i], safe, safe, maps);
                if (!is_file(rel)) break;
            }
            snprintf(rel, sizeof rel, "activations/%s/%s.bars.png", items[i], safe);
            json_t *bars = file_ref(root, rel);
            if (!maps && json_is_null(bars)) {
                json_decref(bars);
                continue;
            }
            json_t *l = json_pack("{s:s, s:i, s:o}", "layer", m->layers[t].name, "maps", maps, "bars", bars);
            if (maps) {
                snprintf(rel, sizeof rel, "activations/%s/%s/%s_", items[i], safe, safe);
                json_object_set_new(l, "prefix", json_string(rel)); /* map c: <prefix><c>.png */
                snprintf(rel, sizeof rel, "activations/%s/%s.grid.png", items[i], safe);
                json_object_set_new(l, "grid", file_ref(root, rel));
            }
            json_array_append_new(layers, l);
        }
        json_t *it = json_pack("{s:s, s:o, s:o, s:n}", "name", items[i], "predictions", pred ? pred : json_null(),
                               "layers", layers, "image");
        json_array_append(list, it);
        json_object_set_new(byname, items[i], it);
    }
    free_names(items, n);
    if (!rc) rc = write_inputs(root, s, m, pp, byname, err);
    json_decref(byname);
    if (rc) {
        json_decref(list);
        return rc;
    }
    *out = json_pack("{s:o, s:s, s:s}", "inputs", list, "norm", fv_get_str(s, "activations", "norm"),
                     "cmap", fv_get_str(s, "activations", "cmap"));
    return FV_OK;
}

/* ---- stats, dream, saliency ---- */

static int stats_section(const char *root, json_t **out, struct fv_error *err) {
    char path[PATH_CAP], safe[FV_NAME_MAX], rel[PATH_CAP];
    json_t *st;
    int rc = job_path(path, sizeof path, err, "%s/stats/stats.json", root);
    if (rc || (rc = load_json(path, &st, err)) || !st) return rc;
    size_t i, j;
    json_t *l, *c, *t;
    int examples = json_is_string(json_object_get(st, "examples"));
    json_array_foreach(json_object_get(st, "layers"), i, l) {
        const char *name = json_string_value(json_object_get(l, "layer"));
        if (!name) {
            json_decref(st);
            return fv_error_set(err, FV_ERR_FORMAT, "%s: layer %zu has no name", path, i);
        }
        job_safe_name(name, safe, sizeof safe);
        snprintf(rel, sizeof rel, "stats/%s.chart.png", safe);
        json_object_set_new(l, "chart", file_ref(root, rel));
        json_array_foreach(json_object_get(l, "per_channel"), j, c) {
            size_t k;
            json_array_foreach(json_object_get(c, "top"), k, t) {
                snprintf(rel, sizeof rel, "stats/examples/%lld.png", (long long)json_integer_value(json_object_get(t, "image")));
                json_object_set_new(t, "file", examples ? file_ref(root, rel) : json_null());
            }
        }
    }
    *out = st;
    return FV_OK;
}

/* Every PNG under root/sub (one level), as paths relative to root. */
static int pictures(const char *root, const char *sub, json_t **out, struct fv_error *err) {
    char path[PATH_CAP], rel[PATH_CAP];
    char **names;
    int n, rc = job_path(path, sizeof path, err, "%s/%s", root, sub);
    if (rc || (rc = list_dir(path, ".png", &names, &n, err)) || !n) return rc;
    json_t *a = json_array();
    for (int i = 0; i < n; i++) {
        snprintf(rel, sizeof rel, "%s/%s", sub, names[i]);
        json_array_append_new(a, json_string(rel));
    }
    free_names(names, n);
    *out = a;
    return FV_OK;
}

/* ---- the page ---- */

/* The manifest as it goes inside <script>: '<' escaped, so that no label can
 * close the element or open a comment. */
static int write_manifest_inline(FILE *f, const char *json) {
    for (const char *p = json; *p; p++) {
        if (*p == '<') fputs("\\u003c", f);
        else fputc(*p, f);
    }
    return 0;
}

/* index.html: the template with its markers replaced by the CSS, the JS and
 * the manifest. */
static void write_page(FILE *f, const char *manifest) {
    const char *t = (const char *)fv_asset_index_html;
    for (;;) {
        const char *mk = strstr(t, "/*@");
        if (!mk) break;
        fwrite(t, 1, (size_t)(mk - t), f);
        if (!strncmp(mk, "/*@CSS@*/", 9)) fwrite(fv_asset_report_css, 1, fv_asset_report_css_len, f), t = mk + 9;
        else if (!strncmp(mk, "/*@JS@*/", 8)) fwrite(fv_asset_report_js, 1, fv_asset_report_js_len, f), t = mk + 8;
        else if (!strncmp(mk, "/*@MANIFEST@*/", 14)) write_manifest_inline(f, manifest), t = mk + 14;
        else fwrite(mk, 1, 3, f), t = mk + 3;
    }
    fputs(t, f);
}

static int read_text(const char *path, char **out) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    for (size_t got; b && (got = fread(b + n, 1, cap - n - 1, f)) > 0;) {
        n += got;
        if (n + 1 == cap) {
            char *g = realloc(b, cap *= 2);
            if (!g) free(b);
            b = g;
        }
    }
    fclose(f);
    if (b) b[n] = 0;
    *out = b;
    return b != NULL;
}

int fv_report_write(const struct fv_settings *s, const char *root, struct fv_error *err) {
    struct fv_model m;
    struct fv_preproc pp;
    struct fv_labels labels = {0};
    json_t *man = json_object(), *sec;
    char path[PATH_CAP], *text = NULL;
    int rc = job_load_model(s, &m, err);
    if (rc) {
        json_decref(man);
        return rc;
    }
    int h, w, c;
    fv_model_input_hwc(&m, &h, &w, &c);
    if ((rc = job_preproc(s, c, &pp, err)) || (rc = job_labels(s, &labels, err))) goto done;
    json_object_set_new(man, "featviz", json_string("1"));
    if (!(sec = model_section(s, &m, &labels, err))) {
        rc = err->code;
        goto done;
    }
    json_object_set_new(man, "model", sec);
    if (!(rc = job_path(path, sizeof path, err, "%s/featviz-run.ini", root)) && read_text(path, &text))
        json_object_set_new(man, "config", json_string(text));
    free(text);
    sec = NULL;
    if (!rc && !(rc = classes_section(root, &m, &pp, &labels, &sec, err)) && sec) json_object_set_new(man, "classes", sec);
    sec = NULL;
    if (!rc && !(rc = filters_section(root, &m, &sec, err)) && sec) json_object_set_new(man, "filters", sec);
    sec = NULL;
    if (!rc && !(rc = activations_section(root, s, &m, &pp, &sec, err)) && sec) json_object_set_new(man, "activations", sec);
    sec = NULL;
    if (!rc && !(rc = stats_section(root, &sec, err)) && sec) json_object_set_new(man, "stats", sec);
    sec = NULL;
    if (!rc && !(rc = pictures(root, "dream", &sec, err)) && sec) json_object_set_new(man, "dream", sec);
    sec = NULL;
    if (!rc && !(rc = pictures(root, "saliency", &sec, err)) && sec) json_object_set_new(man, "saliency", sec);
    if (rc) goto done;

    char *json = json_dumps(man, JSON_COMPACT | JSON_ESCAPE_SLASH);
    struct fv_tmpfile tf;
    if (!json) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (!(rc = job_path(path, sizeof path, err, "%s/report.json", root)) && !(rc = fv_tmpfile_open(&tf, path, err))) {
        json_dumpf(man, tf.fp, JSON_INDENT(1));
        fputc('\n', tf.fp);
        rc = fv_tmpfile_commit(&tf, err);
    }
    if (!rc && !(rc = job_path(path, sizeof path, err, "%s/index.html", root)) && !(rc = fv_tmpfile_open(&tf, path, err))) {
        write_page(tf.fp, json);
        rc = fv_tmpfile_commit(&tf, err);
    }
    free(json);
    if (!rc) printf("report: %s/index.html\n", root);
done:
    json_decref(man);
    fv_labels_free(&labels);
    fv_model_free(&m);
    return rc;
}

int fv_job_report(const struct fv_settings *s, struct fv_error *err) {
    return fv_report_write(s, fv_get_str(s, "output", "dir"), err);
}
