/* Tokenizer spec <-> .stb metadata (keys tokenizer.*, docs/tokenizers.md).
 * Reading points token strings into the mapping and allocates only the
 * index arrays (plus copies of the numeric arrays, which may be unaligned
 * in the file, and the merge text when the file holds merges as token-id
 * pairs); bllm_tokenizer_spec_release() frees those.
 *
 * Writing keeps the tokenizer small, since every byte of it counts in a
 * model's bits per parameter (SmolLM2's 49152 tokens and 48900 merges took
 * 1.4 MB as strings, 0.08 bits per parameter of a 135M model): token types
 * as U8, merges as pairs of token ids (U16 below 65536 tokens). */
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "runtime/format/stb.h"
#include "tokenizer/tok_internal.h"

static const char *const KIND_NAMES[] = {"spm", "bpe", "llama2c"};

/* U8 when every type fits a byte (they are small enums), else I32. */
static bllm_status write_token_types(const bllm_tokenizer_spec *s, struct bllm_stb_writer *w) {
    bool small = true;
    for (uint32_t i = 0; i < s->n_vocab && small; i++)
        small = s->token_types[i] >= 0 && s->token_types[i] <= 255;
    if (!small) return bllm_stb_set_arr_i32(w, "tokenizer.token_types", s->token_types, s->n_vocab);
    uint8_t *t = malloc(s->n_vocab);
    if (!t) return bllm_fail(BLLM_ERR_NOMEM, "tokenizer: out of memory");
    for (uint32_t i = 0; i < s->n_vocab; i++) t[i] = (uint8_t)s->token_types[i];
    bllm_status st = bllm_stb_set_arr_u8(w, "tokenizer.token_types", t, s->n_vocab);
    free(t);
    return st;
}

/* Merge i "left right" as tokenizer.merge_ids[2i], [2i + 1], the ids of
 * its two halves (split at the first space), when every merge is two
 * tokens so joined; else the strings, as tokenizer.merges. */
static bllm_status write_merges(const bllm_tokenizer_spec *s, struct bllm_stb_writer *w) {
    bllm_strmap map;
    uint32_t *ids = malloc(2 * (size_t)s->n_merges * sizeof *ids);
    bllm_status st = ids ? bllm_strmap_init(&map, s->tokens, s->token_lens, s->n_vocab)
                         : bllm_fail(BLLM_ERR_NOMEM, "tokenizer: out of memory");
    if (st) {
        free(ids);
        return st;
    }
    bool pairs = true;
    for (uint32_t i = 0; i < s->n_merges && pairs; i++) {
        const char *m = s->merges[i], *sp = memchr(m, ' ', s->merge_lens[i]);
        const size_t left = sp ? (size_t)(sp - m) : 0;
        const int32_t a = sp ? bllm_strmap_get(&map, m, left) : -1;
        const int32_t b = sp ? bllm_strmap_get(&map, sp + 1, s->merge_lens[i] - left - 1) : -1;
        pairs = a >= 0 && b >= 0;
        ids[2 * i] = (uint32_t)a;
        ids[2 * i + 1] = (uint32_t)b;
    }
    bllm_strmap_free(&map);
    const uint64_t n = 2 * (uint64_t)s->n_merges;
    if (!pairs) {
        st = bllm_stb_set_arr_str(w, "tokenizer.merges", s->merges, s->merge_lens, s->n_merges);
    } else if (s->n_vocab <= 65536) {
        uint16_t *h = malloc(n * sizeof *h);
        if (!h) {
            free(ids);
            return bllm_fail(BLLM_ERR_NOMEM, "tokenizer: out of memory");
        }
        for (uint64_t k = 0; k < n; k++) h[k] = (uint16_t)ids[k];
        st = bllm_stb_set_arr_u16(w, "tokenizer.merge_ids", h, n);
        free(h);
    } else {
        st = bllm_stb_set_arr_u32(w, "tokenizer.merge_ids", ids, n);
    }
    free(ids);
    return st;
}

