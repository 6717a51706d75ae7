/* The public model and context API: glue between the .stb file, the
 * tokenizer, the Llama forward pass and the thread pool. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bllm.h"
#include "kernels/kernels.h"
#include "models/llama.h"
#include "runtime/error.h"
#include "runtime/format/stb.h"
#include "runtime/threadpool.h"
#include "tokenizer/tokenizer.h"

/* Tokens per internal forward step: big enough for GEMM efficiency, small
 * enough that scratch buffers stay a few MB. */
#define BLLM_MAX_BATCH 64

struct bllm_model {
    bllm_stb_file *file;
    bllm_llama_weights weights;
    bllm_tokenizer *tokenizer;
    bllm_model_info info;
    char *arch, *chat_template;
    _Atomic uint64_t n_evals, n_tokens; /* forward evaluations run, and their tokens */
};

struct bllm_context {
    bllm_model *model;
    bllm_llama_state *state;
    bllm_pool *pool;
    bool own_pool; /* else borrowed from another context (share_threads) */
    int n_ctx, pos;
};

static char *meta_strdup(const bllm_stb_file *f, const char *key)
{
    const char *s;
    size_t len;
    if (bllm_stb_get_str(f, key, &s, &len))
        return NULL;
    return strndup(s, len);
}

bllm_status bllm_model_load(const char *path, const bllm_load_params *params, bllm_model **out)
{
    *out = NULL;
    if (!path)
        return bllm_fail(BLLM_ERR_ARG, "no model path given");
    if (!bllm_kernels())
        return bllm_fail(BLLM_ERR_UNSUPPORTED, "no usable kernel set (check BLLM_KERNELS)");
    bllm_model *m = calloc(1, sizeof *m);
    if (!m)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    bool verify = params && params->verify_checksums;
    bllm_status s = params && params->map_file ? bllm_stb_open(path, verify, &m->file)
                                               : bllm_stb_load(path, verify, &m->file);
    if (!s) {
        m->arch = meta_strdup(m->file, "general.architecture");
        if (!m->arch)
            s = bllm_fail(BLLM_ERR_FORMAT, "%s: metadata lacks general.architecture", path);
        else if (strcmp(m->arch, "llama"))
            s = bllm_fail(BLLM_ERR_UNSUPPORTED, "%s: architecture '%s' is not supported (llama only)", path, m->arch);
    }
    bllm_llama_hparams hp;
    if (!s)
        s = bllm_llama_hparams_from_stb(m->file, &hp);
    if (!s)
        s = bllm_llama_bind(m->file, &hp, &m->weights);
    if (!s) {
        bllm_tokenizer_spec spec;
        s = bllm_tokenizer_spec_from_stb(m->file, &spec);
        if (!s) {
            if (spec.n_vocab != hp.n_vocab)
                s = bllm_fail(BLLM_ERR_FORMAT, "%s: tokenizer has %u tokens, the model %u", path, spec.n_vocab,
                              hp.n_vocab);
            else
                s = bllm_tokenizer_new(&spec, &m->tokenizer);
            bllm_tokenizer_spec_release(&spec);
        }
    }
    if (s) {
        bllm_model_free(m);
        return s;
    }
    m->chat_template = meta_strdup(m->file, "tokenizer.chat_template");
    bllm_model_info *info = &m->info;
    info->architecture = m->arch;
    info->name = m->weights.hp.name;
    info->n_vocab = (int)hp.n_vocab;
    info->dim = (int)hp.dim;
    info->hidden_dim = (int)hp.hidden_dim;
    info->n_layers = (int)hp.n_layers;
    info->n_heads = (int)hp.n_heads;
    info->n_kv_heads = (int)hp.n_kv_heads;
    info->head_dim = (int)hp.head_dim;
    info->max_seq_len = (int)hp.max_seq_len;
    info->rope_theta = hp.rope_theta;
    info->norm_eps = hp.norm_eps;
    info->tied_embeddings = m->weights.tied;
    info->n_params = m->weights.n_params;
    info->file_bytes = bllm_stb_file_bytes(m->file);
    *out = m;
    return BLLM_OK;
}

bllm_status bllm_model_verify(const char *path)
{
    bllm_load_params lp = {.verify_checksums = true, .map_file = true};
    bllm_model *m = NULL;
    bllm_status s = bllm_model_load(path, &lp, &m);
    bllm_model_free(m);
    return s;
}

void bllm_model_free(bllm_model *m)
{
    if (!m)
        return;
    bllm_tokenizer_free(m->tokenizer);
    bllm_llama_unbind(&m->weights);
    bllm_stb_close(m->file);
    free(m->arch);
    free(m->chat_template);
    free(m);
}

const bllm_model_info *bllm_model_get_info(const bllm_model *m) { return &m->info; }
const char *bllm_model_chat_template(const bllm_model *m) { return m->chat_template; }

static const bllm_tokenizer_spec *spec_of(const bllm_model *m) { return bllm_tokenizer_get_spec(m->tokenizer); }
int32_t bllm_token_bos(const bllm_model *m) { return spec_of(m)->bos_id; }
int32_t bllm_token_eos(const bllm_model *m) { return spec_of(m)->eos_id; }
bool bllm_model_adds_bos(const bllm_model *m) { return spec_of(m)->add_bos && spec_of(m)->bos_id >= 0; }

bool bllm_token_is_eog(const bllm_model *m, int32_t token)
{
    const bllm_tokenizer_spec *sp = spec_of(m);
    return token >= 0 && (token == sp->eos_id || token == sp->eot_id);
}

bllm_status bllm_tokenize(const bllm_model *m, const char *text, size_t len, bool add_bos, bool parse_special,
                          int32_t *tokens, size_t cap, size_t *n_tokens)
{
    return bllm_tokenizer_encode(m->tokenizer, text, len, add_bos, parse_special, tokens, cap, n_tokens);
}

