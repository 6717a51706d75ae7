/* bllm_eval_batch: several contexts decoded as one batch give what each
 * gives alone, and the runtime counts one evaluation per batch.
 *   test_batch MODEL.stb TOL
 * Five contexts with different prompts (different lengths, so different
 * positions); the fifth joins after 4 steps, the second leaves after 8
 * (continuous batching). Each step feeds every active context its greedy
 * token in one bllm_eval_batch; a twin context per sequence gets the same
 * tokens through bllm_eval, one at a time. Checked: every logit within TOL
 * of max |logit| of its twin's row (batched products sum in another order
 * than single-token ones), the same greedy token at every step, and exactly
 * one evaluation counted per batch. Both KV cache types (f16: 2e-3). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bllm.h"

#define N_SEQ 5
#define STEPS 14
#define Q8_TOL 5e-2

static int argmax(const float *v, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        b = v[i] > v[b] ? i : b;
    return b;
}

static int run(bllm_model *m, bllm_kv_type kv, double tol)
{
    static const char *prompts[N_SEQ] = {"Once upon a time", "The capital of France is",
                                         "In a small village near the sea, there lived a", "1, 2, 3,",
                                         "She opened the door and"};
    const int V = bllm_model_get_info(m)->n_vocab;
    bllm_context *bat[N_SEQ], *one[N_SEQ];
    float *lb = malloc(sizeof(float) * N_SEQ * V), *lo = malloc(sizeof(float) * N_SEQ * V);
    int32_t next[N_SEQ];
    bllm_context_params cp = {.n_ctx = 96, .n_threads = 2, .kv_type = kv};
    for (int i = 0; i < N_SEQ; i++) {
        int32_t toks[64];
        size_t n = 0;
        if (bllm_context_new(m, &cp, &bat[i]) || bllm_context_new(m, &cp, &one[i]) ||
            bllm_tokenize(m, prompts[i], strlen(prompts[i]), bllm_model_adds_bos(m), false, toks, 64, &n) ||
            bllm_eval(bat[i], toks, (int)n, lb + (size_t)i * V, false) ||
            bllm_eval(one[i], toks, (int)n, lo + (size_t)i * V, false)) {
            printf("FAIL: setup: %s\n", bllm_last_error());
            return 1;
        }
        next[i] = argmax(lb + (size_t)i * V, V);
    }
    double worst = 0;
    int bad_tok = 0, bad_count = 0, batches = 0;
    for (int step = 0; step < STEPS; step++) {
        bllm_context *act[N_SEQ];
        int32_t tok[N_SEQ];
        int idx[N_SEQ], n = 0;
        for (int i = 0; i < N_SEQ; i++) {
            if ((i == 4 && step < 4) || (i == 1 && step >= 8))
                continue; /* joins late / leaves early */
            act[n] = bat[i], tok[n] = next[i], idx[n++] = i;
        }
        uint64_t e0, e1;
        bllm_model_eval_counts(m, &e0, NULL);
        if (bllm_eval_batch(act, tok, n, lb)) {
            printf("FAIL: bllm_eval_batch: %s\n", bllm_last_error());
            return 1;
        }
        bllm_model_eval_counts(m, &e1, NULL);
        bad_count += e1 - e0 != 1;
        batches++;
        for (int k = 0; k < n; k++) {
            const int i = idx[k];
            float *rb = lb + (size_t)k * V, *ro = lo;
            if (bllm_eval(one[i], &tok[k], 1, ro, false)) {
                printf("FAIL: bllm_eval: %s\n", bllm_last_error());
                return 1;
            }
            double mx = 0, d = 0;
            for (int j = 0; j < V; j++) {
                mx = fmax(mx, fabs(ro[j]));
                d = fmax(d, fabs((double)rb[j] - ro[j]));
            }
            worst = fmax(worst, d / (mx > 0 ? mx : 1));
            int a = argmax(rb, V), b = argmax(ro, V);
            bad_tok += a != b;
            next[i] = a;
            if (bllm_context_pos(bat[i]) != bllm_context_pos(one[i])) {
                printf("FAIL: positions %d and %d\n", bllm_context_pos(bat[i]), bllm_context_pos(one[i]));
                return 1;
            }
        }
    }
    for (int i = 0; i < N_SEQ; i++) {
        bllm_context_free(bat[i]);
        bllm_context_free(one[i]);
    }
    free(lb);
    free(lo);
    int ok = worst <= tol && !bad_tok && !bad_count;
    printf("%s cache: %d batches of up to %d sequences; max |batched - alone| / max|logit| %.2e (tol %.0e); "
           "greedy tokens differ at %d steps; evaluations counted wrong %d times: %s\n",
           kv == BLLM_KV_F32 ? "f32" : kv == BLLM_KV_Q8 ? "q8" : "f16", batches, N_SEQ, worst, tol, bad_tok, bad_count, ok ? "ok" : "FAIL");
    return !ok;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: test_batch MODEL.stb TOL\n");
        return 2;
    }
    bllm_model *m;
    if (bllm_model_load(argv[1], NULL, &m)) {
        printf("FAIL: %s: %s\n", argv[1], bllm_last_error());
        return 1;
    }
    /* f16 cache: a key that differs by 1e-6 between the twins can round to
     * the neighbouring f16 value (2^-11 relative apart), so they drift up
     * to a few such steps: 2e-3 (measured 1e-4 to 3e-4), with the greedy
     * tokens still required equal */
    int bad = run(m, BLLM_KV_F32, atof(argv[2])) + run(m, BLLM_KV_F16, 2e-3);
    /* q8 cache (head sizes that are multiples of 32): a key that differs by
     * 1e-6 can round to the neighbouring level, 1/127 of its block's
     * largest value apart, so the twins drift further: Q8_TOL (measured
     * 6.5e-3 on SmolLM2), greedy tokens still equal */
    if (bllm_model_get_info(m)->head_dim % 32 == 0)
        bad += run(m, BLLM_KV_Q8, Q8_TOL);
    /* refused: the same context twice, a full context */
    bllm_context *c;
    bllm_context_params cp = {.n_ctx = 4, .n_threads = 1};
    int32_t t[2] = {1, 1};
    float *l = malloc(sizeof(float) * 2 * bllm_model_get_info(m)->n_vocab);
    bllm_context_new(m, &cp, &c);
    bllm_context *twice[2] = {c, c};
    int ok = bllm_eval_batch(twice, t, 2, l) == BLLM_ERR_ARG;
    int32_t four[4] = {1, 1, 1, 1};
    ok = ok && !bllm_eval(c, four, 4, l, false) && bllm_eval_batch(&c, t, 1, l) == BLLM_ERR_CONTEXT;
    printf("refused: a context twice in one batch, a full context: %s\n", ok ? "ok" : "FAIL");
    bllm_context_free(c);
    free(l);
    bllm_model_free(m);
    return bad || !ok;
}
