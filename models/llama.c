/* Llama forward pass. Read it top to bottom in bllm_llama_forward(): embed,
 * then per layer RMSNorm -> Q/K/V -> RoPE -> cache -> attention -> output
 * projection -> residual, RMSNorm -> SwiGLU FFN -> residual; final norm and
 * the output head. Matrix products go through the kernel dispatch
 * (kernels/kernels.h) split across threads by output rows, so every output
 * element is computed by exactly one thread in a fixed order: results do not
 * depend on the thread count. */
#include "models/llama.h"

#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/blockq.h"
#include "runtime/error.h"
#include "runtime/format/blockq.h"
#include "runtime/memory.h"

/* ---------------------------------------------------------------- binding */

/* Packed binary types are accepted for the blocks' linear layers only;
 * the block-quantized rows (q8, q6, q4, q4nl) anywhere, the embedding (read row by
 * row, embed_row) and the output head included. */
static bllm_status bind_matrix(const bllm_stb_file *f, const char *name, int rows, int cols, bool allow_packed,
                               bllm_matrix *m, uint64_t *n_params)
{
    memset(m, 0, sizeof *m);
    const bllm_stb_tensor *t = bllm_stb_find_tensor(f, name);
    if (!t)
        return bllm_fail(BLLM_ERR_FORMAT, "model lacks tensor '%s'", name);
    if (t->ndim != 2)
        return bllm_fail(BLLM_ERR_FORMAT, "tensor '%s' has %d dimensions, a matrix needs 2", name, t->ndim);
    if (t->dims[0] != rows || t->dims[1] != cols)
        return bllm_fail(BLLM_ERR_FORMAT, "tensor '%s' has shape [%lld, %lld], the hyperparameters need [%d, %d]",
                         name, (long long)t->dims[0], (long long)t->dims[1], rows, cols);
    bool packed = bllm_type_is_packed(t->type);
    if (packed && !allow_packed)
        return bllm_fail(BLLM_ERR_UNSUPPORTED, "tensor '%s' is %s; embeddings and the output head must be f32, "
                         "f16 or bf16", name, bllm_type_name(t->type));
    if (!packed && t->type != BLLM_TYPE_F32 && t->type != BLLM_TYPE_F16 && t->type != BLLM_TYPE_BF16 &&
        !bllm_type_is_blockq(t->type))
        return bllm_fail(BLLM_ERR_UNSUPPORTED, "tensor '%s' has type %s, which is not a weight matrix type", name,
                         bllm_type_name(t->type));
    if (bllm_type_is_blockq(t->type)) {
        bllm_status s = bllm_blockq_check(t->type, t->data, rows, cols, name);
        if (s)
            return s;
    }
    /* A kernel set may leave a packed type to the scalar reference. */
    m->matmul = bllm_kernels()->matmul[t->type];
    if (!m->matmul)
        m->matmul = bllm_kernels_scalar()->matmul[t->type];
    if (!m->matmul)
        return bllm_fail(BLLM_ERR_UNSUPPORTED, "tensor '%s': no kernel for type %s", name, bllm_type_name(t->type));

    /* pb8's salient part lives in "<name>.salient"; any other type must not
     * have one (it would be silently ignored). */
    char cname[160];
    snprintf(cname, sizeof cname, "%s.salient", name);
    const bllm_stb_tensor *c = bllm_stb_find_tensor(f, cname);
    if (t->type == BLLM_TYPE_PB8) {
        if (!c)
            return bllm_fail(BLLM_ERR_FORMAT, "pb8 tensor '%s' lacks its companion '%s'", name, cname);
        if (c->type != BLLM_TYPE_U8 || c->ndim != 1)
            return bllm_fail(BLLM_ERR_FORMAT, "companion '%s' must be a 1-D u8 tensor, is %d-D %s", cname,
                             c->ndim, bllm_type_name(c->type));
        bllm_status s = bllm_pb8_salient_parse(c->data, c->nbytes, rows, cols, cname, &m->salient);
        if (s)
            return s;
        m->has_salient = true;
    } else if (c) {
        return bllm_fail(BLLM_ERR_FORMAT, "tensor '%s' is %s but has a salient companion '%s' (pb8 only)", name,
                         bllm_type_name(t->type), cname);
    }
    m->data = t->data;
    m->type = t->type;
    m->rows = rows;
    m->cols = cols;
    *n_params += (uint64_t)rows * cols;
    return BLLM_OK;
}

static bllm_status bind_vector(const bllm_stb_file *f, const char *name, int n, const float **v, uint64_t *n_params)
{
    const bllm_stb_tensor *t = bllm_stb_find_tensor(f, name);
    if (!t)
        return bllm_fail(BLLM_ERR_FORMAT, "model lacks tensor '%s'", name);
    if (t->ndim != 1 || t->dims[0] != n)
        return bllm_fail(BLLM_ERR_FORMAT, "tensor '%s' must be a vector of %d", name, n);
    if (t->type != BLLM_TYPE_F32)
        return bllm_fail(BLLM_ERR_UNSUPPORTED, "norm tensor '%s' must be f32, is %s", name, bllm_type_name(t->type));
    /* Data offsets are 64-byte aligned, so a float pointer is safe. */
    const float *p = t->data;
    for (int i = 0; i < n; i++)
        if (!isfinite(p[i]))
            return bllm_fail(BLLM_ERR_FORMAT, "tensor '%s' holds a non-finite value at %d", name, i);
    *v = p;
    *n_params += (uint64_t)n;
    return BLLM_OK;
}

/* The output head is the one matrix every token reads in full at several
 * bits per weight (TinyLlama's q4nl head: 37 of the 189 MB a b1g token
 * reads). Where the kernel set runs its type faster in the x16 layout
 * (kernels/blockq.h), the head gets a repacked copy: cold 32000 x 2048
 * q4nl GEMV, one thread, Emerald Rapids VM, 3.47 -> 2.66 ms; SmolLM2's
 * 49152 x 576 from L3 1.08 -> 0.56 ms. The copy costs the head's size in
 * memory (the embedding, tied or not, keeps reading the file's rows); when
 * it cannot be had, the head stays as it was, slower but the same. */
static void repack_head(bllm_matrix *m)
{
    const bllm_matmul_fn fn = bllm_kernels()->matmul_x16[m->type];
    if (!fn || !bllm_blockq_x16_fits(m->type, m->rows, m->cols))
        return;
    const size_t bytes = bllm_type_tensor_bytes(m->type, m->rows, m->cols);
    void *p = bllm_large_alloc(bytes);
    if (!p)
        return;
    bllm_blockq_repack_x16(m->type, m->data, m->rows, m->cols, p);
    m->data = p;
    m->matmul = fn;
    m->owned = p;
    m->owned_bytes = bytes;
}

