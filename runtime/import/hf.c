/* Hugging Face checkpoint folders as a bllm_source: config.json for the
 * hyperparameters, every *.safetensors file for the weights (no index file
 * needed), tokenizer.json (byte-level BPE) or tokenizer.model
 * (SentencePiece, read by the tokenizer module) for the vocabulary,
 * tokenizer_config.json for special tokens and the chat template.
 *
 * Normalizations: HF names become GGUF names; Q and K rows are permuted
 * from HF's rotate_half layout (each head's first half pairs with its
 * second half) to the adjacent-pair layout, exactly as llama.cpp's
 * convert_hf_to_gguf.py permute(): within each head, output row 2j+p is
 * input row p*head_dim/2 + j. K uses the KV head count. */
#include <cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/import/safetensors.h"

#define JSON_MAX_BYTES ((size_t)512 << 20)

typedef struct {
    bllm_safetensors *st;
    const bllm_st_tensor **t; /* source tensor i -> safetensors tensor */
    int *permute_heads;       /* 0, or the head count whose rows to permute */
} hf_impl;

/* ------------------------------------------------------------ tensors */

static void permute_rows(float *w, int64_t rows, int64_t cols, int heads, float *tmp) {
    int64_t hd = rows / heads, half = hd / 2;
    for (int h = 0; h < heads; h++) {
        float *blk = w + (int64_t)h * hd * cols;
        memcpy(tmp, blk, (size_t)(hd * cols) * sizeof(float));
        for (int64_t j = 0; j < half; j++)
            for (int p = 0; p < 2; p++)
                memcpy(blk + (2 * j + p) * cols, tmp + (p * half + j) * cols,
                       (size_t)cols * sizeof(float));
    }
}

static bllm_status hf_read(bllm_source *s, int i, float *out) {
    hf_impl *im = s->impl;
    const bllm_st_tensor *t = im->t[i];
    bllm_status st = bllm_st_read_f32(t, out);
    if (st != BLLM_OK || !im->permute_heads[i])
        return st;
    int heads = im->permute_heads[i];
    int64_t rows = t->shape[0], cols = t->shape[1];
    float *tmp = malloc((size_t)(rows / heads * cols) * sizeof(float));
    if (!tmp)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory permuting '%s'", t->name);
    permute_rows(out, rows, cols, heads, tmp);
    free(tmp);
    return BLLM_OK;
}

static void hf_close(bllm_source *s) {
    hf_impl *im = s->impl;
    if (!im)
        return;
    bllm_safetensors_close(im->st);
    free(im->t);
    free(im->permute_heads);
    free(im);
    s->impl = NULL;
}

static const bllm_source_ops hf_ops = {hf_read, hf_close};

typedef enum { MAP_OK, MAP_SKIP, MAP_UNKNOWN } map_result;

static const struct {
    const char *hf, *gguf;
} layer_names[] = {
    {"input_layernorm.weight", "attn_norm"},
    {"self_attn.q_proj.weight", "attn_q"},
    {"self_attn.k_proj.weight", "attn_k"},
    {"self_attn.v_proj.weight", "attn_v"},
    {"self_attn.o_proj.weight", "attn_output"},
    {"post_attention_layernorm.weight", "ffn_norm"},
    {"mlp.gate_proj.weight", "ffn_gate"},
    {"mlp.up_proj.weight", "ffn_up"},
    {"mlp.down_proj.weight", "ffn_down"},
};
#define N_LAYER_NAMES (int)(sizeof(layer_names) / sizeof(layer_names[0]))

/* GGUF name and a sort key giving the canonical order (embedding, layers,
 * final norm, output). */
static map_result map_name(const char *hf, char *out, size_t cap, uint64_t *order, int *layer) {
    *layer = -1;
    if (strstr(hf, "rotary_emb.inv_freq"))
        return MAP_SKIP; /* old checkpoints store it; recomputed from rope_theta */
    if (strcmp(hf, "model.embed_tokens.weight") == 0) {
        snprintf(out, cap, "token_embd.weight");
        *order = 0;
        return MAP_OK;
    }
    if (strcmp(hf, "model.norm.weight") == 0) {
        snprintf(out, cap, "output_norm.weight");
        *order = UINT64_MAX - 1;
        return MAP_OK;
    }
    if (strcmp(hf, "lm_head.weight") == 0) {
        snprintf(out, cap, "output.weight");
        *order = UINT64_MAX;
        return MAP_OK;
    }
    const char *pre = "model.layers.";
    if (strncmp(hf, pre, strlen(pre)) != 0)
        return MAP_UNKNOWN;
    const char *p = hf + strlen(pre);
    unsigned long l = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 7) {
        l = l * 10 + (unsigned long)(*p++ - '0');
        digits++;
    }
    if (!digits || *p != '.')
        return MAP_UNKNOWN;
    p++;
    for (int k = 0; k < N_LAYER_NAMES; k++)
        if (strcmp(p, layer_names[k].hf) == 0) {
            snprintf(out, cap, "blk.%lu.%s.weight", l, layer_names[k].gguf);
            *order = 1 + (uint64_t)l * N_LAYER_NAMES + (uint64_t)k;
            *layer = (int)l;
            return MAP_OK;
        }
    return MAP_UNKNOWN;
}