bllm_status bllm_tokenizer_spec_to_stb(const bllm_tokenizer_spec *s, struct bllm_stb_writer *w) {
    if (!w) return bllm_fail(BLLM_ERR_ARG, "tokenizer: no writer");
    bllm_status st = bllm_tokenizer_spec_check(s);
    if (st) return st;
    const char *kind = KIND_NAMES[s->kind];
#define TRY(x)                                                                                 \
    do {                                                                                       \
        if ((st = (x))) return st;                                                             \
    } while (0)
    TRY(bllm_stb_set_str(w, "tokenizer.kind", kind, strlen(kind)));
    TRY(bllm_stb_set_arr_str(w, "tokenizer.tokens", s->tokens, s->token_lens, s->n_vocab));
    if (s->scores) TRY(bllm_stb_set_arr_f32(w, "tokenizer.scores", s->scores, s->n_vocab));
    if (s->token_types) TRY(write_token_types(s, w));
    if (s->n_merges) TRY(write_merges(s, w));
    if (s->pre) TRY(bllm_stb_set_str(w, "tokenizer.pre", s->pre, strlen(s->pre)));
    TRY(bllm_stb_set_i32(w, "tokenizer.bos_id", s->bos_id));
    TRY(bllm_stb_set_i32(w, "tokenizer.eos_id", s->eos_id));
    TRY(bllm_stb_set_i32(w, "tokenizer.unk_id", s->unk_id));
    TRY(bllm_stb_set_i32(w, "tokenizer.pad_id", s->pad_id));
    TRY(bllm_stb_set_i32(w, "tokenizer.eot_id", s->eot_id));
    TRY(bllm_stb_set_bool(w, "tokenizer.add_bos", s->add_bos));
    TRY(bllm_stb_set_bool(w, "tokenizer.add_space_prefix", s->add_space_prefix));
    TRY(bllm_stb_set_u32(w, "tokenizer.max_token_len", s->max_token_len));
#undef TRY
    return BLLM_OK;
}

void bllm_tokenizer_spec_release(bllm_tokenizer_spec *s) {
    if (!s) return;
    free((void *)s->tokens);
    free((void *)s->token_lens);
    free((void *)s->scores);
    free((void *)s->token_types);
    free((void *)s->merges);
    free((void *)s->merge_lens);
    free((void *)s->pre);
    memset(s, 0, sizeof *s);
}

/* A string array under key -> freshly allocated pointer/length arrays. */
static bllm_status read_str_array(const struct bllm_stb_file *f, const char *key, uint32_t *n,
                                  const char ***strs, size_t **lens) {
    bllm_stb_array a;
    bllm_status st = bllm_stb_get_array(f, key, &a);
    if (st) return st;
    if (a.elem_type != BLLM_META_STR)
        return bllm_fail(BLLM_ERR_FORMAT, "tokenizer: %s is not an array of strings", key);
    if (a.count > INT32_MAX)
        return bllm_fail(BLLM_ERR_FORMAT, "tokenizer: %s has %llu entries (too many)", key,
                         (unsigned long long)a.count);
    *n = (uint32_t)a.count;
    size_t cnt = a.count ? (size_t)a.count : 1;
    *strs = malloc(cnt * sizeof **strs);
    *lens = malloc(cnt * sizeof **lens);
    if (!*strs || !*lens) return bllm_fail(BLLM_ERR_NOMEM, "tokenizer: out of memory reading %s", key);
    for (uint64_t i = 0; i < a.count; i++) {
        const char *s;
        size_t len;
        bllm_stb_array_str(&a, i, &s, &len);
        (*strs)[i] = s;
        (*lens)[i] = len;
    }
    return BLLM_OK;
}

/* Element k of tokenizer.merge_ids, U16 or U32. */
static uint32_t merge_id(const bllm_stb_array *a, uint64_t k) {
    if (a->elem_type == BLLM_META_U16) return bllm_stb_array_u16(a, k);
    uint32_t id;
    memcpy(&id, a->data + 4 * k, 4);
    return id;
}

/* tokenizer.merge_ids (U16 or U32 pairs) back into "left right" strings:
 * one block holds the pointer array and the text after it, so that
 * spec_release's free of merges frees both. */
