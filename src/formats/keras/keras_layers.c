/* Keras layer classes -> featviz layers: config fields (Keras 1 names too),
 * fused activations, and weight conversion to the layouts of src/layers/layers.h.
 * See ../shared/docs/keras-h5-format.md sections 5 and 6. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layers/layers.h"
#include "formats/keras/keras.h"

/* ---- config access ---- */

/* First present key among a NULL-terminated list (Keras 2 name, Keras 1 alias). */
static const json_t *get(const json_t *cfg, const char *const *keys) {
    for (; *keys; keys++) {
        const json_t *v = json_object_get(cfg, *keys);
        if (v && !json_is_null(v)) return v;
    }
    return NULL;
}
#define KEYS(...) ((const char *const[]){__VA_ARGS__, NULL})

static int cfg_int(const json_t *v, int *out) {
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (x < -1000000000 || x > 1000000000) return 0;
        *out = (int)x;
        return 1;
    }
    if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v))) {
        double x = json_real_value(v);
        if (x < -1e9 || x > 1e9) return 0;
        *out = (int)x;
        return 1;
    }
    return 0;
}

/* An int or a list of two ints (kernel_size, strides, pool_size...). */
static int cfg_pair(const json_t *v, int out[2]) {
    if (cfg_int(v, &out[0])) {
        out[1] = out[0];
        return 1;
    }
    if (json_is_array(v) && json_array_size(v) == 2)
        return cfg_int(json_array_get(v, 0), &out[0]) && cfg_int(json_array_get(v, 1), &out[1]);
    if (json_is_array(v) && json_array_size(v) == 1 && cfg_int(json_array_get(v, 0), &out[0])) {
        out[1] = out[0];
        return 1;
    }
    return 0;
}

static float cfg_float(const json_t *cfg, const char *const *keys, float def) {
    const json_t *v = get(cfg, keys);
    if (json_is_number(v)) return (float)json_number_value(v);
    return def;
}

static int cfg_bool(const json_t *cfg, const char *const *keys, int def) {
    const json_t *v = get(cfg, keys);
    if (json_is_boolean(v)) return json_is_true(v);
    return def;
}

