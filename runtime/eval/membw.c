/* Memory read bandwidth: the ceiling for token generation, which streams
 * every weight once per token. Each thread reads one contiguous slice of a
 * buffer much larger than the caches, and the best pass is kept, as
 * STREAM-like benchmarks do, since slower passes measure interference
 * rather than the memory system.
 *
 * Access pattern: a slice is read in blocks of 4 MiB, each block as four
 * streams a quarter of the block apart, advanced together. On the Zen 3
 * development VM one plain sequential stream reaches ~19 GB/s per core while
 * this pattern reaches ~26 GB/s (33 GB/s on two cores), the same as the
 * GEMV kernels get from their four-row tiles on real models: a single
 * stream understates what the hardware prefetchers deliver, and a roofline
 * below the measured tg speed is no ceiling. */
#include "runtime/eval/bench.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "runtime/memory.h"
#include "runtime/threadpool.h"

#define BLOCK (4u << 20)
#define LINE 128 /* bytes per stream per step */

/* Four streams over [p, p + n): n is a multiple of 4 * LINE. */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BLLM_BW_AVX2 1

/* XOR is the cheapest use of the data that the compiler cannot drop; one
 * accumulator per stream keeps the loads independent. */
__attribute__((target("avx2"))) static uint64_t read4_avx2(const uint8_t *p, size_t n)
{
    size_t q = n / 4;
    __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                      _mm256_setzero_si256()};
    for (size_t i = 0; i < q; i += LINE) {
        for (int s = 0; s < 4; s++) {
            const __m256i *r = (const __m256i *)(p + (size_t)s * q + i);
            __m256i v = _mm256_xor_si256(_mm256_xor_si256(_mm256_load_si256(r), _mm256_load_si256(r + 1)),
                                         _mm256_xor_si256(_mm256_load_si256(r + 2), _mm256_load_si256(r + 3)));
            acc[s] = _mm256_xor_si256(acc[s], v);
        }
    }
    __m256i a = _mm256_xor_si256(_mm256_xor_si256(acc[0], acc[1]), _mm256_xor_si256(acc[2], acc[3]));
    return (uint64_t)_mm256_extract_epi64(a, 0) ^ (uint64_t)_mm256_extract_epi64(a, 1) ^
           (uint64_t)_mm256_extract_epi64(a, 2) ^ (uint64_t)_mm256_extract_epi64(a, 3);
}
#else
#define BLLM_BW_AVX2 0
#endif

static uint64_t read4_scalar(const uint8_t *p, size_t n)
{
    size_t q = n / 4;
    uint64_t acc[4] = {0}, v[LINE / 8];
    for (size_t i = 0; i < q; i += LINE) {
        for (int s = 0; s < 4; s++) {
            memcpy(v, p + (size_t)s * q + i, LINE);
            for (int k = 0; k < LINE / 8; k++)
                acc[s] ^= v[k];
        }
    }
    return acc[0] ^ acc[1] ^ acc[2] ^ acc[3];
}

/* [p, p + n) in blocks; n is a multiple of 4 * LINE. */
static uint64_t read_range(const uint8_t *p, size_t n, bool avx2)
{
    uint64_t r = 0;
    for (size_t off = 0; off < n; off += BLOCK) {
        size_t len = n - off < BLOCK ? n - off : BLOCK;
#if BLLM_BW_AVX2
        if (avx2) {
            r ^= read4_avx2(p + off, len);
            continue;
        }
#endif
        (void)avx2;
        r ^= read4_scalar(p + off, len);
    }
    return r;
}

typedef struct {
    const uint8_t *buf;
    size_t bytes;
    bool avx2;
    volatile uint64_t sink[256];
} bw_job;

static void bw_worker(void *arg, int ith, int nth)
{
    bw_job *j = arg;
    size_t units = j->bytes / (4 * LINE);
    size_t b = units * (size_t)ith / (size_t)nth * 4 * LINE, e = units * (size_t)(ith + 1) / (size_t)nth * 4 * LINE;
    j->sink[ith & 255] = read_range(j->buf + b, e - b, j->avx2);
}

static bool has_avx2(void)
{
    char f[512];
    bllm_cpu_features(f, sizeof f);
    char *save = NULL;
    for (char *t = strtok_r(f, " ", &save); t; t = strtok_r(NULL, " ", &save))
        if (strcmp(t, "avx2") == 0)
            return true;
    return false;
}

bllm_status bllm_read_bandwidth(size_t bytes, int n_threads, int reps, double *bytes_per_s)
{
    *bytes_per_s = 0;
    if (bytes < (1u << 20) || n_threads < 1 || reps < 1)
        return bllm_fail(BLLM_ERR_ARG, "bandwidth: need at least 1 MiB, 1 thread and 1 pass");
    bytes = bytes / (4 * LINE) * (4 * LINE);
    /* The same kind of memory the weights are loaded into (huge pages), so
     * the ceiling is what the model's own stream could reach. */
    uint8_t *buf = bllm_large_alloc(bytes);
    if (!buf)
        return bllm_fail(BLLM_ERR_NOMEM, "bandwidth: cannot allocate %zu MiB", bytes >> 20);
    /* Write every word first so the passes time reads, not page faults, and
     * make every page different: identical pages can be merged behind our
     * back (zero pages, or a hypervisor's same-page merging), and a buffer
     * folded onto a few physical pages is read from cache. That happened on
     * the development VM with a repeating fill: "bandwidth" crept up to
     * 52 GB/s. */
    uint64_t *words = (uint64_t *)buf;
    for (size_t i = 0; i < bytes / 8; i++)
        words[i] = (uint64_t)i * 0x9e3779b97f4a7c15ull;
    bllm_pool *pool = NULL;
    bllm_status s = bllm_pool_new(n_threads, &pool);
    if (s) {
        bllm_large_free(buf, bytes);
        return s;
    }
    bw_job job = {.buf = buf, .bytes = bytes, .avx2 = BLLM_BW_AVX2 && has_avx2()};
    bllm_pool_run(pool, bw_worker, &job); /* wake the workers, warm the TLB */
    /* At least `reps` passes spread over at least a second, so a short
     * burst of other work cannot spoil every pass. */
    double best = 0, start = bllm_time_s();
    for (int r = 0; r < 1000 && (r < reps || bllm_time_s() - start < 1.0); r++) {
        double t0 = bllm_time_s();
        bllm_pool_run(pool, bw_worker, &job);
        double t = bllm_time_s() - t0;
        if (t > 0 && (best == 0 || t < best))
            best = t;
    }
    bllm_pool_free(pool);
    bllm_large_free(buf, bytes);
    if (best <= 0)
        return bllm_fail(BLLM_ERR_IO, "bandwidth: the clock did not advance");
    *bytes_per_s = (double)bytes / best;
    return BLLM_OK;
}