typedef struct {
    uint64_t order;
    const bllm_st_tensor *t;
    char name[96];
} mapped;

static int cmp_mapped(const void *a, const void *b) {
    uint64_t x = ((const mapped *)a)->order, y = ((const mapped *)b)->order;
    return x < y ? -1 : x > y;
}

/* ------------------------------------------------------------ JSON helpers */

static bllm_status load_json(const char *path, cJSON **out) {
    char *buf;
    size_t len;
    *out = NULL;
    bllm_status st = bllm_read_text_file(path, JSON_MAX_BYTES, &buf, &len);
    if (st != BLLM_OK)
        return st;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(buf, &end, 0);
    if (!j) {
        size_t at = end ? (size_t)(end - buf) : 0;
        free(buf);
        return bllm_fail(BLLM_ERR_FORMAT, "'%s' is not valid JSON (near byte %zu)", path, at);
    }
    free(buf);
    *out = j;
    return BLLM_OK;
}

static const cJSON *jget(const cJSON *o, const char *k) {
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

/* Integer member: absent or null keeps *v; anything but a non-negative
 * integer below 2^31 is a format error. */
static bllm_status json_u32(const cJSON *o, const char *k, const char *file, uint32_t *v) {
    const cJSON *j = jget(o, k);
    if (!j || cJSON_IsNull(j))
        return BLLM_OK;
    if (!cJSON_IsNumber(j) || j->valuedouble < 0 || j->valuedouble > 2147483647.0 ||
        j->valuedouble != floor(j->valuedouble))
        return bllm_fail(BLLM_ERR_FORMAT, "%s: '%s' is not a non-negative integer", file, k);
    *v = (uint32_t)j->valuedouble;
    return BLLM_OK;
}

static bllm_status json_f32(const cJSON *o, const char *k, const char *file, float *v) {
    const cJSON *j = jget(o, k);
    if (!j || cJSON_IsNull(j))
        return BLLM_OK;
    if (!cJSON_IsNumber(j))
        return bllm_fail(BLLM_ERR_FORMAT, "%s: '%s' is not a number", file, k);
    *v = (float)j->valuedouble;
    return BLLM_OK;
}

/* A token given as "text" or as an AddedToken object {"content": ...}. */
static const char *token_text(const cJSON *j) {
    if (cJSON_IsString(j))
        return j->valuestring;
    const cJSON *c = jget(j, "content");
    return cJSON_IsString(c) ? c->valuestring : NULL;
}

/* ------------------------------------------------------------ config.json */

static bllm_status read_config(const cJSON *cfg, const char *dir, bllm_llama_hparams *hp,
                               bool *tied) {
    const char *F = "config.json";
    const cJSON *mt = jget(cfg, "model_type");
    const char *model_type = cJSON_IsString(mt) ? mt->valuestring : "";
    bool mistral = strcmp(model_type, "mistral") == 0;
    if (strcmp(model_type, "llama") != 0 && !mistral)
        return bllm_fail(BLLM_ERR_UNSUPPORTED, "%s/%s: model_type '%.40s' is not supported "
                         "(llama and mistral are)", dir, F, model_type);
    static const char *no[] = {"attention_bias", "mlp_bias"};
    for (int k = 0; k < 2; k++)
        if (cJSON_IsTrue(jget(cfg, no[k])))
            return bllm_fail(BLLM_ERR_UNSUPPORTED, "%s/%s: %s is set; biases are not supported",
                             dir, F, no[k]);
    const cJSON *act = jget(cfg, "hidden_act");
    if (cJSON_IsString(act) && strcmp(act->valuestring, "silu") != 0)
        return bllm_fail(BLLM_ERR_UNSUPPORTED, "%s/%s: hidden_act '%.32s' is not supported (silu)",
                         dir, F, act->valuestring);
    memset(hp, 0, sizeof(*hp));
    /* LlamaConfig's defaults for what a config may omit. */
    hp->max_seq_len = 2048;
    hp->rope_theta = 10000.0f;
    hp->norm_eps = 1e-6f;
    hp->rope_factor = 1.0f;
    *tied = false;
    static const char *req[] = {"hidden_size", "intermediate_size", "num_hidden_layers",
                                "num_attention_heads"};
    uint32_t *dst[] = {&hp->dim, &hp->hidden_dim, &hp->n_layers, &hp->n_heads};
    bllm_status st;
    for (int k = 0; k < 4; k++) {
        if (!jget(cfg, req[k]))
            return bllm_fail(BLLM_ERR_FORMAT, "%s/%s: '%s' is missing", dir, F, req[k]);
        if ((st = json_u32(cfg, req[k], F, dst[k])))
            return st;
    }
    if (hp->n_heads == 0)
        return bllm_fail(BLLM_ERR_FORMAT, "%s/%s: num_attention_heads is 0", dir, F);
    hp->n_kv_heads = hp->n_heads;
    hp->head_dim = hp->dim / hp->n_heads;
    if ((st = json_u32(cfg, "num_key_value_heads", F, &hp->n_kv_heads)) ||
        (st = json_u32(cfg, "head_dim", F, &hp->head_dim)) ||
        (st = json_u32(cfg, "max_position_embeddings", F, &hp->max_seq_len)) ||
        (st = json_u32(cfg, "vocab_size", F, &hp->n_vocab)) ||
        (st = json_f32(cfg, "rope_theta", F, &hp->rope_theta)) ||
        (st = json_f32(cfg, "rms_norm_eps", F, &hp->norm_eps)))
        return st;
    if (mistral) {
        /* Sliding-window attention is not implemented: cap the context at
         * the window, where full attention is exactly equivalent. */
        uint32_t win = 0;
        if ((st = json_u32(cfg, "sliding_window", F, &win)))
            return st;
        if (win && win < hp->max_seq_len)
            hp->max_seq_len = win;
    }
    const cJSON *tie = jget(cfg, "tie_word_embeddings");
    if (tie && !cJSON_IsNull(tie)) {
        if (!cJSON_IsBool(tie))
            return bllm_fail(BLLM_ERR_FORMAT, "%s/%s: tie_word_embeddings is not a bool", dir, F);
        *tied = cJSON_IsTrue(tie);
    }
    /* Newer configs nest RoPE settings in rope_parameters. */
    const cJSON *rp = jget(cfg, "rope_parameters");
    if (cJSON_IsObject(rp) && (st = json_f32(rp, "rope_theta", F, &hp->rope_theta)))
        return st;
    const cJSON *rs = jget(cfg, "rope_scaling");
    if (!cJSON_IsObject(rs) && cJSON_IsObject(rp))
        rs = rp;
    if (cJSON_IsObject(rs)) {
        const cJSON *ty = jget(rs, "rope_type");
        if (!cJSON_IsString(ty))
            ty = jget(rs, "type");
        const char *type = cJSON_IsString(ty) ? ty->valuestring : "default";
        float factor = 1.0f;
        if ((st = json_f32(rs, "factor", F, &factor)))
            return st;
        if (strcmp(type, "default") == 0 || strcmp(type, "none") == 0) {
            /* no scaling */
        } else if (strcmp(type, "linear") == 0) {
            hp->rope_scaling = BLLM_ROPE_SCALING_LINEAR;
            hp->rope_factor = factor;
        } else if (strcmp(type, "llama3") == 0) {
            hp->rope_scaling = BLLM_ROPE_SCALING_LLAMA3;
            hp->rope_factor = factor;
            hp->rope_low_freq_factor = 1.0f;
            hp->rope_high_freq_factor = 4.0f;
            hp->rope_orig_max_seq = 8192;
            if ((st = json_f32(rs, "low_freq_factor", F, &hp->rope_low_freq_factor)) ||
                (st = json_f32(rs, "high_freq_factor", F, &hp->rope_high_freq_factor)) ||
                (st = json_u32(rs, "original_max_position_embeddings", F, &hp->rope_orig_max_seq)))
                return st;
        } else {
            return bllm_fail(BLLM_ERR_UNSUPPORTED, "%s/%s: rope_scaling type '%.32s' is not "
                             "supported (linear and llama3 are)", dir, F, type);
        }
    }
    const char *base = strrchr(dir, '/');
    base = base && base[1] ? base + 1 : dir;
    snprintf(hp->name, sizeof(hp->name), "%s", base);
    return BLLM_OK;
}

/* ------------------------------------------------------------ tokenizers */

typedef struct {
    uint32_t n;
    const char **tok;
    size_t *len;
    int32_t *type;
    float *score;
} vocab_build;

static bllm_status vocab_set(bllm_arena *a, vocab_build *v, uint32_t id, const char *s, int32_t type) {
    size_t n = strlen(s);
    if (!(v->tok[id] = bllm_arena_strndup(a, s, n)))
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    v->len[id] = n;
    v->type[id] = type;
    return BLLM_OK;
}

static bool is_llama3_regex(const char *re) {
    static const char *llama3 =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}"
        "\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    return strcmp(re, llama3) == 0;
}

