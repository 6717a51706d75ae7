#include "runtime/quant/engine.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "models/llama.h"
#include "runtime/error.h"
#include "runtime/format/types.h"
#include "runtime/quant/calib.h"
#include "runtime/threadpool.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------ activations */

/* The activations of every window at one point of the block, in f32 or f16. */
typedef struct {
    bool f16;
    size_t per_window; /* values */
    void *data;
} act_buf;

static bllm_status act_alloc(act_buf *b, bool f16, size_t windows, size_t per_window)
{
    b->f16 = f16;
    b->per_window = per_window;
    b->data = malloc(windows * per_window * (f16 ? 2 : 4));
    if (!b->data)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory for the calibration activations (%.1f GiB)",
                         (double)(windows * per_window * (f16 ? 2 : 4)) / (1 << 30));
    return BLLM_OK;
}

static void act_put(act_buf *b, int w, const float *src, size_t n)
{
    if (!b->f16) {
        memcpy((float *)b->data + (size_t)w * b->per_window, src, n * sizeof(float));
        return;
    }
    uint16_t *dst = (uint16_t *)b->data + (size_t)w * b->per_window;
    for (size_t i = 0; i < n; i++)
        dst[i] = bllm_f32_to_f16(src[i]);
}

static void act_get(const act_buf *b, int w, float *dst, size_t n)
{
    if (!b->f16) {
        memcpy(dst, (const float *)b->data + (size_t)w * b->per_window, n * sizeof(float));
        return;
    }
    const uint16_t *src = (const uint16_t *)b->data + (size_t)w * b->per_window;
    for (size_t i = 0; i < n; i++)
        dst[i] = bllm_f16_to_f32(src[i]);
}

/* --------------------------------------------------------------- Hessians */

/* S = sum over calibration tokens of x x^T (upper triangle), H = 2 S /
 * tokens at the end. For each window the rows of the upper triangle are
 * split across the pool's threads in shares of equal work; each thread
 * computes its rows of the window's product as one single-precision
 * product (OpenBLAS sgemm: at most max_tokens terms per entry, twice as
 * fast as double) and adds them into S, which is double, so the
 * accumulation over the whole calibration set is in double. Splitting the
 * output rather than the tokens keeps one S and one window product
 * whatever the thread count (a 7B model's ffn_down Hessian is 1 GB in
 * double). OpenBLAS's own threads stay off: they would spin against the
 * pool's between calls. */
typedef struct {
    int n, nth;
    double *S;      /* n x n, upper triangle; the finished H in place */
    float *P;       /* n x n: one window's product, upper rows */
    int *bound;     /* nth + 1 row bounds for the current n */
    const float *x; /* the window being added: T x n */
    int T;
    uint64_t tokens;
} hessian;

static bllm_status hessian_init(hessian *h, int n, int nth)
{
    memset(h, 0, sizeof *h);
    h->nth = nth;
    h->S = calloc((size_t)n * n, sizeof(double));
    h->P = malloc((size_t)n * n * sizeof(float));
    h->bound = malloc((size_t)(nth + 1) * sizeof(int));
    if (!h->S || !h->P || !h->bound)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory for a %d x %d Hessian", n, n);
    return BLLM_OK;
}

static void hessian_free(hessian *h)
{
    free(h->S);
    free(h->P);
    free(h->bound);
    memset(h, 0, sizeof *h);
}

/* Start a Hessian of n inputs (n at most the size given to init): zero S
 * and split the triangle's rows (row i holds n - i entries) evenly. */
static void hessian_reset(hessian *h, int n)
{
    h->n = n;
    memset(h->S, 0, (size_t)n * n * sizeof(double));
    h->tokens = 0;
    const double total = 0.5 * (double)n * (n + 1);
    double acc = 0.0;
    int t = 1;
    h->bound[0] = 0;
    for (int i = 0; i < n && t < h->nth; i++) {
        acc += n - i;
        if (acc >= total * t / h->nth)
            h->bound[t++] = i + 1;
    }
    while (t <= h->nth)
        h->bound[t++] = n;
}

