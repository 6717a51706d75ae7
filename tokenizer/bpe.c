/* Byte-level BPE as GPT-2 introduced it and HF tokenizers runs it: the
 * pre-tokenizer regexes cut the text into words, each word's bytes become
 * GPT-2's printable stand-in characters, and merges apply lowest rank
 * first (leftmost on ties) until none applies. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "tokenizer/tok_internal.h"

#define MAX_STAGES 4

struct bllm_bpe {
    const bllm_tokenizer_spec *spec;
    bllm_strmap vocab;
    bllm_u64map merges;       /* (left id << 32 | right id) -> (rank << 32 | merged id) */
    int32_t byte_tok[256];    /* token of each byte's stand-in character, -1 if none */
    int16_t cp_byte[324];     /* stand-in code point -> byte, -1 if not a stand-in */
    pcre2_code *re[MAX_STAGES];
    int n_re;
};

/* Pre-tokenizer patterns. HF's ByteLevel(use_regex) pattern is GPT-2's plus
 * a final \s+ alternative; llama.cpp drops that alternative and keeps the
 * leftovers as pieces, which splits the same way. */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define RE_LLAMA3                                                                              \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "                    \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                               \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "                         \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

typedef struct {
    const char *names[6];
    const char *stages[MAX_STAGES];
} pre_def;

static const pre_def PRE_DEFS[] = {
    {{"gpt2", "gpt-2", "default", NULL}, {RE_GPT2, NULL}},
    {{"llama3", "llama-bpe", "llama-v3", "llama3.1", NULL}, {RE_LLAMA3, NULL}},
    {{"qwen2", NULL}, {RE_QWEN2, NULL}},
    /* SmolLM2 / StarCoder: HF Sequence[Digits(individual_digits=true),
     * ByteLevel(add_prefix_space=false, use_regex=true)]: every digit is a
     * piece of its own before the GPT-2 pattern runs on the rest. */
    {{"smollm", "starcoder", "refact", "codeshell", NULL}, {"\\p{N}", RE_GPT2, NULL}},
};

static const pre_def *find_pre(const char *name) {
    if (!name || !*name) name = "gpt2";
    for (size_t i = 0; i < sizeof PRE_DEFS / sizeof PRE_DEFS[0]; i++)
        for (int j = 0; PRE_DEFS[i].names[j]; j++)
            if (strcmp(PRE_DEFS[i].names[j], name) == 0) return &PRE_DEFS[i];
    return NULL;
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves,
 * the other 68 get code points 256.. in byte order. */
static uint32_t byte_to_cp(int b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return (uint32_t)b;
    int n = 0;
    for (int i = 0; i < b; i++)
        if (!((i >= 33 && i <= 126) || (i >= 161 && i <= 172) || (i >= 174 && i <= 255))) n++;
    return 256u + (uint32_t)n;
}

static size_t utf8_put(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2; /* stand-ins stay below U+0800 */
}

/* Decodes one UTF-8 sequence; returns its length (1 on invalid input, with
 * *cp = UINT32_MAX). */
static size_t utf8_get(const unsigned char *s, size_t len, uint32_t *cp) {
    unsigned c = s[0];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || n > len) {
        *cp = UINT32_MAX;
        return 1;
    }
    uint32_t v = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = UINT32_MAX;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return n;
}

void bllm_bpe_free(bllm_bpe *b) {
    if (!b) return;
    bllm_strmap_free(&b->vocab);
    bllm_u64map_free(&b->merges);
    for (int i = 0; i < b->n_re; i++) pcre2_code_free(b->re[i]);
    free(b);
}

