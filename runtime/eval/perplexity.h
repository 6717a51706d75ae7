/* Perplexity and KL-divergence scoring over fixed windows of a token stream
 * (docs/perplexity.md). Two protocols:
 *
 *   GPTQ      what the quantization papers report (GPTQ/BiLLM eval_ppl):
 *             non-overlapping windows of n_ctx tokens, the partial tail
 *             dropped, every position but the last scored against the next
 *             token (n_ctx - 1 predictions per window).
 *   LLAMACPP  llama.cpp's perplexity tool: the same windows, each one's first
 *             token replaced by BOS (when the model has one), only the
 *             predictions of the second half scored.
 *
 * Scoring streams: a window is evaluated in slices and each slice's logits
 * are scored and discarded, so memory holds one slice of logits per model,
 * never a whole window's or the whole text's. */
#ifndef BLLM_PERPLEXITY_H
#define BLLM_PERPLEXITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bllm.h"

typedef enum {
    BLLM_PPL_GPTQ = 0,
    BLLM_PPL_LLAMACPP = 1,
} bllm_ppl_protocol;

const char *bllm_ppl_protocol_name(bllm_ppl_protocol p);
/* "gptq" or "llamacpp"; false for anything else. */
bool bllm_ppl_protocol_parse(const char *name, bllm_ppl_protocol *out);

typedef struct {
    bllm_ppl_protocol protocol;
    int n_ctx;       /* window length in tokens (>= 2) */
    int max_windows; /* 0: every full window */
    int32_t bos;     /* LLAMACPP: token put in each window's first slot; -1: none */
} bllm_ppl_params;

/* Which positions of which windows get scored. Window w feeds tokens
 * [w * n_ctx, (w + 1) * n_ctx); the logits at window position p, for
 * first_scored <= p < first_scored + n_scored, are scored against the token
 * at window position p + 1. */
typedef struct {
    int n_windows;
    int n_ctx;
    int first_scored;
    int n_scored;
} bllm_ppl_plan;

/* Fails with BLLM_ERR_ARG on bad parameters and BLLM_ERR_CONTEXT when the
 * tokens do not fill one window. */
bllm_status bllm_ppl_plan_make(const bllm_ppl_params *p, size_t n_tokens, bllm_ppl_plan *out);

/* Running sums over scored positions. NLL is -log softmax(logits)[target],
 * computed in double with the maximum subtracted before exponentiating. KL
 * is KL(base || model) = sum_i p_base(i) (log p_base(i) - log p_model(i)). */
typedef struct {
    double sum_nll, sum_nll2;
    uint64_t count;
    double sum_kl, sum_kl2;
    uint64_t n_same_top; /* positions whose argmax agrees with the base's */
    uint64_t count_kl;   /* positions with a base (== count when KL is on) */
} bllm_ppl_stats;

/* Score one position. base may be NULL (no KL). */
void bllm_ppl_score_row(bllm_ppl_stats *s, const float *logits, const float *base, int n_vocab, int32_t target);
/* Add b's sums into a. */
void bllm_ppl_stats_merge(bllm_ppl_stats *a, const bllm_ppl_stats *b);

typedef struct {
    uint64_t tokens;     /* scored positions */
    double nll_mean;     /* mean NLL in nats */
    double nll_stderr;   /* standard error of that mean */
    double ppl;          /* exp(nll_mean) */
    double ppl_stderr;   /* ppl * nll_stderr (first-order propagation) */
    bool has_kl;
    double kl_mean, kl_stderr;
    double top1_agree;   /* fraction in [0, 1] */
} bllm_ppl_summary;

void bllm_ppl_summarize(const bllm_ppl_stats *s, bllm_ppl_summary *out);

/* Called after each window with the sums so far; return false to stop. */
typedef bool (*bllm_ppl_progress_fn)(void *user, int window, int n_windows, const bllm_ppl_stats *s);

/* Score `tokens` with the model in ctx (and, for KL, the base model in
 * base_ctx, NULL otherwise) under plan-producing params p. Both contexts must
 * hold at least p->n_ctx tokens and their models the same vocabulary size;
 * they are reset before every window. *out receives the sums (also on
 * failure, holding what was scored). n_threads threads score logits
 * (0: number of online CPUs). */
bllm_status bllm_ppl_evaluate(bllm_model *model, bllm_context *ctx, bllm_model *base, bllm_context *base_ctx,
                              const int32_t *tokens, size_t n_tokens, const bllm_ppl_params *p, int n_threads,
                              bllm_ppl_progress_fn progress, void *user, bllm_ppl_stats *out);

#endif