static void hessian_worker(void *arg, int ith, int nth)
{
    (void)nth;
    hessian *h = arg;
    const int n = h->n, i0 = h->bound[ith], i1 = h->bound[ith + 1];
    if (i0 >= i1)
        return;
    /* rows i0..i1-1 of the upper triangle of X^T X: the diagonal block's
     * triangle, then the rectangle right of it */
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, i1 - i0, h->T, 1.0f, h->x + i0, n, 0.0f,
                h->P + (size_t)i0 * n + i0, n);
    if (i1 < n)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, i1 - i0, n - i1, h->T, 1.0f, h->x + i0, n, h->x + i1,
                    n, 0.0f, h->P + (size_t)i0 * n + i1, n);
    for (int i = i0; i < i1; i++) {
        const float *p = h->P + (size_t)i * n;
        double *srow = h->S + (size_t)i * n;
        for (int j = i; j < n; j++)
            srow[j] += p[j];
    }
}

static void hessian_add(hessian *h, bllm_pool *pool, const float *x, int T)
{
    h->x = x;
    h->T = T;
    bllm_pool_run(pool, hessian_worker, h);
    h->tokens += (uint64_t)T;
}

/* H = 2 S / tokens, both triangles, in S's place. */
static const double *hessian_finish(hessian *h)
{
    const int n = h->n;
    const double f = h->tokens ? 2.0 / (double)h->tokens : 0.0;
    for (int i = 0; i < n; i++)
        for (int j = i; j < n; j++)
            h->S[(size_t)i * n + j] = h->S[(size_t)j * n + i] = f * h->S[(size_t)i * n + j];
    return h->S;
}

/* ------------------------------------------------------------ the engine */

enum { M_Q, M_K, M_V, M_O, M_GATE, M_UP, M_DOWN, M_COUNT };
static const char *const mat_names[M_COUNT] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                               "ffn_gate", "ffn_up", "ffn_down"};

typedef struct {
    const bllm_engine_source *src;
    const bllm_llama_hparams *hp;
    const bllm_engine_params *p;
    bllm_engine_result *out;
    bllm_pool *pool;
    bllm_llama_state *st;
    int N, T;          /* windows, tokens per window */
    int dim, q_dim, kv_dim, hidden;
    act_buf X, A, M;   /* block input; attention out then h; FFN hidden */
    hessian hs;        /* reused for every Hessian (largest input) */
    const double *H;   /* the finished Hessian (in hs's memory) */
    bllm_gptq_hinv hinv; /* its damped inverse factor */
    float *w[M_COUNT]; /* the current layer's weights (simulated once quantized) */
    float *attn_norm, *ffn_norm;
    bllm_llama_layer L;
    int layer;
    double t_fwd, t_hess, t_method;
} engine;

static void progress(const engine *e, const char *what)
{
    if (!e->p->progress)
        return;
    int n = (int)e->hp->n_layers, width = 24, filled = width * e->layer / (n ? n : 1);
    char bar[32];
    for (int k = 0; k < width; k++)
        bar[k] = k < filled ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r[%s] layer %d/%d %-12s", bar, e->layer + 1, n, what);
    fflush(stderr);
}

/* The forward's f32 products by single-threaded BLAS sgemm, with the
 * kernels' contract (y = x W^T for rows r0..r1-1; each pool thread calls it
 * on its own rows): about 1.7x the runtime's own f32 kernel on the
 * calibration windows' 2048-token batches. */
static void matmul_blas(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0, int r1)
{
    if (r0 >= r1 || n_tok <= 0)
        return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_tok, r1 - r0, cols, 1.0f, x, cols,
                (const float *)w + (size_t)r0 * cols, cols, 0.0f, y + r0, rows);
}

static void set_matrix(bllm_matrix *m, const float *w, int rows, int cols)
{
    memset(m, 0, sizeof *m);
    m->data = w;
    m->type = BLLM_TYPE_F32;
    m->rows = rows;
    m->cols = cols;
    m->matmul = matmul_blas;
}

static void mat_shape(const engine *e, int i, int *rows, int *cols)
{
    static const int kind_rows[M_COUNT] = {0, 1, 1, 2, 3, 3, 2}, kind_cols[M_COUNT] = {2, 2, 2, 0, 2, 2, 3};
    const int d[4] = {e->q_dim, e->kv_dim, e->dim, e->hidden};
    *rows = d[kind_rows[i]];
    *cols = d[kind_cols[i]];
}

