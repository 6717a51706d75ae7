/* Throughput of the packed binary matmuls beside the f32 and f16 GEMV, as
 * markdown tables, and (--accuracy) the error int8 activations add.
 *
 *   bench-binary [--threads 1,2] [--min-time S] [--shape RxC]... [--types b1g,nm48,...]
 *                [--cold-mb N] [--gemm N_TOK] [--no-float] [--no-hot]
 *   bench-binary --accuracy [--stb PATH_TO_F32.stb]
 *
 * Shapes are W's rows x cols with y = W x (default 4096x4096, 4096x11008,
 * 11008x4096, 2048x5632). Every kernel runs on the runtime thread pool,
 * rows split in whole 32-row tiles. Two regimes:
 *   hot   the same matrix every call: at 1 bit/weight it stays in the LLC;
 *   cold  calls cycle through copies totalling >= --cold-mb (default 4 x the
 *         LLC), as a model's layers do: every call streams from DRAM.
 * GB/s counts the weight bytes the kernel reads (tensor bytes) per call;
 * for cold rows "read BW now" is the streaming read bandwidth measured
 * (same thread count, best of 1- and 4-stream passes over 8 x the L3) just
 * before and after the row, and "% BW" compares with it; GOP/s is 2 * rows * cols * n_tok per
 * second, "x f16" is the f16 GEMV time over this one (same shape, threads,
 * regime). Each figure is the median of calls repeated for --min-time after
 * a warm-up call. docs/binary-kernels.md explains the targets. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bllm.h"
#include "kernels/binary_simd.h"
#include "kernels/kernels.h"
#include "runtime/eval/bench.h"
#include "runtime/quant/rtn.h"
#include "runtime/format/stb.h"
#include "runtime/memory.h"
#include "runtime/threadpool.h"
#include "runtime/format/blockq.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static double unif(void) { return (double)(rnd() >> 11) * 0x1p-53; }
static float normal(void)
{
    double u1 = unif() + 0x1p-60, u2 = unif();
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ------------------------------------------------------------ running */

typedef struct {
    bllm_matmul_fn fn;
    float *y;
    const float *x;
    const void *w;
    int n_tok, cols, rows;
} job;

static void worker(void *arg, int ith, int nth)
{
    job *j = arg;
    int r0, r1;
    bllm_pool_range(j->rows, 32, ith, nth, &r0, &r1);
    if (r0 < r1)
        j->fn(j->y, j->x, j->w, j->n_tok, j->cols, j->rows, r0, r1);
}

/* Median seconds per call; copies[i] are n_copies identical matrices used
 * in turn. */
static double time_calls(bllm_pool *pool, job *j, const void *const *copies, int n_copies, double min_time)
{
    enum { MAX = 4000 };
    static double t[MAX];
    j->w = copies[0];
    bllm_pool_run(pool, worker, j); /* warm-up */
    int n = 0, k = 1 % n_copies;
    double start = bllm_time_s();
    while (n < MAX && (n < 5 || bllm_time_s() - start < min_time)) {
        j->w = copies[k];
        k = (k + 1) % n_copies;
        double t0 = bllm_time_s();
        bllm_pool_run(pool, worker, j);
        t[n++] = bllm_time_s() - t0;
    }
    qsort(t, (size_t)n, sizeof t[0], cmp_double);
    return t[n / 2];
}

/* A packed tensor of a random decomposition (values do not matter for
 * speed, but N:M codes must be valid and scales finite). */
