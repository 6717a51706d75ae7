/* The llama2.c reader: a checkpoint and its tokenizer.bin (the input's two
 * parts, split at FUZZ_SEPARATOR); then every small tensor read. */
#include "fuzz_common.h"
#include "runtime/import/source.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    const uint8_t *part[2];
    size_t len[2];
    int k = fuzz_split(data, n, part, len, 2);
    const char *ckpt = fuzz_file("ckpt.bin", part[0], len[0]);
    const char *tok = fuzz_file("tok.bin", k > 1 ? part[1] : (const uint8_t *)"", k > 1 ? len[1] : 0);
    bllm_source *s = NULL;
    if (ckpt && tok && bllm_source_open(ckpt, BLLM_SOURCE_LLAMA2C, tok, &s) == BLLM_OK) {
        fuzz_read_source(s);
        bllm_source_close(s);
    }
    return 0;
}
