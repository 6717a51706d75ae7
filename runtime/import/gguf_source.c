/* GGUF files as a bllm_source: llama.* metadata to hyperparameters,
 * tokenizer.ggml.* to a tokenizer spec, tensors with their dims reversed
 * into PyTorch order. GGUF llama tensors already use the adjacent-pair RoPE
 * layout (llama.cpp's converter permutes HF Q/K), so values pass through
 * unchanged apart from dequantization. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/import/gguf.h"

typedef struct {
    bllm_gguf *g;
    const bllm_gguf_tensor **t; /* source tensor i -> GGUF tensor */
} gguf_impl;

static bllm_status gguf_read(bllm_source *s, int i, float *out) {
    gguf_impl *im = s->impl;
    const bllm_gguf_tensor *t = im->t[i];
    uint64_t n = (uint64_t)t->ne[0] * (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3];
    bllm_status st = bllm_ggml_dequant(t->type, t->data, out, n);
    if (st != BLLM_OK && st != BLLM_ERR_NOMEM) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", bllm_last_error());
        return bllm_fail(st, "tensor '%s': %s", t->name, msg);
    }
    return st;
}

static void gguf_close(bllm_source *s) {
    gguf_impl *im = s->impl;
    if (!im)
        return;
    bllm_gguf_close(im->g);
    free(im->t);
    free(im);
    s->impl = NULL;
}

static const bllm_source_ops gguf_ops = {gguf_read, gguf_close};

/* Optional key: NOT_FOUND leaves *v as is; any other failure propagates. */
#define OPT(call)                                                                  \
    do {                                                                           \
        bllm_status st_ = (call);                                                  \
        if (st_ != BLLM_OK && st_ != BLLM_ERR_NOT_FOUND)                           \
            return st_;                                                            \
    } while (0)

static bllm_status req_u32(const bllm_gguf *g, const char *key, uint32_t *v) {
    bllm_status st = bllm_gguf_get_u32(g, key, v);
    if (st == BLLM_ERR_NOT_FOUND)
        return bllm_fail(BLLM_ERR_FORMAT, "GGUF metadata '%s' is missing", key);
    return st;
}

