/* featviz command line: a command table; every option is a settings key
 * (--top 3 is predict.top = 3), so the command line, --set and config files
 * all go through the same checks. Exit codes: 0 ok, 1 runtime error, 2 usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "dist/dist.h"
#include "dist/items.h"
#include "featviz/image.h"
#include "featviz/jobs.h"
#include "featviz/progress.h"
#include "featviz/settings.h"
#include "kernels/isa.h"

struct command {
    const char *name;
    int (*run)(const struct fv_settings *, struct fv_error *);
    const char *args;          /* positional arguments in the usage line */
    const char *inputs_key;    /* section whose input key takes INPUT... (NULL: none) */
    const char *inputs_name;   /* that key: "inputs" (a list) or "input" (one) */
    const char *sections[4];   /* sections whose keys are options, the job's first */
    const char *o_key;         /* what -o sets: "output.dir" (a directory) or "<job>.out" (a file) */
    const char *summary;
    int spread;                /* under mpirun its work is split over the ranks (else rank 0 alone runs it) */
};

static const struct command commands[] = {
    {"info", fv_job_info, "MODEL", NULL, NULL, {"info", "model"}, NULL,
     "print every layer as Keras' model.summary() does, with activations, inputs and FLOPs", 0},
    {"predict", fv_job_predict, "MODEL INPUT...", "predict", "inputs", {"predict", "model"}, NULL,
     "the top N classes of each image, directory of images or .npy array", 0},
    {"activations", fv_job_activations, "MODEL INPUT... -o DIR", "activations", "inputs", {"activations", "model", "output"}, "output.dir",
     "every filter's activation map of every chosen layer, for each input", 1},
    {"stats", fv_job_stats, "MODEL INPUTS -o DIR", "stats", "inputs", {"stats", "model", "output"}, "output.dir",
     "per-channel statistics over a folder or array of images: which filters never fire", 1},
    {"classes", fv_job_classes, "MODEL -o DIR", NULL, NULL, {"classes", "model", "output"}, "output.dir",
     "synthesize one image per class that the model recognizes as that class", 1},
    {"filters", fv_job_filters, "MODEL -o DIR", NULL, NULL, {"filters", "model", "output"}, "output.dir",
     "each filter's preferred pattern, for one, several or all conv layers", 1},
    {"dream", fv_job_dream, "MODEL IMAGE [--layer L] -o FILE", "dream", "input", {"dream", "model", "output"}, "dream.out",
     "DeepDream on a photo: amplify what a layer sees, over several octaves", 0},
    {"saliency", fv_job_saliency, "MODEL INPUT... [--objective OBJ] [-o FILE]", "saliency", "inputs", {"saliency", "model", "output"}, "saliency.out",
     "the input gradient of an objective as .npy and a heat map (SmoothGrad, Grad-CAM)", 0},
    {"transfer", fv_job_transfer, "MODEL --judges J1.ini,J2.h5 [--input CLASSES_DIR] -o DIR", NULL, NULL, {"transfer", "classes", "model", "output"}, "output.dir",
     "are the class images recognized by other models? (makes them first unless --input names a classes output)", 1},
    {"run", fv_job_run, "CONFIG", NULL, NULL, {"model", "output"}, "output.dir",
     "run every job section of an INI config file, in order, then write the report", 1},
    {"report", fv_job_report, "OUTPUT_DIR", NULL, NULL, {"model"}, NULL,
     "write OUTPUT_DIR/index.html, the report of a featviz run's folder (its model, images and numbers)", 0},
};
#define N_COMMANDS (int)(sizeof commands / sizeof commands[0])

static const char *type_hint(const struct fv_key *k) {
    switch (k->type) {
    case FV_KEY_INT: return "N";
    case FV_KEY_FLOAT: return "X";
    case FV_KEY_BOOL: return "";
    case FV_KEY_PATH: return "FILE";
    case FV_KEY_FLOATS: return "X,Y,Z";
    case FV_KEY_LIST: return "A,B";
    default: return "VALUE";
    }
}