bllm_status bllm_llama_bind(const bllm_stb_file *f, const bllm_llama_hparams *hp, bllm_llama_weights *w)
{
    memset(w, 0, sizeof *w);
    w->hp = *hp;
    int dim = (int)hp->dim, hd = (int)hp->head_dim, hidden = (int)hp->hidden_dim;
    int q_dim = (int)hp->n_heads * hd, kv_dim = (int)hp->n_kv_heads * hd;
    w->layers = calloc(hp->n_layers, sizeof *w->layers);
    if (!w->layers)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    uint64_t np = 0;
    bllm_status s = bind_matrix(f, "token_embd.weight", (int)hp->n_vocab, dim, false, &w->tok_embd, &np);
    char name[96];
    for (uint32_t l = 0; !s && l < hp->n_layers; l++) {
        bllm_llama_layer *L = &w->layers[l];
#define NAME(x) (snprintf(name, sizeof name, "blk.%u." x ".weight", l), name)
        if (!s) s = bind_vector(f, NAME("attn_norm"), dim, &L->attn_norm, &np);
        if (!s) s = bind_matrix(f, NAME("attn_q"), q_dim, dim, true, &L->wq, &np);
        if (!s) s = bind_matrix(f, NAME("attn_k"), kv_dim, dim, true, &L->wk, &np);
        if (!s) s = bind_matrix(f, NAME("attn_v"), kv_dim, dim, true, &L->wv, &np);
        if (!s) s = bind_matrix(f, NAME("attn_output"), dim, q_dim, true, &L->wo, &np);
        if (!s) s = bind_vector(f, NAME("ffn_norm"), dim, &L->ffn_norm, &np);
        if (!s) s = bind_matrix(f, NAME("ffn_gate"), hidden, dim, true, &L->w_gate, &np);
        if (!s) s = bind_matrix(f, NAME("ffn_up"), hidden, dim, true, &L->w_up, &np);
        if (!s) s = bind_matrix(f, NAME("ffn_down"), dim, hidden, true, &L->w_down, &np);
#undef NAME
    }
    if (!s)
        s = bind_vector(f, "output_norm.weight", dim, &w->output_norm, &np);
    if (!s) {
        w->tied = bllm_stb_find_tensor(f, "output.weight") == NULL;
        if (w->tied)
            w->output = w->tok_embd;
        else
            s = bind_matrix(f, "output.weight", (int)hp->n_vocab, dim, false, &w->output, &np);
    }
    if (!s)
        repack_head(&w->output);
    w->n_params = np;
    if (s)
        bllm_llama_unbind(w);
    return s;
}

void bllm_llama_unbind(bllm_llama_weights *w)
{
    free(w->layers);
    w->layers = NULL;
    if (w->output.owned)
        bllm_large_free(w->output.owned, w->output.owned_bytes);
    w->output.owned = NULL;
    w->output.data = NULL;
}

/* ------------------------------------------------------------------ state */

static void compute_inv_freq(const bllm_llama_hparams *hp, float *inv_freq)
{
    int half = (int)hp->head_dim / 2;
    for (int i = 0; i < half; i++) {
        /* float32 arithmetic as HF computes it, so positions rotate alike */
        float f = 1.0f / powf(hp->rope_theta, (float)(2 * i) / (float)hp->head_dim);
        if (hp->rope_scaling == BLLM_ROPE_SCALING_LINEAR) {
            f /= hp->rope_factor;
        } else if (hp->rope_scaling == BLLM_ROPE_SCALING_LLAMA3) {
            /* Llama-3.1: long wavelengths slowed by factor, short kept,
             * smooth blend in between. */
            float low_wavelen = (float)hp->rope_orig_max_seq / hp->rope_low_freq_factor;
            float high_wavelen = (float)hp->rope_orig_max_seq / hp->rope_high_freq_factor;
            float wavelen = 2.0f * (float)M_PI / f;
            if (wavelen > low_wavelen) {
                f /= hp->rope_factor;
            } else if (wavelen >= high_wavelen) {
                float smooth = ((float)hp->rope_orig_max_seq / wavelen - hp->rope_low_freq_factor) /
                               (hp->rope_high_freq_factor - hp->rope_low_freq_factor);
                f = (1.0f - smooth) * f / hp->rope_factor + smooth * f;
            }
        }
        inv_freq[i] = f;
    }
}

/* Bytes of n values of the cache in storage kv (n a multiple of 32 for q8). */
static size_t kv_bytes(bllm_kv_type kv, size_t n)
{
    return kv == BLLM_KV_Q8 ? n / 32 * 34 : kv == BLLM_KV_F16 ? n * 2 : n * 4;
}

bllm_status bllm_llama_state_new(const bllm_llama_hparams *hp, int n_ctx, int max_batch, bllm_kv_type kv,
                                 bllm_llama_state **out)
{
    *out = NULL;
    if (n_ctx < 1 || max_batch < 1)
        return bllm_fail(BLLM_ERR_ARG, "context %d and batch %d must be positive", n_ctx, max_batch);
    if (kv != BLLM_KV_F16 && kv != BLLM_KV_F32 && kv != BLLM_KV_Q8)
        return bllm_fail(BLLM_ERR_ARG, "unknown KV cache type %d", (int)kv);
    if (kv == BLLM_KV_Q8 && hp->head_dim % 32)
        return bllm_fail(BLLM_ERR_UNSUPPORTED, "a q8 KV cache needs a head size that is a multiple of 32, not %u "
                         "(use --cache-type f16)", (unsigned)hp->head_dim);
    bllm_llama_state *s = calloc(1, sizeof *s);
    if (!s)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    /* the batched attention calls BLAS inside the pool's threads */
    openblas_set_num_threads(1);
    s->n_ctx = n_ctx;
    s->max_batch = max_batch;
    s->n_layers = (int)hp->n_layers;
    size_t kv_dim = (size_t)hp->n_kv_heads * hp->head_dim, q_dim = (size_t)hp->n_heads * hp->head_dim;
    size_t B = (size_t)max_batch;
    s->kv = kv;
    s->n_kv_heads = (int)hp->n_kv_heads;
    s->kv_row = kv_bytes(kv, hp->head_dim);
    const size_t cache = (size_t)hp->n_layers * hp->n_kv_heads * n_ctx * s->kv_row;
    /* Decode reads the whole filled cache every token: huge pages, as the
     * weights (zero-filled, as a fresh cache must be). */
    s->cache_bytes = cache;
    s->key_cache = bllm_large_alloc(cache);
    s->value_cache = bllm_large_alloc(cache);
    s->x = malloc(B * hp->dim * sizeof(float));
    s->xb = malloc(B * (hp->dim > q_dim ? hp->dim : q_dim) * sizeof(float));
    s->q = malloc(B * q_dim * sizeof(float));
    s->k = malloc(B * kv_dim * sizeof(float));
    s->v = malloc(B * kv_dim * sizeof(float));
    s->att_out = malloc(B * q_dim * sizeof(float));
    s->hb = malloc(B * hp->hidden_dim * sizeof(float));
    s->hb2 = malloc(B * hp->hidden_dim * sizeof(float));
    s->rope_cos = malloc(B * hp->head_dim / 2 * sizeof(float));
    s->rope_sin = malloc(B * hp->head_dim / 2 * sizeof(float));
    s->inv_freq = malloc(hp->head_dim / 2 * sizeof(float));
    if (!s->key_cache || !s->value_cache || !s->x || !s->xb || !s->q || !s->k || !s->v || !s->att_out ||
        !s->hb || !s->hb2 || !s->rope_cos || !s->rope_sin || !s->inv_freq) {
        bllm_llama_state_free(s);
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory for a %d-token context (KV cache %.1f MiB)", n_ctx,
                         2.0 * (double)cache / 1048576.0);
    }
    compute_inv_freq(hp, s->inv_freq);
    *out = s;
    return BLLM_OK;
}

