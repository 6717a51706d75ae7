/* Random-weight Llama models of real shapes (see random_model.h). Values are
 * generated in fixed chunks, each from its own counter-based seed, so the
 * file is identical for any thread count and a 7B model costs one tensor of
 * memory. */
#include "runtime/eval/random_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/quant/rtn.h"
#include "runtime/error.h"
#include "runtime/format/blockq.h"
#include "runtime/format/stb.h"
#include "runtime/threadpool.h"
#include "tokenizer/tokenizer.h"

#ifndef BLLM_VERSION
#define BLLM_VERSION "0.1.0"
#endif

/* Shapes as published in each model's config.json. */
static const bllm_model_shape shapes[] = {
    {"llama2-7b",
     {.name = "random llama2-7b", .n_vocab = 32000, .dim = 4096, .hidden_dim = 11008, .n_layers = 32,
      .n_heads = 32, .n_kv_heads = 32, .head_dim = 128, .max_seq_len = 4096, .rope_theta = 10000.0f,
      .norm_eps = 1e-5f},
     false},
    {"tinyllama-1.1b",
     {.name = "random tinyllama-1.1b", .n_vocab = 32000, .dim = 2048, .hidden_dim = 5632, .n_layers = 22,
      .n_heads = 32, .n_kv_heads = 4, .head_dim = 64, .max_seq_len = 2048, .rope_theta = 10000.0f,
      .norm_eps = 1e-5f},
     false},
    {"smollm2-135m",
     {.name = "random smollm2-135m", .n_vocab = 49152, .dim = 576, .hidden_dim = 1536, .n_layers = 30,
      .n_heads = 9, .n_kv_heads = 3, .head_dim = 64, .max_seq_len = 8192, .rope_theta = 100000.0f,
      .norm_eps = 1e-5f},
     true},
};
enum { N_SHAPES = sizeof shapes / sizeof shapes[0] };

int bllm_model_shape_count(void) { return N_SHAPES; }

const bllm_model_shape *bllm_model_shape_at(int i) { return i >= 0 && i < N_SHAPES ? &shapes[i] : NULL; }

const bllm_model_shape *bllm_model_shape_find(const char *name)
{
    for (int i = 0; name && i < N_SHAPES; i++)
        if (strcmp(shapes[i].name, name) == 0)
            return &shapes[i];
    char known[256] = "";
    for (int i = 0; i < N_SHAPES; i++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "", shapes[i].name);
    bllm_fail(BLLM_ERR_ARG, "unknown model shape '%s' (known: %s)", name ? name : "(null)", known);
    return NULL;
}

/* ------------------------------------------------------------ tensor list */

static void put_desc(bllm_llama_tensor_desc *out, int cap, int *n, const char *name, int ndim, int64_t d0,
                     int64_t d1)
{
    if (out && *n < cap) {
        bllm_llama_tensor_desc *d = &out[*n];
        snprintf(d->name, sizeof d->name, "%s", name);
        d->ndim = ndim;
        d->dims[0] = d0;
        d->dims[1] = d1;
    }
    (*n)++;
}

int bllm_llama_tensor_list(const bllm_llama_hparams *hp, bool tied, bllm_llama_tensor_desc *out, int cap)
{
    int64_t dim = hp->dim, hidden = hp->hidden_dim, vocab = hp->n_vocab;
    int64_t q_dim = (int64_t)hp->n_heads * hp->head_dim, kv_dim = (int64_t)hp->n_kv_heads * hp->head_dim;
    int n = 0;
    char name[64];
    put_desc(out, cap, &n, "token_embd.weight", 2, vocab, dim);
    for (uint32_t l = 0; l < hp->n_layers; l++) {
#define T(x, nd, a, b) (snprintf(name, sizeof name, "blk.%u." x ".weight", l), put_desc(out, cap, &n, name, nd, a, b))
        T("attn_norm", 1, dim, 0);
        T("attn_q", 2, q_dim, dim);
        T("attn_k", 2, kv_dim, dim);
        T("attn_v", 2, kv_dim, dim);
        T("attn_output", 2, dim, q_dim);
        T("ffn_norm", 1, dim, 0);
        T("ffn_gate", 2, hidden, dim);
        T("ffn_up", 2, hidden, dim);
        T("ffn_down", 2, dim, hidden);
#undef T
    }
    put_desc(out, cap, &n, "output_norm.weight", 1, dim, 0);
    if (!tied)
        put_desc(out, cap, &n, "output.weight", 2, vocab, dim);
    return n;
}

