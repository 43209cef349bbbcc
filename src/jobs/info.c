/* `featviz info`: the model as Keras' model.summary() shows it, plus the
 * activation, inputs and forward FLOPs of every layer. */
#include <stdio.h>
#include <string.h>

#include "featviz/jobs.h"
#include "jobs/common.h"

/* The Keras layer feeding input j of node i (skipping featviz's Permutes). */
static const struct fv_layer *source(const struct fv_model *m, const struct fv_layer *l, int j) {
    const struct fv_layer *s = &m->layers[l->in[j]];
    while (s->hidden) s = &m->layers[s->in[0]];
    return s;
}

static void shape_text(const struct fv_plan *p, int i, const struct fv_model *m, char *out,
                       size_t cap) {
    struct fv_shape k;
    fv_keras_shape(&m->layers[i], &p->io[i].out, &k);
    size_t len = (size_t)snprintf(out, cap, "(None");
    for (int d = 0; d < k.rank && len < cap; d++) len += (size_t)snprintf(out + len, cap - len, ", %d", k.d[d]);
    if (len < cap) snprintf(out + len, cap - len, ")");
}

/* Layers with an activation setting show it, "linear" included. */
static const char *act_text(const struct fv_layer *l) {
    if (l->act.kind != FV_ACT_LINEAR) return fv_act_name(&l->act);
    int has = (l->ops && (l->ops->flags & (FV_OPF_FILTERS | FV_OPF_UNITS))) ||
              !strcmp(l->keras_class, "Activation");
    return has ? "linear" : "";
}

static int depth(const struct fv_model *m, int g) {
    int d = 0;
    for (; g > 0; g = m->groups[g - 1].parent) d++;
    return d;
}

/* 1 when group g (1-based) is a or encloses it. */
static int encloses(const struct fv_model *m, int g, int a) {
    for (; a > 0; a = m->groups[a - 1].parent)
        if (a == g) return 1;
    return 0;
}

static size_t group_params(const struct fv_model *m, int g) {
    size_t n = 0;
    for (int i = 0; i < m->n_layers; i++)
        if (encloses(m, g, m->layers[i].group)) n += m->layers[i].params_trainable + m->layers[i].params_fixed;
    return n;
}

/* The table rows of nested models entered between groups `from` and `to`
 * (Keras' summary shows a nested model as one row, here its layers follow
 * it, indented). */
static void enter_groups(const struct fv_model *m, const struct fv_plan *p, int from, int to) {
    if (to == 0 || encloses(m, to, from)) return;
    enter_groups(m, p, from, m->groups[to - 1].parent);
    const struct fv_group *g = &m->groups[to - 1];
    char name[240], shape[128] = "";
    snprintf(name, sizeof name, "%*s%s (%s)", 2 * (depth(m, to) - 1), "", g->name, g->cls);
    int out = fv_model_find(m, g->output);
    if (out >= 0) shape_text(p, out, m, shape, sizeof shape);
    printf("%-46s %-22s %12zu\n", name, shape, group_params(m, to));
}

