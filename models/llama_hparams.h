/* Hyperparameters of the Llama family as stored in .stb metadata (keys
 * "llama.*", docs/format.md). Shared by the converters, which write them,
 * and the runtime, which reads and checks them against the tensor shapes.
 *
 * Conventions every converter must normalize to:
 *  - tensor names are GGUF's (token_embd.weight, blk.N.attn_q.weight, ...,
 *    output_norm.weight, output.weight absent when embeddings are tied);
 *  - shapes are PyTorch order: dims[0] = output features;
 *  - RoPE rotates adjacent pairs (x[2i], x[2i+1]) as llama2.c and GGUF do;
 *    HF checkpoints (rotate_half) get their Q/K rows permuted on import. */
#ifndef BLLM_LLAMA_HPARAMS_H
#define BLLM_LLAMA_HPARAMS_H

#include "bllm.h"

typedef enum {
    BLLM_ROPE_SCALING_NONE = 0,
    BLLM_ROPE_SCALING_LINEAR = 1, /* positions divided by factor */
    BLLM_ROPE_SCALING_LLAMA3 = 2, /* Llama-3.1 frequency-dependent scaling */
} bllm_rope_scaling;

typedef struct {
    char name[128];
    uint32_t n_vocab, dim, hidden_dim, n_layers, n_heads, n_kv_heads, head_dim;
    uint32_t max_seq_len;
    float rope_theta;
    float norm_eps;
    bllm_rope_scaling rope_scaling;
    float rope_factor;           /* LINEAR, LLAMA3 */
    float rope_low_freq_factor;  /* LLAMA3 */
    float rope_high_freq_factor; /* LLAMA3 */
    uint32_t rope_orig_max_seq;  /* LLAMA3 */
} bllm_llama_hparams;

struct bllm_stb_file;
struct bllm_stb_writer;
bllm_status bllm_llama_hparams_to_stb(const bllm_llama_hparams *hp, struct bllm_stb_writer *w);
/* Reads and sanity-checks (non-zero sizes, heads divide, bounded values). */
bllm_status bllm_llama_hparams_from_stb(const struct bllm_stb_file *f, bllm_llama_hparams *hp);
bllm_status bllm_llama_hparams_check(const bllm_llama_hparams *hp);

#endif
