/* Cache-blocked SGEMM, written so that gcc -O2 vectorizes it by itself.
 *
 * Work is cut into K blocks of FV_GEMM_KC (fixed: it decides the rounding) and
 * panels of NR = 8 columns of C:
 *   for each (K block k0, panel j0)      k0-major for plain B, panel-major for B^T
 *     pack B[k0.., j0..j0+7] into a (kc, 8) panel   when transposed or ragged
 *     for each 4 rows: 4x8 micro-kernel             accumulators in registers
 *     for the last M % 4 rows: 1x8 micro-kernel     same arithmetic per element
 * With few rows and a plain B (Dense on a small batch), rows of B are
 * streamed contiguously instead (row_chunk), again with the same arithmetic.
 *
 * The micro-kernels keep their accumulators in arrays of exactly 4 floats, the
 * shape gcc's "very cheap" -O2 vectorizer turns into one SSE register each (a
 * loop over an unknown N would not be vectorized at -O2). Each C element is
 *     c = (first block ? 0 : c) + sum_{k in block} a[k]*b[k]   (k ascending)
 * whatever the path and the row/column position, so results do not depend on
 * how callers tile M or N.
 */
#include "kernels/gemm.h"

#include <string.h>

#define MR 4
#define NR 8
#define KC FV_GEMM_KC

/* t[0..3][0..7] = A[0..3][0..kc) . P[0..kc)[0..7] */
static void kernel_4x8(int kc, const float *restrict a, size_t lda, const float *restrict p,
                       size_t ldp, float *restrict t /* (4, 8) */) {
    float c0[4] = {0}, c1[4] = {0}, c2[4] = {0}, c3[4] = {0};
    float d0[4] = {0}, d1[4] = {0}, d2[4] = {0}, d3[4] = {0};
    const float *a0 = a, *a1 = a + lda, *a2 = a + 2 * lda, *a3 = a + 3 * lda;
    for (int k = 0; k < kc; k++) {
        const float *pk = p + (size_t)k * ldp;
        float x0 = a0[k], x1 = a1[k], x2 = a2[k], x3 = a3[k];
        for (int v = 0; v < 4; v++) {
            c0[v] += x0 * pk[v];
            c1[v] += x1 * pk[v];
            c2[v] += x2 * pk[v];
            c3[v] += x3 * pk[v];
            d0[v] += x0 * pk[4 + v];
            d1[v] += x1 * pk[4 + v];
            d2[v] += x2 * pk[4 + v];
            d3[v] += x3 * pk[4 + v];
        }
    }
    for (int v = 0; v < 4; v++) {
        t[0 * NR + v] = c0[v];
        t[0 * NR + 4 + v] = d0[v];
        t[1 * NR + v] = c1[v];
        t[1 * NR + 4 + v] = d1[v];
        t[2 * NR + v] = c2[v];
        t[2 * NR + 4 + v] = d2[v];
        t[3 * NR + v] = c3[v];
        t[3 * NR + 4 + v] = d3[v];
    }
}

/* t[0..7] = A[0][0..kc) . P[0..kc)[0..7]: the same sums as one row of kernel_4x8 */
static void kernel_1x8(int kc, const float *restrict a, const float *restrict p, size_t ldp,
                       float *restrict t /* (8) */) {
    float c0[4] = {0}, d0[4] = {0};
    for (int k = 0; k < kc; k++) {
        const float *pk = p + (size_t)k * ldp;
        float x0 = a[k];
        for (int v = 0; v < 4; v++) {
            c0[v] += x0 * pk[v];
            d0[v] += x0 * pk[4 + v];
        }
    }
    for (int v = 0; v < 4; v++) {
        t[v] = c0[v];
        t[4 + v] = d0[v];
    }
}

/* C[r][0..nr) (=|+=) t[r][0..nr) for r < rows */
static void store_tile(float *restrict c, size_t ldc, const float *restrict t, int rows, int nr,
                       int first) {
    for (int r = 0; r < rows; r++) {
        float *cr = c + (size_t)r * ldc;
        const float *tr = t + r * NR;
        if (first)
            for (int v = 0; v < nr; v++) cr[v] = tr[v];
        else
            for (int v = 0; v < nr; v++) cr[v] += tr[v];
    }
}

