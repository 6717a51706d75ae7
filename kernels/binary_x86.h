/* The x86 binary-weight kernels, shared by kernels/binary_avx2.c and
 * kernels/binary_avx512.c: each includes this file once, compiled with its
 * own -m flags, and gets static copies of everything here. Where the
 * AVX-512 build differs it is marked BINARY_X86_512 (AVX-512 F/BW/VL
 * enabled by the compiler flags): the dense lookups take 64 bytes at a
 * time. Everything else is the AVX2 code in both builds.
 *
 * Both paths share one idea. Every 4 columns (a quad) of every row hold a
 * 4-bit sign nibble s, and a tile stores the nibbles of 32 rows for one quad
 * in 16 bytes (docs/format.md). With P[b] = sum of x_k over the set bits k of
 * b (the 16 subset sums of the quad's activations),
 *     dense   sum_k (2 s_k - 1) x_k = 2 P[s] - P[15]
 *     sparse  sum_kept (2 s_k - 1) x_k = 2 P[m & s] - P[m],  sum_kept x_k = P[m]
 * so one 16-entry table per quad serves dense, residual (two sign planes)
 * and N:M (a mask plane m next to the sign plane), and a byte shuffle
 * (vpshufb) looks the table up for 16 rows at once.
 *
 * LUT path: x is quantized to int8 per token per 64 columns
 * (kernels/binary_simd.h), and the tables hold U[b] = P[b] - (sum of the
 * negative a_k), in 0..508, split as U = lo + 32 hi (lo 0..31, hi 0..15)
 * into two byte tables. 8 lookups of lo (<= 248) and 16 of hi (<= 240) sum
 * in plain bytes, so the inner loop is 11 operations per 32 bytes of signs
 * (3 to split nibbles, 4 vpshufb, 4 byte adds) with no widening; once per
 * 64-column group vpmaddubsw splits even and odd rows into 16-bit lanes,
 * the sums become f32 and are scaled by d * alpha. Integer sums are exact.
 * Measured alternatives (docs/binary-kernels.md): a 16-bit accumulation of
 * a low byte table plus a carry table was ~15% slower; 7-bit activations
 * (U fits one byte table) are ~20% faster in the lookup loop but double
 * the quantization error. The VNNI build (BINARY_X86_VNNI) gets one byte
 * table without that cost for the dense types: it quantizes each quad's
 * f32 signed sums to a byte instead of x (build_tq), one rounding per quad
 * where int8 x has four.
 *
 * FLOAT path: the same subset sums in f32 (the tables' 4 byte planes are
 * looked up separately and interleaved back into floats); no quantization,
 * exact up to the order of the f32 additions; about half the LUT speed.
 *
 * N:M types store each row's kept mask as a 64-bit word and the kept
 * signs packed per row. One BMI2 pdep per row scatters the packed kept
 * signs into the kept positions, and the 32 rows' mask and sign words are
 * transposed to byte columns and looked up like dense planes (two lookups
 * per quad: U[m & s] and U[m]). In GEMV the decode of the next tile is
 * interleaved with the lookups of the current one. (Storing the kept set
 * as a combinatorial rank saves 1-3 bits per group, but its decode took
 * as long as the lookups: docs/binary-kernels.md.)
 *
 * Work split: GEMV streams each row tile's tiles once, prefetching every
 * line 8 tiles ahead; GEMM (n_tok > 1) does every token of a chunk on a
 * tile group while it sits in L1 (N:M tiles are decoded once for all of
 * them). Tables for a block of columns and tokens are built once per call
 * into a per-thread scratch buffer; a thread that cannot get scratch memory
 * runs the scalar reference instead, and so do row ranges that are not
 * whole 32-row tiles. */
#ifndef BLLM_BINARY_X86_H
#define BLLM_BINARY_X86_H

#include <immintrin.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/binary_scalar.h"
#include "kernels/binary_simd.h"
#include "kernels/kernels.h"
#include "kernels/thread_scratch.h"
#include "runtime/format/binary.h"

/* Preset by tests/kernels/binary_avx512_emu.c, which runs the AVX-512 parts
 * on an AVX2 CPU through SIMDe's emulation of the intrinsics. */
#ifndef BINARY_X86_512
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define BINARY_X86_512 1
#else
#define BINARY_X86_512 0
#endif
#endif

/* The popcount path (PATH_POP) needs AVX-512 VPOPCNTDQ and VBMI besides:
 * kernels/binary_avx512pop.c builds it; tests/kernels/binary_avx512pop_emu.c
 * presets it for the SIMDe build. */
#ifndef BINARY_X86_POP
#if BINARY_X86_512 && defined(__AVX512VPOPCNTDQ__) && defined(__AVX512VBMI__)
#define BINARY_X86_POP 1
#else
#define BINARY_X86_POP 0
#endif
#endif

/* Dense lookups with AVX-512 VBMI and VNNI (kernels/binary_avx512vnni.c
 * builds them; tests/kernels/binary_avx512vnni_emu.c presets this for the
 * SIMDe build): vpermb looks up a row's 4 quads side by side and vpdpbusd
 * sums them into its int32 lane, in place of the byte adds and the
 * widening below (see lut_dense_rows). */
#ifndef BINARY_X86_VNNI
#if BINARY_X86_512 && defined(__AVX512VBMI__) && defined(__AVX512VNNI__)
#define BINARY_X86_VNNI 1
#else
#define BINARY_X86_VNNI 0
#endif
#endif

#define INLINE static inline __attribute__((always_inline))
/* Keeps GCC from reassociating the accumulator chains into trees that
 * spill (measured: 30% slower without). */
#define PIN(v) __asm__("" : "+x"(v))

/* ------------------------------------------------------------ layouts */

enum { PATH_LUT = 1, PATH_FLT = 2, PATH_POP = 3 };

/* Byte offsets inside one tile (runtime/format/binary.c, docs/format.md). */
typedef struct {
    int tile_bytes;
    int sign2, alpha, alpha2, mu; /* -1: absent */
    int n, m, sb, ksigns; /* N:M: kept-sign bytes per row and their offset */
} tile_layout;

INLINE tile_layout layout_of(bllm_type ty)
{
    tile_layout L = {0, -1, -1, -1, -1, 0, 0, 0, 0};
    switch (ty) {
    case BLLM_TYPE_B1:
    case BLLM_TYPE_ONEBIT: L.tile_bytes = 256; break;
    case BLLM_TYPE_B1G:
    case BLLM_TYPE_PB8: L.tile_bytes = 320, L.alpha = 256; break;
    case BLLM_TYPE_B1MG: L.tile_bytes = 384, L.alpha = 256, L.mu = 320; break;
    case BLLM_TYPE_RB2G:
        L.tile_bytes = 704, L.sign2 = 256, L.alpha = 512, L.alpha2 = 576, L.mu = 640;
        break;
    default: {
        int n = ty == BLLM_TYPE_NM24 ? 2 : ty == BLLM_TYPE_NM48 ? 4 : ty == BLLM_TYPE_NM58 ? 5 : 6;
        int m = ty == BLLM_TYPE_NM24 ? 4 : 8;
        L.n = n, L.m = m;
        L.sb = 64 / m * n / 8;
        L.ksigns = 32 * 8; /* after the 32 mask words */
        L.alpha = 32 * (8 + L.sb);
        L.mu = L.alpha + 64;
        L.tile_bytes = L.mu + 64;
        break;
    }
    }
    return L;
}

INLINE int is_nm(bllm_type ty) { return ty >= BLLM_TYPE_NM24 && ty <= BLLM_TYPE_NM68; }

INLINE uint64_t ld64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* ------------------------------------------------- activation preparation */

/* Per token per 64-column group. */
typedef struct {
    float d;    /* LUT: quantization step (build_tq's tables: m / 127); FLOAT: unused (1) */
    float sum;  /* f32 sum of the group's x (b1mg, rb2g mu terms; FLOAT dense) */
    float kabs; /* LUT on int8 x: sum |q| (0 for build_tq's tables) */
    float kneg; /* LUT on int8 x: sum of the negative q (likewise) */
} gprep;

/* Table layouts. "pair": 32 bytes per quad pair, quad 2p in the low lane,
 * 2p+1 in the high lane, as the dense tiles store their nibbles. "dup": 32
 * bytes per quad, the same 16 entries in both lanes, for N:M planes whose
 * byte columns hold 16 rows per lane. LUT tables: the low byte table, then
 * the high bit table. FLOAT tables: the 4 byte planes of the f32 entries. */
#define LUT_PAIR_HI 256
#define TAB_LUT_PAIR 512
#define LUT_DUP_HI 512
#define TAB_LUT_DUP 1024
#define FLT_PAIR_PLANE 256
#define TAB_FLT_PAIR 1024
#define FLT_DUP_PLANE 512
#define TAB_FLT_DUP 2048
#define TAB_POP 64 /* popcount path: the 8 bit planes of q, one 64-bit word each */
/* the VNNI build's dense tables (bllm_binary_tq_group): one byte per
 * entry, quad q at 16 q, so 64-byte step p holds quads 4p..4p+3 as the pair
 * tables' low half does */
#define TAB_TQ 256

/* Interleaves in-lane: lane bytes k of 4 floats -> [b0 x4, b1 x4, b2 x4, b3 x4]. */
static const uint8_t split_bytes_ctl[32] = {0, 4, 8,  12, 1, 5, 9,  13, 2, 6, 10, 14, 3, 7, 11, 15,
                                            0, 4, 8,  12, 1, 5, 9,  13, 2, 6, 10, 14, 3, 7, 11, 15};

/* Control vectors for building LUT tables with shuffles: for term k (column
 * k of the quad), entry b of lane l picks pos (a > 0 part) when bit k of b is
 * set and neg (-a > 0 part) otherwise, from V = [pos c0..c7, neg c0..c7] of
 * the quad pair; lane l is quad 2p + l (pair layout). Dup layout uses lane
 * 0's controls in both lanes with V = [pos of the quad x2.., neg ..]. */
static uint8_t lut_ctl_pair[4][32];
static uint8_t lut_ctl_dup[4][32];
/* f32 entries: sign pattern of term k for entries 0..7 / 8..15. */
static pthread_once_t ctl_once = PTHREAD_ONCE_INIT;

#if BINARY_X86_POP
/* pop_tr_idx[k]: byte 16 r + q of X_k = tile byte 16 q + 4 k + r (rows
 * 4k..4k+3, quad q), as vpermt2b indices into a pair of 64-byte loads
 * (quads 0-7 or 8-15; one index serves both pairs). pop_pack_idx: the
 * even bytes of two vectors, in order. */
static uint8_t pop_tr_idx[4][64], pop_pack_idx[64];
#endif

static void ctl_init(void)
{
#if BINARY_X86_POP
    for (int k = 0; k < 4; k++)
        for (int r = 0; r < 4; r++)
            for (int q = 0; q < 16; q++)
                pop_tr_idx[k][16 * r + q] = (uint8_t)((q & 4 ? 64 : 0) + 16 * (q & 3) + 4 * k + r);
    for (int o = 0; o < 64; o++)
        pop_pack_idx[o] = (uint8_t)(o < 32 ? 2 * o : 64 + 2 * (o - 32));
#endif
    for (int k = 0; k < 4; k++)
        for (int l = 0; l < 2; l++)
            for (int b = 0; b < 16; b++) {
                lut_ctl_pair[k][16 * l + b] = (uint8_t)(((b >> k) & 1 ? 0 : 8) + 4 * l + k);
                lut_ctl_dup[k][16 * l + b] = (uint8_t)(((b >> k) & 1 ? 0 : 8) + k);
            }
}

INLINE float hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

/* kabs (sum |q|) and kneg (sum of the negative q) of 64 int8, by sad
 * against zero. */
INLINE void abs_neg_sums(__m256i q0, __m256i q1, gprep *g)
{
    const __m256i z = _mm256_setzero_si256();
    __m256i a0 = _mm256_abs_epi8(q0), a1 = _mm256_abs_epi8(q1);
    __m256i n0 = _mm256_sub_epi8(z, _mm256_min_epi8(q0, z)), n1 = _mm256_sub_epi8(z, _mm256_min_epi8(q1, z));
    __m256i sa = _mm256_add_epi64(_mm256_sad_epu8(a0, z), _mm256_sad_epu8(a1, z));
    __m256i sn = _mm256_add_epi64(_mm256_sad_epu8(n0, z), _mm256_sad_epu8(n1, z));
    __m128i sa2 = _mm_add_epi64(_mm256_castsi256_si128(sa), _mm256_extracti128_si256(sa, 1));
    __m128i sn2 = _mm_add_epi64(_mm256_castsi256_si128(sn), _mm256_extracti128_si256(sn, 1));
    g->kabs = (float)(_mm_cvtsi128_si32(sa2) + _mm_extract_epi32(sa2, 2));
    g->kneg = -(float)(_mm_cvtsi128_si32(sn2) + _mm_extract_epi32(sn2, 2));
}

/* Quantize 64 values (already multiplied by h for onebit) and fill g. */
INLINE void quantize64(const float *x, int8_t q[64], gprep *g)
{
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 v[8], mx = _mm256_setzero_ps(), s0 = _mm256_setzero_ps(), s1 = s0;
    for (int i = 0; i < 8; i++) {
        v[i] = _mm256_loadu_ps(x + 8 * i);
        mx = _mm256_max_ps(mx, _mm256_and_ps(v[i], absmask));
        if (i & 1)
            s1 = _mm256_add_ps(s1, v[i]);
        else
            s0 = _mm256_add_ps(s0, v[i]);
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float amax = _mm_cvtss_f32(m4);
    float sum = hsum_ps(_mm256_add_ps(s0, s1));
    g->sum = sum;
    /* sum - sum is NaN exactly when sum is inf or NaN (any inf or NaN in
     * the group makes the sum so, unless it overflows first: also NaN) */
    if (sum - sum != 0.0f || amax - amax != 0.0f) {
        memset(q, 0, 64);
        g->d = __builtin_nanf("");
        g->kabs = g->kneg = 0.0f;
        return;
    }
    float id = amax > 0.0f ? (float)BLLM_BINARY_QMAX / amax : 0.0f;
    g->d = amax / (float)BLLM_BINARY_QMAX;
    const __m256 idv = _mm256_set1_ps(id);
    __m256i qi[8];
    for (int i = 0; i < 8; i++)
        qi[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], idv)); /* MXCSR: nearest-even */
    __m256i p01 = _mm256_packs_epi32(qi[0], qi[1]), p23 = _mm256_packs_epi32(qi[2], qi[3]);
    __m256i p45 = _mm256_packs_epi32(qi[4], qi[5]), p67 = _mm256_packs_epi32(qi[6], qi[7]);
    __m256i b0 = _mm256_packs_epi16(p01, p23), b1 = _mm256_packs_epi16(p45, p67);
    /* the two packs interleave lanes: dword order 0 2 4 6 1 3 5 7 -> fix */
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    b0 = _mm256_permutevar8x32_epi32(b0, perm);
    b1 = _mm256_permutevar8x32_epi32(b1, perm);
    _mm256_storeu_si256((__m256i *)q, b0);
    _mm256_storeu_si256((__m256i *)(q + 32), b1);
    abs_neg_sums(b0, b1, g);
}

/* U = t0 + t1 + t2 + t3 (each term 0..127, U 0..508) as U = lo + 32 hi,
 * lo 0..31, hi 0..15: 8 lookups of lo and 16 of hi sum in a byte. */
INLINE void split_u(__m256i t0, __m256i t1, __m256i t2, __m256i t3, __m256i *lo, __m256i *hi)
{
    __m256i s01 = _mm256_add_epi8(t0, t1), s23 = _mm256_add_epi8(t2, t3); /* <= 254 */
    __m256i low = _mm256_add_epi8(s01, s23);                               /* U mod 256 */
    /* carry out of the byte: s23 > 255 - s01 */
    __m256i carry = _mm256_min_epu8(_mm256_subs_epu8(s23, _mm256_xor_si256(s01, _mm256_set1_epi8(-1))),
                                    _mm256_set1_epi8(1));
    *lo = _mm256_and_si256(low, _mm256_set1_epi8(31));
    *hi = _mm256_add_epi8(_mm256_and_si256(_mm256_srli_epi16(low, 5), _mm256_set1_epi8(7)),
                          _mm256_slli_epi16(carry, 3));
}

