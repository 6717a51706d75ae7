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

#endif