static void *random_packed(bllm_type ty, int rows, int cols, uint64_t *nbytes)
{
    bllm_binary_decomp d;
    if (bllm_binary_decomp_init(&d, ty, rows, cols) != BLLM_OK)
        return NULL;
    size_t n = (size_t)rows * cols, ng = (size_t)rows * (cols / 64);
    int N = 0, M = 1;
    bllm_nm_params(ty, &N, &M, NULL);
    if (ty == BLLM_TYPE_STBLLM) /* 4:8, STBLLM's main setting */
        N = 4, M = 8;
    for (size_t i = 0; i < n; i += 64) {
        uint64_t b = rnd(), b2 = rnd();
        for (int k = 0; k < 64; k++) {
            d.sign[i + k] = (uint8_t)(b >> k & 1);
            if (d.sign2)
                d.sign2[i + k] = (uint8_t)(b2 >> k & 1);
        }
    }
    if (d.mask)
        for (size_t i = 0; i < n; i += (size_t)M) {
            int left = N;
            for (int k = 0; k < M; k++) {
                int keep = (int)(rnd() % (uint64_t)(M - k)) < left;
                d.mask[i + k] = (uint8_t)keep;
                left -= keep;
            }
        }
    if (d.col_salient)
        for (int c = 0; c < cols; c++)
            d.col_salient[c] = (uint8_t)(rnd() % 8 == 0);
    if (d.region) /* stbllm: regions of the kept non-salient weights, the residual sign only in salient ones */
        for (size_t i = 0; i < n; i++) {
            int c = (int)(i % (size_t)cols);
            d.region[i] = (uint8_t)(d.mask[i] && !d.col_salient[c] ? rnd() % 3 : 0);
            d.sign2[i] &= d.mask[i] & d.col_salient[c];
        }
    if (d.bscale)
        for (size_t i = 0; i < (size_t)rows * bllm_billm_blocks(cols) * bllm_blk_scales(ty); i++)
            d.bscale[i] = bllm_fp16_round((float)(0.01 + 0.1 * unif()));
    float *arrs[] = {d.alpha, d.alpha2, d.mu, d.g, d.h};
    size_t lens[] = {ty == BLLM_TYPE_B1 ? (size_t)rows : ng, ng, ng, (size_t)rows, (size_t)cols};
    for (int a = 0; a < 5; a++)
        for (size_t i = 0; arrs[a] && i < lens[a]; i++)
            arrs[a][i] = bllm_fp16_round((float)(0.01 + 0.1 * unif()));
    *nbytes = bllm_type_tensor_bytes(ty, (uint64_t)rows, (uint64_t)cols);
    void *w = aligned_alloc(64, (*nbytes + 63) & ~(uint64_t)63);
    if (w && bllm_binary_pack(&d, w, *nbytes) != BLLM_OK) {
        free(w);
        w = NULL;
    }
    bllm_binary_decomp_free(&d);
    return w;
}

static void *random_dense(bllm_type ty, int rows, int cols, uint64_t *nbytes)
{
    if (bllm_type_is_blockq(ty)) { /* q8/q4: uniform values, quantized row by row */
        *nbytes = bllm_type_tensor_bytes(ty, (uint64_t)rows, (uint64_t)cols);
        uint8_t *w = aligned_alloc(64, (*nbytes + 63) & ~(uint64_t)63);
        float *row = malloc(sizeof(float) * (size_t)cols);
        if (!w || !row || !*nbytes) {
            free(w);
            free(row);
            return NULL;
        }
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++)
                row[c] = (float)(unif() - 0.5);
            bllm_blockq_quantize_row(ty, row, cols, w + (size_t)r * bllm_type_row_bytes(ty, (uint64_t)cols));
        }
        free(row);
        return w;
    }
    size_t n = (size_t)rows * cols, es = ty == BLLM_TYPE_F32 ? 4 : 2;
    *nbytes = n * es;
    void *w = aligned_alloc(64, (*nbytes + 63) & ~(uint64_t)63);
    if (!w)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        float v = (float)(unif() - 0.5);
        if (ty == BLLM_TYPE_F32)
            ((float *)w)[i] = v;
        else
            ((uint16_t *)w)[i] = bllm_f32_to_f16(v);
    }
    return w;
}

typedef struct {
    int rows, cols;
} shape;

typedef struct {
    bllm_type type;
    const char *path; /* kernel set name */
} variant;

static int parse_list(const char *s, int *out, int cap)
{
    int n = 0;
    while (*s && n < cap) {
        out[n++] = atoi(s);
        s = strchr(s, ',');
        if (!s)
            break;
        s++;
    }
    return n;
}

/* ------------------------------------------------------------ accuracy */

typedef struct {
    double num, den;
} rms;

/* Relative RMS error of the lut and float sets (and a512, the avx512 set,
 * if it runs here) against the scalar reference for W (f32, rows x cols)
 * binarized by RTN as ty. */