static const char *cfg_str(const json_t *cfg, const char *const *keys) {
    const json_t *v = get(cfg, keys);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

#define FAIL(...) return fv_error_set(err, FV_ERR_FORMAT, __VA_ARGS__)

static int where(struct fv_error *err, const struct fv_kctx *c, const struct fv_layer *l) {
    return fv_error_prefix(err, "%s: layer '%s' (%s)", c->path, l->name, l->keras_class);
}

/* channels_first? From data_format (Keras 2+) or dim_ordering (Keras 1). */
static int data_format_cf(const struct fv_kctx *c, const json_t *cfg, int *cf,
                          struct fv_error *err) {
    const char *df = cfg_str(cfg, KEYS("data_format"));
    const char *dim = cfg_str(cfg, KEYS("dim_ordering"));
    if (df) {
        if (!strcmp(df, "channels_first")) *cf = 1;
        else if (!strcmp(df, "channels_last")) *cf = 0;
        else return fv_error_set(err, FV_ERR_FORMAT, "data_format '%s' is neither channels_first nor channels_last", df);
    } else if (dim) {
        if (!strcmp(dim, "th")) *cf = 1;
        else if (!strcmp(dim, "tf")) *cf = 0;
        else if (!strcmp(dim, "default")) *cf = c->theano;
        else return fv_error_set(err, FV_ERR_FORMAT, "dim_ordering '%s' is neither th nor tf", dim);
    } else {
        *cf = 0;
    }
    return FV_OK;
}

static int padding_same(const json_t *cfg, int *same, struct fv_error *err) {
    const char *p = cfg_str(cfg, KEYS("padding", "border_mode"));
    if (!p || !strcmp(p, "valid")) *same = 0;
    else if (!strcmp(p, "same")) *same = 1;
    else return fv_error_set(err, FV_ERR_UNSUPPORTED, "padding '%s' (featviz knows 'same' and 'valid')", p);
    return FV_OK;
}

/* The activation of a layer: a name, or (Keras 3) a serialized object. */
static int parse_activation(const struct fv_kctx *c, const json_t *v, struct fv_act *a,
                            struct fv_error *err) {
    if (!v || json_is_null(v)) {
        memset(a, 0, sizeof *a);
        a->max_value = -1;
        return FV_OK;
    }
    if (json_is_object(v)) {
        const json_t *inner = json_object_get(v, "config");
        const char *name = json_is_string(json_object_get(inner, "name"))
                               ? json_string_value(json_object_get(inner, "name"))
                               : NULL;
        if (!name && json_is_string(json_object_get(v, "class_name")))
            name = json_string_value(json_object_get(v, "class_name"));
        if (!name) return fv_error_set(err, FV_ERR_UNSUPPORTED, "activation is an object featviz cannot read");
        return fv_act_parse(name, c->keras_major >= 3, a, err);
    }
    if (!json_is_string(v)) return fv_error_set(err, FV_ERR_FORMAT, "activation is not a name");
    return fv_act_parse(json_string_value(v), c->keras_major >= 3, a, err);
}

static int layer_activation(const struct fv_kctx *c, const json_t *cfg, struct fv_layer *l,
                            struct fv_error *err) {
    return parse_activation(c, json_object_get(cfg, "activation"), &l->act, err);
}

/* ---- per-class translation ---- */

static int make_conv(const struct fv_kctx *c, const char *cls, const json_t *cfg,
                     struct fv_layer *l, struct fv_kspec *s, struct fv_error *err) {
    struct fv_conv_params *p = &l->p.conv;
    int k[2] = {0, 0}, st[2] = {1, 1}, dil[2] = {1, 1};
    int depthwise = !strcmp(cls, "DepthwiseConv2D");
    int separable = !strncmp(cls, "SeparableConv", 13);
    const json_t *ks = get(cfg, KEYS("kernel_size"));
    if (ks) {
        if (!cfg_pair(ks, k)) FAIL("kernel_size is not an int or a pair");
    } else if (!cfg_int(get(cfg, KEYS("nb_row")), &k[0]) || !cfg_int(get(cfg, KEYS("nb_col")), &k[1])) {
        FAIL("no kernel_size (nor nb_row/nb_col)");
    }
    const json_t *sv = get(cfg, KEYS("strides", "subsample"));
    if (sv && !cfg_pair(sv, st)) FAIL("strides is not an int or a pair");
    const json_t *dv = get(cfg, KEYS("dilation_rate", "atrous_rate"));
    if (dv && !cfg_pair(dv, dil)) FAIL("dilation_rate is not an int or a pair");
    if (k[0] < 1 || k[1] < 1 || st[0] < 1 || st[1] < 1 || dil[0] < 1 || dil[1] < 1 ||
        k[0] > 4096 || k[1] > 4096 || st[0] > 4096 || st[1] > 4096 || dil[0] > 4096 || dil[1] > 4096)
        FAIL("kernel %dx%d, strides %dx%d, dilation %dx%d out of range", k[0], k[1], st[0], st[1], dil[0], dil[1]);
    p->kh = k[0], p->kw = k[1], p->sh = st[0], p->sw = st[1], p->dh = dil[0], p->dw = dil[1];
    int rc = padding_same(cfg, &p->same, err);
    if (rc) return rc;
    if ((rc = data_format_cf(c, cfg, &l->cf, err))) return rc;
    if ((rc = layer_activation(c, cfg, l, err))) return rc;
    p->use_bias = cfg_bool(cfg, KEYS("use_bias", "bias"), 1);
    p->groups = 1;
    const json_t *g = get(cfg, KEYS("groups"));
    if (g && (!cfg_int(g, &p->groups) || p->groups < 1)) FAIL("groups is not a positive int");
    p->multiplier = 1;
    if (depthwise || separable) {
        const json_t *m = get(cfg, KEYS("depth_multiplier"));
        if (m && (!cfg_int(m, &p->multiplier) || p->multiplier < 1)) FAIL("depth_multiplier is not a positive int");
    }
    if (!depthwise) {
        if (!cfg_int(get(cfg, KEYS("filters", "nb_filter")), &p->filters) || p->filters < 1 ||
            p->filters > 1000000)
            FAIL("filters is missing or not a positive int");
    }
    l->ops = depthwise ? &fv_depthwise_ops : separable ? &fv_separable_ops : &fv_conv2d_ops;
    s->n_trainable = (separable ? 2 : 1) + p->use_bias;
    /* Keras 1 with dim_ordering th stores kernels (out, in, kh, kw). */
    const char *dim = cfg_str(cfg, KEYS("dim_ordering"));
    s->th_kernel = dim && (!strcmp(dim, "th") || (!strcmp(dim, "default") && c->theano));
    /* Theano convolves (flipped kernels); Keras flips only regular convolutions. */
    if (!depthwise && !separable) {
        if (c->flip_kernels >= 0) s->flip = c->flip_kernels;
        else s->flip = c->theano || (c->keras_major == 1 && s->th_kernel);
    }
    return FV_OK;
}

static int make_dense(const struct fv_kctx *c, const char *cls, const json_t *cfg,
                      struct fv_layer *l, struct fv_kspec *s, struct fv_error *err) {
    (void)cls;
    if (!cfg_int(get(cfg, KEYS("units", "output_dim")), &l->p.conv.filters) ||
        l->p.conv.filters < 1 || l->p.conv.filters > 100000000)
        FAIL("units is missing or not a positive int");
    l->p.conv.use_bias = cfg_bool(cfg, KEYS("use_bias", "bias"), 1);
    int rc = layer_activation(c, cfg, l, err);
    if (rc) return rc;
    l->ops = &fv_dense_ops;
    s->n_trainable = 1 + l->p.conv.use_bias;
    return FV_OK;
}

static int make_pool(const struct fv_kctx *c, const char *cls, const json_t *cfg,
                     struct fv_layer *l, struct fv_kspec *s, struct fv_error *err) {
    (void)s;
    int ps[2] = {2, 2}, st[2];
    const json_t *pv = get(cfg, KEYS("pool_size"));
    if (pv && !cfg_pair(pv, ps)) FAIL("pool_size is not an int or a pair");
    st[0] = ps[0], st[1] = ps[1];
    const json_t *sv = get(cfg, KEYS("strides"));
    if (sv && !cfg_pair(sv, st)) FAIL("strides is not an int or a pair");
    if (ps[0] < 1 || ps[1] < 1 || st[0] < 1 || st[1] < 1 || ps[0] > 65536 || ps[1] > 65536 ||
        st[0] > 65536 || st[1] > 65536)
        FAIL("pool %dx%d, strides %dx%d out of range", ps[0], ps[1], st[0], st[1]);
    l->p.pool.ph = ps[0], l->p.pool.pw = ps[1], l->p.pool.sh = st[0], l->p.pool.sw = st[1];
    int rc = padding_same(cfg, &l->p.pool.same, err);
    if (rc) return rc;
    if ((rc = data_format_cf(c, cfg, &l->cf, err))) return rc;
    l->ops = strstr(cls, "Max") ? &fv_maxpool_ops : &fv_avgpool_ops;
    return FV_OK;
}

static int make_global_pool(const struct fv_kctx *c, const char *cls, const json_t *cfg,
                            struct fv_layer *l, struct fv_kspec *s, struct fv_error *err) {
    (void)s;
    int rc = data_format_cf(c, cfg, &l->cf, err);
    if (rc) return rc;
    l->p.pool.keepdims = cfg_bool(cfg, KEYS("keepdims"), 0);
    l->ops = strstr(cls, "Max") ? &fv_gmaxpool_ops : &fv_gavgpool_ops;
    return FV_OK;
}

static int make_identity(const struct fv_kctx *c, const char *cls, const json_t *cfg,
                         struct fv_layer *l, struct fv_kspec *s, struct fv_error *err) {
    (void)c, (void)cls, (void)cfg, (void)s, (void)err;
    l->ops = &fv_identity_ops;
    return FV_OK;
}

static int make_activation(const struct fv_kctx *c, const char *cls, const json_t *cfg,
                           struct fv_layer *l, struct fv_kspec *s, struct fv_error *err) {
    (void)s;
    l->ops = &fv_identity_ops;
    l->act_axis = -1;
    memset(&l->act, 0, sizeof l->act);
    l->act.max_value = -1;
    if (!strcmp(cls, "Activation")) {
        const json_t *v = json_object_get(cfg, "activation");
        if (!v) FAIL("no activation");
        return parse_activation(c, v, &l->act, err);
    }
    if (!strcmp(cls, "ReLU")) {
        l->act.kind = FV_ACT_RELU;
        l->act.max_value = cfg_float(cfg, KEYS("max_value"), -1);
        l->act.alpha = cfg_float(cfg, KEYS("negative_slope"), 0);
        l->act.threshold = cfg_float(cfg, KEYS("threshold"), 0);
    } else if (!strcmp(cls, "LeakyReLU")) {
        l->act.kind = FV_ACT_RELU;
        l->act.alpha = cfg_float(cfg, KEYS("negative_slope", "alpha"), 0.3f);
    } else if (!strcmp(cls, "ThresholdedReLU")) {
        l->act.kind = FV_ACT_RELU;
        l->act.threshold = cfg_float(cfg, KEYS("theta"), 1.0f);
    } else if (!strcmp(cls, "ELU")) {
        l->act.kind = FV_ACT_ELU;
        l->act.alpha = cfg_float(cfg, KEYS("alpha"), 1.0f);
    } else if (!strcmp(cls, "Softmax")) {
        l->act.kind = FV_ACT_SOFTMAX;
        const json_t *ax = get(cfg, KEYS("axis"));
        if (ax && !cfg_int(ax, &l->act_axis)) FAIL("axis is not an int");
        /* Keras counts the batch axis; -1 stays "last" */
        if (l->act_axis > 0) l->act_axis -= 1;
        else if (l->act_axis == 0) FAIL("softmax over the batch axis");
    }
    return FV_OK;
}

static int make_prelu(const struct fv_kctx *c, const char *cls, const json_t *cfg,
                      struct fv_layer *l, struct fv_kspec *s, struct fv_error *err) {
    (void)c, (void)cls, (void)cfg, (void)err;
    l->ops = &fv_prelu_ops;
    s->n_trainable = 1;
    return FV_OK;
}

static int make_bn(const struct fv_kctx *c, const char *cls, const json_t *cfg,
                   struct fv_layer *l, struct fv_kspec *s, struct fv_error *err) {
    (void)cls;
    const json_t *ax = get(cfg, KEYS("axis"));
    int axis = -1;
    if (json_is_array(ax)) {
        if (json_array_size(ax) != 1) FAIL("normalising over several axes is not supported");
        ax = json_array_get(ax, 0);
    }
    if (ax && !cfg_int(ax, &axis)) FAIL("axis is not an int");
    if (axis == 0) FAIL("axis 0 is the batch axis");
    const json_t *mode = get(cfg, KEYS("mode"));
    int m = 0;
    if (mode && cfg_int(mode, &m) && m != 0)
        return fv_error_set(err, FV_ERR_UNSUPPORTED,
                            "Keras 1 BatchNormalization mode %d uses batch statistics at inference; only mode 0 can be reproduced", m);
    (void)c;
    s->node.axis = axis;
    s->bn_scale = cfg_bool(cfg, KEYS("scale"), 1);
    s->bn_center = cfg_bool(cfg, KEYS("center"), 1);
    s->bn_epsilon = cfg_float(cfg, KEYS("epsilon"), 1e-3f);
    s->n_trainable = s->bn_scale + s->bn_center;
    s->n_fixed = 2;
    l->p.bn.epsilon = s->bn_epsilon;
    l->ops = &fv_batchnorm_ops;
    return FV_OK;
}

/* ZeroPadding2D / Cropping2D amounts: int, [a, b], [[t, b], [l, r]], Keras 1
 * 4-list (top, bottom, left, right) or dict {top_pad, ...}. */
static int read_pads(const json_t *v, const char *dict_suffix, struct fv_pad_params *p) {
    int a[2];
    if (cfg_int(v, &a[0])) {
        p->top = p->bottom = p->left = p->right = a[0];
        return 1;
    }
    if (json_is_object(v)) {
        char key[32];
        int *dst[4] = {&p->top, &p->bottom, &p->left, &p->right};
        const char *names[4] = {"top", "bottom", "left", "right"};
        for (int i = 0; i < 4; i++) {
            snprintf(key, sizeof key, "%s%s", names[i], dict_suffix);
            *dst[i] = 0;
            const json_t *x = json_object_get(v, key);
            if (x && !cfg_int(x, dst[i])) return 0;
        }
        return 1;
    }
    if (!json_is_array(v)) return 0;
    size_t n = json_array_size(v);
    if (n == 4) {
        return cfg_int(json_array_get(v, 0), &p->top) && cfg_int(json_array_get(v, 1), &p->bottom) &&
               cfg_int(json_array_get(v, 2), &p->left) && cfg_int(json_array_get(v, 3), &p->right);
    }
    if (n != 2) return 0;
    int h[2], w[2];
    if (!cfg_pair(json_array_get(v, 0), h) || !cfg_pair(json_array_get(v, 1), w)) return 0;
    p->top = h[0], p->bottom = h[1], p->left = w[0], p->right = w[1];
    return 1;
}

static int make_pad_crop(const struct fv_kctx *c, const char *cls, const json_t *cfg,
                         struct fv_layer *l, struct fv_kspec *s, struct fv_error *err) {
    (void)s;
    int crop = !strcmp(cls, "Cropping2D");
    const json_t *v = get(cfg, crop ? KEYS("cropping") : KEYS("padding"));
    if (!v) {
        l->p.pad.top = l->p.pad.bottom = l->p.pad.left = l->p.pad.right = crop ? 0 : 1;
    } else if (!read_pads(v, crop ? "_crop" : "_pad", &l->p.pad)) {
        FAIL("%s is not an int, a pair or ((top, bottom), (left, right))", crop ? "cropping" : "padding");
    }
    struct fv_pad_params *p = &l->p.pad;
    if (p->top < 0 || p->bottom < 0 || p->left < 0 || p->right < 0 || p->top > 1000000 ||
        p->bottom > 1000000 || p->left > 1000000 || p->right > 1000000)
        FAIL("amounts out of range");
    l->ops = crop ? &fv_crop_ops : &fv_zeropad_ops;
    return data_format_cf(c, cfg, &l->cf, err);
}

static int make_upsample(const struct fv_kctx *c, const char *cls, const json_t *cfg,
                         struct fv_layer *l, struct fv_kspec *s, struct fv_error *err) {
    (void)cls, (void)s;
    int f[2] = {2, 2};
    const json_t *v = get(cfg, KEYS("size"));
    if (v && !cfg_pair(v, f)) FAIL("size is not an int or a pair");
    if (f[0] < 1 || f[1] < 1 || f[0] > 4096 || f[1] > 4096) FAIL("size %dx%d out of range", f[0], f[1]);
    l->p.up.fh = f[0], l->p.up.fw = f[1];
    const char *in = cfg_str(cfg, KEYS("interpolation"));
    if (!in || !strcmp(in, "nearest")) l->p.up.bilinear = 0;
    else if (!strcmp(in, "bilinear")) l->p.up.bilinear = c->legacy_resize ? 2 : 1;
    else return fv_error_set(err, FV_ERR_UNSUPPORTED, "interpolation '%s' (featviz knows nearest and bilinear)", in);
    l->ops = &fv_upsample_ops;
    return data_format_cf(c, cfg, &l->cf, err);
}

static int make_flatten(const struct fv_kctx *c, const char *cls, const json_t *cfg,
                        struct fv_layer *l, struct fv_kspec *s, struct fv_error *err) {
    (void)cls;
    /* Keras >= 2.1.6 Flatten(channels_first) moves channels last before
     * flattening; older configs have no data_format: plain Keras order. */
    const char *df = cfg_str(cfg, KEYS("data_format"));
    l->cf = df && !strcmp(df, "channels_first");
    (void)c, (void)err;
    l->ops = &fv_reshape_ops;
    l->p.reshape.rank = 1;
    l->p.reshape.d[0] = -1;
    s->node.flatten = 1;
    return FV_OK;
}

static int make_reshape(const struct fv_kctx *c, const char *cls, const json_t *cfg,
                        struct fv_layer *l, struct fv_kspec *s, struct fv_error *err) {
    (void)c, (void)cls, (void)s;
    const json_t *v = get(cfg, KEYS("target_shape", "dims"));
    if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > FV_MAX_RANK)
        FAIL("target_shape is not a list of 1 to %d ints", FV_MAX_RANK);
    int infer = 0;
    l->p.reshape.rank = (int)json_array_size(v);
    for (int i = 0; i < l->p.reshape.rank; i++) {
        int d;
        if (!cfg_int(json_array_get(v, (size_t)i), &d) || d == 0 || d < -1 || (d == -1 && infer++))
            FAIL("target_shape entry %d is not a positive int (or a single -1)", i);
        l->p.reshape.d[i] = d;
    }
    l->ops = &fv_reshape_ops;
    return FV_OK;
}