/* LUT tables of one group from its 64 int8 values. */
INLINE void build_lut(const int8_t q[64], uint8_t *tab, int dup)
{
    const __m128i z = _mm_setzero_si128();
    for (int h = 0; h < 4; h++) { /* 16 columns = 2 quad pairs at a time */
        __m128i a = _mm_loadu_si128((const __m128i *)(q + 16 * h));
        __m128i pos = _mm_max_epi8(a, z), neg = _mm_max_epi8(_mm_sub_epi8(z, a), z);
        for (int pp = 0; pp < 2; pp++) {
            int p = 2 * h + pp;
            __m128i v = pp ? _mm_unpackhi_epi64(pos, neg) : _mm_unpacklo_epi64(pos, neg);
            if (!dup) {
                __m256i V = _mm256_broadcastsi128_si256(v);
                __m256i t0 = _mm256_shuffle_epi8(V, _mm256_loadu_si256((const __m256i *)lut_ctl_pair[0]));
                __m256i t1 = _mm256_shuffle_epi8(V, _mm256_loadu_si256((const __m256i *)lut_ctl_pair[1]));
                __m256i t2 = _mm256_shuffle_epi8(V, _mm256_loadu_si256((const __m256i *)lut_ctl_pair[2]));
                __m256i t3 = _mm256_shuffle_epi8(V, _mm256_loadu_si256((const __m256i *)lut_ctl_pair[3]));
                __m256i lo, hi;
                split_u(t0, t1, t2, t3, &lo, &hi);
                _mm256_storeu_si256((__m256i *)(tab + 32 * p), lo);
                _mm256_storeu_si256((__m256i *)(tab + LUT_PAIR_HI + 32 * p), hi);
            } else {
                /* quads 2p and 2p+1, each in both lanes: V lanes hold the
                 * quad's columns at 0..3 (pos) and 8..11 (neg) */
                for (int l = 0; l < 2; l++) {
                    __m128i vq = l ? _mm_srli_epi64(v, 32) : v; /* columns 4..7 -> 0..3 per half */
                    __m256i V = _mm256_broadcastsi128_si256(vq);
                    __m256i t0 = _mm256_shuffle_epi8(V, _mm256_loadu_si256((const __m256i *)lut_ctl_dup[0]));
                    __m256i t1 = _mm256_shuffle_epi8(V, _mm256_loadu_si256((const __m256i *)lut_ctl_dup[1]));
                    __m256i t2 = _mm256_shuffle_epi8(V, _mm256_loadu_si256((const __m256i *)lut_ctl_dup[2]));
                    __m256i t3 = _mm256_shuffle_epi8(V, _mm256_loadu_si256((const __m256i *)lut_ctl_dup[3]));
                    __m256i lo, hi;
                    split_u(t0, t1, t2, t3, &lo, &hi);
                    int quad = 2 * p + l;
                    _mm256_storeu_si256((__m256i *)(tab + 32 * quad), lo);
                    _mm256_storeu_si256((__m256i *)(tab + LUT_DUP_HI + 32 * quad), hi);
                }
            }
        }
    }
}

/* The 16 subset sums of x[0..3] in f32, as two vectors (entries 0..7,
 * 8..15): P[b] = ((b0 x0 + b1 x1) + b2 x2) + b3 x3 with absent terms 0. */
INLINE void subset_sums(const float *x, __m256 *lo, __m256 *hi)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256 x0 = _mm256_broadcast_ss(x), x1 = _mm256_broadcast_ss(x + 1);
    __m256 x2 = _mm256_broadcast_ss(x + 2), x3 = _mm256_broadcast_ss(x + 3);
    __m256 m0 = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(idx, _mm256_set1_epi32(1)),
                                                       _mm256_set1_epi32(1)));
    __m256 m1 = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(idx, _mm256_set1_epi32(2)),
                                                       _mm256_set1_epi32(2)));
    __m256 m2 = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(idx, _mm256_set1_epi32(4)),
                                                       _mm256_set1_epi32(4)));
    __m256 s = _mm256_add_ps(_mm256_and_ps(m0, x0), _mm256_and_ps(m1, x1));
    s = _mm256_add_ps(s, _mm256_and_ps(m2, x2));
    *lo = s;
    *hi = _mm256_add_ps(s, x3);
}

/* Byte planes of 16 f32 entries (lo = 0..7, hi = 8..15) -> 4 x 16 bytes. */
INLINE void float_planes(__m256 lo, __m256 hi, __m128i out[4])
{
    const __m256i ctl = _mm256_loadu_si256((const __m256i *)split_bytes_ctl);
    /* each lane: [b0 of 4 entries, b1 .., b2 .., b3 ..] */
    __m256i a = _mm256_shuffle_epi8(_mm256_castps_si256(lo), ctl); /* entries 0-3 | 4-7 */
    __m256i b = _mm256_shuffle_epi8(_mm256_castps_si256(hi), ctl); /* entries 8-11 | 12-15 */
    /* 4x4 dword transpose across (a.l0, a.l1, b.l0, b.l1) */
    __m256i ab_lo = _mm256_permute2x128_si256(a, b, 0x20); /* e0-3 | e8-11 */
    __m256i ab_hi = _mm256_permute2x128_si256(a, b, 0x31); /* e4-7 | e12-15 */
    __m256i t0 = _mm256_unpacklo_epi32(ab_lo, ab_hi); /* [b0(0-3) b0(4-7) b1(0-3) b1(4-7)] | same for 8-15 */
    __m256i t1 = _mm256_unpackhi_epi32(ab_lo, ab_hi); /* b2, b3 */
    /* plane k: 16 bytes = entries 0..15 = [bk(0-3) bk(4-7)] from lane 0, [bk(8-11) bk(12-15)] lane 1 */
    __m256i p01 = _mm256_permute4x64_epi64(t0, 0xd8); /* qwords 0 2 1 3: b0 l0, b0 l1, b1 l0, b1 l1 */
    __m256i p23 = _mm256_permute4x64_epi64(t1, 0xd8);
    out[0] = _mm256_castsi256_si128(p01);
    out[1] = _mm256_extracti128_si256(p01, 1);
    out[2] = _mm256_castsi256_si128(p23);
    out[3] = _mm256_extracti128_si256(p23, 1);
}

/* FLOAT tables of one group (64 values of x, h already applied). */
INLINE void build_flt(const float *x, uint8_t *tab, int dup)
{
    for (int quad = 0; quad < 16; quad++) {
        __m256 lo, hi;
        __m128i pl[4];
        subset_sums(x + 4 * quad, &lo, &hi);
        float_planes(lo, hi, pl);
        for (int k = 0; k < 4; k++) {
            if (!dup) {
                _mm_storeu_si128((__m128i *)(tab + FLT_PAIR_PLANE * k + 32 * (quad >> 1) + 16 * (quad & 1)), pl[k]);
            } else {
                _mm_storeu_si128((__m128i *)(tab + FLT_DUP_PLANE * k + 32 * quad), pl[k]);
                _mm_storeu_si128((__m128i *)(tab + FLT_DUP_PLANE * k + 32 * quad + 16), pl[k]);
            }
        }
    }
}

INLINE float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#if BINARY_X86_POP
/* ------------------------------------------------------ popcount path */

/* The 8 two's-complement bit planes of q: bit c of p[b] = bit b of q[c]. */
INLINE void pop_planes(const int8_t q[64], uint64_t p[8])
{
    const __m512i v = _mm512_loadu_si512((const void *)q);
#pragma GCC unroll 8
    for (int b = 0; b < 8; b++)
        p[b] = (uint64_t)_mm512_test_epi8_mask(v, _mm512_set1_epi8((char)(1 << b)));
}

/* A dense sign tile -> its 32 rows' 64-bit words (bit c = column c), rows
 * 8i..8i+7 in R[i]. Byte 16 q + j of the tile holds row j's nibble of quad
 * q (columns 4q..4q+3) low and row j+16's high: a 16 x 16 byte transpose
 * (two vpermt2b and a blend per 4 rows), then nibble pairs packed into
 * bytes and the even bytes gathered (one vpermt2b per 8 rows). */
INLINE void pop_dense_rows(const uint8_t *tile, __m512i R[4])
{
    const __m512i in0 = _mm512_loadu_si512((const void *)tile), in1 = _mm512_loadu_si512((const void *)(tile + 64));
    const __m512i in2 = _mm512_loadu_si512((const void *)(tile + 128));
    const __m512i in3 = _mm512_loadu_si512((const void *)(tile + 192));
    const __m512i nib = _mm512_set1_epi16(0x0f0f);
    const __m512i pk = _mm512_loadu_si512((const void *)pop_pack_idx);
    __m512i lo[4], hi[4];
    for (int k = 0; k < 4; k++) {
        const __m512i idx = _mm512_loadu_si512((const void *)pop_tr_idx[k]);
        /* rows 4k..4k+3, byte 16 r + q: quads 0-7 from in0:in1, 8-15 from in2:in3 */
        __m512i X = _mm512_mask_blend_epi8(0xff00ff00ff00ff00ull, _mm512_permutex2var_epi8(in0, idx, in1),
                                           _mm512_permutex2var_epi8(in2, idx, in3));
        /* each 16-bit lane: quads 2i, 2i+1 -> one byte, nibble 2i low */
        __m512i n = _mm512_and_si512(X, nib);
        lo[k] = _mm512_or_si512(n, _mm512_srli_epi16(n, 4));
        __m512i m = _mm512_and_si512(_mm512_srli_epi16(X, 4), nib);
        hi[k] = _mm512_or_si512(m, _mm512_srli_epi16(m, 4));
    }
    R[0] = _mm512_permutex2var_epi8(lo[0], pk, lo[1]);
    R[1] = _mm512_permutex2var_epi8(lo[2], pk, lo[3]);
    R[2] = _mm512_permutex2var_epi8(hi[0], pk, hi[1]);
    R[3] = _mm512_permutex2var_epi8(hi[2], pk, hi[3]);
}

/* An N:M tile's kept masks (row j at 8 j) and its kept signs scattered to
 * their columns (pdep), rows 8i..8i+7 in M[i], S[i]. */
INLINE void pop_nm_rows(bllm_type ty, const uint8_t *tile, __m512i M[4], __m512i S[4])
{
    const tile_layout L = layout_of(ty);
    const uint64_t smask = ~0ull >> (64 - 8 * L.sb);
    uint64_t sw[32] __attribute__((aligned(64)));
#pragma GCC unroll 8
    for (int j = 0; j < 32; j++)
        sw[j] = _pdep_u64(ld64(tile + L.ksigns + j * L.sb) & smask, ld64(tile + 8 * j));
    for (int i = 0; i < 4; i++) {
        M[i] = _mm512_loadu_si512((const void *)(tile + 64 * i));
        S[i] = _mm512_load_si512((const void *)(sw + 8 * i));
    }
}

/* u[i] = P(R[i]) - kneg per row (rows 8i..8i+7), the LUT path's U sums:
 * P = sum_{b<7} 2^b popcount(R & p_b) - 2^7 popcount(R & p_7), in Horner
 * form from plane 7 down (doubling by an add, which more ports run than a
 * shift). */
INLINE void pop_sums(const __m512i R[4], const uint64_t *p, float kneg, __m256 u[4])
{
    __m512i acc[4];
    const __m512i p7 = _mm512_set1_epi64((long long)p[7]);
    for (int i = 0; i < 4; i++)
        acc[i] = _mm512_sub_epi64(_mm512_setzero_si512(), _mm512_popcnt_epi64(_mm512_and_si512(R[i], p7)));
#pragma GCC unroll 7
    for (int b = 6; b >= 0; b--) {
        const __m512i pb = _mm512_set1_epi64((long long)p[b]);
        for (int i = 0; i < 4; i++)
            acc[i] = _mm512_add_epi64(_mm512_add_epi64(acc[i], acc[i]),
                                      _mm512_popcnt_epi64(_mm512_and_si512(R[i], pb)));
    }
    const __m256 kn = _mm256_set1_ps(kneg);
    for (int i = 0; i < 4; i++)
        u[i] = _mm256_sub_ps(_mm256_cvtepi32_ps(_mm512_cvtepi64_epi32(acc[i])), kn);
}
#endif

#if BINARY_X86_VNNI
/* bllm_binary_tq_group in AVX-512, bit for bit (the same f32 operations per
 * entry; m, a max, in any order): the 16 quads in the lanes, each partial
 * sum shared by the entries agreeing in their low bits, then 4 x 4 bytes
 * per quad transposed into place (the reference's K, a bound, serves tests). */
static const uint8_t tq_order_idx[64] __attribute__((aligned(64))) = {
    /* byte 16 j + 4 k + i of a step <- byte 16 k + 4 i + j of its lanes */
    0,  4,  8,  12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60, 1,  5,  9,  13, 17, 21,
    25, 29, 33, 37, 41, 45, 49, 53, 57, 61, 2,  6,  10, 14, 18, 22, 26, 30, 34, 38, 42, 46,
    50, 54, 58, 62, 3,  7,  11, 15, 19, 23, 27, 31, 35, 39, 43, 47, 51, 55, 59, 63};

/* Halves and the horizontal max of 16 lanes, through 256 bits (the SIMDe
 * build lacks the _mm512_reduce_* forms). */
INLINE __m256 half_ps(__m512 v, int hi)
{
    return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), hi));
}
INLINE float hmax16(__m512 v)
{
    __m256 m = _mm256_max_ps(half_ps(v, 0), half_ps(v, 1));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    return _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
}
INLINE void build_tq(const float *x, uint8_t *tab, gprep *g)
{
    const __m512 zero = _mm512_setzero_ps();
    __m512 X[4], N[4];
    for (int i = 0; i < 4; i++)
        X[i] = _mm512_loadu_ps(x + 16 * i);
    {
        const __m512 s16 = _mm512_add_ps(_mm512_add_ps(X[0], X[1]), _mm512_add_ps(X[2], X[3]));
        g->sum = hsum_ps(_mm256_add_ps(half_ps(s16, 0), half_ps(s16, 1)));
    }
    {
        /* column 4q + k to lane q of X[k] */
        const __m512i e01 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
        const __m512i e23 = _mm512_add_epi32(e01, _mm512_set1_epi32(2));
        __m512 a01 = _mm512_permutex2var_ps(X[0], e01, X[1]), a23 = _mm512_permutex2var_ps(X[0], e23, X[1]);
        __m512 b01 = _mm512_permutex2var_ps(X[2], e01, X[3]), b23 = _mm512_permutex2var_ps(X[2], e23, X[3]);
#define SHUF_PS(a, b, imm) _mm512_castsi512_ps(_mm512_shuffle_i32x4(_mm512_castps_si512(a), _mm512_castps_si512(b), imm))
        X[0] = SHUF_PS(a01, b01, 0x44);
        X[1] = SHUF_PS(a01, b01, 0xEE);
        X[2] = SHUF_PS(a23, b23, 0x44);
        X[3] = SHUF_PS(a23, b23, 0xEE);
#undef SHUF_PS
    }
    const __m512 A = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(_mm512_abs_ps(X[0]), _mm512_abs_ps(X[1])),
                                                 _mm512_abs_ps(X[2])),
                                   _mm512_abs_ps(X[3]));
    const __mmask16 bad = _mm512_cmp_ps_mask(_mm512_sub_ps(A, A), zero, _CMP_NEQ_UQ);
    const float m = hmax16(A);
    if (bad) {
        memset(tab, 0, TAB_TQ);
        g->d = __builtin_nanf("");
        g->kabs = g->kneg = 0.0f;
        return;
    }
    const float inv = m >= 0x1p-96f ? 127.0f / m : 0.0f;
    const __m512 iv = _mm512_set1_ps(inv);
    for (int k = 0; k < 4; k++) /* 0 - x: -x but for the sign of a zero, which no sum keeps */
        N[k] = _mm512_sub_ps(zero, X[k]);
    __m512 L2[4], L3[8];
    for (int b = 0; b < 4; b++)
        L2[b] = _mm512_add_ps(b & 1 ? X[0] : N[0], b & 2 ? X[1] : N[1]);
    for (int b = 0; b < 8; b++)
        L3[b] = _mm512_add_ps(L2[b & 3], b & 4 ? X[2] : N[2]);
    __m512i T[16];
    for (int b = 0; b < 16; b++) /* MXCSR: nearest-even */
        T[b] = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_add_ps(L3[b & 7], b & 8 ? X[3] : N[3]), iv));
    /* Z[k] lane l, byte 4 i + j: T[4k + i] of quad 4l + j (-127..127, so
     * the saturating packs are exact) */
    __m512i Z[4];
    for (int k = 0; k < 4; k++)
        Z[k] = _mm512_packs_epi16(_mm512_packs_epi32(T[4 * k], T[4 * k + 1]),
                                  _mm512_packs_epi32(T[4 * k + 2], T[4 * k + 3]));
    const __m512i Z01l = _mm512_shuffle_i32x4(Z[0], Z[1], 0x44), Z01h = _mm512_shuffle_i32x4(Z[0], Z[1], 0xEE);
    const __m512i Z23l = _mm512_shuffle_i32x4(Z[2], Z[3], 0x44), Z23h = _mm512_shuffle_i32x4(Z[2], Z[3], 0xEE);
    /* lane l of every Z[k], in k order: step l's 64 entries by k, i, j */
    const __m512i W[4] = {_mm512_shuffle_i32x4(Z01l, Z23l, 0x88), _mm512_shuffle_i32x4(Z01l, Z23l, 0xDD),
                          _mm512_shuffle_i32x4(Z01h, Z23h, 0x88), _mm512_shuffle_i32x4(Z01h, Z23h, 0xDD)};
    const __m512i order = _mm512_load_si512((const void *)tq_order_idx);
    for (int p = 0; p < 4; p++)
        _mm512_storeu_si512((void *)(tab + 64 * p), _mm512_permutexvar_epi8(order, W[p]));
    g->kabs = g->kneg = 0.0f;
    g->d = inv > 0.0f ? m / 127.0f : 0.0f;
}
#endif