static bllm_status read_layer(engine *e)
{
    char name[96];
    bllm_status s;
    snprintf(name, sizeof name, "blk.%d.attn_norm.weight", e->layer);
    if ((s = e->src->read_f32(e->src->ctx, name, e->attn_norm, (uint64_t)e->dim)))
        return s;
    snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", e->layer);
    if ((s = e->src->read_f32(e->src->ctx, name, e->ffn_norm, (uint64_t)e->dim)))
        return s;
    for (int i = 0; i < M_COUNT; i++) {
        int rows, cols;
        mat_shape(e, i, &rows, &cols);
        snprintf(name, sizeof name, "blk.%d.%s.weight", e->layer, mat_names[i]);
        if ((s = e->src->read_f32(e->src->ctx, name, e->w[i], (uint64_t)rows * cols)))
            return s;
    }
    e->L.attn_norm = e->attn_norm;
    e->L.ffn_norm = e->ffn_norm;
    bllm_matrix *ms[M_COUNT] = {&e->L.wq, &e->L.wk, &e->L.wv, &e->L.wo, &e->L.w_gate, &e->L.w_up, &e->L.w_down};
    for (int i = 0; i < M_COUNT; i++) {
        int rows, cols;
        mat_shape(e, i, &rows, &cols);
        set_matrix(ms[i], e->w[i], rows, cols);
    }
    return BLLM_OK;
}

/* Verify that the packed bytes decode to exactly the simulated weights. */
static bllm_status check_packed(const bllm_engine_matrix *m, const float *sim)
{
    bllm_pb8_salient sal, *psal = NULL;
    bllm_status s;
    if (m->companion) {
        if ((s = bllm_pb8_salient_parse(m->companion, m->companion_bytes, m->rows, m->cols, m->name, &sal)))
            return s;
        psal = &sal;
    }
    size_t n = (size_t)m->rows * m->cols;
    float *deq = malloc(n * sizeof *deq);
    if (!deq)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory checking %s", m->name);
    s = bllm_binary_dequantize(m->type, m->data, m->nbytes, psal, m->rows, m->cols, deq);
    for (size_t i = 0; !s && i < n; i++)
        if (memcmp(&deq[i], &sim[i], sizeof(float)))
            s = bllm_fail(BLLM_ERR_ARG, "internal error: %s packed as %s decodes to %.9g at row %zu column %zu, "
                          "the quantizer simulated %.9g", m->name, bllm_type_name(m->type), (double)deq[i],
                          i / (size_t)m->cols, i % (size_t)m->cols, (double)sim[i]);
    free(deq);
    return s;
}

static bllm_status quantize(engine *e, int i)
{
    const bllm_method *method = e->p->method;
    int rows, cols;
    mat_shape(e, i, &rows, &cols);
    if (!bllm_type_shape_ok(method->type, (uint64_t)rows, (uint64_t)cols))
        return BLLM_OK; /* stays float; the writer reports it */
    progress(e, mat_names[i]);
    if (e->p->probe) {
        char name[96];
        snprintf(name, sizeof name, "blk.%d.%s.weight", e->layer, mat_names[i]);
        double t0 = now();
        bllm_status s = e->p->probe(e->p->probe_ctx, e->layer, name, e->w[i], rows, cols, e->H, &e->hinv, e->pool);
        e->t_method += now() - t0;
        return s;
    }
    bllm_engine_result *out = e->out;
    bllm_engine_matrix *grown = realloc(out->m, (size_t)(out->n + 1) * sizeof *out->m);
    if (!grown)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    out->m = grown;
    bllm_engine_matrix *m = &out->m[out->n];
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "blk.%d.%s.weight", e->layer, mat_names[i]);
    m->layer = e->layer;
    m->rows = rows;
    m->cols = cols;
    m->type = method->type;
    double t0 = now();
    float *sim = malloc((size_t)rows * cols * sizeof *sim);
    if (!sim)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory for %s", m->name);
    bllm_binary_decomp d;
    bllm_method_options mo = e->p->mopts;
    if (e->p->layer_nm_n)
        mo.nm_n = e->p->layer_nm_n[e->layer];
    bllm_status s = method->run(e->w[i], rows, cols, e->H, &e->hinv, &mo, e->pool, &d, sim, &m->rep);
    if (s) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", bllm_last_error());
        free(sim);
        return bllm_fail(s, "%s: %s", m->name, msg);
    }
    m->nbytes = bllm_type_tensor_bytes(m->type, (uint64_t)rows, (uint64_t)cols);
    m->data = malloc(m->nbytes);
    s = m->data ? bllm_binary_pack(&d, m->data, m->nbytes) : bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    if (!s && m->type == BLLM_TYPE_PB8)
        s = bllm_pb8_salient_pack(&d, &m->companion, &m->companion_bytes);
    bllm_binary_decomp_free(&d);
    out->n++; /* owned by the result from here, freed with it */
    if (!s)
        s = check_packed(m, sim);
    if (!s) {
        memcpy(e->w[i], sim, (size_t)rows * cols * sizeof *sim);
        if (e->p->keep_sim)
            m->sim = sim, sim = NULL;
    }
    free(sim);
    m->seconds = now() - t0;
    e->t_method += m->seconds;
    return s;
}

