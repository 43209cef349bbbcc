/* Settings store: schema-checked values with their origin, INI files through
 * inih (a counting reader gives line numbers), and the effective-config dump. */
#include "featviz/settings.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "featviz/tmpfile.h"

void fv_settings_init(struct fv_settings *s) { memset(s, 0, sizeof *s); }

void fv_settings_free(struct fv_settings *s) {
    for (int i = 0; i < s->n; i++) free(s->v[i].text);
    free(s->v);
    memset(s, 0, sizeof *s);
}

const struct fv_key *fv_key_find(const char *section, const char *name) {
    for (const struct fv_key *k = fv_keys; k->section; k++)
        if (!strcmp(k->section, section) && !strcmp(k->name, name)) return k;
    return NULL;
}

static int section_known(const char *section) {
    for (const struct fv_key *k = fv_keys; k->section; k++)
        if (!strcmp(k->section, section)) return 1;
    return 0;
}

/* "0.5", "-3e-2" or a fraction "1/255". */
static int parse_number(const char *t, double *out) {
    char *end;
    errno = 0;
    double a = strtod(t, &end);
    if (end == t || errno) return 0;
    while (isspace((unsigned char)*end)) end++;
    if (*end == '/') {
        const char *b = end + 1;
        double d = strtod(b, &end);
        if (end == b || d == 0) return 0;
        a /= d;
        while (isspace((unsigned char)*end)) end++;
    }
    if (*end || !isfinite(a)) return 0;
    *out = a;
    return 1;
}

static int parse_bool(const char *t, int *out) {
    static const char *yes[] = {"1", "true", "yes", "on"}, *no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(t, yes[i])) return *out = 1, 1;
        if (!strcasecmp(t, no[i])) return *out = 0, 1;
    }
    return 0;
}

static int choice_ok(const char *choices, const char *t) {
    size_t n = strlen(t);
    for (const char *c = choices; *c;) {
        const char *bar = strchr(c, '|');
        size_t len = bar ? (size_t)(bar - c) : strlen(c);
        if (len == n && !strncmp(c, t, n)) return 1;
        c += len + (bar ? 1 : 0);
    }
    return 0;
}

static void choices_text(const char *choices, char *out, size_t cap) {
    snprintf(out, cap, "%s", choices);
    for (char *p = out; *p; p++)
        if (*p == '|') *p = ',';
}

static int check_value(const struct fv_key *k, const char *t, const char *origin,
                       struct fv_error *err) {
    double x;
    int b;
    switch (k->type) {
    case FV_KEY_INT:
        if (!parse_number(t, &x) || x != floor(x))
            return fv_error_set(err, FV_ERR_USAGE, "%s: %s.%s = '%s' is not an integer", origin, k->section, k->name, t);
        if (fabs(x) > 2e9 && k->min > k->max)
            return fv_error_set(err, FV_ERR_USAGE, "%s: %s.%s = '%s' is out of range [-2e+09, 2e+09]", origin, k->section, k->name, t);
        break;
    case FV_KEY_FLOAT:
        if (!parse_number(t, &x))
            return fv_error_set(err, FV_ERR_USAGE, "%s: %s.%s = '%s' is not a number", origin, k->section, k->name, t);
        break;
    case FV_KEY_BOOL:
        if (!parse_bool(t, &b))
            return fv_error_set(err, FV_ERR_USAGE, "%s: %s.%s = '%s' is not a boolean (true/false)", origin, k->section, k->name, t);
        return FV_OK;
    case FV_KEY_CHOICE:
        if (!choice_ok(k->choices, t)) {
            char c[256];
            choices_text(k->choices, c, sizeof c);
            return fv_error_set(err, FV_ERR_USAGE, "%s: %s.%s = '%s' is not one of: %s", origin, k->section, k->name, t, c);
        }
        return FV_OK;
    case FV_KEY_PATH:
        if (!*t && k->def && *k->def)
            return fv_error_set(err, FV_ERR_USAGE, "%s: %s.%s is empty: give a path (default: %s)", origin, k->section, k->name, k->def);
        return FV_OK;
    case FV_KEY_FLOATS: {
        /* every comma separates two numbers: ",", "1,,2" and "1," are refused */
        if (!*t) return FV_OK;
        int n = 0;
        for (const char *p = t;; p++) {
            char tok[64];
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            snprintf(tok, sizeof tok, "%.*s", (int)(len < sizeof tok ? len : sizeof tok - 1), p);
            const char *q = tok;
            while (isspace((unsigned char)*q)) q++;
            if (len >= sizeof tok || !parse_number(q, &x))
                return fv_error_set(err, FV_ERR_USAGE, "%s: %s.%s = '%s' is not a comma-separated list of numbers", origin, k->section, k->name, t);
            if (++n > FV_FLOATS_MAX)
                return fv_error_set(err, FV_ERR_USAGE, "%s: %s.%s = '%s' has more than %d values", origin, k->section, k->name, t, FV_FLOATS_MAX);
            if (!comma) break;
            p = comma;
        }
        return FV_OK;
    }
    default:
        return FV_OK;
    }
    if (k->min <= k->max && (x < k->min || x > k->max))
        return fv_error_set(err, FV_ERR_USAGE, "%s: %s.%s = '%s' is out of range [%g, %g]", origin, k->section, k->name, t, k->min, k->max);
    return FV_OK;
}

