/* The llama2.c tokenizer (karpathy/llama2.c run.c): tokenizer.bin holds
 * max_token_length (u32) then, per token, score (f32), length (i32) and the
 * bytes. Encoding: a dummy-prefix space, one token per UTF-8 code point
 * (bytes + 3 when the code point is not in the vocab), then repeatedly merge
 * the adjacent pair whose concatenation has the best score, leftmost on
 * ties. run.c rescans the whole sequence per merge (quadratic); a heap of
 * candidate pairs ordered by (score, position) picks the same pair each step
 * in n log n. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "tokenizer/tok_internal.h"

/* run.c starts its best-score search at this value with a strict '>' */
#define L2C_NO_SCORE -1e10f

struct bllm_l2c {
    const bllm_tokenizer_spec *spec;
    bllm_strmap vocab;
    int32_t space_id;
    size_t max_len; /* longest token, for the concat buffer */
};

void bllm_l2c_free(bllm_l2c *l) {
    if (!l) return;
    bllm_strmap_free(&l->vocab);
    free(l);
}

bllm_status bllm_l2c_new(const bllm_tokenizer_spec *spec, bllm_l2c **out) {
    *out = NULL;
    bllm_l2c *l = calloc(1, sizeof *l);
    if (!l) return bllm_fail(BLLM_ERR_NOMEM, "tokenizer: out of memory");
    l->spec = spec;
    bllm_status st = bllm_strmap_init(&l->vocab, spec->tokens, spec->token_lens, spec->n_vocab);
    if (st) {
        bllm_l2c_free(l);
        return st;
    }
    for (uint32_t i = 0; i < spec->n_vocab; i++)
        if (spec->token_lens[i] > l->max_len) l->max_len = spec->token_lens[i];
    l->space_id = bllm_strmap_get(&l->vocab, " ", 1);
    *out = l;
    return BLLM_OK;
}

typedef struct {
    float score;
    uint32_t pos;
    int32_t left, right, merged;
} cand;

static bool cand_before(const cand *a, const cand *b) {
    return a->score != b->score ? a->score > b->score : a->pos < b->pos;
}

typedef struct {
    const bllm_l2c *l;
    int32_t *id, *prev, *next;
    cand *heap;
    size_t n_heap;
    char *buf;
} l2c_work;

