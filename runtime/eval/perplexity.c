/* Windowed perplexity / KL scoring (runtime/eval/perplexity.h). */
#include "runtime/eval/perplexity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sleef.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "runtime/error.h"
#include "runtime/threadpool.h"

/* Tokens per bllm_eval call inside a window. A multiple of the forward
 * pass's internal batch (64), so slicing a window changes no arithmetic, and
 * small enough that a slice of SmolLM2 logits is 25 MB. */
#define PPL_SLICE 128

const char *bllm_ppl_protocol_name(bllm_ppl_protocol p)
{
    return p == BLLM_PPL_LLAMACPP ? "llamacpp" : "gptq";
}

bool bllm_ppl_protocol_parse(const char *name, bllm_ppl_protocol *out)
{
    if (!strcmp(name, "gptq"))
        *out = BLLM_PPL_GPTQ;
    else if (!strcmp(name, "llamacpp"))
        *out = BLLM_PPL_LLAMACPP;
    else
        return false;
    return true;
}

bllm_status bllm_ppl_plan_make(const bllm_ppl_params *p, size_t n_tokens, bllm_ppl_plan *out)
{
    memset(out, 0, sizeof *out);
    if (p->n_ctx < 2)
        return bllm_fail(BLLM_ERR_ARG, "a perplexity window needs at least 2 tokens (got %d)", p->n_ctx);
    if (p->max_windows < 0)
        return bllm_fail(BLLM_ERR_ARG, "negative window limit %d", p->max_windows);
    /* Both reference implementations drop the partial tail:
     * nsamples = numel // seqlen (GPTQ), n_chunk_max = size / n_ctx (llama.cpp). */
    size_t n = n_tokens / (size_t)p->n_ctx;
    if (n == 0)
        return bllm_fail(BLLM_ERR_CONTEXT, "%zu tokens do not fill one window of %d tokens", n_tokens, p->n_ctx);
    if (p->max_windows > 0 && n > (size_t)p->max_windows)
        n = (size_t)p->max_windows;
    if (n > INT32_MAX)
        n = INT32_MAX;
    out->n_windows = (int)n;
    out->n_ctx = p->n_ctx;
    if (p->protocol == BLLM_PPL_LLAMACPP) {
        /* perplexity.cpp: first = n_ctx/2, then n_ctx - 1 - first predictions. */
        out->first_scored = p->n_ctx / 2;
        out->n_scored = p->n_ctx - 1 - out->first_scored;
    } else {
        /* GPTQ: shift_logits = logits[:, :-1], labels = window[:, 1:]. */
        out->first_scored = 0;
        out->n_scored = p->n_ctx - 1;
    }
    if (out->n_scored < 1)
        return bllm_fail(BLLM_ERR_ARG, "a window of %d tokens leaves nothing to score under the %s protocol",
                         p->n_ctx, bllm_ppl_protocol_name(p->protocol));
    return BLLM_OK;
}

/* ------------------------------------------------------------ row math */

static float row_max(const float *x, int n, int *argmax)
{
    /* First index of the maximum, as torch.argmax and llama.cpp pick. */
    float m = x[0];
    int am = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > m) {
            m = x[i];
            am = i;
        }
    *argmax = am;
    return m;
}

/* sum_i exp(x[i] - max) in double. */
static double exp_sum(const float *x, int n, double max)
{
    int i = 0;
    double sum = 0.0;
#if defined(__SSE2__)
    __m128d vmax = _mm_set1_pd(max), s0 = _mm_setzero_pd(), s1 = _mm_setzero_pd();
    for (; i + 4 <= n; i += 4) {
        __m128 v = _mm_loadu_ps(x + i);
        __m128d lo = _mm_cvtps_pd(v), hi = _mm_cvtps_pd(_mm_movehl_ps(v, v));
        s0 = _mm_add_pd(s0, Sleef_expd2_u10(_mm_sub_pd(lo, vmax)));
        s1 = _mm_add_pd(s1, Sleef_expd2_u10(_mm_sub_pd(hi, vmax)));
    }
    double l[2];
    _mm_storeu_pd(l, _mm_add_pd(s0, s1));
    sum = l[0] + l[1];
#endif
    for (; i < n; i++)
        sum += Sleef_exp_u10((double)x[i] - max);
    return sum;
}

/* sum_i p_b(i) (log p_b(i) - log p_m(i)) with log p = x - lse, in double.
 * Written per element (not as sum p_b (b - m) + lse_m - lse_b) so identical
 * rows give exactly 0. */
