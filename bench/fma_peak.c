/* Measures the machine's single-precision FMA peak: independent chains of
 * fused multiply-adds kept in registers, on 1 thread and on every OpenMP
 * thread, with 8-wide (AVX2) and, where the CPU has it, 16-wide (AVX-512)
 * vectors. A multiply-add counts as 2 FLOPs.
 *
 *   gcc -O2 -march=native -fopenmp bench/fma_peak.c -o fma_peak && ./fma_peak
 *
 * Prints lines "fma_peak ISA THREADS GFLOPS". */
#include <omp.h>
#include <stdio.h>
#include <immintrin.h>

#define CHAINS 12 /* (unrolled below) enough independent accumulators to cover FMA latency x 2 ports */
#define ITERS 20000000L

static double run_avx2(int threads) {
    double t0 = omp_get_wtime();
    float sink = 0.0f;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
        __m256 acc[CHAINS];
        __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_set1_ps((float)i);
        for (long it = 0; it < ITERS; it++) {
            /* unrolled by hand: -O2 would keep a looped acc[] in memory */
            acc[0] = _mm256_fmadd_ps(acc[0], a, b);
            acc[1] = _mm256_fmadd_ps(acc[1], a, b);
            acc[2] = _mm256_fmadd_ps(acc[2], a, b);
            acc[3] = _mm256_fmadd_ps(acc[3], a, b);
            acc[4] = _mm256_fmadd_ps(acc[4], a, b);
            acc[5] = _mm256_fmadd_ps(acc[5], a, b);
            acc[6] = _mm256_fmadd_ps(acc[6], a, b);
            acc[7] = _mm256_fmadd_ps(acc[7], a, b);
            acc[8] = _mm256_fmadd_ps(acc[8], a, b);
            acc[9] = _mm256_fmadd_ps(acc[9], a, b);
            acc[10] = _mm256_fmadd_ps(acc[10], a, b);
            acc[11] = _mm256_fmadd_ps(acc[11], a, b);
        }
        __m256 s = acc[0];
        for (int i = 1; i < CHAINS; i++) s = _mm256_add_ps(s, acc[i]);
        float f[8];
        _mm256_storeu_ps(f, s);
        sink += f[0];
    }
    double dt = omp_get_wtime() - t0;
    if (sink == 12345.0f) printf("#");
    return 2.0 * 8 * CHAINS * (double)ITERS * threads / dt * 1e-9;
}

#ifdef __AVX512F__
static double run_avx512(int threads) {
    double t0 = omp_get_wtime();
    float sink = 0.0f;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
        __m512 acc[CHAINS];
        __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
        for (long it = 0; it < ITERS; it++) {
            acc[0] = _mm512_fmadd_ps(acc[0], a, b);
            acc[1] = _mm512_fmadd_ps(acc[1], a, b);
            acc[2] = _mm512_fmadd_ps(acc[2], a, b);
            acc[3] = _mm512_fmadd_ps(acc[3], a, b);
            acc[4] = _mm512_fmadd_ps(acc[4], a, b);
            acc[5] = _mm512_fmadd_ps(acc[5], a, b);
            acc[6] = _mm512_fmadd_ps(acc[6], a, b);
            acc[7] = _mm512_fmadd_ps(acc[7], a, b);
            acc[8] = _mm512_fmadd_ps(acc[8], a, b);
            acc[9] = _mm512_fmadd_ps(acc[9], a, b);
            acc[10] = _mm512_fmadd_ps(acc[10], a, b);
            acc[11] = _mm512_fmadd_ps(acc[11], a, b);
        }
        __m512 s = acc[0];
        for (int i = 1; i < CHAINS; i++) s = _mm512_add_ps(s, acc[i]);
        sink += _mm512_reduce_add_ps(s);
    }
    double dt = omp_get_wtime() - t0;
    if (sink == 12345.0f) printf("#");
    return 2.0 * 16 * CHAINS * (double)ITERS * threads / dt * 1e-9;
}
#endif

int main(void) {
    int n = omp_get_max_threads();
    printf("fma_peak avx2 1 %.1f\n", run_avx2(1));
    printf("fma_peak avx2 %d %.1f\n", n, run_avx2(n));
#ifdef __AVX512F__
    printf("fma_peak avx512 1 %.1f\n", run_avx512(1));
    printf("fma_peak avx512 %d %.1f\n", n, run_avx512(n));
#endif
    return 0;
}
