/* OpenMP helpers that compile away in a build without OpenMP. */
#ifndef FEATVIZ_CORE_PAR_H
#define FEATVIZ_CORE_PAR_H

#ifdef _OPENMP
#include <omp.h>
/* An OpenMP directive that disappears (without -Wunknown-pragmas noise) when
 * the build has no OpenMP: FV_OMP("omp parallel for schedule(static)"). */
#define FV_OMP(directive) _Pragma(directive)
#else
#define FV_OMP(directive)
#endif

/* Threads a parallel region started here would get: 1 inside another one
 * (nested regions are not used: an outer loop already has every core). */
static inline int fv_omp_max_threads(void) {
#ifdef _OPENMP
    return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
    return 1;
#endif
}

static inline int fv_omp_thread_num(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

#endif