static void push(l2c_work *w, cand c) {
    size_t i = w->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_before(&c, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = c;
}

static cand pop(l2c_work *w) {
    cand top = w->heap[0], last = w->heap[--w->n_heap];
    size_t i = 0, n = w->n_heap;
    for (;;) {
        size_t a = 2 * i + 1, b = a + 1, m = i;
        const cand *best = &last;
        if (a < n && cand_before(&w->heap[a], best)) {
            m = a;
            best = &w->heap[a];
        }
        if (b < n && cand_before(&w->heap[b], best)) m = b;
        if (m == i) break;
        w->heap[i] = w->heap[m];
        i = m;
    }
    if (n) w->heap[i] = last;
    return top;
}

static void try_pair(l2c_work *w, int32_t pos) {
    if (pos < 0 || w->next[pos] < 0) return;
    const bllm_tokenizer_spec *s = w->l->spec;
    int32_t a = w->id[pos], b = w->id[w->next[pos]];
    size_t la = s->token_lens[a], lb = s->token_lens[b];
    memcpy(w->buf, s->tokens[a], la);
    memcpy(w->buf + la, s->tokens[b], lb);
    int32_t m = bllm_strmap_get(&w->l->vocab, w->buf, la + lb);
    if (m < 0 || !(s->scores[m] > L2C_NO_SCORE)) return;
    cand c = {s->scores[m], (uint32_t)pos, a, b, m};
    push(w, c);
}

bllm_status bllm_l2c_encode(const bllm_l2c *l, const char *text, size_t len, bllm_tokvec *out) {
    if (len == 0) return BLLM_OK;
    if (len > INT32_MAX - 2) return bllm_fail(BLLM_ERR_ARG, "tokenizer: text too long (%zu bytes)", len);
    const bllm_tokenizer_spec *s = l->spec;
    size_t cap = len + 1;
    l2c_work w = {.l = l};
    w.id = malloc(cap * sizeof *w.id);
    w.prev = malloc(cap * sizeof *w.prev);
    w.next = malloc(cap * sizeof *w.next);
    w.heap = malloc(3 * cap * sizeof *w.heap);
    w.buf = malloc(2 * l->max_len + 1);
    bllm_status st = BLLM_OK;
    if (!w.id || !w.prev || !w.next || !w.heap || !w.buf) {
        st = bllm_fail(BLLM_ERR_NOMEM, "tokenizer: out of memory");
        goto done;
    }
    int32_t n = 0;
    if (s->add_space_prefix && l->space_id >= 0) w.id[n++] = l->space_id;
    /* run.c's code point loop: gather a lead byte and up to 3 continuation
     * bytes, look the sequence up, else fall back to one token per byte. */
    const unsigned char *t = (const unsigned char *)text;
    unsigned char cp[4];
    size_t cp_len = 0;
    for (size_t i = 0; i < len; i++) {
        if ((t[i] & 0xC0) != 0x80) cp_len = 0;
        cp[cp_len++] = t[i];
        unsigned char nx = i + 1 < len ? t[i + 1] : 0;
        if ((nx & 0xC0) == 0x80 && cp_len < 4) continue;
        int32_t id = bllm_strmap_get(&l->vocab, (const char *)cp, cp_len);
        if (id >= 0) {
            w.id[n++] = id;
        } else {
            for (size_t k = 0; k < cp_len; k++) {
                int32_t b = (int32_t)cp[k] + 3;
                if ((uint32_t)b >= s->n_vocab) {
                    st = bllm_fail(BLLM_ERR_FORMAT,
                                   "tokenizer: byte 0x%02x needs byte-fallback token %d, vocab has %u",
                                   cp[k], b, s->n_vocab);
                    goto done;
                }
                w.id[n++] = b;
            }
        }
        cp_len = 0;
    }
    for (int32_t i = 0; i < n; i++) {
        w.prev[i] = i - 1;
        w.next[i] = i + 1 < n ? i + 1 : -1;
    }
    for (int32_t i = 0; i + 1 < n; i++) try_pair(&w, i);
    while (w.n_heap) {
        cand c = pop(&w);
        int32_t p = (int32_t)c.pos, nx = w.next[p];
        /* stale once either symbol changed: merges only lengthen pieces */
        if (w.id[p] != c.left || nx < 0 || w.id[nx] != c.right) continue;
        w.id[p] = c.merged;
        w.id[nx] = -1;
        w.next[p] = w.next[nx];
        if (w.next[nx] >= 0) w.prev[w.next[nx]] = p;
        try_pair(&w, w.prev[p]);
        try_pair(&w, p);
    }
    for (int32_t i = n ? 0 : -1; i >= 0; i = w.next[i])
        if ((st = bllm_tokvec_push(out, w.id[i]))) break;
done:
    free(w.id);
    free(w.prev);
    free(w.next);
    free(w.heap);
    free(w.buf);
    return st;
}

/* ---- loader ---- */

static int hexd(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

bllm_status bllm_tokenizer_load_llama2c(const char *path, bllm_tokenizer_spec_buf *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return bllm_fail(BLLM_ERR_IO, "tokenizer: cannot open %s", path);
    bllm_status st = BLLM_OK;
    unsigned char *data = NULL;
    size_t size = 0;
    if (fseek(f, 0, SEEK_END) == 0) {
        long end = ftell(f);
        if (end >= 0 && fseek(f, 0, SEEK_SET) == 0) {
            size = (size_t)end;
            data = malloc(size ? size : 1);
            if (data && fread(data, 1, size, f) != size) {
                free(data);
                data = NULL;
                st = bllm_fail(BLLM_ERR_IO, "tokenizer: short read on %s", path);
            }
        }
    }
    fclose(f);
    if (st) return st;
    if (!data) return bllm_fail(BLLM_ERR_IO, "tokenizer: cannot read %s", path);

    /* first pass: count and validate entries */
    uint32_t max_len = 0, n = 0;
    size_t off = 4, strbytes = 0;
    if (size < 4) {
        st = bllm_fail(BLLM_ERR_FORMAT, "tokenizer: %s is too short for a tokenizer.bin", path);
        goto fail;
    }
    memcpy(&max_len, data, 4);
    while (off < size) {
        int32_t len;
        if (size - off < 8) {
            st = bllm_fail(BLLM_ERR_FORMAT, "tokenizer: %s: truncated entry %u at byte %zu", path, n, off);
            goto fail;
        }
        memcpy(&len, data + off + 4, 4);
        if (len < 0 || (size_t)len > size - off - 8) {
            st = bllm_fail(BLLM_ERR_FORMAT, "tokenizer: %s: entry %u has bad length %d", path, n, len);
            goto fail;
        }
        off += 8 + (size_t)len;
        strbytes += (size_t)len + 1;
        if (++n > (1u << 24)) {
            st = bllm_fail(BLLM_ERR_FORMAT, "tokenizer: %s: implausibly many tokens", path);
            goto fail;
        }
    }
    if (n < 3) {
        st = bllm_fail(BLLM_ERR_FORMAT, "tokenizer: %s holds %u tokens; llama2.c needs at least <unk>, <s>, </s>", path, n);
        goto fail;
    }

    if ((st = bllm_spec_store_alloc(out, n, strbytes))) goto fail;
    bllm_spec_store *s = out->priv;
    off = 4;
    char *p = s->strings;
    for (uint32_t i = 0; i < n; i++) {
        int32_t len;
        memcpy(&s->scores[i], data + off, 4);
        memcpy(&len, data + off + 4, 4);
        memcpy(p, data + off + 8, (size_t)len);
        p[len] = '\0';
        s->tokens[i] = p;
        s->token_lens[i] = (size_t)len;
        p += len + 1;
        off += 8 + (size_t)len;
        const char *t = s->tokens[i];
        if (i == 1 || i == 2)
            s->types[i] = BLLM_TOKTYPE_CONTROL;
        else if (i == 0)
            s->types[i] = BLLM_TOKTYPE_UNKNOWN;
        else if (len == 6 && memcmp(t, "<0x", 3) == 0 && t[5] == '>' && hexd(t[3]) >= 0 && hexd(t[4]) >= 0)
            s->types[i] = BLLM_TOKTYPE_BYTE;
        else
            s->types[i] = BLLM_TOKTYPE_NORMAL;
    }
    free(data);
    data = NULL;

    bllm_tokenizer_spec *sp = &out->spec;
    sp->kind = BLLM_TOK_LLAMA2C;
    sp->n_vocab = n;
    sp->tokens = s->tokens;
    sp->token_lens = s->token_lens;
    sp->scores = s->scores;
    sp->token_types = s->types;
    sp->bos_id = 1;
    sp->eos_id = 2;
    sp->unk_id = 0;
    sp->pad_id = -1;
    sp->eot_id = -1;
    sp->add_bos = true;
    sp->add_space_prefix = true;
    sp->max_token_len = max_len;
    st = bllm_tokenizer_spec_check(sp);
    if (st) goto fail;
    return BLLM_OK;
fail:
    free(data);
    bllm_tokenizer_spec_buf_free(out);
    return st;
}
