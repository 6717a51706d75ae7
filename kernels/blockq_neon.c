/* q8/q6/q4/q4nl matmuls on int8 activations, aarch64 (kernels/blockq.h).
 * One source, built twice: as base Advanced SIMD (every aarch64 core), the
 * products of a 32-column block by vmull_s8 (each below 2^14) and pairwise
 * widening adds into four int32 lanes (vpadalq_s16), 8 instructions per
 * block and row; and, as BLOCKQ_NEON_DOTPROD (kernels/blockq_neon_dotprod.c),
 * with the ARMv8.2 dot product extension, where two sdot (vdotq_s32) do
 * the same. A block's integer sum is exact either way; only its split over
 * the four lanes differs (sdot: columns 4i..4i+3 in lane i), so the two
 * differ by f32 summation order, as each does from the scalar reference.
 * The base build's entry points run the sdot build where the CPU has it
 * (bllm_neon_has_dotprod). Each token's x is quantized once per call by
 * the shared scalar routine; the f32 accumulation is per lane, then across
 * lanes. */
#include <arm_neon.h>
#include <string.h>

#include "kernels/blockq.h"
#include "kernels/thread_scratch.h"
#include "runtime/format/blockq.h"

#ifdef BLOCKQ_NEON_DOTPROD
#define SUFFIX(n) n##_dotprod
#else
#define SUFFIX(n) n##_base
#endif

static inline int8x16x2_t load_w(bllm_type ty, const uint8_t *blk)
{
    int8x16x2_t w;
    if (ty == BLLM_TYPE_Q8) {
        w.val[0] = vld1q_s8((const int8_t *)(blk + 2));
        w.val[1] = vld1q_s8((const int8_t *)(blk + 18));
        return w;
    }
    uint8x16_t b = vld1q_u8(blk + 2);
    uint8x16_t lo = vandq_u8(b, vdupq_n_u8(15)), hi = vshrq_n_u8(b, 4); /* columns 0..15, 16..31 */
    if (ty == BLLM_TYPE_Q4NL) { /* the codes look the levels up */
        static const int8_t lv[16] = BLLM_Q4NL_LEVELS;
        const int8x16_t t = vld1q_s8(lv);
        w.val[0] = vqtbl1q_s8(t, lo);
        w.val[1] = vqtbl1q_s8(t, hi);
        return w;
    }
    if (ty == BLLM_TYPE_Q6) {
        /* the top two bits: byte j holds those of columns j, j + 8, j + 16,
         * j + 24; doubled, the 8 bytes shift right by 0 and 2 (low half)
         * or 4 and 6 (high half), then move to bits 4-5 */
        uint8x8_t qh = vld1_u8(blk + 18);
        uint8x16_t q2 = vcombine_u8(qh, qh);
        const int8x16_t sl = vcombine_s8(vdup_n_s8(0), vdup_n_s8(-2)), sh = vcombine_s8(vdup_n_s8(-4), vdup_n_s8(-6));
        const uint8x16_t three = vdupq_n_u8(3);
        lo = vorrq_u8(lo, vshlq_n_u8(vandq_u8(vshlq_u8(q2, sl), three), 4));
        hi = vorrq_u8(hi, vshlq_n_u8(vandq_u8(vshlq_u8(q2, sh), three), 4));
    }
    const int8x16_t off = vdupq_n_s8(ty == BLLM_TYPE_Q6 ? 32 : 8);
    w.val[0] = vsubq_s8(vreinterpretq_s8_u8(lo), off);
    w.val[1] = vsubq_s8(vreinterpretq_s8_u8(hi), off);
    return w;
}

static inline int32x4_t dot32(int8x16x2_t w, const int8_t *x)
{
    int8x16_t x0 = vld1q_s8(x), x1 = vld1q_s8(x + 16);
    int32x4_t acc = vdupq_n_s32(0);
#ifdef BLOCKQ_NEON_DOTPROD
    acc = vdotq_s32(vdotq_s32(acc, w.val[0], x0), w.val[1], x1);
#else
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(w.val[0]), vget_low_s8(x0)));
    acc = vpadalq_s16(acc, vmull_high_s8(w.val[0], x0));
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(w.val[1]), vget_low_s8(x1)));
    acc = vpadalq_s16(acc, vmull_high_s8(w.val[1], x1));
#endif
    return acc;
}

static inline float f16_at(const uint8_t *p)
{
    __fp16 h;
    memcpy(&h, p, 2);
    return (float)h;
}

static void matmul_blockq(bllm_type ty, float *y, const float *x, const void *w, int n_tok, int cols, int rows,
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
        for (int t = 0; t < n_tok; t++) {
            float32x4_t acc = vdupq_n_f32(0.0f);
            const uint8_t *blk = wr;
            for (int b = 0; b < nb; b++, blk += bs) {
                int32x4_t s = dot32(load_w(ty, blk), qx + (size_t)t * cols + (size_t)b * BLLM_QBLOCK);
                acc = vfmaq_n_f32(acc, vcvtq_f32_s32(s), f16_at(blk) * dx[(size_t)t * nb + b]);
            }
            y[(size_t)t * rows + r] = vaddvq_f32(acc);
        }
    }
}

#define BLOCKQ_NEON_ENTRY(name, TYPE)                                                                           \
    void SUFFIX(bllm_matmul_##name##_neon)(float *y, const float *x, const void *w, int n_tok, int cols, int rows, \
                                           int r0, int r1)                                                     \
    {                                                                                                          \
        matmul_blockq(TYPE, y, x, w, n_tok, cols, rows, r0, r1, bllm_matmul_##name##_scalar);                  \
    }
BLOCKQ_NEON_ENTRY(q8, BLLM_TYPE_Q8)
BLOCKQ_NEON_ENTRY(q4, BLLM_TYPE_Q4)
BLOCKQ_NEON_ENTRY(q6, BLLM_TYPE_Q6)
BLOCKQ_NEON_ENTRY(q4nl, BLLM_TYPE_Q4NL)

#ifndef BLOCKQ_NEON_DOTPROD
#if defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
#elif defined(__APPLE__)
#include <sys/sysctl.h>
#endif

int bllm_neon_has_dotprod(void)
{
    static _Atomic int known = -1; /* a race only computes it twice */
    int v = known;
    if (v < 0) {
#if defined(__linux__)
        v = (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#elif defined(__APPLE__)
        int r = 0;
        size_t len = sizeof r;
        v = sysctlbyname("hw.optional.arm.FEAT_DotProd", &r, &len, NULL, 0) == 0 && r;
#else
        v = 0;
#endif
        known = v;
    }
    return v;
}

/* The kernel sets' entries: the sdot build where the CPU has it. */
#define BLOCKQ_NEON_PICK(name)                                                                                  \
    void bllm_matmul_##name##_neon(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0, \
                                   int r1)                                                                     \
    {                                                                                                          \
        (bllm_neon_has_dotprod() ? bllm_matmul_##name##_neon_dotprod                                           \
                                 : bllm_matmul_##name##_neon_base)(y, x, w, n_tok, cols, rows, r0, r1);        \
    }
BLOCKQ_NEON_PICK(q8)
BLOCKQ_NEON_PICK(q4)
BLOCKQ_NEON_PICK(q6)
BLOCKQ_NEON_PICK(q4nl)
#endif
