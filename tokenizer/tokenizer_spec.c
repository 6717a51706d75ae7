/* Spec validation and deep copies. Every way into a tokenizer (the .stb
 * reader, the file loaders, bllm_tokenizer_new) runs the same check, so the
 * backends may trust ids, lengths and array presence. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "tokenizer/tok_internal.h"

typedef bllm_spec_store spec_store;

static const char *kind_name(bllm_tokenizer_kind k) {
    switch (k) {
    case BLLM_TOK_SPM: return "spm";
    case BLLM_TOK_BPE: return "bpe";
    case BLLM_TOK_LLAMA2C: return "llama2c";
    }
    return "?";
}

static bllm_status check_id(const bllm_tokenizer_spec *s, int32_t id, const char *what) {
    if (id < -1 || (id >= 0 && (uint32_t)id >= s->n_vocab))
        return bllm_fail(BLLM_ERR_FORMAT, "tokenizer: %s %d out of range (vocab %u)", what, id,
                         s->n_vocab);
    return BLLM_OK;
}

bllm_status bllm_tokenizer_spec_check(const bllm_tokenizer_spec *s) {
    if (!s) return bllm_fail(BLLM_ERR_ARG, "tokenizer: no spec");
    if ((unsigned)s->kind > BLLM_TOK_LLAMA2C)
        return bllm_fail(BLLM_ERR_FORMAT, "tokenizer: unknown kind %d", (int)s->kind);
    if (s->n_vocab == 0 || s->n_vocab > INT32_MAX)
        return bllm_fail(BLLM_ERR_FORMAT, "tokenizer: bad vocab size %u", s->n_vocab);
    if (!s->tokens || !s->token_lens)
        return bllm_fail(BLLM_ERR_FORMAT, "tokenizer: vocab without token strings");
    for (uint32_t i = 0; i < s->n_vocab; i++) {
        if (!s->tokens[i] && s->token_lens[i])
            return bllm_fail(BLLM_ERR_FORMAT, "tokenizer: token %u has no text", i);
        if (s->token_types && (s->token_types[i] < 0 || s->token_types[i] > BLLM_TOKTYPE_BYTE))
            return bllm_fail(BLLM_ERR_FORMAT, "tokenizer: token %u has bad type %d", i,
                             s->token_types[i]);
        if (s->scores && isnan(s->scores[i]))
            return bllm_fail(BLLM_ERR_FORMAT, "tokenizer: token %u has a NaN score", i);
    }
    if ((s->kind == BLLM_TOK_SPM || s->kind == BLLM_TOK_LLAMA2C) && !s->scores)
        return bllm_fail(BLLM_ERR_FORMAT, "tokenizer: %s vocab needs scores", kind_name(s->kind));
    if (s->n_merges) {
        if (!s->merges || !s->merge_lens)
            return bllm_fail(BLLM_ERR_FORMAT, "tokenizer: %u merges declared but absent",
                             s->n_merges);
        for (uint32_t i = 0; i < s->n_merges; i++)
            if (!s->merges[i] && s->merge_lens[i])
                return bllm_fail(BLLM_ERR_FORMAT, "tokenizer: merge %u has no text", i);
    }
    bllm_status st;
    if ((st = check_id(s, s->bos_id, "BOS id")) || (st = check_id(s, s->eos_id, "EOS id")) ||
        (st = check_id(s, s->unk_id, "UNK id")) || (st = check_id(s, s->pad_id, "PAD id")) ||
        (st = check_id(s, s->eot_id, "EOT id")))
        return st;
    return BLLM_OK;
}

void bllm_tokenizer_spec_buf_free(bllm_tokenizer_spec_buf *b) {
    if (!b) return;
    spec_store *st = b->priv;
    if (st) {
        free(st->strings);
        free(st->tokens);
        free(st->token_lens);
        free(st->scores);
        free(st->types);
        free(st->merges);
        free(st->merge_lens);
        free(st->pre);
        free(st);
    }
    memset(b, 0, sizeof *b);
}

bllm_status bllm_spec_store_alloc(bllm_tokenizer_spec_buf *out, uint32_t n, size_t strbytes) {
    memset(out, 0, sizeof *out);
    spec_store *st = calloc(1, sizeof *st);
    if (!st) return bllm_fail(BLLM_ERR_NOMEM, "tokenizer: out of memory");
    out->priv = st;
    st->strings = malloc(strbytes ? strbytes : 1);
    st->tokens = malloc((n ? n : 1) * sizeof *st->tokens);
    st->token_lens = malloc((n ? n : 1) * sizeof *st->token_lens);
    st->scores = malloc((n ? n : 1) * sizeof *st->scores);
    st->types = malloc((n ? n : 1) * sizeof *st->types);
    if (!st->strings || !st->tokens || !st->token_lens || !st->scores || !st->types) {
        bllm_tokenizer_spec_buf_free(out);
        return bllm_fail(BLLM_ERR_NOMEM, "tokenizer: out of memory for %u tokens", n);
    }
    return BLLM_OK;
}

bllm_status bllm_tokenizer_spec_copy(const bllm_tokenizer_spec *src, bllm_tokenizer_spec_buf *out) {
    memset(out, 0, sizeof *out);
    bllm_status status = bllm_tokenizer_spec_check(src);
    if (status) return status;
    spec_store *st = calloc(1, sizeof *st);
    if (!st) return bllm_fail(BLLM_ERR_NOMEM, "tokenizer: out of memory");
    out->priv = st;
    uint32_t n = src->n_vocab, nm = src->n_merges;
    size_t total = 0;
    for (uint32_t i = 0; i < n; i++) total += src->token_lens[i] + 1;
    for (uint32_t i = 0; i < nm; i++) total += src->merge_lens[i] + 1;
    st->strings = malloc(total ? total : 1);
    st->tokens = malloc(n * sizeof *st->tokens);
    st->token_lens = malloc(n * sizeof *st->token_lens);
    if (nm) {
        st->merges = malloc(nm * sizeof *st->merges);
        st->merge_lens = malloc(nm * sizeof *st->merge_lens);
    }
    if (src->scores) st->scores = malloc(n * sizeof *st->scores);
    if (src->token_types) st->types = malloc(n * sizeof *st->types);
    if (src->pre) st->pre = strdup(src->pre);
    if (!st->strings || !st->tokens || !st->token_lens || (nm && (!st->merges || !st->merge_lens)) ||
        (src->scores && !st->scores) || (src->token_types && !st->types) || (src->pre && !st->pre)) {
        bllm_tokenizer_spec_buf_free(out);
        return bllm_fail(BLLM_ERR_NOMEM, "tokenizer: out of memory copying the vocab");
    }
    /* Strings stay NUL-terminated in the copy so backends may use them as C strings. */
    char *p = st->strings;
    for (uint32_t i = 0; i < n; i++) {
        size_t len = src->token_lens[i];
        if (len) memcpy(p, src->tokens[i], len);
        p[len] = '\0';
        st->tokens[i] = p;
        st->token_lens[i] = len;
        p += len + 1;
    }
    for (uint32_t i = 0; i < nm; i++) {
        size_t len = src->merge_lens[i];
        if (len) memcpy(p, src->merges[i], len);
        p[len] = '\0';
        st->merges[i] = p;
        st->merge_lens[i] = len;
        p += len + 1;
    }
    if (st->scores) memcpy(st->scores, src->scores, n * sizeof *st->scores);
    if (st->types) memcpy(st->types, src->token_types, n * sizeof *st->types);

    bllm_tokenizer_spec *d = &out->spec;
    *d = *src;
    d->tokens = st->tokens;
    d->token_lens = st->token_lens;
    d->scores = st->scores;
    d->token_types = st->types;
    d->merges = st->merges;
    d->merge_lens = st->merge_lens;
    d->pre = st->pre;
    return BLLM_OK;
}
