/* A small persistent thread pool. bllm_pool_run(pool, fn, arg) calls
 * fn(arg, i, n) exactly once for every i in 0..n-1 (n = pool size) and
 * returns when all are done. Chunks are claimed dynamically: whichever thread
 * is free runs the next one, the caller included, so a worker the OS has
 * descheduled (a busy or oversubscribed machine) delays nothing. Callers may
 * keep per-chunk scratch indexed by i, since one chunk never runs twice at
 * once. Workers spin briefly before sleeping because a forward pass
 * dispatches hundreds of short jobs per token and a condition-variable
 * wake-up per job would dominate. */
#ifndef BLLM_THREADPOOL_H
#define BLLM_THREADPOOL_H

#include "bllm.h"

typedef struct bllm_pool bllm_pool;
typedef void (*bllm_pool_fn)(void *arg, int ith, int nth);

bllm_status bllm_pool_new(int n_threads, bllm_pool **out);
void bllm_pool_free(bllm_pool *pool);
int bllm_pool_size(const bllm_pool *pool);
void bllm_pool_run(bllm_pool *pool, bllm_pool_fn fn, void *arg);
/* Split [0, n) into nth nearly equal parts rounded to `align`; part ith. */
void bllm_pool_range(int n, int align, int ith, int nth, int *begin, int *end);

/* Units of work shared out so that no thread waits long on another: each
 * chunk starts with an even, contiguous share (bllm_pool_range's) and claims
 * it front to back in batches; a chunk whose share is used up takes the back
 * half of the unclaimed units of the chunk with the most left, and goes on
 * with those the same way. Every unit is claimed exactly once. A thread
 * keeps streaming forward through memory it was going to read anyway, and
 * the threads end within about one batch of each other, where an even static
 * split leaves the early one idle for as long as the other is slow (a vCPU
 * whose neighbours take bandwidth: ~10% of a decode step's products on two
 * threads). Batches shrink from a quarter of what is left down to
 * `min_batch` units, so a share costs a handful of claims. */
#define BLLM_SHARE_MAX 64
typedef struct {
    struct {
        _Alignas(64) _Atomic unsigned long long range; /* next unit | end << 32 */
    } slot[BLLM_SHARE_MAX];
    int nth, min_batch;
} bllm_share;

/* nth chunks (at most BLLM_SHARE_MAX) over n_units units. */
void bllm_share_init(bllm_share *s, int n_units, int nth, int min_batch);
/* The next units [*begin, *end) chunk ith runs; false when none are left. */
bool bllm_share_next(bllm_share *s, int ith, int *begin, int *end);

#endif
