/* fuzz/fuzz_common.h */
#include "fuzz_common.h"

#include "runtime/import/source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];

static void remove_dir(void)
{
    /* the files a harness writes have fixed names; remove what is there */
    static const char *const names[] = {"model.stb", "model.gguf", "ckpt.bin", "tok.bin", "hf/config.json",
                                        "hf/tokenizer.json", "hf/model.safetensors", "hf", NULL};
    char p[512];
    for (int i = 0; names[i]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        if (unlink(p))
            rmdir(p);
    }
    rmdir(dir);
}

const char *fuzz_dir(void)
{
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/bllm-fuzz-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(dir)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(remove_dir);
    }
    return dir;
}

const char *fuzz_file(const char *name, const uint8_t *data, size_t n)
{
    static char paths[8][512];
    static const char *names[8];
    int slot = 0;
    while (slot < 8 && names[slot] && strcmp(names[slot], name))
        slot++;
    if (slot == 8)
        abort();
    names[slot] = name;
    snprintf(paths[slot], sizeof paths[slot], "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(paths[slot], "wb");
    if (!f)
        return NULL;
    if (n && fwrite(data, 1, n, f) != n) {
        fclose(f);
        return NULL;
    }
    fclose(f);
    return paths[slot];
}

int fuzz_split(const uint8_t *data, size_t n, const uint8_t **part, size_t *len, int max)
{
    const size_t sl = sizeof FUZZ_SEPARATOR - 1;
    int k = 0;
    size_t start = 0;
    for (size_t i = 0; i + sl <= n && k < max - 1; i++)
        if (!memcmp(data + i, FUZZ_SEPARATOR, sl)) {
            part[k] = data + start, len[k] = i - start, k++;
            start = i + sl;
            i = start - 1;
        }
    part[k] = data + start, len[k] = n - start, k++;
    return k;
}

void fuzz_read_source(bllm_source *s)
{
    for (int i = 0; i < bllm_source_n_tensors(s); i++) {
        const bllm_source_tensor *t = bllm_source_tensor_at(s, i);
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++)
            numel *= (uint64_t)t->dims[d];
        if (numel == 0 || numel > (1u << 20))
            continue;
        float *f = malloc(sizeof(float) * numel);
        if (f)
            bllm_source_read_f32(s, i, f);
        free(f);
    }
}