static int make_permute(const struct fv_kctx *c, const char *cls, const json_t *cfg,
                        struct fv_layer *l, struct fv_kspec *s, struct fv_error *err) {
    (void)c, (void)cls;
    const json_t *v = get(cfg, KEYS("dims"));
    int n = json_is_array(v) ? (int)json_array_size(v) : 0;
    if (n < 1 || n > FV_MAX_RANK) FAIL("dims is not a list of 1 to %d ints", FV_MAX_RANK);
    int seen = 0;
    for (int i = 0; i < n; i++) {
        int d;
        if (!cfg_int(json_array_get(v, (size_t)i), &d) || d < 1 || d > n || (seen & (1 << d)))
            FAIL("dims is not a permutation of 1..%d", n);
        seen |= 1 << d;
        s->node.permute_dims[i] = d - 1;
    }
    s->node.is_permute = 1;
    l->p.reshape.rank = n;  /* remembered for the rank check */
    l->ops = &fv_identity_ops;
    return FV_OK;
}

static int make_merge(const struct fv_kctx *c, const char *cls, const json_t *cfg,
                      struct fv_layer *l, struct fv_kspec *s, struct fv_error *err) {
    (void)c;
    static const struct { const char *cls, *mode; int op; } ops[] = {
        {"Add", "sum", FV_MERGE_ADD},      {"Subtract", NULL, FV_MERGE_SUB},
        {"Multiply", "mul", FV_MERGE_MUL}, {"Average", "ave", FV_MERGE_AVG},
        {"Maximum", "max", FV_MERGE_MAX},  {"Minimum", NULL, FV_MERGE_MIN},
    };
    const char *mode = NULL;
    if (!strcmp(cls, "Merge")) {
        mode = cfg_str(cfg, KEYS("mode"));
        if (!mode) return fv_error_set(err, FV_ERR_UNSUPPORTED, "Merge mode is not a name (a Python function?)");
    }
    s->min_inputs = 2;
    s->max_inputs = FV_MAX_IN;
    if (!strcmp(cls, "Concatenate") || (mode && !strcmp(mode, "concat"))) {
        int axis = -1;
        const json_t *ax = get(cfg, KEYS("axis", "concat_axis"));
        if (ax && !cfg_int(ax, &axis)) FAIL("axis is not an int");
        if (axis == 0) FAIL("concatenation along the batch axis");
        s->node.axis = axis;
        l->ops = &fv_concat_ops;
        return FV_OK;
    }
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        if ((!mode && !strcmp(cls, ops[i].cls)) || (mode && ops[i].mode && !strcmp(mode, ops[i].mode))) {
            l->p.merge.op = ops[i].op;
            l->ops = &fv_merge_ops;
            if (ops[i].op == FV_MERGE_SUB) s->max_inputs = 2;
            return FV_OK;
        }
    }
    return fv_error_set(err, FV_ERR_UNSUPPORTED, "merge mode '%s'", mode ? mode : cls);
}

