// Peak float32 FMA throughput of this machine (docs/benchmarks.md): N threads x 12 independent
// 8-lane FMA chains in registers. gcc -O2 -mavx2 -mfma -include stdlib.h fma_peak.c -o fma_peak -lpthread && ./fma_peak 2
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#define ITERS 200000000L
static void *work(void *arg) {
  __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  __m256 a0 = _mm256_set1_ps((float)0);
  __m256 a1 = _mm256_set1_ps((float)1);
  __m256 a2 = _mm256_set1_ps((float)2);
  __m256 a3 = _mm256_set1_ps((float)3);
  __m256 a4 = _mm256_set1_ps((float)4);
  __m256 a5 = _mm256_set1_ps((float)5);
  __m256 a6 = _mm256_set1_ps((float)6);
  __m256 a7 = _mm256_set1_ps((float)7);
  __m256 a8 = _mm256_set1_ps((float)8);
  __m256 a9 = _mm256_set1_ps((float)9);
  __m256 a10 = _mm256_set1_ps((float)10);
  __m256 a11 = _mm256_set1_ps((float)11);
  for (long n = 0; n < ITERS; n++) {
    a0 = _mm256_fmadd_ps(a0, m, c);
    a1 = _mm256_fmadd_ps(a1, m, c);
    a2 = _mm256_fmadd_ps(a2, m, c);
    a3 = _mm256_fmadd_ps(a3, m, c);
    a4 = _mm256_fmadd_ps(a4, m, c);
    a5 = _mm256_fmadd_ps(a5, m, c);
    a6 = _mm256_fmadd_ps(a6, m, c);
    a7 = _mm256_fmadd_ps(a7, m, c);
    a8 = _mm256_fmadd_ps(a8, m, c);
    a9 = _mm256_fmadd_ps(a9, m, c);
    a10 = _mm256_fmadd_ps(a10, m, c);
    a11 = _mm256_fmadd_ps(a11, m, c);
  }
  *(float *)arg = a0[0]+a1[0]+a2[0]+a3[0]+a4[0]+a5[0]+a6[0]+a7[0]+a8[0]+a9[0]+a10[0]+a11[0]; return 0;
}
int main(int argc, char **argv) {
  int t = argc > 1 ? atoi(argv[1]) : 2; pthread_t th[8]; float out[8];
  struct timespec s, e; clock_gettime(CLOCK_MONOTONIC, &s);
  for (int i = 0; i < t; i++) pthread_create(&th[i], 0, work, &out[i]);
  for (int i = 0; i < t; i++) pthread_join(th[i], 0);
  clock_gettime(CLOCK_MONOTONIC, &e);
  double sec = (e.tv_sec - s.tv_sec) + (e.tv_nsec - s.tv_nsec) * 1e-9;
  double macs = (double)t * ITERS * 12 * 8;
  printf("threads %d: %.1f GMAC/s (%.3f s, checksum %g)\n", t, macs / sec / 1e9, sec, out[0]);
}