static void accuracy_case(const char *label, const float *wf, int rows, int cols, const float *x, int n_tok,
                          bllm_type ty, const bllm_kernel_set *lut, const bllm_kernel_set *flt,
                          const bllm_kernel_set *a512)
{
    bllm_binary_decomp d;
    bllm_rtn_options o;
    bllm_rtn_options_default(&o);
    if (bllm_type_is_block(ty)) /* no RTN form: BiLLM's and STBLLM's decompositions need calibration */
        return;
    if (bllm_binary_rtn(ty, wf, rows, cols, &o, &d) != BLLM_OK) {
        printf("| %s | %s | RTN failed: %s | | |\n", label, bllm_type_name(ty), bllm_last_error());
        return;
    }
    uint64_t nb = bllm_type_tensor_bytes(ty, (uint64_t)rows, (uint64_t)cols);
    void *w = malloc(nb);
    bllm_binary_pack(&d, w, nb);
    size_t ny = (size_t)n_tok * rows;
    float *y0 = malloc(ny * 4), *y1 = malloc(ny * 4), *y2 = malloc(ny * 4), *yd = malloc(ny * 4);
    float *y3 = malloc(ny * 4);
    bllm_kernels_scalar()->matmul[ty](y0, x, w, n_tok, cols, rows, 0, rows);
    lut->matmul[ty](y1, x, w, n_tok, cols, rows, 0, rows);
    flt->matmul[ty](y2, x, w, n_tok, cols, rows, 0, rows);
    if (a512)
        a512->matmul[ty](y3, x, w, n_tok, cols, rows, 0, rows);
    /* pb8: the kernels compute the b1g part; each set's salient_matvec adds
     * the companion's part (the same deltas, summed in its own order), so
     * add it for the binarization column */
    if (ty == BLLM_TYPE_PB8) {
        void *comp = NULL;
        uint64_t cbytes = 0;
        bllm_pb8_salient sal;
        if (bllm_pb8_salient_pack(&d, &comp, &cbytes) == BLLM_OK &&
            bllm_pb8_salient_parse(comp, cbytes, rows, cols, "salient", &sal) == BLLM_OK) {
            bllm_kernels_scalar()->salient_matvec(y0, x, w, &sal, n_tok, cols, rows, 0, rows);
            lut->salient_matvec(y1, x, w, &sal, n_tok, cols, rows, 0, rows);
            flt->salient_matvec(y2, x, w, &sal, n_tok, cols, rows, 0, rows);
            if (a512)
                a512->salient_matvec(y3, x, w, &sal, n_tok, cols, rows, 0, rows);
        }
        free(comp);
    }
    /* the binarization error itself, for scale: f32 W vs its RTN binary */
    bllm_kernels_scalar()->matmul[BLLM_TYPE_F32](yd, x, wf, n_tok, cols, rows, 0, rows);
    rms e1 = {0, 0}, e2 = {0, 0}, eb = {0, 0}, e3 = {0, 0};
    double worst = 0;
    for (size_t i = 0; i < ny; i++) {
        e1.num += (double)(y1[i] - y0[i]) * (y1[i] - y0[i]);
        e2.num += (double)(y2[i] - y0[i]) * (y2[i] - y0[i]);
        eb.num += (double)(y0[i] - yd[i]) * (y0[i] - yd[i]);
        if (a512)
            e3.num += (double)(y3[i] - y0[i]) * (y3[i] - y0[i]);
        e1.den += (double)y0[i] * y0[i];
        eb.den += (double)yd[i] * yd[i];
    }
    double ref_rms = sqrt(e1.den / ny);
    for (size_t i = 0; i < ny; i++)
        worst = fmax(worst, fabs(y1[i] - y0[i]) / ref_rms);
    char c3[32] = "–";
    if (a512)
        snprintf(c3, sizeof c3, "%.2e", sqrt(e3.num / e1.den));
    printf("| %s | %s | %.2e | %.2e | %s | %.2e | %.2e |\n", label, bllm_type_name(ty), sqrt(e1.num / e1.den), worst,
           c3, sqrt(e2.num / e1.den), sqrt(eb.num / eb.den));
    free(y3);
    bllm_binary_decomp_free(&d);
    free(w);
    free(y0);
    free(y1);
    free(y2);
    free(yd);
}