/* A number or a list of numbers (per channel) from the config: *n values
 * into out (at most max); 0 when absent or not numbers. */
static int cfg_floats(const json_t *v, float *out, int max, int *n) {
    if (json_is_number(v)) {
        out[0] = (float)json_number_value(v);
        *n = 1;
        return 1;
    }
    if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > (size_t)max) return 0;
    *n = (int)json_array_size(v);
    for (int i = 0; i < *n; i++) {
        const json_t *e = json_array_get(v, (size_t)i);
        if (!json_is_number(e)) return 0;
        out[i] = (float)json_number_value(e);
    }
    return 1;
}

/* Per-channel y = x*scale + shift as a BatchNormalization node on the last axis. */
static int channel_affine(struct fv_layer *l, struct fv_kspec *s, const float *scale,
                          const float *shift, int n, struct fv_error *err) {
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    if (!a || !b) {
        free(a), free(b);
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    }
    memcpy(a, scale, (size_t)n * sizeof *a);
    memcpy(b, shift, (size_t)n * sizeof *b);
    l->n_w = 2;
    l->w[0] = a, l->w[1] = b;
    l->w_len[0] = l->w_len[1] = (size_t)n;
    s->node.axis = -1;
    l->ops = &fv_batchnorm_ops;
    return FV_OK;
}