/* Names the pre-tokenizer the way llama.cpp's tokenizer.ggml.pre does, for
 * the layouts we can recognize; NULL when the tokenizer is not byte-level
 * BPE at all (*why says what it is). */
static const char *classify_pre(const cJSON *tj, bool *add_prefix_space, const char **why) {
    *add_prefix_space = false;
    const cJSON *model = jget(tj, "model");
    const cJSON *mtype = jget(model, "type");
    if (!cJSON_IsString(mtype) || strcmp(mtype->valuestring, "BPE") != 0) {
        *why = "its model is not BPE";
        return NULL;
    }
    if (cJSON_IsTrue(jget(model, "byte_fallback"))) {
        *why = "it is a SentencePiece-style BPE with byte fallback";
        return NULL;
    }
    const cJSON *pre = jget(tj, "pre_tokenizer");
    const cJSON *list[8];
    int n = 0;
    const cJSON *ptype = jget(pre, "type");
    if (cJSON_IsString(ptype) && strcmp(ptype->valuestring, "Sequence") == 0) {
        const cJSON *arr = jget(pre, "pretokenizers");
        for (const cJSON *e = cJSON_IsArray(arr) ? arr->child : NULL; e && n < 8; e = e->next)
            list[n++] = e;
    } else if (cJSON_IsObject(pre)) {
        list[n++] = pre;
    }
    const cJSON *bl = NULL, *digits = NULL, *split = NULL;
    int others = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *t = jget(list[i], "type");
        const char *ty = cJSON_IsString(t) ? t->valuestring : "";
        if (strcmp(ty, "ByteLevel") == 0)
            bl = list[i];
        else if (strcmp(ty, "Digits") == 0)
            digits = list[i];
        else if (strcmp(ty, "Split") == 0)
            split = list[i];
        else
            others++;
    }
    if (!bl) {
        *why = "it has no ByteLevel pre-tokenizer";
        return NULL;
    }
    *add_prefix_space = cJSON_IsTrue(jget(bl, "add_prefix_space"));
    const cJSON *ur = jget(bl, "use_regex");
    bool use_regex = !ur || cJSON_IsTrue(ur);
    *why = "its pre-tokenizer sequence is not one of gpt2, llama3 or smollm";
    if (others)
        return "";
    if (n == 1 && use_regex)
        return "gpt2";
    if (n == 2 && digits && use_regex && cJSON_IsTrue(jget(digits, "individual_digits")))
        return "smollm";
    if (n == 2 && split && !use_regex) {
        const cJSON *re = jget(jget(split, "pattern"), "Regex");
        if (cJSON_IsString(re) && is_llama3_regex(re->valuestring))
            return "llama3";
    }
    return "";
}