static bllm_status read_hparams(const bllm_gguf *g, const char *path, bllm_llama_hparams *hp) {
    const char *s;
    uint64_t len;
    bllm_status st = bllm_gguf_get_str(g, "general.architecture", &s, &len);
    if (st == BLLM_ERR_NOT_FOUND)
        return bllm_fail(BLLM_ERR_FORMAT, "'%s': general.architecture is missing", path);
    if (st != BLLM_OK)
        return st;
    if (len != 5 || memcmp(s, "llama", 5) != 0)
        return bllm_fail(BLLM_ERR_UNSUPPORTED, "'%s': architecture '%.*s' is not supported "
                         "(only llama)", path, (int)(len > 64 ? 64 : len), s);
    memset(hp, 0, sizeof(*hp));
    if (bllm_gguf_get_str(g, "general.name", &s, &len) == BLLM_OK) {
        size_t n = len < sizeof(hp->name) - 1 ? (size_t)len : sizeof(hp->name) - 1;
        memcpy(hp->name, s, n);
    }
    if ((st = req_u32(g, "llama.embedding_length", &hp->dim)) ||
        (st = req_u32(g, "llama.feed_forward_length", &hp->hidden_dim)) ||
        (st = req_u32(g, "llama.block_count", &hp->n_layers)) ||
        (st = req_u32(g, "llama.attention.head_count", &hp->n_heads)) ||
        (st = req_u32(g, "llama.context_length", &hp->max_seq_len)))
        return st;
    hp->n_kv_heads = hp->n_heads;
    OPT(bllm_gguf_get_u32(g, "llama.attention.head_count_kv", &hp->n_kv_heads));
    if (hp->n_heads == 0)
        return bllm_fail(BLLM_ERR_FORMAT, "'%s': llama.attention.head_count is 0", path);
    hp->head_dim = hp->dim / hp->n_heads;
    OPT(bllm_gguf_get_u32(g, "llama.attention.key_length", &hp->head_dim));
    uint32_t vlen = hp->head_dim;
    OPT(bllm_gguf_get_u32(g, "llama.attention.value_length", &vlen));
    if (vlen != hp->head_dim)
        return bllm_fail(BLLM_ERR_UNSUPPORTED, "'%s': value_length %u differs from key_length %u",
                         path, vlen, hp->head_dim);
    uint32_t rope_dims = hp->head_dim;
    OPT(bllm_gguf_get_u32(g, "llama.rope.dimension_count", &rope_dims));
    if (rope_dims != hp->head_dim)
        return bllm_fail(BLLM_ERR_UNSUPPORTED, "'%s': partial rotary embeddings (%u of %u dims) "
                         "are not supported", path, rope_dims, hp->head_dim);
    hp->rope_theta = 10000.0f;
    OPT(bllm_gguf_get_f32(g, "llama.rope.freq_base", &hp->rope_theta));
    hp->norm_eps = 1e-5f;
    OPT(bllm_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &hp->norm_eps));

    hp->rope_scaling = BLLM_ROPE_SCALING_NONE;
    hp->rope_factor = 1.0f;
    float linear = 0;
    OPT(bllm_gguf_get_f32(g, "llama.rope.scale_linear", &linear)); /* older files */
    if (linear > 0 && linear != 1.0f) {
        hp->rope_scaling = BLLM_ROPE_SCALING_LINEAR;
        hp->rope_factor = linear;
    }
    st = bllm_gguf_get_str(g, "llama.rope.scaling.type", &s, &len);
    if (st != BLLM_OK && st != BLLM_ERR_NOT_FOUND)
        return st;
    if (st == BLLM_OK) {
        float factor = 1.0f;
        OPT(bllm_gguf_get_f32(g, "llama.rope.scaling.factor", &factor));
        if (len == 4 && memcmp(s, "none", 4) == 0) {
            /* keep NONE (or the older scale_linear) */
        } else if (len == 6 && memcmp(s, "linear", 6) == 0) {
            hp->rope_scaling = factor != 1.0f ? BLLM_ROPE_SCALING_LINEAR : BLLM_ROPE_SCALING_NONE;
            hp->rope_factor = factor;
        } else if (len == 6 && memcmp(s, "llama3", 6) == 0) {
            hp->rope_scaling = BLLM_ROPE_SCALING_LLAMA3;
            hp->rope_factor = factor;
            hp->rope_low_freq_factor = 1.0f;
            hp->rope_high_freq_factor = 4.0f;
            hp->rope_orig_max_seq = 8192;
            OPT(bllm_gguf_get_u32(g, "llama.rope.scaling.original_context_length",
                                  &hp->rope_orig_max_seq));
        } else {
            return bllm_fail(BLLM_ERR_UNSUPPORTED, "'%s': RoPE scaling '%.*s' is not supported",
                             path, (int)(len > 32 ? 32 : len), s);
        }
    }
    return BLLM_OK;
}