void bllm_llama_state_free(bllm_llama_state *s)
{
    if (!s)
        return;
    bllm_large_free(s->key_cache, s->cache_bytes);
    bllm_large_free(s->value_cache, s->cache_bytes);
    free(s->x);
    free(s->xb);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->att_out);
    free(s->hb);
    free(s->hb2);
    free(s->rope_cos);
    free(s->rope_sin);
    free(s->inv_freq);
    free(s->scratch);
    free(s);
}

/* ------------------------------------------------------- parallel pieces */

typedef struct {
    int count;
    struct {
        float *y;
        const bllm_matrix *w;
    } m[3];
    const float *x;
    int n_tok;
    /* What each thread does to its own rows once they are computed, so no
     * serial step follows (one token: SwiGLU 6-7 us and a residual add ~1
     * us per layer on the TinyLlama shape, while the other thread waited):
     * swiglu, m[0].y = silu(m[0].y) * m[1].y, the two matrices split
     * together by rows; or residual += m[0].y. */
    bool swiglu;
    float *residual;
    bllm_share *share; /* NULL: an even static split */
    uint64_t scope;    /* x is not written while the job runs: bllm_matmul_scope_begin */
} matmul_job;

/* The matrices' rows in units of whole tiles (packed kernels work on 32-row
 * tiles; 16 rows otherwise), laid end to end, are split evenly across the
 * threads: each thread takes one contiguous run of units, which may span
 * matrices. Splitting each matrix on its own would leave threads idle on
 * the small ones (SmolLM2's K and V have 6 tiles each, Q 18: 16 threads
 * would wait on 2 + 1 + 1 units instead of 2). The SwiGLU's gate and up
 * projections are split as one: a thread takes the same rows of both.
 * A single token's units are then shared out rather than fixed
 * (matmul_run). */
static int matmul_unit_rows(const bllm_matrix *w) { return bllm_type_is_packed(w->type) ? BLLM_TILE_ROWS : 16; }

/* The rows of a unit: gate and up split as one take the larger unit. */
static int matmul_job_unit(const matmul_job *job)
{
    int unit = matmul_unit_rows(job->m[0].w);
    if (job->swiglu && matmul_unit_rows(job->m[1].w) > unit)
        unit = matmul_unit_rows(job->m[1].w);
    return unit;
}

static int matmul_job_units(const matmul_job *job)
{
    if (job->swiglu)
        return (job->m[0].w->rows + matmul_job_unit(job) - 1) / matmul_job_unit(job);
    int total = 0;
    for (int i = 0; i < job->count; i++)
        total += (job->m[i].w->rows + matmul_unit_rows(job->m[i].w) - 1) / matmul_unit_rows(job->m[i].w);
    return total;
}

static void matmul_rows(const matmul_job *job, int i, int r0, int r1, int t0, int t1)
{
    const bllm_matrix *w = job->m[i].w;
    float *y = job->m[i].y + (size_t)t0 * w->rows;
    const float *x = job->x + (size_t)t0 * w->cols;
    w->matmul(y, x, w->data, t1 - t0, w->cols, w->rows, r0, r1);
    if (w->has_salient)
        bllm_kernels()->salient_matvec(y, x, w->data, &w->salient, t1 - t0, w->cols, w->rows, r0, r1);
}

/* Units [u0, u1) of the job's rows laid end to end (matmul_job) for tokens
 * [t0, t1), then what the job does to those rows. */
static void matmul_units(const matmul_job *job, int u0, int u1, int t0, int t1)
{
    if (job->swiglu) {
        const bllm_matrix *w = job->m[0].w;
        const int unit = matmul_job_unit(job);
        const int r0 = u0 * unit, r1 = u1 * unit < w->rows ? u1 * unit : w->rows;
        if (r0 >= r1)
            return;
        matmul_rows(job, 0, r0, r1, t0, t1);
        matmul_rows(job, 1, r0, r1, t0, t1);
        for (int t = t0; t < t1; t++)
            bllm_kernels()->swiglu(job->m[0].y + (size_t)t * w->rows + r0, job->m[1].y + (size_t)t * w->rows + r0,
                                   (size_t)(r1 - r0));
        return;
    }
    for (int i = 0, base = 0; i < job->count; i++) {
        const bllm_matrix *w = job->m[i].w;
        const int unit = matmul_unit_rows(w), units = (w->rows + unit - 1) / unit;
        const int a = u0 > base ? u0 - base : 0, b = u1 - base < units ? u1 - base : units;
        base += units;
        if (a >= b)
            continue;
        const int r0 = a * unit, r1 = b * unit < w->rows ? b * unit : w->rows;
        matmul_rows(job, i, r0, r1, t0, t1);
        if (job->residual)
            for (int t = t0; t < t1; t++)
                for (int r = r0; r < r1; r++)
                    job->residual[(size_t)t * w->rows + r] += job->m[i].y[(size_t)t * w->rows + r];
    }
}

/* Runs the job on the pool, its work shared out (bllm_share) so that no
 * thread waits long on another: with an even split, one of two vCPUs sat
 * idle ~10% of each decode product while the other, slowed by its
 * neighbours, finished (which one varied from product to product).
 *
 * One token: the units are rows, claimed in batches of about
 * SHARE_BATCH_BYTES of weights. Shared, the threads end ~2 us apart and a
 * TinyLlama-shape decode step took 3-4% less time (steps alternating
 * between the two ways in one run). Each batch is a kernel call, cheap for
 * one token since the thread keeps the tables it prepared for the same x.
 *
 * A batch of tokens on packed weights: each thread keeps its even part of
 * the rows (its weights stay in its cache across the token chunks the
 * kernel runs), and the units are that row block's SHARE_TOKENS-token
 * chunks; a thread that runs out computes the last token chunks of another
 * thread's rows. A call prepares activation tables only for its own tokens,
 * so sharing costs no extra preparation. Other weights keep the even
 * split: their GEMMs run best on the whole batch at once. */
#define SHARE_BATCH_BYTES (64 * 1024)
#define SHARE_TOKENS 8

/* A batch's token chunks for sharing: the last takes the tokens past the
 * last whole chunk, so every call has at least SHARE_TOKENS tokens unless
 * the batch has fewer. The kernels pick their route by a call's token
 * count (the block types' GEMM from BLLM_BLK_GEMM_MIN_TOK = 8 tokens, GEMV
 * below; the tile types' column blocks by min(n_tok, 8)), and a 1-token
 * call for a batch's last token summed in another order than the same
 * token inside a whole-batch call: the logits then depended on the thread
 * count (billm, pb-llm, stbllm, pbs2p on the SIMD sets). With calls of 8
 * or more starting at multiples of 8, every token takes the route and the
 * chunk it takes in one call over the whole batch. */
static int share_chunks(int n_tok) { return n_tok < SHARE_TOKENS ? 1 : n_tok / SHARE_TOKENS; }

