/* Internals shared by the source importers (source.c dispatches; gguf.c,
 * hf.c and llama2c.c fill a bllm_source). Not part of any public API. */
#ifndef BLLM_SOURCE_IMPL_H
#define BLLM_SOURCE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/error.h"
#include "runtime/import/source.h"

/* Read-only mapping of a whole file. size 0 leaves data NULL. */
typedef struct {
    const uint8_t *data;
    size_t size;
} bllm_mapped;

bllm_status bllm_map_file(const char *path, bllm_mapped *m);
void bllm_unmap_file(bllm_mapped *m);
/* Whole file into a NUL-terminated heap buffer (JSON files). Fails with
 * BLLM_ERR_FORMAT above max_bytes so a wrong path cannot eat memory. */
bllm_status bllm_read_text_file(const char *path, size_t max_bytes, char **buf, size_t *len);

/* Allocations whose addresses never move and are all freed at once: the
 * tokenizer spec points into it (tens of thousands of small strings). */
typedef struct bllm_arena_chunk bllm_arena_chunk;
typedef struct {
    bllm_arena_chunk *head;
} bllm_arena;

void *bllm_arena_alloc(bllm_arena *a, size_t n); /* zeroed, 16-byte aligned */
char *bllm_arena_strndup(bllm_arena *a, const char *s, size_t n); /* NUL-terminated */
void bllm_arena_free(bllm_arena *a);

typedef struct {
    bllm_status (*read_f32)(bllm_source *s, int i, float *out);
    void (*close)(bllm_source *s); /* frees impl */
} bllm_source_ops;

struct bllm_source {
    bllm_source_kind kind;
    const bllm_source_ops *ops;
    void *impl;

    bllm_llama_hparams hp;
    bllm_tokenizer_spec tok; /* arrays and strings live in arena or tok_buf */
    bllm_tokenizer_spec_buf tok_buf; /* from the tokenizer module's loaders */
    char *chat_template;     /* in arena, or NULL */

    int n_tensors, cap_tensors;
    bllm_source_tensor *tensors;

    /* Files whose bytes define the model, for the provenance hash. */
    int n_files;
    char **files;
    char sha256[65];
    bool sha_done;

    bllm_arena arena;
};

/* Backends. They fill s (kind, ops, impl, hp, tok, chat_template, tensors,
 * files); source.c validates the result against the Llama conventions. */
bllm_status bllm_source_open_gguf(const char *path, bllm_source *s);
bllm_status bllm_source_open_hf(const char *dir, bllm_source *s);
bllm_status bllm_source_open_llama2c(const char *path, const char *tokenizer_path,
                                     bllm_source *s);

/* Appends a tensor entry; returns its index or -1 (with error set). */
int bllm_source_add_tensor(bllm_source *s, const char *name, int ndim,
                           const int64_t *dims, const char *src_type);
bllm_status bllm_source_add_file(bllm_source *s, const char *path);

/* Id of a token whose piece equals str, or -1 (linear scan). */
int32_t bllm_source_find_token(const bllm_tokenizer_spec *t, const char *str);
/* eot_id from the first of <|im_end|>, <|eot_id|>, <|end|> in the vocab. */
int32_t bllm_source_guess_eot(const bllm_tokenizer_spec *t);

#endif