static void valid_keys(const char *section, char *out, size_t cap) {
    size_t len = 0;
    out[0] = 0;
    for (const struct fv_key *k = fv_keys; k->section; k++) {
        if (strcmp(k->section, section)) continue;
        int w = snprintf(out + len, cap - len, "%s%s", len ? ", " : "", k->name);
        if (w < 0 || (size_t)w >= cap - len) break;
        len += (size_t)w;
    }
}

static void valid_sections(char *out, size_t cap) {
    size_t len = 0;
    out[0] = 0;
    for (const struct fv_key *k = fv_keys; k->section; k++) {
        if (k != fv_keys && !strcmp(k[-1].section, k->section)) continue;
        int w = snprintf(out + len, cap - len, "%s%s", len ? ", " : "", k->section);
        if (w < 0 || (size_t)w >= cap - len) break;
        len += (size_t)w;
    }
}

int fv_settings_set(struct fv_settings *s, const char *section, const char *name,
                    const char *value, const char *origin, struct fv_error *err) {
    char list[1024];
    if (!section_known(section)) {
        valid_sections(list, sizeof list);
        return fv_error_set(err, FV_ERR_USAGE, "%s: unknown section [%s]; sections are: %s", origin, section, list);
    }
    const struct fv_key *k = fv_key_find(section, name);
    if (!k) {
        valid_keys(section, list, sizeof list);
        return fv_error_set(err, FV_ERR_USAGE, "%s: unknown key '%s' in [%s]; keys are: %s", origin, name, section, list);
    }
    int rc = check_value(k, value, origin, err);
    if (rc) return rc;
    char *text = strdup(value);
    if (!text) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    for (int i = 0; i < s->n; i++) {
        if (s->v[i].key != k) continue;
        free(s->v[i].text);
        s->v[i].text = text;
        snprintf(s->v[i].origin, sizeof s->v[i].origin, "%s", origin);
        return FV_OK;
    }
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 32;
        struct fv_value *v = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v) {
            free(text);
            return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        }
        s->v = v, s->cap = cap;
    }
    s->v[s->n].key = k;
    s->v[s->n].text = text;
    snprintf(s->v[s->n].origin, sizeof s->v[s->n].origin, "%s", origin);
    s->n++;
    return FV_OK;
}

int fv_settings_set_dotted(struct fv_settings *s, const char *assignment, const char *origin,
                           struct fv_error *err) {
    const char *dot = strchr(assignment, '.'), *eq = strchr(assignment, '=');
    if (!dot || !eq || dot > eq || dot == assignment || eq == dot + 1)
        return fv_error_set(err, FV_ERR_USAGE, "%s: '%s' is not section.key=value", origin, assignment);
    char section[64], name[64];
    snprintf(section, sizeof section, "%.*s", (int)(dot - assignment), assignment);
    snprintf(name, sizeof name, "%.*s", (int)(eq - dot - 1), dot + 1);
    return fv_settings_set(s, section, name, eq + 1, origin, err);
}