/* Thread ith's claims of a shared job's units until none are left. */
static void matmul_shared(const matmul_job *job, int units, int ith, int nth)
{
    int a, b;
    while (bllm_share_next(job->share, ith, &a, &b)) {
        if (job->n_tok == 1) {
            matmul_units(job, a, b, 0, 1);
            continue;
        }
        /* share unit = row block (a thread's even part of the rows) x
         * token chunk; a claim never leaves its row block */
        const int chunks = share_chunks(job->n_tok), blk = a / chunks;
        int u0, u1;
        bllm_pool_range(units, 1, blk, nth, &u0, &u1);
        const int t0 = (a - blk * chunks) * SHARE_TOKENS;
        const int t1 = b - blk * chunks == chunks ? job->n_tok : (b - blk * chunks) * SHARE_TOKENS;
        matmul_units(job, u0, u1, t0, t1);
    }
}

static void matmul_worker(void *arg, int ith, int nth)
{
    const matmul_job *job = arg;
    const int units = matmul_job_units(job);
    bllm_matmul_scope_begin(job->scope);
    if (job->share) {
        matmul_shared(job, units, ith, nth);
    } else {
        int a, b;
        bllm_pool_range(units, 1, ith, nth, &a, &b);
        matmul_units(job, a, b, 0, job->n_tok);
    }
    bllm_matmul_scope_end();
}

static void matmul_run(bllm_pool *pool, matmul_job *job)
{
    static _Atomic uint64_t scopes;
    const int nth = bllm_pool_size(pool);
    bllm_share share;
    job->scope = atomic_fetch_add_explicit(&scopes, 1, memory_order_relaxed) + 1;
    if (nth > 1 && nth <= BLLM_SHARE_MAX && job->n_tok == 1) {
        const bllm_matrix *w = job->m[0].w;
        const double unit_bytes =
            bllm_type_bits_per_weight(w->type, (uint64_t)w->rows, (uint64_t)w->cols) / 8 * w->cols *
            matmul_job_unit(job) * (job->swiglu ? 2 : 1);
        bllm_share_init(&share, matmul_job_units(job), nth, (int)ceil(SHARE_BATCH_BYTES / unit_bytes));
        job->share = &share;
    } else if (nth > 1 && nth <= BLLM_SHARE_MAX) {
        bool packed = true;
        for (int i = 0; i < job->count; i++)
            packed = packed && bllm_type_is_packed(job->m[i].w->type);
        if (packed) {
            bllm_share_init(&share, nth * share_chunks(job->n_tok), nth, 2);
            job->share = &share;
        }
    }
    bllm_pool_run(pool, matmul_worker, job);
}

/* y[t] = W x[t] for each of up to three matrices sharing the input x. */
static void matmul(bllm_pool *pool, const float *x, int n_tok, float *y0, const bllm_matrix *w0, float *y1,
                   const bllm_matrix *w1, float *y2, const bllm_matrix *w2)
{
    matmul_job job = {.x = x, .n_tok = n_tok};
    job.m[job.count].y = y0, job.m[job.count++].w = w0;
    if (w1)
        job.m[job.count].y = y1, job.m[job.count++].w = w1;
    if (w2)
        job.m[job.count].y = y2, job.m[job.count++].w = w2;
    matmul_run(pool, &job);
}

/* residual[t] += W x[t] (W square: the attention output and the down
 * projection), through y */
static void matmul_add(bllm_pool *pool, const float *x, int n_tok, float *y, const bllm_matrix *w, float *residual)
{
    matmul_job job = {.x = x, .n_tok = n_tok, .count = 1, .m = {{y, w}}, .residual = residual};
    matmul_run(pool, &job);
}

/* gate[t] = silu(W_gate x[t]) * (W_up x[t]) */
static void matmul_swiglu(bllm_pool *pool, const float *x, int n_tok, float *gate, const bllm_matrix *w_gate,
                          float *up, const bllm_matrix *w_up)
{
    matmul_job job = {.x = x, .n_tok = n_tok, .count = 2, .m = {{gate, w_gate}, {up, w_up}}, .swiglu = true};
    matmul_run(pool, &job);
}

/* ------------------------------------------------------------ small ops */

static void rmsnorm(float *out, const float *x, const float *weight, int n, float eps)
{
    float ss = 0.0f;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    float r = 1.0f / sqrtf(ss / (float)n + eps);
    for (int i = 0; i < n; i++)
        out[i] = weight[i] * (x[i] * r);
}

/* Rotate adjacent pairs (v[2i], v[2i+1]) of every head by the angle of its
 * position. */
static void rope(float *v, int n_heads, int hd, const float *cos_t, const float *sin_t)
{
    for (int h = 0; h < n_heads; h++) {
        float *p = v + (size_t)h * hd;
        for (int i = 0; i < hd / 2; i++) {
            float a = p[2 * i], b = p[2 * i + 1];
            p[2 * i] = a * cos_t[i] - b * sin_t[i];
            p[2 * i + 1] = a * sin_t[i] + b * cos_t[i];
        }
    }
}

/* The per-token steps between the products (norms, RoPE and the cache
 * write; the SwiGLU and residual adds run inside the product jobs) split
 * across the pool by whole tokens when a batch has PAR_TOKENS_MIN or more:
 * run on one thread they were 3.6% of a TinyLlama-shape pp512 (perf, one
 * thread), time that a second thread then waited through. Each token's
 * result is the same whichever thread does it. */
#define PAR_TOKENS_MIN 4

typedef struct token_stage token_stage;
struct token_stage {
    void (*fn)(const token_stage *st, int t0, int t1); /* tokens [t0, t1) */
    const bllm_llama_hparams *hp;
    bllm_llama_state *s;
    const float *weight; /* norms */
    int layer, pos;      /* cache write */
    int T;
};

static void token_stage_worker(void *arg, int ith, int nth)
{
    const token_stage *st = arg;
    const int t0 = (int)((long long)st->T * ith / nth), t1 = (int)((long long)st->T * (ith + 1) / nth);
    if (t0 < t1)
        st->fn(st, t0, t1);
}

static void run_tokens(bllm_pool *pool, token_stage *st)
{
    if (pool && st->T >= PAR_TOKENS_MIN && bllm_pool_size(pool) > 1)
        bllm_pool_run(pool, token_stage_worker, st);
    else
        st->fn(st, 0, st->T);
}

/* s->xb = rmsnorm(s->x) * weight */
static void norm_tokens(const token_stage *st, int t0, int t1)
{
    const int dim = (int)st->hp->dim;
    for (int t = t0; t < t1; t++)
        rmsnorm(st->s->xb + (size_t)t * dim, st->s->x + (size_t)t * dim, st->weight, dim, st->hp->norm_eps);
}

