/* AVX2 + FMA + F16C kernels. This file alone is compiled with
 * -mavx2 -mfma -mf16c (kernels/meson.build) so the rest of the library stays
 * baseline x86-64; dispatch.c only hands these out after checking the CPU.
 *
 * Matmul shape: every output is a dot product of a weight row with a token
 * row, both contiguous along the columns. One register tile computes
 * T tokens x R rows at once: each weight vector loaded (and converted from
 * f16/bf16) is reused for T tokens, each x vector for R rows.
 * - GEMV (one token) is bound by DRAM bandwidth. Its 4-row tile takes rows
 *   q apart (q = a quarter of the range), so the weights are read as four
 *   long sequential streams. Four adjacent rows instead would be four short
 *   interleaved streams that restart every tile when rows are short (576
 *   columns), which the hardware prefetcher follows badly: 12 vs 31 GB/s for
 *   a 49152x576 f16 matrix on the development machine. Two column vectors
 *   per row hide the FMA latency.
 * - GEMM (prompt batches) uses 4 tokens x 3 rows (12 accumulators + 3
 *   weights + 1 x = all 16 ymm registers) and walks the columns in blocks of
 *   at most GEMM_KC, so a row tile's weights stay in L1 while every token
 *   tile passes over them and the x block stays in L2; the next row tile's
 *   weights are prefetched meanwhile. */
#include <immintrin.h>
#include <math.h>
#include <sleef.h>
#include <string.h>

#include "kernels/kernels.h"

#define INLINE static inline __attribute__((always_inline))

/* Most columns per GEMM block: 3 f32 weight rows (12 KiB) fit L1 beside a
 * 4-token x tile (16 KiB); 64 tokens of x (256 KiB) fit L2. Blocks are made
 * equal (multiples of 8, so only the last has a ragged tail): a small
 * leftover block would cost a full pass of y updates for little work. */
#define GEMM_KC 1024

const bllm_kernel_set *bllm_kernels_avx2_impl(void);

/* Eight weights from element c of a row, widened to f32. */
INLINE __m256 load_w8(bllm_type ty, const void *row, size_t c)
{
    if (ty == BLLM_TYPE_F32)
        return _mm256_loadu_ps((const float *)row + c);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)row + c));
    if (ty == BLLM_TYPE_F16)
        return _mm256_cvtph_ps(h);
    /* bf16 is the top half of an f32: widen to 32 bits and shift into place */
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* Lanes 0..n-1 set, for masked loads of a ragged tail (n < 8). Masked-off
 * lanes are never touched, so reading past the end of a buffer cannot fault. */
INLINE __m256i tail_mask(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* The n < 8 weights from element c, zero-padded to a vector. */
INLINE __m256 load_w_tail(bllm_type ty, const void *row, size_t c, int n)
{
    if (ty == BLLM_TYPE_F32)
        return _mm256_maskload_ps((const float *)row + c, tail_mask(n));
    uint16_t buf[8] = {0};
    memcpy(buf, (const uint16_t *)row + c, (size_t)n * sizeof buf[0]);
    return load_w8(ty, buf, 0);
}

INLINE float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Horizontal sums of four vectors, as one vector {sum a, sum b, sum c, sum d}. */
INLINE __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d)
{
    __m256 ab = _mm256_hadd_ps(a, b);
    __m256 cd = _mm256_hadd_ps(c, d);
    __m256 abcd = _mm256_hadd_ps(ab, cd);
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

/* y[t*ldy + r*ystride] (+)= sum_{c0 <= c < c1} w_r[c] x_t[c] for t < T,
 * r < R, where w_r starts at w + r*wstride bytes and x_t at x + t*ldx.
 * T, R, U (column vectors per row, i.e. independent FMA chains) are
 * constants at every call, so after inlining the loops unroll fully and the
 * accumulators live in registers. */
INLINE void tile(bllm_type ty, const int T, const int R, const int U, float *y, size_t ldy,
                 size_t ystride, const float *x, size_t ldx, const char *w, size_t wstride,
                 int c0, int c1, int accumulate)
{
    __m256 acc[4][4][2];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++)
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
#pragma GCC unroll 2
            for (int u = 0; u < U; u++)
                acc[t][r][u] = _mm256_setzero_ps();

    int c = c0;
    for (; c + 8 * U <= c1; c += 8 * U) {
#pragma GCC unroll 2
        for (int u = 0; u < U; u++) {
            __m256 wv[4];
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                wv[r] = load_w8(ty, w + r * wstride, (size_t)c + 8 * u);
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                __m256 xv = _mm256_loadu_ps(x + t * ldx + c + 8 * u);
#pragma GCC unroll 4
                for (int r = 0; r < R; r++)
                    acc[t][r][u] = _mm256_fmadd_ps(wv[r], xv, acc[t][r][u]);
            }
        }
    }
    if (U > 1) {
        for (; c + 8 <= c1; c += 8) {
            __m256 wv[4];
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                wv[r] = load_w8(ty, w + r * wstride, (size_t)c);
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                __m256 xv = _mm256_loadu_ps(x + t * ldx + c);
#pragma GCC unroll 4
                for (int r = 0; r < R; r++)
                    acc[t][r][0] = _mm256_fmadd_ps(wv[r], xv, acc[t][r][0]);
            }
        }
    }
    if (c < c1) {
        int n = c1 - c;
        __m256 wv[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            wv[r] = load_w_tail(ty, w + r * wstride, (size_t)c, n);
        __m256i m = tail_mask(n);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            __m256 xv = _mm256_maskload_ps(x + t * ldx + c, m);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                acc[t][r][0] = _mm256_fmadd_ps(wv[r], xv, acc[t][r][0]);
        }
    }

