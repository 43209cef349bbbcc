/* Winograd F(4x4, 3x3) transforms (see winograd.h). */
#include "kernels/winograd.h"

#include "core/par.h"
#include "kernels/isa.h"
#include "kernels/simd.h" /* the transforms: plain loops over 16 (AVX2: 8) channels at a time */

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(FV_GEMM_PORTABLE)
#define FV_WINO_X86 1
#endif

/* Tile t's image and top-left output pixel. */
static void tile_origin(const struct fv_conv_geom *g, size_t t, size_t *img, int *oy0, int *ox0) {
    size_t th = (size_t)(g->oh + FV_WINO_M - 1) / FV_WINO_M;
    size_t tw = (size_t)(g->ow + FV_WINO_M - 1) / FV_WINO_M;
    *ox0 = FV_WINO_M * (int)(t % tw);
    *oy0 = FV_WINO_M * (int)(t / tw % th);
    *img = t / (tw * th);
}

/* 16 lanes: one zmm on the AVX-512 path; baseline x86-64 (four xmm) on the
 * portable one */
#define WN(name) name##_16
#define WV fv_vf
#define WL FV_VL
#ifdef FV_WINO_X86
#define WATTR FV_TARGET_AVX512
#define WVI fv_vi /* AVX-512 compares 16 lanes at once: the lane loops became scalar compares
                     whose stores stalled the vector reload (a sixth of a class optimization) */
#else
#define WATTR
#endif
#include "kernels/winograd_width.h"
#undef WN
#undef WATTR
#undef WVI

#ifdef FV_WINO_X86
#define WN(name) name##_16p
#define WATTR
#include "kernels/winograd_width.h"
#undef WN
#undef WV
#undef WL
#undef WATTR

/* 8 lanes for the AVX2 path: 16-lane vectors (and their 64 KB of temporaries
 * per tile, in xmm-sized pieces) made the AVX2 transforms spill, a third of a
 * class optimization's time */
typedef float fv_vf8 __attribute__((vector_size(32)));
typedef int fv_vi8 __attribute__((vector_size(32)));
#define WN(name) name##_8
#define WV fv_vf8
#define WVI fv_vi8
#define WL 8
#define WATTR FV_TARGET_AVX2
#include "kernels/winograd_width.h"
#undef WN
#undef WV
#undef WVI
#undef WL
#undef WATTR
#else
#undef WV
#undef WL
#endif

void fv_wino_input(float *restrict v, const float *restrict x, const struct fv_conv_geom *g,
                   size_t t0, size_t rows, const float *zero) {
#ifdef FV_WINO_X86
    switch (fv_isa()) {
    case FV_ISA_AVX2: wino_input_8(v, x, g, t0, rows, zero); return;
    case FV_ISA_PORTABLE: wino_input_16p(v, x, g, t0, rows, zero); return;
    default: break;
    }
#endif
    wino_input_16(v, x, g, t0, rows, zero);
}

void fv_wino_output(float *restrict y, const float *restrict m, const struct fv_conv_geom *g,
                    int oc, size_t t0, size_t rows, const float *bias, int accumulate, int relu,
                    const float *gate) {
#ifdef FV_WINO_X86
    switch (fv_isa()) {
    case FV_ISA_AVX2: wino_output_8(y, m, g, oc, t0, rows, bias, accumulate, relu, gate); return;
    case FV_ISA_PORTABLE: wino_output_16p(y, m, g, oc, t0, rows, bias, accumulate, relu, gate); return;
    default: break;
    }
#endif
    wino_output_16(y, m, g, oc, t0, rows, bias, accumulate, relu, gate);
}

/* G applied to (g0, g1, g2) */
static void g_rows(double g0, double g1, double g2, double out[6]) {
    out[0] = g0 / 4.0;
    out[1] = -(g0 + g1 + g2) / 6.0;
    out[2] = -(g0 - g1 + g2) / 6.0;
    out[3] = g0 / 24.0 + g1 / 12.0 + g2 / 6.0;
    out[4] = g0 / 24.0 - g1 / 12.0 + g2 / 6.0;
    out[5] = g2;
}

void fv_wino_kernel(float *u, const float *k, int c, int oc) {
    size_t C = (size_t)c, OC = (size_t)oc;
    int par = (double)c * (double)oc >= 4096.0;
    (void)par; /* only read by the OpenMP clause */
    FV_OMP("omp parallel for schedule(static) if(par)")
    for (int ch = 0; ch < c; ch++) {
        const float *g[9]; /* the 9 taps of channel ch, (OC) each */
        for (int t = 0; t < 9; t++) g[t] = k + ((size_t)t * C + (size_t)ch) * OC;
        for (size_t o = 0; o < OC; o++) {
            double col[3][6]; /* G g: column j of the kernel through G */
            for (int j = 0; j < 3; j++) g_rows(g[j][o], g[3 + j][o], g[6 + j][o], col[j]);
            for (int i = 0; i < 6; i++) { /* (G g) G^T */
                double row[6];
                g_rows(col[0][i], col[1][i], col[2][i], row);
                for (int j = 0; j < 6; j++) u[((size_t)(6 * i + j) * C + (size_t)ch) * OC + o] = (float)row[j];
            }
        }
    }
}