static double kl_sum(const float *b, const float *m, int n, double lse_b, double lse_m)
{
    int i = 0;
    double sum = 0.0;
#if defined(__SSE2__)
    __m128d vlb = _mm_set1_pd(lse_b), vlm = _mm_set1_pd(lse_m), s0 = _mm_setzero_pd(), s1 = _mm_setzero_pd();
    for (; i + 4 <= n; i += 4) {
        __m128 vb = _mm_loadu_ps(b + i), vm = _mm_loadu_ps(m + i);
        __m128d lb0 = _mm_sub_pd(_mm_cvtps_pd(vb), vlb);
        __m128d lb1 = _mm_sub_pd(_mm_cvtps_pd(_mm_movehl_ps(vb, vb)), vlb);
        __m128d lm0 = _mm_sub_pd(_mm_cvtps_pd(vm), vlm);
        __m128d lm1 = _mm_sub_pd(_mm_cvtps_pd(_mm_movehl_ps(vm, vm)), vlm);
        s0 = _mm_add_pd(s0, _mm_mul_pd(Sleef_expd2_u10(lb0), _mm_sub_pd(lb0, lm0)));
        s1 = _mm_add_pd(s1, _mm_mul_pd(Sleef_expd2_u10(lb1), _mm_sub_pd(lb1, lm1)));
    }
    double l[2];
    _mm_storeu_pd(l, _mm_add_pd(s0, s1));
    sum = l[0] + l[1];
#endif
    for (; i < n; i++) {
        double lb = (double)b[i] - lse_b, lm = (double)m[i] - lse_m;
        sum += Sleef_exp_u10(lb) * (lb - lm);
    }
    return sum;
}

typedef struct {
    double nll, kl;
    bool same_top;
} row_result;

static void score_one(const float *logits, const float *base, int n_vocab, int32_t target, row_result *r)
{
    int am;
    double mx = row_max(logits, n_vocab, &am);
    double lse = mx + log(exp_sum(logits, n_vocab, mx));
    r->nll = lse - (double)logits[target];
    r->kl = 0.0;
    r->same_top = false;
    if (base) {
        int bm;
        double bmx = row_max(base, n_vocab, &bm);
        double blse = bmx + log(exp_sum(base, n_vocab, bmx));
        r->kl = kl_sum(base, logits, n_vocab, blse, lse);
        r->same_top = am == bm;
    }
}

static void accumulate(bllm_ppl_stats *s, const row_result *r, bool with_base)
{
    s->sum_nll += r->nll;
    s->sum_nll2 += r->nll * r->nll;
    s->count++;
    if (with_base) {
        s->sum_kl += r->kl;
        s->sum_kl2 += r->kl * r->kl;
        s->n_same_top += r->same_top;
        s->count_kl++;
    }
}

void bllm_ppl_score_row(bllm_ppl_stats *s, const float *logits, const float *base, int n_vocab, int32_t target)
{
    row_result r;
    score_one(logits, base, n_vocab, target, &r);
    accumulate(s, &r, base != NULL);
}

void bllm_ppl_stats_merge(bllm_ppl_stats *a, const bllm_ppl_stats *b)
{
    a->sum_nll += b->sum_nll;
    a->sum_nll2 += b->sum_nll2;
    a->count += b->count;
    a->sum_kl += b->sum_kl;
    a->sum_kl2 += b->sum_kl2;
    a->n_same_top += b->n_same_top;
    a->count_kl += b->count_kl;
}

/* Standard error of a mean from running sums, as llama.cpp computes it:
 * sqrt((E[x^2] - E[x]^2) / (n - 1)). */
static double stderr_of(double sum, double sum2, uint64_t n)
{
    if (n < 2)
        return 0.0;
    double mean = sum / (double)n;
    double var = sum2 / (double)n - mean * mean;
    return var > 0 ? sqrt(var / (double)(n - 1)) : 0.0;
}

void bllm_ppl_summarize(const bllm_ppl_stats *s, bllm_ppl_summary *out)
{
    memset(out, 0, sizeof *out);
    out->tokens = s->count;
    if (s->count) {
        out->nll_mean = s->sum_nll / (double)s->count;
        out->nll_stderr = stderr_of(s->sum_nll, s->sum_nll2, s->count);
        out->ppl = exp(out->nll_mean);
        out->ppl_stderr = out->ppl * out->nll_stderr;
    }
    if (s->count_kl) {
        out->has_kl = true;
        out->kl_mean = s->sum_kl / (double)s->count_kl;
        out->kl_stderr = stderr_of(s->sum_kl, s->sum_kl2, s->count_kl);
        out->top1_agree = (double)s->n_same_top / (double)s->count_kl;
    }
}

/* ------------------------------------------------------------ evaluation */

/* One slice's scoring, split over the pool by rows. Each row's result lands
 * in its own slot and the sums are taken afterwards in row order, so the
 * totals do not depend on the thread count. */
typedef struct {
    const float *logits, *base;
    const int32_t *targets;
    int n_rows, n_vocab;
    row_result *out;
} score_job;

