/* Which SIMD path the kernels run (GEMM, depthwise, the elementwise kernels).
 *
 * Chosen once, at the first call: the best path the CPU has, or the one named
 * by the environment variable FEATVIZ_ISA (portable, avx2, avx512). The CLI
 * calls fv_isa_init() at start so that a path the CPU lacks is refused with
 * one error line; later calls never change the choice (except fv_isa_force,
 * for tests). */
#ifndef FEATVIZ_KERNELS_ISA_H
#define FEATVIZ_KERNELS_ISA_H

#include "featviz/error.h"

enum fv_isa { FV_ISA_PORTABLE = 0, FV_ISA_AVX2 = 1, FV_ISA_AVX512 = 2, FV_ISA_COUNT = 3 };

/* The path in use (chooses it on the first call). */
enum fv_isa fv_isa(void);
/* "portable", "avx2", "avx512" */
const char *fv_isa_name(enum fv_isa isa);
/* Whether this build and this CPU can run the path. */
int fv_isa_supported(enum fv_isa isa);
/* Chooses the path from FEATVIZ_ISA (or the CPU): FV_ERR_USAGE for an unknown
 * name or a path the CPU lacks. */
int fv_isa_init(struct fv_error *err);
/* Tests: runs the kernels on this path from now on; 0 when unsupported. */
int fv_isa_force(enum fv_isa isa);

#endif