#define MAX_CHANNEL_CONSTS 2048 /* per-channel constants in a config (on the stack) */

static int make_rescaling(const struct fv_kctx *c, const char *cls, const json_t *cfg,
                          struct fv_layer *l, struct fv_kspec *s, struct fv_error *err) {
    (void)c, (void)cls;
    float sc[MAX_CHANNEL_CONSTS], of[MAX_CHANNEL_CONSTS];
    int ns = 1, no = 1;
    sc[0] = 1.f, of[0] = 0.f;
    const json_t *vs = get(cfg, KEYS("scale")), *vo = get(cfg, KEYS("offset"));
    if (vs && !cfg_floats(vs, sc, MAX_CHANNEL_CONSTS, &ns)) FAIL("scale is not a number or a list of numbers");
    if (vo && !cfg_floats(vo, of, MAX_CHANNEL_CONSTS, &no)) FAIL("offset is not a number or a list of numbers");
    if (ns == 1 && no == 1) {
        l->p.affine.scale = sc[0];
        l->p.affine.offset = of[0];
        l->ops = &fv_affine_ops;
        return FV_OK;
    }
    int n = ns > no ? ns : no;
    if ((ns != 1 && ns != n) || (no != 1 && no != n)) FAIL("scale has %d values and offset %d", ns, no);
    for (int i = n - 1; i >= 0; i--) sc[i] = sc[ns == 1 ? 0 : i], of[i] = of[no == 1 ? 0 : i];
    return channel_affine(l, s, sc, of, n, err);
}

/* Normalization: (x - mean) / max(sqrt(variance), 1e-7) along one axis (x *
 * sqrt(variance) + mean when invert), with mean and variance in the config or
 * adapted and stored as weights (mean, variance, count). */
static int make_normalization(const struct fv_kctx *c, const char *cls, const json_t *cfg,
                              struct fv_layer *l, struct fv_kspec *s, struct fv_error *err) {
    (void)c, (void)cls;
    const json_t *ax = get(cfg, KEYS("axis"));
    int axis = -1;
    if (json_is_array(ax)) {
        if (json_array_size(ax) != 1) FAIL("normalising over several axes is not supported");
        ax = json_array_get(ax, 0);
    }
    if (ax && !json_is_null(ax) && !cfg_int(ax, &axis)) FAIL("axis is not an int");
    if (axis == 0 || json_is_null(ax)) FAIL("normalising with one mean over all axes is not supported");
    s->norm = 1;
    s->norm_invert = cfg_bool(cfg, KEYS("invert"), 0);
    s->node.axis = axis;
    l->ops = &fv_batchnorm_ops;
    const json_t *vm = get(cfg, KEYS("mean")), *vv = get(cfg, KEYS("variance"));
    if ((!vm || json_is_null(vm)) && (!vv || json_is_null(vv))) {
        s->n_fixed = 3; /* adapted: mean, variance, count */
        return FV_OK;
    }
    float mean[MAX_CHANNEL_CONSTS], var[MAX_CHANNEL_CONSTS], sc[MAX_CHANNEL_CONSTS], sh[MAX_CHANNEL_CONSTS];
    int nm, nv;
    if (!cfg_floats(vm, mean, MAX_CHANNEL_CONSTS, &nm) || !cfg_floats(vv, var, MAX_CHANNEL_CONSTS, &nv))
        FAIL("mean and variance are not numbers or lists of numbers");
    int n = nm > nv ? nm : nv;
    if ((nm != 1 && nm != n) || (nv != 1 && nv != n)) FAIL("mean has %d values and variance %d", nm, nv);
    for (int i = 0; i < n; i++) {
        double m = mean[nm == 1 ? 0 : i], sd = sqrt((double)var[nv == 1 ? 0 : i]);
        if (s->norm_invert) sc[i] = (float)(sd > 1e-7 ? sd : 1e-7), sh[i] = (float)m;
        else sc[i] = (float)(1.0 / (sd > 1e-7 ? sd : 1e-7)), sh[i] = (float)(-m / (sd > 1e-7 ? sd : 1e-7));
    }
    return channel_affine(l, s, sc, sh, n, err);
}