static void embed_row(const bllm_matrix *m, int32_t token, float *out)
{
    size_t cols = (size_t)m->cols;
    switch (m->type) {
    case BLLM_TYPE_F32:
        memcpy(out, (const float *)m->data + (size_t)token * cols, cols * sizeof(float));
        break;
    case BLLM_TYPE_F16: {
        const uint16_t *r = (const uint16_t *)m->data + (size_t)token * cols;
        for (size_t i = 0; i < cols; i++)
            out[i] = bllm_f16_to_f32(r[i]);
        break;
    }
    case BLLM_TYPE_BF16: {
        const uint16_t *r = (const uint16_t *)m->data + (size_t)token * cols;
        for (size_t i = 0; i < cols; i++)
            out[i] = bllm_bf16_to_f32(r[i]);
        break;
    }
    case BLLM_TYPE_Q8:
    case BLLM_TYPE_Q6:
    case BLLM_TYPE_Q4:
    case BLLM_TYPE_Q4NL:
        bllm_blockq_dequant_row(m->type, (const uint8_t *)m->data + (size_t)token * bllm_type_row_bytes(m->type, cols),
                                (int)cols, out);
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------------ KV cache */

/* Byte offset of KV head kvh's first row (position 0) of `layer` in a
 * cache; its rows follow kv_row bytes apart (llama.h). */
static size_t cache_head(const bllm_llama_state *cs, int layer, int kvh)
{
    return ((size_t)layer * cs->n_kv_heads + kvh) * cs->n_ctx * cs->kv_row;
}

/* One head's key and value (hd floats each, a multiple of 32 on a q8
 * cache) into cs's cache of `layer` at position pos, rounded to the
 * cache's storage. */
static void cache_put(bllm_llama_state *cs, int layer, int pos, int kvh, int hd, const float *k, const float *v)
{
    const size_t at = cache_head(cs, layer, kvh) + (size_t)pos * cs->kv_row;
    uint8_t *kc = (uint8_t *)cs->key_cache + at, *vc = (uint8_t *)cs->value_cache + at;
    if (cs->kv == BLLM_KV_F16) {
        bllm_kernels()->cvt_f32_f16((uint16_t *)kc, k, hd);
        bllm_kernels()->cvt_f32_f16((uint16_t *)vc, v, hd);
    } else if (cs->kv == BLLM_KV_Q8) {
        bllm_blockq_quantize_row(BLLM_TYPE_Q8, k, hd, kc);
        bllm_blockq_quantize_row(BLLM_TYPE_Q8, v, hd, vc);
    } else {
        memcpy(kc, k, (size_t)hd * sizeof(float));
        memcpy(vc, v, (size_t)hd * sizeof(float));
    }
}

/* T rows of keys and values (kv_dim = n_kv_heads * hd floats each) from
 * position pos on. */
static void cache_write(bllm_llama_state *cs, int layer, int pos, int hd, const float *k, const float *v, int T)
{
    const size_t kv_dim = (size_t)cs->n_kv_heads * hd;
    for (int t = 0; t < T; t++)
        for (int h = 0; h < cs->n_kv_heads; h++)
            cache_put(cs, layer, pos + t, h, hd, k + t * kv_dim + (size_t)h * hd, v + t * kv_dim + (size_t)h * hd);
}

/* ------------------------------------------------------------ attention */

/* Query rows per block of the batched attention: one block's scores
 * (ATT_QB x keys) and its keys stay in L2 while both products run. */
#define ATT_QB 64
/* Batches at least this long take the blocked path. */
#define ATT_BLOCKED_MIN 16
/* Shorter ones take the grouped path (attention_group_worker) once every
 * token sees at least this many keys; below, one dot product and one axpy
 * per head and key cost less than two sgemm calls. */
#define ATT_GROUP_MIN_KEYS 64

typedef struct {
    const bllm_llama_hparams *hp;
    bllm_llama_state *s;
    int layer, n_tok, pos;
    int n_qblk;             /* blocked path: query blocks per head */
    atomic_int next;        /* blocked path: next (head, block) job */
    /* several sequences (bllm_llama_forward_multi): token t attends over
     * seq[t]'s cache up to its position seq_pos[t]; NULL: one sequence */
    bllm_llama_state *const *seq;
    const int *seq_pos;
    /* grouped path, one token of one sequence: each job first applies RoPE
     * to its query and key heads and writes its key and value heads to the
     * cache (serial steps before: 5-9 us per TinyLlama layer) */
    bool rope_and_cache;
} attention_job;

/* a . x, y += a x and y = x with x one head's n keys or values in the
 * cache's storage */
static inline float kv_dot(const bllm_kernel_set *ks, bllm_kv_type kv, const float *a, const uint8_t *x, int n)
{
    return kv == BLLM_KV_F16 ? ks->dot_f16(a, (const uint16_t *)x, n)
           : kv == BLLM_KV_Q8 ? ks->dot_q8(a, x, n)
                              : ks->dot_f32(a, (const float *)x, n);
}

static inline void kv_axpy(const bllm_kernel_set *ks, bllm_kv_type kv, float *y, float a, const uint8_t *x, int n)
{
    if (kv == BLLM_KV_F16)
        ks->axpy_f16(y, a, (const uint16_t *)x, n);
    else if (kv == BLLM_KV_Q8)
        ks->axpy_q8(y, a, x, n);
    else
        ks->axpy_f32(y, a, (const float *)x, n);
}

static inline void kv_cvt(const bllm_kernel_set *ks, bllm_kv_type kv, float *y, const uint8_t *x, int n)
{
    if (kv == BLLM_KV_F16)
        ks->cvt_f16_f32(y, (const uint16_t *)x, n);
    else if (kv == BLLM_KV_Q8)
        ks->cvt_q8_f32(y, x, n);
    else
        memcpy(y, x, (size_t)n * sizeof(float));
}

/* One (token, head) pair at a time with dot products and axpys: decoding
 * and short batches. Pairs are split evenly across threads. */
static void attention_rows_worker(void *arg, int ith, int nth)
{
    attention_job *job = arg;
    const bllm_llama_hparams *hp = job->hp;
    bllm_llama_state *s = job->s;
    const bllm_kernel_set *ks = bllm_kernels();
    int hd = (int)hp->head_dim, n_heads = (int)hp->n_heads;
    int group = n_heads / (int)hp->n_kv_heads;
    const float scale = 1.0f / sqrtf((float)hd);
    float *scores = s->scratch + (size_t)ith * s->scratch_floats;
    int p0, p1;
    bllm_pool_range(job->n_tok * n_heads, 1, ith, nth, &p0, &p1);
    for (int p = p0; p < p1; p++) {
        int t = p / n_heads, h = p % n_heads;
        const bllm_llama_state *cs = job->seq ? job->seq[t] : s; /* whose cache */
        const int n_keys = job->seq ? job->seq_pos[t] + 1 : job->pos + t + 1;
        const int kvh = h / group;
        const size_t at = cache_head(cs, job->layer, kvh);
        const uint8_t *kc = (const uint8_t *)cs->key_cache + at, *vc = (const uint8_t *)cs->value_cache + at;
        const float *q = s->q + (size_t)t * n_heads * hd + (size_t)h * hd;
        float maxv = -INFINITY;
        for (int j = 0; j < n_keys; j++) {
            float d = kv_dot(ks, cs->kv, q, kc + (size_t)j * cs->kv_row, hd) * scale;
            scores[j] = d;
            if (d > maxv)
                maxv = d;
        }
        float sum = ks->exp_sub_sum(scores, n_keys, maxv);
        float inv = 1.0f / sum;
        float *out = s->att_out + (size_t)t * n_heads * hd + (size_t)h * hd;
        memset(out, 0, hd * sizeof(float));
        for (int j = 0; j < n_keys; j++)
            kv_axpy(ks, cs->kv, out, scores[j] * inv, vc + (size_t)j * cs->kv_row, hd);
    }
}

/* row[j] = exp(scale * row[j] - max) for j < n, returning their sum: the
 * unnormalized softmax of one query's scores. The max runs in 8 lanes so
 * the compiler vectorizes it (this loop and the exp are most of the
 * attention's time outside the two products). */
static float scaled_softmax_numerators(const bllm_kernel_set *ks, float *row, int n, float scale)
{
    float lane[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++) {
            float v = row[j + l] * scale;
            row[j + l] = v;
            lane[l] = v > lane[l] ? v : lane[l];
        }
    float maxv = -INFINITY;
    for (; j < n; j++) {
        row[j] *= scale;
        maxv = row[j] > maxv ? row[j] : maxv;
    }
    for (int l = 0; l < 8; l++)
        maxv = lane[l] > maxv ? lane[l] : maxv;
    return ks->exp_sub_sum(row, n, maxv);
}

/* Per-thread scratch of the blocked path: one head's keys and values as f32
 * (n_ctx x hd each), one block's outputs (ATT_QB x hd) and scores (ATT_QB x
 * n_ctx). */
static size_t attention_scratch_floats(const bllm_llama_hparams *hp, int n_ctx)
{
    size_t hd = hp->head_dim, n = (size_t)n_ctx;
    size_t blocked = 2 * n * hd + ATT_QB * hd + ATT_QB * n;
    return blocked > n ? blocked : n;
}

/* nq query rows (q, row stride ldq) against one KV head's cached keys
 * and values (kc, vc: its first row; rows kv_row bytes apart) as two
 * matrix products by single-threaded BLAS sgemm (scores = Q K^T, out =
 * P V); query row t sees the first n_first + step * t of the n_keys keys
 * (step 1: a causal block of consecutive positions; 0: queries of one
 * position). Scratch (attention_scratch_floats): kh, vh (n_keys x hd,
 * the cache's rows in f32 unless it is f32), ob (nq x hd), sc (nq x
 * n_keys). Writes out (row stride ldo). */
static void attend_sgemm(const bllm_kernel_set *ks, const bllm_llama_state *cs, int hd, const float *q,
                         int ldq, int nq, const uint8_t *kc, const uint8_t *vc, int n_keys, int n_first, int step,
                         float *scratch, float *out, int ldo)
{
    const float scale = 1.0f / sqrtf((float)hd);
    float *kh = scratch, *vh = kh + (size_t)cs->n_ctx * hd, *ob = vh + (size_t)cs->n_ctx * hd;
    float *sc = ob + (size_t)ATT_QB * hd;
    const float *kf = (const float *)kc, *vf = (const float *)vc; /* an f32 cache's rows: hd floats apart */
    if (cs->kv != BLLM_KV_F32) {
        for (int j = 0; j < n_keys; j++) {
            kv_cvt(ks, cs->kv, kh + (size_t)j * hd, kc + (size_t)j * cs->kv_row, hd);
            kv_cvt(ks, cs->kv, vh + (size_t)j * hd, vc + (size_t)j * cs->kv_row, hd);
        }
        kf = kh, vf = vh;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, n_keys, hd, 1.0f, q, ldq, kf, hd, 0.0f, sc, n_keys);
    float inv[ATT_QB];
    for (int t = 0; t < nq; t++) {
        float *row = sc + (size_t)t * n_keys;
        int n_valid = n_first + step * t;
        inv[t] = 1.0f / scaled_softmax_numerators(ks, row, n_valid, scale);
        for (int j = n_valid; j < n_keys; j++)
            row[j] = 0.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, n_keys, 1.0f, sc, n_keys, vf, hd, 0.0f, ob, hd);
    for (int t = 0; t < nq; t++)
        for (int i = 0; i < hd; i++)
            out[(size_t)t * ldo + i] = ob[(size_t)t * hd + i] * inv[t];
}

/* A block of ATT_QB queries of one head at a time (attend_sgemm), so long
 * prompts and calibration windows run at GEMM speed: on a 512-token prompt
 * of a TinyLlama shape, the kernel set's f32 matmul on copies of the keys
 * and transposed values made 15% of the prompt's time. Jobs (head, block)
 * are claimed from a shared counter; each is computed entirely by whichever
 * thread claims it, in a fixed order, so results do not depend on the
 * thread count. */
static void attention_blocked_worker(void *arg, int ith, int nth)
{
    (void)nth;
    attention_job *job = arg;
    const bllm_llama_hparams *hp = job->hp;
    bllm_llama_state *s = job->s;
    const int hd = (int)hp->head_dim, n_heads = (int)hp->n_heads;
    const int q_dim = n_heads * hd, group = n_heads / (int)hp->n_kv_heads;
    const int n_jobs = n_heads * job->n_qblk;
    for (int jb; (jb = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed)) < n_jobs;) {
        const int h = jb / job->n_qblk, b = jb % job->n_qblk, kvh = h / group;
        const int t0 = b * ATT_QB, nq = job->n_tok - t0 < ATT_QB ? job->n_tok - t0 : ATT_QB;
        const size_t head = cache_head(s, job->layer, kvh);
        attend_sgemm(bllm_kernels(), s, hd, s->q + (size_t)t0 * q_dim + (size_t)h * hd, q_dim, nq,
                     (const uint8_t *)s->key_cache + head, (const uint8_t *)s->value_cache + head,
                     job->pos + t0 + nq, job->pos + t0 + 1, 1, s->scratch + (size_t)ith * s->scratch_floats,
                     s->att_out + (size_t)t0 * q_dim + (size_t)h * hd, q_dim);
    }
}

/* Whether a short batch whose tokens each see at least min_keys keys of
 * an s-like cache takes the grouped path: always with the kernel set's
 * attend_f16 on an f16 cache; with attend_sgemm from ATT_GROUP_MIN_KEYS
 * on. The group's heads must fit attend_sgemm's ATT_QB rows. */
static bool grouped_attention(const bllm_llama_hparams *hp, const bllm_llama_state *s, int min_keys)
{
    const bool f16 = s->kv == BLLM_KV_F16 && bllm_kernels()->attend_f16;
    return (f16 || min_keys >= ATT_GROUP_MIN_KEYS) && hp->n_heads / hp->n_kv_heads <= ATT_QB;
}

/* Decoding and short batches: the query heads that share a KV head (8 in
 * TinyLlama) are the rows of one attend_f16 call (or, on a q8 or f32
 * cache, of one attend_sgemm), so each cached key and value is converted
 * once per token rather than read by one dot product and one axpy call per
 * head (~17 ns per call). bllm-run, TinyLlama shape b1g, 1 thread,
 * Emerald Rapids VM, 64 tokens after a 1694-token prompt: 16.7 t/s with
 * those calls, 23.8-28.9 with attend_sgemm, 35.0-41.0 with the avx512
 * set's attend_f16 (docs/inference.md, "Attention"). Jobs are (token, KV
 * head) pairs, each computed by one thread. */
static void attention_group_worker(void *arg, int ith, int nth)
{
    attention_job *job = arg;
    const bllm_llama_hparams *hp = job->hp;
    bllm_llama_state *s = job->s;
    const bllm_kernel_set *ks = bllm_kernels();
    const int hd = (int)hp->head_dim, n_heads = (int)hp->n_heads, n_kv = (int)hp->n_kv_heads;
    const int q_dim = n_heads * hd, group = n_heads / n_kv;
    float *scratch = s->scratch + (size_t)ith * s->scratch_floats;
    int p0, p1;
    bllm_pool_range(job->n_tok * n_kv, 1, ith, nth, &p0, &p1);
    for (int p = p0; p < p1; p++) {
        const int t = p / n_kv, kvh = p % n_kv;
        const bllm_llama_state *cs = job->seq ? job->seq[t] : s; /* whose cache */
        const int n_keys = job->seq ? job->seq_pos[t] + 1 : job->pos + t + 1;
        const size_t head = cache_head(cs, job->layer, kvh);
        const uint8_t *kc = (const uint8_t *)cs->key_cache + head, *vc = (const uint8_t *)cs->value_cache + head;
        const size_t qo = (size_t)t * q_dim + (size_t)kvh * group * hd;
        if (job->rope_and_cache) {
            float *k = s->k + (size_t)kvh * hd, *v = s->v + (size_t)kvh * hd;
            rope(s->q + qo, group, hd, s->rope_cos, s->rope_sin);
            rope(k, 1, hd, s->rope_cos, s->rope_sin);
            cache_put(s, job->layer, job->pos, kvh, hd, k, v);
        }
        if (cs->kv == BLLM_KV_F16 && ks->attend_f16)
            ks->attend_f16(s->att_out + qo, s->q + qo, group, hd, (const uint16_t *)kc, (const uint16_t *)vc,
                           cs->kv_row / sizeof(uint16_t), n_keys, 1.0f / sqrtf((float)hd), scratch);
        else
            attend_sgemm(ks, cs, hd, s->q + qo, hd, group, kc, vc, n_keys, n_keys, 0, scratch,
                         s->att_out + qo, hd);
    }
}

/* ------------------------------------------------------------ block stages */

void bllm_llama_set_positions(const bllm_llama_hparams *hp, bllm_llama_state *s, int T, int pos)
{
    const int half = (int)hp->head_dim / 2;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            float angle = (float)(pos + t) * s->inv_freq[i];
            s->rope_cos[t * half + i] = cosf(angle);
            s->rope_sin[t * half + i] = sinf(angle);
        }
}

