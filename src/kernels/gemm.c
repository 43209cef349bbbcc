/* Cache-blocked SGEMM with SIMD micro-kernels chosen at run time, on plain or
 * "segmented" A (implicit im2col for convolutions, see fv_gemm_seg).
 *
 * Paths (one is chosen once per process, from the CPU or FEATVIZ_ISA, see
 * kernels/isa.h; never from the data or the thread count):
 *   AVX-512   12x32 register tile (24 zmm accumulators), FMA; narrower panels
 *             12x16 (zmm) and 12x8 (the AVX2 one)
 *   AVX2+FMA  6x16 register tile (12 ymm accumulators), FMA; narrower panels 12x8
 *   (AVX-512 and AVX2 compute C with at most 4 columns as dot products
 *   along K instead, vectorized over k and reduced in a fixed order)
 *   portable  4x8 tile in arrays of 4 floats, which gcc -O2 vectorizes to SSE
 *             by itself (mul + add, no FMA): the x86-64 baseline.
 * The x86 paths are compiled with __attribute__((target(...))), so the
 * project keeps building for the plain x86-64 baseline. AVX-512 and AVX2 share
 * one blocked driver (gemm_blocked) and differ only in the tile sizes and
 * micro-kernels they hand it (struct gemm_path).
 *
 * Work is cut into K blocks of FV_GEMM_KC (fixed: it decides the rounding)
 * and panels of NR columns of C:
 *   for each K block k0, for each panel j0 (as wide as the path's widest tile
 *   that the columns left fill, or its narrowest):
 *     B panel = B[k0.., j0..j0+NR) read in place (plain B, full panel) or
 *               packed into a (kc, NR) buffer (B^T, or the ragged last panel,
 *               zero-padded)
 *     for each MR rows: micro-kernel, the accumulators stay in registers for
 *               the whole block, then C (=|+=) tile (masked at the ragged edge)
 * A is read in place (row-major, contiguous along K, or along each segment:
 * a block is walked as pieces that never cross a segment). The last rows (m % MR)
 * run the same micro-kernel with the missing rows pointing at a real row and
 * their results discarded, so every element is computed alike.
 *
 * Per element, on a given path, whatever its position and however callers
 * tile M and N:
 *     c = (first block ? 0 : c) + s,   s = fma chain over the block in k order
 * (the portable path: s = sum of products in k order). Results therefore do
 * not depend on the thread count. They differ between paths in the last bits
 * (FMA rounding).
 */
#include "kernels/gemm.h"
#include "kernels/isa.h"
#include "kernels/simd.h"

#include <string.h>

/* -DFV_GEMM_PORTABLE builds only the portable path (for tests of it) */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(FV_GEMM_PORTABLE)
#define FV_GEMM_X86 1
#include <immintrin.h>
#endif

#define KC FV_GEMM_KC

/* ======================================================================
 * Portable path
 * ====================================================================== */

#define MR 4
#define NR 8

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