static bllm_status read_merge_ids(const struct bllm_stb_file *f, bllm_tokenizer_spec *s) {
    bllm_stb_array a;
    bllm_status st = bllm_stb_get_array(f, "tokenizer.merge_ids", &a);
    if (st == BLLM_ERR_NOT_FOUND) return BLLM_OK;
    if (st) return st;
    if ((a.elem_type != BLLM_META_U16 && a.elem_type != BLLM_META_U32) || a.count % 2 || a.count / 2 > INT32_MAX)
        return bllm_fail(BLLM_ERR_FORMAT, "tokenizer: tokenizer.merge_ids must be pairs of U16 or U32 token ids "
                         "(has %llu of type %d)", (unsigned long long)a.count, (int)a.elem_type);
    const uint32_t n = (uint32_t)(a.count / 2);
    size_t text = 0;
    for (uint64_t k = 0; k < a.count; k++) { /* check every id and size the text */
        const uint32_t id = merge_id(&a, k);
        if (id >= s->n_vocab)
            return bllm_fail(BLLM_ERR_FORMAT, "tokenizer: merge %llu names token %u of a %u-token vocabulary",
                             (unsigned long long)(k / 2), id, s->n_vocab);
        text += s->token_lens[id] + (k % 2 == 0);
    }
    size_t *lens = malloc((n ? n : 1) * sizeof *lens);
    char *block = malloc((n ? n : 1) * sizeof(char *) + text + 1);
    if (!lens || !block) {
        free(lens);
        free(block);
        return bllm_fail(BLLM_ERR_NOMEM, "tokenizer: out of memory reading the merges");
    }
    const char **ptrs = (const char **)(void *)block;
    char *p = block + (n ? n : 1) * sizeof(char *);
    for (uint32_t i = 0; i < n; i++) {
        const uint32_t id[2] = {merge_id(&a, 2 * (uint64_t)i), merge_id(&a, 2 * (uint64_t)i + 1)};
        ptrs[i] = p;
        memcpy(p, s->tokens[id[0]], s->token_lens[id[0]]);
        p += s->token_lens[id[0]];
        *p++ = ' ';
        memcpy(p, s->tokens[id[1]], s->token_lens[id[1]]);
        p += s->token_lens[id[1]];
        lens[i] = s->token_lens[id[0]] + 1 + s->token_lens[id[1]];
    }
    s->merges = ptrs;
    s->merge_lens = lens;
    s->n_merges = n;
    return BLLM_OK;
}

static bllm_status read_opt_id(const struct bllm_stb_file *f, const char *key, int32_t *v) {
    bllm_status st = bllm_stb_get_i32(f, key, v);
    if (st == BLLM_ERR_NOT_FOUND) {
        *v = -1;
        return BLLM_OK;
    }
    return st;
}

static bllm_status read_opt_bool(const struct bllm_stb_file *f, const char *key, bool *v) {
    bllm_status st = bllm_stb_get_bool(f, key, v);
    if (st == BLLM_ERR_NOT_FOUND) {
        *v = false;
        return BLLM_OK;
    }
    return st;
}