static int run_accuracy(const char *stb_path)
{
    const bllm_kernel_set *lut = bllm_kernels_select("avx2-lut"), *flt = bllm_kernels_select("avx2-float");
    if (!lut || !flt) {
        fprintf(stderr, "bench-binary: the avx2 sets do not run here: %s\n", bllm_last_error());
        return 1;
    }
    const bllm_kernel_set *a512 = bllm_kernels_select("avx512");
    printf("## Error of int8 activations (LUT path) against the f32 scalar reference\n\n");
    printf("rel RMS = ||y_lut - y_ref|| / ||y_ref||; max = max |y_lut - y_ref| / RMS(y_ref) (LUT: avx2-lut); "
           "the avx512 set's rel RMS where it runs (its VNNI build: quantized tables for the dense types), the "
           "float path's error and the binarization error itself (f32 W vs its RTN binary, f32 matmul) for "
           "scale.\n\n");
    printf("| W, x | format | LUT rel RMS | LUT max | avx512 rel RMS | float path rel RMS | binarization rel RMS |\n");
    printf("|---|---|---:|---:|---:|---:|---:|\n");
    int rows = 1024, cols = 4096, n_tok = 16;
    float *wf = malloc(sizeof(float) * rows * cols), *x = malloc(sizeof(float) * n_tok * cols);
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        wf[i] = normal() * 0.02f;
    for (size_t i = 0; i < (size_t)n_tok * cols; i++)
        x[i] = normal();
    for (int ty = 0; ty < BLLM_TYPE_COUNT; ty++)
        if (bllm_type_is_packed((bllm_type)ty))
            accuracy_case("normal 1024x4096, normal x", wf, rows, cols, x, n_tok, (bllm_type)ty, lut, flt, a512);
    /* heavy-tailed activations: a few large channels, as LLMs have */
    for (size_t i = 0; i < (size_t)n_tok * cols; i++)
        x[i] = normal() * ((i % cols) % 97 == 0 ? 20.0f : 1.0f);
    for (int ty = 0; ty < BLLM_TYPE_COUNT; ty++)
        if (bllm_type_is_packed((bllm_type)ty))
            accuracy_case("normal 1024x4096, x with 1% channels x20", wf, rows, cols, x, n_tok, (bllm_type)ty,
                          lut, flt, a512);
    free(wf);
    free(x);

    if (!stb_path)
        return 0;
    bllm_stb_file *f;
    if (bllm_stb_open(stb_path, false, &f) != BLLM_OK) {
        fprintf(stderr, "bench-binary: %s\n", bllm_last_error());
        return 1;
    }
    const bllm_stb_tensor *emb = bllm_stb_find_tensor(f, "token_embd.weight");
    const bllm_stb_tensor *norm = bllm_stb_find_tensor(f, "blk.0.attn_norm.weight");
    if (!emb || !norm || emb->type != BLLM_TYPE_F32 || norm->type != BLLM_TYPE_F32) {
        fprintf(stderr, "bench-binary: %s lacks f32 token_embd / blk.0.attn_norm\n", stb_path);
        bllm_stb_close(f);
        return 1;
    }
    /* the exact input of blk.0.attn_{q,k,v}: RMS-normed embeddings of 32
     * tokens spread over the vocabulary, times the norm weights */
    int dim = (int)emb->dims[1], vocab = (int)emb->dims[0];
    n_tok = 32;
    x = malloc(sizeof(float) * n_tok * dim);
    for (int t = 0; t < n_tok; t++) {
        const float *e = (const float *)emb->data + (size_t)((1 + 1543 * t) % vocab) * dim;
        double ss = 0;
        for (int c = 0; c < dim; c++)
            ss += (double)e[c] * e[c];
        float inv = (float)(1.0 / sqrt(ss / dim + 1e-5));
        for (int c = 0; c < dim; c++)
            x[(size_t)t * dim + c] = e[c] * inv * ((const float *)norm->data)[c];
    }
    const char *names[] = {"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight"};
    for (int k = 0; k < 3; k++) {
        const bllm_stb_tensor *t = bllm_stb_find_tensor(f, names[k]);
        if (!t || t->type != BLLM_TYPE_F32 || t->ndim != 2 || t->dims[1] != dim) {
            fprintf(stderr, "bench-binary: %s: no f32 %s with %d columns\n", stb_path, names[k], dim);
            continue;
        }
        char label[128];
        snprintf(label, sizeof label, "SmolLM2 %s %dx%d, its true input (32 tokens)", names[k], (int)t->dims[0],
                 dim);
        for (int ty = 0; ty < BLLM_TYPE_COUNT; ty++)
            if (bllm_type_is_packed((bllm_type)ty))
                accuracy_case(label, t->data, (int)t->dims[0], dim, x, n_tok, (bllm_type)ty, lut, flt, a512);
    }
    free(x);
    bllm_stb_close(f);
    return 0;
}

