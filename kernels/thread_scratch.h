/* One growing scratch buffer per thread, for the SIMD kernels that need
 * working memory (kernels/binary_x86.h, kernels/salient_avx2.c): reused
 * call after call, since a pool's workers live as long as the pool, and
 * freed by a thread-specific key when the thread exits. Each including
 * file gets its own static copy (its own buffer). New bytes are zeroed, so
 * padding a kernel reads but never uses is defined. NULL when out of
 * memory; the callers then run the scalar reference. */
#ifndef BLLM_THREAD_SCRATCH_H
#define BLLM_THREAD_SCRATCH_H

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local void *scratch_buf;
static _Thread_local size_t scratch_cap;
static pthread_key_t scratch_key;
static int scratch_key_ok;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_key_init(void) { scratch_key_ok = pthread_key_create(&scratch_key, free) == 0; }

static void *scratch(size_t bytes)
{
    if (bytes > scratch_cap) {
        pthread_once(&scratch_once, scratch_key_init);
        free(scratch_buf);
        scratch_cap = 0;
        bytes = (bytes + 63) & ~(size_t)63;
        scratch_buf = aligned_alloc(64, bytes);
        if (scratch_key_ok)
            pthread_setspecific(scratch_key, scratch_buf);
        if (!scratch_buf)
            return NULL;
        memset(scratch_buf, 0, bytes);
        scratch_cap = bytes;
    }
    return scratch_buf;
}

#endif
