/* q8/q6/q4/q4nl matmuls on int8 activations, x86 (kernels/blockq.h). One source,
 * built twice: with AVX2 (maddubs + madd to int32) and, as
 * BLOCKQ_VNNI, with AVX-512 VNNI (vpdpbusd does both at once). Each token's
 * x is quantized once per call by the shared scalar routine; a weight block
 * is loaded once for 4 tokens, and an activation block once for 4 rows. */
#include <immintrin.h>
#include <string.h>

#include "kernels/blockq.h"
#include "kernels/thread_scratch.h"
#include "runtime/format/blockq.h"

#ifdef BLOCKQ_VNNI
#define SUFFIX(n) n##_vnni
#else
#define SUFFIX(n) n##_avx2
#endif

#define INLINE static inline __attribute__((always_inline))

/* The types whose load_w gives signed weights (the others unsigned codes
 * less an offset). q4nl's levels are signed on AVX2, whose maddubs would
 * saturate on level + 128 (2 * 254 * 127 > 32767); vpdpbusd sums in 32
 * bits, so with VNNI they go as unsigned level + 128 with q4's offset
 * trick: two sign operations fewer per block and row (cold 32000 x 2048
 * GEMV, one thread: 3.84-3.88 -> 3.72-3.83 ms; q4 3.56-3.68). */
#ifdef BLOCKQ_VNNI
INLINE int signed_w(bllm_type ty) { return ty == BLLM_TYPE_Q8; }
#else
INLINE int signed_w(bllm_type ty) { return ty == BLLM_TYPE_Q8 || ty == BLLM_TYPE_Q4NL; }
#endif

/* q8: the 32 signed weights of a block; q4nl: its 32 levels (one byte
 * shuffle looks the 4-bit codes up; plus 128 with VNNI). q4, q6: its 32
 * levels as unsigned bytes 0..15 / 0..63 (w = q - 8 / q - 32; the offset
 * is applied on the activations' side, q_offset, or subtracted,
 * row_tok4). */
INLINE __m256i load_w(bllm_type ty, const uint8_t *blk)
{
    if (ty == BLLM_TYPE_Q8)
        return _mm256_loadu_si256((const __m256i *)(blk + 2));
    /* the 16 bytes in both lanes (a load, no shuffle), the high lane
     * shifted to its nibbles: columns 16..31 */
    __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(blk + 2)));
    v = _mm256_and_si256(_mm256_srlv_epi64(v, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(15));
    if (ty == BLLM_TYPE_Q4NL) {
        static const int8_t lv[16] = BLLM_Q4NL_LEVELS;
        __m128i t = _mm_loadu_si128((const __m128i *)lv);
        if (!signed_w(ty))
            t = _mm_xor_si128(t, _mm_set1_epi8((char)0x80)); /* level + 128 */
        return _mm256_shuffle_epi8(_mm256_set_m128i(t, t), v);
    }
    if (ty == BLLM_TYPE_Q6) {
        /* qword k (columns 8k..8k+7) takes bits 2k, 2k+1 of every byte of
         * the 8 top-bit bytes, moved to bits 4-5 */
        uint64_t qh;
        memcpy(&qh, blk + 18, 8);
#ifdef BLOCKQ_VNNI
        /* one rotate (AVX-512 VL) brings the pair to bits 4-5 in place */
        __m256i h = _mm256_rolv_epi64(_mm256_set1_epi64x((long long)qh), _mm256_setr_epi64x(4, 2, 0, 62));
#else
        __m256i h = _mm256_slli_epi64(
            _mm256_srlv_epi64(_mm256_set1_epi64x((long long)qh), _mm256_setr_epi64x(0, 2, 4, 6)), 4);
#endif
        v = _mm256_or_si256(v, _mm256_and_si256(h, _mm256_set1_epi8(0x30)));
    }
    return v;
}

/* The level offset of the unsigned types (q4 8, q6 32, q4nl 128). */
INLINE int level_offset(bllm_type ty) { return ty == BLLM_TYPE_Q6 ? 32 : ty == BLLM_TYPE_Q4NL ? 128 : 8; }

/* Eight int32 partial sums of u . x for bytes u in 0..63 (no overflow:
 * maddubs pairs stay within 2 * 63 * 127; vpdpbusd takes any u), added to
 * c. */
INLINE __m256i dot_u4(__m256i c, __m256i u, __m256i x)
{
#ifdef BLOCKQ_VNNI
    return _mm256_dpbusd_epi32(c, u, x);
#else
    return _mm256_add_epi32(c, _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), _mm256_set1_epi16(1)));