static void score_rows(void *arg, int ith, int nth)
{
    score_job *j = arg;
    int b, e;
    bllm_pool_range(j->n_rows, 1, ith, nth, &b, &e);
    for (int r = b; r < e; r++)
        score_one(j->logits + (size_t)r * j->n_vocab, j->base ? j->base + (size_t)r * j->n_vocab : NULL, j->n_vocab,
                  j->targets[r], &j->out[r]);
}

bllm_status bllm_ppl_evaluate(bllm_model *model, bllm_context *ctx, bllm_model *base, bllm_context *base_ctx,
                              const int32_t *tokens, size_t n_tokens, const bllm_ppl_params *p, int n_threads,
                              bllm_ppl_progress_fn progress, void *user, bllm_ppl_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!model || !ctx || !tokens || !p || (!base) != (!base_ctx))
        return bllm_fail(BLLM_ERR_ARG, "bllm_ppl_evaluate: missing model, context or tokens");
    bllm_ppl_plan plan;
    bllm_status st = bllm_ppl_plan_make(p, n_tokens, &plan);
    if (st)
        return st;
    const int n_vocab = bllm_model_get_info(model)->n_vocab;
    if (base && bllm_model_get_info(base)->n_vocab != n_vocab)
        return bllm_fail(BLLM_ERR_ARG, "the base model has %d tokens in its vocabulary, the model %d: KL needs the same vocabulary",
                         bllm_model_get_info(base)->n_vocab, n_vocab);
    if (bllm_context_n_ctx(ctx) < p->n_ctx || (base_ctx && bllm_context_n_ctx(base_ctx) < p->n_ctx))
        return bllm_fail(BLLM_ERR_CONTEXT, "the context holds fewer tokens than a window of %d", p->n_ctx);
    for (size_t i = 0; i < (size_t)plan.n_windows * plan.n_ctx; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return bllm_fail(BLLM_ERR_ARG, "token %zu is %d, outside the vocabulary [0, %d)", i, tokens[i], n_vocab);
    if (p->protocol == BLLM_PPL_LLAMACPP && p->bos >= n_vocab)
        return bllm_fail(BLLM_ERR_ARG, "BOS id %d is outside the vocabulary", p->bos);

    if (n_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)n : 1;
    }
    bllm_pool *pool = NULL;
    float *logits = malloc((size_t)PPL_SLICE * n_vocab * sizeof(float));
    float *blogits = base ? malloc((size_t)PPL_SLICE * n_vocab * sizeof(float)) : NULL;
    int32_t *window = malloc((size_t)plan.n_ctx * sizeof(int32_t));
    row_result *rows = malloc(PPL_SLICE * sizeof(row_result));
    if (!logits || (base && !blogits) || !window || !rows)
        st = bllm_fail(BLLM_ERR_NOMEM, "out of memory for %d x %d logits", PPL_SLICE, n_vocab);
    if (!st)
        st = bllm_pool_new(n_threads, &pool);

    const int first = plan.first_scored, last = plan.first_scored + plan.n_scored; /* [first, last) */
    for (int w = 0; !st && w < plan.n_windows; w++) {
        const int32_t *src = tokens + (size_t)w * plan.n_ctx;
        memcpy(window, src, (size_t)plan.n_ctx * sizeof *window);
        if (p->protocol == BLLM_PPL_LLAMACPP && p->bos >= 0)
            window[0] = p->bos;
        bllm_context_reset(ctx);
        if (base_ctx)
            bllm_context_reset(base_ctx);
        for (int start = 0; !st && start < plan.n_ctx; start += PPL_SLICE) {
            int n = plan.n_ctx - start < PPL_SLICE ? plan.n_ctx - start : PPL_SLICE;
            int lo = start > first ? start : first;
            int hi = start + n < last ? start + n : last;
            bool scored = lo < hi;
            /* Slices with nothing to score skip the output projection. */
            st = bllm_eval(ctx, window + start, n, scored ? logits : NULL, true);
            if (!st && base_ctx)
                st = bllm_eval(base_ctx, window + start, n, scored ? blogits : NULL, true);
            if (st || !scored)
                continue;
            score_job job = {
                .logits = logits + (size_t)(lo - start) * n_vocab,
                .base = base ? blogits + (size_t)(lo - start) * n_vocab : NULL,
                .targets = src + lo + 1, /* the text's tokens, never the BOS substitute */
                .n_rows = hi - lo,
                .n_vocab = n_vocab,
                .out = rows,
            };
            bllm_pool_run(pool, score_rows, &job);
            for (int r = 0; r < job.n_rows; r++)
                accumulate(out, &rows[r], base != NULL);
        }
        if (!st && progress && !progress(user, w, plan.n_windows, out))
            break;
    }
    if (pool)
        bllm_pool_free(pool);
    free(logits);
    free(blogits);
    free(window);
    free(rows);
    return st;
}
