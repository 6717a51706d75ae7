/* The Llama-family forward pass: weights bound in place from a .stb mapping,
 * a KV cache, and one function that runs a batch of tokens through it. */
#ifndef BLLM_LLAMA_H
#define BLLM_LLAMA_H

#include "kernels/kernels.h"
#include "models/llama_hparams.h"
#include "runtime/format/binary.h"
#include "runtime/format/stb.h"
#include "runtime/threadpool.h"

typedef struct {
    const void *data; /* in the mapping, in its storage type */
    bllm_type type;
    int rows, cols;   /* y = W x: rows outputs, cols inputs */
    bllm_matmul_fn matmul; /* the active set's kernel for type, or the
                              scalar reference where the set lacks one */
    bool has_salient;      /* pb8: companion "X.salient", validated */
    bllm_pb8_salient salient;
} bllm_matrix;

typedef struct {
    const float *attn_norm, *ffn_norm; /* dim */
    bllm_matrix wq, wk, wv, wo;
    bllm_matrix w_gate, w_up, w_down;
} bllm_llama_layer;

typedef struct {
    bllm_llama_hparams hp;
    bllm_matrix tok_embd;     /* n_vocab x dim */
    bllm_llama_layer *layers;
    const float *output_norm; /* dim */
    bllm_matrix output;       /* n_vocab x dim; = tok_embd when tied */
    bool tied;
    uint64_t n_params;
} bllm_llama_weights;

/* Bind every tensor, checking names, types and shapes against hp. The
 * blk.* matrices may be packed binary types (pb8 with its companion, which
 * is validated in full here); token_embd and output must be float. */
bllm_status bllm_llama_bind(const bllm_stb_file *f, const bllm_llama_hparams *hp, bllm_llama_weights *w);
void bllm_llama_unbind(bllm_llama_weights *w);

typedef struct bllm_llama_state bllm_llama_state;

/* max_batch: tokens processed per internal step (longer inputs are split). */
bllm_status bllm_llama_state_new(const bllm_llama_weights *w, int n_ctx, int max_batch,
                                 bllm_llama_state **out);
void bllm_llama_state_free(bllm_llama_state *s);

/* Run tokens[0..n) at positions pos..pos+n-1 (the cache must hold pos
 * tokens already). logits: n x n_vocab if all_logits, else the last row
 * only; may be NULL. */
bllm_status bllm_llama_forward(const bllm_llama_weights *w, bllm_llama_state *s, bllm_pool *pool,
                               const int32_t *tokens, int n, int pos, float *logits, bool all_logits);

#endif
