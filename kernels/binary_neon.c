/* NEON matmuls of the packed binary types: a float path and a table-lookup
 * (T-MAC style) integer path. Byte layouts are those of runtime/format/binary.c
 * (docs/format.md); weight values those of runtime/format/binary.h.
 *
 * Both paths work on 32x64 tiles and see every tile as nibble planes: 16
 * column quads of 16 bytes, byte j holding row j (low nibble) and row j+16
 * (high nibble), bit k = column 4q+k. The dense types' sign tiles already are
 * such planes. N:M tiles store per-row kept masks and packed kept signs
 * instead, so they are decoded first into a sign plane (bit set = kept and
 * +1) and a mask plane (bit set = kept), the kept signs spread to their
 * columns through a table.
 *
 * ---- the lookup path (bllm_matmul_*_neon): where x is quantized --------
 * Per token, per 64-column group g, u = x (onebit: u[c] = h[c] * x[c], one
 * f32 product, so the per-column scale joins the activations) is quantized:
 *   amax = max |u[c]|,  d = amax / 127,  inv = amax > 0 ? 127 / amax : 0,
 *   q[c] = round-half-even(u[c] * inv) in [-127, 127],  Sq = sum q[c]
 * (f32 operations, each rounded once; the formula of kernels/binary_simd.h,
 * shared with the x86 kernels; a group holding inf or NaN gets d = inf or
 * NaN, so the outputs it touches come out NaN). b1mg and rb2g also take the
 * f32 sum of the group, xs = (s0 + s1) + (s2 + s3) with s_l = u[l] + u[4+l]
 * + ... + u[60+l] in that order, for their mu term, which then carries no
 * quantization error (as on x86). For each quad of 4 columns one table
 * P[s] = sum of q[4i+k] over the bits k set in s (16 int16 entries, |P| <=
 * 508) is split into a low-byte and a high-byte table, so that vqtbl1q_u8
 * looks up 16 rows at once (low nibbles: rows 0..15, high: rows 16..31) and
 * the two bytes re-interleave (vzip) into int16 sums. Over a group, with
 * A = sum P[s] over the 16 quads (|A| <= 8128, so int16 never overflows):
 *   dense  sum_c (+-1) q[c]        = 2 A - Sq
 *   rb2g   the same per sign plane (A1, A2)
 *   N:M    sum_kept (+-1) q[c]     = 2 sum P[m&s] - sum P[m] = 2 A - B,
 *          sum_kept q[c]           = B = sum P[m]     (our s plane is m&s)
 * These integer sums are exact. Per row, the groups then accumulate in f32,
 * acc starting at 0, in group order, each step one f32 multiply and one
 * fused multiply-add (fmaf):
 *   b1, b1g, pb8   acc = fmaf(a * d, S, acc)      a = alpha (b1: per row)
 *   onebit         acc = fmaf(g * d, S, acc)      g per row
 *   b1mg           acc = fmaf(a * d, S, acc); acc = fmaf(mu, xs, acc)
 *   rb2g           acc = fmaf(a1 * d, S1, acc); acc = fmaf(a2 * d, S2, acc);
 *                  acc = fmaf(mu, xs, acc)
 *   nm             acc = fmaf(a * d, 2A - B, acc); acc = fmaf(mu * d, B, acc)
 * and y = acc. This is the definition tests/neon's int8 reference implements
 * independently (from the unpacked decomposition, no tables), and the NEON
 * result equals it bit for bit. The quantization error vs the float scalar
 * reference is at most sum_c |w[r][c]| * d_g / 2 (onebit: |g[r]| d_g / 2;
 * b1mg, rb2g: |w - mu| in place of |w|) plus f32 rounding; tests/neon
 * prints what it measures.
 *
 * Work: per token and quad, the table costs ~15 instructions (amortized
 * over all rows); per tile (32 rows x 64 columns, 2048 weights) and token,
 * 16 x (1 load, 2 nibble splits, 2 table loads, 4 lookups, 4 zips, 4 adds),
 * about 0.1 instruction per weight. Tokens are handled in pairs so the
 * nibble splits serve two. Tables live in a per-thread scratch buffer (8
 * bytes per column per token, TOKC tokens at a time); if it cannot be
 * allocated the float path answers instead.
 *
 * ---- the float path (bllm_matmul_*_neon_float) -------------------------
 * Each tile is decoded to its exact f32 weights (the operations of
 * runtime/format/binary.h: mu + (+-a), then + (+-a2); g * h; 0 where pruned) with
 * one bit-select per 4 weights, and multiplied with x by a 4-row x 2-token
 * FMA register tile, partial sums kept as vectors across the groups. It
 * differs from the scalar reference by summation order only.
 *
 * No optional extension (dotprod, i8mm) is used: the lookups and the float
 * path need only base AArch64 Advanced SIMD. */
#include <arm_neon.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/binary_neon.h"
#include "kernels/binary_pop.h"
#include "runtime/format/binary.h"

#define INLINE static inline __attribute__((always_inline))
#define NONE UINT32_MAX
/* Tokens per pass over the weights: the lookup tables of TOKC tokens (8 B
 * per column each: 88 KiB per token at 11008 columns) stay in L2. */
#define TOKC 8

/* ------------------------------------------------------------- layouts */

/* How a tile's bytes divide, as in runtime/format/binary.c. b1 and onebit keep
 * their scales in trailers after the tiles. */
typedef struct {
    uint32_t tile_bytes;
    uint32_t sign, sign2, alpha, alpha2, mu;
    int n, m, sb; /* N:M only: kept-sign bytes per row */
} tile_layout;

INLINE tile_layout layout_of(bllm_type ty)
{
    tile_layout L = {0, NONE, NONE, NONE, NONE, NONE, 0, 0, 0};
    switch (ty) {
    case BLLM_TYPE_B1:
    case BLLM_TYPE_ONEBIT: L.tile_bytes = 256, L.sign = 0; break;
    case BLLM_TYPE_B1G:
    case BLLM_TYPE_PB8: L.tile_bytes = 320, L.sign = 0, L.alpha = 256; break;
    case BLLM_TYPE_B1MG: L.tile_bytes = 384, L.sign = 0, L.alpha = 256, L.mu = 320; break;
    case BLLM_TYPE_RB2G:
        L.tile_bytes = 704, L.sign = 0, L.sign2 = 256, L.alpha = 512, L.alpha2 = 576, L.mu = 640;
        break;
    case BLLM_TYPE_NM24: L.n = 2, L.m = 4; break;
    case BLLM_TYPE_NM48: L.n = 4, L.m = 8; break;
    case BLLM_TYPE_NM58: L.n = 5, L.m = 8; break;
    case BLLM_TYPE_NM68: L.n = 6, L.m = 8; break;
    default: break;
    }
    if (L.m) {
        /* masks (32 rows x 8), kept signs (32 rows x sb), alpha[32], mu[32] */
        L.sb = (BLLM_GROUP / L.m) * L.n / 8;
        L.alpha = 32u * (uint32_t)(8 + L.sb);
        L.mu = L.alpha + 64;
        L.tile_bytes = L.mu + 64;
    }
    return L;
}

INLINE int is_nm(bllm_type ty) { return ty >= BLLM_TYPE_NM24 && ty <= BLLM_TYPE_NM68; }

/* ------------------------------------------------- N:M decoding tables */

/* nm_spread[m << 8 | s]: the low bits of s placed, in order, at the set
 * bits of m (an 8-bit pdep), for the kept signs of one group. */
static uint8_t nm_spread[1 << 16];
static pthread_once_t nm_once = PTHREAD_ONCE_INIT;

static void nm_init(void)
{
    for (uint32_t m = 0; m < 256; m++)
        for (uint32_t sb = 0; sb < 256; sb++) {
            uint32_t s = 0;
            for (int p = 0, k = 0; p < 8; p++)
                if (m >> p & 1)
                    s |= (sb >> k++ & 1) << p;
            nm_spread[m << 8 | sb] = (uint8_t)s;
        }
}