bllm_status bllm_bpe_new(const bllm_tokenizer_spec *spec, bllm_bpe **out) {
    *out = NULL;
    const pre_def *pre = find_pre(spec->pre);
    if (!pre)
        return bllm_fail(BLLM_ERR_UNSUPPORTED,
                         "tokenizer: unknown BPE pre-tokenizer \"%s\" (known: gpt2, llama3, "
                         "llama-bpe, qwen2, smollm, starcoder)",
                         spec->pre);
    bllm_bpe *b = calloc(1, sizeof *b);
    if (!b) return bllm_fail(BLLM_ERR_NOMEM, "tokenizer: out of memory");
    b->spec = spec;
    bllm_status st = bllm_strmap_init(&b->vocab, spec->tokens, spec->token_lens, spec->n_vocab);
    if (st) goto fail;

    memset(b->cp_byte, 0xff, sizeof b->cp_byte);
    for (int i = 0; i < 256; i++) {
        char u[2];
        uint32_t cp = byte_to_cp(i);
        b->cp_byte[cp] = (int16_t)i;
        b->byte_tok[i] = bllm_strmap_get(&b->vocab, u, utf8_put(cp, u));
    }

    st = bllm_u64map_init(&b->merges, spec->n_merges);
    if (st) goto fail;
    char *tmp = NULL;
    size_t tmp_cap = 0;
    for (uint32_t r = 0; r < spec->n_merges; r++) {
        const char *m = spec->merges[r];
        size_t len = spec->merge_lens[r];
        /* "left right": pieces never hold a plain space in byte-level vocabs */
        const char *sp = len > 1 ? memchr(m + 1, ' ', len - 1) : NULL;
        if (!sp) {
            st = bllm_fail(BLLM_ERR_FORMAT, "tokenizer: merge %u \"%.*s\" is not \"a b\"", r,
                           (int)(len > 64 ? 64 : len), m);
            goto fail_tmp;
        }
        size_t la = (size_t)(sp - m), lb = len - la - 1;
        int32_t a = bllm_strmap_get(&b->vocab, m, la);
        int32_t c = bllm_strmap_get(&b->vocab, sp + 1, lb);
        if (la + lb > tmp_cap) {
            tmp_cap = 2 * (la + lb);
            char *t = realloc(tmp, tmp_cap);
            if (!t) {
                st = bllm_fail(BLLM_ERR_NOMEM, "tokenizer: out of memory");
                goto fail_tmp;
            }
            tmp = t;
        }
        memcpy(tmp, m, la);
        memcpy(tmp + la, sp + 1, lb);
        int32_t merged = bllm_strmap_get(&b->vocab, tmp, la + lb);
        /* HF refuses merges whose parts or result are not in the vocab;
         * they can never fire, so skipping them changes nothing. */
        if (a < 0 || c < 0 || merged < 0) continue;
        st = bllm_u64map_put(&b->merges, (uint64_t)a << 32 | (uint32_t)c,
                             (uint64_t)r << 32 | (uint32_t)merged);
        if (st) goto fail_tmp;
    }
    free(tmp);

    for (int i = 0; i < MAX_STAGES && pre->stages[i]; i++) {
        int err;
        PCRE2_SIZE erroff;
        /* MATCH_INVALID_UTF: arbitrary bytes must not make matching fail;
         * invalid sequences simply never match and become pieces of their own. */
        b->re[i] = pcre2_compile((PCRE2_SPTR)pre->stages[i], PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &erroff,
                                 NULL);
        if (!b->re[i]) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            st = bllm_fail(BLLM_ERR_UNSUPPORTED, "tokenizer: regex error at %zu: %s",
                           (size_t)erroff, (const char *)msg);
            goto fail;
        }
        b->n_re = i + 1;
        pcre2_jit_compile(b->re[i], PCRE2_JIT_COMPLETE); /* optional speed-up */
    }
    *out = b;
    return BLLM_OK;
fail_tmp:
    free(tmp);
fail:
    bllm_bpe_free(b);
    return st;
}

/* ---- merging one word ---- */

typedef struct {
    uint32_t rank;
    uint32_t pos;   /* left symbol */
    int32_t left, right, merged;
} cand;

typedef struct {
    int32_t *id;
    int32_t *prev, *next;
    cand *heap;
    size_t n_heap, cap; /* cap: symbols (and heap entries) allocated */
} work;