int bllm_token_to_text(const bllm_model *m, int32_t prev, int32_t token, char *buf, size_t cap)
{
    return bllm_tokenizer_decode_token(m->tokenizer, prev, token, buf, cap);
}

bllm_status bllm_context_new(bllm_model *m, const bllm_context_params *params, bllm_context **out)
{
    *out = NULL;
    int n_ctx = params ? params->n_ctx : 0;
    int n_threads = params ? params->n_threads : 0;
    const bllm_kv_type kv = params ? params->kv_type : BLLM_KV_DEFAULT;
    if (n_ctx < 0 || n_threads < 0)
        return bllm_fail(BLLM_ERR_ARG, "context size and thread count must not be negative");
    if (kv != BLLM_KV_DEFAULT && kv != BLLM_KV_F16 && kv != BLLM_KV_F32 && kv != BLLM_KV_Q8)
        return bllm_fail(BLLM_ERR_ARG, "unknown KV cache type %d", (int)kv);
    if (n_ctx == 0)
        n_ctx = m->info.max_seq_len;
    if (n_ctx > m->info.max_seq_len)
        return bllm_fail(BLLM_ERR_ARG, "context %d exceeds the model's trained length %d", n_ctx,
                         m->info.max_seq_len);
    if (n_threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)n : 1;
    }
    bllm_context *c = calloc(1, sizeof *c);
    if (!c)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    c->model = m;
    c->n_ctx = n_ctx;
    bllm_status s = BLLM_OK;
    if (params && params->share_threads) {
        if (params->share_threads->model != m) {
            bllm_context_free(c);
            return bllm_fail(BLLM_ERR_ARG, "share_threads names a context of another model");
        }
        c->pool = params->share_threads->pool;
    } else {
        s = bllm_pool_new(n_threads, &c->pool);
        c->own_pool = true;
    }
    if (!s)
        s = bllm_llama_state_new(&m->weights.hp, n_ctx, BLLM_MAX_BATCH, kv == BLLM_KV_DEFAULT ? BLLM_KV_F16 : kv,
                                  &c->state);
    if (s) {
        bllm_context_free(c);
        return s;
    }
    *out = c;
    return BLLM_OK;
}

void bllm_context_free(bllm_context *c)
{
    if (!c)
        return;
    bllm_llama_state_free(c->state);
    if (c->pool && c->own_pool)
        bllm_pool_free(c->pool);
    free(c);
}

int bllm_context_n_ctx(const bllm_context *c) { return c->n_ctx; }
int bllm_context_pos(const bllm_context *c) { return c->pos; }
void bllm_context_reset(bllm_context *c) { c->pos = 0; }

bllm_status bllm_eval(bllm_context *c, const int32_t *tokens, int n, float *logits, bool all_logits)
{
    if (!tokens || n < 1)
        return bllm_fail(BLLM_ERR_ARG, "bllm_eval needs at least one token");
    bllm_status s = bllm_llama_forward(&c->model->weights, c->state, c->pool, tokens, n, c->pos, logits, all_logits);
    if (!s) {
        c->pos += n;
        atomic_fetch_add(&c->model->n_evals, 1);
        atomic_fetch_add(&c->model->n_tokens, (uint64_t)n);
    }
    return s;
}

bllm_status bllm_eval_batch(bllm_context *const *ctxs, const int32_t *tokens, int n, float *logits)
{
    if (!ctxs || !tokens || !logits || n < 1)
        return bllm_fail(BLLM_ERR_ARG, "bllm_eval_batch needs at least one context, its token and logits");
    bllm_model *m = ctxs[0]->model;
    for (int i = 0; i < n; i++) {
        if (ctxs[i]->model != m)
            return bllm_fail(BLLM_ERR_ARG, "bllm_eval_batch: context %d belongs to another model", i);
        if (ctxs[i]->state->kv != ctxs[0]->state->kv)
            return bllm_fail(BLLM_ERR_ARG, "bllm_eval_batch: contexts 0 and %d have different KV cache types", i);
        if (ctxs[i]->pos >= ctxs[i]->n_ctx)
            return bllm_fail(BLLM_ERR_CONTEXT, "bllm_eval_batch: context %d is full (%d tokens)", i, ctxs[i]->n_ctx);
        for (int j = 0; j < i; j++)
            if (ctxs[j] == ctxs[i])
                return bllm_fail(BLLM_ERR_ARG, "bllm_eval_batch: context %d appears twice", i);
    }
    const size_t V = (size_t)m->info.n_vocab;
    for (int done = 0; done < n;) {
        const int T = n - done < BLLM_MAX_BATCH ? n - done : BLLM_MAX_BATCH;
        bllm_llama_state *seq[BLLM_MAX_BATCH];
        int pos[BLLM_MAX_BATCH];
        for (int t = 0; t < T; t++)
            seq[t] = ctxs[done + t]->state, pos[t] = ctxs[done + t]->pos;
        bllm_status s = bllm_llama_forward_multi(&m->weights, seq, pos, T, ctxs[0]->pool, tokens + done,
                                                 logits + (size_t)done * V);
        if (s)
            return s;
        for (int t = 0; t < T; t++)
            ctxs[done + t]->pos++;
        atomic_fetch_add(&m->n_evals, 1);
        atomic_fetch_add(&m->n_tokens, (uint64_t)T);
        done += T;
    }
    return BLLM_OK;
}

void bllm_model_eval_counts(const bllm_model *m, uint64_t *evals, uint64_t *tokens)
{
    if (evals)
        *evals = atomic_load(&((bllm_model *)m)->n_evals);
    if (tokens)
        *tokens = atomic_load(&((bllm_model *)m)->n_tokens);
}
