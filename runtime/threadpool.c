#include "runtime/threadpool.h"

#include <pthread.h>
#include <sched.h>
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

/* Waiting is spin, then yield, then sleep. Spinning covers the microsecond
 * gaps between consecutive matmuls of one token; yielding keeps a waiter from
 * burning the time slice of a thread it waits for when the machine is
 * oversubscribed; sleeping stops an idle worker from burning a core while the
 * user types. */
#define SPIN_LIMIT 4000
#define YIELD_LIMIT 2000

typedef struct {
    bllm_pool_fn fn;
    void *arg;
    int n_chunks;
    atomic_int next; /* next chunk to claim */
    atomic_int done; /* chunks finished */
} pool_job;

struct bllm_pool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    atomic_uint generation;      /* bumped for each job */
    _Atomic(pool_job *) job;     /* NULL between jobs */
    atomic_int active;           /* workers that may be holding `job` */
    atomic_bool quit;
};

/* Claim and run chunks until none are left. */
static void run_chunks(pool_job *j)
{
    for (;;) {
        int i = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (i >= j->n_chunks)
            return;
        j->fn(j->arg, i, j->n_chunks);
        atomic_fetch_add_explicit(&j->done, 1, memory_order_release);
    }
}

static void *worker_main(void *p)
{
    bllm_pool *pool = p;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen) {
            if (++spins < SPIN_LIMIT) {
                cpu_relax();
            } else if (spins < SPIN_LIMIT + YIELD_LIMIT) {
                sched_yield();
            } else {
                pthread_mutex_lock(&pool->mu);
                while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->quit))
                    pthread_cond_wait(&pool->wake, &pool->mu);
                pthread_mutex_unlock(&pool->mu);
                spins = 0;
            }
        }
        seen = g;
        if (atomic_load(&pool->quit))
            return NULL;
        /* Announce before looking at the job so the caller, which clears
         * the pointer and then waits for active == 0, never frees a job we
         * are about to use. A job already finished reads as NULL or has no
         * chunks left. */
        atomic_fetch_add(&pool->active, 1);
        pool_job *j = atomic_load(&pool->job);
        if (j)
            run_chunks(j);
        atomic_fetch_sub(&pool->active, 1);
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
        if (pthread_create(&pool->threads[i], NULL, worker_main, pool)) {
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

static void wait_until_zero(atomic_int *v)
{
    for (int spins = 0; atomic_load_explicit(v, memory_order_acquire) > 0; spins++) {
        if (spins < SPIN_LIMIT)
            cpu_relax();
        else
            sched_yield();
    }
}

void bllm_pool_run(bllm_pool *pool, bllm_pool_fn fn, void *arg)
{
    if (pool->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    pool_job j = {.fn = fn, .arg = arg, .n_chunks = pool->n};
    atomic_init(&j.next, 0);
    atomic_init(&j.done, 0);
    atomic_store(&pool->job, &j);
    pthread_mutex_lock(&pool->mu);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mu);
    run_chunks(&j);
    for (int spins = 0; atomic_load_explicit(&j.done, memory_order_acquire) < j.n_chunks; spins++) {
        if (spins < SPIN_LIMIT)
            cpu_relax();
        else
            sched_yield();
    }
    /* Retire the job: late workers now see NULL; wait out any that read the
     * pointer before it was cleared (they find no chunks left). */
    atomic_store(&pool->job, NULL);
    wait_until_zero(&pool->active);
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

static unsigned long long share_pack(unsigned next, unsigned end) { return next | (unsigned long long)end << 32; }

void bllm_share_init(bllm_share *s, int n_units, int nth, int min_batch)
{
    s->nth = nth;
    s->min_batch = min_batch > 0 ? min_batch : 1;
    for (int i = 0; i < nth; i++) {
        int b, e;
        bllm_pool_range(n_units, 1, i, nth, &b, &e);
        atomic_init(&s->slot[i].range, share_pack((unsigned)b, (unsigned)e));
    }
}

bool bllm_share_next(bllm_share *s, int ith, int *begin, int *end)
{
    _Atomic unsigned long long *own = &s->slot[ith].range;
    for (;;) {
        unsigned long long v = atomic_load_explicit(own, memory_order_relaxed);
        for (;;) {
            unsigned next = (unsigned)v, stop = (unsigned)(v >> 32);
            if (next >= stop)
                break;
            unsigned left = stop - next, take = left / 4;
            if (take < (unsigned)s->min_batch)
                take = (unsigned)s->min_batch;
            if (take > left)
                take = left;
            if (atomic_compare_exchange_weak_explicit(own, &v, share_pack(next + take, stop), memory_order_relaxed,
                                                      memory_order_relaxed)) {
                *begin = (int)next;
                *end = (int)(next + take);
                return true;
            }
        }
        /* Own share used up: take the back half of the largest one left.
         * Only the owner grows its slot (here, from empty), so a victim's
         * slot read as (next, end) can only have shrunk when the exchange
         * below fails, and the loop looks again. */
        int victim = -1;
        unsigned most = 0;
        unsigned long long vv = 0;
        for (int i = 0; i < s->nth; i++) {
            unsigned long long w = atomic_load_explicit(&s->slot[i].range, memory_order_relaxed);
            unsigned left = (unsigned)(w >> 32) - (unsigned)w;
            if ((unsigned)w < (unsigned)(w >> 32) && left > most) {
                most = left;
                victim = i;
                vv = w;
            }
        }
        if (victim < 0)
            return false;
        unsigned next = (unsigned)vv, stop = (unsigned)(vv >> 32), take = (stop - next + 1) / 2;
        if (!atomic_compare_exchange_strong_explicit(&s->slot[victim].range, &vv, share_pack(next, stop - take),
                                                     memory_order_relaxed, memory_order_relaxed))
            continue;
        atomic_store_explicit(own, share_pack(stop - take, stop), memory_order_relaxed);
    }
}