#endif
}

/* -offset times the same partial sums of x: with it as the start, dot_u4
 * of a q4 or q6 block's levels gives the sums of (q - offset) x, so one per
 * block and token serves every row. */
INLINE __m256i q_offset(bllm_type ty, __m256i x)
{
    const __m256i k = _mm256_set1_epi8((char)level_offset(ty));
    return _mm256_sub_epi32(_mm256_setzero_si256(), dot_u4(_mm256_setzero_si256(), k, x));
}

/* Eight int32 partial sums of w . x for signed w (q8, or q4's and q6's
 * levels less their offset), exact. */
INLINE __m256i dot_s8(__m256i w, __m256i x)
{
    __m256i aw = _mm256_sign_epi8(w, w), sx = _mm256_sign_epi8(x, w); /* |w| (unsigned) and x * sign(w) */
#ifdef BLOCKQ_VNNI
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw, sx);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), _mm256_set1_epi16(1));
#endif
}

INLINE float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* A block's fp16 scale in all eight lanes. */
INLINE __m256 bcast_f16(const uint8_t *blk)
{
    uint16_t h;
    memcpy(&h, blk, 2);
    return _mm256_cvtph_ps(_mm_set1_epi16((short)h));
}

/* One row, tokens t..t+3: the weight block is loaded once for four sums.
 * (The q4 offset trick of the GEMV, per token here, measured ~8% slower
 * than signed weights and the sign trick.) */
INLINE void row_tok4(bllm_type ty, const uint8_t *wr, int nb, int cols, const int8_t *qx, const float *dx, int t,
                     float *y, int rows, int r)
{
    const int bs = bllm_blockq_block_bytes(ty);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const uint8_t *blk = wr;
    for (int b = 0; b < nb; b++, blk += bs) {
        uint16_t h;
        memcpy(&h, blk, 2);
        const float dw = _cvtsh_ss(h);
        __m256i wv = load_w(ty, blk);
        if (!signed_w(ty))
            wv = _mm256_sub_epi8(wv, _mm256_set1_epi8((char)level_offset(ty)));
        for (int k = 0; k < 4; k++) {
            const size_t tk = (size_t)(t + k);
            __m256i xv = _mm256_loadu_si256((const __m256i *)(qx + tk * cols + (size_t)b * BLLM_QBLOCK));
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(dw * dx[tk * nb + b]),
                                     _mm256_cvtepi32_ps(dot_s8(wv, xv)), acc[k]);
        }
    }
    for (int k = 0; k < 4; k++)
        y[(size_t)(t + k) * rows + r] = hsum(acc[k]);
}

/* The GEMV prefetches the weights PF_ROWS rows (4 groups) ahead into L2:
 * with the hardware prefetcher alone, a cold q8 32000 x 2048 GEMV read 58%
 * of the measured read bandwidth with one thread and 52% with two, 89% and
 * 90% with this (Sapphire Rapids VM, bench-binary; q4 43% -> 72%, where
 * compute is now the limit). 2, 8 and 16 groups ahead, or into L1, measured
 * the same or worse. */
#define PF_ROWS 16

/* One token, NR rows from wr on (row stride row_bytes): the activation
 * block and its q4/q6 offset are loaded once for NR independent sums, so the
 * GEMV is not one chain of dependent multiply-adds (one row at a time it
 * ran at half the memory's speed, compute-bound, on a Sapphire Rapids VM). */