/* p[k][v] = op(B)[k0+k][j0+v] for k < kc, v < nr; zero for nr <= v < w (panel width w) */
static void pack_panel(float *restrict p /* (kc, w) */, int w, const float *restrict b, size_t ldb,
                       int transb, int k0, int kc, int j0, int nr) {
    for (int k = 0; k < kc; k++) {
        float *pk = p + (size_t)k * (size_t)w;
        if (transb)
            for (int v = 0; v < nr; v++) pk[v] = b[(size_t)(j0 + v) * ldb + (size_t)(k0 + k)];
        else
            memcpy(pk, b + (size_t)(k0 + k) * ldb + (size_t)j0, (size_t)nr * sizeof(float));
        for (int v = nr; v < w; v++) pk[v] = 0.0f;
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
        pack_panel(panel, NR, b, ldb, transb, k0, kc, j0, nr);
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

static void gemm_portable(size_t m, int n, int k, const float *a, size_t lda, const float *b,
                          size_t ldb, int transb, float *c, size_t ldc, int accumulate) {
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

#undef MR
#undef NR

/* ======================================================================
 * The general problem every path solves (struct gemm_args):
 *   for g < groups:  C_g[m][n] (=|+=) A_g[m][k] . op(B)[k][n]
 *   A_g = a + g*agroup, element (i, kk) with kk = s*seglen + t (t < seglen)
 *         at A_g[i*lda + s*segstride + t]     (plain A: seglen = k)
 *   C_g = c + g*cgroup, element (i, j) at C_g[i*ldc + j]
 * The groups share B, so a B panel is reused from L1 across all of them.
 * ====================================================================== */

struct gemm_args {
    size_t m;
    int n, k;
    const float *a;
    size_t lda, segstride, agroup;
    int seglen, groups;
    const float *b;
    size_t ldb;
    int transb;
    float *c;
    size_t ldc, cgroup;
    int accumulate;
};

/* Portable: gathers segmented A into a contiguous (rows, kc) buffer, then the
 * plain kernels (same sums per element as on a plain A). */
static void gemm_portable_args(const struct gemm_args *g) {
    if (g->groups == 1 && g->seglen >= g->k) {
        gemm_portable(g->m, g->n, g->k, g->a, g->lda, g->b, g->ldb, g->transb, g->c, g->ldc,
                      g->accumulate);
        return;
    }
    enum { RCH = 16 };
    float abuf[RCH * KC];
    for (int grp = 0; grp < g->groups; grp++)
        for (size_t i0 = 0; i0 < g->m; i0 += RCH) {
            size_t rows = g->m - i0 < RCH ? g->m - i0 : RCH;
            const float *ag = g->a + (size_t)grp * g->agroup + i0 * g->lda;
            float *cg = g->c + (size_t)grp * g->cgroup + i0 * g->ldc;
            for (int k0 = 0; k0 < g->k; k0 += KC) {
                int kc = g->k - k0 < KC ? g->k - k0 : KC;
                for (size_t r = 0; r < rows; r++)
                    for (int kk = 0; kk < kc; kk++) {
                        int s = (k0 + kk) / g->seglen, t = (k0 + kk) - s * g->seglen;
                        abuf[r * KC + (size_t)kk] = ag[r * g->lda + (size_t)s * g->segstride + (size_t)t];
                    }
                const float *bk = g->transb ? g->b + k0 : g->b + (size_t)k0 * g->ldb;
                gemm_portable(rows, g->n, kc, abuf, KC, bk, g->ldb, g->transb, cg, g->ldc,
                              g->accumulate || k0 > 0);
            }
        }
}

#ifdef FV_GEMM_X86

/* A K block [k0, k0+kc) cut where it crosses segments of A: piece i covers
 * len[i] consecutive k, read at A row + off[i]. */
struct pieces {
    int n;
    int len[KC];
    size_t off[KC];
};

static void pieces_init(struct pieces *pc, const struct gemm_args *g, int k0, int kc) {
    pc->n = 0;
    for (int k = k0, end = k0 + kc; k < end;) {
        int s = k / g->seglen, t = k - s * g->seglen;
        int len = g->seglen - t < end - k ? g->seglen - t : end - k;
        pc->len[pc->n] = len;
        pc->off[pc->n++] = (size_t)s * g->segstride + (size_t)t;
        k += len;
    }
}

#define PIECE_BEGIN(pc_, a_)                               \
    for (int pi_ = 0; pi_ < (pc_)->n; pi_++) {             \
        int len = (pc_)->len[pi_];                         \
        const float *as = (a_) + (pc_)->off[pi_];
#define PIECE_END }

/* ======================================================================
 * The blocked driver shared by the SIMD paths. A path is its register tile
 * (mr x nr) and micro-kernel, and its few-column dot kernel (dot_rows x
 * dot_cols per pass); the loops below are the same for every path, so tuning
 * one path's tile cannot make the others drift.
 * ====================================================================== */

/* C[0..rows)[0..nr) (=|+=) A[0..rows) over the block's pieces . P[0..kc)[0..NR),
 * rows <= mr; rows past `rows` re-read row 0 and are not stored. */
typedef void tile_fn(const struct gemm_args *g, const struct pieces *pc, const float *a,
                     const float *restrict p, size_t ldp, float *restrict c, int rows, int nr,
                     int first);

/* Few columns (n <= DOT_N): each C element is a dot product along K, vector
 * lanes at a time (lane-wise partial sums over the pieces), reduced in a
 * fixed order. bk: op(B)^T columns j0.. of the block, rows DOT_LD apart,
 * zero-padded. r[row][j] for row < dot_rows, j < dot_cols; ar[row]: A rows
 * (missing rows point at a real one; their sums are dropped). */
typedef void dot_fn(const struct pieces *pc, const float *const *ar, const float *bk,
                    float (*r)[4]);

#define NR_MAX 32       /* widest register tile of any path */
#define DOT_N 4         /* the dot path is used up to this many columns */
#define DOT_PAD 16 /* the dot kernels read up to this many floats past kc (times 0) */
#define DOT_LD (KC + DOT_PAD)
#define DOT_ROWS_MAX 8
#define DOT_COLS_MAX 4

#define TILES_MAX 3

/* A register tile: mr rows x nr columns of C (nr <= NR_MAX) */
struct gemm_tile {
    int mr, nr;
    tile_fn *fn;
};

struct gemm_path {
    /* widest first, each half as wide as the one before: a panel takes the
     * widest that its columns fill, or the narrowest (masked), so a narrow C
     * (MobileNet's 8 to 56 channels) does not pay for lanes it does not use */
    struct gemm_tile tiles[TILES_MAX];
    int n_tiles;
    int dot_rows, dot_cols; /* <= DOT_ROWS_MAX, DOT_COLS_MAX */
    dot_fn *dot;
};

/* The tile for columns j0.. of n. */
static const struct gemm_tile *pick_tile(const struct gemm_path *path, int left) {
    int t = 0;
    while (t + 1 < path->n_tiles && left < path->tiles[t].nr) t++;
    return &path->tiles[t];
}

/* bt[j][kk] = op(B)[k0+kk][j] for j < n, kk < kc; zero for the other columns
 * up to DOT_N and for kc <= kk < kc + DOT_PAD: all the kernels read (only
 * that much is written: small calls, such as a first layer's input gradient
 * one image row at a time, would otherwise spend their time here) */
static void pack_dot(float *bt, const struct gemm_args *g, int k0, int kc) {
    for (int j = 0; j < DOT_N; j++) {
        float *bj = bt + (size_t)j * DOT_LD;
        for (int kk = 0; kk < kc; kk++)
            bj[kk] = j >= g->n    ? 0.0f
                     : g->transb ? g->b[(size_t)j * g->ldb + (size_t)(k0 + kk)]
                                 : g->b[(size_t)(k0 + kk) * g->ldb + (size_t)j];
        memset(bj + kc, 0, DOT_PAD * sizeof(float));
    }
}

static void gemm_dot(const struct gemm_args *g, const struct gemm_path *path) {
    float bt[(DOT_N + DOT_COLS_MAX - 1) * DOT_LD]; /* columns past DOT_N: zero as far as read */
    struct pieces pc;
    int kmax = g->k < KC ? g->k : KC;
    for (int j = DOT_N; j < DOT_N + DOT_COLS_MAX - 1; j++)
        memset(bt + (size_t)j * DOT_LD, 0, (size_t)(kmax + DOT_PAD) * sizeof(float));
    int dr = path->dot_rows, dc = path->dot_cols;
    for (int k0 = 0; k0 < g->k; k0 += KC) {
        int kc = g->k - k0 < KC ? g->k - k0 : KC, first = !g->accumulate && k0 == 0;
        pack_dot(bt, g, k0, kc);
        pieces_init(&pc, g, k0, kc);
        for (int j0 = 0; j0 < g->n; j0 += dc) {
            int nc = g->n - j0 < dc ? g->n - j0 : dc;
            for (int grp = 0; grp < g->groups; grp++)
                for (size_t i = 0; i < g->m; i += (size_t)dr) {
                    int rows = g->m - i < (size_t)dr ? (int)(g->m - i) : dr;
                    const float *a0 = g->a + (size_t)grp * g->agroup + i * g->lda;
                    const float *ar[DOT_ROWS_MAX];
                    for (int r = 0; r < dr; r++) ar[r] = r < rows ? a0 + (size_t)r * g->lda : a0;
                    float r[DOT_ROWS_MAX][4];
                    path->dot(&pc, ar, bt + (size_t)j0 * DOT_LD, r);
                    for (int rr = 0; rr < rows; rr++) {
                        float *ci = g->c + (size_t)grp * g->cgroup + (i + (size_t)rr) * g->ldc + j0;
                        for (int j = 0; j < nc; j++) ci[j] = first ? r[rr][j] : ci[j] + r[rr][j];
                    }
                }
        }
    }
}

static void gemm_blocked(const struct gemm_args *g, const struct gemm_path *path) {
    if (g->n <= DOT_N) {
        gemm_dot(g, path);
        return;
    }
    float panel[KC * NR_MAX] __attribute__((aligned(64))); /* (kc, nr) packed columns of op(B) */
    struct pieces pc;
    for (int k0 = 0; k0 < g->k; k0 += KC) {
        int kc = g->k - k0 < KC ? g->k - k0 : KC, first = !g->accumulate && k0 == 0;
        pieces_init(&pc, g, k0, kc);
        for (int j0 = 0, nrw; j0 < g->n; j0 += nrw) {
            const struct gemm_tile *tile = pick_tile(path, g->n - j0);
            int mr = tile->mr, nr = g->n - j0 < tile->nr ? g->n - j0 : tile->nr;
            nrw = tile->nr;
            const float *p = panel;
            size_t ldp = (size_t)nrw;
            if (!g->transb && nr == nrw) {
                p = g->b + (size_t)k0 * g->ldb + (size_t)j0; /* read in place */
                ldp = g->ldb;
            } else {
                pack_panel(panel, nrw, g->b, g->ldb, g->transb, k0, kc, j0, nr);
            }
            for (int grp = 0; grp < g->groups; grp++) {
                const float *ag = g->a + (size_t)grp * g->agroup;
                float *cg = g->c + (size_t)grp * g->cgroup + (size_t)j0;
                for (size_t i = 0; i < g->m; i += (size_t)mr) {
                    int rows = g->m - i < (size_t)mr ? (int)(g->m - i) : mr;
                    tile->fn(g, &pc, ag + i * g->lda, p, ldp, cg + i * g->ldc, rows, nr, first);
                }
            }
        }
    }
}

/* ======================================================================
 * AVX2 + FMA path: 6x16 tiles (12 ymm accumulators + 2 B rows + 1 broadcast
 * = 15 of the 16 ymm registers)
 * ====================================================================== */

#define AVX2_FN __attribute__((target("avx2,fma")))

/* Lane mask selecting the first n (0..8) of 8 lanes. */
AVX2_FN static inline __m256i avx2_mask(int n) {
    static const int ramp[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_loadu_si256((const __m256i *)ramp));
}

/* C[r][0..16) (=|+=) (lo, hi) for one row; only the first nr columns when nr < 16 */
AVX2_FN static inline void avx2_store_row(float *c, __m256 lo, __m256 hi, int nr, int first) {
    if (nr == 16) {
        if (!first) {
            lo = _mm256_add_ps(_mm256_loadu_ps(c), lo);
            hi = _mm256_add_ps(_mm256_loadu_ps(c + 8), hi);
        }
        _mm256_storeu_ps(c, lo);
        _mm256_storeu_ps(c + 8, hi);
        return;
    }
    __m256i m0 = avx2_mask(nr < 8 ? nr : 8), m1 = avx2_mask(nr > 8 ? nr - 8 : 0);
    if (!first) {
        lo = _mm256_add_ps(_mm256_maskload_ps(c, m0), lo);
        hi = _mm256_add_ps(_mm256_maskload_ps(c + 8, m1), hi);
    }
    _mm256_maskstore_ps(c, m0, lo);
    _mm256_maskstore_ps(c + 8, m1, hi);
}

#define AVX2_ROW(x_, r0, r1)                   \
    do {                                       \
        __m256 x = _mm256_broadcast_ss(x_);    \
        r0 = _mm256_fmadd_ps(x, b0, r0);       \
        r1 = _mm256_fmadd_ps(x, b1, r1);       \
    } while (0)

AVX2_FN static void avx2_tile_6x16(const struct gemm_args *g, const struct pieces *pc,
                                   const float *a, const float *restrict p, size_t ldp,
                                   float *restrict c, int rows, int nr, int first) {
    size_t lda = g->lda;
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    PIECE_BEGIN(pc, a)
    const float *a0 = as;
    const float *a1 = rows > 1 ? as + lda : as;
    const float *a2 = rows > 2 ? as + 2 * lda : as;
    const float *a3 = rows > 3 ? as + 3 * lda : as;
    const float *a4 = rows > 4 ? as + 4 * lda : as;
    const float *a5 = rows > 5 ? as + 5 * lda : as;
    for (int q = 0; q < len; q++, p += ldp) {
        if (ldp > 256) _mm_prefetch((const char *)(p + 16 * ldp), _MM_HINT_T0); /* see the AVX-512 tile */
        __m256 b0 = _mm256_loadu_ps(p), b1 = _mm256_loadu_ps(p + 8);
        AVX2_ROW(a0 + q, c00, c01);
        AVX2_ROW(a1 + q, c10, c11);
        AVX2_ROW(a2 + q, c20, c21);
        AVX2_ROW(a3 + q, c30, c31);
        AVX2_ROW(a4 + q, c40, c41);
        AVX2_ROW(a5 + q, c50, c51);
    }
    PIECE_END
    size_t ldc = g->ldc;
    avx2_store_row(c, c00, c01, nr, first);
    if (rows > 1) avx2_store_row(c + ldc, c10, c11, nr, first);
    if (rows > 2) avx2_store_row(c + 2 * ldc, c20, c21, nr, first);
    if (rows > 3) avx2_store_row(c + 3 * ldc, c30, c31, nr, first);
    if (rows > 4) avx2_store_row(c + 4 * ldc, c40, c41, nr, first);
    if (rows > 5) avx2_store_row(c + 5 * ldc, c50, c51, nr, first);
}

#undef AVX2_ROW

/* The 12 A rows of a tile (missing ones re-read row 0), and per-row steps. */
#define A_ROWS12                                                                                   \
    const float *a0 = as, *a1 = rows > 1 ? as + lda : as, *a2 = rows > 2 ? as + 2 * lda : as;      \
    const float *a3 = rows > 3 ? as + 3 * lda : as, *a4 = rows > 4 ? as + 4 * lda : as;            \
    const float *a5 = rows > 5 ? as + 5 * lda : as, *a6 = rows > 6 ? as + 6 * lda : as;            \
    const float *a7 = rows > 7 ? as + 7 * lda : as, *a8 = rows > 8 ? as + 8 * lda : as;            \
    const float *a9 = rows > 9 ? as + 9 * lda : as, *a10 = rows > 10 ? as + 10 * lda : as;         \
    const float *a11 = rows > 11 ? as + 11 * lda : as;
#define EACH_ROW12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

/* C[r][0..8) (=|+=) v for one row; only the first nr columns when nr < 8 */
AVX2_FN static inline void avx2_store8(float *c, __m256 v, int nr, int first) {
    if (nr == 8) {
        if (!first) v = _mm256_add_ps(_mm256_loadu_ps(c), v);
        _mm256_storeu_ps(c, v);
        return;
    }
    __m256i m = avx2_mask(nr);
    if (!first) v = _mm256_add_ps(_mm256_maskload_ps(c, m), v);
    _mm256_maskstore_ps(c, m, v);
}

/* 12x8: a panel of at most 8 columns (12 ymm accumulators) */
AVX2_FN static void avx2_tile_12x8(const struct gemm_args *g, const struct pieces *pc,
                                   const float *a, const float *restrict p, size_t ldp,
                                   float *restrict c, int rows, int nr, int first) {
    size_t lda = g->lda;
#define ZERO(r) __m256 c##r = _mm256_setzero_ps();
    EACH_ROW12(ZERO)
#undef ZERO
    PIECE_BEGIN(pc, a)
    A_ROWS12
    for (int q = 0; q < len; q++, p += ldp) {
        if (ldp > 256) _mm_prefetch((const char *)(p + 16 * ldp), _MM_HINT_T0); /* see the AVX-512 tile */
        __m256 b = _mm256_loadu_ps(p);
#define FMA(r) c##r = _mm256_fmadd_ps(_mm256_broadcast_ss(a##r + q), b, c##r);
        EACH_ROW12(FMA)
#undef FMA
    }
    PIECE_END
    size_t ldc = g->ldc;
#define STORE(r) if (rows > r) avx2_store8(c + r * ldc, c##r, nr, first);
    EACH_ROW12(STORE)
#undef STORE
}

AVX2_FN static inline float avx2_hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#define DOT_ROW(r)                                                    \
    do {                                                              \
        __m256 x = LOAD_A(a##r + off + q);                            \
        s##r##0 = _mm256_fmadd_ps(x, b0, s##r##0);                    \
        s##r##1 = _mm256_fmadd_ps(x, b1, s##r##1);                    \
        s##r##2 = _mm256_fmadd_ps(x, b2, s##r##2);                    \
    } while (0)

/* 4 rows x 3 columns (an RGB layer's input gradient has 3), 8 lanes: 12
 * accumulators + 3 B vectors + 1 A vector = the 16 ymm registers (4 x 4
 * would spill). Each element's sum is the same whatever the number of
 * columns done together. */
AVX2_FN static void avx2_dot_4x3(const struct pieces *pc, const float *const *ar, const float *bk,
                                 float (*r)[4]) {
    const float *a0 = ar[0], *a1 = ar[1], *a2 = ar[2], *a3 = ar[3];
    __m256 s00 = _mm256_setzero_ps(), s01 = s00, s02 = s00;
    __m256 s10 = s00, s11 = s00, s12 = s00;
    __m256 s20 = s00, s21 = s00, s22 = s00;
    __m256 s30 = s00, s31 = s00, s32 = s00;
    for (int pi = 0; pi < pc->n; pi++) {
        int len = pc->len[pi];
        size_t off = pc->off[pi];
        int q = 0;
#define LOAD_A(p_) _mm256_loadu_ps(p_) /* whole vectors: plain loads (masked ones are slow) */
        for (; q + 8 <= len; q += 8) {
            __m256 b0 = _mm256_loadu_ps(bk + q), b1 = _mm256_loadu_ps(bk + DOT_LD + q);
            __m256 b2 = _mm256_loadu_ps(bk + 2 * DOT_LD + q);
            DOT_ROW(0);
            DOT_ROW(1);
            DOT_ROW(2);
            DOT_ROW(3);
        }
#undef LOAD_A
        if (q < len) { /* the last 1..7: masked (bk is zero-padded) */
            __m256i mk = avx2_mask(len - q);
#define LOAD_A(p_) _mm256_maskload_ps(p_, mk)
            __m256 b0 = _mm256_loadu_ps(bk + q), b1 = _mm256_loadu_ps(bk + DOT_LD + q);
            __m256 b2 = _mm256_loadu_ps(bk + 2 * DOT_LD + q);
            DOT_ROW(0);
            DOT_ROW(1);
            DOT_ROW(2);
            DOT_ROW(3);
#undef LOAD_A
        }
        bk += len;
    }
    float t[4][4] = {{avx2_hsum(s00), avx2_hsum(s01), avx2_hsum(s02), 0.0f},
                     {avx2_hsum(s10), avx2_hsum(s11), avx2_hsum(s12), 0.0f},
                     {avx2_hsum(s20), avx2_hsum(s21), avx2_hsum(s22), 0.0f},
                     {avx2_hsum(s30), avx2_hsum(s31), avx2_hsum(s32), 0.0f}};
    memcpy(r, t, sizeof t);
}

#undef DOT_ROW

static const struct gemm_path avx2_path = {
    .tiles = {{6, 16, avx2_tile_6x16}, {12, 8, avx2_tile_12x8}}, .n_tiles = 2,
    .dot_rows = 4, .dot_cols = 3, .dot = avx2_dot_4x3};

/* ======================================================================
 * AVX-512 path: 12x32 tiles (24 zmm accumulators)
 * ====================================================================== */

#define AVX512_FN __attribute__((target("avx512f,avx2,fma")))

AVX512_FN static inline void avx512_store_row(float *c, __m512 lo, __m512 hi, int nr, int first) {
    if (nr == 32) {
        if (!first) {
            lo = _mm512_add_ps(_mm512_loadu_ps(c), lo);
            hi = _mm512_add_ps(_mm512_loadu_ps(c + 16), hi);
        }
        _mm512_storeu_ps(c, lo);
        _mm512_storeu_ps(c + 16, hi);
        return;
    }
    __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xffff : (1u << nr) - 1u);
    __mmask16 m1 = (__mmask16)(nr <= 16 ? 0 : (1u << (nr - 16)) - 1u);
    if (!first) {
        lo = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, c), lo);
        hi = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, c + 16), hi);
    }
    _mm512_mask_storeu_ps(c, m0, lo);
    _mm512_mask_storeu_ps(c + 16, m1, hi);
}