/* Decode one N:M tile into a sign plane sp (kept and +1) and a mask plane
 * mp (kept). The i-th kept column of a row takes kept-sign bit i (0 past
 * the stored ones), group by group. Rows are decoded into [group][row]
 * bytes so that each group's 32 rows are two vectors, then packed into
 * nibble planes. */
INLINE void nm_planes(bllm_type ty, const uint8_t *tile, uint8_t sp[256], uint8_t mp[256])
{
    const tile_layout L = layout_of(ty);
    const int ngm = BLLM_GROUP / L.m;
    const uint64_t gmask = (1u << L.m) - 1;
    uint8_t mT[16][32], sT[16][32];
    for (int j = 0; j < 32; j++) {
        uint64_t mask, signs = 0;
        memcpy(&mask, tile + 8 * (size_t)j, 8);
        memcpy(&signs, tile + 256 + (size_t)j * L.sb, (size_t)L.sb);
        for (int k = 0; k < ngm; k++) {
            uint32_t m = (uint32_t)(mask >> (k * L.m) & gmask);
            mT[k][j] = (uint8_t)m;
            sT[k][j] = nm_spread[m << 8 | (uint32_t)(signs & 0xff)];
            signs >>= __builtin_popcount(m);
        }
    }
    const uint8x16_t lo4 = vdupq_n_u8(0x0f), hi4 = vdupq_n_u8(0xf0);
    if (L.m == 8) {
        /* group k covers quads 2k (low nibble) and 2k+1 (high nibble) */
        for (int k = 0; k < 8; k++) {
            uint8x16_t m0 = vld1q_u8(mT[k]), m1 = vld1q_u8(mT[k] + 16);
            uint8x16_t s0 = vld1q_u8(sT[k]), s1 = vld1q_u8(sT[k] + 16);
            vst1q_u8(mp + 32 * k, vorrq_u8(vandq_u8(m0, lo4), vshlq_n_u8(m1, 4)));
            vst1q_u8(mp + 32 * k + 16, vorrq_u8(vshrq_n_u8(m0, 4), vandq_u8(m1, hi4)));
            vst1q_u8(sp + 32 * k, vorrq_u8(vandq_u8(s0, lo4), vshlq_n_u8(s1, 4)));
            vst1q_u8(sp + 32 * k + 16, vorrq_u8(vshrq_n_u8(s0, 4), vandq_u8(s1, hi4)));
        }
    } else {
        /* M = 4: group k is quad k */
        for (int k = 0; k < 16; k++) {
            vst1q_u8(mp + 16 * k, vorrq_u8(vld1q_u8(mT[k]), vshlq_n_u8(vld1q_u8(mT[k] + 16), 4)));
            vst1q_u8(sp + 16 * k, vorrq_u8(vld1q_u8(sT[k]), vshlq_n_u8(vld1q_u8(sT[k] + 16), 4)));
        }
    }
}

/* The two nibble planes a tile is looked up with: its sign planes (rb2g's
 * second, others' unused), or an N:M tile decoded into sp (kept and +1)
 * and mp (kept). */
INLINE void tile_planes(bllm_type ty, const tile_layout *L, const uint8_t *tile, uint8_t sp[256], uint8_t mp[256],
                        const uint8_t **p1, const uint8_t **p2)
{
    if (is_nm(ty)) {
        nm_planes(ty, tile, sp, mp);
        *p1 = sp, *p2 = mp;
    } else {
        *p1 = tile + L->sign, *p2 = tile + L->sign2;
    }
}

/* ------------------------------------------------- per-tile row scales */

/* 32 fp16 values to f32 (exact). */
INLINE void load_h32(const uint8_t *p, float32x4_t out[8])
{
    for (int i = 0; i < 4; i++) {
        float16x8_t f = vreinterpretq_f16_u8(vld1q_u8(p + 16 * i)); /* any alignment */
        out[2 * i] = vcvt_f32_f16(vget_low_f16(f));
        out[2 * i + 1] = vcvt_high_f32_f16(f);
    }
}

/* The scales of tile (rt, g) for its 32 rows: a (alpha, b1's per-row alpha
 * or onebit's g), a2 (rb2g) and mu where the type has them. */
typedef struct {
    float32x4_t a[8], a2[8], mu[8];
} tile_scales;

INLINE void load_scales(bllm_type ty, const tile_layout *L, const uint8_t *tile, const uint8_t *trailer,
                        int rt, tile_scales *s)
{
    if (ty == BLLM_TYPE_B1 || ty == BLLM_TYPE_ONEBIT)
        load_h32(trailer + 64 * (size_t)rt, s->a);
    else
        load_h32(tile + L->alpha, s->a);
    if (L->alpha2 != NONE)
        load_h32(tile + L->alpha2, s->a2);
    if (L->mu != NONE)
        load_h32(tile + L->mu, s->mu);
}

/* ------------------------------------------------------ scratch memory */

typedef struct {
    void *p;
    size_t cap;
} scratch_buf;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_ok;

static void scratch_free(void *v)
{
    scratch_buf *b = v;
    free(b->p);
    free(b);
}

static void scratch_init(void) { scratch_ok = pthread_key_create(&scratch_key, scratch_free) == 0; }

/* A per-thread buffer of at least n bytes (64-byte aligned), kept for the
 * next call and freed when the thread exits; NULL if memory is short. */
static void *scratch(size_t n)
{
    pthread_once(&scratch_once, scratch_init);
    if (!scratch_ok)
        return NULL;
    scratch_buf *b = pthread_getspecific(scratch_key);
    if (!b) {
        if (!(b = calloc(1, sizeof *b)))
            return NULL;
        if (pthread_setspecific(scratch_key, b)) {
            free(b);
            return NULL;
        }
    }
    if (b->cap < n) {
        size_t cap = (n + 63) & ~(size_t)63;
        void *p = aligned_alloc(64, cap);
        if (!p)
            return NULL;
        free(b->p);
        b->p = p;
        b->cap = cap;
    }
    return b->p;
}

/* ======================================================== float path */

/* Lane masks of a nibble: lane k all ones iff bit k is set. */
static const uint32_t nib_lanes[16][4] = {
#define L4(n) {(n) & 1 ? ~0u : 0, (n) & 2 ? ~0u : 0, (n) & 4 ? ~0u : 0, (n) & 8 ? ~0u : 0}
    L4(0), L4(1), L4(2), L4(3), L4(4), L4(5), L4(6), L4(7),
    L4(8), L4(9), L4(10), L4(11), L4(12), L4(13), L4(14), L4(15),
#undef L4
};

INLINE uint32x4_t nib_mask(const uint8_t *plane, int j, int q)
{
    unsigned nib = (plane[16 * q + (j & 15)] >> (4 * (j >> 4))) & 15;
    return vld1q_u32(nib_lanes[nib]);
}

/* The exact f32 weights of one tile, wt[row][col]. p1: sign plane; p2:
 * rb2g's second sign plane or the N:M mask plane; hf: onebit's h for the
 * group's 64 columns. */
INLINE void dequant_tile(bllm_type ty, const uint8_t *p1, const uint8_t *p2, const float *sc_a,
                         const float *sc_a2, const float *sc_mu, const float *hf, float wt[32][64])
{
    for (int j = 0; j < 32; j++) {
        float a = sc_a[j];
        float32x4_t vp, vn, vp2 = vdupq_n_f32(0), vn2 = vp2;
        if (ty == BLLM_TYPE_B1MG || ty == BLLM_TYPE_RB2G || is_nm(ty)) {
            /* mu + (s ? a : -a), each value one f32 addition */
            vp = vdupq_n_f32(sc_mu[j] + a);
            vn = vdupq_n_f32(sc_mu[j] + -a);
        } else {
            vp = vdupq_n_f32(a);
            vn = vdupq_n_f32(-a);
        }
        if (ty == BLLM_TYPE_RB2G) {
            vp2 = vdupq_n_f32(sc_a2[j]);
            vn2 = vdupq_n_f32(-sc_a2[j]);
        }
        for (int q = 0; q < 16; q++) {
            uint32x4_t m1 = nib_mask(p1, j, q);
            float32x4_t v;
            if (ty == BLLM_TYPE_ONEBIT) {
                float32x4_t gh = vmulq_f32(vdupq_n_f32(a), vld1q_f32(hf + 4 * q));
                v = vbslq_f32(m1, gh, vnegq_f32(gh));
            } else {
                v = vbslq_f32(m1, vp, vn);
            }
            if (ty == BLLM_TYPE_RB2G)
                v = vaddq_f32(v, vbslq_f32(nib_mask(p2, j, q), vp2, vn2));
            if (is_nm(ty)) /* pruned: +0, as in the reference */
                v = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v), nib_mask(p2, j, q)));
            vst1q_f32(&wt[j][4 * q], v);
        }
    }
}