/* Prepare tokens [0, nt) x groups [g0, g0 + ng) into gp[t * ng + g] and
 * tables tab + (t * ng + g) * tab_bytes. h: onebit's column scales (fp16,
 * whole matrix) or NULL. xbuf: 64 floats. */
INLINE void prepare(int path, int dup, const float *x, int cols, int nt, int g0, int ng, const uint16_t *h,
                    gprep *gp, uint8_t *tab, size_t tab_bytes)
{
    float xh[64] __attribute__((aligned(32)));
    int8_t q[64] __attribute__((aligned(32)));
    for (int t = 0; t < nt; t++)
        for (int g = 0; g < ng; g++) {
            const float *xg = x + (size_t)t * cols + (size_t)(g0 + g) * 64;
            if (h) {
                const uint16_t *hg = h + (size_t)(g0 + g) * 64;
                for (int i = 0; i < 8; i++)
                    _mm256_store_ps(xh + 8 * i, _mm256_mul_ps(_mm256_loadu_ps(xg + 8 * i),
                                                              _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(hg + 8 * i)))));
                xg = xh;
            }
            gprep *G = gp + (size_t)t * ng + g;
            uint8_t *T = tab + ((size_t)t * ng + g) * tab_bytes;
            if (path == PATH_LUT) {
#if BINARY_X86_VNNI
                if (!dup) {
                    build_tq(xg, T, G);
                    continue;
                }
#endif
                quantize64(xg, q, G);
                build_lut(q, T, dup);
#if BINARY_X86_POP
            } else if (path == PATH_POP) {
                quantize64(xg, q, G);
                pop_planes(q, (uint64_t *)T);
#endif
            } else {
                __m256 s = _mm256_setzero_ps();
                for (int i = 0; i < 8; i++)
                    s = _mm256_add_ps(s, _mm256_loadu_ps(xg + 8 * i));
                G->sum = hsum(s);
                G->d = 1.0f;
                G->kabs = G->kneg = 0.0f;
                build_flt(xg, T, dup);
            }
        }
}

/* ------------------------------------------------------------ LUT lookups */

/* Integer sums of one 32-row tile group -> 4 f32 vectors, rows 0-7, 8-15,
 * 16-23, 24-31. A, B: byte sums of lo entries (each <= 248), H: byte sums
 * of hi entries (<= 240), all laid out [rows 0-15 | rows 16-31]; the sum
 * is A + B + 32 H per row. vpmaddubsw by (1, 0) and (0, 1) splits even
 * and odd rows into 16-bit lanes on the multiply pipes. */
INLINE void lut_finish(__m256i A, __m256i B, __m256i H, __m256 u[4])
{
    const __m256i ev = _mm256_set1_epi16(0x0001), od = _mm256_set1_epi16(0x0100);
    const __m256i ev32 = _mm256_set1_epi16(0x0020), od32 = _mm256_set1_epi16(0x2000);
    __m256i E = _mm256_add_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(A, ev), _mm256_maddubs_epi16(B, ev)),
                                 _mm256_maddubs_epi16(H, ev32));
    __m256i O = _mm256_add_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(A, od), _mm256_maddubs_epi16(B, od)),
                                 _mm256_maddubs_epi16(H, od32));
    __m256i R0 = _mm256_unpacklo_epi16(E, O); /* rows 0-7 | 16-23 */
    __m256i R1 = _mm256_unpackhi_epi16(E, O); /* rows 8-15 | 24-31 */
    u[0] = _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(R0)));
    u[1] = _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(R1)));
    u[2] = _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(_mm256_extracti128_si256(R0, 1)));
    u[3] = _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(_mm256_extracti128_si256(R1, 1)));
}

/* U sums of a dense sign tile (256 bytes) against pair tables: 11 vector
 * operations per 32 bytes, all byte adds. */
#if BINARY_X86_512
/* 64 bytes (quads 4p..4p+3, one per 128-bit lane) per step; the pair
 * tables read 64 bytes at a time are the matching per-lane tables. Each
 * lane sums 4 quads (lo <= 124, hi <= 60), so adding the two 256-bit
 * halves gives the AVX2 layout (even quads | odd quads) within byte range. */
/* The nibble indices of a dense sign tile: il[p], ih[p] = low and high
 * nibbles of bytes 64p..64p+63. Split once per tile, they serve every token
 * of a prompt chunk. */
typedef struct {
    __m512i il[4], ih[4];
} lut_index;

#if BINARY_X86_VNNI
/* With VBMI the bytes are first reordered so that dword i holds row i's
 * quads 4p..4p+3 (byte 4i + j <- byte 16j + i), and each index carries its
 * quad's table number j in bits 4-5: vpermb then reads 64-byte tables
 * (the same pair tables, quad 4p + j at bytes 16j..16j+15). */
static const uint8_t lut_quads_idx[64] __attribute__((aligned(64))) = {
    0, 16, 32, 48, 1, 17, 33, 49, 2,  18, 34, 50, 3,  19, 35, 51, 4,  20, 36, 52, 5,  21,
    37, 53, 6, 22, 38, 54, 7, 23, 39, 55, 8,  24, 40, 56, 9,  25, 41, 57, 10, 26, 42, 58,
    11, 27, 43, 59, 12, 28, 44, 60, 13, 29, 45, 61, 14, 30, 46, 62, 15, 31, 47, 63};
#endif

INLINE void lut_split(const uint8_t *s, lut_index *ix)
{
    const __m512i m4 = _mm512_set1_epi8(15);
#if BINARY_X86_VNNI
    const __m512i order = _mm512_load_si512((const void *)lut_quads_idx);
    const __m512i quad = _mm512_set1_epi32(0x30201000);
    for (int p = 0; p < 4; p++) {
        __m512i v = _mm512_permutexvar_epi8(order, _mm512_loadu_si512((const void *)(s + 64 * p)));
        /* (v & 15) | quad */
        ix->il[p] = _mm512_ternarylogic_epi32(v, m4, quad, 0xEA);
        ix->ih[p] = _mm512_ternarylogic_epi32(_mm512_srli_epi16(v, 4), m4, quad, 0xEA);
    }
#else
    for (int p = 0; p < 4; p++) {
        __m512i v = _mm512_loadu_si512((const void *)(s + 64 * p));
        ix->il[p] = _mm512_and_si512(v, m4);
        ix->ih[p] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    }
#endif
}

#if BINARY_X86_VNNI
/* Per row, the U sums (lo + 32 hi over the tile's 16 quads) of the pair
 * tables of int8 x (billm's and stbllm's planes look them up): rows 0-15 in
 * u[0], 16-31 in u[1]. vpdpbusd adds each row's 4 quads of a 64-byte step
 * (one dword, lut_split's order) into its lane, so nothing is folded or
 * widened; the two tables' chains stay apart for vpdpbusd's latency. */
INLINE void lut_dense_rows(const lut_index *ix, const uint8_t *tab, __m512 u[2])
{
    const __m512i one = _mm512_set1_epi8(1), m32 = _mm512_set1_epi8(32);
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
#pragma GCC unroll 4
    for (int p = 0; p < 4; p++) {
        const __m512i tl = _mm512_loadu_si512((const void *)(tab + 64 * p));
        const __m512i th = _mm512_loadu_si512((const void *)(tab + LUT_PAIR_HI + 64 * p));
        a0 = _mm512_dpbusd_epi32(a0, _mm512_permutexvar_epi8(ix->il[p], tl), one);
        a1 = _mm512_dpbusd_epi32(a1, _mm512_permutexvar_epi8(ix->il[p], th), m32);
        a2 = _mm512_dpbusd_epi32(a2, _mm512_permutexvar_epi8(ix->ih[p], tl), one);
        a3 = _mm512_dpbusd_epi32(a3, _mm512_permutexvar_epi8(ix->ih[p], th), m32);
    }
    u[0] = _mm512_cvtepi32_ps(_mm512_add_epi32(a0, a1));
    u[1] = _mm512_cvtepi32_ps(_mm512_add_epi32(a2, a3));
}

/* sum_q T_q[s_q] per row, the dense types' signed sum on their one-byte
 * tables (build_tq), in the integers: vpdpbusd adds a row's 4 looked-up
 * int8 entries (its signed operand) times 1; two chains per row half for
 * its latency. */
INLINE void lut_signed_rows(const lut_index *ix, const uint8_t *tab, const gprep *G, __m512 s[2])
{
    (void)G;
    const __m512i one = _mm512_set1_epi8(1);
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
#pragma GCC unroll 2
    for (int p = 0; p < 4; p += 2) {
        const __m512i t0 = _mm512_loadu_si512((const void *)(tab + 64 * p));
        const __m512i t1 = _mm512_loadu_si512((const void *)(tab + 64 * p + 64));
        a0 = _mm512_dpbusd_epi32(a0, one, _mm512_permutexvar_epi8(ix->il[p], t0));
        a1 = _mm512_dpbusd_epi32(a1, one, _mm512_permutexvar_epi8(ix->il[p + 1], t1));
        a2 = _mm512_dpbusd_epi32(a2, one, _mm512_permutexvar_epi8(ix->ih[p], t0));
        a3 = _mm512_dpbusd_epi32(a3, one, _mm512_permutexvar_epi8(ix->ih[p + 1], t1));
    }
    s[0] = _mm512_cvtepi32_ps(_mm512_add_epi32(a0, a1));
    s[1] = _mm512_cvtepi32_ps(_mm512_add_epi32(a2, a3));
}

INLINE void lut_dense_ix(const lut_index *ix, const uint8_t *tab, __m256 u[4])
{
    __m512 v[2];
    lut_dense_rows(ix, tab, v);
    u[0] = _mm512_castps512_ps256(v[0]);
    u[1] = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v[0]), 1));
    u[2] = _mm512_castps512_ps256(v[1]);
    u[3] = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v[1]), 1));
}
#else
/* The byte sums of a tile's lookups in the lo (L) and hi (H) tables, of
 * the low (l: rows 0-15) and high (h: rows 16-31) nibbles. */
typedef struct {
    __m512i Ll, Lh, Hl, Hh;
} lut_sums;

INLINE lut_sums lut_lookup(const lut_index *ix, const uint8_t *tab)
{
    lut_sums r = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
#pragma GCC unroll 4
    for (int p = 0; p < 4; p++) {
        __m512i il = ix->il[p], ih = ix->ih[p];
        __m512i tl = _mm512_loadu_si512((const void *)(tab + 64 * p));
        __m512i th = _mm512_loadu_si512((const void *)(tab + LUT_PAIR_HI + 64 * p));
        r.Ll = _mm512_add_epi8(r.Ll, _mm512_shuffle_epi8(tl, il));
        r.Lh = _mm512_add_epi8(r.Lh, _mm512_shuffle_epi8(tl, ih));
        r.Hl = _mm512_add_epi8(r.Hl, _mm512_shuffle_epi8(th, il));
        r.Hh = _mm512_add_epi8(r.Hh, _mm512_shuffle_epi8(th, ih));
    }
    return r;
}

INLINE void lut_dense_ix(const lut_index *ix, const uint8_t *tab, __m256 u[4])
{
    const lut_sums r = lut_lookup(ix, tab);
    const __m512i Ll = r.Ll, Lh = r.Lh, Hl = r.Hl, Hh = r.Hh;
    __m256i ll = _mm256_add_epi8(_mm512_castsi512_si256(Ll), _mm512_extracti64x4_epi64(Ll, 1));
    __m256i lh = _mm256_add_epi8(_mm512_castsi512_si256(Lh), _mm512_extracti64x4_epi64(Lh, 1));
    __m256i hl = _mm256_add_epi8(_mm512_castsi512_si256(Hl), _mm512_extracti64x4_epi64(Hl, 1));
    __m256i hh = _mm256_add_epi8(_mm512_castsi512_si256(Hh), _mm512_extracti64x4_epi64(Hh, 1));
    __m256i A = _mm256_permute2x128_si256(ll, lh, 0x20), B = _mm256_permute2x128_si256(ll, lh, 0x31);
    __m256i H = _mm256_add_epi8(_mm256_permute2x128_si256(hl, hh, 0x20), _mm256_permute2x128_si256(hl, hh, 0x31));
    lut_finish(A, B, H, u);
}

/* The same sums, rows 0-15 and 16-31 in two 512-bit f32 vectors, for the
 * dense types' loops (gemv_dense512, the batch loop). With 512-bit
 * instructions in flight only two ports take vector work, and a tile
 * through lut_dense_ix is limited by their total count, not by the
 * lookups (a b1g GEMV held in L2 ran 16 ns per tile on a Sapphire
 * Rapids-class VM with the 16 vpshufb or with XORs in their place); its
 * 256-bit finish (lut_finish, after halving each accumulator) and the
 * 256-bit f32 steps were about 60 of the ~100. Here the halving folds two
 * accumulators at once, the widening and the even/odd split run on 512
 * bits, and one word permute puts the rows in order for a zero-extending
 * unpack. The integers are the same exact sums. */
static const short lut_rows_idx[32] = {
    /* word 8l + m of the permuted vector: row 4l + m (m < 4), 16 + 4l + m - 4
     * (m >= 4), taken from S = [even rows 0-14 | even 16-30 | odd 1-15 |
     * odd 17-31] */
    0, 16, 1, 17, 8, 24, 9,  25, 2, 18, 3, 19, 10, 26, 11, 27,
    4, 20, 5, 21, 12, 28, 13, 29, 6, 22, 7, 23, 14, 30, 15, 31};

INLINE void lut_dense_rows(const lut_index *ix, const uint8_t *tab, __m512 u[2])
{
    const lut_sums r = lut_lookup(ix, tab);
    const __m512i Ll = r.Ll, Lh = r.Lh, Hl = r.Hl, Hh = r.Hh;
    /* lanes of Ll (Lh): quads 4p + j of rows 0-15 (16-31), byte i = row i;
     * after the fold [rows 0-15, quads j = 0, 2 | j = 1, 3 | rows 16-31 ...]
     * with lo sums <= 248 and hi sums <= 120 */
    const __m512i L2 = _mm512_add_epi8(_mm512_shuffle_i32x4(Ll, Lh, 0x44), _mm512_shuffle_i32x4(Ll, Lh, 0xEE));
    const __m512i H2 = _mm512_add_epi8(_mm512_shuffle_i32x4(Hl, Hh, 0x44), _mm512_shuffle_i32x4(Hl, Hh, 0xEE));
    /* even and odd rows in 16 bits: lo + 32 hi (<= 4088) */
    const __m512i ev = _mm512_set1_epi16(0x0001), od = _mm512_set1_epi16(0x0100);
    const __m512i ev32 = _mm512_set1_epi16(0x0020), od32 = _mm512_set1_epi16(0x2000);
    const __m512i E = _mm512_add_epi16(_mm512_maddubs_epi16(L2, ev), _mm512_maddubs_epi16(H2, ev32));
    const __m512i O = _mm512_add_epi16(_mm512_maddubs_epi16(L2, od), _mm512_maddubs_epi16(H2, od32));
    /* add the two halves of each row set: [even 0-14 | even 16-30 | odd
     * 1-15 | odd 17-31], each U sum <= 8128 */
    const __m512i S = _mm512_add_epi16(_mm512_shuffle_i32x4(E, O, 0x88), _mm512_shuffle_i32x4(E, O, 0xDD));
    const __m512i A = _mm512_permutexvar_epi16(_mm512_loadu_si512((const void *)lut_rows_idx), S);
    u[0] = _mm512_cvtepi32_ps(_mm512_unpacklo_epi16(A, _mm512_setzero_si512()));
    u[1] = _mm512_cvtepi32_ps(_mm512_unpackhi_epi16(A, _mm512_setzero_si512()));
}

