/* attend_f16 (kernels/kernels.h) on 512-bit vectors, for the avx512 sets:
 * the AVX2 kernel's plan (kernels/avx2.c) with 16 keys per block, so a
 * 64-wide head is 4 vectors and each query row costs half the FMAs. The 16
 * scores of a block come out of one transposing reduction of 16
 * accumulators. Built with AVX-512 F/VL and F16C (kernels/meson.build);
 * dispatch.c installs it only where cpu_has_avx512() holds. */
#include <immintrin.h>
#include <math.h>
#include <sleef.h>
#include <string.h>

#include "kernels/kernels.h"

#define INLINE static inline __attribute__((always_inline))

#define ATT_HD_MAX 256
#define ATT_KEYS 16

void bllm_attend_f16_avx512(float *out, const float *q, int nq, int hd, const uint16_t *k, const uint16_t *v,
                            size_t stride, int n, float scale, float *scores);

/* Rows j0 .. j0 + 15 of one head of the f16 cache as f32, 16 columns
 * (one vector) at a time: vector (c, j) holds columns 16c .. 16c + 15 of
 * row j at ROW(c, j), so the 16 rows of one column block are 16 constant
 * offsets from one pointer (a stride of hd floats spent a register per
 * row, and GCC parked the pointers in vector registers). Rows past the
 * last repeat it: their scores are never stored, their weights never
 * read. */
#define ROW(c, j) (((size_t)(c) * ATT_KEYS + (size_t)(j)) * 16)

INLINE void rows_f32(float *dst, const uint16_t *x, size_t stride, int j0, int n, int hd)
{
    for (int j = 0; j < ATT_KEYS; j++) {
        const uint16_t *r = x + (size_t)(j0 + j < n ? j0 + j : n - 1) * stride;
        /* the next block's row: rows are a cache row apart (n_kv_heads x
         * hd values), a stride the hardware follows late */
        if (j0 + ATT_KEYS + j < n)
            for (int b = 0; b < hd * 2; b += 64)
                _mm_prefetch((const char *)(r + ATT_KEYS * stride) + b, _MM_HINT_T0);
        for (int c = 0; c < hd / 16; c++)
            _mm512_store_ps(dst + ROW(c, j), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(r + 16 * c))));
    }
}

/* {sum a[0], ..., sum a[15]}: halve the 128-bit lanes twice across vector
 * pairs, then the 4 floats of each lane across 4 vectors. */
INLINE __m512 sum16(const __m512 a[16])
{
    __m512 x[8], y[4];
    for (int i = 0; i < 8; i++) /* lanes: a_i (two halves), a_i+8 */
        x[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[i], a[i + 8], 0x44), _mm512_shuffle_f32x4(a[i], a[i + 8], 0xEE));
    for (int i = 0; i < 4; i++) /* lanes: a_i, a_i+8, a_i+4, a_i+12 */
        y[i] = _mm512_add_ps(_mm512_shuffle_f32x4(x[i], x[i + 4], 0x88), _mm512_shuffle_f32x4(x[i], x[i + 4], 0xDD));
    const __m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(y[0], y[1]), _mm512_unpackhi_ps(y[0], y[1]));
    const __m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(y[2], y[3]), _mm512_unpackhi_ps(y[2], y[3]));
    /* per lane: element 0 of t0 and t1 hold y0/y2 parts, 1 y1/y3, ... */
    const __m512 w = _mm512_add_ps(_mm512_shuffle_ps(t0, t1, 0x44), _mm512_shuffle_ps(t0, t1, 0xEE));
    /* lane l of w: the sums of a[l'], a[l'+1], a[l'+2], a[l'+3] with lanes
     * in the order a0-3, a8-11, a4-7, a12-15 */
    return _mm512_shuffle_f32x4(w, w, 0xD8);
}