/* acc[t][j] += wt[j][0..63] * x_t[0..63] lane-wise, for rows j0..j0+3 and T
 * tokens; the accumulators stay vectors across groups. */
INLINE void ftile(const int T, const float wt[32][64], int j0, const float *const *xg,
                  float32x4_t acc[][32])
{
    float32x4_t s[2][4];
#pragma GCC unroll 2
    for (int t = 0; t < T; t++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            s[t][r] = acc[t][j0 + r];
#pragma GCC unroll 4
    for (int c = 0; c < 64; c += 4) {
        float32x4_t wv[4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            wv[r] = vld1q_f32(&wt[j0 + r][c]);
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) {
            float32x4_t xv = vld1q_f32(xg[t] + c);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++)
                s[t][r] = vfmaq_f32(s[t][r], wv[r], xv);
        }
    }
#pragma GCC unroll 2
    for (int t = 0; t < T; t++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            acc[t][j0 + r] = s[t][r];
}

INLINE void store_rows(float *y, int rows, int rt, int r0, int r1, const float v[32])
{
    int base = rt * 32;
    if (base >= r0 && base + 32 <= r1) {
        memcpy(y + base, v, 32 * sizeof(float));
        return;
    }
    for (int j = 0; j < 32; j++)
        if (base + j >= r0 && base + j < r1)
            y[base + j] = v[j];
    (void)rows;
}

/* The exact f32 weights of tile (rt, g), wt[row][col]. The block types
 * (billm, stbllm) are not tile-shaped: their rows come from the reference
 * decoder. */
INLINE void decode_tile(bllm_type ty, const tile_layout *Lp, const void *w, const uint8_t *trailer, int rows,
                        int cols, int rt, int g, float wt[32][64])
{
    if (bllm_type_is_block(ty)) {
        for (int j = 0; j < 32; j++)
            bllm_binary_dequant_group(ty, w, rows, cols, 32 * rt + j, g, wt[j]);
        return;
    }
    const tile_layout L = *Lp;
    const uint8_t *tile = (const uint8_t *)w + ((size_t)rt * (cols / BLLM_GROUP) + g) * L.tile_bytes;
    float sa[32], sa2[32], smu[32], hf[64];
    uint8_t sp[256], mp[256];
    const uint8_t *p1, *p2;
    tile_planes(ty, &L, tile, sp, mp, &p1, &p2);
    tile_scales s;
    load_scales(ty, &L, tile, trailer, rt, &s);
    for (int i = 0; i < 8; i++) {
        vst1q_f32(sa + 4 * i, s.a[i]);
        if (L.alpha2 != NONE)
            vst1q_f32(sa2 + 4 * i, s.a2[i]);
        if (L.mu != NONE)
            vst1q_f32(smu + 4 * i, s.mu[i]);
    }
    if (ty == BLLM_TYPE_ONEBIT) {
        tile_scales hs; /* h of this group's 64 columns */
        load_h32(trailer + 2 * (size_t)rows + 128 * (size_t)g, hs.a);
        load_h32(trailer + 2 * (size_t)rows + 128 * (size_t)g + 64, hs.a2);
        for (int i = 0; i < 8; i++) {
            vst1q_f32(hf + 4 * i, hs.a[i]);
            vst1q_f32(hf + 32 + 4 * i, hs.a2[i]);
        }
    }
    dequant_tile(ty, p1, p2, sa, sa2, smu, hf, wt);
}

INLINE void matmul_f32path(bllm_type ty, float *y, const float *x, const void *w, int n_tok, int cols,
                           int rows, int r0, int r1)
{
    if (n_tok <= 0 || r0 >= r1)
        return;
    if (is_nm(ty))
        pthread_once(&nm_once, nm_init);
    const tile_layout L = layout_of(ty);
    const int ngrp = cols / BLLM_GROUP;
    const uint8_t *trailer = (const uint8_t *)w + (size_t)(rows / 32) * ngrp * L.tile_bytes;
    float wt[32][64] __attribute__((aligned(16)));
    float out[32];
    float32x4_t acc[TOKC][32];
    for (int rt = r0 / 32; rt * 32 < r1; rt++) {
        for (int t0 = 0; t0 < n_tok; t0 += TOKC) {
            const int nt = n_tok - t0 < TOKC ? n_tok - t0 : TOKC;
            for (int t = 0; t < nt; t++)
                for (int j = 0; j < 32; j++)
                    acc[t][j] = vdupq_n_f32(0.0f);
            for (int g = 0; g < ngrp; g++) {
                decode_tile(ty, &L, w, trailer, rows, cols, rt, g, wt);
                const float *xg[TOKC];
                for (int t = 0; t < nt; t++)
                    xg[t] = x + (size_t)(t0 + t) * cols + (size_t)g * BLLM_GROUP;
                for (int j0 = 0; j0 < 32; j0 += 4) {
                    int t = 0;
                    for (; t + 2 <= nt; t += 2)
                        ftile(2, wt, j0, xg + t, acc + t);
                    if (t < nt)
                        ftile(1, wt, j0, xg + t, acc + t);
                }
            }
            for (int t = 0; t < nt; t++) {
                for (int j = 0; j < 32; j++)
                    out[j] = vaddvq_f32(acc[t][j]);
                store_rows(y + (size_t)(t0 + t) * rows, rows, rt, r0, r1, out);
            }
        }
    }
}

/* ======================================================= lookup path */

/* Quantize one group's 64 values u with the step amax / 127 (amax: the
 * group's max |u|, or for billm's masked parts the whole group's) and build
 * its tables: per quad 32 bytes (low bytes of P[0..15], then high bytes);
 * *dq = d, *sq = Sq, *xs = the f32 sum. */
INLINE void prep_group(const float *uin, float amax, uint8_t *tg, float *dq, int32_t *sq, float *xs)
{
    static const int16_t bit0[8] = {0, -1, 0, -1, 0, -1, 0, -1};
    static const int16_t bit1[8] = {0, 0, -1, -1, 0, 0, -1, -1};
    static const int16_t bit2[8] = {0, 0, 0, 0, -1, -1, -1, -1};
    const int16x8_t m0 = vld1q_s16(bit0), m1 = vld1q_s16(bit1), m2 = vld1q_s16(bit2);
    float32x4_t u[16];
    for (int i = 0; i < 16; i++)
        u[i] = vld1q_f32(uin + 4 * i);
    float32x4_t sum = u[0];
    for (int i = 1; i < 16; i++)
        sum = vaddq_f32(sum, u[i]);
    const float32x4_t sp = vpaddq_f32(sum, sum); /* s0 + s1, s2 + s3 */
    *xs = vgetq_lane_f32(sp, 0) + vgetq_lane_f32(sp, 1);
    const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    *dq = amax / 127.0f;
    int8_t q[64];
    int32x4_t total = vdupq_n_s32(0);
    for (int i = 0; i < 16; i += 2) {
        int32x4_t qa = vcvtnq_s32_f32(vmulq_n_f32(u[i], inv));
        int32x4_t qb = vcvtnq_s32_f32(vmulq_n_f32(u[i + 1], inv));
        int16x8_t q16 = vcombine_s16(vqmovn_s32(qa), vqmovn_s32(qb));
        int8x8_t q8 = vqmovn_s16(q16);
        vst1_s8(q + 4 * i, q8);
        total = vaddq_s32(total, vaddl_s16(vget_low_s16(vmovl_s8(q8)), vget_high_s16(vmovl_s8(q8))));
    }
    *sq = vaddvq_s32(total);
    for (int i = 0; i < 16; i++) {
        int16x8_t x0 = vdupq_n_s16(q[4 * i]), x1 = vdupq_n_s16(q[4 * i + 1]);
        int16x8_t x2 = vdupq_n_s16(q[4 * i + 2]), x3 = vdupq_n_s16(q[4 * i + 3]);
        int16x8_t lo = vaddq_s16(vaddq_s16(vandq_s16(x0, m0), vandq_s16(x1, m1)), vandq_s16(x2, m2));
        int16x8_t hi = vaddq_s16(lo, x3); /* entries 8..15 have bit 3 set */
        uint8x16_t blo = vreinterpretq_u8_s16(lo), bhi = vreinterpretq_u8_s16(hi);
        vst1q_u8(tg + 32 * i, vuzp1q_u8(blo, bhi));
        vst1q_u8(tg + 32 * i + 16, vuzp2q_u8(blo, bhi));
    }
}

/* Quantize one token (see the top of the file) and build its tables:
 * prep_group per 64 columns. h: onebit's fp16 h[cols], else NULL. */
INLINE void prep_token(const float *xt, const uint8_t *h, int ngrp, uint8_t *tabs, float *dq, int32_t *sq,
                       float *xs)
{
    for (int g = 0; g < ngrp; g++) {
        float u[64] __attribute__((aligned(16)));
        float32x4_t mx = vdupq_n_f32(0.0f);
        for (int i = 0; i < 16; i++) {
            float32x4_t v = vld1q_f32(xt + 64 * g + 4 * i);
            if (h) {
                float16x4_t hh = vreinterpret_f16_u8(vld1_u8(h + 128 * (size_t)g + 8 * i));
                v = vmulq_f32(vcvt_f32_f16(hh), v);
            }
            mx = i ? vmaxq_f32(mx, vabsq_f32(v)) : vabsq_f32(v);
            vst1q_f32(u + 4 * i, v);
        }
        prep_group(u, vmaxvq_f32(mx), tabs + 512 * (size_t)g, dq + g, sq + g, xs + g);
    }
}

/* a[0..3] (rows 0-7, 8-15, 16-23, 24-31) += P[nibble] for one quad. */
INLINE void lut4(int16x8_t a[4], uint8x16_t tl, uint8x16_t th, uint8x16_t il, uint8x16_t ih)
{
    uint8x16_t l0 = vqtbl1q_u8(tl, il), h0 = vqtbl1q_u8(th, il);
    uint8x16_t l1 = vqtbl1q_u8(tl, ih), h1 = vqtbl1q_u8(th, ih);
    a[0] = vaddq_s16(a[0], vreinterpretq_s16_u8(vzip1q_u8(l0, h0)));
    a[1] = vaddq_s16(a[1], vreinterpretq_s16_u8(vzip2q_u8(l0, h0)));
    a[2] = vaddq_s16(a[2], vreinterpretq_s16_u8(vzip1q_u8(l1, h1)));
    a[3] = vaddq_s16(a[3], vreinterpretq_s16_u8(vzip2q_u8(l1, h1)));
}

/* For T tokens: A[t] = sum over the 16 quads of P_t[p1 nibble], and with
 * two planes B[t] = sum of P_t[p2 nibble]. */
INLINE void lut_sums(const int T, const int NP, const uint8_t *p1, const uint8_t *p2, const uint8_t *const *tabs,
                     int16x8_t A[][4], int16x8_t B[][4])
{
    const uint8x16_t lo4 = vdupq_n_u8(0x0f);
#pragma GCC unroll 2
    for (int t = 0; t < T; t++)
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            A[t][i] = vdupq_n_s16(0);
            B[t][i] = vdupq_n_s16(0);
        }
    for (int q = 0; q < 16; q++) {
        uint8x16_t w1 = vld1q_u8(p1 + 16 * q);
        uint8x16_t i1l = vandq_u8(w1, lo4), i1h = vshrq_n_u8(w1, 4), i2l = i1l, i2h = i1h;
        if (NP == 2) {
            uint8x16_t w2 = vld1q_u8(p2 + 16 * q);
            i2l = vandq_u8(w2, lo4);
            i2h = vshrq_n_u8(w2, 4);
        }
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) {
            uint8x16_t tl = vld1q_u8(tabs[t] + 32 * q), th = vld1q_u8(tabs[t] + 32 * q + 16);
            lut4(A[t], tl, th, i1l, i1h);
            if (NP == 2)
                lut4(B[t], tl, th, i2l, i2h);
        }
    }
}