/* p[k][v] = op(B)[k0+k][j0+v] for k < kc, v < nr; zero for nr <= v < 8 */
static void pack_panel(float *restrict p /* (kc, 8) */, const float *restrict b, size_t ldb,
                       int transb, int k0, int kc, int j0, int nr) {
    for (int k = 0; k < kc; k++) {
        float *pk = p + (size_t)k * NR;
        for (int v = 0; v < NR; v++) pk[v] = 0.0f;
        if (transb)
            for (int v = 0; v < nr; v++) pk[v] = b[(size_t)(j0 + v) * ldb + (size_t)(k0 + k)];
        else
            memcpy(pk, b + (size_t)(k0 + k) * ldb + (size_t)j0, (size_t)nr * sizeof(float));
    }
}

/* One K block (k0, kc) x one 8-column panel j0 of C, for all m rows. */
static void gemm_panel(size_t m, int n, int k0, int kc, int j0, const float *a, size_t lda,
                       const float *b, size_t ldb, int transb, float *c, size_t ldc, int first,
                       float *panel /* (KC, 8) scratch */) {
    float t[MR * NR]; /* (4, 8) micro-kernel result */
    int nr = n - j0 < NR ? n - j0 : NR;
    const float *p = panel;
    size_t ldp = NR;
    if (!transb && nr == NR) {
        p = b + (size_t)k0 * ldb + (size_t)j0; /* already (kc, 8) with stride ldb */
        ldp = ldb;
    } else {
        pack_panel(panel, b, ldb, transb, k0, kc, j0, nr);
    }
    size_t i = 0;
    for (; i + MR <= m; i += MR) {
        kernel_4x8(kc, a + i * lda + (size_t)k0, lda, p, ldp, t);
        store_tile(c + i * ldc + (size_t)j0, ldc, t, MR, nr, first);
    }
    for (; i < m; i++) {
        kernel_1x8(kc, a + i * lda + (size_t)k0, p, ldp, t);
        store_tile(c + i * ldc + (size_t)j0, ldc, t, 1, nr, first);
    }
}

#define ROW_CH 256   /* columns per chunk in the few-rows path */
#define ROW_MAX 16   /* the few-rows path is used below this many rows */

/* t[r][j] = sum_k a[r][k] * b[k][j] for r < rows (<= MR), j < nc, k < kc: the
 * same sums as the micro-kernels, but walking rows of B contiguously (streams
 * a large B when there are too few rows of A to hide strided panel reads). */
static void row_chunk(int rows, int kc, const float *restrict a, size_t lda,
                      const float *restrict b, size_t ldb, int nc,
                      float *restrict t /* (rows, ROW_CH) */) {
    int n8 = nc - nc % 8;
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < nc; j++) t[r * ROW_CH + j] = 0.0f;
    for (int k = 0; k < kc; k++) {
        const float *bk = b + (size_t)k * ldb;
        for (int r = 0; r < rows; r++) {
            float x = a[(size_t)r * lda + (size_t)k];
            float *tr = t + r * ROW_CH;
            for (int j = 0; j < n8; j += 8)
                for (int v = 0; v < 8; v++) tr[j + v] += x * bk[j + v];
            for (int j = n8; j < nc; j++) tr[j] += x * bk[j];
        }
    }
}

/* C[r][0..nc) (=|+=) t[r][0..nc), t with row stride ROW_CH */
static void store_rows(float *restrict c, size_t ldc, const float *restrict t, int rows, int nc,
                       int first) {
    for (int r = 0; r < rows; r++) {
        float *cr = c + (size_t)r * ldc;
        const float *tr = t + r * ROW_CH;
        if (first)
            for (int v = 0; v < nc; v++) cr[v] = tr[v];
        else
            for (int v = 0; v < nc; v++) cr[v] += tr[v];
    }
}