/* add_bos when tokenizer_config.json does not say: the post-processor
 * template starting with the BOS token (Llama-3 style). */
static bool template_adds_bos(const cJSON *tj, const char *bos) {
    if (!bos)
        return false;
    const cJSON *pp = jget(tj, "post_processor");
    const cJSON *cands[8];
    int n = 0;
    const cJSON *ty = jget(pp, "type");
    if (cJSON_IsString(ty) && strcmp(ty->valuestring, "Sequence") == 0) {
        const cJSON *arr = jget(pp, "processors");
        for (const cJSON *e = cJSON_IsArray(arr) ? arr->child : NULL; e && n < 8; e = e->next)
            cands[n++] = e;
    } else if (pp) {
        cands[n++] = pp;
    }
    for (int i = 0; i < n; i++) {
        const cJSON *t = jget(cands[i], "type");
        if (!cJSON_IsString(t) || strcmp(t->valuestring, "TemplateProcessing") != 0)
            continue;
        const cJSON *single = jget(cands[i], "single");
        const cJSON *first = cJSON_IsArray(single) ? single->child : NULL;
        const cJSON *id = jget(jget(first, "SpecialToken"), "id");
        if (cJSON_IsString(id) && strcmp(id->valuestring, bos) == 0)
            return true;
    }
    return false;
}