#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
        float *yt = y + t * ldy;
        if (U > 1) {
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                acc[t][r][0] = _mm256_add_ps(acc[t][r][0], acc[t][r][1]);
        }
        if (R == 4 && ystride == 1) {
            __m128 s = hsum4(acc[t][0][0], acc[t][1][0], acc[t][2][0], acc[t][3][0]);
            if (accumulate)
                s = _mm_add_ps(s, _mm_loadu_ps(yt));
            _mm_storeu_ps(yt, s);
        } else if (R == 4 && !accumulate) {
            float s[4];
            _mm_storeu_ps(s, hsum4(acc[t][0][0], acc[t][1][0], acc[t][2][0], acc[t][3][0]));
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                yt[r * ystride] = s[r];
        } else {
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                float s = hsum(acc[t][r][0]);
                yt[r * ystride] = accumulate ? yt[r * ystride] + s : s;
            }
        }
    }
}

INLINE void matmul(bllm_type ty, float *y, const float *x, const void *w, int n_tok, int cols,
                   int rows, int r0, int r1)
{
    if (n_tok <= 0 || r0 >= r1)
        return;
    if (cols <= 0) {
        for (int t = 0; t < n_tok; t++)
            for (int r = r0; r < r1; r++)
                y[(size_t)t * rows + r] = 0.0f;
        return;
    }
    const size_t ws = (size_t)cols * (ty == BLLM_TYPE_F32 ? 4 : 2);
    const char *wb = w;
    const size_t ldy = (size_t)rows, ldx = (size_t)cols;

    if (n_tok == 1) {
        /* rows r0+i, r0+q+i, r0+2q+i, r0+3q+i: four sequential streams */
        int q = (r1 - r0) / 4;
        for (int r = r0; r < r0 + q; r++)
            tile(ty, 1, 4, 2, y + r, ldy, (size_t)q, x, ldx, wb + r * ws, q * ws, 0, cols, 0);
        for (int r = r0 + 4 * q; r < r1; r++)
            tile(ty, 1, 1, 2, y + r, ldy, 1, x, ldx, wb + r * ws, ws, 0, cols, 0);
        return;
    }
    if (n_tok <= 4) {
        /* a few tokens (a server's batch of sequences): passes of 2 or 3
         * tokens over the GEMV's four row streams, every token's sums in
         * registers. The blocked GEMM below, built for long prompts, ran 2
         * and 4 tokens of an f16 49152 x 576 head at a quarter of the GEMV's
         * speed per token; a pass of 2 costs about one GEMV. From 5 tokens
         * on the GEMM is as fast as more passes (measured: 8 tokens of SmolLM2, 47-50 ms per step either way). */
        const int q = (r1 - r0) / 4;
        for (int t0 = 0; t0 < n_tok;) {
            const int T = n_tok - t0 == 3 ? 3 : n_tok - t0 >= 2 ? 2 : 1;
            float *yt = y + (size_t)t0 * ldy;
            const float *xt = x + (size_t)t0 * ldx;
            for (int r = r0; r < r0 + q; r++) {
                if (T == 3)
                    tile(ty, 3, 4, 1, yt + r, ldy, (size_t)q, xt, ldx, wb + r * ws, q * ws, 0, cols, 0);
                else if (T == 2)
                    tile(ty, 2, 4, 1, yt + r, ldy, (size_t)q, xt, ldx, wb + r * ws, q * ws, 0, cols, 0);
                else
                    tile(ty, 1, 4, 2, yt + r, ldy, (size_t)q, xt, ldx, wb + r * ws, q * ws, 0, cols, 0);
            }
            for (int r = r0 + 4 * q; r < r1; r++) {
                if (T == 3)
                    tile(ty, 3, 1, 2, yt + r, ldy, 1, xt, ldx, wb + r * ws, ws, 0, cols, 0);
                else if (T == 2)
                    tile(ty, 2, 1, 2, yt + r, ldy, 1, xt, ldx, wb + r * ws, ws, 0, cols, 0);
                else
                    tile(ty, 1, 1, 2, yt + r, ldy, 1, xt, ldx, wb + r * ws, ws, 0, cols, 0);
            }
            t0 += T;
        }
        return;
    }

    const size_t es = ty == BLLM_TYPE_F32 ? 4 : 2;
    const int n_blocks = (cols + GEMM_KC - 1) / GEMM_KC;
    const int kc = ((cols + n_blocks - 1) / n_blocks + 7) & ~7;
    const int n_tt = n_tok / 4 > 0 ? n_tok / 4 : 1;
    for (int c0 = 0; c0 < cols; c0 += kc) {
        int c1 = cols - c0 > kc ? c0 + kc : cols;
        int acc = c0 > 0;
        /* bytes of one row's block, and the slice of the next row tile's
         * block to prefetch before each token tile (whole cache lines) */
        const size_t blk = (size_t)(c1 - c0) * es;
        const size_t pf_chunk = ((blk + n_tt - 1) / n_tt + 63) & ~(size_t)63;
        int r = r0;
        for (; r + 3 <= r1; r += 3) {
            const char *wr = wb + r * ws;
            const char *pf = r + 6 <= r1 ? wr + 3 * ws + c0 * es : NULL;
            int t = 0;
            for (; t + 4 <= n_tok; t += 4) {
                if (pf) {
                    size_t off = (size_t)(t / 4) * pf_chunk;
                    for (size_t b = off; b < off + pf_chunk && b < blk; b += 64)
                        for (int k = 0; k < 3; k++)
                            _mm_prefetch(pf + k * ws + b, _MM_HINT_T0);
                }
                tile(ty, 4, 3, 1, y + t * ldy + r, ldy, 1, x + t * ldx, ldx, wr, ws, c0, c1, acc);
            }
            for (; t < n_tok; t++)
                tile(ty, 1, 3, 1, y + t * ldy + r, ldy, 1, x + t * ldx, ldx, wr, ws, c0, c1, acc);
        }
        for (; r < r1; r++) {
            const char *wr = wb + r * ws;
            int t = 0;
            for (; t + 4 <= n_tok; t += 4)
                tile(ty, 4, 1, 1, y + t * ldy + r, ldy, 1, x + t * ldx, ldx, wr, ws, c0, c1, acc);
            for (; t < n_tok; t++)
                tile(ty, 1, 1, 1, y + t * ldy + r, ldy, 1, x + t * ldx, ldx, wr, ws, c0, c1, acc);
        }
    }
}

