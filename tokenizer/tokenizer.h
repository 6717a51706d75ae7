/* Tokenizers: one interface over three kinds.
 *   SPM     SentencePiece (Llama-1/2, Mistral, ...) through the C++ shim; the
 *           model proto is rebuilt from pieces/scores/types, so the .stb alone
 *           suffices.
 *   BPE     byte-level BPE (GPT-2, Llama-3, SmolLM2) with the model's
 *           pre-tokenizer regex (PCRE2).
 *   LLAMA2C the llama2.c tokenizer.bin scheme (score-driven merges).
 * A tokenizer is built from a bllm_tokenizer_spec, which is exactly what the
 * .stb metadata stores (docs/format.md, keys tokenizer.*); the converters
 * fill a spec from GGUF/HF/llama2.c sources and write it, the runtime reads
 * it back. */
#ifndef BLLM_TOKENIZER_H
#define BLLM_TOKENIZER_H

#include "bllm.h"

typedef enum {
    BLLM_TOK_SPM = 0,
    BLLM_TOK_BPE = 1,
    BLLM_TOK_LLAMA2C = 2,
} bllm_tokenizer_kind;

/* Token types, SentencePiece/GGUF numbering. */
enum {
    BLLM_TOKTYPE_NORMAL = 1,
    BLLM_TOKTYPE_UNKNOWN = 2,
    BLLM_TOKTYPE_CONTROL = 3,
    BLLM_TOKTYPE_USER_DEFINED = 4,
    BLLM_TOKTYPE_UNUSED = 5,
    BLLM_TOKTYPE_BYTE = 6,
};

typedef struct {
    bllm_tokenizer_kind kind;
    uint32_t n_vocab;
    const char *const *tokens;  /* n_vocab pieces, as stored (BPE: byte-level
                                   unicode form, e.g. "Ġthe"; SPM: "▁the") */
    const size_t *token_lens;   /* byte length of each piece */
    const float *scores;        /* n_vocab, or NULL (BPE) */
    const int32_t *token_types; /* n_vocab, or NULL (all NORMAL) */
    uint32_t n_merges;          /* BPE only: "a b" strings, rank = index */
    const char *const *merges;
    const size_t *merge_lens;
    const char *pre;            /* BPE pre-tokenizer name: "gpt2", "llama3",
                                   "smollm", ... (NULL = "gpt2") */
    int32_t bos_id, eos_id, unk_id, pad_id; /* -1 when absent */
    int32_t eot_id;             /* end-of-turn (<|im_end|>, <|eot_id|>), -1 */
    bool add_bos;               /* prepend BOS by default */
    bool add_space_prefix;      /* SPM/LLAMA2C: prepend a space (dummy prefix) */
    uint32_t max_token_len;     /* LLAMA2C: from tokenizer.bin header */
} bllm_tokenizer_spec;

typedef struct bllm_tokenizer bllm_tokenizer;

/* The tokenizer copies what it needs; the spec may be freed afterwards. */
bllm_status bllm_tokenizer_new(const bllm_tokenizer_spec *spec, bllm_tokenizer **out);
void bllm_tokenizer_free(bllm_tokenizer *t);

/* Same contract as bllm_tokenize() in bllm.h. */
bllm_status bllm_tokenizer_encode(const bllm_tokenizer *t, const char *text, size_t len,
                                  bool add_bos, bool parse_special, int32_t *tokens,
                                  size_t cap, size_t *n_tokens);
/* Same contract as bllm_token_to_text() in bllm.h. */
int bllm_tokenizer_decode_token(const bllm_tokenizer *t, int32_t prev, int32_t token,
                                char *buf, size_t cap);
uint32_t bllm_tokenizer_n_vocab(const bllm_tokenizer *t);
const bllm_tokenizer_spec *bllm_tokenizer_get_spec(const bllm_tokenizer *t);

/* Read/write a spec to/from .stb metadata (keys in docs/format.md).
 * spec_from_stb points into the mapping and allocates index arrays, freed by
 * bllm_tokenizer_spec_release(). */
struct bllm_stb_file;
struct bllm_stb_writer;
bllm_status bllm_tokenizer_spec_from_stb(const struct bllm_stb_file *f, bllm_tokenizer_spec *spec);
void bllm_tokenizer_spec_release(bllm_tokenizer_spec *spec);
bllm_status bllm_tokenizer_spec_to_stb(const bllm_tokenizer_spec *spec, struct bllm_stb_writer *w);

/* ---- owned specs (additions) ----
 * A spec plus the memory behind it, for specs built from files or copied:
 * every array and string the spec points to lives in priv. */
typedef struct {
    bllm_tokenizer_spec spec;
    void *priv;
} bllm_tokenizer_spec_buf;

/* Check a spec: sizes, ids in range, token types, finite scores, the arrays
 * each kind needs. Returns BLLM_ERR_FORMAT with a message on the first
 * problem. */
bllm_status bllm_tokenizer_spec_check(const bllm_tokenizer_spec *spec);
/* Deep copy of a (checked) spec. */
bllm_status bllm_tokenizer_spec_copy(const bllm_tokenizer_spec *src, bllm_tokenizer_spec_buf *out);
void bllm_tokenizer_spec_buf_free(bllm_tokenizer_spec_buf *b);
/* SentencePiece tokenizer.model (BPE model type, identity normalizer, as
 * Llama-1/2 and Mistral ship it) -> SPM spec. Other model types or
 * normalizers fail with BLLM_ERR_UNSUPPORTED. */
bllm_status bllm_tokenizer_load_spm_model(const char *path, bllm_tokenizer_spec_buf *out);
/* llama2.c tokenizer.bin -> LLAMA2C spec (BOS 1, EOS 2, UNK 0, add_bos). */
bllm_status bllm_tokenizer_load_llama2c(const char *path, bllm_tokenizer_spec_buf *out);

#endif