static bool cand_less(const cand *a, const cand *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(work *w, cand c) {
    size_t i = w->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = c;
}

static cand heap_pop(work *w) {
    cand top = w->heap[0];
    cand last = w->heap[--w->n_heap];
    size_t i = 0, n = w->n_heap;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const cand *best = &last;
        if (l < n && cand_less(&w->heap[l], best)) {
            m = l;
            best = &w->heap[l];
        }
        if (r < n && cand_less(&w->heap[r], best)) m = r;
        if (m == i) break;
        w->heap[i] = w->heap[m];
        i = m;
    }
    if (n) w->heap[i] = last;
    return top;
}

static void try_pair(const bllm_bpe *b, work *w, int32_t pos) {
    if (pos < 0) return;
    int32_t nx = w->next[pos];
    if (nx < 0) return;
    uint64_t v;
    if (!bllm_u64map_get(&b->merges, (uint64_t)w->id[pos] << 32 | (uint32_t)w->id[nx], &v)) return;
    cand c = {(uint32_t)(v >> 32), (uint32_t)pos, w->id[pos], w->id[nx], (int32_t)(uint32_t)v};
    heap_push(w, c);
}

static bllm_status work_reserve(work *w, size_t n) {
    if (n <= w->cap) return BLLM_OK;
    size_t cap = w->cap ? w->cap : 64;
    while (cap < n) cap *= 2;
    int32_t *id = realloc(w->id, cap * sizeof *id);
    if (id) w->id = id;
    int32_t *pv = realloc(w->prev, cap * sizeof *pv);
    if (pv) w->prev = pv;
    int32_t *nx = realloc(w->next, cap * sizeof *nx);
    if (nx) w->next = nx;
    /* each merge adds at most two candidates; the initial pass adds n-1 */
    cand *h = realloc(w->heap, 3 * cap * sizeof *h);
    if (h) w->heap = h;
    if (!id || !pv || !nx || !h) return bllm_fail(BLLM_ERR_NOMEM, "tokenizer: out of memory");
    w->cap = cap;
    return BLLM_OK;
}

static bllm_status bpe_word(const bllm_bpe *b, work *w, const unsigned char *s, size_t len,
                            bllm_tokvec *out) {
    if (len == 0) return BLLM_OK;
    bllm_status st = work_reserve(w, len);
    if (st) return st;
    int32_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int32_t t = b->byte_tok[s[i]];
        if (t < 0) continue; /* HF without unk_token drops what the vocab lacks */
        w->id[n] = t;
        w->prev[n] = n - 1;
        w->next[n] = n + 1;
        n++;
    }
    if (n == 0) return BLLM_OK;
    w->next[n - 1] = -1;
    w->n_heap = 0;
    for (int32_t i = 0; i + 1 < n; i++) try_pair(b, w, i);
    while (w->n_heap) {
        cand c = heap_pop(w);
        int32_t p = (int32_t)c.pos;
        int32_t nx = w->next[p];
        /* stale: a symbol of the pair changed since the candidate was made
         * (merged ids are longer strings, so an id never comes back) */
        if (w->id[p] != c.left || nx < 0 || w->id[nx] != c.right) continue;
        w->id[p] = c.merged;
        w->id[nx] = -1;
        w->next[p] = w->next[nx];
        if (w->next[nx] >= 0) w->prev[w->next[nx]] = p;
        if (w->prev[p] >= 0) try_pair(b, w, w->prev[p]);
        try_pair(b, w, p);
    }
    for (int32_t i = 0; i >= 0; i = w->next[i])
        if ((st = bllm_tokvec_push(out, w->id[i]))) return st;
    return BLLM_OK;
}

/* ---- pre-tokenization: each stage splits every piece of the previous one,
 * keeping both matches and the gaps between them (HF "Isolated"). ---- */

typedef struct {
    const bllm_bpe *b;
    work w;
    pcre2_match_data *md[MAX_STAGES];
    bllm_tokvec *out;
    const char *text;
    void (*on_piece)(void *ctx, size_t start, size_t end); /* set: report pieces only */
    void *ctx;
} enc_state;