#define AVX512_ROW(x_, r)                          \
    do {                                           \
        __m512 x = _mm512_set1_ps(*(x_));          \
        r##0 = _mm512_fmadd_ps(x, b0, r##0);       \
        r##1 = _mm512_fmadd_ps(x, b1, r##1);       \
    } while (0)

AVX512_FN static void avx512_tile_12x32(const struct gemm_args *g, const struct pieces *pc,
                                        const float *a, const float *restrict p, size_t ldp,
                                        float *restrict c, int rows, int nr, int first) {
    size_t lda = g->lda;
    __m512 r00 = _mm512_setzero_ps(), r01 = r00, r10 = r00, r11 = r00, r20 = r00, r21 = r00;
    __m512 r30 = r00, r31 = r00, r40 = r00, r41 = r00, r50 = r00, r51 = r00;
    __m512 r60 = r00, r61 = r00, r70 = r00, r71 = r00, r80 = r00, r81 = r00;
    __m512 r90 = r00, r91 = r00, ra0 = r00, ra1 = r00, rb0 = r00, rb1 = r00;
    PIECE_BEGIN(pc, a)
    const float *a0 = as;
    const float *a1 = rows > 1 ? as + lda : as;
    const float *a2 = rows > 2 ? as + 2 * lda : as;
    const float *a3 = rows > 3 ? as + 3 * lda : as;
    const float *a4 = rows > 4 ? as + 4 * lda : as;
    const float *a5 = rows > 5 ? as + 5 * lda : as;
    const float *a6 = rows > 6 ? as + 6 * lda : as;
    const float *a7 = rows > 7 ? as + 7 * lda : as;
    const float *a8 = rows > 8 ? as + 8 * lda : as;
    const float *a9 = rows > 9 ? as + 9 * lda : as;
    const float *a10 = rows > 10 ? as + 10 * lda : as;
    const float *a11 = rows > 11 ? as + 11 * lda : as;
    for (int q = 0; q < len; q++, p += ldp) {
        /* B rows far apart (a Dense kernel read in place) defeat the hardware
         * prefetchers: ask for the row a few iterations ahead */
        if (ldp > 256) {
            _mm_prefetch((const char *)(p + 16 * ldp), _MM_HINT_T0);
            _mm_prefetch((const char *)(p + 16 * ldp + 16), _MM_HINT_T0);
        }
        __m512 b0 = _mm512_loadu_ps(p), b1 = _mm512_loadu_ps(p + 16);
        AVX512_ROW(a0 + q, r0);
        AVX512_ROW(a1 + q, r1);
        AVX512_ROW(a2 + q, r2);
        AVX512_ROW(a3 + q, r3);
        AVX512_ROW(a4 + q, r4);
        AVX512_ROW(a5 + q, r5);
        AVX512_ROW(a6 + q, r6);
        AVX512_ROW(a7 + q, r7);
        AVX512_ROW(a8 + q, r8);
        AVX512_ROW(a9 + q, r9);
        AVX512_ROW(a10 + q, ra);
        AVX512_ROW(a11 + q, rb);
    }
    PIECE_END
    size_t ldc = g->ldc;
    avx512_store_row(c, r00, r01, nr, first);
    if (rows > 1) avx512_store_row(c + ldc, r10, r11, nr, first);
    if (rows > 2) avx512_store_row(c + 2 * ldc, r20, r21, nr, first);
    if (rows > 3) avx512_store_row(c + 3 * ldc, r30, r31, nr, first);
    if (rows > 4) avx512_store_row(c + 4 * ldc, r40, r41, nr, first);
    if (rows > 5) avx512_store_row(c + 5 * ldc, r50, r51, nr, first);
    if (rows > 6) avx512_store_row(c + 6 * ldc, r60, r61, nr, first);
    if (rows > 7) avx512_store_row(c + 7 * ldc, r70, r71, nr, first);
    if (rows > 8) avx512_store_row(c + 8 * ldc, r80, r81, nr, first);
    if (rows > 9) avx512_store_row(c + 9 * ldc, r90, r91, nr, first);
    if (rows > 10) avx512_store_row(c + 10 * ldc, ra0, ra1, nr, first);
    if (rows > 11) avx512_store_row(c + 11 * ldc, rb0, rb1, nr, first);
}

