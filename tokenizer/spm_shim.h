/* C interface to SentencePiece (C++), used for the SPM kind. The model is
 * rebuilt from the spec's pieces, scores and types as a serialized
 * ModelProto, so no tokenizer.model file is needed at run time. */
#ifndef BLLM_SPM_SHIM_H
#define BLLM_SPM_SHIM_H

#include "tokenizer/tok_internal.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bllm_spm bllm_spm;

/* BPE model type, byte fallback when the vocab has BYTE pieces, identity
 * normalizer, dummy prefix from spec->add_space_prefix, whitespace kept. */
bllm_status bllm_spm_new(const bllm_tokenizer_spec *spec, bllm_spm **out);
void bllm_spm_free(bllm_spm *s);
/* Appends the ids of text (no BOS/EOS; user-defined pieces matched by
 * SentencePiece itself). */
bllm_status bllm_spm_encode(const bllm_spm *s, const char *text, size_t len, bllm_tokvec *out);

#ifdef __cplusplus
}
#endif
#endif