static bllm_status split(enc_state *e, int stage, const char *s, size_t len) {
    if (len == 0) return BLLM_OK;
    if (stage == e->b->n_re) {
        if (e->on_piece) {
            e->on_piece(e->ctx, (size_t)(s - e->text), (size_t)(s - e->text) + len);
            return BLLM_OK;
        }
        return bpe_word(e->b, &e->w, (const unsigned char *)s, len, e->out);
    }
    pcre2_code *re = e->b->re[stage];
    pcre2_match_data *md = e->md[stage];
    size_t pos = 0, done = 0;
    bllm_status st;
    while (pos < len) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, len, pos, 0, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return bllm_fail(BLLM_ERR_FORMAT, "tokenizer: regex match failed: %s",
                             (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) { /* no pattern here matches empty, but never loop */
            pos = ms + 1;
            continue;
        }
        if (ms > done && (st = split(e, stage + 1, s + done, ms - done))) return st;
        if ((st = split(e, stage + 1, s + ms, me - ms))) return st;
        pos = done = me;
    }
    if (done < len) return split(e, stage + 1, s + done, len - done);
    return BLLM_OK;
}

static bllm_status run_split(const bllm_bpe *b, const char *text, size_t len, bllm_tokvec *out,
                             void (*on_piece)(void *, size_t, size_t), void *ctx) {
    if (len > INT32_MAX) return bllm_fail(BLLM_ERR_ARG, "tokenizer: text too long (%zu bytes)", len);
    enc_state e;
    memset(&e, 0, sizeof e);
    e.b = b;
    e.out = out;
    e.text = text;
    e.on_piece = on_piece;
    e.ctx = ctx;
    bllm_status st = BLLM_OK;
    for (int i = 0; i < b->n_re; i++) {
        e.md[i] = pcre2_match_data_create_from_pattern(b->re[i], NULL);
        if (!e.md[i]) {
            st = bllm_fail(BLLM_ERR_NOMEM, "tokenizer: out of memory");
            goto done;
        }
    }
    st = split(&e, 0, text, len);
done:
    for (int i = 0; i < b->n_re; i++) pcre2_match_data_free(e.md[i]);
    free(e.w.id);
    free(e.w.prev);
    free(e.w.next);
    free(e.w.heap);
    return st;
}

bllm_status bllm_bpe_encode(const bllm_bpe *b, const char *text, size_t len, bllm_tokvec *out) {
    return run_split(b, text, len, out, NULL, NULL);
}

bllm_status bllm_bpe_pretokenize(const bllm_bpe *b, const char *text, size_t len,
                                 void (*on_piece)(void *ctx, size_t start, size_t end), void *ctx) {
    return run_split(b, text, len, NULL, on_piece, ctx);
}

int bllm_bpe_decode(const bllm_bpe *b, int32_t token, char *buf, size_t cap) {
    const bllm_tokenizer_spec *spec = b->spec;
    if (token < 0 || (uint32_t)token >= spec->n_vocab) return -1;
    int32_t type = bllm_tok_type(spec, token);
    const char *s = spec->tokens[token];
    size_t len = spec->token_lens[token], off = 0;
    if (type == BLLM_TOKTYPE_CONTROL) return 0;
    /* added (user-defined) tokens are stored as plain text, not byte-mapped */
    if (type == BLLM_TOKTYPE_USER_DEFINED) {
        bllm_tok_emit(buf, cap, &off, s, len);
        return (int)off;
    }
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = utf8_get((const unsigned char *)s + i, len - i, &cp);
        if (cp < sizeof b->cp_byte / sizeof b->cp_byte[0] && b->cp_byte[cp] >= 0) {
            char c = (char)b->cp_byte[cp];
            bllm_tok_emit(buf, cap, &off, &c, 1);
        } else {
            bllm_tok_emit(buf, cap, &off, s + i, n);
        }
        i += n;
    }
    return (int)off;
}
