/* q4/q4nl matmuls on the x16 layout (kernels/blockq.h) with vpdpbusd. One
 * source, built twice: with AVX-512 VNNI (a group's 16 rows in one 512-bit
 * vector) and, as X16_AVXVNNI, with AVX-VNNI (Alder Lake and later client
 * CPUs without AVX-512: two 256-bit halves of 8 rows). Per 16 rows and
 * 32-column block: four 64-byte loads split into 8 code vectors (q4nl:
 * looked up to level + 128 by one vpshufb each), 8 vpdpbusd against
 * broadcast activation quads, whose int32 lanes are the rows' sums, and one
 * scale vector: about 2 vector operations per block and row on 512 bits
 * (4 on 256), where the row-major kernel (blockq_avx2.c) needs about 7. The
 * codes are unsigned (q4: level + 8; q4nl: level + 128), so each block's
 * sum starts at -offset times the sum of its activation bytes. */
#include <immintrin.h>
#include <string.h>

#include "kernels/blockq.h"
#include "kernels/thread_scratch.h"
#include "runtime/format/blockq.h"

#define INLINE static inline __attribute__((always_inline))

#ifdef X16_AVXVNNI
#define SUFFIX(n) n##_avxvnni
#define HALVES 2 /* vectors per group of 16 rows */
typedef __m256i vi;
typedef __m256 vf;
#define LOADU(p) _mm256_loadu_si256((const __m256i *)(p))
#define AND _mm256_and_si256
#define SRLI16 _mm256_srli_epi16
#define SET1_8 _mm256_set1_epi8
#define SET1_32 _mm256_set1_epi32
#define SET1_PS _mm256_set1_ps
#define ZERO_I _mm256_setzero_si256
#define ZERO_F _mm256_setzero_ps
#define SHUF _mm256_shuffle_epi8
#define DPBUSD _mm256_dpbusd_avx_epi32
#define ADD32 _mm256_add_epi32
#define CVT_I2F _mm256_cvtepi32_ps
#define MUL _mm256_mul_ps
#define FMADD _mm256_fmadd_ps
#define STOREU _mm256_storeu_ps
#define TAB16(t) _mm256_broadcastsi128_si256(t)
#define SCALES(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p))) /* 8 rows' fp16 scales */
#else
#define SUFFIX(n) n##_vnni
#define HALVES 1
typedef __m512i vi;
typedef __m512 vf;
#define LOADU(p) _mm512_loadu_si512((const void *)(p))
#define AND _mm512_and_si512
#define SRLI16 _mm512_srli_epi16
#define SET1_8 _mm512_set1_epi8
#define SET1_32 _mm512_set1_epi32
#define SET1_PS _mm512_set1_ps
#define ZERO_I _mm512_setzero_si512
#define ZERO_F _mm512_setzero_ps
#define SHUF _mm512_shuffle_epi8
#define DPBUSD _mm512_dpbusd_epi32
#define ADD32 _mm512_add_epi32
#define CVT_I2F _mm512_cvtepi32_ps
#define MUL _mm512_mul_ps
#define FMADD _mm512_fmadd_ps
#define STOREU _mm512_storeu_ps
#define TAB16(t) _mm512_broadcast_i32x4(t)
#define SCALES(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#endif

enum { GB = BLLM_BLOCKQ_X16_ROWS * 18,                /* bytes per group and block */
       VROWS = BLLM_BLOCKQ_X16_ROWS / HALVES };         /* rows per vector */

/* Prefetch distance in group blocks, into L2 (X16_PFD_HINT). An Emerald
 * Rapids VM (512-bit), cold 32000 x 2048 q4nl GEMV, one thread, read 13.8
 * GB/s with 8 ahead into L1 and 12.6 with 16 into L2, one run each. On a
 * Zen 4 VM 8 into L1 was the slowest choice: the same GEMV on huge pages,
 * 5 alternated rounds, medians of 40 passes, 18.6 GB/s (8 into L1), 17.1
 * (16 into L1), 20.1 (16 into L2), 18.8 (32 into L2), 19.9 (none); with a
 * second process streaming beside it 13.9 against 15.1-15.6 for the L2
 * choices; and alternated decode (bllm-bench tg128, 4 rounds, medians) went
 * 103 -> 107 t/s on one thread and 147 -> 164 on two on the TinyLlama
 * shape, 459 -> 488 and 743 -> 875 on SmolLM2, whose head is half the
 * bytes a token reads. The binary GEMV came to the same choice
 * (kernels/binary_x86.h, PFD). */