INLINE void rows_tok1(bllm_type ty, int NR, const uint8_t *wr, size_t row_bytes, int nb, const int8_t *qx,
                      const float *dx, float *y)
{
    const int bs = bllm_blockq_block_bytes(ty);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const uint8_t *blk = wr;
    for (int b = 0; b < nb; b++, blk += bs) {
        const __m256i xv = _mm256_loadu_si256((const __m256i *)(qx + (size_t)b * BLLM_QBLOCK));
        const __m256i off = !signed_w(ty) ? q_offset(ty, xv) : _mm256_setzero_si256();
        const __m256 sx = _mm256_broadcast_ss(dx + b);
        /* four rows: their scales converted and multiplied together, then
         * taken back one by one by loads, not shuffles. With the nibbles
         * split by a broadcast load and a per-qword shift (load_w), not an
         * insert, this took the vector work per block and row from ~11
         * operations to ~7: L2-held 1024 x 2048 GEMV, best of 2000, one
         * thread, avx512 set q4nl 94.2 -> 74.3 us, q4 84.4 -> 75.0, q6
         * 99.4 -> 85.4; avx2 set q4nl 111 -> 93, q4 101 -> 77, q6 127 ->
         * 108, q8 92 -> 82; SmolLM2's head (49152 x 576, from L3) 1.36 ->
         * 1.10 ms. */
        float sc[4];
        if (NR == 4) {
            uint16_t h[4];
            for (int k = 0; k < 4; k++)
                memcpy(&h[k], blk + k * row_bytes, 2);
            uint64_t hh;
            memcpy(&hh, h, 8);
            _mm_storeu_ps(sc, _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi64_si128((long long)hh)), _mm256_castps256_ps128(sx)));
        }
        for (int k = 0; k < NR; k++) {
            const uint8_t *bk = blk + k * row_bytes;
            _mm_prefetch((const char *)bk + PF_ROWS * row_bytes, _MM_HINT_T1);
            const __m256i wv = load_w(ty, bk);
            const __m256i p = !signed_w(ty) ? dot_u4(off, wv, xv) : dot_s8(wv, xv);
            const __m256 s = NR == 4 ? _mm256_broadcast_ss(sc + k) : _mm256_mul_ps(bcast_f16(bk), sx);
            acc[k] = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(p), acc[k]);
        }
    }
    for (int k = 0; k < NR; k++)
        y[k] = hsum(acc[k]);
}

/* Rows go in groups of 4: each row's tokens 4 at a time (row_tok4), then
 * the remaining ones (all of them in a GEMV) one at a time over the 4 rows
 * together, while the group's weights are in L1. */
INLINE void matmul_blockq(bllm_type ty, float *y, const float *x, const void *w, int n_tok, int cols, int rows,
                          int r0, int r1, bllm_matmul_fn fallback)
{
    if (n_tok <= 0 || r0 >= r1)
        return;
    const int nb = cols / BLLM_QBLOCK, bs = bllm_blockq_block_bytes(ty);
    const size_t row_bytes = (size_t)nb * bs;
    float *dx = scratch(bllm_blockq_act_bytes(n_tok, cols));
    if (!dx) {
        fallback(y, x, w, n_tok, cols, rows, r0, r1);
        return;
    }
    const int8_t *qx = bllm_blockq_quantize_tokens(x, n_tok, cols, dx);
    const int t4 = n_tok / 4 * 4;
    for (int r = r0; r < r1; r += 4) {
        const int nr = r1 - r < 4 ? r1 - r : 4;
        const uint8_t *wr = (const uint8_t *)w + (size_t)r * row_bytes;
        for (int k = 0; k < nr; k++)
            for (int t = 0; t < t4; t += 4)
                row_tok4(ty, wr + k * row_bytes, nb, cols, qx, dx, t, y, rows, r + k);
        for (int t = t4; t < n_tok; t++) {
            float out[4];
            const int8_t *qt = qx + (size_t)t * cols;
            const float *dt = dx + (size_t)t * nb;
            if (nr == 4)
                rows_tok1(ty, 4, wr, row_bytes, nb, qt, dt, out);
            else
                for (int k = 0; k < nr; k++)
                    rows_tok1(ty, 1, wr + k * row_bytes, row_bytes, nb, qt, dt, out + k);
            for (int k = 0; k < nr; k++)
                y[(size_t)t * rows + r + k] = out[k];
        }
    }
}

void SUFFIX(bllm_matmul_q8)(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0, int r1)
{
    matmul_blockq(BLLM_TYPE_Q8, y, x, w, n_tok, cols, rows, r0, r1, bllm_matmul_q8_scalar);
}

void SUFFIX(bllm_matmul_q4)(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0, int r1)
{
    matmul_blockq(BLLM_TYPE_Q4, y, x, w, n_tok, cols, rows, r0, r1, bllm_matmul_q4_scalar);
}

void SUFFIX(bllm_matmul_q6)(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0, int r1)
{
    matmul_blockq(BLLM_TYPE_Q6, y, x, w, n_tok, cols, rows, r0, r1, bllm_matmul_q6_scalar);
}

void SUFFIX(bllm_matmul_q4nl)(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0, int r1)
{
    matmul_blockq(BLLM_TYPE_Q4NL, y, x, w, n_tok, cols, rows, r0, r1, bllm_matmul_q4nl_scalar);
}