INLINE void lut_signed_rows(const lut_index *ix, const uint8_t *tab, const gprep *G, __m512 s[2])
{
    const __m512 two = _mm512_set1_ps(2.0f), kabs = _mm512_set1_ps(G->kabs);
    __m512 u[2];
    lut_dense_rows(ix, tab, u);
    s[0] = _mm512_fmsub_ps(two, u[0], kabs);
    s[1] = _mm512_fmsub_ps(two, u[1], kabs);
}
#endif

INLINE void lut_dense(const uint8_t *s, const uint8_t *tab, __m256 u[4])
{
    lut_index ix;
    lut_split(s, &ix);
    lut_dense_ix(&ix, tab, u);
}
#else
INLINE void lut_dense(const uint8_t *s, const uint8_t *tab, __m256 u[4])
{
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256i Ll = _mm256_setzero_si256(), Lh = Ll, Hl = Ll, Hh = Ll;
#pragma GCC unroll 8
    for (int p = 0; p < 8; p++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(s + 32 * p));
        __m256i il = _mm256_and_si256(v, m4), ih = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        __m256i tl = _mm256_loadu_si256((const __m256i *)(tab + 32 * p));
        __m256i th = _mm256_loadu_si256((const __m256i *)(tab + LUT_PAIR_HI + 32 * p));
        Ll = _mm256_add_epi8(Ll, _mm256_shuffle_epi8(tl, il));
        Lh = _mm256_add_epi8(Lh, _mm256_shuffle_epi8(tl, ih));
        Hl = _mm256_add_epi8(Hl, _mm256_shuffle_epi8(th, il));
        Hh = _mm256_add_epi8(Hh, _mm256_shuffle_epi8(th, ih));
        PIN(Ll);
        PIN(Lh);
        PIN(Hl);
        PIN(Hh);
    }
    /* lanes hold even and odd quads: rows 0-15 | rows 16-31 */
    __m256i A = _mm256_permute2x128_si256(Ll, Lh, 0x20), B = _mm256_permute2x128_si256(Ll, Lh, 0x31);
    __m256i H = _mm256_add_epi8(_mm256_permute2x128_si256(Hl, Hh, 0x20), _mm256_permute2x128_si256(Hl, Hh, 0x31));
    lut_finish(A, B, H, u);
}
#endif

/* U sums of a decoded N:M plane: X[p] = byte p of the 32 rows' 64-bit words
 * (rows 0-15 | 16-31): low nibble quad 2p, high nibble quad 2p+1. */
INLINE void lut_cols(const __m256i *X, const uint8_t *tab, __m256 u[4])
{
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256i A = _mm256_setzero_si256(), B = A, H = A;
#pragma GCC unroll 8
    for (int p = 0; p < 8; p++) {
        __m256i v = _mm256_load_si256(X + p);
        __m256i il = _mm256_and_si256(v, m4), ih = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        const uint8_t *t0 = tab + 64 * p, *t1 = t0 + 32;
        A = _mm256_add_epi8(A, _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)t0), il));
        B = _mm256_add_epi8(B, _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)t1), ih));
        H = _mm256_add_epi8(H, _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(t0 + LUT_DUP_HI)), il));
        H = _mm256_add_epi8(H, _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(t1 + LUT_DUP_HI)), ih));
        PIN(A);
        PIN(B);
        PIN(H);
    }
    lut_finish(A, B, H, u);
}

/* ---------------------------------------------------------- FLOAT lookups */

/* 4 byte-plane lookups -> 4 f32 vectors: rows 0-3, 4-7, 8-11, 12-15 of
 * each lane (lane content depends on the index layout). */
INLINE void flt_gather(const uint8_t *t, size_t plane, __m256i idx, __m256 f[4])
{
    __m256i b0 = _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)t), idx);
    __m256i b1 = _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(t + plane)), idx);
    __m256i b2 = _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(t + 2 * plane)), idx);
    __m256i b3 = _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(t + 3 * plane)), idx);
    __m256i l01 = _mm256_unpacklo_epi8(b0, b1), h01 = _mm256_unpackhi_epi8(b0, b1);
    __m256i l23 = _mm256_unpacklo_epi8(b2, b3), h23 = _mm256_unpackhi_epi8(b2, b3);
    f[0] = _mm256_castsi256_ps(_mm256_unpacklo_epi16(l01, l23));
    f[1] = _mm256_castsi256_ps(_mm256_unpackhi_epi16(l01, l23));
    f[2] = _mm256_castsi256_ps(_mm256_unpacklo_epi16(h01, h23));
    f[3] = _mm256_castsi256_ps(_mm256_unpackhi_epi16(h01, h23));
}

/* f32 subset sums of a dense sign tile: A[r] = sum_q P_q[s_q(r)]. */
INLINE void flt_dense(const uint8_t *s, const uint8_t *tab, __m256 a[4])
{
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256 acc[8];
    for (int i = 0; i < 8; i++)
        acc[i] = _mm256_setzero_ps();
    for (int p = 0; p < 8; p++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(s + 32 * p));
        __m256i il = _mm256_and_si256(v, m4), ih = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        __m256 f[4];
        flt_gather(tab + 32 * p, FLT_PAIR_PLANE, il, f); /* rows 0-15, lanes: quad 2p | 2p+1 */
        for (int i = 0; i < 4; i++)
            acc[i] = _mm256_add_ps(acc[i], f[i]);
        flt_gather(tab + 32 * p, FLT_PAIR_PLANE, ih, f); /* rows 16-31 */
        for (int i = 0; i < 4; i++)
            acc[4 + i] = _mm256_add_ps(acc[4 + i], f[i]);
    }
    /* rows 8k..8k+7 = lanes of acc[2k] (rows 8k..+3) and acc[2k+1] added */
    for (int k = 0; k < 4; k++)
        a[k] = _mm256_add_ps(_mm256_permute2f128_ps(acc[2 * k], acc[2 * k + 1], 0x20),
                             _mm256_permute2f128_ps(acc[2 * k], acc[2 * k + 1], 0x31));
}

/* f32 subset sums of a decoded N:M plane (dup tables). */
INLINE void flt_cols(const __m256i *X, const uint8_t *tab, __m256 a[4])
{
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256 acc[4];
    for (int i = 0; i < 4; i++)
        acc[i] = _mm256_setzero_ps();
    for (int p = 0; p < 8; p++) {
        __m256i v = _mm256_load_si256(X + p);
        __m256i il = _mm256_and_si256(v, m4), ih = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        __m256 f[4];
        flt_gather(tab + 64 * p, FLT_DUP_PLANE, il, f); /* quad 2p; lanes rows 0-15 | 16-31 */
        for (int i = 0; i < 4; i++)
            acc[i] = _mm256_add_ps(acc[i], f[i]);
        flt_gather(tab + 64 * p + 32, FLT_DUP_PLANE, ih, f); /* quad 2p+1 */
        for (int i = 0; i < 4; i++)
            acc[i] = _mm256_add_ps(acc[i], f[i]);
    }
    /* acc[i]: rows 4i..4i+3 | 16+4i..; natural order */
    a[0] = _mm256_permute2f128_ps(acc[0], acc[1], 0x20);
    a[1] = _mm256_permute2f128_ps(acc[2], acc[3], 0x20);
    a[2] = _mm256_permute2f128_ps(acc[0], acc[1], 0x31);
    a[3] = _mm256_permute2f128_ps(acc[2], acc[3], 0x31);
}

/* --------------------------------------------------------- N:M decoding */

/* An N:M tile stores each row's kept mask as a 64-bit word (bit c = column
 * c kept) and its kept signs packed in column order; the i-th kept weight
 * of a row takes sign bit i (docs/format.md). So one pdep per row gives the
 * kept-sign word, and the 32 rows' mask and sign words are transposed to
 * byte columns and looked up like dense planes. */

/* Slot of row j in the transpose input, so the output comes out as rows
 * 0-15 in the low lane, 16-31 in the high lane (see transpose32x8). */
static const uint8_t nm_slot[32] = {0,  1,  4,  5,  8,  9,  12, 13, 16, 17, 20, 21, 24, 25, 28, 29,
                                    2,  3,  6,  7,  10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31};

/* 32 64-bit words -> X[p] = byte p of each word, p = 0..7. W[i] holds the
 * words of slots 4i..4i+3 (rows 2i, 2i+1 | 16+2i, 17+2i). */
INLINE void transpose32x8_v(const __m256i W[8], __m256i X[8])
{
    const __m256i ctl = _mm256_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15, 0, 8, 1, 9, 2,
                                         10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
    __m256i A[8], B[8], C[8];
    for (int i = 0; i < 8; i++)
        A[i] = _mm256_shuffle_epi8(W[i], ctl);
    for (int i = 0; i < 4; i++) {
        B[2 * i] = _mm256_unpacklo_epi16(A[2 * i], A[2 * i + 1]);     /* bytes 0-3 */
        B[2 * i + 1] = _mm256_unpackhi_epi16(A[2 * i], A[2 * i + 1]); /* bytes 4-7 */
    }
    /* slots 0-15: B[0..3]; slots 16-31: B[4..7] */
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 2; k++) {
            C[4 * h + 2 * k] = _mm256_unpacklo_epi32(B[4 * h + k], B[4 * h + 2 + k]);
            C[4 * h + 2 * k + 1] = _mm256_unpackhi_epi32(B[4 * h + k], B[4 * h + 2 + k]);
        }
    /* C[4h + 2k + j]: bytes 4k + 2j, 4k + 2j + 1 (qword 0, 1) */
    for (int i = 0; i < 4; i++) {
        X[2 * i] = _mm256_unpacklo_epi64(C[i], C[4 + i]);
        X[2 * i + 1] = _mm256_unpackhi_epi64(C[i], C[4 + i]);
    }
}

/* Words stored in slot order (the decoded kept signs). */
INLINE void transpose32x8(const uint64_t *w, __m256i X[8])
{
    __m256i W[8];
    for (int i = 0; i < 8; i++)
        W[i] = _mm256_load_si256((const __m256i *)(w + 4 * i));
    transpose32x8_v(W, X);
}

/* A tile's kept masks, read in place (row j at 8 j): no copy, no decode. */
INLINE void transpose_masks(const uint8_t *tile, __m256i X[8])
{
    __m256i W[8];
    for (int i = 0; i < 8; i++)
        W[i] = _mm256_loadu2_m128i((const __m128i *)(tile + 8 * (16 + 2 * i)), (const __m128i *)(tile + 16 * i));
    transpose32x8_v(W, X);
}

/* Decode slot quads a0..a1-1 of one N:M tile (quad a = rows 2a, 2a+1,
 * 16+2a, 17+2a, which the transpose wants at slots 4a..4a+3) into 64-bit
 * kept signs sw (bit c = column c of the tile). Reads 8 bytes from a row's
 * signs, always inside the tile, and keeps the row's 8 sb bits of them. */
INLINE void nm_decode_rows(bllm_type ty, const uint8_t *tile, int a0, int a1, uint64_t *sw)
{
    const tile_layout L = layout_of(ty);
    const uint64_t smask = ~0ull >> (64 - 8 * L.sb);
    static const int8_t row_of[4] = {0, 1, 16, 17};
#pragma GCC unroll 4
    for (int a = a0; a < a1; a++)
        for (int i = 0; i < 4; i++) {
            int j = 2 * a + row_of[i];
            const uint8_t *sg = tile + L.ksigns + j * L.sb;
            uint64_t signs;
            if (L.sb == 4) { /* a 32-bit load needs no masking */
                uint32_t s32;
                memcpy(&s32, sg, 4);
                signs = s32;
            } else {
                signs = ld64(sg) & smask;
            }
            sw[4 * a + i] = _pdep_u64(signs, ld64(tile + 8 * j));
        }
}

/* Decode one N:M tile into mask columns X and kept-sign columns Y. */
INLINE void nm_decode(bllm_type ty, const uint8_t *tile, __m256i X[8], __m256i Y[8])
{
    uint64_t sw[32] __attribute__((aligned(32)));
    nm_decode_rows(ty, tile, 0, 8, sw);
    transpose_masks(tile, X);
    transpose32x8(sw, Y);
}

/* ------------------------------------------------------- tile group math */

INLINE void load_f16x32(const uint8_t *p, __m256 v[4])
{
    for (int i = 0; i < 4; i++)
        v[i] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 16 * i)));
}

/* What one tile group needs, loaded once for all tokens. */
typedef struct {
    const uint8_t *s1, *s2; /* dense sign planes */
    __m256i X[8], Y[8];     /* N:M planes */
#if BINARY_X86_POP
    __m512i r1[4], r2[4]; /* popcount path: row words of the sign planes (N:M: kept signs, masks) */
#endif
#if BINARY_X86_512
    lut_index ix1, ix2; /* LUT path, dense types: the sign planes' nibbles */
#endif
    __m256 a1[4], a2[4], mu[4];
} tg_weights;

INLINE void tg_load(bllm_type ty, int path, const uint8_t *tile, tg_weights *W)
{
    const tile_layout L = layout_of(ty);
    (void)path;
#if BINARY_X86_POP
    if (path == PATH_POP) {
        if (is_nm(ty)) {
            pop_nm_rows(ty, tile, W->r2, W->r1);
        } else {
            pop_dense_rows(tile, W->r1);
            if (L.sign2 >= 0)
                pop_dense_rows(tile + L.sign2, W->r2);
        }
    } else
#endif
    if (is_nm(ty)) {
        nm_decode(ty, tile, W->X, W->Y);
    } else {
        W->s1 = tile;
        W->s2 = L.sign2 >= 0 ? tile + L.sign2 : NULL;
#if BINARY_X86_512
        if (path == PATH_LUT) {
            lut_split(W->s1, &W->ix1);
            if (W->s2)
                lut_split(W->s2, &W->ix2);
        }
#endif
    }
    if (L.alpha >= 0)
        load_f16x32(tile + L.alpha, W->a1);
    if (L.alpha2 >= 0)
        load_f16x32(tile + L.alpha2, W->a2);
    if (L.mu >= 0)
        load_f16x32(tile + L.mu, W->mu);
}

/* The integer sums of the LUT and popcount paths, as f32: u = sum U[s]
 * over sign plane `plane` (dense types), or for N:M u = sum U[m & s] and
 * v = sum U[m]. Both paths give the same exact integers. */
INLINE void int_dense(int path, const tg_weights *W, int plane, const gprep *G, const uint8_t *tab, __m256 u[4])
{
#if BINARY_X86_POP
    if (path == PATH_POP) {
        pop_sums(plane ? W->r2 : W->r1, (const uint64_t *)tab, G->kneg, u);
        return;
    }
#endif
    (void)path, (void)G;
#if BINARY_X86_512
    lut_dense_ix(plane ? &W->ix2 : &W->ix1, tab, u);
#else
    lut_dense(plane ? W->s2 : W->s1, tab, u);
#endif
}

INLINE void int_nm(int path, const tg_weights *W, const gprep *G, const uint8_t *tab, __m256 u[4], __m256 v[4])
{
#if BINARY_X86_POP
    if (path == PATH_POP) {
        pop_sums(W->r1, (const uint64_t *)tab, G->kneg, u);
        pop_sums(W->r2, (const uint64_t *)tab, G->kneg, v);
        return;
    }
#endif
    (void)path, (void)G;
    lut_cols(W->Y, tab, u);
    lut_cols(W->X, tab, v);
}

/* acc[r] += this tile group's contribution for one token. The LUT and
 * popcount paths share every f32 step (kernels/binary_pop_scalar.c writes
 * them out). */