static bllm_status read_bpe_json(bllm_source *s, const cJSON *tj, const char *path, const char *pre) {
    bllm_tokenizer_spec *t = &s->tok;
    bllm_arena *a = &s->arena;
    const cJSON *model = jget(tj, "model");
    const cJSON *vocab = jget(model, "vocab");
    const cJSON *merges = jget(model, "merges");
    const cJSON *added = jget(tj, "added_tokens");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges))
        return bllm_fail(BLLM_ERR_FORMAT, "'%s': model.vocab or model.merges is missing", path);
    /* Ids decide the vocabulary size; holes become unused [PADn] tokens. */
    uint64_t max_id = 0;
    bool any = false;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= (1 << 24) ||
            e->valuedouble != floor(e->valuedouble))
            return bllm_fail(BLLM_ERR_FORMAT, "'%s': vocab entry '%.40s' has an invalid id", path,
                             e->string);
        if ((uint64_t)e->valuedouble >= max_id)
            max_id = (uint64_t)e->valuedouble;
        any = true;
    }
    for (const cJSON *e = cJSON_IsArray(added) ? added->child : NULL; e; e = e->next) {
        const cJSON *id = jget(e, "id");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= (1 << 24) ||
            !cJSON_IsString(jget(e, "content")))
            return bllm_fail(BLLM_ERR_FORMAT, "'%s': an added_tokens entry is invalid", path);
        if ((uint64_t)id->valuedouble >= max_id)
            max_id = (uint64_t)id->valuedouble;
        any = true;
    }
    if (!any)
        return bllm_fail(BLLM_ERR_FORMAT, "'%s': the vocabulary is empty", path);
    uint32_t n = (uint32_t)max_id + 1;
    vocab_build v = {n, bllm_arena_alloc(a, n * sizeof(char *)), bllm_arena_alloc(a, n * sizeof(size_t)),
                     bllm_arena_alloc(a, n * sizeof(int32_t)), NULL};
    if (!v.tok || !v.len || !v.type)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    bllm_status st;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        uint32_t id = (uint32_t)e->valuedouble;
        if (v.tok[id])
            return bllm_fail(BLLM_ERR_FORMAT, "'%s': id %u is used by two vocab entries", path, id);
        if ((st = vocab_set(a, &v, id, e->string, BLLM_TOKTYPE_NORMAL)))
            return st;
    }
    for (const cJSON *e = cJSON_IsArray(added) ? added->child : NULL; e; e = e->next) {
        uint32_t id = (uint32_t)jget(e, "id")->valuedouble;
        int32_t type = cJSON_IsTrue(jget(e, "special")) ? BLLM_TOKTYPE_CONTROL : BLLM_TOKTYPE_USER_DEFINED;
        if ((st = vocab_set(a, &v, id, jget(e, "content")->valuestring, type)))
            return st;
    }
    for (uint32_t i = 0; i < n; i++)
        if (!v.tok[i]) {
            char pad[32];
            snprintf(pad, sizeof(pad), "[PAD%u]", i);
            if ((st = vocab_set(a, &v, i, pad, BLLM_TOKTYPE_UNUSED)))
                return st;
        }
    int nm = cJSON_GetArraySize(merges);
    const char **mg = bllm_arena_alloc(a, (size_t)(nm ? nm : 1) * sizeof(char *));
    size_t *ml = bllm_arena_alloc(a, (size_t)(nm ? nm : 1) * sizeof(size_t));
    if (!mg || !ml)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    int k = 0;
    for (const cJSON *e = merges->child; e; e = e->next, k++) {
        /* "a b" (older files) or ["a", "b"] (tokenizers >= 0.20). */
        if (cJSON_IsString(e)) {
            ml[k] = strlen(e->valuestring);
            mg[k] = bllm_arena_strndup(a, e->valuestring, ml[k]);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 &&
                   cJSON_IsString(e->child) && cJSON_IsString(e->child->next)) {
            size_t l1 = strlen(e->child->valuestring), l2 = strlen(e->child->next->valuestring);
            char *m = bllm_arena_alloc(a, l1 + l2 + 2);
            if (m) {
                memcpy(m, e->child->valuestring, l1);
                m[l1] = ' ';
                memcpy(m + l1 + 1, e->child->next->valuestring, l2);
            }
            mg[k] = m;
            ml[k] = l1 + l2 + 1;
        } else {
            return bllm_fail(BLLM_ERR_FORMAT, "'%s': merge #%d is neither \"a b\" nor [a, b]", path, k);
        }
        if (!mg[k])
            return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    }
    t->kind = BLLM_TOK_BPE;
    t->n_vocab = n;
    t->tokens = v.tok;
    t->token_lens = v.len;
    t->token_types = v.type;
    t->scores = NULL;
    t->n_merges = (uint32_t)nm;
    t->merges = mg;
    t->merge_lens = ml;
    if (!(t->pre = bllm_arena_strndup(a, pre, strlen(pre))))
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    t->unk_id = -1;
    const char *unk = token_text(jget(model, "unk_token"));
    if (unk)
        t->unk_id = bllm_source_find_token(t, unk);
    return BLLM_OK;
}

/* Added tokens of tokenizer.json placed after the SentencePiece pieces
 * (chat models add <|im_start|> and friends this way). */
