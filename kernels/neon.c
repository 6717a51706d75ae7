/* AArch64 Advanced SIMD (NEON) kernels for the float weight types, and the
 * two aarch64 kernel sets (their packed binary types: binary_neon.c).
 *
 * NEON, FMA (vfmaq_f32) and the f16 <-> f32 conversions (vcvt_f32_f16) are
 * part of the AArch64 base architecture, so this file builds with the
 * library's ordinary flags and the sets run on every aarch64 CPU; dispatch.c
 * hands them out without a feature check.
 *
 * The structure mirrors kernels/avx2.c; every output is a dot product of a
 * weight row with a token row, both contiguous along the columns, and one
 * register tile computes T tokens x R rows at once so that each weight vector
 * loaded (and widened from f16/bf16) is reused for T tokens, each x vector for
 * R rows. Vectors are 4 f32 wide, but AArch64 has 32 of them:
 * - GEMV (one token) is bound by memory bandwidth. Its 4-row tile takes rows
 *   q apart (q = a quarter of the range) so the weights are read as four long
 *   sequential streams, which hardware prefetchers follow far better than
 *   four short interleaved ones (see avx2.c for the measurement). Four column
 *   vectors per row (16 accumulators) hide the FMA latency (4 cycles, two
 *   pipes on Cortex-A76/Neoverse-N1 class cores).
 * - GEMM (prompt batches) uses 4 tokens x 4 rows (16 accumulators, 4 weights
 *   and 1 x live: twice that would not leave room for the operands) and
 *   walks the columns in blocks of at most GEMM_KC so a row tile's
 *   weights stay in L1 while every token tile passes over them; the next row
 *   tile's weights are prefetched meanwhile.
 * NEON has no masked loads: a ragged tail (< 4 columns) is copied into a
 * zero-padded stack buffer, so nothing past the end of a row is ever read. */
#include <arm_neon.h>
#include <math.h>
#include <string.h>

#include "kernels/binary_neon.h"
#include "kernels/kernels.h"
#include "kernels/blockq.h"

#define INLINE static inline __attribute__((always_inline))

/* Most columns per GEMM block: 4 f32 weight rows (16 KiB) fit a 64 KiB L1
 * beside a 4-token x tile (16 KiB). Blocks are made equal (multiples of 4,
 * so only the last has a ragged tail). */
#define GEMM_KC 1024

const bllm_kernel_set *bllm_kernels_neon_impl(void);
const bllm_kernel_set *bllm_kernels_neon_lut_impl(void);
const bllm_kernel_set *bllm_kernels_neon_float_impl(void);
const bllm_kernel_set *bllm_kernels_neon_pop_impl(void);

/* Four weights from element c of a row, widened to f32. bf16 is the top
 * half of an f32: a widening shift by 16 puts it in place. */
INLINE float32x4_t load_w4(bllm_type ty, const void *row, size_t c)
{
    if (ty == BLLM_TYPE_F32)
        return vld1q_f32((const float *)row + c);
    uint16x4_t h = vld1_u16((const uint16_t *)row + c);
    if (ty == BLLM_TYPE_F16)
        return vcvt_f32_f16(vreinterpret_f16_u16(h));
    return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
}

/* The n < 4 weights from element c, zero-padded to a vector. */
INLINE float32x4_t load_w_tail(bllm_type ty, const void *row, size_t c, int n)
{
    if (ty == BLLM_TYPE_F32) {
        float buf[4] = {0};
        memcpy(buf, (const float *)row + c, (size_t)n * sizeof buf[0]);
        return vld1q_f32(buf);
    }
    uint16_t buf[4] = {0};
    memcpy(buf, (const uint16_t *)row + c, (size_t)n * sizeof buf[0]);
    return load_w4(ty, buf, 0);
}

INLINE float32x4_t load_f32_tail(const float *p, int n)
{
    float buf[4] = {0};
    memcpy(buf, p, (size_t)n * sizeof buf[0]);
    return vld1q_f32(buf);
}

/* Horizontal sums of four vectors, as one vector {sum a, sum b, sum c, sum d}. */
INLINE float32x4_t hsum4(float32x4_t a, float32x4_t b, float32x4_t c, float32x4_t d)
{
    return vpaddq_f32(vpaddq_f32(a, b), vpaddq_f32(c, d));
}