int bllm_random_pb8_per_row(int cols) { return bllm_rtn_pb8_per_row(cols, 0.1f); }

static bool is_block_matrix(const bllm_llama_tensor_desc *d) { return d->ndim == 2 && !strncmp(d->name, "blk.", 4); }

/* The types of a model's tensors: matrices, and the embedding and head
 * when q8/q4 (else they follow the matrices); tied: no output.weight. */
typedef struct {
    bllm_type matrices, embed, head;
    bool tied;
} model_types;

/* The type a tensor is stored in: packed types only for blk.* matrices,
 * the embedding and head as asked (--embed-type, --head-type) or else as
 * below, vectors always f32. */
static bllm_type stored_type(const bllm_llama_tensor_desc *d, const model_types *mt)
{
    if (d->ndim == 1)
        return BLLM_TYPE_F32;
    bllm_type q = !strcmp(d->name, "output.weight")                       ? mt->head
                  : strcmp(d->name, "token_embd.weight")                   ? BLLM_TYPE_COUNT
                  : mt->tied && mt->head != BLLM_TYPE_COUNT ? mt->head : mt->embed;
    if (q != BLLM_TYPE_COUNT)
        return q;
    if (!bllm_type_is_packed(mt->matrices) || is_block_matrix(d))
        return mt->matrices;
    /* around packed matrices, as bllm-quantize writes them: the embedding
     * and head BLLM_BINARY_HEAD_TYPE, any other matrix f16 */
    return strcmp(d->name, "token_embd.weight") && strcmp(d->name, "output.weight") ? BLLM_TYPE_F16
                                                                                     : BLLM_BINARY_HEAD_TYPE;
}

static uint64_t desc_bytes(const bllm_llama_tensor_desc *d, const model_types *mt)
{
    bllm_type t = stored_type(d, mt);
    if (d->ndim == 1)
        return bllm_type_tensor_bytes(t, 1, (uint64_t)d->dims[0]);
    return bllm_type_tensor_bytes(t, (uint64_t)d->dims[0], (uint64_t)d->dims[1]);
}

/* Bytes of the pb8 companion "X.salient" of d, 0 when it has none. */
static uint64_t companion_bytes(const bllm_llama_tensor_desc *d, const model_types *mt)
{
    if (stored_type(d, mt) != BLLM_TYPE_PB8)
        return 0;
    uint64_t rows = (uint64_t)d->dims[0];
    return bllm_pb8_salient_bytes(rows, rows * (uint64_t)bllm_random_pb8_per_row((int)d->dims[1]));
}

uint64_t bllm_llama_tensor_bytes(const bllm_llama_hparams *hp, bool tied, bllm_type type)
{
    int n = bllm_llama_tensor_list(hp, tied, NULL, 0);
    bllm_llama_tensor_desc *d = malloc((size_t)n * sizeof *d);
    if (!d)
        return 0;
    bllm_llama_tensor_list(hp, tied, d, n);
    const model_types mt = {type, BLLM_TYPE_COUNT, BLLM_TYPE_COUNT, tied};
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        total += (desc_bytes(&d[i], &mt) + 63) / 64 * 64; /* the writer aligns each tensor */
        total += (companion_bytes(&d[i], &mt) + 63) / 64 * 64;
    }
    free(d);
    return total;
}

/* -------------------------------------------------------------- tokenizer */

