#include "runtime/threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

/* Spin iterations before a worker goes to sleep: long enough to cover the
 * gap between consecutive matmuls of one token, short enough not to burn a
 * core while the user types. */
#define SPIN_LIMIT 200000

struct bllm_pool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    atomic_uint generation; /* bumped for each job */
    atomic_int pending;     /* workers still running the current job */
    atomic_bool quit;
    bllm_pool_fn fn;
    void *arg;
};

typedef struct {
    bllm_pool *pool;
    int ith;
} worker_arg;

static void *worker_main(void *p)
{
    worker_arg wa = *(worker_arg *)p;
    free(p);
    bllm_pool *pool = wa.pool;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen) {
            if (++spins < SPIN_LIMIT) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&pool->mu);
            while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->quit))
                pthread_cond_wait(&pool->wake, &pool->mu);
            pthread_mutex_unlock(&pool->mu);
            spins = 0;
        }
        seen = g;
        if (atomic_load(&pool->quit))
            return NULL;
        pool->fn(pool->arg, wa.ith, pool->n);
        atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel);
    }
}

bllm_status bllm_pool_new(int n_threads, bllm_pool **out)
{
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024)
        return bllm_fail(BLLM_ERR_ARG, "thread count %d out of range 1..1024", n_threads);
    bllm_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    pool->n = n_threads;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pool->threads = calloc(n_threads, sizeof *pool->threads);
    if (!pool->threads) {
        free(pool);
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa || pthread_create(&pool->threads[i], NULL, worker_main, wa ? (wa->pool = pool, wa->ith = i, wa) : NULL)) {
            free(wa);
            pool->n = i; /* join what was started */
            bllm_pool_free(pool);
            return bllm_fail(BLLM_ERR_NOMEM, "cannot start worker thread %d", i);
        }
    }
    *out = pool;
    return BLLM_OK;
}

void bllm_pool_free(bllm_pool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->mu);
    atomic_store(&pool->quit, true);
    atomic_fetch_add(&pool->generation, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 1; i < pool->n; i++)
        pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->wake);
    free(pool->threads);
    free(pool);
}

int bllm_pool_size(const bllm_pool *pool) { return pool->n; }

void bllm_pool_run(bllm_pool *pool, bllm_pool_fn fn, void *arg)
{
    if (pool->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    atomic_store_explicit(&pool->pending, pool->n - 1, memory_order_relaxed);
    pthread_mutex_lock(&pool->mu);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mu);
    fn(arg, 0, pool->n);
    while (atomic_load_explicit(&pool->pending, memory_order_acquire) > 0)
        cpu_relax();
}

void bllm_pool_range(int n, int align, int ith, int nth, int *begin, int *end)
{
    if (align < 1)
        align = 1;
    int units = (n + align - 1) / align;
    int per = units / nth, extra = units % nth;
    int u0 = ith * per + (ith < extra ? ith : extra);
    int u1 = u0 + per + (ith < extra);
    *begin = u0 * align < n ? u0 * align : n;
    *end = u1 * align < n ? u1 * align : n;
}
