/* Settings: every option of every command is a key of a config section
 * ([model], [output], [predict], ...). Values come, in increasing priority,
 * from the schema's defaults, INI files (--config), the command line
 * (--key value) and --set section.key=value. Each value remembers where it
 * came from, so an error names the file and line or the option. */
#ifndef FEATVIZ_SETTINGS_H
#define FEATVIZ_SETTINGS_H

#include <stdio.h>

#include "featviz/error.h"

enum fv_key_type {
    FV_KEY_STRING,
    FV_KEY_PATH,
    FV_KEY_INT,
    FV_KEY_FLOAT,
    FV_KEY_BOOL,
    FV_KEY_CHOICE,   /* one of `choices` ("a|b|c") */
    FV_KEY_FLOATS,   /* comma-separated floats */
    FV_KEY_LIST      /* comma-separated words (or "all") */
};

/* Limits on what a config may hold: a FLOATS value's numbers, a file's bytes. */
#define FV_FLOATS_MAX 64
#define FV_CONFIG_MAX_BYTES (1 << 20)

struct fv_key {
    const char *section;
    const char *name;
    enum fv_key_type type;
    const char *def;       /* default value as text; NULL: unset */
    const char *choices;   /* FV_KEY_CHOICE: "a|b|c" */
    double min, max;       /* numeric range (min > max: unbounded) */
    const char *help;
};

/* The schema: every key featviz knows, NULL-terminated (src/config/schema.c). */
extern const struct fv_key fv_keys[];
/* The sections a job reads, in order (job sections, then shared ones). */
const struct fv_key *fv_key_find(const char *section, const char *name);

struct fv_value {
    const struct fv_key *key;
    char *text;
    char origin[300];      /* "configs/x.ini:12", "--top", "--set", "default" */
};

struct fv_settings {
    int n, cap;
    struct fv_value *v;
    int n_jobs;            /* job sections in file order (for `featviz run`) */
    char jobs[32][64];
    char jobs_origin[32][300];
};

void fv_settings_init(struct fv_settings *s);
void fv_settings_free(struct fv_settings *s);

/* Sets section.name = value after checking the key exists and the value
 * parses. origin is kept for later messages. */
int fv_settings_set(struct fv_settings *s, const char *section, const char *name,
                    const char *value, const char *origin, struct fv_error *err);
/* Parses "section.key=value" (from --set). */
int fv_settings_set_dotted(struct fv_settings *s, const char *assignment, const char *origin,
                           struct fv_error *err);
/* Sets "section.key" (no '=') to value. */
int fv_settings_set_dotted_value(struct fv_settings *s, const char *dotted, const char *value,
                                 const char *origin, struct fv_error *err);
/* Reads an INI file; unknown sections/keys and bad values are errors with file:line.
 * Relative paths in path-typed keys are taken relative to the current directory. */
int fv_settings_load_ini(struct fv_settings *s, const char *path, struct fv_error *err);

/* Typed getters; the value falls back to the schema default. A missing
 * required value gives an error naming the key. */
const char *fv_get_str(const struct fv_settings *s, const char *section, const char *name);
int fv_get_int(const struct fv_settings *s, const char *section, const char *name);
double fv_get_float(const struct fv_settings *s, const char *section, const char *name);
int fv_get_bool(const struct fv_settings *s, const char *section, const char *name);
/* Comma-separated floats; returns how many there are (only the first max are
 * stored in out), -1 on a bad value. */
int fv_get_floats(const struct fv_settings *s, const char *section, const char *name, float *out,
                  int max);
/* Where a value came from ("default" when unset). */
const char *fv_get_origin(const struct fv_settings *s, const char *section, const char *name);
int fv_is_set(const struct fv_settings *s, const char *section, const char *name);

/* Writes the effective configuration of the given sections as INI (defaults
 * included, each value commented with its origin). */
int fv_settings_write(const struct fv_settings *s, const char *const *sections, int n_sections,
                      const char *path, struct fv_error *err);

#endif