/* Quantize matrices [i0, i1) from the Hessian gathered so far. */
static bllm_status quantize_group(engine *e, int i0, int i1)
{
    double t0 = now();
    e->H = hessian_finish(&e->hs);
    e->t_hess += now() - t0;
    /* one inverse for the matrices sharing this Hessian */
    bllm_gptq_hinv_free(&e->hinv);
    bllm_status s = e->p->probe && !e->p->probe_hinv ? BLLM_OK
                                                      : bllm_gptq_hinv_init(e->H, e->hs.n, e->p->mopts.percdamp,
                                                                            &e->hinv);
    if (s) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", bllm_last_error());
        return bllm_fail(s, "blk.%d.%s: %s", e->layer, mat_names[i0], msg);
    }
    e->out->hinv_retries += e->hinv.retries;
    for (int i = i0; i < i1 && !s; i++)
        s = quantize(e, i);
    return s;
}

static bllm_status run_layer(engine *e)
{
    bllm_llama_state *st = e->st;
    const bllm_llama_hparams *hp = e->hp;
    const int T = e->T;
    const size_t nx = (size_t)T * e->dim, nq = (size_t)T * e->q_dim, nh = (size_t)T * e->hidden;
    bllm_status s;
    double t0;

    /* q, k, v: the normed block input */
    progress(e, "inputs");
    hessian_reset(&e->hs, e->dim);
    for (int w = 0; w < e->N; w++) {
        t0 = now();
        act_get(&e->X, w, st->x, nx);
        bllm_llama_attn_norm(hp, &e->L, st, e->pool, T);
        e->t_fwd += now() - t0, t0 = now();
        hessian_add(&e->hs, e->pool, st->xb, T);
        e->t_hess += now() - t0;
    }
    if ((s = quantize_group(e, M_Q, M_V + 1)))
        return s;

    /* o: attention of the quantized q, k, v */
    progress(e, "attention");
    hessian_reset(&e->hs, e->q_dim);
    for (int w = 0; w < e->N; w++) {
        t0 = now();
        act_get(&e->X, w, st->x, nx);
        bllm_llama_attn_norm(hp, &e->L, st, e->pool, T);
        if ((s = bllm_llama_attention(hp, &e->L, 0, st, e->pool, T, 0)))
            return s;
        act_put(&e->A, w, st->att_out, nq);
        e->t_fwd += now() - t0, t0 = now();
        hessian_add(&e->hs, e->pool, st->att_out, T);
        e->t_hess += now() - t0;
    }
    if ((s = quantize_group(e, M_O, M_O + 1)))
        return s;

    /* gate, up: h = x + o(attention), normed */
    progress(e, "ffn inputs");
    hessian_reset(&e->hs, e->dim);
    for (int w = 0; w < e->N; w++) {
        t0 = now();
        act_get(&e->X, w, st->x, nx);
        act_get(&e->A, w, st->att_out, nq);
        bllm_llama_attn_residual(hp, &e->L, st, e->pool, T);
        act_put(&e->A, w, st->x, nx);
        bllm_llama_ffn_norm(hp, &e->L, st, e->pool, T);
        e->t_fwd += now() - t0, t0 = now();
        hessian_add(&e->hs, e->pool, st->xb, T);
        e->t_hess += now() - t0;
    }
    if ((s = quantize_group(e, M_GATE, M_UP + 1)))
        return s;

    /* down: the SwiGLU of the quantized gate and up */
    progress(e, "ffn hidden");
    hessian_reset(&e->hs, e->hidden);
    for (int w = 0; w < e->N; w++) {
        t0 = now();
        act_get(&e->A, w, st->x, nx);
        bllm_llama_ffn_norm(hp, &e->L, st, e->pool, T);
        bllm_llama_ffn_hidden(hp, &e->L, st, e->pool, T);
        act_put(&e->M, w, st->hb, nh);
        e->t_fwd += now() - t0, t0 = now();
        hessian_add(&e->hs, e->pool, st->hb, T);
        e->t_hess += now() - t0;
    }
    if ((s = quantize_group(e, M_DOWN, M_DOWN + 1)))
        return s;

    /* the block's output: the next block's input */
    progress(e, "output");
    t0 = now();
    for (int w = 0; w < e->N; w++) {
        act_get(&e->A, w, st->x, nx);
        act_get(&e->M, w, st->hb, nh);
        bllm_llama_ffn_residual(hp, &e->L, st, e->pool, T);
        act_put(&e->X, w, st->x, nx);
    }
    e->t_fwd += now() - t0;
    return BLLM_OK;
}