static void matmul_f32(float *y, const float *x, const void *w, int n_tok, int cols, int rows,
                       int r0, int r1)
{
    matmul(BLLM_TYPE_F32, y, x, w, n_tok, cols, rows, r0, r1);
}

static void matmul_f16(float *y, const float *x, const void *w, int n_tok, int cols, int rows,
                       int r0, int r1)
{
    matmul(BLLM_TYPE_F16, y, x, w, n_tok, cols, rows, r0, r1);
}

static void matmul_bf16(float *y, const float *x, const void *w, int n_tok, int cols, int rows,
                        int r0, int r1)
{
    matmul(BLLM_TYPE_BF16, y, x, w, n_tok, cols, rows, r0, r1);
}

static float dot_f32(const float *a, const float *b, int n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    if (i < n) {
        __m256i m = tail_mask(n - i);
        s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), s1);
    }
    return hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

static void axpy_f32(float *y, float a, const float *x, int n)
{
    const __m256 av = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 y0 = _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i));
        __m256 y1 = _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8));
        _mm256_storeu_ps(y + i, y0);
        _mm256_storeu_ps(y + i + 8, y1);
    }
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    if (i < n) {
        __m256i m = tail_mask(n - i);
        __m256 v = _mm256_fmadd_ps(av, _mm256_maskload_ps(x + i, m), _mm256_maskload_ps(y + i, m));
        _mm256_maskstore_ps(y + i, m, v);
    }
}

