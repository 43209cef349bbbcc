/* fuzz_config: what a user types into a config: the bytes before the first
 * NUL are an INI file (--config, src/config/settings.c through libinih); each
 * line after it is one of
 *   section.key=value     a --set override (the same checks as the command line)
 *   obj TEXT              an objective (--objective), parsed against a real model
 *   list TEXT             a list such as classes.targets (0,5,14 or all)
 * Then every key is read back as the jobs read it, the preprocessing and the
 * Lambda declarations are parsed as a job parses them, and the effective
 * configuration is written out. */
#include "fuzz_common.h"

#include "featviz/objective.h"
#include "featviz/settings.h"
#include "jobs/common.h"

#ifndef FV_FUZZ_MODEL
#error "FV_FUZZ_MODEL: a small .h5 to parse objectives against"
#endif

static struct fv_model model;
static int have_model;

static void line_cmd(struct fv_settings *s, char *line) {
    struct fv_error err = {0};
    if (!strncmp(line, "obj ", 4)) {
        struct fv_objective o;
        if (have_model) fv_objective_parse(line + 4, &model, &o, &err);
    } else if (!strncmp(line, "list ", 5)) {
        int *idx = NULL, n = 0;
        if (!job_index_list(line + 5, 43, "targets", "fuzz", &idx, &n, &err)) {
            for (int i = 0; i < n; i++)
                if (idx[i] < 0 || idx[i] >= 43) abort();
        }
        free(idx);
    } else {
        fv_settings_set_dotted(s, line, "--set", &err);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_init_once();
    if (!have_model) {
        struct fv_error err = {0};
        if (fv_model_load(&model, FV_FUZZ_MODEL, NULL, &err)) abort();
        have_model = 1;
    }
    const uint8_t *nul = memchr(data, 0, size);
    size_t ini_len = nul ? (size_t)(nul - data) : size;
    struct fv_settings s;
    fv_settings_init(&s);
    struct fv_error err = {0};
    if (fv_settings_load_ini(&s, fuzz_file(data, ini_len, "config.ini"), &err)) fuzz_check_error(&err);
    if (nul) {
        char *rest = fuzz_string(nul + 1, size - ini_len - 1), *save = NULL;
        for (char *line = strtok_r(rest, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
            line_cmd(&s, line);
        free(rest);
    }
    /* every key as the jobs read it */
    for (const struct fv_key *k = fv_keys; k->section; k++) {
        float v[8];
        fv_get_str(&s, k->section, k->name);
        fv_get_float(&s, k->section, k->name);
        fv_get_int(&s, k->section, k->name);
        fv_get_bool(&s, k->section, k->name);
        fv_get_origin(&s, k->section, k->name);
        if (k->type == FV_KEY_FLOATS && fv_get_floats(&s, k->section, k->name, v, 8) > FV_FLOATS_MAX) abort();
    }
    struct fv_preproc pp;
    job_preproc(&s, 3, &pp, &err);
    /* the Lambda declarations, with the real model (never a path from the input;
     * only when there are some: loading takes most of an execution) */
    if (fv_is_set(&s, "model", "lambda") && !fv_is_set(&s, "model", "arch") &&
        !fv_settings_set(&s, "model", "path", FV_FUZZ_MODEL, "fuzz", &err)) {
        struct fv_model m;
        if (!job_load_model(&s, &m, &err)) fv_model_free(&m);
    }
    const char *sections[3] = {"model", "output", "classes"};
    char out[600];
    snprintf(out, sizeof out, "%s.out.ini", fuzz_file(NULL, 0, "config.ini"));
    fv_settings_write(&s, sections, 3, out, &err);
    fv_settings_free(&s);
    return 0;
}
