/* Llama-family .stb models with random weights but real shapes, so
 * throughput and memory traffic can be measured without a checkpoint
 * (bllm-random, docs/bench.md), and the canonical tensor list of a Llama
 * model, which any writer of such models (random, quantizer) needs. */
#ifndef BLLM_RANDOM_MODEL_H
#define BLLM_RANDOM_MODEL_H

#include "bllm.h"
#include "models/llama_hparams.h"
#include "runtime/format/types.h"

/* A named shape of a published model. */
typedef struct {
    const char *name;  /* "llama2-7b", "tinyllama-1.1b", "smollm2-135m" */
    bllm_llama_hparams hp;
    bool tied;         /* output head shares token_embd */
} bllm_model_shape;

int bllm_model_shape_count(void);
const bllm_model_shape *bllm_model_shape_at(int i);
/* NULL (with a message listing the known names) if unknown. */
const bllm_model_shape *bllm_model_shape_find(const char *name);

/* One tensor of a Llama model, in the order bllm-convert writes them. */
typedef struct {
    char name[64];
    int ndim;           /* 1 (norm vectors) or 2 (matrices) */
    int64_t dims[2];    /* PyTorch order: dims[0] = rows (outputs) */
} bllm_llama_tensor_desc;

/* Number of tensors (token_embd, 9 per layer, output_norm, output unless
 * tied); fills out[0..min(n, cap)) when out is not NULL. */
int bllm_llama_tensor_list(const bllm_llama_hparams *hp, bool tied, bllm_llama_tensor_desc *out, int cap);

/* Bytes the .stb tensor data of such a model takes (matrices in `type`,
 * vectors f32; for a packed binary type the blk.* matrices in `type`, pb8
 * companions with bllm_random_pb8_per_row() salient weights included, and
 * token_embd/output in f16), without metadata. For disk-space checks. */
uint64_t bllm_llama_tensor_bytes(const bllm_llama_hparams *hp, bool tied, bllm_type type);

/* A placeholder tokenizer with n_vocab pieces, llama2.c kind: <unk>, <s>,
 * </s>, the 256 byte pieces <0x00>..<0xFF>, then "tok259", "tok260", ...
 * (n_vocab >= 259). Enough for the loader and for random-id benchmarks; it
 * tokenizes any text into bytes. */
bllm_status bllm_placeholder_tokenizer_to_stb(uint32_t n_vocab, struct bllm_stb_writer *w);

/* Salient weights per row of a random pb8 matrix: 10 % of the columns, the
 * count RTN keeps (bllm_rtn_pb8_per_row(cols, 0.1)). */
int bllm_random_pb8_per_row(int cols);

typedef struct {
    bllm_type type;      /* of the matrices (f32, f16, bf16 or a packed binary
                            type); vectors are always f32. A packed type
                            applies to the blk.* matrices; token_embd and
                            output are then q8, as bllm-quantize writes them */
    uint64_t seed;
    float std;           /* of the normal weights; 0 = 0.02 */
    int n_threads;       /* for generating values; 0 = online CPUs */
    const char *created_by; /* provenance.created_by; NULL = "bllm" */
    bool keep_existing;  /* refuse to replace an existing file at path */
    bllm_type embed_type, head_type; /* q8, q6, q4, f16 or f32 for the token
                            embedding and the head (a tied model's one
                            matrix: head_type when set); BLLM_TYPE_COUNT: as
                            the rules above */
    /* Called before each tensor (i of n) and once at the end (i == n). */
    void (*progress)(void *user, int i, int n, const char *name, uint64_t done_bytes, uint64_t total_bytes);
    void *user;
} bllm_random_model_params;

/* Write a model with matrices drawn from N(0, std^2) and norm weights 1,
 * one tensor in memory at a time. The values depend on (seed, tensor index,
 * element index) only, not on the thread count.
 * Packed types: each blk.* matrix is a random decomposition (runtime/format/binary.h)
 * packed with bllm_binary_pack: uniform random signs, uniform N:M patterns,
 * fp16 scales alpha = std * U(0.75, 1.25) per row/group (rb2g: alpha2 at
 * half that), mu = std * U(-0.1, 0.1), onebit g = h = sqrt(std) * U(0.75,
 * 1.25), pb8 10 % salient positions per row with int8 values in +-[1, 127]
 * and scale 4 std / 127; the values depend on (seed, tensor, row) only. */
bllm_status bllm_random_model_write(const bllm_model_shape *shape, const bllm_random_model_params *params,
                                    const char *path);

#endif