INLINE void tg_token(bllm_type ty, int path, const tg_weights *W, const gprep *G, const uint8_t *tab,
                     __m256 acc[4])
{
    __m256 u[4], v[4];
    const __m256 two = _mm256_set1_ps(2.0f);
    if (path != PATH_FLT) {
        const __m256 d = _mm256_set1_ps(G->d), kabs = _mm256_set1_ps(G->kabs);
        switch (ty) {
        case BLLM_TYPE_B1:
        case BLLM_TYPE_ONEBIT: /* row scale applied at the end */
            int_dense(path, W, 0, G, tab, u);
            for (int i = 0; i < 4; i++)
                acc[i] = _mm256_fmadd_ps(d, _mm256_fmsub_ps(two, u[i], kabs), acc[i]);
            break;
        case BLLM_TYPE_B1G:
        case BLLM_TYPE_PB8:
            int_dense(path, W, 0, G, tab, u);
            for (int i = 0; i < 4; i++)
                acc[i] = _mm256_fmadd_ps(_mm256_mul_ps(W->a1[i], d), _mm256_fmsub_ps(two, u[i], kabs), acc[i]);
            break;
        case BLLM_TYPE_B1MG: {
            const __m256 sum = _mm256_set1_ps(G->sum);
            int_dense(path, W, 0, G, tab, u);
            for (int i = 0; i < 4; i++) {
                acc[i] = _mm256_fmadd_ps(W->mu[i], sum, acc[i]);
                acc[i] = _mm256_fmadd_ps(_mm256_mul_ps(W->a1[i], d), _mm256_fmsub_ps(two, u[i], kabs), acc[i]);
            }
            break;
        }
        case BLLM_TYPE_RB2G: {
            const __m256 sum = _mm256_set1_ps(G->sum);
            int_dense(path, W, 0, G, tab, u);
            int_dense(path, W, 1, G, tab, v);
            for (int i = 0; i < 4; i++) {
                __m256 t = _mm256_mul_ps(W->a1[i], _mm256_fmsub_ps(two, u[i], kabs));
                t = _mm256_fmadd_ps(W->a2[i], _mm256_fmsub_ps(two, v[i], kabs), t);
                acc[i] = _mm256_fmadd_ps(W->mu[i], sum, acc[i]);
                acc[i] = _mm256_fmadd_ps(d, t, acc[i]);
            }
            break;
        }
        default: { /* N:M: u = sum U[m & s], v = sum U[m] */
            const __m256 kneg = _mm256_set1_ps(G->kneg);
            int_nm(path, W, G, tab, u, v);
            for (int i = 0; i < 4; i++) {
                __m256 b = _mm256_add_ps(v[i], kneg);                        /* sum_kept a */
                __m256 sg = _mm256_add_ps(_mm256_fmsub_ps(two, u[i], v[i]), kneg); /* sum_kept (2s-1) a */
                __m256 t = _mm256_fmadd_ps(W->mu[i], b, _mm256_mul_ps(W->a1[i], sg));
                acc[i] = _mm256_fmadd_ps(d, t, acc[i]);
            }
            break;
        }
        }
    } else {
        const __m256 sum = _mm256_set1_ps(G->sum);
        switch (ty) {
        case BLLM_TYPE_B1:
        case BLLM_TYPE_ONEBIT:
            flt_dense(W->s1, tab, u);
            for (int i = 0; i < 4; i++)
                acc[i] = _mm256_add_ps(acc[i], _mm256_fmsub_ps(two, u[i], sum));
            break;
        case BLLM_TYPE_B1G:
        case BLLM_TYPE_PB8:
            flt_dense(W->s1, tab, u);
            for (int i = 0; i < 4; i++)
                acc[i] = _mm256_fmadd_ps(W->a1[i], _mm256_fmsub_ps(two, u[i], sum), acc[i]);
            break;
        case BLLM_TYPE_B1MG:
            flt_dense(W->s1, tab, u);
            for (int i = 0; i < 4; i++) {
                acc[i] = _mm256_fmadd_ps(W->mu[i], sum, acc[i]);
                acc[i] = _mm256_fmadd_ps(W->a1[i], _mm256_fmsub_ps(two, u[i], sum), acc[i]);
            }
            break;
        case BLLM_TYPE_RB2G:
            flt_dense(W->s1, tab, u);
            flt_dense(W->s2, tab, v);
            for (int i = 0; i < 4; i++) {
                acc[i] = _mm256_fmadd_ps(W->mu[i], sum, acc[i]);
                acc[i] = _mm256_fmadd_ps(W->a1[i], _mm256_fmsub_ps(two, u[i], sum), acc[i]);
                acc[i] = _mm256_fmadd_ps(W->a2[i], _mm256_fmsub_ps(two, v[i], sum), acc[i]);
            }
            break;
        default: /* N:M */
            flt_cols(W->Y, tab, u);
            flt_cols(W->X, tab, v);
            for (int i = 0; i < 4; i++) {
                acc[i] = _mm256_fmadd_ps(W->mu[i], v[i], acc[i]);
                acc[i] = _mm256_fmadd_ps(W->a1[i], _mm256_fmsub_ps(two, u[i], v[i]), acc[i]);
            }
            break;
        }
    }
}

/* GEMV prefetch: every line of the tile PFD tiles ahead, since one
 * sequential stream alone leaves the DRAM pipe half empty (cold b1g GEMV
 * 8.6 -> 14.5 GB/s on the development machine), into L2 only (PFD_HINT):
 * prefetched into L1, the weights streaming through evicted the lookup
 * tables the kernel reads from there, and memory and compute ran one after
 * the other (Zen 4, one thread, cold b1g 4096 x 11008: 12.4 GB/s with
 * 8 tiles into L1 against 26 GB/s hot; 24 GB/s with 32 tiles into L2). */
#define PFD 32
#define PFD_HINT _MM_HINT_T1

/* ------------------------------------------------- N:M GEMV, pipelined */

/* One token, LUT path, N:M: the tiles of row tiles rt0..rt1-1, groups
 * g0..g0+ng-1, as one stream. The scalar decode of the next tile's kept
 * signs (4 rows per quad pair) is interleaved with the vector lookups of
 * this one so the two run side by side, and the sign transpose reads words
 * stored a whole tile earlier (no store-forwarding stall); the masks are
 * transposed straight from the tile. Both planes share the table loads.
 * acc_out[rt - rt0][32] receives each row tile's sums. */
INLINE void nm_gemv_lut(bllm_type ty, const uint8_t *wb, int ngrp, int rt0, int rt1, int g0, int ng,
                        const gprep *gp, const uint8_t *tab, float *acc_out)
{
    const tile_layout L = layout_of(ty);
    const __m256i m4 = _mm256_set1_epi8(15);
    uint64_t words[2][32] __attribute__((aligned(32))); /* kept signs: this tile's, the next's */
    const size_t row_stride = (size_t)ngrp * L.tile_bytes;
    const uint8_t *first = wb + (size_t)rt0 * row_stride + (size_t)g0 * L.tile_bytes;
    nm_decode_rows(ty, first, 0, 8, words[0]);
    int cur = 0;
    for (int rt = rt0; rt < rt1; rt++) {
        const uint8_t *tile = wb + (size_t)rt * row_stride + (size_t)g0 * L.tile_bytes;
        __m256 acc[4];
        for (int i = 0; i < 4; i++)
            acc[i] = _mm256_setzero_ps();
        for (int g = 0; g < ng; g++, tile += L.tile_bytes) {
            const uint8_t *next = g + 1 < ng ? tile + L.tile_bytes
                                  : rt + 1 < rt1 ? wb + (size_t)(rt + 1) * row_stride + (size_t)g0 * L.tile_bytes
                                                 : NULL;
            for (int b = 0; b < L.tile_bytes; b += 64)
                _mm_prefetch((const char *)tile + PFD * L.tile_bytes + b, PFD_HINT);
            __m256i X[8], Y[8];
            transpose_masks(tile, X);
            transpose32x8(words[cur], Y);
            const uint8_t *T = tab + (size_t)g * TAB_LUT_DUP;
            __m256i A1 = _mm256_setzero_si256(), B1 = A1, H1 = A1, A2 = A1, B2 = A1, H2 = A1;
#pragma GCC unroll 8
            for (int p = 0; p < 8; p++) {
                const uint8_t *t0 = T + 64 * p, *t1 = t0 + 32;
                __m256i l0 = _mm256_loadu_si256((const __m256i *)t0), l1 = _mm256_loadu_si256((const __m256i *)t1);
                __m256i h0 = _mm256_loadu_si256((const __m256i *)(t0 + LUT_DUP_HI));
                __m256i h1 = _mm256_loadu_si256((const __m256i *)(t1 + LUT_DUP_HI));
                __m256i y = Y[p], x = X[p];
                __m256i yl = _mm256_and_si256(y, m4), yh = _mm256_and_si256(_mm256_srli_epi16(y, 4), m4);
                __m256i xl = _mm256_and_si256(x, m4), xh = _mm256_and_si256(_mm256_srli_epi16(x, 4), m4);
                A1 = _mm256_add_epi8(A1, _mm256_shuffle_epi8(l0, yl));
                B1 = _mm256_add_epi8(B1, _mm256_shuffle_epi8(l1, yh));
                H1 = _mm256_add_epi8(H1, _mm256_shuffle_epi8(h0, yl));
                H1 = _mm256_add_epi8(H1, _mm256_shuffle_epi8(h1, yh));
                A2 = _mm256_add_epi8(A2, _mm256_shuffle_epi8(l0, xl));
                B2 = _mm256_add_epi8(B2, _mm256_shuffle_epi8(l1, xh));
                H2 = _mm256_add_epi8(H2, _mm256_shuffle_epi8(h0, xl));
                H2 = _mm256_add_epi8(H2, _mm256_shuffle_epi8(h1, xh));
                if (next)
                    nm_decode_rows(ty, next, p, p + 1, words[cur ^ 1]);
            }
            __m256 u[4], v[4], a1[4], mu[4];
            lut_finish(A1, B1, H1, u); /* sum U[m & s] */
            lut_finish(A2, B2, H2, v); /* sum U[m] */
            load_f16x32(tile + L.alpha, a1);
            load_f16x32(tile + L.mu, mu);
            const gprep *G = gp + g;
            const __m256 d = _mm256_set1_ps(G->d), kneg = _mm256_set1_ps(G->kneg), two = _mm256_set1_ps(2.0f);
            for (int i = 0; i < 4; i++) {
                __m256 b = _mm256_add_ps(v[i], kneg);                             /* sum_kept a */
                __m256 sg = _mm256_add_ps(_mm256_fmsub_ps(two, u[i], v[i]), kneg); /* sum_kept (2s-1) a */
                __m256 t = _mm256_fmadd_ps(mu[i], b, _mm256_mul_ps(a1[i], sg));
                acc[i] = _mm256_fmadd_ps(d, t, acc[i]);
            }
            cur ^= 1;
        }
        for (int i = 0; i < 4; i++)
            _mm256_store_ps(acc_out + 32 * (rt - rt0) + 8 * i, acc[i]);
    }
}

/* ---------------------------------------------------------------- driver */

/* y rows 32 rt .. 32 rt + 31 of tokens t0 .. t0 + nt - 1 from accb[t][32]:
 * times the row scales rs (or not), added to what y holds when a previous
 * column block wrote it (accumulate). */
INLINE void store_row_tile(float *y, int rows, int rt, int t0, int nt, const float *accb, int accumulate,
                           const __m256 *rs)
{
    for (int t = 0; t < nt; t++) {
        float *yr = y + (size_t)(t0 + t) * rows + 32 * rt;
        for (int i = 0; i < 4; i++) {
            __m256 v = _mm256_load_ps(accb + 32 * t + 8 * i);
            if (rs)
                v = _mm256_mul_ps(v, rs[i]);
            if (accumulate)
                v = _mm256_add_ps(v, _mm256_loadu_ps(yr + 8 * i));
            _mm256_storeu_ps(yr + 8 * i, v);
        }
    }
}

/* One token's prepared activations (gprep and tables) stay in the scratch
 * buffer after a GEMV, and the next GEMV of the thread on the same x (bit
 * for bit: comparing 2048 floats costs ~0.2 us, preparing them ~1.7) with
 * the same table kind reuses them. The forward pass calls the kernel again
 * on one input where a thread's rows span Q, K and V, for the SwiGLU's
 * gate and up rows, and for every batch of rows a thread takes of a
 * shared product (models/llama.c): some 40 calls per layer and thread on
 * the TinyLlama shape. Within the caller's scope (bllm_matmul_scope_begin)
 * the same x pointer is trusted without the comparison. Any other use of
 * the scratch forgets them. */
typedef struct {
    const uint8_t *mem; /* NULL: nothing kept */
    int cols, path, dup;
    const uint16_t *h;
    size_t tb;
    float *x; /* a copy of the input they were made from */
    int x_cap;
    const float *src; /* that input, and the caller's scope then */
    uint64_t scope;
} prep_memo;
static _Thread_local prep_memo memo;
static pthread_key_t memo_key;
static pthread_once_t memo_once = PTHREAD_ONCE_INIT;
static int memo_key_ok;

static void memo_key_init(void) { memo_key_ok = pthread_key_create(&memo_key, free) == 0; }

INLINE int memo_holds(const uint8_t *mem, const float *x, int cols, int path, int dup, const uint16_t *h, size_t tb)
{
    if (memo.mem != mem || memo.cols != cols || memo.path != path || memo.dup != dup || memo.h != h ||
        memo.tb != tb)
        return 0;
    const uint64_t scope = bllm_matmul_scope();
    if (memo.scope && memo.scope == scope && memo.src == x)
        return 1;
    if (memcmp(memo.x, x, (size_t)cols * sizeof *x))
        return 0;
    memo.src = x, memo.scope = scope; /* x as it is now, promised in this scope */
    return 1;
}

INLINE void memo_keep(const uint8_t *mem, const float *x, int cols, int path, int dup, const uint16_t *h, size_t tb)
{
    memo.mem = NULL;
    if (memo.x_cap < cols) {
        pthread_once(&memo_once, memo_key_init);
        free(memo.x);
        memo.x = malloc((size_t)cols * sizeof *x);
        memo.x_cap = memo.x ? cols : 0;
        if (memo_key_ok)
            pthread_setspecific(memo_key, memo.x);
        if (!memo.x)
            return;
    }
    memcpy(memo.x, x, (size_t)cols * sizeof *x);
    memo = (prep_memo){mem, cols, path, dup, h, tb, memo.x, memo.x_cap, x, bllm_matmul_scope()};
}

/* Tokens per chunk and the scratch budget for the tables of one block of
 * columns: small enough for L2 beside the weights streaming through. */
#define TOK_CHUNK 8
#define TAB_BUDGET (192 * 1024)

INLINE size_t tab_bytes_of(bllm_type ty, int path)
{
    int dup = is_nm(ty);
    if (path == PATH_POP)
        return TAB_POP;
    if (path == PATH_LUT)
        return dup ? TAB_LUT_DUP : BINARY_X86_VNNI ? TAB_TQ : TAB_LUT_PAIR;
    return dup ? TAB_FLT_DUP : TAB_FLT_PAIR;
}

/* GEMV over GEMV_RT row tiles side by side, group by group, for rows so
 * long that their tables crowd L1 (ng * tb > GEMV_RT_TABLES; b1g's
 * 512-byte tables: more than 2048 or 4096 columns). One row tile at a time then
 * reads every group's table from L2 once per row tile, in competition
 * with the weights streaming in; side by side, each table is read from L2
 * once per GEMV_RT row tiles and the other reads hit L1. Cold b1g
 * 4096 x 11008 (Llama-2-7B's down projection) on a Sapphire Rapids-class
 * VM: 12.9-13.4 -> 15.8-15.9 GB/s on one thread, 23.9-24.5 -> 29.9-30.9 on
 * two with 3 row tiles (4: 14.5-14.8; 8: 12.4, spilling; 2: 14.8-15.3),
 * and with 4096 columns (32 KB of tables) 0-10% slower, so 3 row tiles
 * above 32 KB it was. On an Emerald Rapids VM the 512-bit loop
 * (gemv_dense512) read more with 2 row tiles from 16 KB on, 3 alternated
 * rounds each (GB/s, 1 | 2 threads): 4096 x 4096 9.2 -> 9.7 | 17.6 ->
 * 19.3, 11008 x 4096 9.1 -> 10.2 | 17.5 -> 19.4, 4096 x 11008 10.3 ->
 * 10.6 | 19.0 -> 20.0, 2048 x 5632 within noise; a Llama-2-7B-shape
 * decode went 15.1 -> 15.7 t/s on 2 threads and 8.4 -> 8.9 on one (builds
 * alternated), TinyLlama's unchanged. The 256-bit loop did not gain there
 * (4096 x 11008 on one thread: 10.4-12.0 GB/s with 3, 9.5-10.3 with 2) and
 * keeps 3 above 32 KB. Every row still sums its groups in order: the
 * result is the one-tile loop's, bit for bit. */