/* y[t*ldy + r*ystride] (+)= sum_{c0 <= c < c1} w_r[c] x_t[c] for t < T,
 * r < R, where w_r starts at w + r*wstride bytes and x_t at x + t*ldx.
 * T, R, U (column vectors per row, i.e. independent FMA chains) are constants
 * at every call, so after inlining the loops unroll fully and the
 * accumulators live in registers. */
INLINE void tile(bllm_type ty, const int T, const int R, const int U, float *y, size_t ldy,
                 size_t ystride, const float *x, size_t ldx, const char *w, size_t wstride,
                 int c0, int c1, int accumulate)
{
    float32x4_t acc[4][4][4];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++)
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
#pragma GCC unroll 4
            for (int u = 0; u < U; u++)
                acc[t][r][u] = vdupq_n_f32(0.0f);

    int c = c0;
    for (; c + 4 * U <= c1; c += 4 * U) {
#pragma GCC unroll 4
        for (int u = 0; u < U; u++) {
            float32x4_t wv[4];
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                wv[r] = load_w4(ty, w + r * wstride, (size_t)c + 4 * u);
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                float32x4_t xv = vld1q_f32(x + t * ldx + c + 4 * u);
#pragma GCC unroll 4
                for (int r = 0; r < R; r++)
                    acc[t][r][u] = vfmaq_f32(acc[t][r][u], wv[r], xv);
            }
        }
    }
    if (U > 1) {
        for (; c + 4 <= c1; c += 4) {
            float32x4_t wv[4];
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                wv[r] = load_w4(ty, w + r * wstride, (size_t)c);
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                float32x4_t xv = vld1q_f32(x + t * ldx + c);
#pragma GCC unroll 4
                for (int r = 0; r < R; r++)
                    acc[t][r][0] = vfmaq_f32(acc[t][r][0], wv[r], xv);
            }
        }
    }
    if (c < c1) {
        int n = c1 - c;
        float32x4_t wv[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            wv[r] = load_w_tail(ty, w + r * wstride, (size_t)c, n);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            float32x4_t xv = load_f32_tail(x + t * ldx + c, n);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                acc[t][r][0] = vfmaq_f32(acc[t][r][0], wv[r], xv);
        }
    }

