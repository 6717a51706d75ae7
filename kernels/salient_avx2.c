/* pb8's salient add with AVX2: bllm_kernel_set.salient_matvec of the x86
 * sets (kernels/dispatch.c), checked against the scalar reference
 * bllm_salient_matvec (kernels/binary_scalar.c) by tests/kernels.
 *
 * Each entry needs three scattered values: the b1g sign bit and alpha at
 * its (row, column), and x[c]. AVX2 gathers were measured slower here than
 * plain loads (Zen 3: ~11 cycles per 8-lane gather against ~6 for 8 loads
 * and inserts), so the kernel avoids them:
 *  - once per 32-row tile row, every tile's 256 sign bytes are transposed
 *    into one 64-bit mask per row (bit cc = tile column cc) and its 32
 *    alphas converted to f32, both stored row by row in a per-thread
 *    scratch buffer;
 *  - 8 entries whose columns lie in 4 consecutive groups g0..g0+3 (nearly
 *    always at ~10% salient) then find their sign bits with one permute of
 *    the row's masks g0..g0+3 and a shift, and their alphas with one permute
 *    of alphas g0..g0+7; other vectors take the tables lane by lane;
 *  - one token (GEMV) reads x[c] with scalar loads; several tokens (GEMM)
 *    first transpose x by blocks of 8 tokens, so that one load brings a
 *    column's x for 8 tokens, and reuse each delta for all of them.
 * The deltas d = (float)q * scale - b are the reference's bits exactly (a
 * multiply, then a subtract, no FMA); only the sum differs in order. GEMV:
 * entry e goes to lane e % 8 of one accumulator (an FMA each; a row of
 * n >= 8 entries puts its last n % 8 in lanes 8 - n % 8 .. 7), the lanes are
 * added pairwise.
 * GEMM: entries 4k .. 4k+3 go to four accumulators in turn (the last
 * n % 4 to the first), added pairwise. Rows are cut in chunks of E_CHUNK
 * entries, and each chunk's sum is added to y. */
#include <immintrin.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/binary_scalar.h"
#include "kernels/kernels.h"
#include "kernels/thread_scratch.h"
#include "runtime/format/binary.h"

void bllm_salient_matvec_avx2(float *y, const float *x, const void *w, const bllm_pb8_salient *s, int n_tok,
                              int cols, int rows, int r0, int r1);

/* Entries per chunk, a multiple of 8; rows with more (only rows of more
 * than 5120 columns at 10% salient) take several. */
#define E_CHUNK 512

/* ------------------------------------------------- tile row decoding */

/* The decoded b1g tile row: row j's sign masks at mask[j * mask_stride + g]
 * (bit cc = the sign of tile column cc, 1 = +alpha) and alphas at
 * alpha[j * alpha_stride + g]. The strides leave room for the 4-mask and
 * 8-alpha windows read from any group. */
typedef struct {
    uint64_t *mask;
    float *alpha;
    int mask_stride, alpha_stride;
} tile_row;

/* Tile layout (docs/format.md): sign byte 16k + i holds, for tile columns
 * 4k .. 4k+3 (bit m for column 4k + m), row i in its low nibble and row
 * i + 16 in its high nibble; alpha fp16[32] follows at byte 256. So byte p
 * of row i's mask is the low nibbles of B[2p][i] and B[2p + 1][i], and of
 * row i + 16's the high nibbles: first those bytes are formed for all i at
 * once (row i + 16's in the high lane), then the 8 x 16 byte matrix is
 * transposed within each lane. */
