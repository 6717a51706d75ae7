/* Token sampling as llama.cpp users know it: repeat penalty, then greedy at
 * temperature 0, else top-k -> top-p -> min-p -> temperature -> draw. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bllm.h"
#include "runtime/error.h"

struct bllm_sampler {
    bllm_sampler_params p;
    int n_vocab;
    uint64_t rng;
    int32_t *history; /* ring of the last repeat_last_n tokens */
    int hist_len, hist_pos;
    struct cand { float logit; int32_t id; } *cand;
};

bllm_sampler_params bllm_sampler_default_params(void)
{
    return (bllm_sampler_params){.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
                                 .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = 0};
}

bllm_status bllm_sampler_new(const bllm_sampler_params *p, int n_vocab, bllm_sampler **out)
{
    *out = NULL;
    if (n_vocab < 1 || !p || !(p->temperature >= 0) || p->top_k < 0 || !(p->top_p > 0 && p->top_p <= 1) ||
        !(p->min_p >= 0 && p->min_p <= 1) || !(p->repeat_penalty > 0) || p->repeat_last_n < 0)
        return bllm_fail(BLLM_ERR_ARG, "sampler parameters out of range (temperature >= 0, top-k >= 0, "
                                       "0 < top-p <= 1, 0 <= min-p <= 1, repeat-penalty > 0)");
    bllm_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    s->rng = p->seed ? p->seed : 0x9E3779B97F4A7C15ull;
    s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    s->history = malloc((size_t)(p->repeat_last_n ? p->repeat_last_n : 1) * sizeof *s->history);
    if (!s->cand || !s->history) {
        bllm_sampler_free(s);
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    }
    *out = s;
    return BLLM_OK;
}

void bllm_sampler_free(bllm_sampler *s)
{
    if (!s)
        return;
    free(s->cand);
    free(s->history);
    free(s);
}

void bllm_sampler_accept(bllm_sampler *s, int32_t token)
{
    if (!s->p.repeat_last_n)
        return;
    s->history[s->hist_pos] = token;
    s->hist_pos = (s->hist_pos + 1) % s->p.repeat_last_n;
    if (s->hist_len < s->p.repeat_last_n)
        s->hist_len++;
}

/* xorshift64*: small, fast, and reproducible across platforms for a seed. */
static float rand_unit(bllm_sampler *s)
{
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return (float)((s->rng * 0x2545F4914F6CDD1Dull) >> 40) / 16777216.0f;
}

static int by_logit_desc(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit < y->logit ? 1 : -1;
    return x->id - y->id;
}

int32_t bllm_sampler_sample(bllm_sampler *s, float *logits)
{
    /* Repeat penalty as in CTRL / llama.cpp: shrink positive logits, grow
     * negative ones, once per distinct token in the window. */
    if (s->p.repeat_penalty != 1.0f) {
        for (int i = 0; i < s->hist_len; i++) {
            int32_t t = s->history[i];
            bool seen = false;
            for (int j = 0; j < i && !seen; j++)
                seen = s->history[j] == t;
            if (seen || t < 0 || t >= s->n_vocab)
                continue;
            logits[t] = logits[t] > 0 ? logits[t] / s->p.repeat_penalty : logits[t] * s->p.repeat_penalty;
        }
    }
    if (s->p.temperature == 0.0f) {
        int32_t best = 0;
        for (int i = 1; i < s->n_vocab; i++)
            if (logits[i] > logits[best])
                best = i;
        return best;
    }
    int n = 0;
    for (int i = 0; i < s->n_vocab; i++)
        if (!isnan(logits[i]))
            s->cand[n++] = (struct cand){logits[i], i};
    if (n == 0)
        return 0;
    int k = s->p.top_k > 0 && s->p.top_k < n ? s->p.top_k : n;
    /* A full sort of the vocabulary is ~1 ms for 50k tokens; with top-k we
     * only need the first k, but keep it simple until it shows in profiles. */
    qsort(s->cand, n, sizeof *s->cand, by_logit_desc);
    n = k;
    float maxl = s->cand[0].logit;
    double sum = 0;
    float *prob = malloc((size_t)n * sizeof *prob);
    if (!prob)
        return s->cand[0].id;
    for (int i = 0; i < n; i++) {
        prob[i] = expf((s->cand[i].logit - maxl) / s->p.temperature);
        sum += prob[i];
    }
    /* top-p: smallest prefix whose mass reaches p; min-p: drop tokens below
     * min_p times the best token's probability. */
    double acc = 0;
    int keep = n;
    for (int i = 0; i < n; i++) {
        acc += prob[i] / sum;
        if (acc >= s->p.top_p) {
            keep = i + 1;
            break;
        }
    }
    float floor_p = s->p.min_p * prob[0];
    while (keep > 1 && prob[keep - 1] < floor_p)
        keep--;
    double total = 0;
    for (int i = 0; i < keep; i++)
        total += prob[i];
    double r = (double)rand_unit(s) * total, c = 0;
    int32_t pick = s->cand[keep - 1].id;
    for (int i = 0; i < keep; i++) {
        c += prob[i];
        if (r < c) {
            pick = s->cand[i].id;
            break;
        }
    }
    free(prob);
    return pick;
}
