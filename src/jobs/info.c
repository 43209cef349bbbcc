/* `featviz info`: the model as Keras' model.summary() shows it, plus the
 * activation, inputs and forward FLOPs of every layer. */
#include <stdio.h>
#include <string.h>

#include "featviz/jobs.h"
#include "jobs/common.h"
#include "layers/layers.h"

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
    int has = l->ops == &fv_conv2d_ops || l->ops == &fv_depthwise_ops || l->ops == &fv_separable_ops ||
              l->ops == &fv_dense_ops || !strcmp(l->keras_class, "Activation");
    return has ? "linear" : "";
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
        printf("{\"path\": ");
        job_json_string(stdout, m.path);
        printf(", \"keras_version\": ");
        job_json_string(stdout, m.keras_version);
        printf(", \"backend\": ");
        job_json_string(stdout, m.backend);
        printf(", \"class\": ");
        job_json_string(stdout, m.model_class);
        if (*m.format) {
            printf(", \"format\": ");
            job_json_string(stdout, m.format);
            printf(", \"producer\": ");
            job_json_string(stdout, m.producer);
        }
        printf(", \"name\": ");
        job_json_string(stdout, m.name);
        printf(", \"input\": ");
        job_json_string(stdout, m.layers[m.input].name);
        printf(", \"output\": ");
        job_json_string(stdout, m.layers[m.output].name);
        printf(", \"layers\": [");
        int first = 1;
        for (int i = 0; i < m.n_layers; i++) {
            const struct fv_layer *l = &m.layers[i];
            if (l->hidden) continue;
            shape_text(&p, i, &m, shape, sizeof shape);
            printf("%s\n  {\"name\": ", first ? "" : ",");
            first = 0;
            job_json_string(stdout, l->name);
            printf(", \"class\": ");
            job_json_string(stdout, l->keras_class);
            if (*l->tensor) {
                printf(", \"tensor\": ");
                job_json_string(stdout, l->tensor);
            }
            printf(", \"output_shape\": ");
            job_json_string(stdout, shape);
            printf(", \"params\": %zu, \"activation\": ", l->params_trainable + l->params_fixed);
            job_json_string(stdout, act_text(l));
            printf(", \"flops\": %.0f, \"inputs\": [", l->ops && l->ops->flops ? l->ops->flops(l, &p.io[i]) : 0.0);
            for (int j = 0; j < l->n_in; j++) {
                printf("%s", j ? ", " : "");
                job_json_string(stdout, source(&m, l, j)->name);
            }
            printf("]}");
        }
        printf("\n], \"total_params\": %zu, \"trainable_params\": %zu, \"non_trainable_params\": %zu, \"flops\": %.0f}\n",
               trainable + fixed, trainable, fixed, flops);
    } else {
        printf("Model: \"%s\" (%s) from %s\n", m.name, m.model_class, m.path);
        if (*m.format)
            printf("Written by %s (%s)\nGraph input: %s, output: %s (tensor %s)\n", m.producer, m.format,
                   m.layers[m.input].name, m.layers[m.output].name, m.layers[m.output].tensor);
        else
            printf("Written by Keras %s, backend %s\n", *m.keras_version ? m.keras_version : "1.x (not recorded)",
                   *m.backend ? m.backend : "not recorded");
        if (planned) printf("Input size is not declared; shapes below are for %dx%d.\n", h, w);
        printf("%-46s %-22s %12s  %-12s %-24s\n", "Layer (type)", "Output Shape", "Param #", "Activation", "Connected to");
        for (int i = 0; i < 120; i++) putchar('=');
        putchar('\n');
        for (int i = 0; i < m.n_layers; i++) {
            const struct fv_layer *l = &m.layers[i];
            if (l->hidden) continue;
            char name[200];
            snprintf(name, sizeof name, "%s (%s)", l->name, l->keras_class);
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