#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
        float *yt = y + t * ldy;
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
#pragma GCC unroll 4
            for (int u = 1; u < U; u++)
                acc[t][r][0] = vaddq_f32(acc[t][r][0], acc[t][r][u]);
        }
        if (R == 4 && ystride == 1) {
            float32x4_t s = hsum4(acc[t][0][0], acc[t][1][0], acc[t][2][0], acc[t][3][0]);
            if (accumulate)
                s = vaddq_f32(s, vld1q_f32(yt));
            vst1q_f32(yt, s);
        } else if (R == 4 && !accumulate) {
            float s[4];
            vst1q_f32(s, hsum4(acc[t][0][0], acc[t][1][0], acc[t][2][0], acc[t][3][0]));
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                yt[r * ystride] = s[r];
        } else {
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                float s = vaddvq_f32(acc[t][r][0]);
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
    const size_t es = ty == BLLM_TYPE_F32 ? 4 : 2;
    const size_t ws = (size_t)cols * es;
    const char *wb = w;
    const size_t ldy = (size_t)rows, ldx = (size_t)cols;

    if (n_tok == 1) {
        /* rows r0+i, r0+q+i, r0+2q+i, r0+3q+i: four sequential streams */
        int q = (r1 - r0) / 4;
        for (int r = r0; r < r0 + q; r++)
            tile(ty, 1, 4, 4, y + r, ldy, (size_t)q, x, ldx, wb + r * ws, q * ws, 0, cols, 0);
        for (int r = r0 + 4 * q; r < r1; r++)
            tile(ty, 1, 1, 4, y + r, ldy, 1, x, ldx, wb + r * ws, ws, 0, cols, 0);
        return;
    }

    const int n_blocks = (cols + GEMM_KC - 1) / GEMM_KC;
    const int kc = ((cols + n_blocks - 1) / n_blocks + 3) & ~3;
    const int n_tt = n_tok / 4 > 0 ? n_tok / 4 : 1;
    for (int c0 = 0; c0 < cols; c0 += kc) {
        int c1 = cols - c0 > kc ? c0 + kc : cols;
        int acc = c0 > 0;
        /* bytes of one row's block, and the slice of the next row tile's
         * block to prefetch before each token tile (whole cache lines) */
        const size_t blk = (size_t)(c1 - c0) * es;
        const size_t pf_chunk = ((blk + n_tt - 1) / n_tt + 63) & ~(size_t)63;
        int r = r0;
        for (; r + 4 <= r1; r += 4) {
            const char *wr = wb + r * ws;
            const char *pf = r + 8 <= r1 ? wr + 4 * ws + c0 * es : NULL;
            int t = 0;
            for (; t + 4 <= n_tok; t += 4) {
                if (pf) {
                    size_t off = (size_t)(t / 4) * pf_chunk;
                    for (size_t b = off; b < off + pf_chunk && b < blk; b += 64)
                        for (int k = 0; k < 4; k++)
                            __builtin_prefetch(pf + k * ws + b, 0, 3);
                }
                tile(ty, 4, 4, 1, y + t * ldy + r, ldy, 1, x + t * ldx, ldx, wr, ws, c0, c1, acc);
            }
            for (; t < n_tok; t++)
                tile(ty, 1, 4, 2, y + t * ldy + r, ldy, 1, x + t * ldx, ldx, wr, ws, c0, c1, acc);
        }
        for (; r < r1; r++) {
            const char *wr = wb + r * ws;
            int t = 0;
            for (; t + 4 <= n_tok; t += 4)
                tile(ty, 4, 1, 2, y + t * ldy + r, ldy, 1, x + t * ldx, ldx, wr, ws, c0, c1, acc);
            for (; t < n_tok; t++)
                tile(ty, 1, 1, 4, y + t * ldy + r, ldy, 1, x + t * ldx, ldx, wr, ws, c0, c1, acc);
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
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0, s2 = s0, s3 = s0;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
        s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
        s2 = vfmaq_f32(s2, vld1q_f32(a + i + 8), vld1q_f32(b + i + 8));
        s3 = vfmaq_f32(s3, vld1q_f32(a + i + 12), vld1q_f32(b + i + 12));
    }
    for (; i + 4 <= n; i += 4)
        s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
    if (i < n)
        s1 = vfmaq_f32(s1, load_f32_tail(a + i, n - i), load_f32_tail(b + i, n - i));
    return vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
}

static void axpy_f32(float *y, float a, const float *x, int n)
{
    const float32x4_t av = vdupq_n_f32(a);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        float32x4_t y0 = vfmaq_f32(vld1q_f32(y + i), av, vld1q_f32(x + i));
        float32x4_t y1 = vfmaq_f32(vld1q_f32(y + i + 4), av, vld1q_f32(x + i + 4));
        vst1q_f32(y + i, y0);
        vst1q_f32(y + i + 4, y1);
    }
    for (; i + 4 <= n; i += 4)
        vst1q_f32(y + i, vfmaq_f32(vld1q_f32(y + i), av, vld1q_f32(x + i)));
    /* the tail rounds once too, so every element gets the same FMA result */
    for (; i < n; i++)
        y[i] = __builtin_fmaf(a, x[i], y[i]);
}

/* Up to 4 f16 values (left < 4 of them at the end), zero-padded, as f32. */
static inline float32x4_t load_f16x4(const uint16_t *x, int left)
{
    uint16_t t[4] = {0};
    if (left >= 4)
        return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(x)));
    memcpy(t, x, (size_t)left * sizeof *x);
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(t)));
}

