/* Source checkpoints read for conversion and quantization: GGUF files, HF
 * directories (config.json + *.safetensors + tokenizer files), llama2.c
 * checkpoints with their tokenizer.bin. A source exposes hyperparameters,
 * the tokenizer spec, the chat template and its tensors, each readable as
 * F32 after dequantization and after normalization to bllm's conventions
 * (models/llama_hparams.h: GGUF names, PyTorch shapes, adjacent-pair RoPE). */
#ifndef BLLM_SOURCE_H
#define BLLM_SOURCE_H

#include "bllm.h"
#include "models/llama_hparams.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    char name[96];      /* normalized (GGUF) name */
    int ndim;
    int64_t dims[4];    /* PyTorch order */
    char src_type[16];  /* type in the source, e.g. "Q4_1", "BF16" */
} bllm_source_tensor;

typedef struct bllm_source bllm_source;

typedef enum {
    BLLM_SOURCE_AUTO = 0,
    BLLM_SOURCE_GGUF,
    BLLM_SOURCE_HF,
    BLLM_SOURCE_LLAMA2C,
} bllm_source_kind;

/* path: a .gguf file, an HF directory, or a llama2.c checkpoint (then
 * tokenizer_path names its tokenizer.bin; ignored otherwise). */
bllm_status bllm_source_open(const char *path, bllm_source_kind kind,
                             const char *tokenizer_path, bllm_source **out);
void bllm_source_close(bllm_source *s);

bllm_source_kind bllm_source_get_kind(const bllm_source *s);
const bllm_llama_hparams *bllm_source_hparams(const bllm_source *s);
const bllm_tokenizer_spec *bllm_source_tokenizer(const bllm_source *s);
const char *bllm_source_chat_template(const bllm_source *s); /* NULL if none */
/* Hex SHA-256 of the source file(s) (for provenance metadata; the rule for
 * several files is in docs/convert.md). Computed on first use; NULL on a
 * read error (see bllm_last_error()). */
const char *bllm_source_sha256(const bllm_source *s);

int bllm_source_n_tensors(const bllm_source *s);
const bllm_source_tensor *bllm_source_tensor_at(const bllm_source *s, int i);
/* Dequantized, normalized values, dims[0]*dims[1]*... floats. */
bllm_status bllm_source_read_f32(bllm_source *s, int i, float *out);

#endif