static void decode_tile(const uint8_t *t, int g, const tile_row *tr)
{
    const __m256i nib = _mm256_set1_epi8(15), hi_nib = _mm256_set1_epi8((char)0xf0);
    const __m256i sh_lo = _mm256_setr_epi64x(0, 0, 4, 4), sh_hi = _mm256_setr_epi64x(4, 4, 0, 0);
    __m256i v[8], a[8];
    for (int p = 0; p < 8; p++) {
        const __m256i b0 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(t + 32 * p)));
        const __m256i b1 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(t + 32 * p + 16)));
        /* low lane: lo(B[2p]) | lo(B[2p+1]) << 4; high lane: hi(B[2p]) >> 4 | hi(B[2p+1]) */
        v[p] = _mm256_or_si256(_mm256_and_si256(_mm256_srlv_epi64(b0, sh_lo), nib),
                               _mm256_and_si256(_mm256_sllv_epi64(b1, sh_hi), hi_nib));
    }
    /* three rounds of interleaving: lane l of a[m] ends up holding the masks
     * of rows 2m and 2m + 1 (low lane) or 2m + 16 and 2m + 17 (high lane) */
    for (int q = 0; q < 4; q++) {
        a[2 * q] = _mm256_unpacklo_epi8(v[2 * q], v[2 * q + 1]);
        a[2 * q + 1] = _mm256_unpackhi_epi8(v[2 * q], v[2 * q + 1]);
    }
    v[0] = _mm256_unpacklo_epi16(a[0], a[2]), v[1] = _mm256_unpackhi_epi16(a[0], a[2]);
    v[2] = _mm256_unpacklo_epi16(a[1], a[3]), v[3] = _mm256_unpackhi_epi16(a[1], a[3]);
    v[4] = _mm256_unpacklo_epi16(a[4], a[6]), v[5] = _mm256_unpackhi_epi16(a[4], a[6]);
    v[6] = _mm256_unpacklo_epi16(a[5], a[7]), v[7] = _mm256_unpackhi_epi16(a[5], a[7]);
    for (int q = 0; q < 4; q++) {
        a[2 * q] = _mm256_unpacklo_epi32(v[q], v[q + 4]);
        a[2 * q + 1] = _mm256_unpackhi_epi32(v[q], v[q + 4]);
    }
    uint64_t *mask = tr->mask + g;
    const size_t ms = (size_t)tr->mask_stride;
    for (int m = 0; m < 8; m++) {
        const __m128i lo = _mm256_castsi256_si128(a[m]), hi = _mm256_extracti128_si256(a[m], 1);
        _mm_storel_epi64((__m128i *)(mask + (size_t)(2 * m) * ms), lo);
        _mm_storel_epi64((__m128i *)(mask + (size_t)(2 * m + 1) * ms), _mm_unpackhi_epi64(lo, lo));
        _mm_storel_epi64((__m128i *)(mask + (size_t)(2 * m + 16) * ms), hi);
        _mm_storel_epi64((__m128i *)(mask + (size_t)(2 * m + 17) * ms), _mm_unpackhi_epi64(hi, hi));
    }
    _Alignas(32) float al[32];
    for (int q = 0; q < 4; q++)
        _mm256_store_ps(al + 8 * q, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(t + 256 + 16 * q))));
    for (int j = 0; j < 32; j++)
        tr->alpha[(size_t)j * tr->alpha_stride + g] = al[j];
}

/* ------------------------------------------------------------ deltas */

typedef struct {
    const uint64_t *mask; /* this row's masks, group 0 first */
    const float *alpha;   /* this row's alphas */
    float scale;
} row_ctx;

/* deltas8 lane by lane, for entries spread over more than 4 groups (rare,
 * and kept out of line so the common path keeps its registers). */
__attribute__((noinline, cold)) static __m256 deltas8_spread(const row_ctx *rc, const uint16_t *c, const int8_t *q)
{
    _Alignas(32) float d[8];
    for (int l = 0; l < 8; l++) {
        int g = c[l] >> 6;
        unsigned bit = (unsigned)(rc->mask[g] >> (c[l] & 63)) & 1;
        d[l] = (float)q[l] * rc->scale - bllm_b1g_signed(rc->alpha[g], bit);
    }
    return _mm256_load_ps(d);
}

/* The deltas of 8 entries with columns c[0..7] (ascending) and values q.
 * Fast when their groups fit in the windows g0 .. g0+3 (masks) and
 * g0 .. g0+7 (alphas); otherwise lane by lane from the same tables. */
static inline __m256 deltas8(const row_ctx *rc, const uint16_t *c, const int8_t *q)
{
    const int g0 = c[0] >> 6;
    if (__builtin_expect((c[7] >> 6) - g0 > 3, 0))
        return deltas8_spread(rc, c, q);
    const __m256i sign = _mm256_set1_epi32(INT32_MIN);
    /* p: the column's bit in the 256-bit window of masks g0 .. g0+3 */
    const __m256i cv = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)c));
    const __m256i p = _mm256_sub_epi32(cv, _mm256_set1_epi32(64 * g0));
    const __m256i word = _mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i *)(rc->mask + g0)),
                                                     _mm256_srli_epi32(p, 5));
    const __m256i to31 = _mm256_sub_epi32(_mm256_set1_epi32(31), _mm256_and_si256(p, _mm256_set1_epi32(31)));
    const __m256i bit31 = _mm256_and_si256(_mm256_sllv_epi32(word, to31), sign);
    const __m256 alpha = _mm256_permutevar8x32_ps(_mm256_loadu_ps(rc->alpha + g0), _mm256_srli_epi32(p, 6));
    /* b = bit ? alpha : -alpha: flip alpha's sign where the bit is 0 */
    const __m256 b = _mm256_xor_ps(alpha, _mm256_castsi256_ps(_mm256_xor_si256(bit31, sign)));
    const __m256 qv = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)q)));
    return _mm256_sub_ps(_mm256_mul_ps(qv, _mm256_set1_ps(rc->scale)), b);
}

