/* A calibrated quantization method: one matrix at a time, from its float
 * weights and the Hessian of its calibration inputs, to the decomposition
 * of a packed type (runtime/format/binary.h) plus the values the quantizer
 * simulates with. The engine (engine.h) gathers the Hessians and runs the
 * model forward on the simulated values, so every method sees the errors
 * of the layers quantized before it. Methods live one per file beside this
 * one (pbllm.c, billm.c, stbllm.c, pbs2p.c, onebit.c). */
#ifndef BLLM_QUANT_METHOD_H
#define BLLM_QUANT_METHOD_H

#include <stdbool.h>

#include "bllm.h"
#include "runtime/format/binary.h"
#include "runtime/quant/gptq.h"
#include "runtime/threadpool.h"

typedef struct {
    double percdamp;      /* GPTQ damping, fraction of the mean diagonal (0.01) */
    int block;            /* GPTQ column block (128) */
    float salient_frac;   /* pb-llm: share of each matrix kept at 8 bits (0.1) */
    int max_salient_cols; /* billm: salient columns searched per block, 1..this (49) */
    bool intra_block;     /* billm: feed errors inside a block too (true);
                             false = BiLLM's code: only to later blocks */
    int onebit_fit_iters; /* onebit: alternating g/h least-squares steps
                             (10); 0 keeps the SVID initialization */
    int nm_n, nm_m;       /* stbllm: N kept of every M consecutive inputs
                             (4:8); the engine may change N per layer */
    bool nm_refill;       /* stbllm, diagnostic: what the authors' code does
                             (the pruned weights zeroed before compensation,
                             then re-filled by it and binarized like the
                             rest), so the stored model is NOT N:M-sparse */
} bllm_method_options;

void bllm_method_options_default(bllm_method_options *o);

typedef struct {
    double salient_share; /* weights held at more than one bit: pb-llm's
                             8-bit ones, billm's salient columns */
    double rel_error;     /* ||W X - Q X|| / ||W X|| on the calibration inputs */
} bllm_method_report;

/* w: rows x cols f32; H: cols x cols, 2 X X^T / n in double, undamped;
 * hinv: its damped inverse factor (bllm_gptq_hinv_init with o->percdamp),
 * shared by the matrices that share H. On success d holds the
 * decomposition (initialized here) and sim (rows x cols) the simulated
 * weights, equal to bllm_binary_decomp_value(d, r, c) bit for bit. */
typedef bllm_status bllm_method_run(const float *w, int rows, int cols, const double *H,
                                    const bllm_gptq_hinv *hinv, const bllm_method_options *o, bllm_pool *pool,
                                    bllm_binary_decomp *d, float *sim, bllm_method_report *rep);
typedef bllm_method_run *bllm_method_fn;

typedef struct {
    const char *name;  /* as --method takes it */
    bllm_type type;    /* what it stores */
    bllm_method_fn run;
} bllm_method;

/* The squared error of BiLLM's binarization of v[0..n) with its own mean
 * and scale, to order 1 (mu + a sign(v - mu)) or 2 (the same again on the
 * residual): what billm's searches minimize. */
double bllm_billm_fit_error(const double *v, int n, int order);

/* The calibrated methods by name ("pb-llm", "billm", "stbllm", "pbs2p",
 * "onebit"); NULL if unknown. */
const bllm_method *bllm_method_find(const char *name);

/* The methods, one file each (the contract above). */
bllm_method_run bllm_method_pbllm, bllm_method_billm, bllm_method_stbllm, bllm_method_pbs2p, bllm_method_onebit;
/* STBLLM's importance of every weight (stbllm.c), from w and the diagonal
 * of H, into score[rows x cols]. */
bllm_status bllm_stbllm_scores(const float *w, int rows, int cols, const double *H, float *score);
/* keep[rows x cols] = 1 for the n highest scores of every m consecutive
 * columns of a row (ties to the lower column), 0 for the rest. */
bllm_status bllm_nm_mask_top(const float *score, int rows, int cols, int n, int m, uint8_t *keep);
/* BiLLM's binarization with compensation (billm.c), shared: type billm
 * (keep NULL, two magnitude groups) or stbllm (keep = the N:M mask, three
 * magnitude regions, pruned weights held at 0). */
bllm_status bllm_billm_family_run(bllm_type type, const uint8_t *keep, const float *w, int rows, int cols,
                                  const double *H, const bllm_gptq_hinv *h, const bllm_method_options *o,
                                  bllm_pool *pool, bllm_binary_decomp *d, float *sim, bllm_method_report *rep);

#endif
