/* bllm: binarized LLMs on ordinary CPUs — the public API.
 *
 * A model is a memory-mapped .stb file (docs/format.md). A context holds the
 * KV cache and scratch buffers for one sequence. Every call that can fail
 * returns a bllm_status; bllm_last_error() gives the human-readable detail of
 * the most recent failure on the calling thread. */
#ifndef BLLM_H
#define BLLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    BLLM_OK = 0,
    BLLM_ERR_IO,          /* file missing, unreadable, short read/write */
    BLLM_ERR_FORMAT,      /* bad magic, corrupt or inconsistent file */
    BLLM_ERR_UNSUPPORTED, /* valid but not supported (architecture, type) */
    BLLM_ERR_NOMEM,
    BLLM_ERR_ARG,         /* caller passed something invalid */
    BLLM_ERR_CONTEXT,     /* sequence does not fit the context window */
    BLLM_ERR_CHECKSUM,    /* tensor data does not match its checksum */
    BLLM_ERR_NOT_FOUND,   /* metadata key or tensor absent */
} bllm_status;

const char *bllm_status_name(bllm_status s);
/* Detail of the last error raised on this thread ("" if none). */
const char *bllm_last_error(void);

typedef struct bllm_model bllm_model;
typedef struct bllm_context bllm_context;

typedef struct {
    bool verify_checksums; /* hash every tensor at load (slow for big files) */
    /* Serve the weights from the file's mapping instead of reading them
     * into huge-page memory: starts at once and shares the page cache
     * between processes, but decodes 12-28% slower (4 KiB pages). */
    bool map_file;
} bllm_load_params;

bllm_status bllm_model_load(const char *path, const bllm_load_params *params,
                            bllm_model **out);
void bllm_model_free(bllm_model *model);
/* Load the model at path in full (every checksum, the weights' shapes and
 * types, the tokenizer) and release it: what the writers run before a new
 * file takes its name. */
bllm_status bllm_model_verify(const char *path);

typedef struct {
    const char *architecture;
    const char *name;
    int n_vocab, dim, hidden_dim, n_layers, n_heads, n_kv_heads, head_dim;
    int max_seq_len;
    float rope_theta, norm_eps;
    bool tied_embeddings;
    uint64_t n_params;        /* weights counted in tensors */
    uint64_t file_bytes;
} bllm_model_info;

const bllm_model_info *bllm_model_get_info(const bllm_model *model);
/* Chat template (Jinja source as stored), or NULL. */
const char *bllm_model_chat_template(const bllm_model *model);

/* ---- tokenizer (embedded in the model file) ---- */
int32_t bllm_token_bos(const bllm_model *model); /* -1 if none */
int32_t bllm_token_eos(const bllm_model *model);
/* True for tokens that end a turn (EOS, <|im_end|>, <|eot_id|> ...). */
bool bllm_token_is_eog(const bllm_model *model, int32_t token);
bool bllm_model_adds_bos(const bllm_model *model);

/* Tokenize text. add_bos: prepend BOS when the model has one. parse_special:
 * recognize special-token text such as "<|im_start|>". On success *n_tokens
 * holds the count; if cap is too small BLLM_ERR_ARG is returned and
 * *n_tokens holds the count needed. */
bllm_status bllm_tokenize(const bllm_model *model, const char *text, size_t len,
                          bool add_bos, bool parse_special, int32_t *tokens,
                          size_t cap, size_t *n_tokens);
/* Bytes that token contributes to the output text when it follows prev
 * (prev = -1 at the start). Returns the byte count (may exceed cap, in which
 * case buf holds a truncated prefix), or -1 for an invalid token. */
int bllm_token_to_text(const bllm_model *model, int32_t prev, int32_t token,
                       char *buf, size_t cap);

/* ---- inference ---- */
/* Storage of the KV cache. */
typedef enum {
    BLLM_KV_DEFAULT = 0, /* f16 */
    BLLM_KV_F16 = 1,
    BLLM_KV_F32 = 2,
    BLLM_KV_Q8 = 3, /* per 32 values an fp16 scale and 32 int8: 1.06 bytes a
                       value (head size a multiple of 32) */
} bllm_kv_type;

typedef struct {
    int n_ctx;     /* 0: the model's max_seq_len */
    int n_threads; /* 0: number of online CPUs */
    bllm_kv_type kv_type;
    /* Run on this context's threads instead of starting new ones (n_threads
     * is then ignored): for contexts that never evaluate at the same time,
     * such as a server's slots, so idle pools do not compete for the cores.
     * It must outlive the new context. */
    bllm_context *share_threads;
} bllm_context_params;