/* acc[i] = fmaf(a[i] * d, (float)S[i], acc[i]) over the 32 rows. */
INLINE void fma_rows(float32x4_t acc[8], const float32x4_t a[8], float d, const int16x8_t S[4])
{
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        float32x4_t lo = vcvtq_f32_s32(vmovl_s16(vget_low_s16(S[i])));
        float32x4_t hi = vcvtq_f32_s32(vmovl_high_s16(S[i]));
        acc[2 * i] = vfmaq_f32(acc[2 * i], vmulq_n_f32(a[2 * i], d), lo);
        acc[2 * i + 1] = vfmaq_f32(acc[2 * i + 1], vmulq_n_f32(a[2 * i + 1], d), hi);
    }
}

/* acc[i] = fmaf(mu[i], xs, acc[i]): the mu term, whose sum is the same
 * for all rows. */
INLINE void fma_rows_const(float32x4_t acc[8], const float32x4_t mu[8], float xs)
{
    const float32x4_t xv = vdupq_n_f32(xs);
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        acc[i] = vfmaq_f32(acc[i], mu[i], xv);
}

/* The group's contribution for T tokens, by type (formulas at the top). */
INLINE void lut_group(bllm_type ty, const int T, const uint8_t *p1, const uint8_t *p2,
                      const uint8_t *const *tabs, const float *d, const int32_t *sq, const float *xs,
                      const tile_scales *s, float32x4_t acc[][8])
{
    const int NP = (ty == BLLM_TYPE_RB2G || is_nm(ty)) ? 2 : 1;
    int16x8_t A[2][4], B[2][4];
    lut_sums(T, NP, p1, p2, tabs, A, B);
#pragma GCC unroll 2
    for (int t = 0; t < T; t++) {
        const int16x8_t sqv = vdupq_n_s16((int16_t)sq[t]);
        int16x8_t S[4];
        if (is_nm(ty)) {
            /* S = 2A - B (signed kept sum), then mu times B (kept sum) */
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++)
                S[i] = vsubq_s16(vaddq_s16(A[t][i], A[t][i]), B[t][i]);
            fma_rows(acc[t], s->a, d[t], S);
            fma_rows(acc[t], s->mu, d[t], B[t]);
            continue;
        }
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
            S[i] = vsubq_s16(vaddq_s16(A[t][i], A[t][i]), sqv);
        fma_rows(acc[t], s->a, d[t], S);
        if (ty == BLLM_TYPE_RB2G) {
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++)
                S[i] = vsubq_s16(vaddq_s16(B[t][i], B[t][i]), sqv);
            fma_rows(acc[t], s->a2, d[t], S);
        }
        if (ty == BLLM_TYPE_B1MG || ty == BLLM_TYPE_RB2G)
            fma_rows_const(acc[t], s->mu, xs[t]);
    }
}