#if BINARY_X86_512
#define GEMV_RT 2
#define GEMV_RT_TABLES (16 * 1024)
#else
#define GEMV_RT 3
#define GEMV_RT_TABLES (32 * 1024)
#endif

#if BINARY_X86_512
INLINE void load_f16x32z(const uint8_t *p, __m512 v[2])
{
    v[0] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
    v[1] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + 32)));
}

/* What one dense tile group needs on the LUT path, loaded once for all
 * tokens, with its scales as 16-row f32 vectors. */
typedef struct {
    lut_index ix1, ix2;
    __m512 a1[2], a2[2], mu[2];
} dense512_weights;

INLINE void dense_load512(bllm_type ty, const uint8_t *tile, dense512_weights *W)
{
    const tile_layout L = layout_of(ty);
    lut_split(tile, &W->ix1);
    if (L.sign2 >= 0)
        lut_split(tile + L.sign2, &W->ix2);
    if (L.alpha >= 0)
        load_f16x32z(tile + L.alpha, W->a1);
    if (L.alpha2 >= 0)
        load_f16x32z(tile + L.alpha2, W->a2);
    if (L.mu >= 0)
        load_f16x32z(tile + L.mu, W->mu);
}

/* tg_token for the dense types on the LUT path, 16 rows per vector: the
 * same f32 operations per row in the same order (2u - kabs is exact
 * either way: lut_signed_rows), so the results are tg_token's bit for
 * bit. */
INLINE void dense_token512(bllm_type ty, const dense512_weights *W, const gprep *G, const uint8_t *tab,
                           __m512 acc[2])
{
    const __m512 d = _mm512_set1_ps(G->d);
    __m512 s[2], v[2];
    lut_signed_rows(&W->ix1, tab, G, s);
    switch (ty) {
    case BLLM_TYPE_B1:
    case BLLM_TYPE_ONEBIT: /* row scale applied at the end */
        for (int i = 0; i < 2; i++)
            acc[i] = _mm512_fmadd_ps(d, s[i], acc[i]);
        break;
    case BLLM_TYPE_B1G:
    case BLLM_TYPE_PB8:
        for (int i = 0; i < 2; i++)
            acc[i] = _mm512_fmadd_ps(_mm512_mul_ps(W->a1[i], d), s[i], acc[i]);
        break;
    case BLLM_TYPE_B1MG: {
        const __m512 sum = _mm512_set1_ps(G->sum);
        for (int i = 0; i < 2; i++) {
            acc[i] = _mm512_fmadd_ps(W->mu[i], sum, acc[i]);
            acc[i] = _mm512_fmadd_ps(_mm512_mul_ps(W->a1[i], d), s[i], acc[i]);
        }
        break;
    }
    default: { /* rb2g */
        const __m512 sum = _mm512_set1_ps(G->sum);
        lut_signed_rows(&W->ix2, tab, G, v);
        for (int i = 0; i < 2; i++) {
            __m512 t = _mm512_mul_ps(W->a1[i], s[i]);
            t = _mm512_fmadd_ps(W->a2[i], v[i], t);
            acc[i] = _mm512_fmadd_ps(W->mu[i], sum, acc[i]);
            acc[i] = _mm512_fmadd_ps(d, t, acc[i]);
        }
        break;
    }
    }
}

/* gemv_row_tiles for the dense types on the LUT path, 512-bit throughout. */
INLINE void gemv_dense512(bllm_type ty, int nrt, const uint8_t *wb, int ngrp, int rt, int g0, int ng,
                          const gprep *gp, const uint8_t *tab, size_t tb, float *y, int rows, int t0,
                          int accumulate, const uint16_t *rscale)
{
    const tile_layout L = layout_of(ty);
    const uint8_t *tile[GEMV_RT];
    __m512 acc[GEMV_RT][2];
    for (int k = 0; k < nrt; k++) {
        tile[k] = wb + ((size_t)(rt + k) * ngrp + g0) * L.tile_bytes;
        acc[k][0] = acc[k][1] = _mm512_setzero_ps();
    }
    for (int g = 0; g < ng; g++) {
#pragma GCC unroll 4
        for (int k = 0; k < nrt; k++) {
            if (PFD > 0)
                for (int b = 0; b < L.tile_bytes; b += 64)
                    _mm_prefetch((const char *)tile[k] + PFD * L.tile_bytes + b, PFD_HINT);
            dense512_weights W;
            dense_load512(ty, tile[k], &W);
            dense_token512(ty, &W, gp + g, tab + (size_t)g * tb, acc[k]);
            tile[k] += L.tile_bytes;
        }
    }
    for (int k = 0; k < nrt; k++) {
        float accb[32] __attribute__((aligned(64)));
        _mm512_store_ps(accb, acc[k][0]);
        _mm512_store_ps(accb + 16, acc[k][1]);
        __m256 rs[4];
        if (rscale)
            load_f16x32((const uint8_t *)(rscale + 32 * (rt + k)), rs);
        store_row_tile(y, rows, rt + k, t0, 1, accb, accumulate, rscale ? rs : NULL);
    }
}
#endif

/* The single-token loop: nrt row tiles from rt on (GEMV_RT or 1, a
 * constant at each call, so the arrays live in registers). */
INLINE void gemv_row_tiles(bllm_type ty, int path, int nrt, const uint8_t *wb, int ngrp, int rt, int g0, int ng,
                           const gprep *gp, const uint8_t *tab, size_t tb, float *y, int rows, int t0,
                           int accumulate, const uint16_t *rscale)
{
#if BINARY_X86_512
    if (path == PATH_LUT && !is_nm(ty)) {
        gemv_dense512(ty, nrt, wb, ngrp, rt, g0, ng, gp, tab, tb, y, rows, t0, accumulate, rscale);
        return;
    }
#endif
    const tile_layout L = layout_of(ty);
    const uint8_t *tile[GEMV_RT];
    __m256 acc[GEMV_RT][4];
    for (int k = 0; k < nrt; k++) {
        tile[k] = wb + ((size_t)(rt + k) * ngrp + g0) * L.tile_bytes;
        for (int i = 0; i < 4; i++)
            acc[k][i] = _mm256_setzero_ps();
    }
    for (int g = 0; g < ng; g++) {
#pragma GCC unroll 4
        for (int k = 0; k < nrt; k++) {
            tg_weights W;
            if (PFD > 0)
                for (int b = 0; b < L.tile_bytes; b += 64)
                    _mm_prefetch((const char *)tile[k] + PFD * L.tile_bytes + b, PFD_HINT);
            tg_load(ty, path, tile[k], &W);
            tg_token(ty, path, &W, gp + g, tab + (size_t)g * tb, acc[k]);
            tile[k] += L.tile_bytes;
        }
    }
    for (int k = 0; k < nrt; k++) {
        float accb[32] __attribute__((aligned(32)));
        for (int i = 0; i < 4; i++)
            _mm256_store_ps(accb + 8 * i, acc[k][i]);
        __m256 rs[4];
        if (rscale)
            load_f16x32((const uint8_t *)(rscale + 32 * (rt + k)), rs);
        store_row_tile(y, rows, rt + k, t0, 1, accb, accumulate, rscale ? rs : NULL);
    }
}

INLINE void matmul_binary(bllm_type ty, int path, float *y, const float *x, const void *w, int n_tok, int cols,
                          int rows, int r0, int r1, bllm_matmul_fn fallback)
{
    if (n_tok <= 0 || r0 >= r1)
        return;
    /* The forward pass splits rows by whole tiles; anything else (or a
     * shape no packed type has) goes to the reference. */
    if ((r0 | r1) % 32 || rows % 32 || cols % 64 || cols <= 0) {
        fallback(y, x, w, n_tok, cols, rows, r0, r1);
        return;
    }
    pthread_once(&ctl_once, ctl_init);
    const tile_layout L = layout_of(ty);
    const int ngrp = cols / 64;
    const uint8_t *wb = w;
    const uint8_t *trailer = wb + (size_t)(rows / 32) * ngrp * L.tile_bytes;
    const uint16_t *h = ty == BLLM_TYPE_ONEBIT ? (const uint16_t *)(trailer + 2 * (size_t)rows) : NULL;
    const uint16_t *rscale = ty == BLLM_TYPE_B1 || ty == BLLM_TYPE_ONEBIT ? (const uint16_t *)trailer : NULL;
    const size_t tb = tab_bytes_of(ty, path);
    const int tc_max = n_tok < TOK_CHUNK ? n_tok : TOK_CHUNK;
    int cb = (int)(TAB_BUDGET / (tb * (size_t)tc_max));
    if (cb < 1)
        cb = 1;
    /* the popcount path's 80 bytes per group and token need no blocks, and
     * without them every row sums its groups in one chain, as its scalar
     * reference does */
    if (cb > ngrp || path == PATH_POP)
        cb = ngrp;
    /* equal blocks, so the last is not a sliver */
    int nblk = (ngrp + cb - 1) / cb;
    cb = (ngrp + nblk - 1) / nblk;

    const int nm_pipe = is_nm(ty) && path == PATH_LUT; /* GEMV: nm_gemv_lut */
    /* the last chunk of tokens may hold a single one, which takes the
     * GEMV route: room for all its rows */
    size_t acc_floats = (size_t)tc_max * 32;
    if (nm_pipe && (size_t)(r1 - r0) > acc_floats)
        acc_floats = (size_t)(r1 - r0);
    size_t need = (size_t)tc_max * cb * (tb + sizeof(gprep)) + acc_floats * sizeof(float) + 64;
    uint8_t *mem = scratch(need);
    if (!mem) {
        fallback(y, x, w, n_tok, cols, rows, r0, r1);
        return;
    }
    const int memo_ok = n_tok == 1 && nblk == 1;
    const int reuse = memo_ok && memo_holds(mem, x, cols, path, is_nm(ty), h, tb);
    uint8_t *tab = mem;
    gprep *gp = (gprep *)(mem + (size_t)tc_max * cb * tb);
    float *accb = (float *)(((uintptr_t)(gp + (size_t)tc_max * cb) + 63) & ~(uintptr_t)63);

    for (int t0 = 0; t0 < n_tok; t0 += tc_max) {
        const int nt = n_tok - t0 < tc_max ? n_tok - t0 : tc_max;
        const float *xt = x + (size_t)t0 * cols;
        for (int g0 = 0; g0 < ngrp; g0 += cb) {
            const int ng = ngrp - g0 < cb ? ngrp - g0 : cb;
            if (!reuse) {
                prepare(path, is_nm(ty), xt, cols, nt, g0, ng, h, gp, tab, tb);
                if (memo_ok)
                    memo_keep(mem, x, cols, path, is_nm(ty), h, tb);
                else
                    memo.mem = NULL;
            }
            if (nm_pipe && nt == 1) {
                nm_gemv_lut(ty, wb, ngrp, r0 / 32, r1 / 32, g0, ng, gp, tab, accb);
                for (int r = r0; r < r1; r += 8) {
                    __m256 v = _mm256_load_ps(accb + (r - r0));
                    if (g0 > 0)
                        v = _mm256_add_ps(v, _mm256_loadu_ps(y + (size_t)t0 * rows + r));
                    _mm256_storeu_ps(y + (size_t)t0 * rows + r, v);
                }
                continue;
            }
            if (nt == 1) {
                int rt = r0 / 32;
                if ((size_t)ng * tb > GEMV_RT_TABLES)
                    for (; rt + GEMV_RT <= r1 / 32; rt += GEMV_RT)
                        gemv_row_tiles(ty, path, GEMV_RT, wb, ngrp, rt, g0, ng, gp, tab, tb, y, rows, t0, g0 > 0,
                                       rscale);
                for (; rt < r1 / 32; rt++)
                    gemv_row_tiles(ty, path, 1, wb, ngrp, rt, g0, ng, gp, tab, tb, y, rows, t0, g0 > 0, rscale);
                continue;
            }
            for (int rt = r0 / 32; rt < r1 / 32; rt++) {
                const uint8_t *tile = wb + ((size_t)rt * ngrp + g0) * L.tile_bytes;
                __m256 acc[4];
                for (int i = 0; i < nt * 32; i++)
                    accb[i] = 0.0f;
                for (int g = 0; g < ng; g++, tile += L.tile_bytes) {
#if BINARY_X86_512
                    if (path == PATH_LUT && !is_nm(ty)) {
                        dense512_weights D;
                        dense_load512(ty, tile, &D);
                        for (int t = 0; t < nt; t++) {
                            float *a = accb + 32 * t;
                            __m512 acc2[2] = {_mm512_load_ps(a), _mm512_load_ps(a + 16)};
                            dense_token512(ty, &D, gp + (size_t)t * ng + g, tab + ((size_t)t * ng + g) * tb, acc2);
                            _mm512_store_ps(a, acc2[0]);
                            _mm512_store_ps(a + 16, acc2[1]);
                        }
                        continue;
                    }
#endif
                    tg_weights W;
                    tg_load(ty, path, tile, &W);
                    for (int t = 0; t < nt; t++) {
                        float *a = accb + 32 * t;
                        for (int i = 0; i < 4; i++)
                            acc[i] = _mm256_load_ps(a + 8 * i);
                        tg_token(ty, path, &W, gp + (size_t)t * ng + g, tab + ((size_t)t * ng + g) * tb, acc);
                        for (int i = 0; i < 4; i++)
                            _mm256_store_ps(a + 8 * i, acc[i]);
                    }
                }
                /* per-row scales (b1, onebit) are linear, so each column
                 * block applies them to its own part */
                __m256 rs[4];
                if (rscale)
                    load_f16x32((const uint8_t *)(rscale + 32 * rt), rs);
                store_row_tile(y, rows, rt, t0, nt, accb, g0 > 0, rscale ? rs : NULL);
            }
        }
    }
}

/* ----------------------------------------------- block types: billm, stbllm */

/* billm and stbllm (runtime/format/binary.h) are not tile-shaped: per row
 * and 128-column block they have 8 or 10 scales, per 32 x 64 half 2 or 3
 * bit planes, and salient columns that are the same for every row. So x is
 * split once per 64-column group into xS (salient columns) and xN (the
 * rest), each with its own tables; the LUT path quantizes the group once
 * (one d for both parts) and splits q by the salient bits, so every integer
 * sum is exact. Per half-tile the driver (matmul_blk) ANDs the stored
 * planes into the ones the type's formula looks up (once for all tokens)
 * and loads the block's scales; then per token, with L(m) = the sum of x
 * (LUT: of q) over the columns whose bit is set in plane m:
 *
 * billm: sign plane s, second plane m (the group), P12 = s & m:
 *   sum_N w x = mu_c sum xN + (mu_s - mu_c) L(m) + a_c sum_N (2s-1) x
 *               + (a_s - a_c) (2 L(m & s) - L(m))
 *   sum_S w x = (mu1 + mu2) sum xS + a1 sum_S (2s1-1) x + a2 sum_S (2s2-1) x
 * three lookups on the N tables and two on the S tables; the mu terms take
 * the f32 sums of xN and xS, as b1mg's do.
 *
 * stbllm: sign plane S, planes A and B. Elsewhere than in salient columns
 * (A, B) is the region, r0 = B & ~A, r1 = A & ~B, r2 = A & B (both 0:
 * pruned), so with R_k = L(r_k) and RS_k = L(r_k & S)
 *   sum_N w x = sum_k mu_k R_k + a_k (2 RS_k - R_k)          k = 0, 1, 2
 * and in salient columns A is "kept" and B the residual sign:
 *   sum_S w x = (mu1 + mu2) K + a1 (2 L(A & S) - K) + a2 (2 L(A & B) - K),
 *               K = L(A)
 * six lookups on the N tables and three on the S tables. These hold for any
 * bits (a set S where (A, B) = 00, or in a salient column without A, meets
 * no looked-up plane, and the reference decodes those weights to 0). The
 * mu terms go through the tables too: the f32 part sums would take in the
 * pruned columns. In the LUT path every R, RS and K is an exact integer,
 * so the f32 steps multiply the stored scales themselves by them: the
 * equal form c1 L(A) + c0 L(B) + (c2 - c0 - c1) L(A & B) + ... (c_k = mu_k
 * - a_k) needs no AND with ~A or ~B, but its coefficients are differences
 * of scales, rounded, several times the scales themselves in size.
 *
 * The salient lookups of either type are skipped where a group has no
 * salient column. */

typedef struct {
    gprep n, s; /* non-salient and salient parts (d: the group's) */
    int has_s;
} bprep;

