/* Calibration data for the calibrated quantizers: random windows of
 * tokens from a text file, as GPTQ and its descendants draw them (a window
 * starts anywhere in the tokenized file, no BOS), from a fixed seed so a
 * run can be repeated exactly. */
#ifndef BLLM_QUANT_CALIB_H
#define BLLM_QUANT_CALIB_H

#include <stdint.h>

#include "bllm.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    int n_windows, len;   /* windows x tokens */
    int32_t *tokens;      /* [n_windows][len] */
    uint64_t file_tokens; /* tokens in the whole file */
    char sha256[65];      /* of the file's bytes, for provenance */
} bllm_calib;

/* Tokenize path with tok (no BOS, special-token text not parsed) and draw
 * n_windows windows of len tokens, start positions uniform in
 * [0, file_tokens - len - 1] from seed. Fails (BLLM_ERR_ARG) if n_windows or
 * len is not positive or the file holds fewer than len + 1 tokens. */
bllm_status bllm_calib_load(const char *path, const bllm_tokenizer *tok, int n_windows, int len, uint64_t seed,
                            bllm_calib *out);
void bllm_calib_free(bllm_calib *c);

/* The default calibration file, relative to the shared data folder: the
 * WikiText-2 validation split (never the test split). */
#define BLLM_CALIB_DEFAULT_REL "data/wikitext-2/valid.tokens.txt"

#endif
