/* The SIMD path, chosen once (see isa.h). */
#include "kernels/isa.h"

#include <stdlib.h>
#include <string.h>

static const char *const names[FV_ISA_COUNT] = {"portable", "avx2", "avx512"};

/* -1 until chosen; read from every thread, written once before any parallel
 * work (or by a test between runs) */
static int chosen = -1;

const char *fv_isa_name(enum fv_isa isa) {
    return (int)isa >= 0 && isa < FV_ISA_COUNT ? names[isa] : "?";
}

int fv_isa_supported(enum fv_isa isa) {
    switch (isa) {
    case FV_ISA_PORTABLE:
        return 1;
#if defined(__GNUC__) && defined(__x86_64__) && !defined(FV_GEMM_PORTABLE)
    case FV_ISA_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case FV_ISA_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("fma");
#endif
    default:
        return 0;
    }
}

static enum fv_isa best(void) {
    if (fv_isa_supported(FV_ISA_AVX512)) return FV_ISA_AVX512;
    if (fv_isa_supported(FV_ISA_AVX2)) return FV_ISA_AVX2;
    return FV_ISA_PORTABLE;
}

/* The path FEATVIZ_ISA asks for (best when unset or empty); -1 unknown, -2 unsupported */
static int requested(void) {
    const char *env = getenv("FEATVIZ_ISA");
    if (!env || !*env || !strcmp(env, "auto")) return (int)best();
    for (int i = 0; i < FV_ISA_COUNT; i++)
        if (!strcmp(env, names[i])) return fv_isa_supported((enum fv_isa)i) ? i : -2;
    return -1;
}

int fv_isa_init(struct fv_error *err) {
    int r = requested();
    if (r == -1)
        return fv_error_set(err, FV_ERR_USAGE,
                            "FEATVIZ_ISA='%s' is not a SIMD path (portable, avx2, avx512 or auto)",
                            getenv("FEATVIZ_ISA"));
    if (r == -2)
        return fv_error_set(err, FV_ERR_USAGE,
                            "FEATVIZ_ISA=%s: this CPU (or build) cannot run that path (it can: "
                            "portable%s%s)",
                            getenv("FEATVIZ_ISA"), fv_isa_supported(FV_ISA_AVX2) ? ", avx2" : "",
                            fv_isa_supported(FV_ISA_AVX512) ? ", avx512" : "");
    __atomic_store_n(&chosen, r, __ATOMIC_RELEASE);
    return FV_OK;
}

enum fv_isa fv_isa(void) {
    int c = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
    if (c >= 0) return (enum fv_isa)c;
    c = requested(); /* a bad FEATVIZ_ISA was refused by fv_isa_init in the CLI */
    if (c < 0) c = (int)best();
    __atomic_store_n(&chosen, c, __ATOMIC_RELEASE);
    return (enum fv_isa)c;
}

int fv_isa_force(enum fv_isa isa) {
    if (!fv_isa_supported(isa)) return 0;
    __atomic_store_n(&chosen, (int)isa, __ATOMIC_RELEASE);
    return 1;
}