INLINE void matmul_lut(bllm_type ty, float *y, const float *x, const void *w, int n_tok, int cols, int rows,
                       int r0, int r1)
{
    if (n_tok <= 0 || r0 >= r1)
        return;
    const int ngrp = cols / BLLM_GROUP;
    /* per token: tables (512 B per group), then d, Sq and xs per group */
    const size_t tab_bytes = 512 * (size_t)ngrp, per_tok = tab_bytes + 12 * (size_t)ngrp;
    uint8_t *buf = scratch(TOKC * per_tok);
    if (!buf) {
        matmul_f32path(ty, y, x, w, n_tok, cols, rows, r0, r1);
        return;
    }
    if (is_nm(ty))
        pthread_once(&nm_once, nm_init);
    const tile_layout L = layout_of(ty);
    const uint8_t *wb = w;
    const uint8_t *trailer = wb + (size_t)(rows / 32) * ngrp * L.tile_bytes;
    uint8_t *tabs = buf;
    float *dq = (float *)(buf + TOKC * tab_bytes);
    int32_t *sq = (int32_t *)(dq + TOKC * ngrp);
    float *xsum = (float *)(sq + TOKC * ngrp);
    uint8_t sp[256], mp[256];
    float32x4_t acc[TOKC][8];
    float out[32];

    for (int t0 = 0; t0 < n_tok; t0 += TOKC) {
        const int nt = n_tok - t0 < TOKC ? n_tok - t0 : TOKC;
        for (int t = 0; t < nt; t++)
            prep_token(x + (size_t)(t0 + t) * cols, ty == BLLM_TYPE_ONEBIT ? trailer + 2 * (size_t)rows : NULL,
                       ngrp, tabs + t * tab_bytes, dq + t * ngrp, sq + t * ngrp, xsum + t * ngrp);
        for (int rt = r0 / 32; rt * 32 < r1; rt++) {
            for (int t = 0; t < nt; t++)
                for (int i = 0; i < 8; i++)
                    acc[t][i] = vdupq_n_f32(0.0f);
            for (int g = 0; g < ngrp; g++) {
                const uint8_t *tile = wb + ((size_t)rt * ngrp + g) * L.tile_bytes;
                const uint8_t *p1, *p2;
                tile_planes(ty, &L, tile, sp, mp, &p1, &p2);
                tile_scales s;
                load_scales(ty, &L, tile, trailer, rt, &s);
                const uint8_t *tp[TOKC];
                float d[TOKC], xs[TOKC];
                int32_t sg[TOKC];
                for (int t = 0; t < nt; t++) {
                    tp[t] = tabs + t * tab_bytes + 512 * (size_t)g;
                    d[t] = dq[t * ngrp + g];
                    sg[t] = sq[t * ngrp + g];
                    xs[t] = xsum[t * ngrp + g];
                }
                int t = 0;
                for (; t + 2 <= nt; t += 2)
                    lut_group(ty, 2, p1, p2, tp + t, d + t, sg + t, xs + t, &s, acc + t);
                if (t < nt)
                    lut_group(ty, 1, p1, p2, tp + t, d + t, sg + t, xs + t, &s, acc + t);
            }
            for (int t = 0; t < nt; t++) {
                for (int i = 0; i < 8; i++)
                    vst1q_f32(out + 4 * i, acc[t][i]);
                store_rows(y + (size_t)(t0 + t) * rows, rows, rt, r0, r1, out);
            }
        }
    }
}

/* ================================================ block types: billm, stbllm */

/* billm and stbllm (runtime/format/binary.h) per 64-column group: the
 * block's salient columns S are the same for every row, so each token's q
 * is split into qN (S zeroed) and qS (the rest zeroed), each with its own
 * tables built as prep_token's (on the whole group's d). Per half-tile the
 * planes a formula needs besides the stored ones are ANDed once for all
 * tokens. With L(m) the int16 sum (exact) of P over the nibbles of plane m
 * on the N or S tables:
 *
 * billm: sign plane s, second plane m, and with A1, A2, A12 the sums of s,
 * m and s & m over the N tables and B1, B2 those of the two planes over the
 * S tables:
 *   SgN = 2 A1 - SqN      sum_N (2s - 1) q
 *   MN  = A2              sum_N m q
 *   MSN = 2 A12 - A2      sum_N m (2s - 1) q
 *   Sg1 = 2 B1 - SqS, Sg2 = 2 B2 - SqS     the salient columns' two signs
 * and per group, in this order (each one f32 multiply and one fmaf):
 *   acc = fmaf(mu_c, xsN, acc); acc = fmaf((mu_s - mu_c) * d, MN, acc);
 *   acc = fmaf(a_c * d, SgN, acc); acc = fmaf((a_s - a_c) * d, MSN, acc);
 * and where the group has salient columns
 *   acc = fmaf(mu1 + mu2, xsS, acc); acc = fmaf(a1 * d, Sg1, acc);
 *   acc = fmaf(a2 * d, Sg2, acc)
 * with xsN, xsS the f32 sums of the masked x in prep_token's order.
 *
 * stbllm: sign plane S, planes A and B; the regions r0 = B & ~A, r1 = A &
 * ~B, r2 = A & B of the non-salient columns (kernels/binary_x86.h derives
 * the formula), over the N tables
 *   R_k = L(r_k), Sg_k = 2 L(r_k & S) - R_k                    k = 0, 1, 2
 * and over the S tables (A = kept, B = residual sign)
 *   K = L(A), Sg1 = 2 L(A & S) - K, Sg2 = 2 L(A & B) - K
 * (all int16, exact), and per group, in this order:
 *   for k = 0, 1, 2: acc = fmaf(mu_k * d, R_k, acc); acc = fmaf(a_k * d, Sg_k, acc)
 * and where the group has salient columns
 *   acc = fmaf((mu1 + mu2) * d, K, acc); acc = fmaf(a1 * d, Sg1, acc);
 *   acc = fmaf(a2 * d, Sg2, acc)
 * (mu1 + mu2 one f32 addition). No f32 sum of x: the mu terms must leave
 * out the pruned columns, so they take the integer sums too.
 *
 * The float path (matmul_f32path) decodes both types' rows with
 * runtime/format/binary.c's group decoder. */

/* One token: d per group as prep_token, and for each part (0: N, 1: S) its
 * tables, integer sum and f32 sum. */
INLINE void prep_token_blk(const float *xt, const uint8_t *flags, int ngrp, uint8_t *tabs_n, uint8_t *tabs_s,
                           float *dq, int32_t *sq, float *xs)
{
    float part[64] __attribute__((aligned(16)));
    float dtmp;
    for (int g = 0; g < ngrp; g++) {
        uint64_t bits;
        memcpy(&bits, flags + 8 * (size_t)g, 8);
        /* d from the whole group; prep_token quantizes by the group's amax,
         * so each masked part is quantized on the whole group's scale */
        float32x4_t mx = vabsq_f32(vld1q_f32(xt + 64 * g));
        for (int i = 1; i < 16; i++)
            mx = vmaxq_f32(mx, vabsq_f32(vld1q_f32(xt + 64 * g + 4 * i)));
        const float amax = vmaxvq_f32(mx);
        dq[g] = amax / 127.0f;
        for (int p = 0; p < 2; p++) {
            for (int c = 0; c < 64; c++)
                part[c] = (int)(bits >> c & 1) == p ? xt[64 * g + c] : 0.0f;
            prep_group(part, amax, (p ? tabs_s : tabs_n) + 512 * (size_t)g, &dtmp, sq + 2 * (size_t)g + p,
                       xs + 2 * (size_t)g + p);
        }
    }
}

/* The derived planes, 256 bytes each: billm s & m; stbllm r0, r0 & S, r1,
 * r1 & S, r2, r2 & S, A & S. */
#define BLK_DERIVED_MAX 7
enum { STB_R2 = 4, STB_AS = 6 }; /* region k at 2k, its & S at 2k + 1 */

INLINE void blk_derive(bllm_type ty, const uint8_t *half, uint8_t *dp)
{
    for (int o = 0; o < 256; o += 16) {
        uint8x16_t s = vld1q_u8(half + o), a = vld1q_u8(half + 256 + o);
        if (ty == BLLM_TYPE_BILLM) {
            vst1q_u8(dp + o, vandq_u8(s, a));
            continue;
        }
        uint8x16_t b = vld1q_u8(half + 512 + o);
        uint8x16_t r[3] = {vbicq_u8(b, a), vbicq_u8(a, b), vandq_u8(a, b)};
        for (int k = 0; k < 3; k++) {
            vst1q_u8(dp + 512 * k + o, r[k]);
            vst1q_u8(dp + 512 * k + 256 + o, vandq_u8(r[k], s));
        }
        vst1q_u8(dp + 256 * STB_AS + o, vandq_u8(a, s));
    }
}