int fv_settings_set_dotted_value(struct fv_settings *s, const char *dotted, const char *value,
                                 const char *origin, struct fv_error *err) {
    const char *dot = strchr(dotted, '.');
    FV_ASSERT(dot);
    char section[64];
    snprintf(section, sizeof section, "%.*s", (int)(dot - dotted), dotted);
    return fv_settings_set(s, section, dot + 1, value, origin, err);
}

/* ---- INI ---- */

struct ini_state {
    struct fv_settings *s;
    struct fv_error *err;
    const char *path;
    FILE *f;
    int line;
    size_t bytes;
    int failed;
    char section[64];
};

/* fgets that counts lines and notes section headers (inih does not report
 * empty sections, and a job section may have no keys). Lines longer than
 * inih's buffer, section headers without ']' and files beyond
 * FV_CONFIG_MAX_BYTES (such as /dev/zero) end the parse with an error. */
static char *counting_reader(char *str, int num, void *stream) {
    struct ini_state *st = stream;
    if (st->failed || num < 2) return NULL;
    int len = 0, ch = EOF, nul = 0;
    while (len < num - 1 && (ch = getc(st->f)) != EOF) {
        nul |= ch == 0;
        str[len++] = (char)ch;
        if (ch == '\n') break;
    }
    str[len] = 0;
    if (!len) return NULL;
    char *r = str;
    st->line++;
    st->bytes += (size_t)len;
    if (nul) {
        fv_error_set(st->err, FV_ERR_USAGE, "%s:%d: a NUL byte: not a text file", st->path, st->line);
        st->failed = 1;
        return NULL;
    }
    if (st->bytes > FV_CONFIG_MAX_BYTES) {
        fv_error_set(st->err, FV_ERR_USAGE, "%s:%d: config file longer than %d bytes", st->path, st->line, FV_CONFIG_MAX_BYTES);
        st->failed = 1;
        return NULL;
    }
    if (len == num - 1 && str[len - 1] != '\n' && (ch = getc(st->f)) != EOF) {
        fv_error_set(st->err, FV_ERR_USAGE, "%s:%d: line longer than %d characters", st->path, st->line, num - 2);
        st->failed = 1;
        return NULL;
    }
    const char *p = r;
    while (isspace((unsigned char)*p)) p++;
    if (*p == '[' && !st->failed) {
        const char *end = strchr(p, ']');
        if (!end) {
            fv_error_set(st->err, FV_ERR_USAGE, "%s:%d: section header '%.*s' has no closing ']'", st->path, st->line, (int)strcspn(p, "\r\n"), p);
            st->failed = 1;
            return NULL;
        }
        if (end) {
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)(end - p - 1), p + 1);
            struct fv_settings *s = st->s;
            int seen = 0;
            for (int i = 0; i < s->n_jobs; i++) seen |= !strcmp(s->jobs[i], name);
            if (!seen && s->n_jobs < 32) {
                snprintf(s->jobs[s->n_jobs], sizeof s->jobs[0], "%s", name);
                snprintf(s->jobs_origin[s->n_jobs], sizeof s->jobs_origin[0], "%s:%d", st->path, st->line);
                s->n_jobs++;
            }
            if (!section_known(name)) {
                char list[1024];
                valid_sections(list, sizeof list);
                fv_error_set(st->err, FV_ERR_USAGE, "%s:%d: unknown section [%s]; sections are: %s", st->path, st->line, name, list);
                st->failed = 1;
            }
        }
    }
    return r;
}

static int on_ini_value(void *user, const char *section, const char *name, const char *value) {
    struct ini_state *st = user;
    if (st->failed) return 1;
    char origin[300];
    snprintf(origin, sizeof origin, "%s:%d", st->path, st->line);
    if (fv_settings_set(st->s, section, name, value, origin, st->err)) st->failed = 1;
    return 1;
}