static void usage(FILE *f, const struct command *c) {
    fprintf(f, "usage: featviz %s [options] %s\n  %s\n\noptions (each is also a config key section.name):\n", c->name, c->args, c->summary);
    for (int s = 0; s < 4 && c->sections[s]; s++) {
        for (const struct fv_key *k = fv_keys; k->section; k++) {
            if (strcmp(k->section, c->sections[s])) continue;
            if ((c->inputs_name && !strcmp(k->name, c->inputs_name) && !strcmp(k->section, c->inputs_key)) ||
                (!strcmp(k->section, "model") && !strcmp(k->name, "path")))
                continue;
            char opt[64];
            snprintf(opt, sizeof opt, "--%s %s", k->name, type_hint(k));
            fprintf(f, "  %-24s %s.%s: %s", opt, k->section, k->name, k->help);
            if (k->type == FV_KEY_CHOICE) fprintf(f, " (%s)", k->choices);
            if (k->def && *k->def) fprintf(f, " [%s]", k->def);
            fputc('\n', f);
        }
    }
    fprintf(f, "  %-24s read settings from an INI file (repeatable; the command line wins)\n", "--config FILE");
    fprintf(f, "  %-24s booleans: --KEY, --no-KEY or --KEY=true|false; - and _ are the same in names\n", "");
    fprintf(f, "  %-24s set any key, e.g. --set model.scale=1/255 (repeatable; wins over all)\n", "--set S.K=V");
    if (c->o_key)
        fprintf(f, "  %-24s %s (%s)\n", strcmp(c->o_key, "output.dir") ? "-o FILE" : "-o DIR",
                strcmp(c->o_key, "output.dir") ? "output file" : "output directory", c->o_key);
    if (c->spread)
        fprintf(f, "  %-24s continue a stopped run (same command): skip the items it completed\n", "--resume");
    fprintf(f, "  %-24s this help\n", "-h, --help");
}

/* `featviz help config`: every key as a Markdown table (the README's reference). */
static void config_reference(FILE *f) {
    const char *last = "";
    for (const struct fv_key *k = fv_keys; k->section; k++) {
        if (strcmp(k->section, last)) {
            fprintf(f, "%s#### [%s]\n\n| key | default | meaning |\n|---|---|---|\n", *last ? "\n" : "", k->section);
            last = k->section;
        }
        fprintf(f, "| `%s` | %s%s%s | %s", k->name, k->def && *k->def ? "`" : "", k->def && *k->def ? k->def : "",
                k->def && *k->def ? "`" : "", k->help);
        if (k->type == FV_KEY_CHOICE) {
            fprintf(f, " (");
            for (const char *c = k->choices; *c; c++) fputs(*c == '|' ? ", " : (char[]){*c, 0}, f);
            fprintf(f, ")");
        }
        fprintf(f, " |\n");
    }
}

static void usage_all(FILE *f) {
    fprintf(f, "usage: featviz COMMAND [options] ...\n\nfeatviz shows what a trained Keras CNN (model.h5) has learned.\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`featviz COMMAND --help` lists a command's options; `featviz help config` every config key;\n"
               "`featviz help isa` the SIMD path in use (set FEATVIZ_ISA=portable|avx2|avx512 to force one).\n");
}

/* The key an option names, looked up in the command's sections in order. */
static const struct fv_key *option_key(const struct command *c, const char *name) {
    for (int s = 0; s < 4 && c->sections[s]; s++) {
        const struct fv_key *k = fv_key_find(c->sections[s], name);
        if (k) return k;
    }
    return NULL;
}

static int is_model_file(const char *path) {
    size_t n = strlen(path);
    return (n > 3 && !strcasecmp(path + n - 3, ".h5")) || (n > 5 && !strcasecmp(path + n - 5, ".hdf5"));
}

static int append_input(char **list, const char *path) {
    size_t a = *list ? strlen(*list) : 0, b = strlen(path);
    char *n = realloc(*list, a + b + 2);
    if (!n) return 0;
    if (a) n[a++] = ',';
    memcpy(n + a, path, b + 1);
    *list = n;
    return 1;
}

