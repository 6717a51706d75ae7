/* The tokenizers: text through encode (with and without special-token
 * parsing) and the tokens back through decode, and the input read as raw
 * token ids (valid or not) through decode. Three real vocabularies: the
 * llama2.c tokenizer.bin of stories260K and the Llama-2 SentencePiece model
 * from $BLLM_SHARED/data, SmolLM2's byte-level BPE from the GGUF in
 * $BLLM_CACHE/models; those missing are skipped. The first input byte picks
 * the tokenizer and the flags, the rest is the text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "runtime/import/source.h"
#include "tokenizer/tokenizer.h"

static bllm_tokenizer *toks[3];
static int n_toks, ready;

static void add_spec(const bllm_tokenizer_spec *spec)
{
    if (spec && bllm_tokenizer_new(spec, &toks[n_toks]) == BLLM_OK)
        n_toks++;
}

static void init(void)
{
    ready = 1;
    const char *shared = getenv("BLLM_SHARED"), *cache = getenv("BLLM_CACHE");
    char p[1024];
    bllm_tokenizer_spec_buf b;
    snprintf(p, sizeof p, "%s/data/stories260K/tok512.bin", shared ? shared : "../shared");
    if (bllm_tokenizer_load_llama2c(p, &b) == BLLM_OK) {
        add_spec(&b.spec);
        bllm_tokenizer_spec_buf_free(&b);
    }
    snprintf(p, sizeof p, "%s/data/llama2-tokenizer/tokenizer.model", shared ? shared : "../shared");
    if (bllm_tokenizer_load_spm_model(p, &b) == BLLM_OK) {
        add_spec(&b.spec);
        bllm_tokenizer_spec_buf_free(&b);
    }
    if (cache)
        snprintf(p, sizeof p, "%s/models/SmolLM2-135M-Instruct.Q4_1.gguf", cache);
    else
        snprintf(p, sizeof p, "%s/.cache/bllm/models/SmolLM2-135M-Instruct.Q4_1.gguf",
                 getenv("HOME") ? getenv("HOME") : ".");
    bllm_source *s = NULL;
    if (bllm_source_open(p, BLLM_SOURCE_GGUF, NULL, &s) == BLLM_OK) {
        add_spec(bllm_source_tokenizer(s));
        bllm_source_close(s);
    }
    if (n_toks < 3)
        fprintf(stderr, "fuzz_tokenizer: %d of 3 tokenizers found (set BLLM_SHARED and BLLM_CACHE)\n", n_toks);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    if (!ready)
        init();
    if (n_toks == 0 || n == 0)
        return 0;
    const bllm_tokenizer *t = toks[data[0] % n_toks];
    const int special = data[0] >> 7 & 1, bos = data[0] >> 6 & 1;
    const char *text = (const char *)data + 1;
    size_t len = n - 1, cap = len + 8, got = 0;
    int32_t *ids = malloc(sizeof(int32_t) * cap);
    char buf[256];
    if (ids && bllm_tokenizer_encode(t, text, len, bos, special, ids, cap, &got) == BLLM_OK)
        for (size_t i = 0; i < got; i++)
            bllm_tokenizer_decode_token(t, i ? ids[i - 1] : -1, ids[i], buf, sizeof buf);
    free(ids);
    for (size_t i = 0; i + 4 <= len; i += 4) {
        int32_t id;
        memcpy(&id, text + i, 4);
        bllm_tokenizer_decode_token(t, -1, id, buf, (size_t)(data[0] & 7) * 4);
    }
    return 0;
}