/* Up to 8 f16 values (n - i < 8 of them at the end), zero-padded, as f32. */
static inline __m256 load_f16x8(const uint16_t *x, int left)
{
    if (left >= 8)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)x));
    uint16_t t[8] = {0};
    memcpy(t, x, (size_t)left * sizeof *x);
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)t));
}

static float dot_f16(const float *a, const uint16_t *b, int n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), load_f16x8(b + i, 8), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), load_f16x8(b + i + 8, 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), load_f16x8(b + i + 16, 8), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), load_f16x8(b + i + 24, 8), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), load_f16x8(b + i, 8), s0);
    if (i < n)
        s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, tail_mask(n - i)), load_f16x8(b + i, n - i), s1);
    return hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

static void axpy_f16(float *y, float a, const uint16_t *x, int n)
{
    const __m256 av = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 y0 = _mm256_fmadd_ps(av, load_f16x8(x + i, 8), _mm256_loadu_ps(y + i));
        __m256 y1 = _mm256_fmadd_ps(av, load_f16x8(x + i + 8, 8), _mm256_loadu_ps(y + i + 8));
        _mm256_storeu_ps(y + i, y0);
        _mm256_storeu_ps(y + i + 8, y1);
    }
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, load_f16x8(x + i, 8), _mm256_loadu_ps(y + i)));
    if (i < n) {
        __m256i m = tail_mask(n - i);
        __m256 v = _mm256_fmadd_ps(av, load_f16x8(x + i, n - i), _mm256_maskload_ps(y + i, m));
        _mm256_maskstore_ps(y + i, m, v);
    }
}

static void cvt_f16_f32(float *y, const uint16_t *x, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, load_f16x8(x + i, 8));
    if (i < n)
        _mm256_maskstore_ps(y + i, tail_mask(n - i), load_f16x8(x + i, n - i));
}

/* F16C rounds to nearest even and keeps a NaN quiet with its top payload
 * bits, as bllm_f32_to_f16 does. */
static void cvt_f32_f16(uint16_t *y, const float *x, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        y[i] = (uint16_t)_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(x[i]), _MM_FROUND_TO_NEAREST_INT), 0);
}

/* q8 blocks (the q8 KV cache): 8 int8 at p as f32, and a block's scale */
static inline __m256 load_i8x8(const uint8_t *p)
{
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}

static inline float q8_scale(const uint8_t *blk)
{
    uint16_t h;
    memcpy(&h, blk, 2);
    return _cvtsh_ss(h);
}

static float dot_q8(const float *a, const uint8_t *b, int n)
{
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 32, b += 34) {
        __m256 s = _mm256_mul_ps(_mm256_loadu_ps(a + i), load_i8x8(b + 2));
        s = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), load_i8x8(b + 10), s);
        s = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), load_i8x8(b + 18), s);
        s = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), load_i8x8(b + 26), s);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(q8_scale(b)), s, acc);
    }
    return hsum(acc);
}

static void axpy_q8(float *y, float a, const uint8_t *x, int n)
{
    const __m256 av = _mm256_set1_ps(a);
    for (int i = 0; i < n; i += 32, x += 34) {
        const __m256 d = _mm256_set1_ps(q8_scale(x));
        for (int k = 0; k < 32; k += 8)
            _mm256_storeu_ps(y + i + k,
                             _mm256_fmadd_ps(av, _mm256_mul_ps(d, load_i8x8(x + 2 + k)), _mm256_loadu_ps(y + i + k)));
    }
}

static void cvt_q8_f32(float *y, const uint8_t *x, int n)
{
    for (int i = 0; i < n; i += 32, x += 34) {
        const __m256 d = _mm256_set1_ps(q8_scale(x));
        for (int k = 0; k < 32; k += 8)
            _mm256_storeu_ps(y + i + k, _mm256_mul_ps(d, load_i8x8(x + 2 + k)));
    }
}

/* SLEEF's 8-wide exp (1 ulp, as the scalar set's libm expf); the old
 * 4-wide one was 3% of a TinyLlama-shape pp512. Lanes past n get -inf,
 * whose exp, 0, leaves the sum as it is. */