/* Resizing (and RandomCrop, which resizes its centred crop at inference). */
static int make_resizing(const struct fv_kctx *c, const char *cls, const json_t *cfg,
                         struct fv_layer *l, struct fv_kspec *s, struct fv_error *err) {
    (void)s;
    int h, w;
    if (!cfg_int(get(cfg, KEYS("height")), &h) || !cfg_int(get(cfg, KEYS("width")), &w) ||
        h < 1 || w < 1 || h > (1 << 16) || w > (1 << 16))
        FAIL("height and width are not sizes");
    const char *in = cfg_str(cfg, KEYS("interpolation"));
    if (!in || !strcmp(in, "bilinear")) l->p.resize.bilinear = 1;
    else if (!strcmp(in, "nearest")) l->p.resize.bilinear = 0;
    else return fv_error_set(err, FV_ERR_UNSUPPORTED, "interpolation '%s' (featviz knows bilinear and nearest)", in);
    if (cfg_bool(cfg, KEYS("pad_to_aspect_ratio"), 0))
        return fv_error_set(err, FV_ERR_UNSUPPORTED, "pad_to_aspect_ratio (featviz resizes whole images or their centred crop)");
    l->p.resize.oh = h, l->p.resize.ow = w;
    l->p.resize.crop = !strcmp(cls, "RandomCrop") || cfg_bool(cfg, KEYS("crop_to_aspect_ratio"), 0);
    l->ops = &fv_resize_ops;
    return data_format_cf(c, cfg, &l->cf, err);
}

static int make_lambda(const struct fv_kctx *c, const char *cls, const json_t *cfg,
                       struct fv_layer *l, struct fv_kspec *s, struct fv_error *err) {
    (void)cls, (void)cfg, (void)s;
    const struct fv_load_opts *o = c->opts;
    for (int i = 0; o && i < o->n_lambdas; i++) {
        if (strcmp(o->lambdas[i].name, l->name)) continue;
        if (o->lambdas[i].identity) {
            l->ops = &fv_identity_ops;
        } else {
            l->ops = &fv_affine_ops;
            l->p.affine.scale = o->lambdas[i].scale;
            l->p.affine.offset = o->lambdas[i].offset;
        }
        return FV_OK;
    }
    return fv_error_set(err, FV_ERR_UNSUPPORTED,
                        "is Python code that cannot run outside Python; declare what it computes "
                        "with --lambda %s=identity or --lambda %s=SCALE,OFFSET (x*SCALE+OFFSET, "
                        "e.g. %s=0.0078431373,-1 for x/127.5-1)",
                        l->name, l->name, l->name);
}

static int make_input(const struct fv_kctx *c, const char *cls, const json_t *cfg,
                      struct fv_layer *l, struct fv_kspec *s, struct fv_error *err) {
    (void)c, (void)cls, (void)cfg, (void)err;
    s->node.is_input = 1;
    l->ops = NULL;
    return FV_OK;
}

typedef int (*make_fn)(const struct fv_kctx *, const char *, const json_t *, struct fv_layer *,
                       struct fv_kspec *, struct fv_error *);

static const struct {
    const char *cls;
    make_fn make;
} classes[] = {
    {"InputLayer", make_input},
    {"Conv2D", make_conv},
    {"Convolution2D", make_conv},
    {"AtrousConvolution2D", make_conv},
    {"SeparableConv2D", make_conv},
    {"SeparableConvolution2D", make_conv},
    {"DepthwiseConv2D", make_conv},
    {"Dense", make_dense},
    {"MaxPooling2D", make_pool},
    {"MaxPool2D", make_pool},
    {"AveragePooling2D", make_pool},
    {"AvgPool2D", make_pool},
    {"GlobalAveragePooling2D", make_global_pool},
    {"GlobalAvgPool2D", make_global_pool},
    {"GlobalMaxPooling2D", make_global_pool},
    {"GlobalMaxPool2D", make_global_pool},
    {"Flatten", make_flatten},
    {"Reshape", make_reshape},
    {"Permute", make_permute},
    {"Dropout", make_identity},
    {"SpatialDropout2D", make_identity},
    {"GaussianNoise", make_identity},
    {"GaussianDropout", make_identity},
    {"AlphaDropout", make_identity},
    {"ActivityRegularization", make_identity},
    {"Activation", make_activation},
    {"ReLU", make_activation},
    {"LeakyReLU", make_activation},
    {"ThresholdedReLU", make_activation},
    {"ELU", make_activation},
    {"Softmax", make_activation},
    {"PReLU", make_prelu},
    {"BatchNormalization", make_bn},
    {"ZeroPadding2D", make_pad_crop},
    {"Cropping2D", make_pad_crop},
    {"UpSampling2D", make_upsample},
    {"Add", make_merge},
    {"Subtract", make_merge},
    {"Multiply", make_merge},
    {"Average", make_merge},
    {"Maximum", make_merge},
    {"Minimum", make_merge},
    {"Concatenate", make_merge},
    {"Merge", make_merge},
    {"Rescaling", make_rescaling},
    {"Normalization", make_normalization},
    {"Resizing", make_resizing},
    {"RandomCrop", make_resizing},
    /* preprocessing layers that change images only in training */
    {"Identity", make_identity},
    {"RandomFlip", make_identity},
    {"RandomRotation", make_identity},
    {"RandomZoom", make_identity},
    {"RandomContrast", make_identity},
    {"RandomTranslation", make_identity},
    {"RandomBrightness", make_identity},
    {"RandomGrayscale", make_identity},
    {"RandomHue", make_identity},
    {"RandomSaturation", make_identity},
    {"RandomSharpness", make_identity},
    {"RandomShear", make_identity},
    {"RandomColorJitter", make_identity},
    {"RandomColorDegeneration", make_identity},
    {"RandomErasing", make_identity},
    {"RandomGaussianBlur", make_identity},
    {"RandomInvert", make_identity},
    {"RandomPerspective", make_identity},
    {"RandomPosterization", make_identity},
    {"Lambda", make_lambda},
};