/* Streaming read bandwidth with 4 interleaved streams per thread: the
 * hardware prefetchers of some CPUs fill the memory pipe better that way
 * than with the single stream of bllm_read_bandwidth (on the development
 * machine the 4-row f32 GEMV outran it), and the better of the two is the
 * fair ceiling. */
typedef struct {
    const uint8_t *buf;
    size_t bytes;
    int streams; /* 1 or 4 per thread */
    uint64_t sink[64];
} bw_job;

#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("avx2"))) static void bw_worker(void *arg, int ith, int nth)
{
    bw_job *j = arg;
    const int S = j->streams;
    size_t per = j->bytes / (size_t)nth / (size_t)S / 128 * 128;
    const uint8_t *p = j->buf + per * (size_t)S * (size_t)ith;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    if (S == 1) {
        for (size_t i = 0; i < per; i += 128) {
            a0 = _mm256_xor_si256(a0, _mm256_load_si256((const __m256i *)(p + i)));
            a1 = _mm256_xor_si256(a1, _mm256_load_si256((const __m256i *)(p + i + 32)));
            a2 = _mm256_xor_si256(a2, _mm256_load_si256((const __m256i *)(p + i + 64)));
            a3 = _mm256_xor_si256(a3, _mm256_load_si256((const __m256i *)(p + i + 96)));
        }
    } else {
        for (size_t i = 0; i < per; i += 64) {
            a0 = _mm256_xor_si256(a0, _mm256_load_si256((const __m256i *)(p + i)));
            a1 = _mm256_xor_si256(a1, _mm256_load_si256((const __m256i *)(p + per + i)));
            a2 = _mm256_xor_si256(a2, _mm256_load_si256((const __m256i *)(p + 2 * per + i)));
            a3 = _mm256_xor_si256(a3, _mm256_load_si256((const __m256i *)(p + 3 * per + i)));
            a0 = _mm256_xor_si256(a0, _mm256_load_si256((const __m256i *)(p + i + 32)));
            a1 = _mm256_xor_si256(a1, _mm256_load_si256((const __m256i *)(p + per + i + 32)));
            a2 = _mm256_xor_si256(a2, _mm256_load_si256((const __m256i *)(p + 2 * per + i + 32)));
            a3 = _mm256_xor_si256(a3, _mm256_load_si256((const __m256i *)(p + 3 * per + i + 32)));
        }
    }
    __m256i a = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    j->sink[ith & 63] = (uint64_t)_mm256_extract_epi64(a, 0);
}

/* Best of `passes` passes with 1 and with 4 streams per thread over buf. */
static double probe_bw(bllm_pool *pool, const uint8_t *buf, size_t bytes, int passes)
{
    double best = 0;
    for (int S = 1; S <= 4; S += 3) {
        bw_job j = {.buf = buf, .bytes = bytes, .streams = S};
        for (int r = 0; r < passes; r++) {
            double t0 = bllm_time_s();
            bllm_pool_run(pool, bw_worker, &j);
            double t = bllm_time_s() - t0;
            if (t > 0 && (double)bytes / t > best)
                best = (double)bytes / t;
        }
    }
    return best;
}
#else
static double probe_bw(bllm_pool *pool, const uint8_t *buf, size_t bytes, int passes)
{
    (void)pool, (void)buf, (void)bytes, (void)passes;
    return 0;
}
#endif