void fv_gemm(size_t m, int n, int k, const float *a, size_t lda, const float *b, size_t ldb,
             int transb, float *c, size_t ldc, int accumulate) {
    if (m == 0 || n <= 0) return;
    if (k <= 0) {
        if (!accumulate)
            for (size_t i = 0; i < m; i++) memset(c + i * ldc, 0, (size_t)n * sizeof(float));
        return;
    }
    /* Every order of the (k0, j0, i) loops below gives the same bits, as long
     * as each element sees its K blocks in increasing k0. */
    float panel[KC * NR]; /* (kc, 8) packed columns of op(B) */
    if (transb) {
        /* panel-major: 8 rows of B are read contiguously along K */
        for (int j0 = 0; j0 < n; j0 += NR)
            for (int k0 = 0; k0 < k; k0 += KC)
                gemm_panel(m, n, k0, k - k0 < KC ? k - k0 : KC, j0, a, lda, b, ldb, 1, c, ldc,
                           !accumulate && k0 == 0, panel);
    } else if (m < ROW_MAX) {
        float t[MR * ROW_CH];
        for (size_t i = 0; i < m; i += MR) {
            int rows = m - i < MR ? (int)(m - i) : MR;
            for (int k0 = 0; k0 < k; k0 += KC) {
                int kc = k - k0 < KC ? k - k0 : KC;
                for (int j0 = 0; j0 < n; j0 += ROW_CH) {
                    int nc = n - j0 < ROW_CH ? n - j0 : ROW_CH;
                    row_chunk(rows, kc, a + i * lda + (size_t)k0, lda,
                              b + (size_t)k0 * ldb + (size_t)j0, ldb, nc, t);
                    store_rows(c + i * ldc + (size_t)j0, ldc, t, rows, nc,
                               !accumulate && k0 == 0);
                }
            }
        }
    } else {
        /* K-block-major: the (m, kc) block of A stays in cache across panels */
        for (int k0 = 0; k0 < k; k0 += KC)
            for (int j0 = 0; j0 < n; j0 += NR)
                gemm_panel(m, n, k0, k - k0 < KC ? k - k0 : KC, j0, a, lda, b, ldb, 0, c, ldc,
                           !accumulate && k0 == 0, panel);
    }
}

#define PAR_MT 128 /* rows per parallel tile */
#define PAR_NT 256 /* columns per parallel tile (multiple of NR) */

void fv_gemm_par(size_t m, int n, int k, const float *a, size_t lda, const float *b, size_t ldb,
                 int transb, float *c, size_t ldc, int accumulate) {
    if (m == 0 || n <= 0) return;
    size_t tm = (m + PAR_MT - 1) / PAR_MT;
    size_t tn = ((size_t)n + PAR_NT - 1) / PAR_NT;
    size_t tiles = tm * tn;
    int par = (double)m * (double)n * (double)k >= FV_PAR_MIN_WORK;
    (void)par; /* only read by the OpenMP clause */
    FV_OMP("omp parallel for schedule(static) if(par)")
    for (size_t t = 0; t < tiles; t++) {
        size_t i0 = (t / tn) * PAR_MT;
        size_t rows = m - i0 < PAR_MT ? m - i0 : PAR_MT;
        int j0 = (int)(t % tn) * PAR_NT;
        int cols = n - j0 < PAR_NT ? n - j0 : PAR_NT;
        /* op(B) columns j0.. are B + j0 (plain) or B rows j0.. (transposed) */
        const float *bj = transb ? b + (size_t)j0 * ldb : b + (size_t)j0;
        fv_gemm(rows, cols, k, a + i0 * lda, lda, bj, ldb, transb, c + i0 * ldc + (size_t)j0, ldc,
                accumulate);
    }
}

void fv_bias_add(float *y, const float *bias, size_t rows, int n) {
    for (size_t r = 0; r < rows; r++) {
        float *yr = y + r * (size_t)n;
        for (int j = 0; j < n; j++) yr[j] += bias[j];
    }
}

void fv_bias_add_par(float *y, const float *bias, size_t rows, int n) {
    size_t tiles = (rows + PAR_MT - 1) / PAR_MT;
    int par = (double)rows * (double)n >= 4 * FV_PAR_MIN_WORK;
    (void)par;
    FV_OMP("omp parallel for schedule(static) if(par)")
    for (size_t t = 0; t < tiles; t++) {
        size_t r0 = t * PAR_MT;
        fv_bias_add(y + r0 * (size_t)n, bias, rows - r0 < PAR_MT ? rows - r0 : PAR_MT, n);
    }
}