int fv_keras_make_layer(const struct fv_kctx *ctx, const char *cls, const json_t *cfg,
                        struct fv_layer *l, struct fv_kspec *spec, struct fv_error *err) {
    memset(spec, 0, sizeof *spec);
    spec->min_inputs = spec->max_inputs = 1;
    l->act.max_value = -1;
    l->act_axis = -1;
    snprintf(l->keras_class, sizeof l->keras_class, "%s", cls);
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++) {
        if (strcmp(classes[i].cls, cls)) continue;
        int rc = classes[i].make(ctx, cls, cfg, l, spec, err);
        if (rc) return where(err, ctx, l);
        return FV_OK;
    }
    return fv_error_set(err, FV_ERR_UNSUPPORTED,
                        "%s: layer '%s' has class '%s', which featviz does not support", ctx->path,
                        l->name, cls);
}

/* ---- weights ---- */

static int expect_len(struct fv_error *err, const struct fv_h5_weight *w, size_t want,
                      const char *what) {
    if (w->count != want)
        return fv_error_set(err, FV_ERR_SHAPE, "weight '%s' has %zu values, %s needs %zu", w->name,
                            w->count, what, want);
    return FV_OK;
}

static float *take(struct fv_h5_weight *w) {
    float *d = w->data;
    w->data = NULL;
    return d;
}

/* (out, in, kh, kw) -> (kh, kw, in, out), optionally rotating by 180 degrees. */
static void conv_kernel_convert(float *dst, const float *src, int kh, int kw, int ci, int co,
                                int th, int flip) {
    for (int y = 0; y < kh; y++)
        for (int x = 0; x < kw; x++)
            for (int i = 0; i < ci; i++)
                for (int o = 0; o < co; o++) {
                    int sy = flip ? kh - 1 - y : y, sx = flip ? kw - 1 - x : x;
                    size_t s = th ? (((size_t)o * ci + i) * kh + sy) * kw + sx
                                  : (((size_t)sy * kw + sx) * ci + i) * co + o;
                    dst[(((size_t)y * kw + x) * ci + i) * co + o] = src[s];
                }
}

static int weights_conv(const struct fv_kctx *c, struct fv_layer *l, const struct fv_kspec *s,
                        struct fv_h5_weight *w, struct fv_error *err) {
    struct fv_conv_params *p = &l->p.conv;
    struct fv_h5_weight *k = &w[0];
    if (k->rank != 4) return fv_error_set(err, FV_ERR_SHAPE, "kernel '%s' has rank %d, expected 4", k->name, k->rank);
    int kh = p->kh, kw = p->kw;
    size_t ci, co;
    if (s->th_kernel) {
        co = k->dims[0], ci = k->dims[1];
        if (k->dims[2] != (size_t)kh || k->dims[3] != (size_t)kw) goto shape;
    } else {
        ci = k->dims[2], co = k->dims[3];
        if (k->dims[0] != (size_t)kh || k->dims[1] != (size_t)kw) goto shape;
    }
    if (l->ops == &fv_conv2d_ops && co != (size_t)p->filters) goto shape;
    if (l->ops != &fv_conv2d_ops && co != (size_t)p->multiplier) goto shape;
    if (s->th_kernel || s->flip) {
        float *dst = malloc(k->count * sizeof(float));
        if (!dst) return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
        conv_kernel_convert(dst, k->data, kh, kw, (int)ci, (int)co, s->th_kernel, s->flip);
        free(k->data);
        k->data = dst;
    }
    l->n_w = 0;
    l->w_len[l->n_w] = k->count;
    l->w[l->n_w++] = take(k);
    int next = 1;
    if (l->ops == &fv_separable_ops) {
        struct fv_h5_weight *pw = &w[1];
        size_t cm = ci * (size_t)p->multiplier;
        if (pw->count != cm * (size_t)p->filters || (pw->rank == 4 && pw->dims[3] != (size_t)p->filters))
            return fv_error_set(err, FV_ERR_SHAPE, "pointwise kernel '%s' does not map %zu to %d channels", pw->name, cm, p->filters);
        l->w_len[l->n_w] = pw->count;
        l->w[l->n_w++] = take(pw);
        next = 2;
    }
    if (p->use_bias) {
        size_t nb = l->ops == &fv_depthwise_ops ? ci * (size_t)p->multiplier : (size_t)p->filters;
        int rc = expect_len(err, &w[next], nb, "the bias");
        if (rc) return rc;
        l->w_len[l->n_w] = w[next].count;
        l->w[l->n_w++] = take(&w[next]);
    }
    (void)c;
    return FV_OK;
shape:
    return fv_error_set(err, FV_ERR_SHAPE, "kernel '%s' has shape (%zu,%zu,%zu,%zu), which does not fit kernel_size %dx%d with %d %s",
                        k->name, k->dims[0], k->dims[1], k->dims[2], k->dims[3], kh, kw,
                        l->ops == &fv_conv2d_ops ? p->filters : p->multiplier,
                        l->ops == &fv_conv2d_ops ? "filters" : "as depth_multiplier");
}