/* The L3 this CPU sees: sysfs first (a VM's slice, as lscpu shows it),
 * sysconf (which may report the host's whole L3) second. */
static long l3_bytes(void)
{
    long v = 0;
    FILE *f = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r");
    if (f) {
        char unit = 0;
        if (fscanf(f, "%ld%c", &v, &unit) >= 1)
            v *= unit == 'K' ? 1024 : unit == 'M' ? 1 << 20 : 1;
        fclose(f);
    }
    if (v <= 0)
        v = sysconf(_SC_LEVEL3_CACHE_SIZE);
    return v > 0 ? v : 32l << 20;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    int threads[4] = {1, 2}, n_threads = 2;
    double min_time = 0.25;
    shape shapes[16];
    int n_shapes = 0;
    bllm_type types[16];
    int n_types = 0, gemm = 32, want_float = 1, want_hot = 1, accuracy = 0;
    double cold_mb = 0;
    const char *stb = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--threads") && v)
            n_threads = parse_list(argv[++i], threads, 4);
        else if (!strcmp(a, "--min-time") && v)
            min_time = atof(argv[++i]);
        else if (!strcmp(a, "--shape") && v && n_shapes < 16 &&
                 sscanf(argv[++i], "%dx%d", &shapes[n_shapes].rows, &shapes[n_shapes].cols) == 2)
            n_shapes++;
        else if (!strcmp(a, "--types") && v) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", argv[++i]);
            for (char *s = strtok(buf, ","); s && n_types < 16; s = strtok(NULL, ","))
                if (bllm_type_from_name(s, &types[n_types]))
                    n_types++;
                else {
                    fprintf(stderr, "bench-binary: unknown type '%s'\n", s);
                    return 2;
                }
        } else if (!strcmp(a, "--cold-mb") && v)
            cold_mb = atof(argv[++i]);
        else if (!strcmp(a, "--gemm") && v)
            gemm = atoi(argv[++i]);
        else if (!strcmp(a, "--no-float"))
            want_float = 0;
        else if (!strcmp(a, "--no-hot"))
            want_hot = 0;
        else if (!strcmp(a, "--accuracy"))
            accuracy = 1;
        else if (!strcmp(a, "--stb") && v)
            stb = argv[++i];
        else {
            fprintf(stderr, "usage: bench-binary [--threads 1,2] [--min-time S] [--shape RxC]... "
                            "[--types b1g,nm48,...] [--cold-mb N] [--gemm N_TOK] [--no-float] [--no-hot]\n"
                            "       bench-binary --accuracy [--stb F32_MODEL.stb]\n");
            return 2;
        }
    }
    if (accuracy)
        return run_accuracy(stb);
    if (n_shapes == 0) {
        shape def[] = {{4096, 4096}, {4096, 11008}, {11008, 4096}, {2048, 5632}};
        memcpy(shapes, def, sizeof def);
        n_shapes = 4;
    }
    if (n_types == 0)
        for (int t = 0; t < BLLM_TYPE_COUNT; t++)
            if (bllm_type_is_packed((bllm_type)t) || bllm_type_is_blockq((bllm_type)t))
                types[n_types++] = (bllm_type)t;

    const bllm_kernel_set *avx2 = bllm_kernels_select("avx2");
    const bllm_kernel_set *lut = bllm_kernels_select("avx2-lut"), *flt = bllm_kernels_select("avx2-float");
    if (!avx2 || !lut || !flt) {
        fprintf(stderr, "bench-binary: the avx2 sets do not run here: %s\n", bllm_last_error());
        return 1;
    }
    const bllm_kernel_set *avx512 = bllm_kernels_select("avx512");
    const bllm_kernel_set *pop = bllm_kernels_select("avx512-pop"); /* the popcount path */

    char cpu[256], feat[512];
    bllm_cpu_name(cpu, sizeof cpu);
    bllm_cpu_features(feat, sizeof feat);
    long llc = l3_bytes();
    if (cold_mb <= 0)
        cold_mb = 8.0 * (double)llc / (1 << 20);
    printf("# bench-binary\n\nCPU: %s (%s); L3 %ld MiB; build %s\n", cpu, feat, llc >> 20, bllm_build_id());
    bllm_pool *pools[4];
    for (int k = 0; k < n_threads; k++)
        if (bllm_pool_new(threads[k], &pools[k]) != BLLM_OK) {
            fprintf(stderr, "bench-binary: %s\n", bllm_last_error());
            return 1;
        }
    /* The bandwidth of a shared machine drifts by tens of percent over
     * minutes, so besides the figure at the start (runtime/eval/membw.c, and a
     * 4-stream probe) every cold row is preceded by a short probe over a
     * buffer kept for the purpose, and its "% BW" is against that. */
    double bw[4] = {0};
    size_t bw_bytes = (size_t)(8.0 * llc > 256e6 ? 8.0 * llc : 256e6);
    /* Weights and probe in huge pages, as bllm_model_load puts them. */
    uint8_t *bw_buf = bllm_large_alloc(bw_bytes);
    if (!bw_buf) {
        fprintf(stderr, "bench-binary: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < bw_bytes; i += 4096)
        memset(bw_buf + i, (int)(i >> 12), bw_bytes - i < 4096 ? bw_bytes - i : 4096);
    for (int k = 0; k < n_threads; k++) {
        double one = 0, probe = probe_bw(pools[k], bw_buf, bw_bytes, 5);
        if (bllm_read_bandwidth(bw_bytes, threads[k], 5, &one) != BLLM_OK) {
            fprintf(stderr, "bench-binary: %s\n", bllm_last_error());
            return 1;
        }
        bw[k] = one > probe ? one : probe;
        printf("Read bandwidth, %d thread%s: %.1f GB/s at the start (bllm_read_bandwidth %.1f, 1- and 4-stream "
               "probe %.1f; best of 5 passes over %zu MiB)\n",
               threads[k], threads[k] > 1 ? "s" : "", bw[k] * 1e-9, one * 1e-9, probe * 1e-9, bw_bytes >> 20);
    }
    printf("Kernels of the \"avx2\" set: ");
    for (int t = 0; t < n_types; t++)
        printf("%s%s=%s", t ? ", " : "", bllm_type_name(types[t]),
               avx2->matmul[types[t]] == flt->matmul[types[t]] ? "float" : "lut");
    printf(" (n_tok 1 and > 1 alike); avx512: %s", avx512 ? "runs" : bllm_last_error());
    printf("; avx512-pop (popcount path for the tile-shaped types): %s\n", pop ? "runs" : bllm_last_error());
    printf("Cold: calls cycle through copies of the matrix totalling >= %.0f MiB. Median of >= %.2f s per row.\n\n",
           cold_mb, min_time);
    printf("| W rows x cols | format | bits/w | set | n_tok | threads | regime | ms/call | GB/s | read BW now | "
           "%% BW | GOP/s | x f16 |\n");
    printf("|---|---|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|\n");
    fflush(stdout);

    for (int si = 0; si < n_shapes; si++) {
        int rows = shapes[si].rows, cols = shapes[si].cols;
        int ntok_max = gemm > 1 ? gemm : 1;
        float *x = malloc(sizeof(float) * (size_t)ntok_max * cols);
        float *y = malloc(sizeof(float) * (size_t)ntok_max * rows);
        for (size_t i = 0; i < (size_t)ntok_max * cols; i++)
            x[i] = normal();
        double f16_time[4][2] = {{0}}; /* [threads][hot/cold] */
        /* dense f32 and f16 first (avx2.c), then each binary type and path */
        bllm_type all[18];
        int n_all = 0;
        all[n_all++] = BLLM_TYPE_F32;
        all[n_all++] = BLLM_TYPE_F16;
        for (int t = 0; t < n_types; t++)
            all[n_all++] = types[t];
        for (int ti = 0; ti < n_all; ti++) {
            bllm_type ty = all[ti];
            int packed = bllm_type_is_packed(ty);
            uint64_t nb = 0;
            void *w0 = packed ? random_packed(ty, rows, cols, &nb) : random_dense(ty, rows, cols, &nb);
            if (!w0) {
                fprintf(stderr, "bench-binary: cannot build a %dx%d %s tensor\n", rows, cols, bllm_type_name(ty));
                return 1;
            }
            int n_copies = (int)ceil(cold_mb * (1 << 20) / (double)nb);
            if (n_copies < 2)
                n_copies = 2;
            const void **copies = malloc(sizeof(void *) * n_copies);
            /* One huge-page arena, as a loaded model's weights lie in. */
            size_t stride = (nb + 63) & ~(uint64_t)63, arena_bytes = stride * (size_t)n_copies;
            uint8_t *arena = bllm_large_alloc(arena_bytes);
            if (!arena) {
                fprintf(stderr, "bench-binary: out of memory for %d copies\n", n_copies);
                return 1;
            }
            for (int c = 0; c < n_copies; c++) {
                memcpy(arena + stride * (size_t)c, w0, nb);
                copies[c] = arena + stride * (size_t)c;
            }
            free(w0);
            const bllm_kernel_set *sets[4];
            int n_sets = 0;
            if (bllm_type_is_blockq(ty)) { /* maddubs; vpdpbusd in avx512 where the CPU has VNNI */
                sets[n_sets++] = avx2;
                if (avx512)
                    sets[n_sets++] = avx512;
            } else if (!packed) {
                sets[n_sets++] = avx2;
            } else {
                sets[n_sets++] = lut;
                if (want_float)
                    sets[n_sets++] = flt;
                if (avx512)
                    sets[n_sets++] = avx512;
                if (pop && pop->matmul[ty] != avx512->matmul[ty])
                    sets[n_sets++] = pop;
            }
            double bpw = 8.0 * (double)nb / ((double)rows * cols);
            for (int s = 0; s < n_sets; s++)
                for (int k = 0; k < n_threads; k++)
                    for (int regime = 0; regime < 3; regime++) {
                        /* 0: GEMV cold, 1: GEMV hot, 2: GEMM hot */
                        if (regime == 1 && !want_hot)
                            continue;
                        if (regime == 2 && (gemm <= 1 || (!packed && ty == BLLM_TYPE_F32)))
                            continue;
                        int n_tok = regime == 2 ? gemm : 1;
                        job j = {sets[s]->matmul[ty], y, x, NULL, n_tok, cols, rows};
                        double bw_now = regime == 0 ? probe_bw(pools[k], bw_buf, bw_bytes, 2) : 0;
                        double sec = time_calls(pools[k], &j, copies, regime == 0 ? n_copies : 1, min_time);
                        if (regime == 0) /* after the row too: the better of the two */
                            bw_now = fmax(bw_now, probe_bw(pools[k], bw_buf, bw_bytes, 2));
                        double gbs = (double)nb / sec * 1e-9;
                        if (ty == BLLM_TYPE_F16 && regime < 2)
                            f16_time[k][regime] = sec;
                        char vs[32] = "", pct[32] = "", bwc[32] = "";
                        if (regime < 2 && f16_time[k][regime] > 0)
                            snprintf(vs, sizeof vs, "%.1f", f16_time[k][regime] / sec);
                        if (regime == 0) {
                            snprintf(pct, sizeof pct, "%.0f%%", 100.0 * gbs * 1e9 / bw_now);
                            snprintf(bwc, sizeof bwc, "%.1f", bw_now * 1e-9);
                        }
                        printf("| %dx%d | %s | %.3f | %s | %d | %d | %s | %.3f | %.1f | %s | %s | %.1f | %s |\n",
                               rows, cols, bllm_type_name(ty), bpw, packed || bllm_type_is_blockq(ty) ? sets[s]->name : "avx2", n_tok,
                               threads[k], regime == 0 ? "cold" : "hot", sec * 1e3, gbs, bwc, pct,
                               2.0 * rows * cols * n_tok / sec * 1e-9, vs);
                        fflush(stdout);
                    }
            bllm_large_free(arena, arena_bytes);
            free(copies);
        }
        free(x);
        free(y);
    }
    for (int k = 0; k < n_threads; k++)
        bllm_pool_free(pools[k]);
    bllm_large_free(bw_buf, bw_bytes);
    return 0;
}