bllm_status bllm_context_new(bllm_model *model, const bllm_context_params *params,
                             bllm_context **out);
void bllm_context_free(bllm_context *ctx);
int bllm_context_n_ctx(const bllm_context *ctx);
int bllm_context_pos(const bllm_context *ctx);  /* tokens already in the cache */
void bllm_context_reset(bllm_context *ctx);      /* forget the sequence */

/* Append n tokens to the sequence and run them through the model as one
 * batch. logits, if not NULL, receives n_vocab floats per requested row:
 * every position when all_logits is true (n * n_vocab floats), else only the
 * last position. Fails with BLLM_ERR_CONTEXT if pos + n > n_ctx. */
bllm_status bllm_eval(bllm_context *ctx, const int32_t *tokens, int n,
                      float *logits, bool all_logits);

/* One token for each of n contexts of the same model, run as one batch
 * (continuous batching): every matrix product takes all n tokens, so the
 * weights are read once for all of them; attention is per context, each
 * token at its context's next position. logits: n x n_vocab, row t for
 * ctxs[t]. The contexts must be distinct and share the KV cache type;
 * ctxs[0]'s threads do the work. Equal (to kernel tolerance) to n separate
 * bllm_eval calls. */
bllm_status bllm_eval_batch(bllm_context *const *ctxs, const int32_t *tokens, int n, float *logits);
/* Forward evaluations (one per bllm_eval call or per batch of
 * bllm_eval_batch) and their tokens since the model was loaded. */
void bllm_model_eval_counts(const bllm_model *model, uint64_t *evals, uint64_t *tokens);

/* ---- chat ---- */
/* The prompt format families bllm knows (runtime/chat/chat_template.c). */
typedef enum {
    BLLM_CHAT_NONE = 0,
    BLLM_CHAT_CHATML,  /* <|im_start|>role ... <|im_end|> (SmolLM2, Qwen) */
    BLLM_CHAT_LLAMA2,  /* <s>[INST] <<SYS>> ... [/INST] */
    BLLM_CHAT_LLAMA3,  /* <|start_header_id|>role<|end_header_id|> ... <|eot_id|> */
    BLLM_CHAT_MISTRAL, /* <s>[INST] ... [/INST] answer</s> */
    BLLM_CHAT_ZEPHYR,  /* <|user|> ... </s> */
    BLLM_CHAT_GEMMA,   /* <start_of_turn>user ... <end_of_turn> */
} bllm_chat_style;

typedef struct {
    const char *role; /* "system", "user" or "assistant" */
    const char *content;
} bllm_chat_message;

/* The family of a Jinja chat template (bllm_model_chat_template), by its
 * marker tokens; BLLM_CHAT_NONE if none is recognized. */
bllm_chat_style bllm_chat_style_of(const char *jinja_template);
const char *bllm_chat_style_name(bllm_chat_style style);
bool bllm_chat_style_from_name(const char *name, bllm_chat_style *out); /* chatml, llama2, ... */
/* Whether the format writes the BOS token itself (tokenize without adding
 * one, with special tokens parsed). */
bool bllm_chat_style_has_bos(bllm_chat_style style);
/* msgs[0..n) formatted as the family's template does; add_assistant opens
 * the assistant's turn (the generation prompt). jinja_template (may be
 * NULL) supplies a default system prompt where the template has one.
 * *out: a malloc'd string. */
bllm_status bllm_chat_format(bllm_chat_style style, const char *jinja_template, const bllm_chat_message *msgs,
                             int n, bool add_assistant, char **out);

/* ---- sampling ---- */
typedef struct {
    float temperature;    /* 0: greedy */
    int top_k;            /* 0: off */
    float top_p;          /* 1: off */
    float min_p;          /* 0: off */
    float repeat_penalty;  /* 1: off */
    int repeat_last_n;    /* tokens looked back for the penalty */
    uint64_t seed;
} bllm_sampler_params;

typedef struct bllm_sampler bllm_sampler;
bllm_sampler_params bllm_sampler_default_params(void);
bllm_status bllm_sampler_new(const bllm_sampler_params *params, int n_vocab,
                             bllm_sampler **out);
void bllm_sampler_free(bllm_sampler *s);
/* Record a token as part of the history the repeat penalty looks at. */
void bllm_sampler_accept(bllm_sampler *s, int32_t token);
/* Pick the next token from logits (modified in place). */
int32_t bllm_sampler_sample(bllm_sampler *s, float *logits);

/* Name of the kernel set in use ("avx2", "scalar", ...). */
const char *bllm_kernel_name(void);

#ifdef __cplusplus
}
#endif
#endif