static inline __m256 load_x8(const float *x, const uint16_t *c)
{
    return _mm256_setr_ps(x[c[0]], x[c[1]], x[c[2]], x[c[3]], x[c[4]], x[c[5]], x[c[6]], x[c[7]]);
}

/* Lanes of the first n (< 8) entries, and of the last n. */
static inline __m256 first_lanes(int n)
{
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
}
static inline __m256 last_lanes(int n)
{
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(7, 6, 5, 4, 3, 2, 1, 0)));
}

/* A row of n < 8 entries, padded with copies of its last one so that no
 * array is read past its end and the lanes stay ascending; the padding
 * lanes are zeroed by the caller. (A longer row ends with the 8 entries
 * before its end instead, overlapping the ones already summed.) */
typedef struct {
    uint16_t c[8];
    int8_t q[8];
} short_row;

static inline void load_short(const bllm_pb8_salient *s, uint32_t e, int n, short_row *t)
{
    for (int l = 0; l < 8; l++) {
        uint32_t i = e + (uint32_t)(l < n ? l : n - 1);
        t->c[l] = s->col[i];
        t->q[l] = s->val[i];
    }
}

static inline float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* One token over entries e0 .. e1-1 of a row, deltas computed on the fly.
 * Lanes outside the entries have d and x zero, so a non-finite x there
 * cannot leak in as 0 * inf. */
static float row_gemv(const row_ctx *rc, const bllm_pb8_salient *s, const float *x, uint32_t e0, uint32_t e1)
{
    if (e1 - e0 < 8) {
        short_row t;
        const int n = (int)(e1 - e0);
        load_short(s, e0, n, &t);
        const __m256 m = first_lanes(n);
        return hsum(_mm256_mul_ps(_mm256_and_ps(deltas8(rc, t.c, t.q), m), _mm256_and_ps(load_x8(x, t.c), m)));
    }
    __m256 acc = _mm256_setzero_ps();
    uint32_t e = e0;
    for (; e + 8 <= e1; e += 8)
        acc = _mm256_fmadd_ps(deltas8(rc, s->col + e, s->val + e), load_x8(x, s->col + e), acc);
    if (e < e1) { /* the row's last 8 entries, of which the last e1 - e are new */
        const __m256 m = last_lanes((int)(e1 - e));
        const uint32_t l = e1 - 8;
        acc = _mm256_fmadd_ps(_mm256_and_ps(deltas8(rc, s->col + l, s->val + l), m),
                              _mm256_and_ps(load_x8(x, s->col + l), m), acc);
    }
    return hsum(acc);
}

/* x for several tokens, transposed by blocks of 8 tokens: xt[(b * cols +
 * c) * 8 + t] = x[8b + t][c], tokens past n_tok zero. Then one load brings
 * one column's x for 8 tokens. */
static void transpose_x(float *xt, const float *x, int n_tok, int cols)
{
    for (int b = 0; b < (n_tok + 7) / 8; b++)
        for (int c = 0; c < cols; c += 8) {
            __m256 r[8], t[8];
            for (int k = 0; k < 8; k++)
                r[k] = 8 * b + k < n_tok ? _mm256_loadu_ps(x + (size_t)(8 * b + k) * cols + c) : _mm256_setzero_ps();
            for (int k = 0; k < 8; k += 2) {
                t[k] = _mm256_unpacklo_ps(r[k], r[k + 1]);
                t[k + 1] = _mm256_unpackhi_ps(r[k], r[k + 1]);
            }
            for (int k = 0; k < 8; k += 4) {
                r[k] = _mm256_shuffle_ps(t[k], t[k + 2], 0x44);
                r[k + 1] = _mm256_shuffle_ps(t[k], t[k + 2], 0xee);
                r[k + 2] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0x44);
                r[k + 3] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0xee);
            }
            float *o = xt + ((size_t)b * cols + c) * 8;
            for (int k = 0; k < 4; k++) {
                _mm256_store_ps(o + 8 * k, _mm256_permute2f128_ps(r[k], r[k + 4], 0x20));
                _mm256_store_ps(o + 8 * (k + 4), _mm256_permute2f128_ps(r[k], r[k + 4], 0x31));
            }
        }
}

/* Several tokens, x transposed (transpose_x): the chunk's deltas once, then
 * for each block of 8 tokens one broadcast of d and one load of x per
 * entry, into 4 accumulators (entries 4k .. 4k+3 to each in turn, the last
 * ne % 4 to the first) summed pairwise. */