bllm_status bllm_placeholder_tokenizer_to_stb(uint32_t n_vocab, struct bllm_stb_writer *w)
{
    if (n_vocab < 259)
        return bllm_fail(BLLM_ERR_ARG, "placeholder tokenizer needs at least 259 tokens, got %u", n_vocab);
    /* Pieces live in one buffer: at most "tok4294967295" + NUL each. */
    char *text = malloc((size_t)n_vocab * 16);
    const char **tokens = malloc((size_t)n_vocab * sizeof *tokens);
    size_t *lens = malloc((size_t)n_vocab * sizeof *lens);
    float *scores = malloc((size_t)n_vocab * sizeof *scores);
    int32_t *types = malloc((size_t)n_vocab * sizeof *types);
    bllm_status s = BLLM_OK;
    if (!text || !tokens || !lens || !scores || !types) {
        s = bllm_fail(BLLM_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (uint32_t i = 0; i < n_vocab; i++) {
        char *p = text + (size_t)i * 16;
        if (i == 0)
            strcpy(p, "<unk>");
        else if (i == 1)
            strcpy(p, "<s>");
        else if (i == 2)
            strcpy(p, "</s>");
        else if (i < 259)
            snprintf(p, 16, "<0x%02X>", i - 3);
        else
            snprintf(p, 16, "tok%u", i);
        tokens[i] = p;
        lens[i] = strlen(p);
        /* No piece is the concatenation of two others, so no merge ever
         * applies and text encodes to byte pieces; scores just need to be
         * finite. */
        scores[i] = i < 259 ? 0.0f : -(float)(i - 258);
        types[i] = i == 0 ? BLLM_TOKTYPE_UNKNOWN : i < 3 ? BLLM_TOKTYPE_CONTROL
                   : i < 259 ? BLLM_TOKTYPE_BYTE : BLLM_TOKTYPE_NORMAL;
    }
    bllm_tokenizer_spec spec = {
        .kind = BLLM_TOK_LLAMA2C,
        .n_vocab = n_vocab,
        .tokens = tokens,
        .token_lens = lens,
        .scores = scores,
        .token_types = types,
        .bos_id = 1,
        .eos_id = 2,
        .unk_id = 0,
        .pad_id = -1,
        .eot_id = -1,
        .add_bos = true,
        .add_space_prefix = true,
        .max_token_len = 16,
    };
    s = bllm_tokenizer_spec_check(&spec);
    if (!s)
        s = bllm_tokenizer_spec_to_stb(&spec, w);
done:
    free(text);
    free(tokens);
    free(lens);
    free(scores);
    free(types);
    return s;
}

/* ------------------------------------------------------------ random data */

enum { CHUNK = 1 << 16 }; /* values per independently seeded chunk (even) */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

typedef struct {
    void *out;
    bllm_type type;
    uint64_t numel, n_chunks, seed;
    float std;
} fill_job;

/* Box-Muller on 24-bit uniforms; u1 in (0, 1] keeps log finite. */
static void fill_chunk(const fill_job *j, uint64_t c)
{
    uint64_t state = j->seed ^ (c * 0xd1b54a32d192ed03ull);
    splitmix64(&state);
    uint64_t begin = c * CHUNK, end = begin + CHUNK < j->numel ? begin + CHUNK : j->numel;
    for (uint64_t i = begin; i < end; i += 2) {
        uint64_t r = splitmix64(&state);
        float u1 = (float)((r >> 40) + 1) * 0x1p-24f;
        float u2 = (float)((r >> 16) & 0xffffff) * 0x1p-24f;
        float rad = j->std * sqrtf(-2.0f * logf(u1));
        float v[2] = {rad * cosf(6.28318530718f * u2), rad * sinf(6.28318530718f * u2)};
        for (int k = 0; k < 2 && i + (uint64_t)k < end; k++) {
            uint64_t idx = i + (uint64_t)k;
            switch (j->type) {
            case BLLM_TYPE_F32: ((float *)j->out)[idx] = v[k]; break;
            case BLLM_TYPE_F16: ((uint16_t *)j->out)[idx] = bllm_f32_to_f16(v[k]); break;
            case BLLM_TYPE_BF16: ((uint16_t *)j->out)[idx] = bllm_f32_to_bf16(v[k]); break;
            default: break;
            }
        }
    }
}

static void fill_worker(void *arg, int ith, int nth)
{
    const fill_job *j = arg;
    for (uint64_t c = (uint64_t)ith; c < j->n_chunks; c += (uint64_t)nth)
        fill_chunk(j, c);
}

/* ------------------------------------------------ random packed matrices */

/* A uniform float in [0, 1) from 24 random bits. */
static float unit(uint64_t *state) { return (float)(splitmix64(state) >> 40) * 0x1p-24f; }

typedef struct {
    bllm_binary_decomp *d;
    uint64_t seed;
    float std;
    int nm_n, nm_m, n_codes;
    uint8_t code_mask[256]; /* nm: the valid kept-position masks */
    int pb8_k;              /* pb8: salient weights per row */
} decomp_job;

/* Row r of the decomposition, from its own seed so the result does not
 * depend on how rows are split between threads. */
static void decomp_row(const decomp_job *j, int r)
{
    bllm_binary_decomp *d = j->d;
    int cols = d->cols, ng = cols / BLLM_GROUP;
    size_t row = (size_t)r * (size_t)cols, grow = (size_t)r * (size_t)ng;
    uint64_t state = j->seed ^ ((uint64_t)(r + 1) * 0xd1b54a32d192ed03ull);
    splitmix64(&state);
    for (int c = 0; c < cols; c += 64) {
        uint64_t bits = splitmix64(&state);
        for (int k = 0; k < 64; k++)
            d->sign[row + (size_t)c + (size_t)k] = (uint8_t)(bits >> k & 1);
    }
    if (d->sign2)
        for (int c = 0; c < cols; c += 64) {
            uint64_t bits = splitmix64(&state);
            for (int k = 0; k < 64; k++)
                d->sign2[row + (size_t)c + (size_t)k] = (uint8_t)(bits >> k & 1);
        }
    if (d->mask)
        for (int c = 0; c < cols; c += j->nm_m) {
            uint32_t m = j->code_mask[splitmix64(&state) % (uint64_t)j->n_codes];
            for (int p = 0; p < j->nm_m; p++) {
                uint8_t kept = (uint8_t)(m >> p & 1);
                d->mask[row + (size_t)c + (size_t)p] = kept;
                d->sign[row + (size_t)c + (size_t)p] &= kept; /* pruned signs read as 0 (unpack) */
            }
        }
    /* Scales: fp16-exact, positive alphas around std, small mu of either sign. */
    if (d->type == BLLM_TYPE_B1)
        d->alpha[r] = bllm_fp16_round(j->std * (0.75f + 0.5f * unit(&state)));
    else if (d->alpha)
        for (int g = 0; g < ng; g++)
            d->alpha[grow + (size_t)g] = bllm_fp16_round(j->std * (0.75f + 0.5f * unit(&state)));
    if (d->alpha2)
        for (int g = 0; g < ng; g++)
            d->alpha2[grow + (size_t)g] = bllm_fp16_round(0.5f * j->std * (0.75f + 0.5f * unit(&state)));
    if (d->mu)
        for (int g = 0; g < ng; g++)
            d->mu[grow + (size_t)g] = bllm_fp16_round(j->std * (0.2f * unit(&state) - 0.1f));
    if (d->g)
        d->g[r] = bllm_fp16_round(sqrtf(j->std) * (0.75f + 0.5f * unit(&state)));
    if (d->region) { /* stbllm: regions of the non-salient kept weights; the
                        residual sign only in salient columns */
        for (int c = 0; c < cols; c++) {
            size_t i = row + (size_t)c;
            d->region[i] = d->mask[i] && !d->col_salient[c] ? (uint8_t)(splitmix64(&state) % 3) : 0;
            d->sign2[i] &= d->mask[i] & d->col_salient[c];
        }
    }
    if (d->bscale) { /* billm, stbllm: mu small of either sign, alphas around std */
        size_t nb = (size_t)bllm_billm_blocks(cols) * bllm_blk_scales(d->type);
        for (size_t k = 0; k < nb; k++)
            d->bscale[(size_t)r * nb + k] = bllm_fp16_round(k % 2 == 0 ? j->std * (0.2f * unit(&state) - 0.1f)
                                                                      : j->std * (0.75f + 0.5f * unit(&state)));
    }
    if (d->salient) {
        /* Exactly pb8_k positions, uniformly (selection sampling, Knuth's
         * algorithm S: no scratch memory). */
        int need = j->pb8_k;
        for (int c = 0; c < cols; c++) {
            if ((float)(cols - c) * unit(&state) < (float)need) {
                uint64_t v = splitmix64(&state);
                int q = 1 + (int)(v % 127);
                d->salient[row + (size_t)c] = 1;
                d->q[row + (size_t)c] = (int8_t)(v >> 32 & 1 ? q : -q);
                need--;
            }
        }
        d->sal_scale[r] = bllm_fp16_round(4.0f * j->std / 127.0f);
    }
}

static void decomp_worker(void *arg, int ith, int nth)
{
    const decomp_job *j = arg;
    for (int r = ith; r < j->d->rows; r += nth)
        decomp_row(j, r);
}

/* A random decomposition of type for d's shape, packed into buf
 * (desc_bytes) and, for pb8, its companion into *companion (malloc'ed). */
static bllm_status random_packed(bllm_pool *pool, bllm_type type, const bllm_llama_tensor_desc *desc, uint64_t seed,
                                 float std, void *buf, uint64_t nbytes, void **companion, uint64_t *companion_nbytes)
{
    bllm_binary_decomp d;
    bllm_status s = bllm_binary_decomp_init(&d, type, (int)desc->dims[0], (int)desc->dims[1]);
    if (s)
        return s;
    decomp_job j = {.d = &d, .seed = seed, .std = std, .pb8_k = bllm_random_pb8_per_row(d.cols)};
    int code_bits;
    if (bllm_nm_params(type, &j.nm_n, &j.nm_m, &code_bits)) {
        for (uint32_t code = 0; code < (1u << code_bits); code++) {
            uint32_t m = bllm_nm_code_mask(type, code);
            if (m)
                j.code_mask[j.n_codes++] = (uint8_t)m;
        }
    } else if (type == BLLM_TYPE_STBLLM) { /* random 4:8 masks (STBLLM's main setting) */
        j.nm_n = 4, j.nm_m = 8;
        for (uint32_t m = 0; m < 256; m++)
            if (__builtin_popcount(m) == 4)
                j.code_mask[j.n_codes++] = (uint8_t)m;
    }
    if (d.h) {
        uint64_t st = seed ^ 0x5851f42d4c957f2dull;
        splitmix64(&st);
        for (int c = 0; c < d.cols; c++)
            d.h[c] = bllm_fp16_round(sqrtf(std) * (0.75f + 0.5f * unit(&st)));
    }
    if (d.col_salient) { /* billm, stbllm: about 1 column in 8 salient, the same for every row */
        uint64_t st = seed ^ 0x2545f4914f6cdd1dull;
        for (int c = 0; c < d.cols; c++)
            d.col_salient[c] = (uint8_t)(splitmix64(&st) % 8 == 0);
    }
    bllm_pool_run(pool, decomp_worker, &j);
    s = bllm_binary_pack(&d, buf, nbytes);
    if (!s && companion)
        s = bllm_pb8_salient_pack(&d, companion, companion_nbytes);
    bllm_binary_decomp_free(&d);
    return s;
}

bllm_status bllm_random_model_write(const bllm_model_shape *shape, const bllm_random_model_params *p,
                                    const char *path)
{
    if (!shape || !p || !path)
        return bllm_fail(BLLM_ERR_ARG, "random model: missing shape, parameters or path");
    if (p->type != BLLM_TYPE_F32 && p->type != BLLM_TYPE_F16 && p->type != BLLM_TYPE_BF16 &&
        !bllm_type_is_packed(p->type))
        return bllm_fail(BLLM_ERR_UNSUPPORTED, "random model: type %s is not supported (f32, f16, bf16 or a "
                         "packed binary type)", bllm_type_name(p->type));
    float std = p->std > 0 ? p->std : 0.02f;
    if (!isfinite(std) || std > 1.0f)
        return bllm_fail(BLLM_ERR_ARG, "random model: std %g is not in (0, 1]", (double)p->std);
    const bllm_llama_hparams *hp = &shape->hp;
    bllm_status s = bllm_llama_hparams_check(hp);
    if (s)
        return s;

    int n = bllm_llama_tensor_list(hp, shape->tied, NULL, 0);
    bllm_llama_tensor_desc *desc = malloc((size_t)n * sizeof *desc);
    bllm_stb_writer *w = bllm_stb_writer_new();
    if (w) {
        bllm_stb_writer_set_replace(w, !p->keep_existing);
        bllm_stb_writer_set_check(w, bllm_model_verify);
    }
    int *index = malloc((size_t)n * 2 * sizeof *index); /* writer index of each tensor and companion */
    bllm_pool *pool = NULL;
    void *buf = NULL;
    float *f32 = NULL;
    if (!desc || !w || !index) {
        s = bllm_fail(BLLM_ERR_NOMEM, "out of memory");
        goto done;
    }
    bllm_llama_tensor_list(hp, shape->tied, desc, n);

    char options[200];
    snprintf(options, sizeof options, "shape %s --type %s --seed %llu --std %g%s%s%s%s", shape->name,
             bllm_type_name(p->type), (unsigned long long)p->seed, (double)std,
             p->embed_type != BLLM_TYPE_COUNT ? " --embed-type " : "",
             p->embed_type != BLLM_TYPE_COUNT ? bllm_type_name(p->embed_type) : "",
             p->head_type != BLLM_TYPE_COUNT ? " --head-type " : "",
             p->head_type != BLLM_TYPE_COUNT ? bllm_type_name(p->head_type) : "");
    const char *by = p->created_by ? p->created_by : "bllm " BLLM_VERSION;
    if ((s = bllm_stb_set_str(w, "general.architecture", "llama", 5)) ||
        (s = bllm_stb_set_str(w, "general.name", hp->name, strlen(hp->name))) ||
        (s = bllm_llama_hparams_to_stb(hp, w)) || (s = bllm_placeholder_tokenizer_to_stb(hp->n_vocab, w)) ||
        (s = bllm_stb_set_str(w, "provenance.source_format", "random", 6)) ||
        (s = bllm_stb_set_str(w, "provenance.options", options, strlen(options))) ||
        (s = bllm_stb_set_str(w, "provenance.created_by", by, strlen(by))))
        goto done;

    const model_types mt = {p->type, p->embed_type, p->head_type, shape->tied};
    uint64_t max_bytes = 0, total = 0;
    int64_t max_f32 = 0;
    for (int i = 0; i < n; i++) {
        bllm_type t = stored_type(&desc[i], &mt);
        if ((index[2 * i] = bllm_stb_add_tensor(w, desc[i].name, t, desc[i].ndim, desc[i].dims)) < 0) {
            s = BLLM_ERR_ARG;
            goto done;
        }
        index[2 * i + 1] = -1;
        uint64_t cb = companion_bytes(&desc[i], &mt);
        if (cb) {
            char cname[80];
            int64_t cd[1] = {(int64_t)cb};
            snprintf(cname, sizeof cname, "%s.salient", desc[i].name);
            if ((index[2 * i + 1] = bllm_stb_add_tensor(w, cname, BLLM_TYPE_U8, 1, cd)) < 0) {
                s = BLLM_ERR_ARG;
                goto done;
            }
        }
        uint64_t b = desc_bytes(&desc[i], &mt);
        max_bytes = b > max_bytes ? b : max_bytes;
        if (bllm_type_is_blockq(t)) /* generated in f32, then quantized */
            max_f32 = desc[i].dims[0] * desc[i].dims[1] > max_f32 ? desc[i].dims[0] * desc[i].dims[1] : max_f32;
        total += b + cb;
    }
    buf = malloc((size_t)max_bytes);
    f32 = max_f32 ? malloc(sizeof(float) * (size_t)max_f32) : NULL;
    if (!buf || (max_f32 && !f32)) {
        s = bllm_fail(BLLM_ERR_NOMEM, "out of memory (%llu bytes for the largest tensor)",
                      (unsigned long long)max_bytes);
        goto done;
    }
    int n_threads = p->n_threads;
    if (n_threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = c > 0 ? (int)c : 1;
    }
    if ((s = bllm_pool_new(n_threads, &pool)) || (s = bllm_stb_write_begin(w, path)))
        goto done;

    uint64_t done_bytes = 0;
    for (int i = 0; i < n; i++) {
        const bllm_llama_tensor_desc *d = &desc[i];
        uint64_t bytes = desc_bytes(d, &mt);
        if (p->progress)
            p->progress(p->user, i, n, d->name, done_bytes, total);
        if (d->ndim == 1) {
            float *v = buf;
            for (int64_t k = 0; k < d->dims[0]; k++)
                v[k] = 1.0f;
        } else {
            uint64_t numel = (uint64_t)d->dims[0] * (uint64_t)d->dims[1];
            uint64_t seed = p->seed;
            splitmix64(&seed);
            seed ^= (uint64_t)i * 0x9e3779b97f4a7c15ull;
            bllm_type t = stored_type(d, &mt);
            if (bllm_type_is_blockq(t)) {
                fill_job job = {.out = f32, .type = BLLM_TYPE_F32, .numel = numel,
                                .n_chunks = (numel + CHUNK - 1) / CHUNK, .seed = seed, .std = std};
                bllm_pool_run(pool, fill_worker, &job);
                const uint64_t rb = bllm_type_row_bytes(t, (uint64_t)d->dims[1]);
                for (int64_t r = 0; r < d->dims[0]; r++)
                    bllm_blockq_quantize_row(t, f32 + (uint64_t)r * (uint64_t)d->dims[1], (int)d->dims[1],
                                             (uint8_t *)buf + (uint64_t)r * rb);
            } else if (bllm_type_is_packed(t)) {
                void *comp = NULL;
                uint64_t comp_bytes = 0;
                s = random_packed(pool, t, d, seed, std, buf, bytes, index[2 * i + 1] >= 0 ? &comp : NULL,
                                  &comp_bytes);
                if (!s && comp && comp_bytes != companion_bytes(d, &mt))
                    s = bllm_fail(BLLM_ERR_ARG, "tensor '%s': companion is %llu bytes, %llu were planned", d->name,
                                  (unsigned long long)comp_bytes, (unsigned long long)companion_bytes(d, &mt));
                if (!s && comp)
                    s = bllm_stb_write_tensor(w, index[2 * i + 1], comp, (size_t)comp_bytes);
                free(comp);
                if (s) {
                    char msg[512];
                    snprintf(msg, sizeof msg, "%s", bllm_last_error());
                    s = bllm_fail(s, "tensor '%s': %s", d->name, msg);
                    goto done;
                }
                done_bytes += comp_bytes;
            } else {
                fill_job job = {.out = buf, .type = t, .numel = numel,
                                .n_chunks = (numel + CHUNK - 1) / CHUNK, .seed = seed, .std = std};
                bllm_pool_run(pool, fill_worker, &job);
            }
        }
        if ((s = bllm_stb_write_tensor(w, index[2 * i], buf, (size_t)bytes)))
            goto done;
        done_bytes += bytes;
    }
    s = bllm_stb_write_finish(w);
    if (!s && p->progress)
        p->progress(p->user, n, n, "", done_bytes, total);
done:
    if (pool)
        bllm_pool_free(pool);
    free(buf);
    free(f32);
    free(index);
    free(desc);
    bllm_stb_writer_free(w);
    return s;
}