#define X16_PFD 16
#define X16_PFD_HINT _MM_HINT_T1

/* The activations of n_tok tokens per block: dx (scales), qx (int8),
 * bias = -offset * sum of the block's qx, in one scratch buffer. */
typedef struct {
    const float *dx;
    const int8_t *qx;
    const int32_t *bias;
} x16_act;

/* What the scratch buffer holds: the activations of x for the caller's
 * scope (kernels/kernels.h), which the next call on the same x within the
 * scope (the next batch of rows of a shared product) reuses. */
static _Thread_local struct {
    uint64_t scope;
    const float *x;
    const uint8_t *mem;
    int n_tok, cols;
    bllm_type ty;
} act_kept;

static int quantize_act(bllm_type ty, const float *x, int n_tok, int cols, x16_act *a)
{
    const int nb = cols / BLLM_QBLOCK, off = ty == BLLM_TYPE_Q4NL ? 128 : 8;
    const size_t act = bllm_blockq_act_bytes(n_tok, cols);
    uint8_t *mem = scratch(act + (size_t)n_tok * nb * sizeof(int32_t) + 64);
    if (!mem)
        return 0;
    int32_t *bias = (int32_t *)(mem + ((act + 63) & ~(size_t)63));
    const uint64_t scope = bllm_matmul_scope();
    a->dx = (const float *)mem;
    a->bias = bias;
    if (scope && act_kept.scope == scope && act_kept.x == x && act_kept.mem == mem && act_kept.n_tok == n_tok &&
        act_kept.cols == cols && act_kept.ty == ty) {
        a->qx = bllm_blockq_act_q(mem, n_tok, cols);
        return 1;
    }
    act_kept.scope = 0;
    a->qx = bllm_blockq_quantize_tokens(x, n_tok, cols, mem);
    for (size_t i = 0; i < (size_t)n_tok * nb; i++) {
        int32_t s = 0;
        for (int c = 0; c < BLLM_QBLOCK; c++)
            s += a->qx[i * BLLM_QBLOCK + c];
        bias[i] = -off * s;
    }
    act_kept.scope = scope, act_kept.x = x, act_kept.mem = mem;
    act_kept.n_tok = n_tok, act_kept.cols = cols, act_kept.ty = ty;
    return 1;
}

/* The 8 code vectors of one group block's half h (rows VROWS h ..): c[2j]
 * columns 4j..4j+3, c[2j+1] columns 16+4j.., as unsigned bytes (q4nl
 * through the level table). */
INLINE void load_codes(bllm_type ty, const uint8_t *blk, int h, vi c[8])
{
    const vi m4 = SET1_8(15);
    static const int8_t lv[16] = BLLM_Q4NL_LEVELS;
    const vi tab = TAB16(_mm_xor_si128(_mm_loadu_si128((const __m128i *)lv), _mm_set1_epi8((char)0x80)));
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        const vi v = LOADU(blk + 2 * BLLM_BLOCKQ_X16_ROWS + 64 * j + 4 * VROWS * h);
        vi lo = AND(v, m4), hi = AND(SRLI16(v, 4), m4);
        if (ty == BLLM_TYPE_Q4NL) {
            lo = SHUF(tab, lo);
            hi = SHUF(tab, hi);
        }
        c[2 * j] = lo;
        c[2 * j + 1] = hi;
    }
}

/* acc + (d_w * d_x) * (sum over the block), the rows of half h. */
INLINE vf block_sum(const vi c[8], const uint8_t *blk, int h, const int8_t *xb, int32_t bias, float dx, vf acc)
{
    vi s0 = SET1_32(bias), s1 = ZERO_I();
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        int32_t lo, hi;
        memcpy(&lo, xb + 4 * j, 4);
        memcpy(&hi, xb + 16 + 4 * j, 4);
        s0 = DPBUSD(s0, c[2 * j], SET1_32(lo));
        s1 = DPBUSD(s1, c[2 * j + 1], SET1_32(hi));
    }
    return FMADD(MUL(SCALES(blk + 2 * VROWS * h), SET1_PS(dx)), CVT_I2F(ADD32(s0, s1)), acc);
}

/* One token, NG groups side by side (independent chains, shared
 * activation loads). */
