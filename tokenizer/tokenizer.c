/* The tokenizer front end: owns a copy of the spec, splits text on special
 * tokens, hands the plain fragments to the kind's backend and applies the
 * output-buffer contract of bllm_tokenize().
 *
 * Special tokens: CONTROL tokens ("<|im_start|>", "<s>") are recognized only
 * when parse_special is set; otherwise their text is ordinary text.
 * USER_DEFINED tokens are always recognized, as HF (non-special added
 * tokens) and SentencePiece (user_defined_symbols) do; for SPM,
 * SentencePiece matches them itself. The scan is leftmost-longest. */
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "tokenizer/spm_shim.h"
#include "tokenizer/tok_internal.h"

typedef struct {
    int32_t id;
    bool control; /* needs parse_special */
} special_tok;

struct bllm_tokenizer {
    bllm_tokenizer_spec_buf own;
    special_tok *specials; /* longest first */
    size_t n_specials;
    bool first_byte[256];  /* some special starts with this byte */
    bllm_bpe *bpe;
    bllm_spm *spm;
    bllm_l2c *l2c;
};

static int cmp_special_len(const void *a, const void *b, void *ctx) {
    const bllm_tokenizer_spec *s = ctx;
    size_t la = s->token_lens[((const special_tok *)a)->id];
    size_t lb = s->token_lens[((const special_tok *)b)->id];
    if (la != lb) return la > lb ? -1 : 1;
    int32_t ia = ((const special_tok *)a)->id, ib = ((const special_tok *)b)->id;
    return (ia > ib) - (ia < ib);
}

static bllm_status collect_specials(bllm_tokenizer *t) {
    const bllm_tokenizer_spec *s = &t->own.spec;
    size_t n = 0;
    for (uint32_t i = 0; i < s->n_vocab; i++) {
        int32_t ty = bllm_tok_type(s, (int32_t)i);
        bool user = ty == BLLM_TOKTYPE_USER_DEFINED && s->kind != BLLM_TOK_SPM;
        if ((ty == BLLM_TOKTYPE_CONTROL || user) && s->token_lens[i] > 0) n++;
    }
    if (!n) return BLLM_OK;
    t->specials = malloc(n * sizeof *t->specials);
    if (!t->specials) return bllm_fail(BLLM_ERR_NOMEM, "tokenizer: out of memory");
    for (uint32_t i = 0; i < s->n_vocab; i++) {
        int32_t ty = bllm_tok_type(s, (int32_t)i);
        bool user = ty == BLLM_TOKTYPE_USER_DEFINED && s->kind != BLLM_TOK_SPM;
        if ((ty == BLLM_TOKTYPE_CONTROL || user) && s->token_lens[i] > 0) {
            t->specials[t->n_specials++] = (special_tok){(int32_t)i, ty == BLLM_TOKTYPE_CONTROL};
            t->first_byte[(unsigned char)s->tokens[i][0]] = true;
        }
    }
    qsort_r(t->specials, t->n_specials, sizeof *t->specials, cmp_special_len, (void *)s);
    return BLLM_OK;
}

void bllm_tokenizer_free(bllm_tokenizer *t) {
    if (!t) return;
    bllm_bpe_free(t->bpe);
    bllm_spm_free(t->spm);
    bllm_l2c_free(t->l2c);
    free(t->specials);
    bllm_tokenizer_spec_buf_free(&t->own);
    free(t);
}

bllm_status bllm_tokenizer_new(const bllm_tokenizer_spec *spec, bllm_tokenizer **out) {
    if (!out) return bllm_fail(BLLM_ERR_ARG, "tokenizer: no output pointer");
    *out = NULL;
    bllm_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return bllm_fail(BLLM_ERR_NOMEM, "tokenizer: out of memory");
    bllm_status st = bllm_tokenizer_spec_copy(spec, &t->own);
    if (!st) st = collect_specials(t);
    if (!st) {
        const bllm_tokenizer_spec *s = &t->own.spec;
        switch (s->kind) {
        case BLLM_TOK_BPE: st = bllm_bpe_new(s, &t->bpe); break;
        case BLLM_TOK_SPM: st = bllm_spm_new(s, &t->spm); break;
        case BLLM_TOK_LLAMA2C: st = bllm_l2c_new(s, &t->l2c); break;
        }
    }
    if (st) {
        bllm_tokenizer_free(t);
        return st;
    }
    *out = t;
    return BLLM_OK;
}

