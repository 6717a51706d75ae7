/* The GGUF reader and dequantizer: header, metadata, the tokenizer and
 * hyperparameters taken from it, tensor infos; then every tensor of at most
 * a million values dequantized to f32 (every GGML type bllm reads). */
#include "fuzz_common.h"
#include "runtime/import/source.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    const char *path = fuzz_file("model.gguf", data, n);
    bllm_source *s = NULL;
    if (path && bllm_source_open(path, BLLM_SOURCE_GGUF, NULL, &s) == BLLM_OK) {
        fuzz_read_source(s);
        bllm_source_close(s);
    }
    return 0;
}