static float exp_sub_sum(float *x, int n, float max)
{
    const __m256 vmax = _mm256_set1_ps(max), ninf = _mm256_set1_ps(-INFINITY);
    __m256 s0 = _mm256_setzero_ps(), s1 = s0;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 e0 = Sleef_expf8_u10avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmax));
        __m256 e1 = Sleef_expf8_u10avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vmax));
        _mm256_storeu_ps(x + i, e0);
        _mm256_storeu_ps(x + i + 8, e1);
        s0 = _mm256_add_ps(s0, e0);
        s1 = _mm256_add_ps(s1, e1);
    }
    for (; i < n; i += 8) {
        const __m256i m = tail_mask(n - i);
        __m256 v = _mm256_blendv_ps(ninf, _mm256_sub_ps(_mm256_maskload_ps(x + i, m), vmax), _mm256_castsi256_ps(m));
        __m256 e = Sleef_expf8_u10avx2(v);
        _mm256_maskstore_ps(x + i, m, e);
        s0 = _mm256_add_ps(s0, e);
    }
    return hsum(_mm256_add_ps(s0, s1));
}

static void swiglu(float *gate, const float *up, size_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i);
        __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, Sleef_expf8_u10avx2(_mm256_sub_ps(zero, g))));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
    }
    if (i < n) {
        const __m256i m = tail_mask((int)(n - i));
        __m256 g = _mm256_maskload_ps(gate + i, m);
        __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, Sleef_expf8_u10avx2(_mm256_sub_ps(zero, g))));
        _mm256_maskstore_ps(gate + i, m, _mm256_mul_ps(silu, _mm256_maskload_ps(up + i, m)));
    }
}

/* Head sizes attend_f16 takes: 8 keys' rows of f32 (8 KiB) stay on the
 * stack and in L1. */
#define ATT_HD_MAX 256
#define ATT_KEYS 8

/* Rows j0 .. j0 + 7 of one head of the f16 cache as f32, hd apart; rows
 * past the last repeat it (their scores are never stored, and the value
 * loop stops at the last real row). The next block's rows are prefetched,
 * as kernels/attend_avx512.c does: they are a cache row apart (n_kv_heads
 * x hd values), a stride the hardware prefetchers follow late, and the
 * weights streamed since the last token have pushed the cache out of L2. */
INLINE void att_rows_f32(float *dst, const uint16_t *x, size_t stride, int j0, int n, int hd)
{
    for (int j = 0; j < ATT_KEYS; j++) {
        const uint16_t *r = x + (size_t)(j0 + j < n ? j0 + j : n - 1) * stride;
        if (j0 + ATT_KEYS + j < n)
            for (int b = 0; b < hd * 2; b += 64)
                _mm_prefetch((const char *)(r + ATT_KEYS * stride) + b, _MM_HINT_T0);
        for (int i = 0; i < hd; i += 8)
            _mm256_store_ps(dst + (size_t)j * hd + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(r + i))));
    }
}

/* The scalar reference's sums in 8 lanes and blocks of 8 keys: each key
 * and value row is widened once per call and serves all nq query rows,
 * and the 8 scores of a block come out of one transposing reduction. On a
 * TinyLlama-shape decode (8 query heads per KV head, hd 64) this replaced
 * one dot_f16 and one axpy_f16 call per head and key. */
