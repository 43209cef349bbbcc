#include "featviz/layer.h"

size_t fv_shape_count(const struct fv_shape *s) {
    size_t n = 1;
    for (int i = 0; i < s->rank; i++) n *= (size_t)s->d[i];
    return n;
}