/* 0xff in byte c of m (c = 0..63) where bit c of bits is set. */
INLINE void bits_to_bytes(uint64_t bits, __m256i m[2])
{
    const __m256i sel = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3,
                                         3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    for (int h = 0; h < 2; h++) {
        __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)(uint32_t)(bits >> 32 * h)), sel);
        m[h] = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    }
}

/* A quantized group split by its salient bits into the non-salient part qn
 * and the salient part qs (the other part's columns 0), with each part's
 * kabs, kneg and f32 sum of x. Branch-free: the salient bits follow no
 * pattern, and a per-column branch on them (with GEMV's tables rebuilt
 * for every call) took a fifth of a SmolLM2 billm GEMV. */
INLINE void split_parts(const int8_t q[64], const float *x, uint64_t bits, int8_t qn[64], int8_t qs[64], gprep *n,
                        gprep *s)
{
    __m256i m[2], vn[2], vs[2];
    bits_to_bytes(bits, m);
    for (int h = 0; h < 2; h++) {
        __m256i v = _mm256_load_si256((const __m256i *)(q + 32 * h));
        vs[h] = _mm256_and_si256(m[h], v), vn[h] = _mm256_andnot_si256(m[h], v);
        _mm256_store_si256((__m256i *)(qn + 32 * h), vn[h]);
        _mm256_store_si256((__m256i *)(qs + 32 * h), vs[h]);
    }
    abs_neg_sums(vn[0], vn[1], n);
    abs_neg_sums(vs[0], vs[1], s);
    __m256 xn = _mm256_setzero_ps(), xs = xn;
    for (int i = 0; i < 8; i++) {
        __m128i b = i & 2 ? _mm256_extracti128_si256(m[i / 4], 1) : _mm256_castsi256_si128(m[i / 4]);
        __m256 sel = _mm256_castsi256_ps(_mm256_cvtepi8_epi32(i & 1 ? _mm_srli_si128(b, 8) : b));
        __m256 v = _mm256_loadu_ps(x + 8 * i);
        xs = _mm256_add_ps(xs, _mm256_and_ps(sel, v));
        xn = _mm256_add_ps(xn, _mm256_andnot_ps(sel, v));
    }
    n->sum = hsum_ps(xn);
    s->sum = hsum_ps(xs);
}

/* Tables of tokens [0, nt) x groups [g0, g0 + ng): for each, the N tables
 * then the S tables, tb / 2 bytes each. */
INLINE void prepare_blk(int path, const float *x, int cols, int nt, int g0, int ng, const uint8_t *flags,
                        bprep *bp, uint8_t *tab, size_t tb)
{
    int8_t q[64] __attribute__((aligned(32))), qp[64] __attribute__((aligned(32))), qs[64] __attribute__((aligned(32)));
    float xp[64] __attribute__((aligned(32)));
    for (int g = 0; g < ng; g++) {
        uint64_t bits;
        memcpy(&bits, flags + (size_t)(g0 + g) * 8, 8);
        for (int t = 0; t < nt; t++) {
            const float *xg = x + (size_t)t * cols + (size_t)(g0 + g) * 64;
            bprep *B = bp + (size_t)t * ng + g;
            uint8_t *T = tab + ((size_t)t * ng + g) * tb;
            B->has_s = bits != 0;
            if (path == PATH_LUT) {
                gprep all;
                quantize64(xg, q, &all);
                split_parts(q, xg, bits, qp, qs, &B->n, &B->s);
                B->n.d = B->s.d = all.d;
                build_lut(qp, T, 0);
                if (B->has_s)
                    build_lut(qs, T + tb / 2, 0);
            } else {
                B->n.d = B->s.d = 1.0f;
                for (int part = 0; part < 1 + B->has_s; part++) {
                    for (int c = 0; c < 64; c++)
                        xp[c] = (int)(bits >> c & 1) == part ? xg[c] : 0.0f;
                    gprep *G = part ? &B->s : &B->n;
                    float sum = 0.0f;
                    for (int c = 0; c < 64; c++)
                        sum += xp[c];
                    G->sum = sum;
                    G->kabs = G->kneg = 0.0f;
                    build_flt(xp, T + (size_t)part * (tb / 2), 0);
                }
                if (!B->has_s)
                    B->s.sum = 0.0f;
            }
        }
    }
}

/* The planes a half-tile's formula looks up besides the stored ones, 256
 * bytes each: billm P12; stbllm r0, r0 & S, r1, r1 & S, r2, r2 & S, A & S. */
#define BLK_DERIVED_MAX 7
enum { STB_R0 = 0, STB_R0S = 1, STB_R2 = 4, STB_AS = 6 }; /* region k at 2k, its & S at 2k + 1 */

INLINE int blk_derived(bllm_type ty) { return ty == BLLM_TYPE_BILLM ? 1 : BLK_DERIVED_MAX; }

/* The plane ANDs in the build's widest vectors (dp is 64-byte aligned). */
#if BINARY_X86_512
typedef __m512i pvec;
#define PV_LOAD(p) _mm512_loadu_si512((const void *)(p))
#define PV_STORE(p, v) _mm512_store_si512((void *)(p), v)
#define PV_AND _mm512_and_si512
#define PV_ANDNOT _mm512_andnot_si512
#else
typedef __m256i pvec;
#define PV_LOAD(p) _mm256_loadu_si256((const __m256i *)(p))
#define PV_STORE(p, v) _mm256_store_si256((__m256i *)(p), v)
#define PV_AND _mm256_and_si256
#define PV_ANDNOT _mm256_andnot_si256
#endif

INLINE void blk_derive(bllm_type ty, const uint8_t *half, uint8_t *dp)
{
    for (int o = 0; o < 256; o += (int)sizeof(pvec)) {
        pvec s = PV_LOAD(half + o), a = PV_LOAD(half + 256 + o);
        if (ty == BLLM_TYPE_BILLM) {
            PV_STORE(dp + o, PV_AND(s, a));
            continue;
        }
        pvec b = PV_LOAD(half + 512 + o);
        pvec r[3] = {PV_ANDNOT(a, b), PV_ANDNOT(b, a), PV_AND(a, b)};
        for (int k = 0; k < 3; k++) {
            PV_STORE(dp + 512 * k + o, r[k]);
            PV_STORE(dp + 512 * k + 256 + o, PV_AND(r[k], s));
        }
        PV_STORE(dp + 256 * STB_AS + o, PV_AND(a, s));
    }
}

/* The scales of a block's 32 rows, combined as the formulas use them. */
typedef struct {
    __m256 mu_c[4], dmu[4], a_c[4], da[4], mu12[4], a1[4], a2[4];
} billm_scales;
typedef struct {
    __m256 mu[3][4], a[3][4], mu12[4], a1[4], a2[4];
} stbllm_scales;
typedef union {
    billm_scales b;
    stbllm_scales s;
} blk_scales;

INLINE void blk_load_scales(bllm_type ty, const uint8_t *sc, blk_scales *S)
{
    __m256 v[BLLM_STBLLM_SCALES][4];
    for (int k = 0; k < bllm_blk_scales(ty); k++)
        load_f16x32(sc + 64 * k, v[k]);
    for (int i = 0; i < 4; i++) {
        if (ty == BLLM_TYPE_BILLM) {
            billm_scales *B = &S->b;
            B->mu_c[i] = v[BLLM_BILLM_MU_C][i];
            B->dmu[i] = _mm256_sub_ps(v[BLLM_BILLM_MU_S][i], v[BLLM_BILLM_MU_C][i]);
            B->a_c[i] = v[BLLM_BILLM_A_C][i];
            B->da[i] = _mm256_sub_ps(v[BLLM_BILLM_A_S][i], v[BLLM_BILLM_A_C][i]);
            B->mu12[i] = _mm256_add_ps(v[BLLM_BILLM_MU_1][i], v[BLLM_BILLM_MU_2][i]);
            B->a1[i] = v[BLLM_BILLM_A_1][i];
            B->a2[i] = v[BLLM_BILLM_A_2][i];
        } else {
            stbllm_scales *T = &S->s;
            for (int k = 0; k < 3; k++) {
                T->mu[k][i] = v[BLLM_STBLLM_MU_R0 + 2 * k][i];
                T->a[k][i] = v[BLLM_STBLLM_A_R0 + 2 * k][i];
            }
            T->mu12[i] = _mm256_add_ps(v[BLLM_STBLLM_MU_1][i], v[BLLM_STBLLM_MU_2][i]);
            T->a1[i] = v[BLLM_STBLLM_A_1][i];
            T->a2[i] = v[BLLM_STBLLM_A_2][i];
        }
    }
}

/* One plane's sums: LUT, U sums (L - kneg of the tables' part); FLOAT, the
 * f32 L. */
INLINE void dense_sums(int path, const uint8_t *plane, const uint8_t *tab, __m256 u[4])
{
    if (path == PATH_LUT)
        lut_dense(plane, tab, u);
    else
        flt_dense(plane, tab, u);
}

/* acc[r] += one half-tile's contribution for one token. */
INLINE void billm_token(int path, const uint8_t *p1, const uint8_t *p2, const uint8_t *p12, const billm_scales *S,
                        const bprep *B, const uint8_t *tab, size_t tb, __m256 acc[4])
{
    const __m256 two = _mm256_set1_ps(2.0f);
    const uint8_t *tn = tab, *ts = tab + tb / 2;
    __m256 u1[4], u2[4], u12[4];
    const __m256 sumn = _mm256_set1_ps(B->n.sum), sums = _mm256_set1_ps(B->s.sum);
    if (path == PATH_LUT) {
        const __m256 d = _mm256_set1_ps(B->n.d), kabs = _mm256_set1_ps(B->n.kabs), kneg = _mm256_set1_ps(B->n.kneg);
#if BINARY_X86_512
        /* p1 and p2 are looked up on both parts' tables: split them once */
        lut_index i1, i2;
        lut_split(p1, &i1);
        lut_split(p2, &i2);
        lut_dense_ix(&i1, tn, u1);
        lut_dense_ix(&i2, tn, u2);
#else
        lut_dense(p1, tn, u1);
        lut_dense(p2, tn, u2);
#endif
        lut_dense(p12, tn, u12);
        for (int i = 0; i < 4; i++) {
            __m256 sg = _mm256_fmsub_ps(two, u1[i], kabs);                   /* sum_N (2s-1) q */
            __m256 m = _mm256_add_ps(u2[i], kneg);                            /* sum_N m q */
            __m256 ms = _mm256_fmsub_ps(two, _mm256_add_ps(u12[i], kneg), m); /* sum_N m (2s-1) q */
            __m256 t = _mm256_mul_ps(S->dmu[i], m);
            t = _mm256_fmadd_ps(S->a_c[i], sg, t);
            t = _mm256_fmadd_ps(S->da[i], ms, t);
            acc[i] = _mm256_fmadd_ps(S->mu_c[i], sumn, acc[i]);
            acc[i] = _mm256_fmadd_ps(d, t, acc[i]);
        }
        if (B->has_s) {
            const __m256 kabs_s = _mm256_set1_ps(B->s.kabs);
#if BINARY_X86_512
            lut_dense_ix(&i1, ts, u1);
            lut_dense_ix(&i2, ts, u2);
#else
            lut_dense(p1, ts, u1);
            lut_dense(p2, ts, u2);
#endif
            for (int i = 0; i < 4; i++) {
                __m256 t = _mm256_mul_ps(S->a1[i], _mm256_fmsub_ps(two, u1[i], kabs_s));
                t = _mm256_fmadd_ps(S->a2[i], _mm256_fmsub_ps(two, u2[i], kabs_s), t);
                acc[i] = _mm256_fmadd_ps(S->mu12[i], sums, acc[i]);
                acc[i] = _mm256_fmadd_ps(d, t, acc[i]);
            }
        }
    } else {
        flt_dense(p1, tn, u1);
        flt_dense(p2, tn, u2);
        flt_dense(p12, tn, u12);
        for (int i = 0; i < 4; i++) {
            acc[i] = _mm256_fmadd_ps(S->mu_c[i], sumn, acc[i]);
            acc[i] = _mm256_fmadd_ps(S->dmu[i], u2[i], acc[i]);
            acc[i] = _mm256_fmadd_ps(S->a_c[i], _mm256_fmsub_ps(two, u1[i], sumn), acc[i]);
            acc[i] = _mm256_fmadd_ps(S->da[i], _mm256_fmsub_ps(two, u12[i], u2[i]), acc[i]);
        }
        if (B->has_s) {
            flt_dense(p1, ts, u1);
            flt_dense(p2, ts, u2);
            for (int i = 0; i < 4; i++) {
                acc[i] = _mm256_fmadd_ps(S->mu12[i], sums, acc[i]);
                acc[i] = _mm256_fmadd_ps(S->a1[i], _mm256_fmsub_ps(two, u1[i], sums), acc[i]);
                acc[i] = _mm256_fmadd_ps(S->a2[i], _mm256_fmsub_ps(two, u2[i], sums), acc[i]);
            }
        }
    }
}

/* acc[r] += one half-tile's contribution for one token: the formula above,
 * t summed per row, then acc += d t. LUT: L(m) = U sum + the part's kneg
 * (exact integers); FLOAT: the f32 sums (kneg 0, d 1). a: the stored A
 * plane; dp: the derived planes. */
INLINE void stbllm_token(int path, const uint8_t *a, const uint8_t *dp, const stbllm_scales *S, const bprep *B,
                         const uint8_t *tab, size_t tb, float *accp)
{
    const __m256 two = _mm256_set1_ps(2.0f);
    const uint8_t *tn = tab, *ts = tab + tb / 2;
    __m256 u[4], us[4], t[4];
    const __m256 kn = _mm256_set1_ps(B->n.kneg);
    for (int i = 0; i < 4; i++)
        t[i] = _mm256_setzero_ps();
    for (int k = 0; k < 3; k++) {
        dense_sums(path, dp + 512 * k, tn, u);        /* R_k - kneg */
        dense_sums(path, dp + 512 * k + 256, tn, us); /* RS_k - kneg */
        for (int i = 0; i < 4; i++) {
            __m256 r = _mm256_add_ps(u[i], kn);                              /* R_k */
            __m256 sg = _mm256_add_ps(_mm256_fmsub_ps(two, us[i], u[i]), kn); /* 2 RS_k - R_k */
            t[i] = _mm256_fmadd_ps(S->mu[k][i], r, t[i]);
            t[i] = _mm256_fmadd_ps(S->a[k][i], sg, t[i]);
        }
    }
    if (B->has_s) {
        const __m256 ks = _mm256_set1_ps(B->s.kneg);
        dense_sums(path, a, ts, u);                 /* K - kneg */
        dense_sums(path, dp + 256 * STB_AS, ts, us); /* L(A & S) - kneg */
        for (int i = 0; i < 4; i++) {
            t[i] = _mm256_fmadd_ps(S->mu12[i], _mm256_add_ps(u[i], ks), t[i]);
            t[i] = _mm256_fmadd_ps(S->a1[i], _mm256_add_ps(_mm256_fmsub_ps(two, us[i], u[i]), ks), t[i]);
        }
        dense_sums(path, dp + 256 * STB_R2, ts, us); /* L(A & B) - kneg */
        for (int i = 0; i < 4; i++)
            t[i] = _mm256_fmadd_ps(S->a2[i], _mm256_add_ps(_mm256_fmsub_ps(two, us[i], u[i]), ks), t[i]);
    }
    const __m256 d = _mm256_set1_ps(B->n.d);
    for (int i = 0; i < 4; i++)
        _mm256_store_ps(accp + 8 * i, _mm256_fmadd_ps(d, t[i], _mm256_load_ps(accp + 8 * i)));
}

/* accp[0..31] += one half-tile's contribution for one token. */
INLINE void blk_token(bllm_type ty, int path, const uint8_t *half, const uint8_t *dp, const blk_scales *S,
                      const bprep *B, const uint8_t *tab, size_t tb, float *accp)
{
    if (ty == BLLM_TYPE_BILLM) {
        __m256 acc[4];
        for (int i = 0; i < 4; i++)
            acc[i] = _mm256_load_ps(accp + 8 * i);
        billm_token(path, half, half + 256, dp, &S->b, B, tab, tb, acc);
        for (int i = 0; i < 4; i++)
            _mm256_store_ps(accp + 8 * i, acc[i]);
    } else {
        stbllm_token(path, half + 256, dp, &S->s, B, tab, tb, accp);
    }
}