#undef AVX512_ROW

/* 12x16: a panel of at most 16 columns (12 zmm accumulators) */
AVX512_FN static void avx512_tile_12x16(const struct gemm_args *g, const struct pieces *pc,
                                        const float *a, const float *restrict p, size_t ldp,
                                        float *restrict c, int rows, int nr, int first) {
    size_t lda = g->lda;
#define ZERO(r) __m512 c##r = _mm512_setzero_ps();
    EACH_ROW12(ZERO)
#undef ZERO
    PIECE_BEGIN(pc, a)
    A_ROWS12
    for (int q = 0; q < len; q++, p += ldp) {
        if (ldp > 256) _mm_prefetch((const char *)(p + 16 * ldp), _MM_HINT_T0);
        __m512 b = _mm512_loadu_ps(p);
#define FMA(r) c##r = _mm512_fmadd_ps(_mm512_set1_ps(a##r[q]), b, c##r);
        EACH_ROW12(FMA)
#undef FMA
    }
    PIECE_END
    size_t ldc = g->ldc;
    __mmask16 m = (__mmask16)(nr >= 16 ? 0xffff : (1u << nr) - 1u);
#define STORE(r)                                                                  \
    if (rows > r) {                                                               \
        __m512 v = first ? c##r : _mm512_add_ps(_mm512_maskz_loadu_ps(m, c + r * ldc), c##r); \
        _mm512_mask_storeu_ps(c + r * ldc, m, v);                                 \
    }
    EACH_ROW12(STORE)
#undef STORE
}