static float dot_f16(const float *a, const uint16_t *b, int n)
{
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0, s2 = s0, s3 = s0;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = vfmaq_f32(s0, vld1q_f32(a + i), load_f16x4(b + i, 4));
        s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), load_f16x4(b + i + 4, 4));
        s2 = vfmaq_f32(s2, vld1q_f32(a + i + 8), load_f16x4(b + i + 8, 4));
        s3 = vfmaq_f32(s3, vld1q_f32(a + i + 12), load_f16x4(b + i + 12, 4));
    }
    for (; i + 4 <= n; i += 4)
        s0 = vfmaq_f32(s0, vld1q_f32(a + i), load_f16x4(b + i, 4));
    if (i < n)
        s1 = vfmaq_f32(s1, load_f32_tail(a + i, n - i), load_f16x4(b + i, n - i));
    return vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
}

static void axpy_f16(float *y, float a, const uint16_t *x, int n)
{
    const float32x4_t av = vdupq_n_f32(a);
    int i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(y + i, vfmaq_f32(vld1q_f32(y + i), av, load_f16x4(x + i, 4)));
    for (; i < n; i++) /* rounded once, as the vector lanes are */
        y[i] = __builtin_fmaf(a, bllm_f16_to_f32(x[i]), y[i]);
}

static void cvt_f16_f32(float *y, const uint16_t *x, int n)
{
    int i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(y + i, load_f16x4(x + i, 4));
    for (; i < n; i++)
        y[i] = bllm_f16_to_f32(x[i]);
}

/* FPCR's default rounding (nearest even) and NaN handling (quieted,
 * payload kept) are bllm_f32_to_f16's. */
static void cvt_f32_f16(uint16_t *y, const float *x, int n)
{
    int i = 0;
    for (; i + 4 <= n; i += 4)
        vst1_u16(y + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
    for (; i < n; i++)
        y[i] = bllm_f32_to_f16(x[i]);
}

/* q8 blocks (the q8 KV cache): 16 int8 at p as four f32 vectors */
static inline void load_i8x16(const uint8_t *p, float32x4_t v[4])
{
    const int8x16_t q = vld1q_s8((const int8_t *)p);
    const int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_s8(vget_high_s8(q));
    v[0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo)));
    v[1] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(lo)));
    v[2] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi)));
    v[3] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(hi)));
}

/* One q8 block: its 32 values (as integers) into v[8], its scale returned */
static inline float load_q8_block(const uint8_t *blk, float32x4_t v[8])
{
    uint16_t h;
    memcpy(&h, blk, 2);
    load_i8x16(blk + 2, v);
    load_i8x16(blk + 18, v + 4);
    return bllm_f16_to_f32(h);
}

static float dot_q8(const float *a, const uint8_t *b, int n)
{
    float32x4_t acc = vdupq_n_f32(0.0f);
    for (int i = 0; i < n; i += 32, b += 34) {
        float32x4_t v[8], s = vdupq_n_f32(0.0f);
        const float d = load_q8_block(b, v);
        for (int k = 0; k < 8; k++)
            s = vfmaq_f32(s, vld1q_f32(a + i + 4 * k), v[k]);
        acc = vfmaq_n_f32(acc, s, d);
    }
    return vaddvq_f32(acc);
}

static void axpy_q8(float *y, float a, const uint8_t *x, int n)
{
    const float32x4_t av = vdupq_n_f32(a);
    for (int i = 0; i < n; i += 32, x += 34) {
        float32x4_t v[8];
        const float d = load_q8_block(x, v);
        for (int k = 0; k < 8; k++)
            vst1q_f32(y + i + 4 * k, vfmaq_f32(vld1q_f32(y + i + 4 * k), av, vmulq_n_f32(v[k], d)));
    }
}

static void cvt_q8_f32(float *y, const uint8_t *x, int n)
{
    for (int i = 0; i < n; i += 32, x += 34) {
        float32x4_t v[8];
        const float d = load_q8_block(x, v);
        for (int k = 0; k < 8; k++)
            vst1q_f32(y + i + 4 * k, vmulq_n_f32(v[k], d));
    }
}

/* Head sizes attend_f16 takes: 8 keys' rows of f32 (8 KiB) stay on the
 * stack and in L1. */
#define ATT_HD_MAX 256
#define ATT_KEYS 8

/* Rows j0 .. j0 + 7 of one head of the f16 cache as f32, hd apart; rows
 * past the last repeat it (their scores are never stored, and the value
 * loop stops at the last real row). The next block's rows are prefetched,
 * as the x86 kernels do (kernels/avx2.c). */