void bllm_llama_attn_norm(const bllm_llama_hparams *hp, const bllm_llama_layer *L, bllm_llama_state *s,
                          bllm_pool *pool, int T)
{
    token_stage st = {.fn = norm_tokens, .hp = hp, .s = s, .weight = L->attn_norm, .T = T};
    run_tokens(pool, &st);
}

/* Attention scratch for nth threads and keys up to n_ctx. */
static bllm_status ensure_scratch(const bllm_llama_hparams *hp, bllm_llama_state *s, int nth, int n_ctx)
{
    const size_t need = attention_scratch_floats(hp, n_ctx);
    if (s->scratch_threads < nth || s->scratch_floats < need) {
        float *sc = realloc(s->scratch, (size_t)nth * need * sizeof(float));
        if (!sc)
            return bllm_fail(BLLM_ERR_NOMEM, "out of memory for attention scratch");
        s->scratch = sc;
        s->scratch_threads = nth;
        s->scratch_floats = need;
    }
    return BLLM_OK;
}

/* Q, K, V of T tokens from s->xb, rotated by their rows of s->rope_*. */
static void rope_tokens(const token_stage *st, int t0, int t1)
{
    const bllm_llama_hparams *hp = st->hp;
    bllm_llama_state *s = st->s;
    const int hd = (int)hp->head_dim, n_heads = (int)hp->n_heads, n_kv = (int)hp->n_kv_heads;
    const int q_dim = n_heads * hd, kv_dim = n_kv * hd, half = hd / 2;
    for (int t = t0; t < t1; t++) {
        rope(s->q + (size_t)t * q_dim, n_heads, hd, s->rope_cos + t * half, s->rope_sin + t * half);
        rope(s->k + (size_t)t * kv_dim, n_kv, hd, s->rope_cos + t * half, s->rope_sin + t * half);
    }
}