static bllm_status read_tokenizer(bllm_source *src, const bllm_gguf *g, const char *path) {
    bllm_tokenizer_spec *t = &src->tok;
    bllm_arena *a = &src->arena;
    const char *model;
    uint64_t mlen;
    bllm_status st = bllm_gguf_get_str(g, "tokenizer.ggml.model", &model, &mlen);
    if (st == BLLM_ERR_NOT_FOUND)
        return bllm_fail(BLLM_ERR_FORMAT, "'%s' has no tokenizer (tokenizer.ggml.model)", path);
    if (st != BLLM_OK)
        return st;
    if (mlen == 5 && memcmp(model, "llama", 5) == 0)
        t->kind = BLLM_TOK_SPM;
    else if (mlen == 4 && memcmp(model, "gpt2", 4) == 0)
        t->kind = BLLM_TOK_BPE;
    else
        return bllm_fail(BLLM_ERR_UNSUPPORTED, "'%s': tokenizer model '%.*s' is not supported "
                         "(llama and gpt2 are)", path, (int)(mlen > 32 ? 32 : mlen), model);

    const bllm_gguf_kv *tok;
    if ((st = bllm_gguf_get_arr(g, "tokenizer.ggml.tokens", BLLM_GGUF_STRING, &tok)))
        return st == BLLM_ERR_NOT_FOUND
                   ? bllm_fail(BLLM_ERR_FORMAT, "'%s': tokenizer.ggml.tokens is missing", path)
                   : st;
    if (tok->arr_n == 0 || tok->arr_n > (1u << 24))
        return bllm_fail(BLLM_ERR_FORMAT, "'%s': implausible vocabulary size %llu", path,
                         (unsigned long long)tok->arr_n);
    uint32_t n = (uint32_t)tok->arr_n;
    t->n_vocab = n;
    const char **toks = bllm_arena_alloc(a, n * sizeof(*toks));
    size_t *lens = bllm_arena_alloc(a, n * sizeof(*lens));
    if (!toks || !lens)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        const char *p;
        uint64_t l;
        bllm_gguf_arr_str(tok, i, &p, &l);
        if (!(toks[i] = bllm_arena_strndup(a, p, l)))
            return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
        lens[i] = l;
    }
    t->tokens = toks;
    t->token_lens = lens;

    const bllm_gguf_kv *kv;
    st = bllm_gguf_get_arr(g, "tokenizer.ggml.scores", BLLM_GGUF_FLOAT32, &kv);
    if (st == BLLM_OK) {
        if (kv->arr_n != n)
            return bllm_fail(BLLM_ERR_FORMAT, "'%s': %llu scores for %u tokens", path,
                             (unsigned long long)kv->arr_n, n);
        float *sc = bllm_arena_alloc(a, n * sizeof(float));
        if (!sc)
            return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
        memcpy(sc, kv->val, n * sizeof(float));
        t->scores = sc;
    } else if (st != BLLM_ERR_NOT_FOUND) {
        return st;
    } else if (t->kind == BLLM_TOK_SPM) {
        return bllm_fail(BLLM_ERR_FORMAT, "'%s': a SentencePiece tokenizer needs "
                         "tokenizer.ggml.scores", path);
    }
    st = bllm_gguf_get_arr(g, "tokenizer.ggml.token_type", BLLM_GGUF_INT32, &kv);
    if (st == BLLM_OK) {
        if (kv->arr_n != n)
            return bllm_fail(BLLM_ERR_FORMAT, "'%s': %llu token types for %u tokens", path,
                             (unsigned long long)kv->arr_n, n);
        int32_t *ty = bllm_arena_alloc(a, n * sizeof(int32_t));
        if (!ty)
            return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
        memcpy(ty, kv->val, n * sizeof(int32_t));
        t->token_types = ty;
    } else if (st != BLLM_ERR_NOT_FOUND) {
        return st;
    }
    if (t->kind == BLLM_TOK_BPE) {
        st = bllm_gguf_get_arr(g, "tokenizer.ggml.merges", BLLM_GGUF_STRING, &kv);
        if (st == BLLM_ERR_NOT_FOUND)
            return bllm_fail(BLLM_ERR_FORMAT, "'%s': a BPE tokenizer needs tokenizer.ggml.merges",
                             path);
        if (st != BLLM_OK)
            return st;
        if (kv->arr_n > (1u << 24))
            return bllm_fail(BLLM_ERR_FORMAT, "'%s': implausible merge count", path);
        uint32_t m = (uint32_t)kv->arr_n;
        const char **mg = bllm_arena_alloc(a, (m ? m : 1) * sizeof(*mg));
        size_t *ml = bllm_arena_alloc(a, (m ? m : 1) * sizeof(*ml));
        if (!mg || !ml)
            return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
        for (uint32_t i = 0; i < m; i++) {
            const char *p;
            uint64_t l;
            bllm_gguf_arr_str(kv, i, &p, &l);
            if (!(mg[i] = bllm_arena_strndup(a, p, l)))
                return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
            ml[i] = l;
        }
        t->n_merges = m;
        t->merges = mg;
        t->merge_lens = ml;
        const char *pre;
        uint64_t plen;
        st = bllm_gguf_get_str(g, "tokenizer.ggml.pre", &pre, &plen);
        if (st == BLLM_OK) {
            if (!(t->pre = bllm_arena_strndup(a, pre, plen)))
                return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
        } else if (st != BLLM_ERR_NOT_FOUND) {
            return st;
        }
    }

    /* llama.cpp's defaults when a SentencePiece file omits the ids. */
    bool spm = t->kind == BLLM_TOK_SPM;
    t->bos_id = spm ? 1 : -1;
    t->eos_id = spm ? 2 : -1;
    t->unk_id = spm ? 0 : -1;
    t->pad_id = -1;
    static const char *keys[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                 "tokenizer.ggml.unknown_token_id",
                                 "tokenizer.ggml.padding_token_id"};
    int32_t *ids[] = {&t->bos_id, &t->eos_id, &t->unk_id, &t->pad_id};
    for (int k = 0; k < 4; k++) {
        int64_t v;
        st = bllm_gguf_get_i64(g, keys[k], &v);
        if (st == BLLM_ERR_NOT_FOUND)
            continue;
        if (st != BLLM_OK)
            return st;
        if (v < 0 || v >= n) {
            if (k < 2)
                return bllm_fail(BLLM_ERR_FORMAT, "'%s': %s = %lld is outside the vocabulary",
                                 path, keys[k], (long long)v);
            v = -1; /* an unusable unk/pad id only means there is none */
        }
        *ids[k] = (int32_t)v;
    }
    int64_t eot;
    st = bllm_gguf_get_i64(g, "tokenizer.ggml.eot_token_id", &eot);
    if (st == BLLM_OK && eot >= 0 && eot < n)
        t->eot_id = (int32_t)eot;
    else if (st != BLLM_OK && st != BLLM_ERR_NOT_FOUND)
        return st;
    else
        t->eot_id = bllm_source_guess_eot(t);

    t->add_bos = spm;
    OPT(bllm_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &t->add_bos));
    t->add_space_prefix = spm;
    OPT(bllm_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix));

    const char *tmpl;
    uint64_t tlen;
    st = bllm_gguf_get_str(g, "tokenizer.chat_template", &tmpl, &tlen);
    if (st == BLLM_OK) {
        if (!(src->chat_template = bllm_arena_strndup(a, tmpl, tlen)))
            return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    } else if (st != BLLM_ERR_NOT_FOUND) {
        return st;
    }
    return BLLM_OK;
}