INLINE void att_rows_f32(float *dst, const uint16_t *x, size_t stride, int j0, int n, int hd)
{
    for (int j = 0; j < ATT_KEYS; j++) {
        const uint16_t *r = x + (size_t)(j0 + j < n ? j0 + j : n - 1) * stride;
        if (j0 + ATT_KEYS + j < n)
            for (int b = 0; b < hd * 2; b += 64)
                __builtin_prefetch((const char *)(r + ATT_KEYS * stride) + b, 0, 3);
        for (int i = 0; i < hd; i += 4)
            vst1q_f32(dst + (size_t)j * hd + i, load_f16x4(r + i, 4));
    }
}

/* The AVX2 kernel's plan (kernels/avx2.c) on 4 lanes: each key and value
 * row is widened once per call and serves all nq query rows (the query
 * heads sharing this KV head). Without it the forward pass widened every
 * row once per query head in dot_f16 and axpy_f16 calls, or from 64 keys
 * on went through BLAS on f32 copies (docs/inference.md, "Attention").
 * The exp is the scalar one, as the set's exp_sub_sum. */
static void attend_f16(float *out, const float *q, int nq, int hd, const uint16_t *k, const uint16_t *v,
                       size_t stride, int n, float scale, float *scores)
{
    if (hd % 4 || hd > ATT_HD_MAX) {
        bllm_attend_f16_scalar(out, q, nq, hd, k, v, stride, n, scale, scores);
        return;
    }
    float rows[ATT_KEYS * ATT_HD_MAX] __attribute__((aligned(16)));
    for (int j0 = 0; j0 < n; j0 += ATT_KEYS) {
        att_rows_f32(rows, k, stride, j0, n, hd);
        const int nk = n - j0 < ATT_KEYS ? n - j0 : ATT_KEYS;
        for (int g = 0; g < nq; g++) {
            const float *qg = q + (size_t)g * hd;
            float32x4_t a[ATT_KEYS];
            for (int j = 0; j < ATT_KEYS; j++)
                a[j] = vdupq_n_f32(0.0f);
            for (int i = 0; i < hd; i += 4) {
                const float32x4_t qv = vld1q_f32(qg + i);
                for (int j = 0; j < ATT_KEYS; j++)
                    a[j] = vfmaq_f32(a[j], qv, vld1q_f32(rows + (size_t)j * hd + i));
            }
            float d[ATT_KEYS];
            vst1q_f32(d, vmulq_n_f32(hsum4(a[0], a[1], a[2], a[3]), scale));
            vst1q_f32(d + 4, vmulq_n_f32(hsum4(a[4], a[5], a[6], a[7]), scale));
            memcpy(scores + (size_t)g * n + j0, d, (size_t)nk * sizeof *d);
        }
    }
    for (int g = 0; g < nq; g++) {
        float *sg = scores + (size_t)g * n;
        float32x4_t m = vdupq_n_f32(-INFINITY);
        int j = 0;
        for (; j + 4 <= n; j += 4)
            m = vmaxq_f32(m, vld1q_f32(sg + j));
        float maxv = vmaxvq_f32(m);
        for (; j < n; j++)
            maxv = sg[j] > maxv ? sg[j] : maxv;
        const float inv = 1.0f / bllm_exp_sub_sum_scalar(sg, n, maxv);
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
            for (; i + 16 <= hd; i += 16) {
                float32x4_t o0 = vld1q_f32(og + i), o1 = vld1q_f32(og + i + 4);
                float32x4_t o2 = vld1q_f32(og + i + 8), o3 = vld1q_f32(og + i + 12);
                for (int j = 0; j < nk; j++) {
                    const float *r = rows + (size_t)j * hd + i;
                    o0 = vfmaq_n_f32(o0, vld1q_f32(r), p[j]);
                    o1 = vfmaq_n_f32(o1, vld1q_f32(r + 4), p[j]);
                    o2 = vfmaq_n_f32(o2, vld1q_f32(r + 8), p[j]);
                    o3 = vfmaq_n_f32(o3, vld1q_f32(r + 12), p[j]);
                }
                vst1q_f32(og + i, o0);
                vst1q_f32(og + i + 4, o1);
                vst1q_f32(og + i + 8, o2);
                vst1q_f32(og + i + 12, o3);
            }
            for (; i < hd; i += 4) {
                float32x4_t o = vld1q_f32(og + i);
                for (int j = 0; j < nk; j++)
                    o = vfmaq_n_f32(o, vld1q_f32(rows + (size_t)j * hd + i), p[j]);
                vst1q_f32(og + i, o);
            }
        }
    }
}