static bllm_status append_added(bllm_source *s, const cJSON *tj, const char *path) {
    bllm_tokenizer_spec *t = &s->tok;
    const cJSON *added = jget(tj, "added_tokens");
    uint32_t extra = 0;
    for (const cJSON *e = cJSON_IsArray(added) ? added->child : NULL; e; e = e->next) {
        const cJSON *id = jget(e, "id");
        if (cJSON_IsNumber(id) && id->valuedouble >= t->n_vocab && cJSON_IsString(jget(e, "content"))) {
            if (id->valuedouble >= t->n_vocab + (1 << 16))
                return bllm_fail(BLLM_ERR_FORMAT, "'%s': added token id %g is implausible", path,
                                 id->valuedouble);
            uint32_t k = (uint32_t)id->valuedouble - t->n_vocab + 1;
            if (k > extra)
                extra = k;
        }
    }
    if (!extra)
        return BLLM_OK;
    uint32_t n = t->n_vocab + extra;
    vocab_build v = {n, bllm_arena_alloc(&s->arena, n * sizeof(char *)),
                     bllm_arena_alloc(&s->arena, n * sizeof(size_t)),
                     bllm_arena_alloc(&s->arena, n * sizeof(int32_t)),
                     bllm_arena_alloc(&s->arena, n * sizeof(float))};
    if (!v.tok || !v.len || !v.type || !v.score)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    memcpy(v.tok, t->tokens, t->n_vocab * sizeof(char *));
    memcpy(v.len, t->token_lens, t->n_vocab * sizeof(size_t));
    memcpy(v.type, t->token_types, t->n_vocab * sizeof(int32_t));
    memcpy(v.score, t->scores, t->n_vocab * sizeof(float));
    bllm_status st;
    for (const cJSON *e = added->child; e; e = e->next) {
        const cJSON *id = jget(e, "id");
        if (!cJSON_IsNumber(id) || id->valuedouble < t->n_vocab || !cJSON_IsString(jget(e, "content")))
            continue;
        int32_t type = cJSON_IsTrue(jget(e, "special")) ? BLLM_TOKTYPE_CONTROL : BLLM_TOKTYPE_USER_DEFINED;
        if ((st = vocab_set(&s->arena, &v, (uint32_t)id->valuedouble, jget(e, "content")->valuestring, type)))
            return st;
    }
    for (uint32_t i = t->n_vocab; i < n; i++)
        if (!v.tok[i])
            return bllm_fail(BLLM_ERR_FORMAT, "'%s': added tokens leave id %u unassigned", path, i);
    t->tokens = v.tok;
    t->token_lens = v.len;
    t->token_types = v.type;
    t->scores = v.score;
    t->n_vocab = n;
    return BLLM_OK;
}

static bool file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Special-token id: tokenizer_config.json's token text when it has the
 * key, else config.json's id (an int or a list whose first entry counts). */
static int32_t special_id(const bllm_tokenizer_spec *t, const cJSON *tcfg, const char *tkey,
                          const cJSON *cfg, const char *ckey, int32_t fallback) {
    const cJSON *j = jget(tcfg, tkey);
    if (j) {
        const char *s = token_text(j);
        return s ? bllm_source_find_token(t, s) : -1;
    }
    const cJSON *c = jget(cfg, ckey);
    if (cJSON_IsArray(c))
        c = c->child;
    if (cJSON_IsNumber(c) && c->valuedouble >= 0 && c->valuedouble < t->n_vocab)
        return (int32_t)c->valuedouble;
    return fallback;
}