/* ------------------------------------- block types: batches by f32 tiles */

/* For a batch the lookups above cost 5 (billm) or 9 (stbllm) table passes
 * per half-tile per token, while the weights of a tile row take only a few
 * distinct values per row and block. So from BLLM_BLK_GEMM_MIN_TOK tokens
 * on, each thread expands its 32-row tile rows once into f32, column-major
 * (wt[c][32], the values exactly as the reference defines them), and runs
 * an f32 GEMM over all the batch's tokens: 2 FMAs per weight per 16 tokens
 * instead of the table passes, and no activation quantization, so both
 * paths compute the same thing here (the FLOAT path's numbers). */

/* Per 8 rows of a block row: the value of each state, computed as the
 * reference computes it (mu + (+-a), salient (mu1 + (+-a1)) + (mu2 +
 * (+-a2))). Non-salient: billm C-, C+, S-, S+ (group s2 = 0, 1), stbllm
 * region k at 2k (sign -) and 2k + 1 (sign +); salient at 6 + s + 2 s2. */
enum { BLK_VAL_SAL = 6, BLK_VALS = 10 };

INLINE void blk_values(bllm_type ty, const uint8_t *sc, __m256 v[BLK_VALS][4])
{
    __m256 s[BLLM_STBLLM_SCALES][4];
    for (int k = 0; k < bllm_blk_scales(ty); k++)
        load_f16x32(sc + 64 * k, s[k]);
    const int m1 = ty == BLLM_TYPE_BILLM ? BLLM_BILLM_MU_1 : BLLM_STBLLM_MU_1;
    const int nreg = ty == BLLM_TYPE_BILLM ? 2 : 3; /* billm: C, S (MU_C, A_C, MU_S, A_S) */
    for (int i = 0; i < 4; i++) {
        for (int k = 0; k < nreg; k++) {
            v[2 * k][i] = _mm256_sub_ps(s[2 * k][i], s[2 * k + 1][i]);
            v[2 * k + 1][i] = _mm256_add_ps(s[2 * k][i], s[2 * k + 1][i]);
        }
        __m256 t1[2] = {_mm256_sub_ps(s[m1][i], s[m1 + 1][i]), _mm256_add_ps(s[m1][i], s[m1 + 1][i])};
        __m256 t2[2] = {_mm256_sub_ps(s[m1 + 2][i], s[m1 + 3][i]), _mm256_add_ps(s[m1 + 2][i], s[m1 + 3][i])};
        for (int s2 = 0; s2 < 2; s2++)
            for (int sg = 0; sg < 2; sg++)
                v[BLK_VAL_SAL + sg + 2 * s2][i] = _mm256_add_ps(t1[sg], t2[s2]);
    }
}

/* A plane's bit for 8 rows of one column as the sign bit of each lane (what
 * blendv reads): w holds 8 plane bytes widened to 32 bits, bit its bit. */
INLINE __m256 plane_bit(__m256i w, int bit)
{
    return _mm256_castsi256_ps(_mm256_sll_epi32(w, _mm_cvtsi32_si128(31 - bit)));
}

/* One tile row (32 rows, all columns) into wt[c][32], c = 0 .. cols - 1. */
INLINE void blk_expand_tile_row(bllm_type ty, const uint8_t *row, const uint8_t *flags, int cols, float *wt)
{
    const size_t bb = bllm_blk_block_bytes(ty, 2), hb = bllm_blk_half_bytes(ty);
    const int stb = ty == BLLM_TYPE_STBLLM;
    const __m256 zero = _mm256_setzero_ps();
    for (int b = 0; b < bllm_billm_blocks(cols); b++) {
        const uint8_t *blk = row + (size_t)b * bb;
        const int halves = bllm_billm_halves(cols, b);
        __m256 v[BLK_VALS][4];
        blk_values(ty, blk + hb * halves, v);
        for (int h = 0; h < halves; h++) {
            const uint8_t *half = blk + hb * h;
            const int g = 2 * b + h;
            uint64_t sal;
            memcpy(&sal, flags + (size_t)g * 8, 8);
            for (int q = 0; q < 16; q++) {
                /* bytes 16 q + i: rows i (low nibble) and i + 16 (high) */
                __m256i P[3][2];
                for (int p = 0; p < 2 + stb; p++)
                    for (int k = 0; k < 2; k++)
                        P[p][k] = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(half + 256 * p + 16 * q + 8 * k)));
                for (int cc = 0; cc < 4; cc++) {
                    const int c = 4 * q + cc;
                    float *dst = wt + ((size_t)g * 64 + c) * 32;
                    const int is_sal = (int)(sal >> c & 1);
                    for (int i = 0; i < 4; i++) { /* rows 8 i .. 8 i + 7 */
                        const int k = i & 1, bit = cc + 4 * (i >> 1);
                        __m256 mS = plane_bit(P[0][k], bit), m2 = plane_bit(P[1][k], bit), val;
                        if (is_sal) {
                            __m256 mR = stb ? plane_bit(P[2][k], bit) : m2; /* residual sign */
                            __m256 t0 = _mm256_blendv_ps(v[BLK_VAL_SAL][i], v[BLK_VAL_SAL + 1][i], mS);
                            __m256 t1 = _mm256_blendv_ps(v[BLK_VAL_SAL + 2][i], v[BLK_VAL_SAL + 3][i], mS);
                            val = _mm256_blendv_ps(t0, t1, mR);
                            if (stb) /* A: kept */
                                val = _mm256_blendv_ps(zero, val, m2);
                        } else if (!stb) { /* second plane: the group */
                            __m256 vc = _mm256_blendv_ps(v[0][i], v[1][i], mS);
                            __m256 vs = _mm256_blendv_ps(v[2][i], v[3][i], mS);
                            val = _mm256_blendv_ps(vc, vs, m2);
                        } else { /* (A, B): 00 pruned, 01 r0, 10 r1, 11 r2 */
                            __m256 mB = plane_bit(P[2][k], bit);
                            __m256 r0 = _mm256_blendv_ps(v[0][i], v[1][i], mS);
                            __m256 r1 = _mm256_blendv_ps(v[2][i], v[3][i], mS);
                            __m256 r2 = _mm256_blendv_ps(v[4][i], v[5][i], mS);
                            __m256 a0 = _mm256_blendv_ps(zero, r0, mB), a1 = _mm256_blendv_ps(r1, r2, mB);
                            val = _mm256_blendv_ps(a0, a1, m2);
                        }
                        _mm256_store_ps(dst + 8 * i, val);
                    }
                }
            }
        }
    }
}

/* Tokens per register block of the GEMM: T tokens x 32 rows of sums in
 * registers (4 T of them), 4 for the weights, one broadcast. */
#define BLK_GEMM_T (BINARY_X86_512 ? 6 : 2)

/* y[t][32 rt + i] = sum_c wt[c][i] x[t][c] for T tokens. Each 64 columns
 * are summed in registers and the partial sums added in memory, so no FMA
 * chain is longer than 64 terms (one chain over all columns drifted up to
 * 1.2e-3 in SmolLM2's logits from the f32 reference's order). */
INLINE void blk_gemm_tokens(const int T, const float *wt, const float *x, int cols, float *y, int rows)
{
    float tot[BLK_GEMM_T][32] __attribute__((aligned(32)));
    memset(tot, 0, sizeof tot);
    for (int c0 = 0; c0 < cols; c0 += 64) {
        __m256 acc[BLK_GEMM_T][4];
        for (int t = 0; t < T; t++)
            for (int i = 0; i < 4; i++)
                acc[t][i] = _mm256_setzero_ps();
#pragma GCC unroll 2
        for (int c = c0; c < c0 + 64; c++) {
            const float *w = wt + (size_t)c * 32;
            __m256 w0 = _mm256_load_ps(w), w1 = _mm256_load_ps(w + 8), w2 = _mm256_load_ps(w + 16),
                   w3 = _mm256_load_ps(w + 24);
#pragma GCC unroll 6
            for (int t = 0; t < T; t++) {
                __m256 xb = _mm256_broadcast_ss(x + (size_t)t * cols + c);
                acc[t][0] = _mm256_fmadd_ps(w0, xb, acc[t][0]);
                acc[t][1] = _mm256_fmadd_ps(w1, xb, acc[t][1]);
                acc[t][2] = _mm256_fmadd_ps(w2, xb, acc[t][2]);
                acc[t][3] = _mm256_fmadd_ps(w3, xb, acc[t][3]);
            }
        }
        for (int t = 0; t < T; t++)
            for (int i = 0; i < 4; i++)
                _mm256_store_ps(tot[t] + 8 * i, _mm256_add_ps(_mm256_load_ps(tot[t] + 8 * i), acc[t][i]));
    }
    for (int t = 0; t < T; t++)
        for (int i = 0; i < 4; i++)
            _mm256_storeu_ps(y + (size_t)t * rows + 8 * i, _mm256_load_ps(tot[t] + 8 * i));
}

/* The batch path: rows r0 .. r1 - 1 (whole tiles) of every token. Returns 0
 * without touching y when its scratch cannot be had. */
INLINE int blk_gemm(bllm_type ty, float *y, const float *x, const uint8_t *w, int n_tok, int cols, int rows,
                    int r0, int r1)
{
    memo.mem = NULL;
    float *wt = scratch((size_t)cols * 32 * sizeof(float) + 64);
    if (!wt)
        return 0;
    wt = (float *)(((uintptr_t)wt + 31) & ~(uintptr_t)31);
    const uint8_t *flags = bllm_blk_flags(ty, w, rows, cols);
    const size_t trb = bllm_blk_tile_row_bytes(ty, cols);
    for (int rt = r0 / 32; rt < r1 / 32; rt++) {
        blk_expand_tile_row(ty, w + (size_t)rt * trb, flags, cols, wt);
        float *yr = y + 32 * rt;
        int t = 0;
        for (; t + BLK_GEMM_T <= n_tok; t += BLK_GEMM_T)
            blk_gemm_tokens(BLK_GEMM_T, wt, x + (size_t)t * cols, cols, yr + (size_t)t * rows, rows);
        for (; t < n_tok; t++)
            blk_gemm_tokens(1, wt, x + (size_t)t * cols, cols, yr + (size_t)t * rows, rows);
    }
    return 1;
}

/* GEMV prefetch distance in blocks. Prefetching the next block's lines all
 * at once (34 for stbllm) left stbllm's cold GEMV ~50% slower than hot;
 * half of them per half-tile, 3 blocks ahead, brings it within ~5% (billm
 * gains ~10%; 1 and 2 blocks ahead measured about the same). */
#define BLK_PFD 3

INLINE void matmul_blk(bllm_type ty, int path, float *y, const float *x, const void *w, int n_tok, int cols,
                       int rows, int r0, int r1, bllm_matmul_fn fallback)
{
    if (n_tok <= 0 || r0 >= r1)
        return;
    if ((r0 | r1) % 32 || rows % 32 || cols % 64 || cols <= 0) {
        fallback(y, x, w, n_tok, cols, rows, r0, r1);
        return;
    }
    if (n_tok >= BLLM_BLK_GEMM_MIN_TOK && blk_gemm(ty, y, x, w, n_tok, cols, rows, r0, r1))
        return;
    pthread_once(&ctl_once, ctl_init);
    const int ngrp = cols / 64;
    const uint8_t *wb = w, *flags = bllm_blk_flags(ty, w, rows, cols);
    const size_t trb = bllm_blk_tile_row_bytes(ty, cols);
    const size_t bb = bllm_blk_block_bytes(ty, 2), hb = bllm_blk_half_bytes(ty);
    const size_t tb = 2 * (path == PATH_LUT ? (size_t)TAB_LUT_PAIR : (size_t)TAB_FLT_PAIR);
    const int tc_max = n_tok < TOK_CHUNK ? n_tok : TOK_CHUNK;
    int cb = (int)(TAB_BUDGET / (tb * (size_t)tc_max)) & ~1; /* whole blocks */
    if (cb < 2)
        cb = 2;
    if (cb > ngrp)
        cb = ngrp;
    size_t need = (size_t)tc_max * cb * (tb + sizeof(bprep)) + (size_t)tc_max * 32 * sizeof(float) +
                  256 * (size_t)blk_derived(ty) + 64;
    memo.mem = NULL;
    uint8_t *mem = scratch(need);
    if (!mem) {
        fallback(y, x, w, n_tok, cols, rows, r0, r1);
        return;
    }
    uint8_t *tab = mem;
    bprep *bp = (bprep *)(mem + (size_t)tc_max * cb * tb);
    float *accb = (float *)(((uintptr_t)(bp + (size_t)tc_max * cb) + 63) & ~(uintptr_t)63);
    uint8_t *dp = (uint8_t *)(accb + (size_t)tc_max * 32); /* 64-byte aligned */

    for (int t0 = 0; t0 < n_tok; t0 += tc_max) {
        const int nt = n_tok - t0 < tc_max ? n_tok - t0 : tc_max;
        const float *xt = x + (size_t)t0 * cols;
        for (int g0 = 0; g0 < ngrp; g0 += cb) {
            const int ng = ngrp - g0 < cb ? ngrp - g0 : cb;
            prepare_blk(path, xt, cols, nt, g0, ng, flags, bp, tab, tb);
            for (int rt = r0 / 32; rt < r1 / 32; rt++) {
                blk_scales S;
                {
                    const int b = g0 / 2;
                    blk_load_scales(ty, wb + (size_t)rt * trb + (size_t)b * bb + hb * bllm_billm_halves(cols, b), &S);
                }
                for (int i = 0; i < nt * 32; i++)
                    accb[i] = 0.0f;
                for (int g = 0; g < ng; g++) {
                    const int b = (g0 + g) / 2, h = (g0 + g) % 2;
                    const uint8_t *blk = wb + (size_t)rt * trb + (size_t)b * bb, *half = blk + hb * h;
                    /* the block BLK_PFD ahead, half of its lines per half-tile */
                    for (size_t o = h * (bb / 2 & ~(size_t)63); o < (h ? bb : bb / 2 & ~(size_t)63); o += 64)
                        _mm_prefetch((const char *)blk + BLK_PFD * bb + o, _MM_HINT_T0);
                    blk_derive(ty, half, dp);
                    if (h == 0 && g > 0) /* the two halves of a block share its scales */
                        blk_load_scales(ty, blk + hb * bllm_billm_halves(cols, b), &S);
                    for (int t = 0; t < nt; t++)
                        blk_token(ty, path, half, dp, &S, bp + (size_t)t * ng + g, tab + ((size_t)t * ng + g) * tb,
                                  tb, accb + 32 * t);
                }
                store_row_tile(y, rows, rt, t0, nt, accb, g0 > 0, NULL);
            }
        }
    }
}

/* ------------------------------------------------------------ instances */

/* The kernel functions of one build, and its fill function `fill`. drv:
 * matmul_binary (tile types) or matmul_blk (block types). */
#define BINARY_X86_DEFINE(drv, name, TYPE, PATH, path_name)                                                    \
    static void mm_##name##_##path_name(float *y, const float *x, const void *w, int n_tok, int cols, int rows, \
                                        int r0, int r1)                                                         \
    {                                                                                                           \
        drv(TYPE, PATH, y, x, w, n_tok, cols, rows, r0, r1, bllm_matmul_##name##_scalar);                       \
    }
#define BINARY_X86_TILE(name, TYPE, KTYPE)                                                                     \
    BINARY_X86_DEFINE(matmul_binary, name, TYPE, PATH_LUT, lut)                                                \
    BINARY_X86_DEFINE(matmul_binary, name, TYPE, PATH_FLT, flt)
#define BINARY_X86_BLOCK(name, TYPE, KTYPE)                                                                    \
    BINARY_X86_DEFINE(matmul_blk, name, TYPE, PATH_LUT, lut) BINARY_X86_DEFINE(matmul_blk, name, TYPE, PATH_FLT, flt)
#define BINARY_X86_SET(name, TYPE, KTYPE) mm[TYPE] = flt ? mm_##name##_flt : mm_##name##_lut;
#define BINARY_X86_KERNELS(fill)                                                                              \
    BLLM_TILE_TYPES(BINARY_X86_TILE)                                                                           \
    BLLM_BLOCK_TYPES(BINARY_X86_BLOCK)                                                                         \
    static void fill(bllm_matmul_fn *mm, int flt)                                                              \
    {                                                                                                           \
        BLLM_TILE_TYPES(BINARY_X86_SET)                                                                        \
        BLLM_BLOCK_TYPES(BINARY_X86_SET)                                                                       \
    }

#endif