static int parse_args(const struct command *c, int argc, char **argv, struct fv_settings *s,
                      struct fv_error *err) {
    const char *run_config = "CONFIG";
    /* pass 1: config files, the lowest priority after defaults
     * (featviz run's CONFIG comes first: `featviz run CONFIG [options]`) */
    if (c->run == fv_job_run) {
        if (argc < 1 || argv[0][0] == '-') return fv_error_set(err, FV_ERR_USAGE, "usage: featviz run CONFIG [options]");
        int rc = fv_settings_load_ini(s, argv[0], err);
        if (rc) return rc;
        run_config = argv[0];
        argc--, argv++;
    }
    /* featviz report OUTPUT_DIR: the run's own configuration, then the options */
    if (c->run == fv_job_report) {
        if (argc < 1 || argv[0][0] == '-') return fv_error_set(err, FV_ERR_USAGE, "usage: featviz report OUTPUT_DIR [options]");
        char ini[4200];
        if ((size_t)snprintf(ini, sizeof ini, "%s/featviz-run.ini", argv[0]) >= sizeof ini)
            return fv_error_set(err, FV_ERR_USAGE, "%s: path too long", argv[0]);
        FILE *f = fopen(ini, "r");
        if (!f) return fv_error_set(err, FV_ERR_IO, "%s: not a featviz run folder (no featviz-run.ini; featviz run writes it)", argv[0]);
        fclose(f);
        int rc = fv_settings_load_ini(s, ini, err);
        if (!rc) rc = fv_settings_set(s, "output", "dir", argv[0], "OUTPUT_DIR argument", err);
        if (rc) return rc;
        argc--, argv++;
    }
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) return fv_error_set(err, FV_ERR_USAGE, "--config needs a file");
            int rc = fv_settings_load_ini(s, argv[++i], err);
            if (rc) return rc;
        }
    }
    /* pass 2: options and positionals; pass 3: --set */
    char *inputs = NULL;
    int positional = 0, n_inputs = 0, rc = FV_OK;
    for (int i = 0; i < argc && !rc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config") || !strcmp(a, "--set")) {
            i++;
            continue;
        }
        if (!strcmp(a, "--resume")) { /* not a setting: the effective configuration stays the same */
            if (!c->spread) rc = fv_error_set(err, FV_ERR_USAGE, "featviz %s has nothing to resume: --resume does not apply", c->name);
            else fv_items_set_resume(1);
            continue;
        }
        if (!strcmp(a, "-o")) {
            if (!c->o_key) rc = fv_error_set(err, FV_ERR_USAGE, "featviz %s writes no files: -o does not apply", c->name);
            else if (i + 1 >= argc) rc = fv_error_set(err, FV_ERR_USAGE, "-o needs a path");
            else rc = fv_settings_set_dotted_value(s, c->o_key, argv[++i], "-o", err);
            continue;
        }
        if (!strncmp(a, "--", 2)) {
            char name[64];
            const char *eq = strchr(a, '=');
            snprintf(name, sizeof name, "%.*s", (int)(eq ? eq - a - 2 : (long)strlen(a) - 2), a + 2);
            /* --octave-scale and --octave_scale both name dream.octave_scale */
            for (char *d = name + (strncmp(name, "no-", 3) ? 0 : 3); *d; d++)
                if (*d == '-') *d = '_';
            const struct fv_key *k = option_key(c, name);
            const char *value = eq ? eq + 1 : NULL;
            if (!k && !strncmp(name, "no-", 3) && !eq) { /* --no-png: a boolean set to false */
                k = option_key(c, name + 3);
                if (k && k->type != FV_KEY_BOOL) k = NULL;
                value = "false";
            }
            if (!k) {
                rc = fv_error_set(err, FV_ERR_USAGE, "unknown option '%s' for featviz %s (see featviz %s --help)", a, c->name, c->name);
                break;
            }
            if (!value && k->type == FV_KEY_BOOL) value = "true";
            if (!value) {
                if (i + 1 >= argc) {
                    rc = fv_error_set(err, FV_ERR_USAGE, "option --%s needs a value", name);
                    break;
                }
                value = argv[++i];
            }
            char origin[80];
            snprintf(origin, sizeof origin, "--%s", name);
            rc = fv_settings_set(s, k->section, k->name, value, origin, err);
            continue;
        }
        if (a[0] == '-' && a[1]) {
            rc = fv_error_set(err, FV_ERR_USAGE, "unknown option '%s' for featviz %s (see featviz %s --help)", a, c->name, c->name);
            break;
        }
        if (c->run == fv_job_run || c->run == fv_job_report) {
            rc = fv_error_set(err, FV_ERR_USAGE, "featviz %s takes one %s (unexpected '%s')", c->name, c->args, a);
        } else if (positional++ == 0 && (is_model_file(a) || !fv_get_str(s, "model", "path"))) {
            /* MODEL comes first, unless a config already names the model and
             * this is not an .h5 file: then the arguments are all inputs */
            rc = fv_settings_set(s, "model", "path", a, "MODEL argument", err);
        } else if (c->inputs_key && (!strcmp(c->inputs_name, "inputs") || !n_inputs)) {
            n_inputs++;
            if (!append_input(&inputs, a)) rc = fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        } else {
            rc = fv_error_set(err, FV_ERR_USAGE, "featviz %s takes only %s (unexpected '%s')", c->name, c->args, a);
        }
    }
    if (!rc && inputs) rc = fv_settings_set(s, c->inputs_key, c->inputs_name, inputs, "INPUT arguments", err);
    free(inputs);
    for (int i = 0; i < argc && !rc; i++)
        if (!strcmp(argv[i], "--set")) {
            if (i + 1 >= argc) return fv_error_set(err, FV_ERR_USAGE, "--set needs section.key=value");
            rc = fv_settings_set_dotted(s, argv[++i], "--set", err);
        }
    if (!rc && !fv_get_str(s, "model", "path") && c->run == fv_job_run)
        rc = fv_error_set(err, FV_ERR_USAGE, "%s: no model: add path = FILE to its [model] section, or --set model.path=FILE", run_config);
    else if (!rc && !fv_get_str(s, "model", "path"))
        rc = fv_error_set(err, FV_ERR_USAGE, "featviz %s needs a model (MODEL, or model.path in a config): %s", c->name, c->args);
    if (!rc && c->inputs_key && !fv_get_str(s, c->inputs_key, c->inputs_name))
        rc = fv_error_set(err, FV_ERR_USAGE, "featviz %s needs %s: %s", c->name, c->inputs_name, c->args);
    return rc;
}