bllm_status bllm_source_open_gguf(const char *path, bllm_source *s) {
    gguf_impl *im = calloc(1, sizeof(*im));
    if (!im)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    s->ops = &gguf_ops;
    s->impl = im;
    bllm_status st = bllm_gguf_open(path, &im->g);
    if (st != BLLM_OK)
        return st;
    bllm_gguf *g = im->g;
    if ((st = bllm_source_add_file(s, path)) || (st = read_hparams(g, path, &s->hp)) ||
        (st = read_tokenizer(s, g, path)))
        return st;
    if (g->n_tensors > (1u << 20))
        return bllm_fail(BLLM_ERR_FORMAT, "'%s': implausible tensor count %llu", path,
                         (unsigned long long)g->n_tensors);
    im->t = calloc(g->n_tensors ? g->n_tensors : 1, sizeof(*im->t));
    if (!im->t)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const bllm_gguf_tensor *t = &g->tensors[i];
        int64_t dims[4];
        for (uint32_t d = 0; d < t->n_dims; d++)
            dims[d] = t->ne[t->n_dims - 1 - d];
        int idx = bllm_source_add_tensor(s, t->name, (int)t->n_dims, dims,
                                         bllm_ggml_type_name(t->type));
        if (idx < 0)
            return BLLM_ERR_FORMAT;
        im->t[idx] = t;
    }
    /* As llama.cpp: llama.vocab_size, else the token count; validation then
     * checks the embedding against it. */
    st = bllm_gguf_get_u32(g, "llama.vocab_size", &s->hp.n_vocab);
    if (st == BLLM_ERR_NOT_FOUND)
        s->hp.n_vocab = s->tok.n_vocab;
    else if (st != BLLM_OK)
        return st;
    return BLLM_OK;
}