static bllm_status encode_plain(const bllm_tokenizer *t, const char *text, size_t len,
                                bllm_tokvec *v) {
    if (len == 0) return BLLM_OK;
    if (t->bpe) return bllm_bpe_encode(t->bpe, text, len, v);
    if (t->spm) return bllm_spm_encode(t->spm, text, len, v);
    return bllm_l2c_encode(t->l2c, text, len, v);
}

/* Longest special token starting at text[pos], or -1. */
static int32_t match_special(const bllm_tokenizer *t, const char *text, size_t len, size_t pos,
                             bool parse_special) {
    const bllm_tokenizer_spec *s = &t->own.spec;
    for (size_t k = 0; k < t->n_specials; k++) {
        const special_tok *sp = &t->specials[k];
        if (sp->control && !parse_special) continue;
        size_t l = s->token_lens[sp->id];
        if (l <= len - pos && memcmp(text + pos, s->tokens[sp->id], l) == 0) return sp->id;
    }
    return -1;
}

static bllm_status encode_all(const bllm_tokenizer *t, const char *text, size_t len,
                              bool add_bos, bool parse_special, bllm_tokvec *v) {
    const bllm_tokenizer_spec *s = &t->own.spec;
    bllm_status st;
    if (add_bos && s->bos_id >= 0 && (st = bllm_tokvec_push(v, s->bos_id))) return st;
    size_t frag = 0;
    if (t->n_specials) {
        for (size_t pos = 0; pos < len;) {
            int32_t id = t->first_byte[(unsigned char)text[pos]]
                             ? match_special(t, text, len, pos, parse_special)
                             : -1;
            if (id < 0) {
                pos++;
                continue;
            }
            if ((st = encode_plain(t, text + frag, pos - frag, v))) return st;
            if ((st = bllm_tokvec_push(v, id))) return st;
            pos += s->token_lens[id];
            frag = pos;
        }
    }
    return encode_plain(t, text + frag, len - frag, v);
}

bllm_status bllm_tokenizer_encode(const bllm_tokenizer *t, const char *text, size_t len,
                                  bool add_bos, bool parse_special, int32_t *tokens,
                                  size_t cap, size_t *n_tokens) {
    if (!t || !n_tokens || (!text && len) || (!tokens && cap))
        return bllm_fail(BLLM_ERR_ARG, "tokenizer: encode: bad arguments");
    *n_tokens = 0;
    bllm_tokvec v = {0};
    bllm_status st = encode_all(t, text, len, add_bos, parse_special, &v);
    if (st) {
        bllm_tokvec_free(&v);
        return st;
    }
    *n_tokens = v.n;
    if (v.n > cap) {
        bllm_tokvec_free(&v);
        return bllm_fail(BLLM_ERR_ARG, "tokenizer: %zu tokens do not fit a buffer of %zu", *n_tokens,
                         cap);
    }
    if (v.n) memcpy(tokens, v.v, v.n * sizeof *tokens);
    bllm_tokvec_free(&v);
    return BLLM_OK;
}

int bllm_tokenizer_decode_token(const bllm_tokenizer *t, int32_t prev, int32_t token, char *buf,
                                size_t cap) {
    if (!t || (!buf && cap)) return -1;
    const bllm_tokenizer_spec *s = &t->own.spec;
    switch (s->kind) {
    case BLLM_TOK_BPE: return bllm_bpe_decode(t->bpe, token, buf, cap);
    /* SentencePiece prints its unknown piece as " ⁇ " (trainer unk_surface) */
    case BLLM_TOK_SPM: return bllm_piece_decode(s, true, " \xe2\x81\x87 ", prev, token, buf, cap);
    case BLLM_TOK_LLAMA2C: return bllm_piece_decode(s, false, NULL, prev, token, buf, cap);
    }
    return -1;
}

uint32_t bllm_tokenizer_n_vocab(const bllm_tokenizer *t) { return t ? t->own.spec.n_vocab : 0; }

const bllm_tokenizer_spec *bllm_tokenizer_get_spec(const bllm_tokenizer *t) {
    return t ? &t->own.spec : NULL;
}

const bllm_bpe *bllm_tokenizer_bpe(const bllm_tokenizer *t) { return t ? t->bpe : NULL; }