/* Sets that differ in the packed binary types only (binary_neon.c), named
 * like the x86 ones: "neon-lut" the int8 table-lookup path, "neon-float"
 * the float path (no quantization of x: accuracy studies, or measuring what
 * the lookup path costs), and "neon", the default, which is the lookup path
 * for every type and n_tok: unlike "avx2" it is not a per-type choice by
 * measurement, as no aarch64 machine was at hand to measure on. */
/* tile: the suffix of the tile-shaped types' kernels, blk: billm's and
 * stbllm's (which have no popcount path) */
#define ENTRY_neon(name, TYPE, KTYPE) [TYPE] = bllm_matmul_##name##_neon,
#define ENTRY_neon_float(name, TYPE, KTYPE) [TYPE] = bllm_matmul_##name##_neon_float,
#define ENTRY_neon_pop(name, TYPE, KTYPE) [TYPE] = bllm_matmul_##name##_neon_pop,
#define PACKED2(tile, blk)                                                              \
    BLLM_TILE_TYPES(ENTRY_##tile) BLLM_BLOCK_TYPES(ENTRY_##blk)                         \
    [BLLM_TYPE_Q8] = bllm_matmul_q8_neon, [BLLM_TYPE_Q4] = bllm_matmul_q4_neon, [BLLM_TYPE_Q6] = bllm_matmul_q6_neon, \
    [BLLM_TYPE_Q4NL] = bllm_matmul_q4nl_neon

/* A set: the float kernels every NEON set shares, and the packed types'
 * kernels of one path (tile-shaped types, block types). */
#define NEON_SET(set_name, tile, blk)                                                 \
    {                                                                                 \
        .name = set_name,                                                             \
        .matmul = {[BLLM_TYPE_F32] = matmul_f32, [BLLM_TYPE_F16] = matmul_f16,        \
                   [BLLM_TYPE_BF16] = matmul_bf16, PACKED2(tile, blk)},               \
        .salient_matvec = bllm_salient_matvec, /* the scalar reference: no NEON yet */ \
        .dot_f32 = dot_f32, .axpy_f32 = axpy_f32, .dot_f16 = dot_f16, .axpy_f16 = axpy_f16, \
        .cvt_f16_f32 = cvt_f16_f32, .cvt_f32_f16 = cvt_f32_f16, .dot_q8 = dot_q8, .axpy_q8 = axpy_q8, .cvt_q8_f32 = cvt_q8_f32, \
        .exp_sub_sum = bllm_exp_sub_sum_scalar, .swiglu = bllm_swiglu_scalar, /* no NEON exp yet */ \
        .attend_f16 = attend_f16,                                                     \
    }

static const bllm_kernel_set neon_set = NEON_SET("neon", neon, neon);
static const bllm_kernel_set neon_lut_set = NEON_SET("neon-lut", neon, neon);
static const bllm_kernel_set neon_float_set = NEON_SET("neon-float", neon_float, neon_float);
/* the popcount path (binary_neon.c) for the tile-shaped types; billm and
 * stbllm keep the lookup path */
static const bllm_kernel_set neon_pop_set = NEON_SET("neon-pop", neon_pop, neon);

/* Handed to dispatch.c. */
const bllm_kernel_set *bllm_kernels_neon_pop_impl(void) { return &neon_pop_set; }
const bllm_kernel_set *bllm_kernels_neon_impl(void) { return &neon_set; }
const bllm_kernel_set *bllm_kernels_neon_lut_impl(void) { return &neon_lut_set; }
const bllm_kernel_set *bllm_kernels_neon_float_impl(void) { return &neon_float_set; }
