#include "runtime/quant/calib.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/error.h"
#include "runtime/sha256.h"
#include "runtime/file_io.h"

/* splitmix64: a fixed, documented generator, so a seed means the same
 * windows on every platform and compiler. */
static uint64_t next_u64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) without modulo bias. */
static uint64_t uniform(uint64_t *state, uint64_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n, v;
    do
        v = next_u64(state);
    while (v >= limit);
    return v % n;
}

static bllm_status read_text(const char *path, char **text, size_t *len)
{
    int fd;
    struct stat st;
    bllm_status os = bllm_open_input(path, "calibration file", &fd, &st);
    if (os)
        return os;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return bllm_fail(BLLM_ERR_IO, "calibration file '%s': %s", path, strerror(errno));
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory for the calibration file (%zu bytes)", n);
    }
    size_t got = fread(buf, 1, n, f);
    int err = ferror(f);
    fclose(f);
    if (got != n || err) {
        free(buf);
        return bllm_fail(BLLM_ERR_IO, "calibration file '%s': short read", path);
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return BLLM_OK;
}

bllm_status bllm_calib_load(const char *path, const bllm_tokenizer *tok, int n_windows, int len, uint64_t seed,
                            bllm_calib *out)
{
    memset(out, 0, sizeof *out);
    if (n_windows < 1)
        return bllm_fail(BLLM_ERR_ARG, "calibration needs at least one window (got %d)", n_windows);
    if (len < 2)
        return bllm_fail(BLLM_ERR_ARG, "calibration windows need at least 2 tokens (got %d)", len);
    char *text = NULL;
    size_t n = 0;
    bllm_status s = read_text(path, &text, &n);
    if (s)
        return s;
    if ((s = bllm_sha256_buf(text, n, out->sha256))) {
        free(text);
        return s;
    }
    /* A byte-level tokenizer gives at most one token per byte (+ BOS). */
    size_t cap = n + 8, nt = 0;
    int32_t *all = malloc(cap * sizeof *all);
    if (!all) {
        free(text);
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory tokenizing the calibration file");
    }
    s = bllm_tokenizer_encode(tok, text, n, false, false, all, cap, &nt);
    free(text);
    if (s) {
        free(all);
        return s;
    }
    if (nt < (size_t)len + 1) {
        free(all);
        return bllm_fail(BLLM_ERR_ARG,
                         "calibration file '%s' holds %zu tokens, fewer than one window of %d (+1); use a "
                         "longer file or a shorter --calib-len",
                         path, nt, len);
    }
    out->tokens = malloc((size_t)n_windows * len * sizeof *out->tokens);
    if (!out->tokens) {
        free(all);
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory for %d calibration windows", n_windows);
    }
    uint64_t state = seed;
    for (int w = 0; w < n_windows; w++) {
        uint64_t start = uniform(&state, nt - (size_t)len);
        memcpy(out->tokens + (size_t)w * len, all + start, (size_t)len * sizeof *all);
    }
    free(all);
    out->n_windows = n_windows;
    out->len = len;
    out->file_tokens = nt;
    return BLLM_OK;
}

void bllm_calib_free(bllm_calib *c)
{
    free(c->tokens);
    memset(c, 0, sizeof *c);
}