/* Under mpirun: rank 0 alone speaks (stdout, progress); a failure anywhere
 * ends the whole job with one line (fv_dist_fail) instead of leaving the
 * other ranks waiting. */
static int finish(int rc, const struct fv_error *err) {
    if (rc && fv_dist_size() > 1) {
        if (fv_dist_rank() != 0) sleep(2); /* the same error on rank 0 speaks first and ends the job */
        fv_dist_fail(rc == FV_ERR_USAGE ? 2 : 1, err->msg);
    }
    fv_dist_finalize();
    if (rc) {
        fprintf(stderr, "featviz: %s\n", err->msg);
        return rc == FV_ERR_USAGE ? 2 : 1;
    }
    return 0;
}

static int cli(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        if (argc >= 3 && !strcmp(argv[1], "help") && !strcmp(argv[2], "config")) {
            config_reference(stdout);
            return 0;
        }
        if (argc >= 3 && !strcmp(argv[1], "help") && !strcmp(argv[2], "isa")) {
            /* the SIMD path the kernels run, and the ones this CPU has */
            struct fv_error e = {0};
            if (fv_isa_init(&e)) {
                fprintf(stderr, "featviz: %s\n", e.msg);
                return 2;
            }
            printf("%s (available:", fv_isa_name(fv_isa()));
            for (int i = 0; i < FV_ISA_COUNT; i++)
                if (fv_isa_supported((enum fv_isa)i)) printf(" %s", fv_isa_name((enum fv_isa)i));
            printf(")\n");
            return 0;
        }
        if (argc >= 3 && !strcmp(argv[1], "help")) {
            for (int i = 0; i < N_COMMANDS; i++)
                if (!strcmp(argv[2], commands[i].name)) {
                    usage(stdout, &commands[i]);
                    return 0;
                }
        }
        usage_all(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const struct command *c = NULL;
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) c = &commands[i];
    if (!c) {
        fprintf(stderr, "featviz: unknown command '%s'\n", argv[1]);
        usage_all(stderr);
        return 2;
    }
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout, c);
            return 0;
        }
    struct fv_settings s;
    struct fv_error err = {0};
    fv_settings_init(&s);
    fv_interrupt_install();
    int rc = fv_isa_init(&err); /* FEATVIZ_ISA: a path the CPU lacks is refused here */
    if (!rc) rc = parse_args(c, argc - 2, argv + 2, &s, &err);
    if (!rc) fv_image_set_max_pixels((size_t)fv_get_int(&s, "model", "max_image_pixels"));
    if (rc) { /* every rank parsed the same arguments: rank 0 says it */
        fv_settings_free(&s);
        if (fv_dist_rank() == 0) fprintf(stderr, "featviz: %s\n", err.msg);
        return rc == FV_ERR_USAGE ? 2 : 1;
    }
    if (fv_dist_rank() != 0) {
        fv_progress_silence();
        if (!freopen("/dev/null", "w", stdout)) fv_progress_silence();
    }
    if (c->spread || fv_dist_rank() == 0) rc = c->run(&s, &err);
    fv_settings_free(&s);
    return finish(rc, &err);
}

int main(int argc, char **argv) {
#ifdef __GLIBC__
    /* Plans and arrays of 1 MB and more get pages of their own, given back
     * when freed: glibc would otherwise raise this threshold after the first
     * such free and keep later blocks in its arenas, so a job's peak memory
     * would be the sum of its phases instead of the largest one. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
    fv_dist_init(&argc, &argv);
    int code = cli(argc, argv);
    fv_dist_finalize();
    return code;
}