static void qkv_rope(const bllm_llama_hparams *hp, const bllm_llama_layer *L, bllm_llama_state *s, bllm_pool *pool,
                     int T)
{
    matmul(pool, s->xb, T, s->q, &L->wq, s->k, &L->wk, s->v, &L->wv);
    token_stage st = {.fn = rope_tokens, .hp = hp, .s = s, .T = T};
    run_tokens(pool, &st);
}

static void cache_tokens(const token_stage *st, int t0, int t1)
{
    const size_t kv_dim = st->hp->n_kv_heads * st->hp->head_dim;
    cache_write(st->s, st->layer, st->pos + t0, (int)st->hp->head_dim, st->s->k + t0 * kv_dim, st->s->v + t0 * kv_dim,
                t1 - t0);
}

bllm_status bllm_llama_attention(const bllm_llama_hparams *hp, const bllm_llama_layer *L, int cache_layer,
                                 bllm_llama_state *s, bllm_pool *pool, int T, int pos)
{
    if (cache_layer < 0 || cache_layer >= s->n_layers || T < 1 || T > s->max_batch || pos < 0 ||
        T > s->n_ctx - pos)
        return bllm_fail(BLLM_ERR_ARG, "attention: %d tokens at %d (layer %d) do not fit the state", T, pos,
                         cache_layer);
    bllm_status st = ensure_scratch(hp, s, bllm_pool_size(pool), s->n_ctx);
    if (st)
        return st;
    attention_job aj = {.hp = hp, .s = s, .layer = cache_layer, .n_tok = T, .pos = pos};
    if (T == 1 && grouped_attention(hp, s, pos + 1)) {
        /* decoding: each KV head's job rotates and caches its own rows */
        matmul(pool, s->xb, T, s->q, &L->wq, s->k, &L->wk, s->v, &L->wv);
        aj.rope_and_cache = true;
        bllm_pool_run(pool, attention_group_worker, &aj);
        return BLLM_OK;
    }
    qkv_rope(hp, L, s, pool, T);
    token_stage cw = {.fn = cache_tokens, .hp = hp, .s = s, .layer = cache_layer, .pos = pos, .T = T};
    run_tokens(pool, &cw);
    if (T >= ATT_BLOCKED_MIN) {
        aj.n_qblk = (T + ATT_QB - 1) / ATT_QB;
        atomic_init(&aj.next, 0);
        bllm_pool_run(pool, attention_blocked_worker, &aj);
    } else if (grouped_attention(hp, s, pos + 1)) {
        bllm_pool_run(pool, attention_group_worker, &aj);
    } else {
        bllm_pool_run(pool, attention_rows_worker, &aj);
    }
    return BLLM_OK;
}

void bllm_llama_attn_residual(const bllm_llama_hparams *hp, const bllm_llama_layer *L, bllm_llama_state *s,
                              bllm_pool *pool, int T)
{
    (void)hp;
    matmul_add(pool, s->att_out, T, s->xb, &L->wo, s->x);
}

void bllm_llama_ffn_norm(const bllm_llama_hparams *hp, const bllm_llama_layer *L, bllm_llama_state *s,
                         bllm_pool *pool, int T)
{
    token_stage st = {.fn = norm_tokens, .hp = hp, .s = s, .weight = L->ffn_norm, .T = T};
    run_tokens(pool, &st);
}