/* A block's scales for its 32 rows, combined as the formulas use them. */
typedef struct {
    float32x4_t mu_c[8], dmu[8], a_c[8], da[8], mu12[8], a1[8], a2[8];
} billm_scales;
typedef struct {
    float32x4_t mu[3][8], a[3][8], mu12[8], a1[8], a2[8];
} stbllm_scales;
typedef union {
    billm_scales b;
    stbllm_scales s;
} blk_scales;

INLINE void blk_load_scales(bllm_type ty, const uint8_t *sc, blk_scales *S)
{
    float32x4_t v[BLLM_STBLLM_SCALES][8];
    for (int k = 0; k < bllm_blk_scales(ty); k++)
        load_h32(sc + 64 * k, v[k]);
    for (int i = 0; i < 8; i++) {
        if (ty == BLLM_TYPE_BILLM) {
            billm_scales *B = &S->b;
            B->mu_c[i] = v[BLLM_BILLM_MU_C][i];
            B->dmu[i] = vsubq_f32(v[BLLM_BILLM_MU_S][i], v[BLLM_BILLM_MU_C][i]);
            B->a_c[i] = v[BLLM_BILLM_A_C][i];
            B->da[i] = vsubq_f32(v[BLLM_BILLM_A_S][i], v[BLLM_BILLM_A_C][i]);
            B->mu12[i] = vaddq_f32(v[BLLM_BILLM_MU_1][i], v[BLLM_BILLM_MU_2][i]);
            B->a1[i] = v[BLLM_BILLM_A_1][i];
            B->a2[i] = v[BLLM_BILLM_A_2][i];
        } else {
            stbllm_scales *T = &S->s;
            for (int k = 0; k < 3; k++) {
                T->mu[k][i] = v[BLLM_STBLLM_MU_R0 + 2 * k][i];
                T->a[k][i] = v[BLLM_STBLLM_A_R0 + 2 * k][i];
            }
            T->mu12[i] = vaddq_f32(v[BLLM_STBLLM_MU_1][i], v[BLLM_STBLLM_MU_2][i]);
            T->a1[i] = v[BLLM_STBLLM_A_1][i];
            T->a2[i] = v[BLLM_STBLLM_A_2][i];
        }
    }
}

/* What one group's lookups need for T tokens: their tables, d, the parts'
 * Sq and f32 sums. */
typedef struct {
    const uint8_t *tn[TOKC], *ts[TOKC];
    float d[TOKC], xsn[TOKC], xss[TOKC];
    int32_t sqn[TOKC], sqs[TOKC];
    int has_s;
} blk_tok;

/* S = 2 P - Q over the 32 rows (int16). */
INLINE void signed_sums(int16x8_t S[4], const int16x8_t P[4], const int16x8_t Q[4])
{
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        S[i] = vsubq_s16(vaddq_s16(P[i], P[i]), Q[i]);
}

INLINE void billm_group(const int T, const uint8_t *p1, const uint8_t *p2, const uint8_t *p12, const blk_tok *k,
                        int t0, const billm_scales *S, float32x4_t acc[][8])
{
    const uint8_t *const *tn = k->tn + t0, *const *ts = k->ts + t0;
    int16x8_t A1[2][4], A2[2][4], A12[2][4], B1[2][4], B2[2][4];
    lut_sums(T, 2, p1, p2, tn, A1, A2);
    lut_sums(T, 1, p12, NULL, tn, A12, B1); /* B1: unused here */
    if (k->has_s)
        lut_sums(T, 2, p1, p2, ts, B1, B2);
    else
        memset(B2, 0, sizeof B2); /* unread; keeps the compiler's flow analysis quiet */
#pragma GCC unroll 2
    for (int t = 0; t < T; t++) {
        const float d = k->d[t0 + t];
        int16x8_t sqv[4], Sg[4], Ms[4];
        for (int i = 0; i < 4; i++)
            sqv[i] = vdupq_n_s16((int16_t)k->sqn[t0 + t]);
        signed_sums(Sg, A1[t], sqv);
        signed_sums(Ms, A12[t], A2[t]);
        fma_rows_const(acc[t], S->mu_c, k->xsn[t0 + t]);
        fma_rows(acc[t], S->dmu, d, A2[t]);
        fma_rows(acc[t], S->a_c, d, Sg);
        fma_rows(acc[t], S->da, d, Ms);
        if (!k->has_s)
            continue;
        int16x8_t S1[4], S2[4];
        for (int i = 0; i < 4; i++)
            sqv[i] = vdupq_n_s16((int16_t)k->sqs[t0 + t]);
        signed_sums(S1, B1[t], sqv);
        signed_sums(S2, B2[t], sqv);
        fma_rows_const(acc[t], S->mu12, k->xss[t0 + t]);
        fma_rows(acc[t], S->a1, d, S1);
        fma_rows(acc[t], S->a2, d, S2);
    }
}

/* a: the stored A plane; dp: the derived planes. */
INLINE void stbllm_group(const int T, const uint8_t *a, const uint8_t *dp, const blk_tok *k, int t0,
                         const stbllm_scales *S, float32x4_t acc[][8])
{
    const uint8_t *const *tn = k->tn + t0, *const *ts = k->ts + t0;
    int16x8_t R[2][4], RS[2][4], Sg[4];
    for (int r = 0; r < 3; r++) {
        lut_sums(T, 2, dp + 512 * r, dp + 512 * r + 256, tn, R, RS);
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) {
            signed_sums(Sg, RS[t], R[t]);
            fma_rows(acc[t], S->mu[r], k->d[t0 + t], R[t]);
            fma_rows(acc[t], S->a[r], k->d[t0 + t], Sg);
        }
    }
    if (!k->has_s)
        return;
    int16x8_t K[2][4], KS[2][4], KB[2][4], unused[2][4];
    lut_sums(T, 2, a, dp + 256 * STB_AS, ts, K, KS);
    lut_sums(T, 1, dp + 256 * STB_R2, NULL, ts, KB, unused);
#pragma GCC unroll 2
    for (int t = 0; t < T; t++) {
        const float d = k->d[t0 + t];
        fma_rows(acc[t], S->mu12, d, K[t]);
        signed_sums(Sg, KS[t], K[t]);
        fma_rows(acc[t], S->a1, d, Sg);
        signed_sums(Sg, KB[t], K[t]);
        fma_rows(acc[t], S->a2, d, Sg);
    }
}

INLINE void blk_group(bllm_type ty, const int T, const uint8_t *half, const uint8_t *dp, const blk_tok *k, int t0,
                      const blk_scales *S, float32x4_t acc[][8])
{
    if (ty == BLLM_TYPE_BILLM)
        billm_group(T, half, half + 256, dp, k, t0, &S->b, acc);
    else
        stbllm_group(T, half + 256, dp, k, t0, &S->s, acc);
}