static void attend_f16(float *out, const float *q, int nq, int hd, const uint16_t *k, const uint16_t *v,
                       size_t stride, int n, float scale, float *scores)
{
    if (hd % 8 || hd > ATT_HD_MAX) {
        bllm_attend_f16_scalar(out, q, nq, hd, k, v, stride, n, scale, scores);
        return;
    }
    float rows[ATT_KEYS * ATT_HD_MAX] __attribute__((aligned(32)));
    const __m256 vscale = _mm256_set1_ps(scale);
    for (int j0 = 0; j0 < n; j0 += ATT_KEYS) {
        att_rows_f32(rows, k, stride, j0, n, hd);
        const int nk = n - j0 < ATT_KEYS ? n - j0 : ATT_KEYS;
        for (int g = 0; g < nq; g++) {
            const float *qg = q + (size_t)g * hd;
            __m256 a[ATT_KEYS];
            for (int j = 0; j < ATT_KEYS; j++)
                a[j] = _mm256_setzero_ps();
            for (int i = 0; i < hd; i += 8) {
                const __m256 qv = _mm256_loadu_ps(qg + i);
                for (int j = 0; j < ATT_KEYS; j++)
                    a[j] = _mm256_fmadd_ps(qv, _mm256_load_ps(rows + (size_t)j * hd + i), a[j]);
            }
            const __m256 d = _mm256_mul_ps(_mm256_set_m128(hsum4(a[4], a[5], a[6], a[7]), hsum4(a[0], a[1], a[2], a[3])),
                                           vscale);
            float *sg = scores + (size_t)g * n + j0;
            if (nk == ATT_KEYS)
                _mm256_storeu_ps(sg, d);
            else
                _mm256_maskstore_ps(sg, tail_mask(nk), d);
        }
    }
    for (int g = 0; g < nq; g++) {
        float *sg = scores + (size_t)g * n;
        __m256 m = _mm256_set1_ps(-INFINITY);
        int j = 0;
        for (; j + 8 <= n; j += 8)
            m = _mm256_max_ps(m, _mm256_loadu_ps(sg + j));
        float maxv = -INFINITY;
        float lanes[8];
        _mm256_storeu_ps(lanes, m);
        for (int l = 0; l < 8; l++)
            maxv = lanes[l] > maxv ? lanes[l] : maxv;
        for (; j < n; j++)
            maxv = sg[j] > maxv ? sg[j] : maxv;
        const float inv = 1.0f / exp_sub_sum(sg, n, maxv);
        for (j = 0; j < n; j++)
            sg[j] *= inv;
        memset(out + (size_t)g * hd, 0, (size_t)hd * sizeof *out);
    }
    for (int j0 = 0; j0 < n; j0 += ATT_KEYS) {
        att_rows_f32(rows, v, stride, j0, n, hd);
        const int nk = n - j0 < ATT_KEYS ? n - j0 : ATT_KEYS;
        for (int g = 0; g < nq; g++) {
            const float *p = scores + (size_t)g * n + j0;
            float *og = out + (size_t)g * hd;
            int i = 0;
            for (; i + 32 <= hd; i += 32) {
                __m256 o0 = _mm256_loadu_ps(og + i), o1 = _mm256_loadu_ps(og + i + 8);
                __m256 o2 = _mm256_loadu_ps(og + i + 16), o3 = _mm256_loadu_ps(og + i + 24);
                for (int j = 0; j < nk; j++) {
                    const __m256 pj = _mm256_broadcast_ss(p + j);
                    const float *r = rows + (size_t)j * hd + i;
                    o0 = _mm256_fmadd_ps(pj, _mm256_load_ps(r), o0);
                    o1 = _mm256_fmadd_ps(pj, _mm256_load_ps(r + 8), o1);
                    o2 = _mm256_fmadd_ps(pj, _mm256_load_ps(r + 16), o2);
                    o3 = _mm256_fmadd_ps(pj, _mm256_load_ps(r + 24), o3);
                }
                _mm256_storeu_ps(og + i, o0);
                _mm256_storeu_ps(og + i + 8, o1);
                _mm256_storeu_ps(og + i + 16, o2);
                _mm256_storeu_ps(og + i + 24, o3);
            }
            for (; i < hd; i += 8) {
                __m256 o = _mm256_loadu_ps(og + i);
                for (int j = 0; j < nk; j++)
                    o = _mm256_fmadd_ps(_mm256_broadcast_ss(p + j), _mm256_load_ps(rows + (size_t)j * hd + i), o);
                _mm256_storeu_ps(og + i, o);
            }
        }
    }
}

static const bllm_kernel_set avx2_set = {
    .name = "avx2",
    .matmul = {
        [BLLM_TYPE_F32] = matmul_f32,
        [BLLM_TYPE_F16] = matmul_f16,
        [BLLM_TYPE_BF16] = matmul_bf16,
    },
    .dot_f32 = dot_f32,
    .axpy_f32 = axpy_f32,
    .dot_f16 = dot_f16,
    .axpy_f16 = axpy_f16,
    .cvt_f16_f32 = cvt_f16_f32,
    .cvt_f32_f16 = cvt_f32_f16,
    .dot_q8 = dot_q8,
    .axpy_q8 = axpy_q8,
    .cvt_q8_f32 = cvt_q8_f32,
    .exp_sub_sum = exp_sub_sum,
    .swiglu = swiglu,
    .attend_f16 = attend_f16,
};

/* Handed to dispatch.c, which checks the CPU before using it. */
const bllm_kernel_set *bllm_kernels_avx2_impl(void) { return &avx2_set; }
