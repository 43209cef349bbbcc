#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

static const char *join(char *buf, size_t cap, const char *a, const char *b) {
    snprintf(buf, cap, "%s/%s", a, b);
    return buf;
}

const char *shared_path(const char *rel) {
    static char buf[8][4096];
    static int k;
    k = (k + 1) % 8;
    return join(buf[k], sizeof buf[k], FV_SHARED_DIR, rel);
}

const char *data_path(const char *rel) {
    static char buf[8][4096];
    static int k;
    k = (k + 1) % 8;
    return join(buf[k], sizeof buf[k], FV_TEST_DATA, rel);
}

const char *tmp_path(const char *rel) {
    static char buf[8][4096];
    static int k;
    k = (k + 1) % 8;
    mkdir(FV_TMP_DIR, 0777);
    return join(buf[k], sizeof buf[k], FV_TMP_DIR, rel);
}

double rel_err_f64(const float *a, const double *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > num || isnan(d)) num = isnan(d) ? (double)INFINITY : d;
        if (fabs(b[i]) > den) den = fabs(b[i]);
    }
    return den > 0 ? num / den : num;
}

double rel_err_f32(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > num || isnan(d)) num = isnan(d) ? (double)INFINITY : d;
        if (fabs((double)b[i]) > den) den = fabs((double)b[i]);
    }
    return den > 0 ? num / den : num;
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi) {
    for (size_t i = 0; i < n; i++) {
        double u = (double)(splitmix(&seed) >> 11) / 9007199254740992.0;
        x[i] = (float)((double)lo + (double)(hi - lo) * u);
    }
}

void fill_distinct(float *x, size_t n, uint64_t seed, float lo, float hi) {
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((double)lo + (double)(hi - lo) * ((double)i + 0.5) / (double)n);
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(splitmix(&seed) % i);
        float t = x[i - 1];
        x[i - 1] = x[j];
        x[j] = t;
    }
}

static double weighted_sum(const struct fv_layer *l, struct fv_io *io, const float *w) {
    l->ops->forward(l, io);
    size_t ny = (size_t)io->n * fv_shape_count(&io->out);
    double s = 0;
    for (size_t i = 0; i < ny; i++) s += (double)w[i] * (double)io->y[i];
    return s;
}

double gradcheck_layer(const struct fv_layer *l, int n, int n_in, const struct fv_shape *in,
                       float *const *x, double eps, size_t max_points, uint64_t seed) {
    struct fv_io io;
    memset(&io, 0, sizeof io);
    io.n = n;
    io.n_in = n_in;
    io.grad = 1;
    for (int i = 0; i < n_in; i++) io.in[i] = in[i];
    struct fv_error err = {0};
    if (l->ops->shape(l, &io, &err) != FV_OK) {
        fprintf(stderr, "gradcheck: shape failed: %s\n", err.msg);
        return INFINITY;
    }
    float *xs[FV_MAX_IN], *dxs[FV_MAX_IN];
    size_t nx[FV_MAX_IN];
    for (int i = 0; i < n_in; i++) {
        nx[i] = (size_t)n * fv_shape_count(&in[i]);
        xs[i] = malloc(nx[i] * sizeof(float));
        dxs[i] = calloc(nx[i], sizeof(float));
        if (x && x[i])
            memcpy(xs[i], x[i], nx[i] * sizeof(float));
        else
            fill_distinct(xs[i], nx[i], seed + 17u * (uint64_t)i, -2.f, 2.f);
        io.x[i] = xs[i];
        io.dx[i] = dxs[i];
    }
    size_t ny = (size_t)n * fv_shape_count(&io.out);
    io.y = malloc(ny * sizeof(float));
    float *w = malloc(ny * sizeof(float));
    fill_uniform(w, ny, seed + 99, -1.f, 1.f);
    io.dy = w;
    io.ws = io.ws_floats ? calloc(io.ws_floats, sizeof(float)) : NULL;
    if (fv_layer_prepare(l, &io) != FV_OK) fail_msg("out of memory");

    l->ops->forward(l, &io);
    l->ops->backward(l, &io);

    double num_max = 0, diff_max = 0;
    for (int i = 0; i < n_in; i++) {
        size_t step = (max_points && nx[i] > max_points) ? nx[i] / max_points : 1;
        for (size_t k = 0; k < nx[i]; k += step) {
            float keep = xs[i][k];
            xs[i][k] = (float)((double)keep + eps);
            double hi = (double)xs[i][k];
            double fp = weighted_sum(l, &io, w);
            xs[i][k] = (float)((double)keep - eps);
            double lo = (double)xs[i][k];
            double fm = weighted_sum(l, &io, w);
            xs[i][k] = keep;
            double num = (fp - fm) / (hi - lo);
            double d = fabs(num - (double)dxs[i][k]);
            if (d > diff_max || isnan(d)) diff_max = isnan(d) ? (double)INFINITY : d;
            if (fabs(num) > num_max) num_max = fabs(num);
        }
    }
    for (int i = 0; i < n_in; i++) {
        free(xs[i]);
        free(dxs[i]);
    }
    free(io.y);
    free(w);
    free(io.ws);
    free(io.cache);
    return num_max > 0 ? diff_max / num_max : diff_max;
}

