/* q8/q4 matmuls on int8 activations, x86 (kernels/blockq.h). One source,
 * built twice: with AVX2 (maddubs + madd to int32) and, as
 * BLOCKQ_VNNI, with AVX-512 VNNI (vpdpbusd does both at once). Each token's
 * x is quantized once per call by the shared scalar routine; rows take 4
 * tokens at a time so a weight block is loaded once for 4 dot products. */
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

INLINE __m256i load_w(bllm_type ty, const uint8_t *blk)
{
    if (ty == BLLM_TYPE_Q8)
        return _mm256_loadu_si256((const __m256i *)(blk + 2));
    __m128i b = _mm_loadu_si128((const __m128i *)(blk + 2));
    __m256i v = _mm256_set_m128i(_mm_srli_epi16(b, 4), b); /* columns 16..31 from the high nibbles */
    v = _mm256_and_si256(v, _mm256_set1_epi8(15));
    return _mm256_sub_epi8(v, _mm256_set1_epi8(8));
}

/* Eight int32 partial sums of q_w . q_x as f32 (exact: each below 2^17). */
INLINE __m256 dot32(__m256i w, __m256i x)
{
    __m256i aw = _mm256_sign_epi8(w, w), sx = _mm256_sign_epi8(x, w); /* |w| (unsigned) and x * sign(w) */
#ifdef BLOCKQ_VNNI
    __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw, sx);
#else
    __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), _mm256_set1_epi16(1));
#endif
    return _mm256_cvtepi32_ps(p);
}

INLINE float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

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
    for (int r = r0; r < r1; r++) {
        const uint8_t *wr = (const uint8_t *)w + (size_t)r * row_bytes;
        int t = 0;
        for (; t + 4 <= n_tok; t += 4) {
            __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
            const uint8_t *blk = wr;
            for (int b = 0; b < nb; b++, blk += bs) {
                uint16_t h;
                memcpy(&h, blk, 2);
                const float dw = _cvtsh_ss(h);
                const __m256i wv = load_w(ty, blk);
                for (int k = 0; k < 4; k++) {
                    const size_t tk = (size_t)(t + k);
                    __m256i xv = _mm256_loadu_si256((const __m256i *)(qx + tk * cols + (size_t)b * BLLM_QBLOCK));
                    acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(dw * dx[tk * nb + b]), dot32(wv, xv), acc[k]);
                }
            }
            for (int k = 0; k < 4; k++)
                y[(size_t)(t + k) * rows + r] = hsum(acc[k]);
        }
        for (; t < n_tok; t++) {
            __m256 acc = _mm256_setzero_ps();
            const uint8_t *blk = wr;
            for (int b = 0; b < nb; b++, blk += bs) {
                uint16_t h;
                memcpy(&h, blk, 2);
                __m256i xv = _mm256_loadu_si256((const __m256i *)(qx + (size_t)t * cols + (size_t)b * BLLM_QBLOCK));
                acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(h) * dx[(size_t)t * nb + b]),
                                      dot32(load_w(ty, blk), xv), acc);
            }
            y[(size_t)t * rows + r] = hsum(acc);
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
