/* The .stb loader: header, metadata, directory, tensor binding, packed-type
 * checks, the embedded tokenizer; then a prompt through the model when it is
 * small. The index checksum and the file size in the header are fixed up
 * first, so mutated metadata and directories reach the parser rather than
 * stopping at the checksum. Tensor checksums are not verified (the data's
 * own checks are what is fuzzed: NaN scales, N:M masks, pb8 companions). */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "bllm.h"
#include "fuzz_common.h"
#include "runtime/format/stb_layout.h"

static void run_prompt(bllm_model *m)
{
    const bllm_model_info *info = bllm_model_get_info(m);
    /* a mutated header may describe a huge model that still fits a small
     * file only if it is refused; run what is small */
    if (info->n_params > (1u << 22) || info->n_vocab > 100000)
        return;
    int32_t tok[32];
    size_t n = 0;
    if (bllm_tokenize(m, "Once upon a time <s> \xe2\x96\x81x", 26, true, true, tok, 32, &n) || n == 0)
        return;
    bllm_context_params cp = {.n_ctx = 40, .n_threads = 1};
    bllm_context *ctx = NULL;
    if (bllm_context_new(m, &cp, &ctx))
        return;
    float *logits = malloc(sizeof(float) * (size_t)info->n_vocab);
    if (logits && !bllm_eval(ctx, tok, (int)n, logits, false)) {
        char buf[64];
        for (size_t i = 0; i < n; i++)
            bllm_token_to_text(m, i ? tok[i - 1] : -1, tok[i], buf, sizeof buf);
    }
    free(logits);
    bllm_context_free(ctx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return 0;
    memcpy(b, data, n);
    if (n >= sizeof(stb_header) && !memcmp(b, "BLLMSTB", 8)) {
        stb_header h;
        memcpy(&h, b, sizeof h);
        h.file_bytes = n;
        if (h.meta_offset <= n && h.meta_bytes <= n - h.meta_offset && h.dir_bytes <= n - h.meta_offset - h.meta_bytes)
            h.index_checksum = XXH3_64bits(b + h.meta_offset, (size_t)(h.meta_bytes + h.dir_bytes));
        memcpy(b, &h, sizeof h);
    }
    const char *path = fuzz_file("model.stb", b, n);
    free(b);
    bllm_model *m = NULL;
    /* The file's mapping rather than the loaded copy: the same validation,
     * and a read past the end faults at the next 4 KiB page instead of
     * landing silently in the slack of a 2 MiB region. */
    bllm_load_params lp = {.verify_checksums = false, .map_file = true};
    if (path && bllm_model_load(path, &lp, &m) == BLLM_OK) {
        run_prompt(m);
        bllm_model_free(m);
    }
    return 0;
}
