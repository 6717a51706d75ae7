/* Internals shared by the tokenizer files: a growable token vector, the
 * hash maps used for vocab and merge lookups, and the per-kind backends
 * that tokenizer.c dispatches to. Not part of the public interface. */
#ifndef BLLM_TOK_INTERNAL_H
#define BLLM_TOK_INTERNAL_H

#include "tokenizer/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t *v;
    size_t n, cap;
} bllm_tokvec;

bllm_status bllm_tokvec_push(bllm_tokvec *v, int32_t id);
void bllm_tokvec_free(bllm_tokvec *v);

/* Byte string -> token id. Keys are not copied: the map indexes the
 * caller's strs/lens arrays, which must outlive it. On duplicate strings the
 * lowest id wins. */
typedef struct {
    int32_t *ids;     /* slot -> id, -1 when empty */
    uint32_t *hashes; /* slot -> low 32 bits of the key's hash */
    uint64_t mask;
    const char *const *strs;
    const size_t *lens;
} bllm_strmap;

bllm_status bllm_strmap_init(bllm_strmap *m, const char *const *strs, const size_t *lens,
                             uint32_t n);
int32_t bllm_strmap_get(const bllm_strmap *m, const char *s, size_t len);
void bllm_strmap_free(bllm_strmap *m);

/* uint64 -> uint64; the key UINT64_MAX is reserved. First insert wins. */
typedef struct {
    uint64_t *keys;
    uint64_t *vals;
    uint64_t mask;
    uint64_t n;
} bllm_u64map;

bllm_status bllm_u64map_init(bllm_u64map *m, uint64_t expected);
bllm_status bllm_u64map_put(bllm_u64map *m, uint64_t key, uint64_t val);
bool bllm_u64map_get(const bllm_u64map *m, uint64_t key, uint64_t *val);
void bllm_u64map_free(bllm_u64map *m);

/* What a bllm_tokenizer_spec_buf owns (its priv): one block of
 * NUL-terminated strings plus the arrays. Loaders fill it; spec_buf_free
 * frees every member. */
typedef struct {
    char *strings;
    const char **tokens;
    size_t *token_lens;
    float *scores;
    int32_t *types;
    const char **merges;
    size_t *merge_lens;
    char *pre;
} bllm_spec_store;

/* Allocates out->priv with the arrays for n tokens (scores and types too)
 * and strbytes of string space; out->spec is zeroed. */
bllm_status bllm_spec_store_alloc(bllm_tokenizer_spec_buf *out, uint32_t n, size_t strbytes);

/* Writes up to cap bytes of src at buf[*off], always advancing *off by len,
 * so the caller learns the full size even when the buffer is short. */
void bllm_tok_emit(char *buf, size_t cap, size_t *off, const char *src, size_t len);

/* Effective type of a token: 0 counts as NORMAL; without stored types, the
 * BOS/EOS/EOT ids are CONTROL and the UNK id UNKNOWN. */
int32_t bllm_tok_type(const bllm_tokenizer_spec *spec, int32_t id);

/* Decoding shared by SPM and LLAMA2C: pieces are text, optionally with "▁"
 * for space (SPM); BYTE tokens "<0xHH>" give the raw byte; CONTROL tokens
 * give nothing; with a dummy prefix, the first piece's leading space is
 * dropped at the start and after BOS. */
int bllm_piece_decode(const bllm_tokenizer_spec *spec, bool spm_space_marker,
                      const char *unk_surface, int32_t prev, int32_t token, char *buf,
                      size_t cap);

/* ---- byte-level BPE (bpe.c) ---- */
typedef struct bllm_bpe bllm_bpe;
bllm_status bllm_bpe_new(const bllm_tokenizer_spec *spec, bllm_bpe **out);
void bllm_bpe_free(bllm_bpe *b);
bllm_status bllm_bpe_encode(const bllm_bpe *b, const char *text, size_t len, bllm_tokvec *out);
int bllm_bpe_decode(const bllm_bpe *b, int32_t token, char *buf, size_t cap);
/* Reports the pre-tokenizer's pieces as byte ranges of text (for tests). */
bllm_status bllm_bpe_pretokenize(const bllm_bpe *b, const char *text, size_t len,
                                 void (*on_piece)(void *ctx, size_t start, size_t end), void *ctx);
/* The BPE backend of a tokenizer, NULL for other kinds (for tests). */
const bllm_bpe *bllm_tokenizer_bpe(const struct bllm_tokenizer *t);

/* ---- llama2.c scheme (llama2c_tok.c) ---- */
typedef struct bllm_l2c bllm_l2c;
bllm_status bllm_l2c_new(const bllm_tokenizer_spec *spec, bllm_l2c **out);
void bllm_l2c_free(bllm_l2c *l);
bllm_status bllm_l2c_encode(const bllm_l2c *l, const char *text, size_t len, bllm_tokvec *out);

#ifdef __cplusplus
}
#endif
#endif