static bllm_status read_spec(const struct bllm_stb_file *f, bllm_tokenizer_spec *s) {
    const char *str;
    size_t len;
    bllm_status st = bllm_stb_get_str(f, "tokenizer.kind", &str, &len);
    if (st == BLLM_ERR_NOT_FOUND)
        return bllm_fail(BLLM_ERR_NOT_FOUND, "tokenizer: the file has no tokenizer (tokenizer.kind)");
    if (st) return st;
    int kind = -1;
    for (int k = 0; k < 3; k++)
        if (strlen(KIND_NAMES[k]) == len && memcmp(KIND_NAMES[k], str, len) == 0) kind = k;
    if (kind < 0)
        return bllm_fail(BLLM_ERR_UNSUPPORTED, "tokenizer: unknown tokenizer.kind \"%.*s\"",
                         (int)(len > 32 ? 32 : len), str);
    s->kind = (bllm_tokenizer_kind)kind;

    const char **tokens = NULL;
    size_t *lens = NULL;
    st = read_str_array(f, "tokenizer.tokens", &s->n_vocab, &tokens, &lens);
    s->tokens = tokens;
    s->token_lens = lens;
    if (st == BLLM_ERR_NOT_FOUND)
        return bllm_fail(BLLM_ERR_FORMAT, "tokenizer: tokenizer.tokens is missing");
    if (st) return st;
    if (s->n_vocab == 0) return bllm_fail(BLLM_ERR_FORMAT, "tokenizer: tokenizer.tokens is empty");

    bllm_stb_array a;
    st = bllm_stb_get_array(f, "tokenizer.scores", &a);
    if (st == BLLM_OK) {
        if (a.elem_type != BLLM_META_F32 || a.count != s->n_vocab)
            return bllm_fail(BLLM_ERR_FORMAT,
                             "tokenizer: tokenizer.scores must be %u F32 values (has %llu of type %d)",
                             s->n_vocab, (unsigned long long)a.count, (int)a.elem_type);
        float *sc = malloc(s->n_vocab * sizeof *sc);
        if (!sc) return bllm_fail(BLLM_ERR_NOMEM, "tokenizer: out of memory");
        for (uint32_t i = 0; i < s->n_vocab; i++) sc[i] = bllm_stb_array_f32(&a, i);
        s->scores = sc;
    } else if (st != BLLM_ERR_NOT_FOUND) {
        return st;
    }
    st = bllm_stb_get_array(f, "tokenizer.token_types", &a);
    if (st == BLLM_OK) {
        if ((a.elem_type != BLLM_META_I32 && a.elem_type != BLLM_META_U8) || a.count != s->n_vocab)
            return bllm_fail(BLLM_ERR_FORMAT,
                             "tokenizer: tokenizer.token_types must be %u I32 or U8 values (has %llu of type %d)",
                             s->n_vocab, (unsigned long long)a.count, (int)a.elem_type);
        int32_t *ty = malloc(s->n_vocab * sizeof *ty);
        if (!ty) return bllm_fail(BLLM_ERR_NOMEM, "tokenizer: out of memory");
        for (uint32_t i = 0; i < s->n_vocab; i++)
            ty[i] = a.elem_type == BLLM_META_U8 ? (int32_t)a.data[i] : bllm_stb_array_i32(&a, i);
        s->token_types = ty;
    } else if (st != BLLM_ERR_NOT_FOUND) {
        return st;
    }
    const char **merges = NULL;
    size_t *mlens = NULL;
    st = read_str_array(f, "tokenizer.merges", &s->n_merges, &merges, &mlens);
    s->merges = merges;
    s->merge_lens = mlens;
    if (st && st != BLLM_ERR_NOT_FOUND) return st;
    if (st == BLLM_ERR_NOT_FOUND) {
        s->n_merges = 0;
        if ((st = read_merge_ids(f, s))) return st;
    }

    st = bllm_stb_get_str(f, "tokenizer.pre", &str, &len);
    if (st == BLLM_OK) {
        if (memchr(str, '\0', len))
            return bllm_fail(BLLM_ERR_FORMAT, "tokenizer: tokenizer.pre holds a NUL byte");
        char *pre = malloc(len + 1);
        if (!pre) return bllm_fail(BLLM_ERR_NOMEM, "tokenizer: out of memory");
        memcpy(pre, str, len);
        pre[len] = '\0';
        s->pre = pre;
    } else if (st != BLLM_ERR_NOT_FOUND) {
        return st;
    }
    if ((st = read_opt_id(f, "tokenizer.bos_id", &s->bos_id)) ||
        (st = read_opt_id(f, "tokenizer.eos_id", &s->eos_id)) ||
        (st = read_opt_id(f, "tokenizer.unk_id", &s->unk_id)) ||
        (st = read_opt_id(f, "tokenizer.pad_id", &s->pad_id)) ||
        (st = read_opt_id(f, "tokenizer.eot_id", &s->eot_id)) ||
        (st = read_opt_bool(f, "tokenizer.add_bos", &s->add_bos)) ||
        (st = read_opt_bool(f, "tokenizer.add_space_prefix", &s->add_space_prefix)))
        return st;
    st = bllm_stb_get_u32(f, "tokenizer.max_token_len", &s->max_token_len);
    if (st == BLLM_ERR_NOT_FOUND) s->max_token_len = 0;
    else if (st) return st;
    if (s->kind == BLLM_TOK_BPE && s->n_merges == 0 && s->n_vocab > 256)
        return bllm_fail(BLLM_ERR_FORMAT, "tokenizer: BPE vocab of %u tokens without tokenizer.merges",
                         s->n_vocab);
    return bllm_tokenizer_spec_check(s);
}

bllm_status bllm_tokenizer_spec_from_stb(const struct bllm_stb_file *f, bllm_tokenizer_spec *spec) {
    if (!f || !spec) return bllm_fail(BLLM_ERR_ARG, "tokenizer: spec_from_stb: bad arguments");
    memset(spec, 0, sizeof *spec);
    bllm_status st = read_spec(f, spec);
    if (st) bllm_tokenizer_spec_release(spec);
    return st;
}
