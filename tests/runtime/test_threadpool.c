/* runtime/threadpool.c: every pool chunk runs once; bllm_share hands out
 * every unit exactly once, front to back within a share, and a thread that
 * runs out takes units from a slow one. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "runtime/threadpool.h"

static int checks, failures;

#define CHECK(cond, ...)                                                                                              \
    do {                                                                                                              \
        checks++;                                                                                                     \
        if (!(cond)) {                                                                                                \
            failures++;                                                                                               \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                               \
            printf(__VA_ARGS__);                                                                                      \
            printf("\n");                                                                                             \
        }                                                                                                             \
    } while (0)

/* ------------------------------------------------------------ the pool */

typedef struct {
    atomic_int runs[16];
    int nth_seen[16];
} pool_probe;

static void pool_fn(void *arg, int ith, int nth)
{
    pool_probe *p = arg;
    atomic_fetch_add(&p->runs[ith], 1);
    p->nth_seen[ith] = nth;
}

static void test_pool(void)
{
    for (int n = 1; n <= 4; n++) {
        bllm_pool *pool;
        if (bllm_pool_new(n, &pool)) {
            CHECK(0, "bllm_pool_new(%d) failed", n);
            continue;
        }
        for (int rep = 0; rep < 200; rep++) {
            pool_probe p = {0};
            bllm_pool_run(pool, pool_fn, &p);
            int bad = 0;
            for (int i = 0; i < 16; i++)
                bad += i < n ? (atomic_load(&p.runs[i]) != 1 || p.nth_seen[i] != n) : atomic_load(&p.runs[i]) != 0;
            if (bad) {
                CHECK(0, "pool of %d, run %d: a chunk ran other than once or saw the wrong count", n, rep);
                break;
            }
        }
        checks++;
        bllm_pool_free(pool);
    }
}

/* ----------------------------------------------------------- the share */

typedef struct {
    bllm_share *share;
    int ith;
    atomic_int *count;  /* claims per unit */
    int *owner;         /* the thread that claimed each unit */
    int n_units;
    int sleep_us;       /* after each batch: a slow thread */
    int claimed, batches, out_of_range;
} share_thread;

static void *share_main(void *arg)
{
    share_thread *t = arg;
    int b, e;
    while (bllm_share_next(t->share, t->ith, &b, &e)) {
        if (b < 0 || e > t->n_units || b >= e) {
            t->out_of_range++;
            continue;
        }
        for (int u = b; u < e; u++) {
            atomic_fetch_add(&t->count[u], 1);
            t->owner[u] = t->ith;
        }
        t->claimed += e - b;
        t->batches++;
        if (t->sleep_us) {
            struct timespec ts = {0, t->sleep_us * 1000L};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

/* nth threads share n_units; returns units claimed per thread in out[]. */
static void run_share(int nth, int n_units, int min_batch, const int *sleep_us, int *out, int *owner,
                      const char *what)
{
    bllm_share share;
    bllm_share_init(&share, n_units, nth, min_batch);
    atomic_int *count = calloc(n_units > 0 ? n_units : 1, sizeof *count);
    int *own = owner ? owner : calloc(n_units > 0 ? n_units : 1, sizeof *own);
    share_thread t[BLLM_SHARE_MAX] = {0};
    pthread_t th[BLLM_SHARE_MAX];
    for (int i = 0; i < nth; i++) {
        t[i] = (share_thread){&share, i, count, own, n_units, sleep_us ? sleep_us[i] : 0, 0, 0, 0};
        pthread_create(&th[i], NULL, share_main, &t[i]);
    }
    int total = 0, bad_range = 0;
    for (int i = 0; i < nth; i++) {
        pthread_join(th[i], NULL);
        total += t[i].claimed;
        bad_range += t[i].out_of_range;
        if (out)
            out[i] = t[i].claimed;
    }
    int wrong = -1;
    for (int u = 0; u < n_units && wrong < 0; u++)
        if (atomic_load(&count[u]) != 1)
            wrong = u;
    CHECK(wrong < 0 && total == n_units && !bad_range,
          "%s: %d threads, %d units, min batch %d: unit %d claimed %d times, %d claimed in all, %d empty or "
          "out-of-range batches",
          what, nth, n_units, min_batch, wrong, wrong < 0 ? 1 : atomic_load(&count[wrong]), total, bad_range);
    free(count);
    if (!owner)
        free(own);
}

static void test_share_once(void)
{
    const int threads[] = {1, 2, 3, 8};
    const int units[] = {0, 1, 5, 64, 1000, 100000};
    const int batch[] = {1, 3, 50};
    for (size_t a = 0; a < sizeof threads / sizeof *threads; a++)
        for (size_t b = 0; b < sizeof units / sizeof *units; b++)
            for (size_t c = 0; c < sizeof batch / sizeof *batch; c++)
                for (int rep = 0; rep < 5; rep++)
                    run_share(threads[a], units[b], batch[c], NULL, NULL, NULL, "exactly once");
}

/* One thread alone: batches front to back, a quarter of what is left or
 * the minimum, the last one whatever remains. */
static void test_share_batches(void)
{
    bllm_share share;
    bllm_share_init(&share, 100, 1, 4);
    const int want[][2] = {{0, 25}, {25, 43}, {43, 57}, {57, 67}, {67, 75}, {75, 81}, {81, 85},
                           {85, 89}, {89, 93}, {93, 97}, {97, 100}};
    int b, e, i = 0;
    while (bllm_share_next(&share, 0, &b, &e)) {
        int n = (int)(sizeof want / sizeof *want);
        CHECK(i < n && b == want[i][0] && e == want[i][1], "batch %d is [%d, %d), want [%d, %d)", i, b, e,
              i < n ? want[i][0] : -1, i < n ? want[i][1] : -1);
        i++;
    }
    CHECK(i == 11, "%d batches, want 11", i);
    CHECK(!bllm_share_next(&share, 0, &b, &e), "a used-up share gave units again");
}

/* A thread that sleeps after each batch leaves most of its share to the
 * other, which takes it from the back, so the slow one's stream stays
 * contiguous from the front. */
static void test_share_steals(void)
{
    const int sleep_us[2] = {3000, 200}; /* both work; one is slower */
    int got[2], owner[64];
    run_share(2, 64, 1, sleep_us, got, owner, "slow thread");
    CHECK(got[1] > 36, "the fast thread claimed %d of 64 units (the slow one %d), want > 36: no work moved", got[1],
          got[0]);
    /* taken from the back: the slow thread's units are a prefix of its share */
    int first_taken = 32;
    while (first_taken > 0 && owner[first_taken - 1] == 1)
        first_taken--;
    int stray = 0;
    for (int u = 0; u < first_taken; u++)
        stray += owner[u] != 0;
    CHECK(!stray, "%d units before the taken back part [%d, 32) of the slow thread's share went to the fast one",
          stray, first_taken);
    /* three fast threads and a slow one: the slow one keeps about a batch */
    const int sleep4[4] = {0, 0, 3000, 0};
    int got4[4];
    run_share(4, 400, 2, sleep4, got4, NULL, "slow thread of 4");
    CHECK(got4[2] < 60, "the slow thread of 4 claimed %d of 400 units, want < 60", got4[2]);
}

int main(void)
{
    test_pool();
    test_share_once();
    test_share_batches();
    test_share_steals();
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