void bllm_attend_f16_avx512(float *out, const float *q, int nq, int hd, const uint16_t *k, const uint16_t *v,
                            size_t stride, int n, float scale, float *scores)
{
    if (hd % 16 || hd > ATT_HD_MAX) {
        bllm_attend_f16_scalar(out, q, nq, hd, k, v, stride, n, scale, scores);
        return;
    }
    float rows[ATT_KEYS * ATT_HD_MAX] __attribute__((aligned(64)));
    const __m512 vscale = _mm512_set1_ps(scale);
    for (int j0 = 0; j0 < n; j0 += ATT_KEYS) {
        rows_f32(rows, k, stride, j0, n, hd);
        const int nk = n - j0 < ATT_KEYS ? n - j0 : ATT_KEYS;
        const __mmask16 keep = (__mmask16)((1u << nk) - 1);
        for (int g = 0; g < nq; g++) {
            const float *qg = q + (size_t)g * hd;
            __m512 a[ATT_KEYS];
            for (int j = 0; j < ATT_KEYS; j++)
                a[j] = _mm512_setzero_ps();
            for (int c = 0; c < hd / 16; c++) {
                const __m512 qv = _mm512_loadu_ps(qg + 16 * c);
                const float *rc = rows + ROW(c, 0);
                for (int j = 0; j < ATT_KEYS; j++)
                    a[j] = _mm512_fmadd_ps(qv, _mm512_load_ps(rc + 16 * j), a[j]);
            }
            _mm512_mask_storeu_ps(scores + (size_t)g * n + j0, keep, _mm512_mul_ps(sum16(a), vscale));
        }
    }
    for (int g = 0; g < nq; g++) {
        float *sg = scores + (size_t)g * n;
        __m512 m = _mm512_set1_ps(-INFINITY);
        for (int j = 0; j < n; j += 16)
            m = _mm512_max_ps(m, _mm512_maskz_loadu_ps((__mmask16)(n - j >= 16 ? 0xffff : (1u << (n - j)) - 1), sg + j));
        const __m512 vmax = _mm512_set1_ps(_mm512_reduce_max_ps(m));
        __m512 sum = _mm512_setzero_ps();
        for (int j = 0; j < n; j += 16) {
            const __mmask16 mk = (__mmask16)(n - j >= 16 ? 0xffff : (1u << (n - j)) - 1);
            const __m512 e = Sleef_expf16_u10avx512f(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, sg + j), vmax));
            _mm512_mask_storeu_ps(sg + j, mk, e);
            sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(mk, e));
        }
        const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
        for (int j = 0; j < n; j += 16) {
            const __mmask16 mk = (__mmask16)(n - j >= 16 ? 0xffff : (1u << (n - j)) - 1);
            _mm512_mask_storeu_ps(sg + j, mk, _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, sg + j), inv));
        }
        memset(out + (size_t)g * hd, 0, (size_t)hd * sizeof *out);
    }
    for (int j0 = 0; j0 < n; j0 += ATT_KEYS) {
        rows_f32(rows, v, stride, j0, n, hd);
        const int nk = n - j0 < ATT_KEYS ? n - j0 : ATT_KEYS;
        for (int g = 0; g < nq; g++) {
            const float *p = scores + (size_t)g * n + j0;
            float *og = out + (size_t)g * hd;
            int c = 0;
            for (; c + 4 <= hd / 16; c += 4) {
                __m512 o0 = _mm512_loadu_ps(og + 16 * c), o1 = _mm512_loadu_ps(og + 16 * c + 16);
                __m512 o2 = _mm512_loadu_ps(og + 16 * c + 32), o3 = _mm512_loadu_ps(og + 16 * c + 48);
                const float *r = rows + ROW(c, 0);
                for (int j = 0; j < nk; j++, r += 16) {
                    const __m512 pj = _mm512_set1_ps(p[j]);
                    o0 = _mm512_fmadd_ps(pj, _mm512_load_ps(r), o0);
                    o1 = _mm512_fmadd_ps(pj, _mm512_load_ps(r + ROW(1, 0)), o1);
                    o2 = _mm512_fmadd_ps(pj, _mm512_load_ps(r + ROW(2, 0)), o2);
                    o3 = _mm512_fmadd_ps(pj, _mm512_load_ps(r + ROW(3, 0)), o3);
                }
                _mm512_storeu_ps(og + 16 * c, o0);
                _mm512_storeu_ps(og + 16 * c + 16, o1);
                _mm512_storeu_ps(og + 16 * c + 32, o2);
                _mm512_storeu_ps(og + 16 * c + 48, o3);
            }
            for (; c < hd / 16; c++) {
                __m512 o = _mm512_loadu_ps(og + 16 * c);
                for (int j = 0; j < nk; j++)
                    o = _mm512_fmadd_ps(_mm512_set1_ps(p[j]), _mm512_load_ps(rows + ROW(c, j)), o);
                _mm512_storeu_ps(og + 16 * c, o);
            }
        }
    }
}