INLINE void gemv_groups(bllm_type ty, int NG, const uint8_t *w, size_t group_bytes, int nb, const x16_act *a,
                        int t, float *y)
{
    vf acc[2][HALVES];
    for (int k = 0; k < 2; k++)
        for (int h = 0; h < HALVES; h++)
            acc[k][h] = ZERO_F();
    const int8_t *qx = a->qx + (size_t)t * nb * BLLM_QBLOCK;
    const float *dx = a->dx + (size_t)t * nb;
    const int32_t *bias = a->bias + (size_t)t * nb;
    for (int b = 0; b < nb; b++) {
#pragma GCC unroll 2
        for (int k = 0; k < NG; k++) {
            const uint8_t *blk = w + k * group_bytes + (size_t)b * GB;
            for (int o = 0; o < GB; o += 64)
                _mm_prefetch((const char *)blk + X16_PFD * GB + o, X16_PFD_HINT);
#pragma GCC unroll 2
            for (int h = 0; h < HALVES; h++) {
                vi c[8];
                load_codes(ty, blk, h, c);
                acc[k][h] = block_sum(c, blk, h, qx + (size_t)b * BLLM_QBLOCK, bias[b], dx[b], acc[k][h]);
            }
        }
    }
    for (int k = 0; k < NG; k++)
        for (int h = 0; h < HALVES; h++)
            STOREU(y + BLLM_BLOCKQ_X16_ROWS * k + VROWS * h, acc[k][h]);
}

/* Tokens t..t+3 of one group: each block's codes split once for four. */
INLINE void group_tok4(bllm_type ty, const uint8_t *w, int nb, const x16_act *a, int t, float *y, int rows)
{
    for (int h = 0; h < HALVES; h++) {
        vf acc[4] = {ZERO_F(), ZERO_F(), ZERO_F(), ZERO_F()};
        for (int b = 0; b < nb; b++) {
            const uint8_t *blk = w + (size_t)b * GB;
            vi c[8];
            load_codes(ty, blk, h, c);
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const size_t i = (size_t)(t + k) * nb + b;
                acc[k] = block_sum(c, blk, h, a->qx + i * BLLM_QBLOCK, a->bias[i], a->dx[i], acc[k]);
            }
        }
        for (int k = 0; k < 4; k++)
            STOREU(y + (size_t)(t + k) * rows + VROWS * h, acc[k]);
    }
}

INLINE void matmul_x16(bllm_type ty, float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0,
                       int r1, bllm_matmul_fn fallback)
{
    if (n_tok <= 0 || r0 >= r1)
        return;
    x16_act a;
    if (!quantize_act(ty, x, n_tok, cols, &a)) {
        fallback(y, x, w, n_tok, cols, rows, r0, r1);
        return;
    }
    const int nb = cols / BLLM_QBLOCK, t4 = n_tok / 4 * 4;
    const size_t group_bytes = (size_t)nb * GB;
    const int g0 = r0 / BLLM_BLOCKQ_X16_ROWS, g1 = r1 / BLLM_BLOCKQ_X16_ROWS;
    for (int g = g0; g < g1; g++)
        for (int t = 0; t < t4; t += 4)
            group_tok4(ty, (const uint8_t *)w + g * group_bytes, nb, &a, t, y + (size_t)g * BLLM_BLOCKQ_X16_ROWS,
                       rows);
    for (int t = t4; t < n_tok; t++) {
        float *yt = y + (size_t)t * rows;
        int g = g0;
        for (; g + 2 <= g1; g += 2)
            gemv_groups(ty, 2, (const uint8_t *)w + g * group_bytes, group_bytes, nb, &a, t,
                        yt + g * BLLM_BLOCKQ_X16_ROWS);
        if (g < g1)
            gemv_groups(ty, 1, (const uint8_t *)w + g * group_bytes, group_bytes, nb, &a, t,
                        yt + g * BLLM_BLOCKQ_X16_ROWS);
    }
}

void SUFFIX(bllm_matmul_q4_x16)(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0,
                                int r1)
{
    matmul_x16(BLLM_TYPE_Q4, y, x, w, n_tok, cols, rows, r0, r1, bllm_matmul_q4_x16_scalar);
}

void SUFFIX(bllm_matmul_q4nl_x16)(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0,
                                  int r1)
{
    matmul_x16(BLLM_TYPE_Q4NL, y, x, w, n_tok, cols, rows, r0, r1, bllm_matmul_q4nl_x16_scalar);
}