INLINE void matmul_blk_lut(bllm_type ty, float *y, const float *x, const void *w, int n_tok, int cols, int rows,
                           int r0, int r1)
{
    if (n_tok <= 0 || r0 >= r1)
        return;
    const int ngrp = cols / BLLM_GROUP;
    /* per token: N and S tables (512 B per group each), then d, the two Sq
     * and the two f32 sums per group */
    const size_t tab_bytes = 512 * (size_t)ngrp, per_tok = 2 * tab_bytes + 20 * (size_t)ngrp;
    uint8_t *buf = scratch(TOKC * per_tok);
    if (!buf) {
        matmul_f32path(ty, y, x, w, n_tok, cols, rows, r0, r1);
        return;
    }
    const uint8_t *wb = w, *flags = bllm_blk_flags(ty, w, rows, cols);
    const size_t trb = bllm_blk_tile_row_bytes(ty, cols);
    const size_t bb = bllm_blk_block_bytes(ty, 2), hb = bllm_blk_half_bytes(ty);
    uint8_t *tabs = buf; /* token t: N tables at 2t, S tables at 2t + 1 (x tab_bytes) */
    float *dq = (float *)(buf + 2 * TOKC * tab_bytes);
    int32_t *sq = (int32_t *)(dq + TOKC * ngrp);    /* [t][g][part] */
    float *xsum = (float *)(sq + 2 * TOKC * ngrp);  /* [t][g][part] */
    uint8_t dp[256 * BLK_DERIVED_MAX] __attribute__((aligned(16)));
    float32x4_t acc[TOKC][8];
    float out[32];
    for (int t0 = 0; t0 < n_tok; t0 += TOKC) {
        const int nt = n_tok - t0 < TOKC ? n_tok - t0 : TOKC;
        for (int t = 0; t < nt; t++)
            prep_token_blk(x + (size_t)(t0 + t) * cols, flags, ngrp, tabs + 2 * t * tab_bytes,
                           tabs + (2 * t + 1) * tab_bytes, dq + t * ngrp, sq + 2 * t * ngrp, xsum + 2 * t * ngrp);
        for (int rt = r0 / 32; rt * 32 < r1; rt++) {
            for (int t = 0; t < nt; t++)
                for (int i = 0; i < 8; i++)
                    acc[t][i] = vdupq_n_f32(0.0f);
            for (int g = 0; g < ngrp; g++) {
                const int b = g / 2, h = g % 2;
                const uint8_t *blk = wb + (size_t)rt * trb + (size_t)b * bb, *half = blk + hb * h;
                blk_derive(ty, half, dp);
                blk_scales S;
                blk_load_scales(ty, blk + hb * bllm_billm_halves(cols, b), &S);
                uint64_t bits;
                memcpy(&bits, flags + 8 * (size_t)g, 8);
                blk_tok k;
                k.has_s = bits != 0;
                for (int t = 0; t < nt; t++) {
                    k.tn[t] = tabs + 2 * t * tab_bytes + 512 * (size_t)g;
                    k.ts[t] = tabs + (2 * t + 1) * tab_bytes + 512 * (size_t)g;
                    k.d[t] = dq[t * ngrp + g];
                    k.sqn[t] = sq[2 * (t * ngrp + g)];
                    k.sqs[t] = sq[2 * (t * ngrp + g) + 1];
                    k.xsn[t] = xsum[2 * (t * ngrp + g)];
                    k.xss[t] = xsum[2 * (t * ngrp + g) + 1];
                }
                int t = 0;
                for (; t + 2 <= nt; t += 2)
                    blk_group(ty, 2, half, dp, &k, t, &S, acc + t);
                if (t < nt)
                    blk_group(ty, 1, half, dp, &k, t, &S, acc + t);
            }
            for (int t = 0; t < nt; t++) {
                for (int i = 0; i < 8; i++)
                    vst1q_f32(out + 4 * i, acc[t][i]);
                store_rows(y + (size_t)(t0 + t) * rows, rows, rt, r0, r1, out);
            }
        }
    }
}

/* ===================================================== popcount path */

/* kernels/binary_pop.h: x quantized as the lookup path quantizes it, split
 * into 8 bit planes; per row and group P(s) = sum_b w_b popcount(s & p_b)
 * from vcnt byte counts. The f32 steps are the scalar popcount reference's
 * (kernels/binary_pop_scalar.c, which follows the x86 kernels), in its
 * order and with fused multiply-adds where it has fmaf, so these kernels
 * equal it bit for bit (tests/neon). Not timed: no aarch64 machine was at
 * hand; the lookup path stays the default. */

/* Bytes p of 16 words (X[p] byte j = byte p of word j) -> the words, w[j]:
 * an 8 x 8 byte transpose in each 64-bit half (trn at 8, 16, 32 bits). */
INLINE void pop_transpose_store(const uint8x16_t X[8], uint64_t *w)
{
    uint8x16_t A[8];
    for (int i = 0; i < 8; i += 2) {
        A[i] = vtrn1q_u8(X[i], X[i + 1]);
        A[i + 1] = vtrn2q_u8(X[i], X[i + 1]);
    }
    uint16x8_t B[8];
    for (int i = 0; i < 8; i += 4)
        for (int k = 0; k < 2; k++) {
            B[i + k] = vtrn1q_u16(vreinterpretq_u16_u8(A[i + k]), vreinterpretq_u16_u8(A[i + 2 + k]));
            B[i + 2 + k] = vtrn2q_u16(vreinterpretq_u16_u8(A[i + k]), vreinterpretq_u16_u8(A[i + 2 + k]));
        }
    /* B[k], k < 4: as 32-bit lanes, columns k, k + 4, k + 8, k + 12 of bytes
     * 0-3; B[4 + k] the same of bytes 4-7 */
    for (int k = 0; k < 4; k++) {
        uint32x4_t lo = vtrn1q_u32(vreinterpretq_u32_u16(B[k]), vreinterpretq_u32_u16(B[4 + k]));
        uint32x4_t hi = vtrn2q_u32(vreinterpretq_u32_u16(B[k]), vreinterpretq_u32_u16(B[4 + k]));
        uint64x2_t l = vreinterpretq_u64_u32(lo), h = vreinterpretq_u64_u32(hi);
        const int j = k;
        vst1_u64(w + j, vget_low_u64(l));
        vst1_u64(w + j + 8, vget_high_u64(l));
        vst1_u64(w + j + 4, vget_low_u64(h));
        vst1_u64(w + j + 12, vget_high_u64(h));
    }
}

/* A dense sign tile -> its 32 rows' words (bit c = column c): each quad
 * pair's nibbles packed into one byte per row (vsli for rows 0-15, vsri for
 * rows 16-31), then transposed. */
INLINE void pop_dense_rows(const uint8_t *t, uint64_t w[32])
{
    uint8x16_t lo[8], hi[8];
    for (int p = 0; p < 8; p++) {
        uint8x16_t a = vld1q_u8(t + 32 * p), b = vld1q_u8(t + 32 * p + 16);
        lo[p] = vsliq_n_u8(a, b, 4); /* (b << 4) | (a & 15) */
        hi[p] = vsriq_n_u8(b, a, 4); /* (b & 0xf0) | (a >> 4) */
    }
    pop_transpose_store(lo, w);
    pop_transpose_store(hi, w + 16);
}

/* The i-th stored sign to the i-th set bit of m (what x86's pdep does). */
INLINE uint64_t pop_deposit(uint64_t v, uint64_t m)
{
    uint64_t r = 0;
    for (; m; m &= m - 1, v >>= 1)
        r |= (v & 1) ? m & (0 - m) : 0;
    return r;
}

/* An N:M tile: kept masks (row j at 8 j) into mw, kept signs scattered to
 * their columns into sw. */
INLINE void pop_nm_rows(const tile_layout *L, const uint8_t *t, uint64_t mw[32], uint64_t sw[32])
{
    for (int j = 0; j < 32; j++) {
        uint64_t m, v = 0;
        memcpy(&m, t + 8 * j, 8);
        memcpy(&v, t + 32 * 8 + (size_t)j * L->sb, (size_t)L->sb);
        mw[j] = m;
        sw[j] = pop_deposit(v, m);
    }
}

/* u[k] = P(w[4k..4k+3]) - kneg, the integer sums as f32. Per pair of rows
 * and plane one AND and one vcnt; planes 0-3 and 4-6 weighted in bytes
 * (at most 8 * 15 and 8 * 7), then widened, plane 7 with weight -128. */