int fv_settings_load_ini(struct fv_settings *s, const char *path, struct fv_error *err) {
    struct ini_state st = {.s = s, .err = err, .path = path};
    st.f = fopen(path, "r");
    if (!st.f) return fv_error_set(err, FV_ERR_USAGE, "%s: cannot open config file: %s", path, strerror(errno));
    struct stat sb;
    if (!fstat(fileno(st.f), &sb) && S_ISDIR(sb.st_mode)) {
        fclose(st.f);
        return fv_error_set(err, FV_ERR_USAGE, "%s: is a directory, not a config file", path);
    }
    int rc = ini_parse_stream(counting_reader, &st, on_ini_value, &st);
    int bad_read = ferror(st.f);
    fclose(st.f);
    if (st.failed) return err->code;
    if (bad_read) return fv_error_set(err, FV_ERR_IO, "%s: cannot read config file", path);
    if (rc > 0) return fv_error_set(err, FV_ERR_USAGE, "%s:%d: not an INI line (expected [section] or key = value)", path, rc);
    if (rc < 0) return fv_error_set(err, FV_ERR_IO, "%s: cannot read config file", path);
    return FV_OK;
}

/* ---- getters ---- */

static const struct fv_value *lookup(const struct fv_settings *s, const char *section,
                                     const char *name) {
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->v[i].key->section, section) && !strcmp(s->v[i].key->name, name)) return &s->v[i];
    return NULL;
}

const char *fv_get_str(const struct fv_settings *s, const char *section, const char *name) {
    const struct fv_value *v = lookup(s, section, name);
    if (v) return v->text;
    const struct fv_key *k = fv_key_find(section, name);
    FV_ASSERT(k); /* a typo in the code, not in user input */
    return k->def;
}

int fv_is_set(const struct fv_settings *s, const char *section, const char *name) {
    return lookup(s, section, name) != NULL;
}

const char *fv_get_origin(const struct fv_settings *s, const char *section, const char *name) {
    const struct fv_value *v = lookup(s, section, name);
    return v ? v->origin : "default";
}

double fv_get_float(const struct fv_settings *s, const char *section, const char *name) {
    const char *t = fv_get_str(s, section, name);
    double x = 0;
    if (t) parse_number(t, &x);
    return x;
}

int fv_get_int(const struct fv_settings *s, const char *section, const char *name) {
    return (int)fv_get_float(s, section, name);
}

int fv_get_bool(const struct fv_settings *s, const char *section, const char *name) {
    const char *t = fv_get_str(s, section, name);
    int b = 0;
    if (t) parse_bool(t, &b);
    return b;
}

int fv_get_floats(const struct fv_settings *s, const char *section, const char *name, float *out,
                  int max) {
    const char *t = fv_get_str(s, section, name);
    if (!t || !*t) return 0;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", t);
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        double x;
        while (isspace((unsigned char)*tok)) tok++;
        if (!parse_number(tok, &x)) return -1;
        if (n < max) out[n] = (float)x;
        n++; /* counted beyond max, so callers can say how many there are */
    }
    return n;
}

int fv_settings_write(const struct fv_settings *s, const char *const *sections, int n_sections,
                      const char *path, struct fv_error *err) {
    struct fv_tmpfile t;
    int rc = fv_tmpfile_open(&t, path, err);
    if (rc) return rc;
    FILE *f = t.fp;
    fprintf(f, "; effective featviz configuration: run again with  featviz run %s\n", path);
    for (int i = 0; i < n_sections; i++) {
        fprintf(f, "\n[%s]\n", sections[i]);
        for (const struct fv_key *k = fv_keys; k->section; k++) {
            if (strcmp(k->section, sections[i])) continue;
            const char *v = fv_get_str(s, k->section, k->name);
            if (!v) {
                fprintf(f, "; %s =  (unset)\n", k->name);
                continue;
            }
            fprintf(f, "%s = %s", k->name, v);
            const char *o = fv_get_origin(s, k->section, k->name);
            if (strcmp(o, "default")) fprintf(f, "   ; from %s", o);
            fputc('\n', f);
        }
    }
    return fv_tmpfile_commit(&t, err);
}