int run_capture(char **out, const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char full[8300];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += r;
        if (cap - len < 2) buf = realloc(buf, cap *= 2);
    }
    buf[len] = 0;
    int st = pclose(p);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

char *read_text(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    fclose(f);
    b[got] = 0;
    if (len) *len = got;
    return b;
}

/* The line "name count ..." of a fixture file (kept in memory), at count. */
static const char *fixture_line(const char *file, const char *name) {
    static char *text[8];
    static char path[8][256];
    int k = 0;
    while (k < 8 && text[k] && strcmp(path[k], file)) k++;
    if (k == 8) k = 0, free(text[0]), text[0] = NULL;
    if (!text[k]) {
        snprintf(path[k], sizeof path[k], "%s", file);
        text[k] = read_text(data_path(file), NULL);
    }
    assert_non_null(text[k]);
    size_t len = strlen(name);
    for (const char *p = text[k]; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, name, len) == 0 && p[len] == ' ') return p + len + 1;
    fail_msg("fixture %s not found in %s", name, file);
    return NULL;
}

size_t fixture_length(const char *file, const char *name) {
    return strtoul(fixture_line(file, name), NULL, 10);
}

double *fixture_array(const char *file, const char *name, size_t expect) {
    {
        const char *p = fixture_line(file, name);
        char *end;
        size_t n = strtoul(p, &end, 10);
        if (n != expect) fail_msg("fixture %s: %zu values, expected %zu", name, n, expect);
        double *v = malloc(n * sizeof(double));
        for (size_t i = 0; i < n; i++) v[i] = strtod(end, &end);
        return v;
    }
}

void test_npy_free(struct test_npy *a) {
    free(a->data);
    memset(a, 0, sizeof *a);
}

const char *test_npy_read(const char *path, struct test_npy *a) {
    memset(a, 0, sizeof *a);
    FILE *f = fopen(path, "rb");
    if (!f) return "cannot open";
    unsigned char pre[12];
    const char *msg = NULL;
    char *hdr = NULL;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        msg = "not a .npy file";
        goto done;
    }
    size_t hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    if (pre[6] >= 2) {
        if (fread(pre + 10, 1, 2, f) != 2) {
            msg = "truncated header";
            goto done;
        }
        hlen |= (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    }
    hdr = calloc(1, hlen + 1);
    if (!hdr || fread(hdr, 1, hlen, f) != hlen) {
        msg = "truncated header";
        goto done;
    }
    int f8;
    if (strstr(hdr, "'<f8'"))
        f8 = 1;
    else if (strstr(hdr, "'<f4'"))
        f8 = 0;
    else {
        msg = "dtype is not <f4 or <f8";
        goto done;
    }
    if (!strstr(hdr, "'fortran_order': False")) {
        msg = "Fortran order";
        goto done;
    }
    const char *s = strstr(hdr, "'shape': (");
    if (!s) {
        msg = "no shape";
        goto done;
    }
    s += strlen("'shape': (");
    a->count = 1;
    while (*s && *s != ')') {
        char *end;
        unsigned long v = strtoul(s, &end, 10);
        if (end == s) {
            s++;
            continue;
        }
        if (a->rank == 8) {
            msg = "rank > 8";
            goto done;
        }
        a->dims[a->rank++] = v;
        a->count *= v;
        s = end;
    }
    a->data = malloc((a->count ? a->count : 1) * sizeof(double));
    if (!a->data) {
        msg = "out of memory";
        goto done;
    }
    for (size_t i = 0; i < a->count; i++) {
        if (f8) {
            double v;
            if (fread(&v, sizeof v, 1, f) != 1) {
                msg = "truncated data";
                goto done;
            }
            a->data[i] = v;
        } else {
            float v;
            if (fread(&v, sizeof v, 1, f) != 1) {
                msg = "truncated data";
                goto done;
            }
            a->data[i] = (double)v;
        }
    }
done:
    free(hdr);
    fclose(f);
    if (msg) test_npy_free(a);
    return msg;
}