INLINE void pop_sums(const uint64_t w[32], const uint64_t p[8], float kneg, float32x4_t u[8])
{
    uint8x16_t pl[8];
    for (int b = 0; b < 8; b++)
        pl[b] = vreinterpretq_u8_u64(vdupq_n_u64(p[b]));
    const uint8x16_t two = vdupq_n_u8(2);
    int32_t P[32];
    for (int i = 0; i < 16; i++) {
        const uint8x16_t r = vreinterpretq_u8_u64(vld1q_u64(w + 2 * i));
        uint8x16_t c[8];
        for (int b = 0; b < 8; b++)
            c[b] = vcntq_u8(vandq_u8(r, pl[b]));
        uint8x16_t lo = vmlaq_u8(c[2], c[3], two);
        lo = vmlaq_u8(c[1], lo, two);
        lo = vmlaq_u8(c[0], lo, two);
        uint8x16_t hi = vmlaq_u8(c[5], c[6], two);
        hi = vmlaq_u8(c[4], hi, two);
        int16x8_t s = vreinterpretq_s16_u16(vpaddlq_u8(lo));
        s = vaddq_s16(s, vshlq_n_s16(vreinterpretq_s16_u16(vpaddlq_u8(hi)), 4));
        s = vsubq_s16(s, vshlq_n_s16(vreinterpretq_s16_u16(vpaddlq_u8(c[7])), 7)); /* |s| <= 2048 */
        vst1_s32(P + 2 * i, vmovn_s64(vpaddlq_s32(vpaddlq_s16(s))));
    }
    const float32x4_t kn = vdupq_n_f32(kneg);
    for (int k = 0; k < 8; k++)
        u[k] = vsubq_f32(vcvtq_f32_s32(vld1q_s32(P + 4 * k)), kn);
}

INLINE void matmul_pop(bllm_type ty, float *y, const float *x, const void *w, int n_tok, int cols, int rows,
                       int r0, int r1, bllm_matmul_fn fallback)
{
    if (n_tok <= 0 || r0 >= r1)
        return;
    if ((r0 | r1) % 32 || rows % 32 || cols % 64 || cols <= 0) {
        fallback(y, x, w, n_tok, cols, rows, r0, r1);
        return;
    }
    const tile_layout L = layout_of(ty);
    const int ngrp = cols / 64, tc = n_tok < TOKC ? n_tok : TOKC;
    const uint8_t *wb = w, *trailer = wb + (size_t)(rows / 32) * ngrp * L.tile_bytes;
    const uint16_t *h = ty == BLLM_TYPE_ONEBIT ? bllm_onebit_h(w, rows, cols) : NULL;
    const int rscale = ty == BLLM_TYPE_B1 || ty == BLLM_TYPE_ONEBIT;
    bllm_pop_group *gp = scratch(sizeof(bllm_pop_group) * (size_t)tc * ngrp + sizeof(float32x4_t) * 8 * tc);
    if (!gp) {
        fallback(y, x, w, n_tok, cols, rows, r0, r1);
        return;
    }
    float32x4_t *accb = (float32x4_t *)(gp + (size_t)tc * ngrp);
    for (int t0 = 0; t0 < n_tok; t0 += tc) {
        const int nt = n_tok - t0 < tc ? n_tok - t0 : tc;
        for (int t = 0; t < nt; t++)
            for (int g = 0; g < ngrp; g++) {
                const float *xg = x + (size_t)(t0 + t) * cols + (size_t)g * 64;
                float xh[64];
                if (h) {
                    for (int c = 0; c < 64; c++)
                        xh[c] = xg[c] * bllm_f16_to_f32(h[g * 64 + c]);
                    xg = xh;
                }
                bllm_pop_prep_group(xg, gp + (size_t)t * ngrp + g);
            }
        for (int rt = r0 / 32; rt < r1 / 32; rt++) {
            for (int i = 0; i < 8 * nt; i++)
                accb[i] = vdupq_n_f32(0.0f);
            tile_scales S;
            for (int g = 0; g < ngrp; g++) {
                const uint8_t *tile = wb + ((size_t)rt * ngrp + g) * L.tile_bytes;
                uint64_t w1[32], w2[32];
                if (is_nm(ty)) {
                    pop_nm_rows(&L, tile, w2, w1);
                } else {
                    pop_dense_rows(tile + L.sign, w1);
                    if (L.sign2 != NONE)
                        pop_dense_rows(tile + L.sign2, w2);
                }
                load_scales(ty, &L, tile, trailer, rt, &S);
                for (int t = 0; t < nt; t++) {
                    const bllm_pop_group *G = gp + (size_t)t * ngrp + g;
                    const float32x4_t d = vdupq_n_f32(G->d), kabs = vdupq_n_f32(G->kabs);
                    const float32x4_t kn = vdupq_n_f32(G->kneg), sum = vdupq_n_f32(G->sum);
                    float32x4_t u[8], v[8], *acc = accb + 8 * t;
                    pop_sums(w1, G->p, G->kneg, u);
                    if (L.sign2 != NONE || is_nm(ty))
                        pop_sums(w2, G->p, G->kneg, v);
                    for (int k = 0; k < 8; k++) {
                        const float32x4_t su = vsubq_f32(vaddq_f32(u[k], u[k]), kabs); /* 2u - kabs, exact */
                        switch (ty) {
                        case BLLM_TYPE_B1:
                        case BLLM_TYPE_ONEBIT: acc[k] = vfmaq_f32(acc[k], d, su); break;
                        case BLLM_TYPE_B1G:
                        case BLLM_TYPE_PB8: acc[k] = vfmaq_f32(acc[k], vmulq_f32(S.a[k], d), su); break;
                        case BLLM_TYPE_B1MG:
                            acc[k] = vfmaq_f32(acc[k], S.mu[k], sum);
                            acc[k] = vfmaq_f32(acc[k], vmulq_f32(S.a[k], d), su);
                            break;
                        case BLLM_TYPE_RB2G: {
                            float32x4_t tt = vmulq_f32(S.a[k], su);
                            tt = vfmaq_f32(tt, S.a2[k], vsubq_f32(vaddq_f32(v[k], v[k]), kabs));
                            acc[k] = vfmaq_f32(acc[k], S.mu[k], sum);
                            acc[k] = vfmaq_f32(acc[k], d, tt);
                            break;
                        }
                        default: { /* N:M: u over the kept signs, v over the mask */
                            const float32x4_t sg = vaddq_f32(vsubq_f32(vaddq_f32(u[k], u[k]), v[k]), kn);
                            const float32x4_t tt = vfmaq_f32(vmulq_f32(S.a[k], sg), S.mu[k], vaddq_f32(v[k], kn));
                            acc[k] = vfmaq_f32(acc[k], d, tt);
                            break;
                        }
                        }
                    }
                }
            }
            for (int t = 0; t < nt; t++)
                for (int k = 0; k < 8; k++) {
                    float32x4_t v = accb[8 * t + k];
                    if (rscale)
                        v = vmulq_f32(v, S.a[k]);
                    vst1q_f32(y + (size_t)(t0 + t) * rows + 32 * rt + 4 * k, v);
                }
        }
    }
}

#define DEFINE_POP(name, TYPE, KTYPE)                                                                               \
    void bllm_matmul_##name##_neon_pop(float *y, const float *x, const void *w, int n_tok, int cols, int rows, \
                                       int r0, int r1)                                                        \
    {                                                                                                         \
        matmul_pop(KTYPE, y, x, w, n_tok, cols, rows, r0, r1, bllm_matmul_##name##_pop_scalar);                \
    }
BLLM_TILE_TYPES(DEFINE_POP)

/* ---------------------------------------------------------- entry points */

/* lut: the lookup path's driver, matmul_lut (tile types) or matmul_blk_lut
 * (block types). */
#define DEFINE(lut, name, TYPE)                                                                             \
    void bllm_matmul_##name##_neon(float *y, const float *x, const void *w, int n_tok, int cols, int rows,  \
                                   int r0, int r1)                                                          \
    {                                                                                                       \
        lut(TYPE, y, x, w, n_tok, cols, rows, r0, r1);                                                      \
    }                                                                                                       \
    void bllm_matmul_##name##_neon_float(float *y, const float *x, const void *w, int n_tok, int cols,        \
                                       int rows, int r0, int r1)                                            \
    {                                                                                                       \
        matmul_f32path(TYPE, y, x, w, n_tok, cols, rows, r0, r1);                                           \
    }
#define DEFINE_TILE(name, TYPE, KTYPE) DEFINE(matmul_lut, name, KTYPE)
#define DEFINE_BLOCK(name, TYPE, KTYPE) DEFINE(matmul_blk_lut, name, KTYPE)
BLLM_TILE_TYPES(DEFINE_TILE)
BLLM_BLOCK_TYPES(DEFINE_BLOCK)
