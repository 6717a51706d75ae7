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
    const void *data; /* in the mapping, in its storage type (a head
                         repacked at bind: in owned, in the x16 layout) */
    bllm_type type;
    int rows, cols;   /* y = W x: rows outputs, cols inputs */
    bllm_matmul_fn matmul; /* the active set's kernel for type, or the
                              scalar reference where the set lacks one */
    bool has_salient;      /* pb8: companion "X.salient", validated */
    bllm_pb8_salient salient;
    void *owned;           /* data when it is a repacked copy (freed by
                              bllm_llama_unbind), else NULL */
    size_t owned_bytes;
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

/* Activations and KV cache of one sequence. The buffers hold max_batch
 * tokens; the calibration engine (runtime/quant/) reads and writes them
 * between the block stages below. */
typedef struct {
    int n_ctx, max_batch, n_layers, n_kv_heads;
    /* [layer][KV head][pos][head_dim] in kv's storage: f32, f16 bits (half
     * the bytes each decoded token reads from the cache, for an error far
     * below the weights': docs/inference.md) or q8 blocks (head_dim / 32
     * blocks of 34 bytes per position, runtime/format/blockq.h). kv_row
     * bytes per head and position. Each head's positions are one
     * contiguous stream, which attention reads from first to last key. */
    void *key_cache, *value_cache; /* huge-page memory (runtime/memory.h) */
    size_t cache_bytes;             /* each of the two */
    bllm_kv_type kv;
    size_t kv_row;
    float *x;        /* [max_batch][dim]: the residual stream */
    float *xb;       /* [max_batch][max(dim, q_dim)]: normed input / product */
    float *q, *k, *v;
    float *att_out;  /* [max_batch][q_dim]: attention, input of attn_output */
    float *hb, *hb2; /* [max_batch][hidden]: hb = input of ffn_down */
    float *rope_cos, *rope_sin; /* [max_batch][head_dim/2] */
    float *inv_freq;            /* [head_dim/2] */
    float *scratch;             /* attention scratch, per thread, grown on demand */
    size_t scratch_floats;      /* per thread */
    int scratch_threads;
} bllm_llama_state;

/* n_layers of hp's cache are allocated (the engine uses 1: one block at a
 * time). max_batch: tokens processed per internal step. kv: the cache's
 * storage, BLLM_KV_F16, BLLM_KV_F32 (the calibration engine's BLAS
 * attention needs f32) or BLLM_KV_Q8 (head_dim a multiple of 32). */
bllm_status bllm_llama_state_new(const bllm_llama_hparams *hp, int n_ctx, int max_batch, bllm_kv_type kv,
                                 bllm_llama_state **out);
void bllm_llama_state_free(bllm_llama_state *s);

/* Run tokens[0..n) at positions pos..pos+n-1 (the cache must hold pos
 * tokens already). logits: n x n_vocab if all_logits, else the last row
 * only; may be NULL. */
bllm_status bllm_llama_forward(const bllm_llama_weights *w, bllm_llama_state *s, bllm_pool *pool,
                               const int32_t *tokens, int n, int pos, float *logits, bool all_logits);

/* One token for each of n sequences (distinct states of this model, each
 * with its own cache, the token at position pos[t] of seq[t]), run as one
 * batch: every matrix product takes all n tokens, so the weights are read
 * once for all of them; attention is per sequence. The activations use
 * seq[0]'s buffers (n <= its max_batch). logits: n x n_vocab. */
bllm_status bllm_llama_forward_multi(const bllm_llama_weights *w, bllm_llama_state *const *seq, const int *pos,
                                     int n, bllm_pool *pool, const int32_t *tokens, float *logits);

/* ---- one block, in stages ----
 * bllm_llama_forward runs every block as these six calls in this order, on
 * the T <= max_batch tokens in s->x at positions pos..pos+T-1; the
 * calibration engine runs the same calls one stage at a time, reading each
 * linear layer's input where it lies (in brackets) and quantizing that
 * layer before the next stage uses it. cache_layer: which layer of the KV
 * cache the block uses. Before any stage: bllm_llama_set_positions. */
void bllm_llama_set_positions(const bllm_llama_hparams *hp, bllm_llama_state *s, int T, int pos);
/* s->xb = attn_norm(s->x)                          [input of wq, wk, wv] */
void bllm_llama_attn_norm(const bllm_llama_hparams *hp, const bllm_llama_layer *L, bllm_llama_state *s,
                          bllm_pool *pool, int T);
/* Q, K, V from s->xb, RoPE, cache, causal attention -> s->att_out
 *                                                  [input of wo] */
bllm_status bllm_llama_attention(const bllm_llama_hparams *hp, const bllm_llama_layer *L, int cache_layer,
                                 bllm_llama_state *s, bllm_pool *pool, int T, int pos);
/* s->x += wo s->att_out */
void bllm_llama_attn_residual(const bllm_llama_hparams *hp, const bllm_llama_layer *L, bllm_llama_state *s,
                              bllm_pool *pool, int T);
/* s->xb = ffn_norm(s->x)                           [input of w_gate, w_up] */
void bllm_llama_ffn_norm(const bllm_llama_hparams *hp, const bllm_llama_layer *L, bllm_llama_state *s,
                         bllm_pool *pool, int T);
/* s->hb = silu(w_gate s->xb) * (w_up s->xb)        [input of w_down] */
void bllm_llama_ffn_hidden(const bllm_llama_hparams *hp, const bllm_llama_layer *L, bllm_llama_state *s,
                           bllm_pool *pool, int T);
/* s->x += w_down s->hb */
void bllm_llama_ffn_residual(const bllm_llama_hparams *hp, const bllm_llama_layer *L, bllm_llama_state *s,
                             bllm_pool *pool, int T);

#endif
