#include "models/llama_hparams.h"

#include <math.h>
#include <string.h>

#include "runtime/error.h"
#include "runtime/format/stb.h"

bllm_status bllm_llama_hparams_to_stb(const bllm_llama_hparams *hp, bllm_stb_writer *w)
{
    bllm_status s = bllm_llama_hparams_check(hp);
#define U32(k, v) if (!s) s = bllm_stb_set_u32(w, "llama." k, v)
#define F32(k, v) if (!s) s = bllm_stb_set_f32(w, "llama." k, v)
    U32("vocab_size", hp->n_vocab);
    U32("dim", hp->dim);
    U32("hidden_dim", hp->hidden_dim);
    U32("n_layers", hp->n_layers);
    U32("n_heads", hp->n_heads);
    U32("n_kv_heads", hp->n_kv_heads);
    U32("head_dim", hp->head_dim);
    U32("max_seq_len", hp->max_seq_len);
    F32("rope_theta", hp->rope_theta);
    F32("norm_eps", hp->norm_eps);
    U32("rope_scaling.type", (uint32_t)hp->rope_scaling);
    if (hp->rope_scaling != BLLM_ROPE_SCALING_NONE) {
        F32("rope_scaling.factor", hp->rope_factor);
    }
    if (hp->rope_scaling == BLLM_ROPE_SCALING_LLAMA3) {
        F32("rope_scaling.low_freq_factor", hp->rope_low_freq_factor);
        F32("rope_scaling.high_freq_factor", hp->rope_high_freq_factor);
        U32("rope_scaling.original_max_seq_len", hp->rope_orig_max_seq);
    }
#undef U32
#undef F32
    return s;
}

static bllm_status need(bllm_status s, const char *key)
{
    if (s == BLLM_ERR_NOT_FOUND)
        return bllm_fail(BLLM_ERR_FORMAT, "model metadata lacks required key '%s'", key);
    return s;
}

bllm_status bllm_llama_hparams_from_stb(const bllm_stb_file *f, bllm_llama_hparams *hp)
{
    memset(hp, 0, sizeof *hp);
    bllm_status s = BLLM_OK;
    const char *name;
    size_t len;
    if (!bllm_stb_get_str(f, "general.name", &name, &len)) {
        if (len >= sizeof hp->name)
            len = sizeof hp->name - 1;
        memcpy(hp->name, name, len);
    }
#define U32(k, dst) if (!s) s = need(bllm_stb_get_u32(f, "llama." k, &dst), "llama." k)
#define F32(k, dst) if (!s) s = need(bllm_stb_get_f32(f, "llama." k, &dst), "llama." k)
    U32("vocab_size", hp->n_vocab);
    U32("dim", hp->dim);
    U32("hidden_dim", hp->hidden_dim);
    U32("n_layers", hp->n_layers);
    U32("n_heads", hp->n_heads);
    U32("n_kv_heads", hp->n_kv_heads);
    U32("head_dim", hp->head_dim);
    U32("max_seq_len", hp->max_seq_len);
    F32("rope_theta", hp->rope_theta);
    F32("norm_eps", hp->norm_eps);
    uint32_t scaling = 0;
    if (!s) {
        bllm_status t = bllm_stb_get_u32(f, "llama.rope_scaling.type", &scaling);
        if (t && t != BLLM_ERR_NOT_FOUND)
            s = t;
    }
    hp->rope_scaling = (bllm_rope_scaling)scaling;
    if (scaling > BLLM_ROPE_SCALING_LLAMA3 && !s)
        s = bllm_fail(BLLM_ERR_UNSUPPORTED, "unknown RoPE scaling type %u", scaling);
    if (scaling != BLLM_ROPE_SCALING_NONE)
        F32("rope_scaling.factor", hp->rope_factor);
    if (scaling == BLLM_ROPE_SCALING_LLAMA3) {
        F32("rope_scaling.low_freq_factor", hp->rope_low_freq_factor);
        F32("rope_scaling.high_freq_factor", hp->rope_high_freq_factor);
        U32("rope_scaling.original_max_seq_len", hp->rope_orig_max_seq);
    }
#undef U32
#undef F32
    if (!s)
        s = bllm_llama_hparams_check(hp);
    return s;
}

bllm_status bllm_llama_hparams_check(const bllm_llama_hparams *hp)
{
    /* Limits are generous (well past 400B-class models) but keep products of
     * sizes far from overflow and reject garbage early. */
    if (hp->n_vocab < 2 || hp->n_vocab > (1u << 22))
        return bllm_fail(BLLM_ERR_FORMAT, "absurd vocabulary size %u", hp->n_vocab);
    if (hp->dim < 1 || hp->dim > 65536 || hp->hidden_dim < 1 || hp->hidden_dim > 262144)
        return bllm_fail(BLLM_ERR_FORMAT, "absurd model width (dim %u, hidden_dim %u)", hp->dim, hp->hidden_dim);
    if (hp->n_layers < 1 || hp->n_layers > 1024)
        return bllm_fail(BLLM_ERR_FORMAT, "absurd layer count %u", hp->n_layers);
    if (hp->n_heads < 1 || hp->n_kv_heads < 1 || hp->n_heads > 1024 || hp->n_heads % hp->n_kv_heads)
        return bllm_fail(BLLM_ERR_FORMAT, "head counts %u/%u: query heads must be a multiple of KV heads",
                         hp->n_heads, hp->n_kv_heads);
    if (hp->head_dim < 2 || hp->head_dim > 1024 || hp->head_dim % 2)
        return bllm_fail(BLLM_ERR_FORMAT, "head_dim %u must be even and at most 1024", hp->head_dim);
    if (hp->max_seq_len < 1 || hp->max_seq_len > (1u << 24))
        return bllm_fail(BLLM_ERR_FORMAT, "absurd context length %u", hp->max_seq_len);
    if (!isfinite(hp->rope_theta) || hp->rope_theta <= 1.0f)
        return bllm_fail(BLLM_ERR_FORMAT, "bad RoPE theta %g", hp->rope_theta);
    if (!isfinite(hp->norm_eps) || hp->norm_eps <= 0.0f || hp->norm_eps > 0.1f)
        return bllm_fail(BLLM_ERR_FORMAT, "bad RMSNorm epsilon %g", hp->norm_eps);
    if (hp->rope_scaling != BLLM_ROPE_SCALING_NONE && (!isfinite(hp->rope_factor) || hp->rope_factor <= 0.0f))
        return bllm_fail(BLLM_ERR_FORMAT, "bad RoPE scaling factor %g", hp->rope_factor);
    if (hp->rope_scaling == BLLM_ROPE_SCALING_LLAMA3 &&
        (!(hp->rope_high_freq_factor > hp->rope_low_freq_factor) || hp->rope_low_freq_factor <= 0.0f ||
         hp->rope_orig_max_seq == 0))
        return bllm_fail(BLLM_ERR_FORMAT, "bad Llama-3 RoPE scaling parameters");
    return BLLM_OK;
}