static bllm_status read_tokenizer(bllm_source *s, const char *dir, const cJSON *cfg) {
    char path[4096];
    bllm_status st;
    cJSON *tj = NULL, *tcfg = NULL;
    snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
    if (file_exists(path)) {
        if ((st = load_json(path, &tcfg)) || (st = bllm_source_add_file(s, path)))
            goto out;
    }
    char tjpath[4096], spmpath[4096];
    snprintf(tjpath, sizeof(tjpath), "%s/tokenizer.json", dir);
    snprintf(spmpath, sizeof(spmpath), "%s/tokenizer.model", dir);
    bool has_tj = file_exists(tjpath), has_spm = file_exists(spmpath);
    const char *pre = NULL, *why = "";
    bool prefix_space = false;
    if (has_tj) {
        if ((st = load_json(tjpath, &tj)))
            goto out;
        pre = classify_pre(tj, &prefix_space, &why);
    }
    if (pre && *pre) {
        if ((st = bllm_source_add_file(s, tjpath)) || (st = read_bpe_json(s, tj, tjpath, pre)))
            goto out;
        s->tok.add_space_prefix = prefix_space;
    } else if (has_spm) {
        if ((st = bllm_source_add_file(s, spmpath)) ||
            (st = bllm_tokenizer_load_spm_model(spmpath, &s->tok_buf)))
            goto out;
        s->tok = s->tok_buf.spec;
        if (tj) {
            if ((st = bllm_source_add_file(s, tjpath)) || (st = append_added(s, tj, tjpath)))
                goto out;
        }
    } else if (has_tj) {
        st = bllm_fail(BLLM_ERR_UNSUPPORTED, "'%s' is not supported: %s (and there is no "
                       "tokenizer.model)", tjpath, why);
        goto out;
    } else {
        st = bllm_fail(BLLM_ERR_FORMAT, "'%s' has no tokenizer.json or tokenizer.model", dir);
        goto out;
    }
    bllm_tokenizer_spec *t = &s->tok;
    bool spm = t->kind == BLLM_TOK_SPM;
    t->bos_id = special_id(t, tcfg, "bos_token", cfg, "bos_token_id", spm ? t->bos_id : -1);
    t->eos_id = special_id(t, tcfg, "eos_token", cfg, "eos_token_id", spm ? t->eos_id : -1);
    t->pad_id = special_id(t, tcfg, "pad_token", cfg, "pad_token_id", spm ? t->pad_id : -1);
    if (jget(tcfg, "unk_token")) {
        const char *u = token_text(jget(tcfg, "unk_token"));
        t->unk_id = u ? bllm_source_find_token(t, u) : -1;
    }
    const cJSON *ab = jget(tcfg, "add_bos_token");
    if (cJSON_IsBool(ab))
        t->add_bos = cJSON_IsTrue(ab);
    else if (!spm)
        t->add_bos = t->bos_id >= 0 && template_adds_bos(tj, t->tokens[t->bos_id]);
    t->eot_id = bllm_source_guess_eot(t);
    const cJSON *ct = jget(tcfg, "chat_template");
    const char *tmpl = NULL;
    if (cJSON_IsString(ct)) {
        tmpl = ct->valuestring;
    } else if (cJSON_IsArray(ct)) { /* [{name, template}]: the default one */
        for (const cJSON *e = ct->child; e; e = e->next) {
            const cJSON *nm = jget(e, "name"), *tp = jget(e, "template");
            if (cJSON_IsString(nm) && cJSON_IsString(tp) && strcmp(nm->valuestring, "default") == 0)
                tmpl = tp->valuestring;
        }
    }
    if (tmpl && !(s->chat_template = bllm_arena_strndup(&s->arena, tmpl, strlen(tmpl))))
        st = bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    else
        st = BLLM_OK;
out:
    cJSON_Delete(tj);
    cJSON_Delete(tcfg);
    return st;
}

/* ------------------------------------------------------------ open */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bllm_status list_safetensors(const char *dir, char ***out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    DIR *d = opendir(dir);
    if (!d)
        return bllm_fail(BLLM_ERR_IO, "cannot list '%s'", dir);
    char **v = NULL;
    int n = 0;
    struct dirent *e;
    bllm_status st = BLLM_OK;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l <= 12 || strcmp(e->d_name + l - 12, ".safetensors") != 0 || e->d_name[0] == '.')
            continue;
        char **nv = realloc(v, (size_t)(n + 1) * sizeof(*v));
        char *p = malloc(strlen(dir) + l + 2);
        if (!nv || !p) {
            free(p);
            if (nv)
                v = nv;
            st = bllm_fail(BLLM_ERR_NOMEM, "out of memory");
            break;
        }
        v = nv;
        sprintf(p, "%s/%s", dir, e->d_name);
        v[n++] = p;
    }
    closedir(d);
    if (st == BLLM_OK && n == 0)
        st = bllm_fail(BLLM_ERR_FORMAT, "'%s' holds no *.safetensors files (PyTorch .bin "
                       "checkpoints are not supported)", dir);
    if (st != BLLM_OK) {
        for (int i = 0; i < n; i++)
            free(v[i]);
        free(v);
        return st;
    }
    qsort(v, (size_t)n, sizeof(*v), cmp_str);
    *out = v;
    *n_out = n;
    return BLLM_OK;
}