void bllm_llama_ffn_hidden(const bllm_llama_hparams *hp, const bllm_llama_layer *L, bllm_llama_state *s,
                           bllm_pool *pool, int T)
{
    (void)hp;
    matmul_swiglu(pool, s->xb, T, s->hb, &L->w_gate, s->hb2, &L->w_up);
}

void bllm_llama_ffn_residual(const bllm_llama_hparams *hp, const bllm_llama_layer *L, bllm_llama_state *s,
                             bllm_pool *pool, int T)
{
    (void)hp;
    matmul_add(pool, s->hb, T, s->xb, &L->w_down, s->x);
}

/* ---------------------------------------------------------- the forward */

static bllm_status forward_batch(const bllm_llama_weights *w, bllm_llama_state *s, bllm_pool *pool,
                                 const int32_t *tokens, int T, int pos, float *logits, bool all_logits)
{
    const bllm_llama_hparams *hp = &w->hp;
    const int dim = (int)hp->dim;

    /* Token embeddings; RoPE angles for this batch's positions. */
    for (int t = 0; t < T; t++)
        embed_row(&w->tok_embd, tokens[t], s->x + (size_t)t * dim);
    bllm_llama_set_positions(hp, s, T, pos);

    for (uint32_t l = 0; l < hp->n_layers; l++) {
        const bllm_llama_layer *L = &w->layers[l];
        /* Attention block, then the feed-forward block (SwiGLU). */
        bllm_llama_attn_norm(hp, L, s, pool, T);
        bllm_status st = bllm_llama_attention(hp, L, (int)l, s, pool, T, pos);
        if (st)
            return st;
        bllm_llama_attn_residual(hp, L, s, pool, T);
        bllm_llama_ffn_norm(hp, L, s, pool, T);
        bllm_llama_ffn_hidden(hp, L, s, pool, T);
        bllm_llama_ffn_residual(hp, L, s, pool, T);
    }

    if (!logits)
        return BLLM_OK;
    /* Final norm and output head, for every row or just the last. */
    int first = all_logits ? 0 : T - 1;
    for (int t = first; t < T; t++)
        rmsnorm(s->xb + (size_t)t * dim, s->x + (size_t)t * dim, w->output_norm, dim, hp->norm_eps);
    matmul(pool, s->xb + (size_t)first * dim, T - first, logits, &w->output, NULL, NULL, NULL, NULL);
    return BLLM_OK;
}

bllm_status bllm_llama_forward_multi(const bllm_llama_weights *w, bllm_llama_state *const *seq, const int *pos,
                                     int n, bllm_pool *pool, const int32_t *tokens, float *logits)
{
    const bllm_llama_hparams *hp = &w->hp;
    const int dim = (int)hp->dim, half = (int)hp->head_dim / 2, kv_dim = (int)(hp->n_kv_heads * hp->head_dim);
    bllm_llama_state *s = n > 0 ? seq[0] : NULL; /* whose buffers hold the batch */
    if (n < 1 || n > s->max_batch)
        return bllm_fail(BLLM_ERR_ARG, "%d sequences in one batch (1 to %d)", n, s ? s->max_batch : 0);
    int n_ctx_max = 0, min_pos = INT32_MAX;
    for (int t = 0; t < n; t++) {
        min_pos = pos[t] < min_pos ? pos[t] : min_pos;
        if (seq[t]->n_layers != (int)hp->n_layers)
            return bllm_fail(BLLM_ERR_ARG, "state has %d cache layers, the model %u", seq[t]->n_layers, hp->n_layers);
        if (pos[t] < 0 || pos[t] >= seq[t]->n_ctx)
            return bllm_fail(BLLM_ERR_CONTEXT, "sequence %d is full (%d of %d tokens)", t, pos[t], seq[t]->n_ctx);
        if (tokens[t] < 0 || (uint32_t)tokens[t] >= hp->n_vocab)
            return bllm_fail(BLLM_ERR_ARG, "token id %d out of range (vocabulary %u)", tokens[t], hp->n_vocab);
        n_ctx_max = seq[t]->n_ctx > n_ctx_max ? seq[t]->n_ctx : n_ctx_max;
    }
    bllm_status st = ensure_scratch(hp, s, bllm_pool_size(pool), n_ctx_max);
    if (st)
        return st;
    for (int t = 0; t < n; t++) {
        embed_row(&w->tok_embd, tokens[t], s->x + (size_t)t * dim);
        for (int i = 0; i < half; i++) {
            float angle = (float)pos[t] * s->inv_freq[i];
            s->rope_cos[t * half + i] = cosf(angle);
            s->rope_sin[t * half + i] = sinf(angle);
        }
    }
    for (uint32_t l = 0; l < hp->n_layers; l++) {
        const bllm_llama_layer *L = &w->layers[l];
        bllm_llama_attn_norm(hp, L, s, pool, n);
        qkv_rope(hp, L, s, pool, n);
        for (int t = 0; t < n; t++)
            cache_write(seq[t], (int)l, pos[t], (int)hp->head_dim, s->k + (size_t)t * kv_dim, s->v + (size_t)t * kv_dim,
                        1);
        attention_job aj = {.hp = hp, .s = s, .layer = (int)l, .n_tok = n, .seq = seq, .seq_pos = pos};
        bllm_pool_run(pool, grouped_attention(hp, s, min_pos + 1) ? attention_group_worker : attention_rows_worker,
                      &aj);
        bllm_llama_attn_residual(hp, L, s, pool, n);
        bllm_llama_ffn_norm(hp, L, s, pool, n);
        bllm_llama_ffn_hidden(hp, L, s, pool, n);
        bllm_llama_ffn_residual(hp, L, s, pool, n);
    }
    for (int t = 0; t < n; t++)
        rmsnorm(s->xb + (size_t)t * dim, s->x + (size_t)t * dim, w->output_norm, dim, hp->norm_eps);
    matmul(pool, s->xb, n, logits, &w->output, NULL, NULL, NULL, NULL);
    return BLLM_OK;
}

bllm_status bllm_llama_forward(const bllm_llama_weights *w, bllm_llama_state *s, bllm_pool *pool,
                               const int32_t *tokens, int n, int pos, float *logits, bool all_logits)
{
    if (n < 1)
        return bllm_fail(BLLM_ERR_ARG, "no tokens to evaluate");
    if (pos < 0 || n > s->n_ctx - pos)
        return bllm_fail(BLLM_ERR_CONTEXT, "%d tokens at position %d do not fit the %d-token context", n, pos,
                         s->n_ctx);
    if (s->n_layers != (int)w->hp.n_layers)
        return bllm_fail(BLLM_ERR_ARG, "state has %d cache layers, the model %u", s->n_layers, w->hp.n_layers);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= w->hp.n_vocab)
            return bllm_fail(BLLM_ERR_ARG, "token id %d out of range (vocabulary %u)", tokens[i], w->hp.n_vocab);
    size_t n_vocab = w->hp.n_vocab;
    for (int done = 0; done < n;) {
        int T = n - done < s->max_batch ? n - done : s->max_batch;
        bool last = done + T == n;
        float *out = NULL;
        if (logits && all_logits)
            out = logits + (size_t)done * n_vocab;
        else if (logits && last)
            out = logits;
        bllm_status st = forward_batch(w, s, pool, tokens + done, T, pos + done, out, all_logits);
        if (st)
            return st;
        done += T;
    }
    return BLLM_OK;
}
