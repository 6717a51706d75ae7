/* The Hugging Face importer: config.json, tokenizer.json and
 * model.safetensors (the input's three parts, split at FUZZ_SEPARATOR),
 * through the JSON parser, the BPE/SPM vocabulary and merges, the
 * safetensors header; then every small tensor read. */
#include <stdio.h>
#include <sys/stat.h>

#include "fuzz_common.h"
#include "runtime/import/source.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    const uint8_t *part[3];
    size_t len[3];
    int k = fuzz_split(data, n, part, len, 3);
    char hf[512];
    snprintf(hf, sizeof hf, "%s/hf", fuzz_dir());
    mkdir(hf, 0700);
    static const char *const names[3] = {"hf/config.json", "hf/tokenizer.json", "hf/model.safetensors"};
    for (int i = 0; i < 3; i++)
        if (!fuzz_file(names[i], i < k ? part[i] : (const uint8_t *)"", i < k ? len[i] : 0))
            return 0;
    bllm_source *s = NULL;
    if (bllm_source_open(hf, BLLM_SOURCE_HF, NULL, &s) == BLLM_OK) {
        fuzz_read_source(s);
        bllm_source_close(s);
    }
    return 0;
}