static void row_gemm(const row_ctx *rc, const bllm_pb8_salient *s, const float *xt, int n_tok, int cols, float *y,
                     int rows, uint32_t e0, uint32_t e1)
{
    _Alignas(32) float d[E_CHUNK];
    const int ne = (int)(e1 - e0), nfull = ne / 8, tail = ne % 8;
    for (int v = 0; v < nfull; v++)
        _mm256_store_ps(d + 8 * v, deltas8(rc, s->col + e0 + 8 * v, s->val + e0 + 8 * v));
    if (tail && nfull) /* the last 8, overlapping: the same deltas again where they overlap */
        _mm256_storeu_ps(d + ne - 8, deltas8(rc, s->col + e1 - 8, s->val + e1 - 8));
    else if (tail) {
        short_row t;
        load_short(s, e0, tail, &t);
        _mm256_store_ps(d, deltas8(rc, t.c, t.q));
    }
    const uint16_t *c = s->col + e0;
    for (int b = 0; b < (n_tok + 7) / 8; b++) {
        const float *xb = xt + (size_t)b * cols * 8;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        int e = 0;
        for (; e + 4 <= ne; e += 4) {
            a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(d + e), _mm256_load_ps(xb + 8 * c[e]), a0);
            a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(d + e + 1), _mm256_load_ps(xb + 8 * c[e + 1]), a1);
            a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(d + e + 2), _mm256_load_ps(xb + 8 * c[e + 2]), a2);
            a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(d + e + 3), _mm256_load_ps(xb + 8 * c[e + 3]), a3);
        }
        for (; e < ne; e++)
            a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(d + e), _mm256_load_ps(xb + 8 * c[e]), a0);
        _Alignas(32) float sum[8];
        _mm256_store_ps(sum, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
        const int nt = n_tok - 8 * b < 8 ? n_tok - 8 * b : 8;
        for (int t = 0; t < nt; t++)
            y[(size_t)(8 * b + t) * rows] += sum[t];
    }
}

void bllm_salient_matvec_avx2(float *y, const float *x, const void *w, const bllm_pb8_salient *s, int n_tok,
                              int cols, int rows, int r0, int r1)
{
    const int ngrp = cols / 64;
    tile_row tr = {NULL, NULL, ngrp + 4, ngrp + 8};
    const size_t tab_bytes = (32 * ((size_t)tr.mask_stride * 8 + (size_t)tr.alpha_stride * 4) + 63) & ~(size_t)63;
    const size_t xt_bytes = n_tok > 1 ? (size_t)(n_tok + 7) / 8 * cols * 8 * sizeof(float) : 0;
    void *buf = scratch(tab_bytes + xt_bytes);
    if (!buf) { /* out of memory: the reference needs none */
        bllm_salient_matvec(y, x, w, s, n_tok, cols, rows, r0, r1);
        return;
    }
    tr.mask = buf;
    tr.alpha = (float *)(tr.mask + 32 * (size_t)tr.mask_stride);
    float *xt = (float *)((char *)buf + tab_bytes);
    if (n_tok > 1 && s->row_ptr[r0] != s->row_ptr[r1])
        transpose_x(xt, x, n_tok, cols);
    for (int r = r0; r < r1;) {
        const int rt = r / 32, rend = 32 * (rt + 1) < r1 ? 32 * (rt + 1) : r1;
        if (s->row_ptr[r] == s->row_ptr[rend]) { /* no entries in these rows: skip the decode */
            r = rend;
            continue;
        }
        const uint8_t *tiles = (const uint8_t *)w + (size_t)rt * (size_t)ngrp * 320;
        for (int g = 0; g < ngrp; g++)
            decode_tile(tiles + (size_t)g * 320, g, &tr);
        for (; r < rend; r++) {
            const uint32_t e0 = s->row_ptr[r], e1 = s->row_ptr[r + 1];
            const int j = r % 32;
            const row_ctx rc = {tr.mask + (size_t)j * tr.mask_stride, tr.alpha + (size_t)j * tr.alpha_stride,
                                _cvtsh_ss(s->scale[r])};
            for (uint32_t ec = e0; ec < e1; ec += E_CHUNK) {
                const uint32_t ee = e1 - ec < E_CHUNK ? e1 : ec + E_CHUNK;
                if (n_tok == 1)
                    y[r] += row_gemv(&rc, s, x, ec, ee);
                else
                    row_gemm(&rc, s, xt, n_tok, cols, y + r, rows, ec, ee);
            }
        }
    }
}