/* The model as JSON (featviz info --json, and the report's model table). */
void job_info_json(FILE *f, const struct fv_model *m, const struct fv_plan *p) {
    size_t trainable = 0, fixed = 0;
    double flops = 0;
    char shape[128];
    for (int i = 0; i < m->n_layers; i++) {
        const struct fv_layer *l = &m->layers[i];
        trainable += l->params_trainable, fixed += l->params_fixed;
        if (l->ops && l->ops->flops) flops += l->ops->flops(l, &p->io[i]);
    }
    fprintf(f, "{\"path\": ");
    job_json_string(f, m->path);
    fprintf(f, ", \"format\": ");
    job_json_string(f, m->format);
    fprintf(f, ", \"producer\": ");
    job_json_string(f, m->producer);
    fprintf(f, ", \"keras_version\": ");
    job_json_string(f, m->keras_version);
    fprintf(f, ", \"backend\": ");
    job_json_string(f, m->backend);
    fprintf(f, ", \"class\": ");
    job_json_string(f, m->model_class);
    fprintf(f, ", \"name\": ");
    job_json_string(f, m->name);
    fprintf(f, ", \"input\": ");
    job_json_string(f, m->layers[m->input].name);
    fprintf(f, ", \"output\": ");
    job_json_string(f, m->layers[m->output].name);
    fprintf(f, ", \"layers\": [");
    int first = 1;
    for (int i = 0; i < m->n_layers; i++) {
        const struct fv_layer *l = &m->layers[i];
        if (l->hidden) continue;
        shape_text(p, i, m, shape, sizeof shape);
        fprintf(f, "%s\n  {\"name\": ", first ? "" : ",");
        first = 0;
        job_json_string(f, l->name);
        fprintf(f, ", \"class\": ");
        job_json_string(f, l->keras_class);
        if (*l->tensor) {
            fprintf(f, ", \"tensor\": ");
            job_json_string(f, l->tensor);
        }
        fprintf(f, ", \"output_shape\": ");
        job_json_string(f, shape);
        fprintf(f, ", \"params\": %zu, \"activation\": ", l->params_trainable + l->params_fixed);
        job_json_string(f, act_text(l));
        if (l->group) {
            fprintf(f, ", \"nested_in\": ");
            job_json_string(f, m->groups[l->group - 1].name);
        }
        fprintf(f, ", \"flops\": %.0f, \"inputs\": [", l->ops && l->ops->flops ? l->ops->flops(l, &p->io[i]) : 0.0);
        for (int j = 0; j < l->n_in; j++) {
            fprintf(f, "%s", j ? ", " : "");
            job_json_string(f, source(m, l, j)->name);
        }
        fprintf(f, "]}");
    }
    fprintf(f, "\n], \"nested_models\": [");
    for (int g = 0; g < m->n_groups; g++) {
        fprintf(f, "%s\n  {\"name\": ", g ? "," : "");
        job_json_string(f, m->groups[g].name);
        fprintf(f, ", \"class\": ");
        job_json_string(f, m->groups[g].cls);
        fprintf(f, ", \"output\": ");
        job_json_string(f, m->groups[g].output);
        fprintf(f, ", \"params\": %zu, \"nested_in\": ", group_params(m, g + 1));
        job_json_string(f, m->groups[g].parent ? m->groups[m->groups[g].parent - 1].name : "");
        fprintf(f, "}");
    }
    fprintf(f, "\n], \"total_params\": %zu, \"trainable_params\": %zu, \"non_trainable_params\": %zu, \"flops\": %.0f}\n",
           trainable + fixed, trainable, fixed, flops);
}

int fv_job_info(const struct fv_settings *s, struct fv_error *err) {
    struct fv_model m;
    int rc = job_load_model(s, &m, err);
    if (rc) return rc;
    int h, w, c, planned = 0;
    fv_model_input_hwc(&m, &h, &w, &c);
    if (m.in_rank == 3 && (h < 1 || w < 1)) h = w = 224, planned = 1;
    struct fv_plan p;
    if ((rc = fv_plan_init(&p, &m, 1, h, w, 0, err))) {
        fv_model_free(&m);
        return rc;
    }
    size_t trainable = 0, fixed = 0;
    double flops = 0;
    for (int i = 0; i < m.n_layers; i++) {
        const struct fv_layer *l = &m.layers[i];
        trainable += l->params_trainable, fixed += l->params_fixed;
        if (l->ops && l->ops->flops) flops += l->ops->flops(l, &p.io[i]);
    }
    int json = fv_get_bool(s, "info", "json");
    char shape[128];
    if (json) {
        job_info_json(stdout, &m, &p);
    } else {
        printf("Model: \"%s\" (%s) from %s\n", m.name, m.model_class, m.path);
        printf("%s, written by %s%s%s\n", m.format, m.producer, *m.backend ? ", backend " : "", m.backend);
        if (*m.layers[m.output].tensor) /* names of the graph's tensors (ONNX) */
            printf("Graph input: %s, output: %s (node %s)\n", m.layers[m.input].tensor,
                   m.layers[m.output].tensor, m.layers[m.output].name);
        if (planned) printf("Input size is not declared; shapes below are for %dx%d.\n", h, w);
        printf("%-46s %-22s %12s  %-12s %-24s\n", "Layer (type)", "Output Shape", "Param #", "Activation", "Connected to");
        for (int i = 0; i < 120; i++) putchar('=');
        putchar('\n');
        int group = 0;
        for (int i = 0; i < m.n_layers; i++) {
            const struct fv_layer *l = &m.layers[i];
            if (l->hidden) continue;
            enter_groups(&m, &p, group, l->group);
            group = l->group;
            char name[240];
            snprintf(name, sizeof name, "%*s%s (%s)", 2 * depth(&m, l->group), "", l->name, l->keras_class);
            shape_text(&p, i, &m, shape, sizeof shape);
            printf("%-46s %-22s %12zu  %-12s ", name, shape, l->params_trainable + l->params_fixed, act_text(l));
            for (int j = 0; j < l->n_in; j++) printf("%s%s", j ? ", " : "", source(&m, l, j)->name);
            putchar('\n');
        }
        for (int i = 0; i < 120; i++) putchar('=');
        putchar('\n');
        printf("Total params: %zu\nTrainable params: %zu\nNon-trainable params: %zu\n", trainable + fixed, trainable, fixed);
        printf("Forward pass: %.1f MFLOPs per image (multiply-adds x2)\n", flops / 1e6);
    }
    fv_plan_free(&p);
    fv_model_free(&m);
    return FV_OK;
}