#define DOT_ROW(r)                                                    \
    do {                                                              \
        __m512 x = _mm512_maskz_loadu_ps(mk, ar[r] + off + q);        \
        s##r##0 = _mm512_fmadd_ps(x, b0, s##r##0);                    \
        s##r##1 = _mm512_fmadd_ps(x, b1, s##r##1);                    \
        s##r##2 = _mm512_fmadd_ps(x, b2, s##r##2);                    \
    } while (0)

/* The 16 lanes of v summed down to 4 (fixed pairing: halves, then quarters). */
AVX512_FN static inline __m128 avx512_fold4(__m512 v) {
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* (sum of a, sum of b, sum of c, sum of d) */
AVX512_FN static inline __m128 avx512_sum4(__m512 a, __m512 b, __m512 c, __m512 d) {
    return _mm_hadd_ps(_mm_hadd_ps(avx512_fold4(a), avx512_fold4(b)),
                       _mm_hadd_ps(avx512_fold4(c), avx512_fold4(d)));
}

/* 8 rows x 3 columns (an RGB layer's input gradient has 3), 16 lanes: 8 x 3
 * accumulators, 8 + 3 loads per 24 FMAs */
AVX512_FN static void avx512_dot_8x3(const struct pieces *pc, const float *const *ar,
                                     const float *bk, float (*r)[4]) {
    __m512 s00 = _mm512_setzero_ps(), s01 = s00, s02 = s00, s10 = s00, s11 = s00;
    __m512 s12 = s00, s20 = s00, s21 = s00, s22 = s00, s30 = s00, s31 = s00;
    __m512 s32 = s00, s40 = s00, s41 = s00, s42 = s00, s50 = s00, s51 = s00;
    __m512 s52 = s00, s60 = s00, s61 = s00, s62 = s00, s70 = s00, s71 = s00;
    __m512 s72 = s00;
    for (int pi = 0; pi < pc->n; pi++) {
        int len = pc->len[pi];
        size_t off = pc->off[pi];
        for (int q = 0; q < len; q += 16) {
            __mmask16 mk = (__mmask16)(len - q >= 16 ? 0xffffu : (1u << (len - q)) - 1u);
            __m512 b0 = _mm512_loadu_ps(bk + q), b1 = _mm512_loadu_ps(bk + DOT_LD + q);
            __m512 b2 = _mm512_loadu_ps(bk + 2 * DOT_LD + q);
            DOT_ROW(0);
            DOT_ROW(1);
            DOT_ROW(2);
            DOT_ROW(3);
            DOT_ROW(4);
            DOT_ROW(5);
            DOT_ROW(6);
            DOT_ROW(7);
        }
        bk += len;
    }
    __m512 z = _mm512_setzero_ps();
    _mm_storeu_ps(r[0], avx512_sum4(s00, s01, s02, z));
    _mm_storeu_ps(r[1], avx512_sum4(s10, s11, s12, z));
    _mm_storeu_ps(r[2], avx512_sum4(s20, s21, s22, z));
    _mm_storeu_ps(r[3], avx512_sum4(s30, s31, s32, z));
    _mm_storeu_ps(r[4], avx512_sum4(s40, s41, s42, z));
    _mm_storeu_ps(r[5], avx512_sum4(s50, s51, s52, z));
    _mm_storeu_ps(r[6], avx512_sum4(s60, s61, s62, z));
    _mm_storeu_ps(r[7], avx512_sum4(s70, s71, s72, z));
}

#undef DOT_ROW

static const struct gemm_path avx512_path = {
    .tiles = {{12, 32, avx512_tile_12x32}, {12, 16, avx512_tile_12x16}, {12, 8, avx2_tile_12x8}},
    .n_tiles = 3, .dot_rows = 8, .dot_cols = 3, .dot = avx512_dot_8x3};

#endif /* FV_GEMM_X86 */

/* ======================================================================
 * Dispatch: the path chosen once for the process (kernels/isa.h)
 * ====================================================================== */

static void gemm_run(const struct gemm_args *g) {
    if (g->m == 0 || g->n <= 0 || g->groups <= 0) return;
    if (g->k <= 0) {
        if (!g->accumulate)
            for (int grp = 0; grp < g->groups; grp++)
                for (size_t i = 0; i < g->m; i++)
                    memset(g->c + (size_t)grp * g->cgroup + i * g->ldc, 0, (size_t)g->n * sizeof(float));
        return;
    }
#ifdef FV_GEMM_X86
    switch (fv_isa()) {
    case FV_ISA_AVX512:
        gemm_blocked(g, &avx512_path);
        return;
    case FV_ISA_AVX2:
        gemm_blocked(g, &avx2_path);
        return;
    default:
        break;
    }
#endif
    gemm_portable_args(g);
}

void fv_gemm(size_t m, int n, int k, const float *a, size_t lda, const float *b, size_t ldb,
             int transb, float *c, size_t ldc, int accumulate) {
    struct gemm_args g = {.m = m, .n = n, .k = k, .a = a, .lda = lda, .seglen = k > 0 ? k : 1,
                          .segstride = 0, .groups = 1, .agroup = 0, .b = b, .ldb = ldb,
                          .transb = transb, .c = c, .ldc = ldc, .cgroup = 0,
                          .accumulate = accumulate};
    gemm_run(&g);
}

void fv_gemm_seg(int groups, size_t m, int n, int k, const float *a, size_t agroup, size_t lda,
                 int seglen, size_t segstride, const float *b, size_t ldb, float *c, size_t cgroup,
                 size_t ldc, int accumulate) {
    struct gemm_args g = {.m = m, .n = n, .k = k, .a = a, .lda = lda, .seglen = seglen,
                          .segstride = segstride, .groups = groups, .agroup = agroup, .b = b,
                          .ldb = ldb, .transb = 0, .c = c, .ldc = ldc, .cgroup = cgroup,
                          .accumulate = accumulate};
    gemm_run(&g);
}

#define PAR_MT 96  /* rows per parallel tile (a multiple of every path's MR) */
#define PAR_NT 256 /* columns per parallel tile (a multiple of every path's NR) */

void fv_gemm_par(size_t m, int n, int k, const float *a, size_t lda, const float *b, size_t ldb,
                 int transb, float *c, size_t ldc, int accumulate) {
    if (m == 0 || n <= 0) return;
    size_t tm = (m + PAR_MT - 1) / PAR_MT;
    size_t tn = ((size_t)n + PAR_NT - 1) / PAR_NT;
    size_t tiles = tm * tn;
    int par = (double)m * (double)n * (double)k >= FV_PAR_MIN_WORK;
    (void)par; /* only read by the OpenMP clause */
    FV_OMP("omp parallel for schedule(dynamic) if(par)")
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

FV_BODY void fv_bias_relu_body(float *y, const float *bias, size_t rows, int n, int relu, float cap) {
    if (!relu) {
        if (bias) fv_bias_add(y, bias, rows, n);
        return;
    }
    for (size_t r = 0; r < rows && cap > 0.0f; r++) { /* one pass: the row is still in cache */
        float *yr = y + r * (size_t)n;
        for (int j = 0; j < n; j++) {
            float v = yr[j] + (bias ? bias[j] : 0.0f);
            yr[j] = v > 0.0f ? (v < cap ? v : cap) : 0.0f;
        }
    }
    for (size_t r = 0; r < rows && !(cap > 0.0f); r++) {
        float *yr = y + r * (size_t)n;
        for (int j = 0; j < n; j++) {
            float v = yr[j] + (bias ? bias[j] : 0.0f);
            yr[j] = v > 0.0f ? v : 0.0f;
        }
    }
}
FV_ISA_VERSIONS(, fv_bias_relu, (float *y, const float *bias, size_t rows, int n, int relu, float cap),
                (y, bias, rows, n, relu, cap))

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