static bllm_status map_tensors(bllm_source *s, hf_impl *im, bool tied) {
    const bllm_safetensors *sf = im->st;
    mapped *m = calloc((size_t)(sf->n_tensors ? sf->n_tensors : 1), sizeof(*m));
    if (!m)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    int n = 0;
    bool has_lm_head = false;
    bllm_status st = BLLM_OK;
    for (int i = 0; i < sf->n_tensors && st == BLLM_OK; i++) {
        const bllm_st_tensor *t = &sf->tensors[i];
        int layer;
        map_result r = map_name(t->name, m[n].name, sizeof(m[n].name), &m[n].order, &layer);
        if (r == MAP_SKIP)
            continue;
        if (r == MAP_UNKNOWN) {
            st = bllm_fail(BLLM_ERR_UNSUPPORTED, "tensor '%s' has no place in a Llama model "
                           "(biases and other architectures are not supported)", t->name);
            break;
        }
        if (layer >= 0 && (uint32_t)layer >= s->hp.n_layers) {
            st = bllm_fail(BLLM_ERR_FORMAT, "tensor '%s' is beyond num_hidden_layers = %u",
                           t->name, s->hp.n_layers);
            break;
        }
        if (t->dtype != BLLM_ST_F32 && t->dtype != BLLM_ST_F16 && t->dtype != BLLM_ST_BF16) {
            st = bllm_fail(BLLM_ERR_UNSUPPORTED, "tensor '%s' has dtype %s (F32, F16 and BF16 "
                           "are supported)", t->name, bllm_st_dtype_name(t->dtype));
            break;
        }
        if (strcmp(t->name, "lm_head.weight") == 0) {
            has_lm_head = true;
            if (tied)
                continue; /* the embedding serves as the output */
        }
        m[n].t = t;
        n++;
    }
    if (st == BLLM_OK && !tied && !has_lm_head)
        st = bllm_fail(BLLM_ERR_FORMAT, "lm_head.weight is missing and tie_word_embeddings is "
                       "false");
    if (st == BLLM_OK) {
        qsort(m, (size_t)n, sizeof(*m), cmp_mapped);
        im->t = calloc((size_t)(n ? n : 1), sizeof(*im->t));
        im->permute_heads = calloc((size_t)(n ? n : 1), sizeof(int));
        if (!im->t || !im->permute_heads)
            st = bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n && st == BLLM_OK; i++) {
        const bllm_st_tensor *t = m[i].t;
        if (t->ndim < 1 || t->ndim > 2) {
            st = bllm_fail(BLLM_ERR_FORMAT, "tensor '%s' has %d dimensions", t->name, t->ndim);
            break;
        }
        int idx = bllm_source_add_tensor(s, m[i].name, t->ndim, t->shape, bllm_st_dtype_name(t->dtype));
        if (idx < 0) {
            st = BLLM_ERR_FORMAT;
            break;
        }
        im->t[idx] = t;
        size_t l = strlen(m[i].name);
        bool q = l > 14 && strcmp(m[i].name + l - 14, ".attn_q.weight") == 0;
        bool k = l > 14 && strcmp(m[i].name + l - 14, ".attn_k.weight") == 0;
        if (q || k) {
            int heads = (int)(q ? s->hp.n_heads : s->hp.n_kv_heads);
            /* Shapes are validated later; the permutation itself needs
             * whole, even-sized heads. */
            if (t->ndim != 2 || heads <= 0 || t->shape[0] != (int64_t)heads * s->hp.head_dim ||
                s->hp.head_dim % 2) {
                st = bllm_fail(BLLM_ERR_FORMAT, "tensor '%s' has %lld rows, not %d heads of %u "
                               "(even) dims", t->name, (long long)t->shape[0], heads, s->hp.head_dim);
                break;
            }
            im->permute_heads[idx] = heads;
        }
    }
    free(m);
    return st;
}

bllm_status bllm_source_open_hf(const char *dir, bllm_source *s) {
    hf_impl *im = calloc(1, sizeof(*im));
    if (!im)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    s->ops = &hf_ops;
    s->impl = im;
    char path[4096];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    if (!file_exists(path))
        return bllm_fail(BLLM_ERR_FORMAT, "'%s' has no config.json (not an HF checkpoint folder)", dir);
    cJSON *cfg = NULL;
    bool tied = false;
    char **files = NULL;
    int n_files = 0;
    bllm_status st;
    if ((st = load_json(path, &cfg)) || (st = bllm_source_add_file(s, path)) ||
        (st = read_config(cfg, dir, &s->hp, &tied)) ||
        (st = list_safetensors(dir, &files, &n_files)))
        goto out;
    for (int i = 0; i < n_files && st == BLLM_OK; i++)
        st = bllm_source_add_file(s, files[i]);
    if (st || (st = bllm_safetensors_open((const char *const *)files, n_files, &im->st)) ||
        (st = map_tensors(s, im, tied)) || (st = read_tokenizer(s, dir, cfg)))
        goto out;
    if (s->hp.n_vocab == 0)
        s->hp.n_vocab = s->tok.n_vocab;
out:
    for (int i = 0; i < n_files; i++)
        free(files[i]);
    free(files);
    cJSON_Delete(cfg);
    return st;
}