/* The head's importance (bllm_engine_result.head_importance): the mean
 * square of each column of its input, the final norm of the last block's
 * outputs, over every calibration token. */
static bllm_status head_importance(engine *e, bllm_engine_result *out)
{
    const int dim = e->dim, T = e->T;
    float *g = malloc((size_t)dim * sizeof *g), *x = malloc((size_t)T * dim * sizeof *x);
    double *acc = calloc((size_t)dim, sizeof *acc);
    out->head_importance = malloc((size_t)dim * sizeof *out->head_importance);
    bllm_status s = g && x && acc && out->head_importance
                        ? e->src->read_f32(e->src->ctx, "output_norm.weight", g, (uint64_t)dim)
                        : bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    for (int w = 0; !s && w < e->N; w++) {
        act_get(&e->X, w, x, (size_t)T * dim);
        for (int t = 0; t < T; t++) {
            const float *xt = x + (size_t)t * dim;
            double ss = 0.0;
            for (int c = 0; c < dim; c++)
                ss += (double)xt[c] * xt[c];
            const double r = 1.0 / sqrt(ss / dim + (double)e->hp->norm_eps);
            for (int c = 0; c < dim; c++) {
                const double h = xt[c] * r * g[c];
                acc[c] += h * h;
            }
        }
    }
    for (int c = 0; !s && c < dim; c++)
        out->head_importance[c] = (float)(acc[c] / ((double)e->N * T));
    out->head_importance_n = s ? 0 : dim;
    free(g);
    free(x);
    free(acc);
    return s;
}

/* Embed every window's tokens into X. */
static bllm_status embed(engine *e, const bllm_calib *cal)
{
    const size_t n = (size_t)e->hp->n_vocab * e->dim;
    float *emb = malloc(n * sizeof *emb), *row = malloc((size_t)e->T * e->dim * sizeof *row);
    bllm_status s = emb && row ? e->src->read_f32(e->src->ctx, "token_embd.weight", emb, n)
                               : bllm_fail(BLLM_ERR_NOMEM, "out of memory for the token embeddings");
    for (int w = 0; !s && w < e->N; w++) {
        for (int t = 0; t < e->T; t++) {
            int32_t tok = cal->tokens[(size_t)w * e->T + t];
            if (tok < 0 || (uint32_t)tok >= e->hp->n_vocab) {
                s = bllm_fail(BLLM_ERR_FORMAT, "calibration token %d is outside the %u-token vocabulary", tok,
                              e->hp->n_vocab);
                break;
            }
            memcpy(row + (size_t)t * e->dim, emb + (size_t)tok * e->dim, (size_t)e->dim * sizeof(float));
        }
        act_put(&e->X, w, row, (size_t)e->T * e->dim);
    }
    free(emb);
    free(row);
    return s;
}

static bool want_f16(size_t bytes_f32)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    if (pages <= 0 || page <= 0)
        return false;
    return (double)bytes_f32 > 0.5 * (double)pages * (double)page;
}

void bllm_engine_result_free(bllm_engine_result *r)
{
    for (int i = 0; r && i < r->n; i++) {
        free(r->m[i].data);
        free(r->m[i].companion);
        free(r->m[i].sim);
    }
    if (r) {
        free(r->m);
        free(r->layer_nm_n);
        free(r->head_importance);
        memset(r, 0, sizeof *r);
    }
}

const bllm_engine_matrix *bllm_engine_find(const bllm_engine_result *r, const char *name)
{
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->m[i].name, name))
            return &r->m[i];
    return NULL;
}