static int weights_dense(struct fv_layer *l, struct fv_h5_weight *w, struct fv_error *err) {
    struct fv_h5_weight *k = &w[0];
    size_t units = (size_t)l->p.conv.filters;
    if (k->rank != 2 || k->dims[1] != units)
        return fv_error_set(err, FV_ERR_SHAPE, "kernel '%s' is not (inputs, %zu)", k->name, units);
    l->n_w = 0;
    l->w_len[l->n_w] = k->count;
    l->w[l->n_w++] = take(k);
    if (l->p.conv.use_bias) {
        int rc = expect_len(err, &w[1], units, "the bias");
        if (rc) return rc;
        l->w_len[l->n_w] = w[1].count;
        l->w[l->n_w++] = take(&w[1]);
    }
    return FV_OK;
}

/* Folds y = gamma * (x - mean) / sqrt(var + eps) + beta into y = x*scale + shift. */
static int weights_bn(struct fv_layer *l, const struct fv_kspec *s, struct fv_h5_weight *w,
                      struct fv_error *err) {
    int i = 0;
    const struct fv_h5_weight *gamma = s->bn_scale ? &w[i++] : NULL;
    const struct fv_h5_weight *beta = s->bn_center ? &w[i++] : NULL;
    const struct fv_h5_weight *mean = &w[i++], *var = &w[i++];
    size_t n = mean->count;
    const struct fv_h5_weight *all[4] = {gamma, beta, mean, var};
    for (int k = 0; k < 4; k++)
        if (all[k] && all[k]->count != n)
            return fv_error_set(err, FV_ERR_SHAPE, "weight '%s' has %zu values, '%s' has %zu", all[k]->name,
                                all[k]->count, mean->name, n);
    float *scale = malloc(n * sizeof(float)), *shift = malloc(n * sizeof(float));
    if (!scale || !shift) {
        free(scale), free(shift);
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    }
    for (size_t k = 0; k < n; k++) {
        double v = (double)var->data[k] + (double)s->bn_epsilon;
        if (v <= 0) {
            free(scale), free(shift);
            return fv_error_set(err, FV_ERR_FORMAT, "moving variance %g + epsilon is not positive", (double)var->data[k]);
        }
        double sc = (gamma ? (double)gamma->data[k] : 1.0) / sqrt(v);
        scale[k] = (float)sc;
        shift[k] = (float)((beta ? (double)beta->data[k] : 0.0) - (double)mean->data[k] * sc);
    }
    l->n_w = 2;
    l->w[0] = scale, l->w[1] = shift;
    l->w_len[0] = l->w_len[1] = n;
    return FV_OK;
}

/* Normalization's adapted mean, variance (and count, unused). */
static int weights_norm(struct fv_layer *l, const struct fv_kspec *s, struct fv_h5_weight *w,
                        struct fv_error *err) {
    const struct fv_h5_weight *mean = &w[0], *var = &w[1];
    size_t n = mean->count;
    if (var->count != n)
        return fv_error_set(err, FV_ERR_SHAPE, "weight '%s' has %zu values, '%s' has %zu", var->name,
                            var->count, mean->name, n);
    float *scale = malloc(n * sizeof(float)), *shift = malloc(n * sizeof(float));
    if (!scale || !shift) {
        free(scale), free(shift);
        return fv_error_set(err, FV_ERR_NOMEM, "out of memory");
    }
    for (size_t k = 0; k < n; k++) {
        double sd = sqrt(var->data[k] > 0 ? (double)var->data[k] : 0.0), m = mean->data[k];
        if (s->norm_invert) scale[k] = (float)(sd > 1e-7 ? sd : 1e-7), shift[k] = (float)m;
        else scale[k] = (float)(1.0 / (sd > 1e-7 ? sd : 1e-7)), shift[k] = (float)(-m / (sd > 1e-7 ? sd : 1e-7));
    }
    l->n_w = 2;
    l->w[0] = scale, l->w[1] = shift;
    l->w_len[0] = l->w_len[1] = n;
    return FV_OK;
}

int fv_keras_set_weights(const struct fv_kctx *ctx, struct fv_layer *l,
                         const struct fv_kspec *spec, struct fv_h5_weight *w, int n,
                         struct fv_error *err) {
    int want = spec->n_trainable + spec->n_fixed;
    if (n != want)
        return fv_error_set(err, FV_ERR_FORMAT, "%s: layer '%s' (%s) has %d weights in the file, expected %d",
                            ctx->path, l->name, l->keras_class, n, want);
    int rc = FV_OK;
    l->params_trainable = l->params_fixed = 0;
    for (int i = 0; i < n; i++) {
        if (i < spec->n_trainable) l->params_trainable += w[i].count;
        else l->params_fixed += w[i].count;
    }
    if (n == 0) return FV_OK;
    if (spec->norm)
        rc = weights_norm(l, spec, w, err);
    else if (l->ops == &fv_conv2d_ops || l->ops == &fv_depthwise_ops || l->ops == &fv_separable_ops)
        rc = weights_conv(ctx, l, spec, w, err);
    else if (l->ops == &fv_dense_ops)
        rc = weights_dense(l, w, err);
    else if (l->ops == &fv_batchnorm_ops)
        rc = weights_bn(l, spec, w, err);
    else if (l->ops == &fv_prelu_ops) {
        l->n_w = 1;
        l->w_len[0] = w[0].count;
        l->p.reshape.rank = w[0].rank;
        for (int i = 0; i < w[0].rank && i < FV_MAX_RANK; i++) l->p.reshape.d[i] = (int)w[0].dims[i];
        if (w[0].rank > FV_MAX_RANK) rc = fv_error_set(err, FV_ERR_SHAPE, "alpha '%s' has rank %d", w[0].name, w[0].rank);
        else l->w[0] = take(&w[0]);
    }
    if (rc) return where(err, ctx, l);
    return FV_OK;
}