bllm_status bllm_engine_run(const bllm_engine_source *src, const bllm_llama_hparams *hp,
                            const bllm_tokenizer_spec *tok, const bllm_engine_params *p, bllm_engine_result *out)
{
    memset(out, 0, sizeof *out);
    if (!p->method)
        return bllm_fail(BLLM_ERR_ARG, "no calibrated method given");
    if (p->calib_samples < 1)
        return bllm_fail(BLLM_ERR_ARG, "--calib-samples must be at least 1 (got %d)", p->calib_samples);
    if (p->calib_len < 2)
        return bllm_fail(BLLM_ERR_ARG, "--calib-len must be at least 2 (got %d)", p->calib_len);
    double t_start = now();
    engine e = {.src = src, .hp = hp, .p = p, .out = out};
    e.N = p->calib_samples;
    e.T = p->calib_len < (int)hp->max_seq_len ? p->calib_len : (int)hp->max_seq_len;
    e.dim = (int)hp->dim;
    e.q_dim = (int)(hp->n_heads * hp->head_dim);
    e.kv_dim = (int)(hp->n_kv_heads * hp->head_dim);
    e.hidden = (int)hp->hidden_dim;
    out->calib_len = e.T;
    out->n_layers = (int)hp->n_layers;
    if (p->layer_nm_n) {
        if (!(out->layer_nm_n = malloc(hp->n_layers * sizeof(int))))
            return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
        memcpy(out->layer_nm_n, p->layer_nm_n, hp->n_layers * sizeof(int));
    }

    bllm_tokenizer *tk = NULL;
    bllm_calib cal = {0};
    bllm_status s = bllm_tokenizer_new(tok, &tk);
    if (!s)
        s = bllm_calib_load(p->calib_path, tk, e.N, e.T, p->seed, &cal);
    bllm_tokenizer_free(tk);
    if (s)
        return s;
    snprintf(out->calib_sha256, sizeof out->calib_sha256, "%s", cal.sha256);
    out->calib_file_tokens = cal.file_tokens;

    int nth = p->n_threads > 0 ? p->n_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (nth < 1)
        nth = 1;
    /* BLAS runs single-threaded, inside the pool's threads (hessian_add) */
    openblas_set_num_threads(1);
    bllm_llama_hparams hp1 = *hp;
    hp1.n_layers = 1; /* one block at a time: one layer of KV cache */
    const int wide = e.q_dim > e.dim ? e.q_dim : e.dim;
    const size_t per_tok = (size_t)e.dim + (size_t)wide + (size_t)e.hidden;
    out->act_f16 = p->act_store == 16 || (p->act_store == 0 && want_f16((size_t)e.N * e.T * per_tok * sizeof(float)));
    const int max_in = e.hidden > wide ? e.hidden : wide;
    if (!s)
        s = bllm_pool_new(nth, &e.pool);
    if (!s)
        s = bllm_llama_state_new(&hp1, e.T, e.T, BLLM_KV_F32, &e.st);
    if (!s)
        s = act_alloc(&e.X, out->act_f16, (size_t)e.N, (size_t)e.T * e.dim);
    if (!s)
        s = act_alloc(&e.A, out->act_f16, (size_t)e.N, (size_t)e.T * wide);
    if (!s)
        s = act_alloc(&e.M, out->act_f16, (size_t)e.N, (size_t)e.T * e.hidden);
    if (!s)
        s = hessian_init(&e.hs, max_in, nth);
    e.attn_norm = malloc((size_t)e.dim * sizeof(float));
    e.ffn_norm = malloc((size_t)e.dim * sizeof(float));
    if (!s && (!e.attn_norm || !e.ffn_norm))
        s = bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    for (int i = 0; !s && i < M_COUNT; i++) {
        int rows, cols;
        mat_shape(&e, i, &rows, &cols);
        if (!(e.w[i] = malloc((size_t)rows * cols * sizeof(float))))
            s = bllm_fail(BLLM_ERR_NOMEM, "out of memory for layer weights");
    }
    if (!s)
        s = embed(&e, &cal);
    bllm_calib_free(&cal);
    if (!s) {
        bllm_llama_set_positions(hp, e.st, e.T, 0);
    }
    for (e.layer = 0; !s && e.layer < (int)hp->n_layers; e.layer++) {
        s = read_layer(&e);
        if (!s)
            s = run_layer(&e);
    }
    if (!s && !p->probe)
        s = head_importance(&e, out);
    if (p->progress) {
        e.layer = (int)hp->n_layers;
        fputc('\n', stderr);
    }
    for (int i = 0; i < M_COUNT; i++)
        free(e.w[i]);
    free(e.attn_norm);
    free(e.ffn_norm);
    bllm_gptq_hinv_free(&e.hinv);
    hessian_free(&e.hs);
    free(e.X.data);
    free(e.A.data);
    free(e.M.data);
    bllm_llama_state_free(e.st);
    bllm_pool_free(e.pool);
    out->seconds = now() - t_start;
    out->seconds_forward = e.t_fwd;
    out->seconds_hessian = e.t_hess;
    out->seconds_method = e.t_method;
    if (s)
        bllm_engine_result_free(out);
    return s;
}
