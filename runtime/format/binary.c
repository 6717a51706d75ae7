/* Packed binary weights: decomposition <-> bytes and dequantization. The
 * byte layouts are specified in docs/format.md ("Packed binary types"); this
 * file is their reference implementation, and everything else (the scalar
 * kernels, the quantizer, bllm-info) goes through it. RTN binarization is in
 * runtime/quant/rtn.c. */
#include "runtime/format/binary.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"

/* ------------------------------------------------------------- layouts */

/* Where each part of a type lives. Tile-interleaved parts are offsets inside
 * one tile of tile_bytes bytes; tiles are row-tile-major. b1 and onebit keep
 * only sign tiles in the tile region and put their scales in trailers after
 * it. NONE marks a part the type lacks. */
#define NONE UINT32_MAX
typedef struct {
    uint32_t tile_bytes;
    uint32_t sign, sign2;           /* 256-byte sign tiles */
    uint32_t alpha, alpha2, mu;     /* fp16[32] for the tile's rows */
    uint32_t codes, ksigns;         /* nm: 32 rows x cb bytes, 32 rows x sb bytes */
    int n, m, code_bits, cb, sb;    /* nm only */
} layout;

static layout layout_of(bllm_type type)
{
    layout L = {0, NONE, NONE, NONE, NONE, NONE, NONE, NONE, 0, 0, 0, 0, 0};
    switch (type) {
    case BLLM_TYPE_B1:
    case BLLM_TYPE_ONEBIT:
        L.tile_bytes = 256, L.sign = 0;
        break;
    case BLLM_TYPE_B1G:
    case BLLM_TYPE_PB8:
        L.tile_bytes = 320, L.sign = 0, L.alpha = 256;
        break;
    case BLLM_TYPE_B1MG:
        L.tile_bytes = 384, L.sign = 0, L.alpha = 256, L.mu = 320;
        break;
    case BLLM_TYPE_RB2G:
        L.tile_bytes = 704, L.sign = 0, L.sign2 = 256, L.alpha = 512, L.alpha2 = 576, L.mu = 640;
        break;
    case BLLM_TYPE_NM24:
    case BLLM_TYPE_NM48:
    case BLLM_TYPE_NM58:
    case BLLM_TYPE_NM68:
        bllm_nm_params(type, &L.n, &L.m, &L.code_bits);
        L.cb = (BLLM_GROUP / L.m) * L.code_bits / 8;
        L.sb = (BLLM_GROUP / L.m) * L.n / 8;
        L.codes = 0;
        L.ksigns = 32u * (uint32_t)L.cb;
        L.alpha = 32u * (uint32_t)(L.cb + L.sb);
        L.mu = L.alpha + 64;
        L.tile_bytes = L.mu + 64;
        break;
    default:
        break;
    }
    return L;
}

static inline float rd16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return bllm_f16_to_f32(h);
}

static inline void wr16(uint8_t *p, float v)
{
    uint16_t h = bllm_f32_to_f16(v);
    memcpy(p, &h, 2);
}

/* Little-endian bit stream of up to 8 bytes. */
static inline uint64_t rd_bits(const uint8_t *p, int nbytes)
{
    uint64_t v = 0;
    memcpy(&v, p, (size_t)nbytes);
    return v;
}

static inline const uint8_t *tile_at(const layout *L, const void *w, int cols, int r, int grp)
{
    size_t tiles_per_row = (size_t)cols / BLLM_TILE_COLS;
    size_t t = (size_t)(r / BLLM_TILE_ROWS) * tiles_per_row + (size_t)grp;
    return (const uint8_t *)w + t * L->tile_bytes;
}

static inline size_t tile_region(const layout *L, int rows, int cols)
{
    return (size_t)(rows / BLLM_TILE_ROWS) * (size_t)(cols / BLLM_TILE_COLS) * L->tile_bytes;
}

/* Sign bit of tile row j, tile column cc: quad cc/4 is 16 bytes, byte j%16,
 * low nibble rows 0..15, high nibble rows 16..31, bit cc%4 in the nibble. */
static inline int sign_at(const uint8_t *signs, int j, int cc)
{
    return (signs[(cc >> 2) * 16 + (j & 15)] >> ((j >> 4) * 4 + (cc & 3))) & 1;
}

static inline void sign_set(uint8_t *signs, int j, int cc)
{
    signs[(cc >> 2) * 16 + (j & 15)] |= (uint8_t)(1u << ((j >> 4) * 4 + (cc & 3)));
}

/* The 64 signs of one tile row as bits 0..63 (bit cc = column cc). */
static inline uint64_t sign_row(const uint8_t *signs, int j)
{
    uint64_t v = 0;
    int shift = (j >> 4) * 4;
    for (int q = 0; q < 16; q++)
        v |= (uint64_t)((signs[q * 16 + (j & 15)] >> shift) & 15) << (4 * q);
    return v;
}

/* ----------------------------------------- block layout (billm, stbllm) */

/* bllm_blk_* in binary.h give the layout. */
static const uint8_t *blk_at(bllm_type t, const void *w, int cols, int r, int b)
{
    return (const uint8_t *)w + (size_t)(r / BLLM_TILE_ROWS) * bllm_blk_tile_row_bytes(t, cols) +
           (size_t)b * bllm_blk_block_bytes(t, 2);
}

/* Plane p of half h of a block. */
static inline const uint8_t *blk_plane(bllm_type t, const uint8_t *blk, int h, int p)
{
    return blk + bllm_blk_half_bytes(t) * (size_t)h + 256 * (size_t)p;
}

/* Scale k of row j of a block. */
static inline size_t blk_scale_off(bllm_type t, int cols, int b, int k, int j)
{
    return (size_t)bllm_billm_halves(cols, b) * bllm_blk_half_bytes(t) + 2 * (size_t)(32 * k + j);
}

/* ------------------------------------------------------------ N:M codes */

bool bllm_nm_params(bllm_type type, int *n, int *m, int *code_bits)
{
    int N, M, B;
    switch (type) {
    case BLLM_TYPE_NM24: N = 2, M = 4; break;
    case BLLM_TYPE_NM48: N = 4, M = 8; break;
    case BLLM_TYPE_NM58: N = 5, M = 8; break;
    case BLLM_TYPE_NM68: N = 6, M = 8; break;
    default: return false;
    }
    B = M; /* the code is the kept mask (mask_code) */
    if (n) *n = N;
    if (m) *m = M;
    if (code_bits) *code_bits = B;
    return true;
}

/* The stored code of a group is its kept mask itself (bit p = column p of
 * the group kept): M bits, no decoding. A combinatorial rank of the kept set
 * would save 1 to 3 bits per group, but decoding it costs the x86 lookup
 * kernels half their speed (docs/binary-kernels.md, "N:M"). */
static int mask_code(int n, int m, uint32_t mask)
{
    if (mask >> m || __builtin_popcount(mask) != n)
        return -1;
    return (int)mask;
}

uint32_t bllm_nm_code_mask(bllm_type type, uint32_t code)
{
    int n, m;
    if (!bllm_nm_params(type, &n, &m, NULL))
        return 0;
    int mask = mask_code(n, m, code);
    return mask < 0 ? 0 : (uint32_t)mask;
}

int bllm_nm_mask_code(bllm_type type, uint32_t mask)
{
    int n, m;
    if (!bllm_nm_params(type, &n, &m, NULL))
        return -1;
    return mask_code(n, m, mask);
}

/* ------------------------------------------------------ decompositions */

static bool has_group_alpha(bllm_type t)
{
    return t != BLLM_TYPE_B1 && t != BLLM_TYPE_ONEBIT && !bllm_type_is_block(t);
}
static bool has_mu(bllm_type t)
{
    return t == BLLM_TYPE_B1MG || t == BLLM_TYPE_RB2G || bllm_nm_params(t, NULL, NULL, NULL);
}

float bllm_fp16_round(float x) { return bllm_f16_to_f32(bllm_f32_to_f16(x)); }

void bllm_binary_decomp_free(bllm_binary_decomp *d)
{
    if (!d)
        return;
    free(d->sign);
    free(d->sign2);
    free(d->mask);
    free(d->region);
    free(d->alpha);
    free(d->alpha2);
    free(d->mu);
    free(d->g);
    free(d->h);
    free(d->salient);
    free(d->q);
    free(d->sal_scale);
    free(d->col_salient);
    free(d->bscale);
    memset(d, 0, sizeof *d);
}

bllm_status bllm_binary_decomp_init(bllm_binary_decomp *d, bllm_type type, int rows, int cols)
{
    memset(d, 0, sizeof *d);
    if (!bllm_type_is_packed(type))
        return bllm_fail(BLLM_ERR_ARG, "type %s is not a packed binary type", bllm_type_name(type));
    if (rows <= 0 || cols <= 0 || !bllm_type_shape_ok(type, (uint64_t)rows, (uint64_t)cols))
        return bllm_fail(BLLM_ERR_ARG, "type %s needs rows %% 32 == 0 and cols %% 64 == 0%s, got %d x %d",
                         bllm_type_name(type), type == BLLM_TYPE_PB8 ? " (cols <= 65536)" : "", rows, cols);
    size_t n = (size_t)rows * cols, ng = (size_t)rows * (cols / BLLM_GROUP);
    d->type = type;
    d->rows = rows;
    d->cols = cols;
    bool ok = (d->sign = calloc(n, 1)) != NULL;
    if (type == BLLM_TYPE_RB2G)
        ok = ok && (d->sign2 = calloc(n, 1)) && (d->alpha2 = calloc(ng, sizeof(float)));
    if (bllm_type_is_block(type))
        ok = ok && (d->sign2 = calloc(n, 1)) && (d->col_salient = calloc((size_t)cols, 1)) &&
             (d->bscale = calloc((size_t)rows * bllm_billm_blocks(cols) * bllm_blk_scales(type), sizeof(float)));
    if (type == BLLM_TYPE_STBLLM)
        ok = ok && (d->mask = calloc(n, 1)) && (d->region = calloc(n, 1));
    if (bllm_nm_params(type, NULL, NULL, NULL))
        ok = ok && (d->mask = calloc(n, 1));
    if (type == BLLM_TYPE_B1)
        ok = ok && (d->alpha = calloc((size_t)rows, sizeof(float)));
    else if (has_group_alpha(type))
        ok = ok && (d->alpha = calloc(ng, sizeof(float)));
    if (has_mu(type))
        ok = ok && (d->mu = calloc(ng, sizeof(float)));
    if (type == BLLM_TYPE_ONEBIT)
        ok = ok && (d->g = calloc((size_t)rows, sizeof(float))) && (d->h = calloc((size_t)cols, sizeof(float)));
    if (type == BLLM_TYPE_PB8)
        ok = ok && (d->salient = calloc(n, 1)) && (d->q = calloc(n, 1)) &&
             (d->sal_scale = calloc((size_t)rows, sizeof(float)));
    if (!ok) {
        bllm_binary_decomp_free(d);
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory for a %d x %d decomposition", rows, cols);
    }
    return BLLM_OK;
}

/* The value formulas, shared by every decoder so they cannot drift apart. */
static inline float v_pm(int s, float a) { return s ? a : -a; }
static inline float v_mg(float mu, int s, float a) { return mu + (s ? a : -a); }
static inline float v_rb2(float mu, int s1, float a1, int s2, float a2)
{
    float base = mu + (s1 ? a1 : -a1);
    return base + (s2 ? a2 : -a2);
}
static inline float v_onebit(float g, int s, float h)
{
    float gh = g * h;
    return s ? gh : -gh;
}
/* billm, sc = the row's 8 block scales. */
static inline float v_billm(const float *sc, int salient, int s, int s2)
{
    if (salient) {
        float v1 = v_mg(sc[BLLM_BILLM_MU_1], s, sc[BLLM_BILLM_A_1]);
        return v1 + v_mg(sc[BLLM_BILLM_MU_2], s2, sc[BLLM_BILLM_A_2]);
    }
    return s2 ? v_mg(sc[BLLM_BILLM_MU_S], s, sc[BLLM_BILLM_A_S]) : v_mg(sc[BLLM_BILLM_MU_C], s, sc[BLLM_BILLM_A_C]);
}
/* stbllm, sc = the row's 10 block scales; region 0..2 (non-salient). */
static inline float v_stbllm(const float *sc, int kept, int salient, int s, int s2, int region)
{
    if (!kept)
        return 0.0f;
    if (salient) {
        float v1 = v_mg(sc[BLLM_STBLLM_MU_1], s, sc[BLLM_STBLLM_A_1]);
        return v1 + v_mg(sc[BLLM_STBLLM_MU_2], s2, sc[BLLM_STBLLM_A_2]);
    }
    return v_mg(sc[BLLM_STBLLM_MU_R0 + 2 * region], s, sc[BLLM_STBLLM_A_R0 + 2 * region]);
}
/* stbllm's (A, B) plane bits of a weight, and back. */
static inline int stbllm_ab(int kept, int salient, int s2, int region)
{
    if (!kept)
        return 0;
    return salient ? 1 << 1 | s2 : region + 1;
}

float bllm_binary_decomp_value(const bllm_binary_decomp *d, int r, int c)
{
    size_t i = (size_t)r * d->cols + c, gi = (size_t)r * (d->cols / BLLM_GROUP) + (size_t)(c / BLLM_GROUP);
    switch (d->type) {
    case BLLM_TYPE_B1: return v_pm(d->sign[i], d->alpha[r]);
    case BLLM_TYPE_B1G: return v_pm(d->sign[i], d->alpha[gi]);
    case BLLM_TYPE_PB8:
        if (d->salient[i])
            return (float)d->q[i] * d->sal_scale[r];
        return v_pm(d->sign[i], d->alpha[gi]);
    case BLLM_TYPE_B1MG: return v_mg(d->mu[gi], d->sign[i], d->alpha[gi]);
    case BLLM_TYPE_RB2G: return v_rb2(d->mu[gi], d->sign[i], d->alpha[gi], d->sign2[i], d->alpha2[gi]);
    case BLLM_TYPE_NM24:
    case BLLM_TYPE_NM48:
    case BLLM_TYPE_NM58:
    case BLLM_TYPE_NM68: return d->mask[i] ? v_mg(d->mu[gi], d->sign[i], d->alpha[gi]) : 0.0f;
    case BLLM_TYPE_ONEBIT: return v_onebit(d->g[r], d->sign[i], d->h[c]);
    case BLLM_TYPE_BILLM: {
        const float *sc = d->bscale + ((size_t)r * bllm_billm_blocks(d->cols) + (size_t)(c / BLLM_BILLM_BLOCK)) *
                                          BLLM_BILLM_SCALES;
        return v_billm(sc, d->col_salient[c], d->sign[i], d->sign2[i]);
    }
    case BLLM_TYPE_STBLLM: {
        const float *sc = d->bscale + ((size_t)r * bllm_billm_blocks(d->cols) + (size_t)(c / BLLM_BILLM_BLOCK)) *
                                          BLLM_STBLLM_SCALES;
        return v_stbllm(sc, d->mask[i], d->col_salient[c], d->sign[i], d->sign2[i], d->region[i]);
    }
    default: return 0.0f;
    }
}

/* ----------------------------------------------------------------- pack */

static bllm_status check_scale(const char *what, const float *v, size_t n, bllm_type type)
{
    for (size_t i = 0; v && i < n; i++) {
        if (!isfinite(v[i]))
            return bllm_fail(BLLM_ERR_ARG, "%s: %s[%zu] = %g is not finite", bllm_type_name(type), what, i,
                             (double)v[i]);
        if (bllm_fp16_round(v[i]) != v[i])
            return bllm_fail(BLLM_ERR_ARG, "%s: %s[%zu] = %.9g is not exactly an fp16 value (round it with "
                             "bllm_fp16_round first)", bllm_type_name(type), what, i, (double)v[i]);
    }
    return BLLM_OK;
}

static bllm_status check_bits(const char *what, const uint8_t *v, size_t n, int cols, bllm_type type)
{
    for (size_t i = 0; v && i < n; i++)
        if (v[i] > 1)
            return bllm_fail(BLLM_ERR_ARG, "%s: %s at row %zu column %zu is %u (0 or 1 expected)",
                             bllm_type_name(type), what, i / (size_t)cols, i % (size_t)cols, v[i]);
    return BLLM_OK;
}

static bllm_status pack_block(const bllm_binary_decomp *d, void *out, uint64_t nbytes)
{
    const bllm_type t = d->type;
    const int rows = d->rows, cols = d->cols, nblk = bllm_billm_blocks(cols), nsc = bllm_blk_scales(t);
    const bool stb = t == BLLM_TYPE_STBLLM;
    uint8_t *base = out;
    memset(base, 0, nbytes);
    for (int r = 0; r < rows; r++) {
        const int j = r % BLLM_TILE_ROWS;
        for (int b = 0; b < nblk; b++) {
            uint8_t *blk = (uint8_t *)blk_at(t, base, cols, r, b);
            for (int h = 0; h < bllm_billm_halves(cols, b); h++)
                for (int cc = 0; cc < BLLM_GROUP; cc++) {
                    const int c = b * BLLM_BILLM_BLOCK + h * BLLM_GROUP + cc;
                    const size_t i = (size_t)r * cols + (size_t)c;
                    int planes[3] = {d->sign[i], d->sign2[i], 0};
                    if (stb) {
                        if (d->region[i] > 2 || (d->region[i] && (!d->mask[i] || d->col_salient[c])))
                            return bllm_fail(BLLM_ERR_ARG, "stbllm: region %u at row %d column %d (0..2, and only "
                                             "for kept weights of non-salient columns)", d->region[i], r, c);
                        if (d->sign2[i] && !(d->mask[i] && d->col_salient[c]))
                            return bllm_fail(BLLM_ERR_ARG, "stbllm: residual sign at row %d column %d, which is "
                                             "not a kept weight of a salient column", r, c);
                        int ab = stbllm_ab(d->mask[i], d->col_salient[c], d->sign2[i], d->region[i]);
                        planes[0] = d->mask[i] && d->sign[i];
                        planes[1] = ab >> 1;
                        planes[2] = ab & 1;
                    }
                    for (int p = 0; p < bllm_blk_planes(t); p++)
                        if (planes[p])
                            sign_set((uint8_t *)blk_plane(t, blk, h, p), j, cc);
                }
            const float *sc = d->bscale + ((size_t)r * nblk + b) * nsc;
            for (int k = 0; k < nsc; k++)
                wr16(blk + blk_scale_off(t, cols, b, k, j), sc[k]);
        }
    }
    uint8_t *flags = (uint8_t *)bllm_blk_flags(t, base, rows, cols);
    for (int c = 0; c < cols; c++)
        if (d->col_salient[c])
            flags[c / 8] |= (uint8_t)(1u << (c % 8));
    return BLLM_OK;
}

bllm_status bllm_binary_pack(const bllm_binary_decomp *d, void *out, uint64_t nbytes)
{
    bllm_type type = d->type;
    int rows = d->rows, cols = d->cols;
    uint64_t want = bllm_type_is_packed(type) && rows > 0 && cols > 0
                        ? bllm_type_tensor_bytes(type, (uint64_t)rows, (uint64_t)cols)
                        : 0;
    if (!want)
        return bllm_fail(BLLM_ERR_ARG, "cannot pack a %d x %d %s matrix (packed types need rows %% 32 == 0 "
                         "and cols %% 64 == 0)", rows, cols, bllm_type_name(type));
    if (nbytes != want)
        return bllm_fail(BLLM_ERR_ARG, "%s %d x %d needs %llu bytes, %llu given", bllm_type_name(type), rows,
                         cols, (unsigned long long)want, (unsigned long long)nbytes);
    size_t n = (size_t)rows * cols, ng = (size_t)rows * (cols / BLLM_GROUP);
    bllm_status s;
    if ((s = check_bits("sign", d->sign, n, cols, type)) || (s = check_bits("sign2", d->sign2, n, cols, type)) ||
        (s = check_bits("mask", d->mask, n, cols, type)) ||
        (s = check_bits("salient", d->salient, n, cols, type)) ||
        (s = check_scale("alpha", d->alpha, type == BLLM_TYPE_B1 ? (size_t)rows : ng, type)) ||
        (s = check_scale("alpha2", d->alpha2, ng, type)) || (s = check_scale("mu", d->mu, ng, type)) ||
        (s = check_scale("g", d->g, (size_t)rows, type)) || (s = check_scale("h", d->h, (size_t)cols, type)) ||
        (s = check_scale("salient scale", d->sal_scale, (size_t)rows, type)) ||
        (s = check_bits("salient column flag", d->col_salient, (size_t)cols, cols, type)) ||
        (s = check_scale("block scale", d->bscale,
                         d->bscale ? (size_t)rows * bllm_billm_blocks(cols) * bllm_blk_scales(type) : 0, type)))
        return s;
    if (bllm_type_is_block(type))
        return pack_block(d, out, nbytes);

    layout L = layout_of(type);
    uint8_t *base = out;
    memset(base, 0, nbytes);
    int ngrp = cols / BLLM_GROUP;
    for (int r = 0; r < rows; r++) {
        int j = r % BLLM_TILE_ROWS;
        for (int grp = 0; grp < ngrp; grp++) {
            uint8_t *t = (uint8_t *)tile_at(&L, base, cols, r, grp);
            size_t i0 = (size_t)r * cols + (size_t)grp * BLLM_GROUP, gi = (size_t)r * ngrp + grp;
            if (L.sign != NONE)
                for (int cc = 0; cc < BLLM_GROUP; cc++)
                    if (d->sign[i0 + cc])
                        sign_set(t + L.sign, j, cc);
            if (L.sign2 != NONE)
                for (int cc = 0; cc < BLLM_GROUP; cc++)
                    if (d->sign2[i0 + cc])
                        sign_set(t + L.sign2, j, cc);
            if (L.codes != NONE) {
                uint64_t codes = 0, signs = 0;
                for (int k = 0; k < BLLM_GROUP / L.m; k++) {
                    uint32_t mask = 0, sb = 0;
                    int idx = 0;
                    for (int p = 0; p < L.m; p++) {
                        size_t i = i0 + (size_t)(k * L.m + p);
                        if (d->mask[i]) {
                            mask |= 1u << p;
                            sb |= (uint32_t)d->sign[i] << idx++;
                        }
                    }
                    int code = mask_code(L.n, L.m, mask);
                    if (code < 0)
                        return bllm_fail(BLLM_ERR_ARG, "%s: row %d columns %d..%d keep %d weights, not %d",
                                         bllm_type_name(type), r, grp * BLLM_GROUP + k * L.m,
                                         grp * BLLM_GROUP + k * L.m + L.m - 1, __builtin_popcount(mask), L.n);
                    codes |= (uint64_t)code << (k * L.m);
                    signs |= (uint64_t)sb << (k * L.n);
                }
                memcpy(t + L.codes + (size_t)j * L.cb, &codes, (size_t)L.cb);
                memcpy(t + L.ksigns + (size_t)j * L.sb, &signs, (size_t)L.sb);
            }
            if (L.alpha != NONE)
                wr16(t + L.alpha + 2 * j, d->alpha[gi]);
            if (L.alpha2 != NONE)
                wr16(t + L.alpha2 + 2 * j, d->alpha2[gi]);
            if (L.mu != NONE)
                wr16(t + L.mu + 2 * j, d->mu[gi]);
        }
    }
    uint8_t *trailer = base + tile_region(&L, rows, cols);
    if (type == BLLM_TYPE_B1)
        for (int r = 0; r < rows; r++)
            wr16(trailer + 2 * (size_t)r, d->alpha[r]);
    if (type == BLLM_TYPE_ONEBIT) {
        for (int r = 0; r < rows; r++)
            wr16(trailer + 2 * (size_t)r, d->g[r]);
        for (int c = 0; c < cols; c++)
            wr16(trailer + 2 * (size_t)rows + 2 * (size_t)c, d->h[c]);
    }
    return BLLM_OK;
}

/* -------------------------------------------------------- dequantization */

/* billm, stbllm: the 64 values of row r, group grp. The few values a
 * row's block can take are computed once and selected by the bits. */
static void dequant_group_block(bllm_type t, const void *w, int rows, int cols, int r, int grp,
                                float out[BLLM_GROUP])
{
    const int b = grp / 2, h = grp % 2, j = r % BLLM_TILE_ROWS;
    const uint8_t *blk = blk_at(t, w, cols, r, b);
    float sc[BLLM_STBLLM_SCALES];
    for (int k = 0; k < bllm_blk_scales(t); k++)
        sc[k] = rd16(blk + blk_scale_off(t, cols, b, k, j));
    uint64_t s1 = sign_row(blk_plane(t, blk, h, 0), j), s2 = sign_row(blk_plane(t, blk, h, 1), j);
    uint64_t fl = rd_bits(bllm_blk_flags(t, w, rows, cols) + (size_t)grp * 8, 8);
    if (t == BLLM_TYPE_BILLM) {
        float v[8];
        for (int k = 0; k < 8; k++) /* index: salient << 2 | s2 << 1 | s */
            v[k] = v_billm(sc, k >> 2, k & 1, k >> 1 & 1);
        for (int cc = 0; cc < BLLM_GROUP; cc++)
            out[cc] = v[(fl >> cc & 1) << 2 | (s2 >> cc & 1) << 1 | (s1 >> cc & 1)];
        return;
    }
    /* stbllm: index salient << 3 | A << 2 | B << 1 | s */
    uint64_t s3 = sign_row(blk_plane(t, blk, h, 2), j);
    float v[16];
    for (int k = 0; k < 16; k++) {
        int sal = k >> 3, ab = k >> 1 & 3, s = k & 1;
        v[k] = sal ? v_stbllm(sc, ab >> 1, 1, s, ab & 1, 0) : v_stbllm(sc, ab != 0, 0, s, 0, ab ? ab - 1 : 0);
    }
    for (int cc = 0; cc < BLLM_GROUP; cc++)
        out[cc] = v[(fl >> cc & 1) << 3 | (s2 >> cc & 1) << 2 | (s3 >> cc & 1) << 1 | (s1 >> cc & 1)];
}

void bllm_binary_dequant_group(bllm_type type, const void *w, int rows, int cols, int r, int grp,
                               float out[BLLM_GROUP])
{
    if (bllm_type_is_block(type)) {
        dequant_group_block(type, w, rows, cols, r, grp, out);
        return;
    }
    layout L = layout_of(type);
    const uint8_t *t = tile_at(&L, w, cols, r, grp);
    int j = r % BLLM_TILE_ROWS;
    switch (type) {
    /* The few distinct values of a row's group are computed once (with the
     * same f32 operations as the formulas) and selected by sign bits. */
    case BLLM_TYPE_B1:
    case BLLM_TYPE_B1G:
    case BLLM_TYPE_PB8: {
        float a = type == BLLM_TYPE_B1 ? rd16((const uint8_t *)w + tile_region(&L, rows, cols) + 2 * (size_t)r)
                                       : rd16(t + L.alpha + 2 * j);
        const float v[2] = {v_pm(0, a), v_pm(1, a)};
        uint64_t s = sign_row(t + L.sign, j);
        for (int cc = 0; cc < BLLM_GROUP; cc++)
            out[cc] = v[s >> cc & 1];
        break;
    }
    case BLLM_TYPE_B1MG: {
        float a = rd16(t + L.alpha + 2 * j), mu = rd16(t + L.mu + 2 * j);
        const float v[2] = {v_mg(mu, 0, a), v_mg(mu, 1, a)};
        uint64_t s = sign_row(t + L.sign, j);
        for (int cc = 0; cc < BLLM_GROUP; cc++)
            out[cc] = v[s >> cc & 1];
        break;
    }
    case BLLM_TYPE_RB2G: {
        float a1 = rd16(t + L.alpha + 2 * j), a2 = rd16(t + L.alpha2 + 2 * j), mu = rd16(t + L.mu + 2 * j);
        const float v[4] = {v_rb2(mu, 0, a1, 0, a2), v_rb2(mu, 1, a1, 0, a2), v_rb2(mu, 0, a1, 1, a2),
                            v_rb2(mu, 1, a1, 1, a2)};
        uint64_t s1 = sign_row(t + L.sign, j), s2 = sign_row(t + L.sign2, j);
        for (int cc = 0; cc < BLLM_GROUP; cc++)
            out[cc] = v[(s1 >> cc & 1) | (s2 >> cc & 1) << 1];
        break;
    }
    case BLLM_TYPE_NM24:
    case BLLM_TYPE_NM48:
    case BLLM_TYPE_NM58:
    case BLLM_TYPE_NM68: {
        float a = rd16(t + L.alpha + 2 * j), mu = rd16(t + L.mu + 2 * j);
        uint64_t mask = rd_bits(t + L.codes + (size_t)j * L.cb, L.cb);
        uint64_t signs = rd_bits(t + L.ksigns + (size_t)j * L.sb, L.sb);
        const float v[2] = {v_mg(mu, 0, a), v_mg(mu, 1, a)};
        for (int cc = 0, idx = 0; cc < BLLM_GROUP; cc++)
            out[cc] = (mask >> cc & 1) ? v[signs >> idx++ & 1] : 0.0f;
        break;
    }
    case BLLM_TYPE_ONEBIT: {
        const uint8_t *trailer = (const uint8_t *)w + tile_region(&L, rows, cols);
        float g = rd16(trailer + 2 * (size_t)r);
        const uint8_t *h = trailer + 2 * (size_t)rows + 2 * (size_t)grp * BLLM_GROUP;
        uint64_t s = sign_row(t + L.sign, j);
        for (int cc = 0; cc < BLLM_GROUP; cc++)
            out[cc] = v_onebit(g, (int)(s >> cc & 1), rd16(h + 2 * cc));
        break;
    }
    default:
        memset(out, 0, BLLM_GROUP * sizeof(float));
        break;
    }
}

void bllm_binary_row_group_get(bllm_type type, const void *w, int rows, int cols, int r, int grp,
                               bllm_binary_row_group *out)
{
    const layout L = layout_of(type);
    const uint8_t *t = tile_at(&L, w, cols, r, grp);
    const uint8_t *trailer = (const uint8_t *)w + tile_region(&L, rows, cols);
    const int j = r % BLLM_TILE_ROWS;
    memset(out, 0, sizeof *out);
    out->mask = ~0ull;
    out->rscale = 1.0f;
    if (L.codes != NONE) {
        out->mask = rd_bits(t + L.codes + (size_t)j * L.cb, L.cb);
        uint64_t signs = rd_bits(t + L.ksigns + (size_t)j * L.sb, L.sb);
        for (int cc = 0, idx = 0; cc < BLLM_GROUP; cc++)
            if (out->mask >> cc & 1)
                out->sign |= (signs >> idx++ & 1) << cc;
    } else {
        out->sign = sign_row(t + L.sign, j);
    }
    if (L.sign2 != NONE)
        out->sign2 = sign_row(t + L.sign2, j);
    if (L.alpha != NONE)
        out->alpha = rd16(t + L.alpha + 2 * j);
    if (L.alpha2 != NONE)
        out->alpha2 = rd16(t + L.alpha2 + 2 * j);
    if (L.mu != NONE)
        out->mu = rd16(t + L.mu + 2 * j);
    if (type == BLLM_TYPE_B1 || type == BLLM_TYPE_ONEBIT)
        out->rscale = rd16(trailer + 2 * (size_t)r);
}

const uint16_t *bllm_onebit_h(const void *w, int rows, int cols)
{
    const layout L = layout_of(BLLM_TYPE_ONEBIT);
    return (const uint16_t *)((const uint8_t *)w + tile_region(&L, rows, cols) + 2 * (size_t)rows);
}

/* A second, independent decoder (bit by bit, no row gathering): used for
 * single weights (pb8 salient corrections) and, in tests, as a cross-check of
 * bllm_binary_dequant_group. */
float bllm_binary_weight(bllm_type type, const void *w, int rows, int cols, int r, int c)
{
    if (bllm_type_is_block(type)) {
        const int b = c / BLLM_BILLM_BLOCK, h = c % BLLM_BILLM_BLOCK / BLLM_GROUP, cc = c % BLLM_GROUP;
        const int j = r % BLLM_TILE_ROWS;
        const uint8_t *blk = blk_at(type, w, cols, r, b);
        float sc[BLLM_STBLLM_SCALES];
        for (int k = 0; k < bllm_blk_scales(type); k++)
            sc[k] = rd16(blk + blk_scale_off(type, cols, b, k, j));
        int salient = bllm_blk_flags(type, w, rows, cols)[c / 8] >> (c % 8) & 1;
        int s = sign_at(blk_plane(type, blk, h, 0), j, cc), p1 = sign_at(blk_plane(type, blk, h, 1), j, cc);
        if (type == BLLM_TYPE_BILLM)
            return v_billm(sc, salient, s, p1);
        int p2 = sign_at(blk_plane(type, blk, h, 2), j, cc);
        if (salient)
            return v_stbllm(sc, p1, 1, s, p2, 0);
        int ab = p1 << 1 | p2;
        return v_stbllm(sc, ab != 0, 0, s, 0, ab ? ab - 1 : 0);
    }
    layout L = layout_of(type);
    int grp = c / BLLM_GROUP, cc = c % BLLM_GROUP, j = r % BLLM_TILE_ROWS;
    const uint8_t *t = tile_at(&L, w, cols, r, grp);
    const uint8_t *trailer = (const uint8_t *)w + tile_region(&L, rows, cols);
    switch (type) {
    case BLLM_TYPE_B1: return v_pm(sign_at(t + L.sign, j, cc), rd16(trailer + 2 * (size_t)r));
    case BLLM_TYPE_B1G:
    case BLLM_TYPE_PB8: return v_pm(sign_at(t + L.sign, j, cc), rd16(t + L.alpha + 2 * j));
    case BLLM_TYPE_B1MG: return v_mg(rd16(t + L.mu + 2 * j), sign_at(t + L.sign, j, cc), rd16(t + L.alpha + 2 * j));
    case BLLM_TYPE_RB2G:
        return v_rb2(rd16(t + L.mu + 2 * j), sign_at(t + L.sign, j, cc), rd16(t + L.alpha + 2 * j),
                     sign_at(t + L.sign2, j, cc), rd16(t + L.alpha2 + 2 * j));
    case BLLM_TYPE_NM24:
    case BLLM_TYPE_NM48:
    case BLLM_TYPE_NM58:
    case BLLM_TYPE_NM68: {
        uint64_t mask = rd_bits(t + L.codes + (size_t)j * L.cb, L.cb);
        if (!(mask >> cc & 1))
            return 0.0f;
        int idx = __builtin_popcountll(mask & ((1ull << cc) - 1));
        const uint8_t *signs = t + L.ksigns + (size_t)j * L.sb;
        int s = idx < 8 * L.sb ? signs[idx >> 3] >> (idx & 7) & 1 : 0;
        return v_mg(rd16(t + L.mu + 2 * j), s, rd16(t + L.alpha + 2 * j));
    }
    case BLLM_TYPE_ONEBIT:
        return v_onebit(rd16(trailer + 2 * (size_t)r), sign_at(t + L.sign, j, cc),
                        rd16(trailer + 2 * (size_t)rows + 2 * (size_t)c));
    default: return 0.0f;
    }
}

static void apply_salient(const bllm_pb8_salient *s, int cols, int r0, int r1, float *out)
{
    for (int r = r0; r < r1; r++) {
        float scale = bllm_f16_to_f32(s->scale[r]);
        for (uint32_t e = s->row_ptr[r]; e < s->row_ptr[r + 1]; e++)
            out[(size_t)(r - r0) * cols + s->col[e]] = (float)s->val[e] * scale;
    }
}

void bllm_binary_dequant_rows(bllm_type type, const void *w, const bllm_pb8_salient *sal, int rows, int cols,
                              int r0, int r1, float *out)
{
    for (int r = r0; r < r1; r++)
        for (int grp = 0; grp < cols / BLLM_GROUP; grp++)
            bllm_binary_dequant_group(type, w, rows, cols, r, grp,
                                      out + (size_t)(r - r0) * cols + (size_t)grp * BLLM_GROUP);
    if (type == BLLM_TYPE_PB8 && sal)
        apply_salient(sal, cols, r0, r1, out);
}

static bllm_status check_tensor(bllm_type type, uint64_t nbytes, const bllm_pb8_salient *sal, int rows, int cols)
{
    if (!bllm_type_is_packed(type))
        return bllm_fail(BLLM_ERR_ARG, "type %s is not a packed binary type", bllm_type_name(type));
    uint64_t want = rows > 0 && cols > 0 ? bllm_type_tensor_bytes(type, (uint64_t)rows, (uint64_t)cols) : 0;
    if (!want)
        return bllm_fail(BLLM_ERR_FORMAT, "a %d x %d matrix cannot be of type %s (rows %% 32 and cols %% 64 "
                         "must be 0)", rows, cols, bllm_type_name(type));
    if (nbytes != want)
        return bllm_fail(BLLM_ERR_FORMAT, "%s %d x %d holds %llu bytes, needs %llu", bllm_type_name(type), rows,
                         cols, (unsigned long long)nbytes, (unsigned long long)want);
    if (sal && (type != BLLM_TYPE_PB8 || sal->rows != rows || sal->cols != cols))
        return bllm_fail(BLLM_ERR_FORMAT, "salient companion (%d x %d) does not belong to this %s %d x %d matrix",
                         sal->rows, sal->cols, bllm_type_name(type), rows, cols);
    return BLLM_OK;
}

bllm_status bllm_binary_dequantize(bllm_type type, const void *w, uint64_t nbytes, const bllm_pb8_salient *sal,
                                   int rows, int cols, float *out)
{
    bllm_status s = check_tensor(type, nbytes, sal, rows, cols);
    if (s)
        return s;
    bllm_binary_dequant_rows(type, w, sal, rows, cols, 0, rows, out);
    return BLLM_OK;
}

static void unpack_block(const void *w, bllm_binary_decomp *d)
{
    const bllm_type t = d->type;
    const int rows = d->rows, cols = d->cols, nblk = bllm_billm_blocks(cols), nsc = bllm_blk_scales(t);
    const uint8_t *flags = bllm_blk_flags(t, w, rows, cols);
    for (int c = 0; c < cols; c++)
        d->col_salient[c] = flags[c / 8] >> (c % 8) & 1;
    for (int r = 0; r < rows; r++) {
        const int j = r % BLLM_TILE_ROWS;
        for (int b = 0; b < nblk; b++) {
            const uint8_t *blk = blk_at(t, w, cols, r, b);
            for (int h = 0; h < bllm_billm_halves(cols, b); h++)
                for (int cc = 0; cc < BLLM_GROUP; cc++) {
                    const int c = b * BLLM_BILLM_BLOCK + h * BLLM_GROUP + cc;
                    const size_t i = (size_t)r * cols + (size_t)c;
                    d->sign[i] = (uint8_t)sign_at(blk_plane(t, blk, h, 0), j, cc);
                    int p1 = sign_at(blk_plane(t, blk, h, 1), j, cc);
                    if (t == BLLM_TYPE_BILLM) {
                        d->sign2[i] = (uint8_t)p1;
                        continue;
                    }
                    int p2 = sign_at(blk_plane(t, blk, h, 2), j, cc);
                    if (d->col_salient[c]) {
                        d->mask[i] = (uint8_t)p1;
                        d->sign2[i] = (uint8_t)(p1 & p2);
                    } else {
                        int ab = p1 << 1 | p2;
                        d->mask[i] = ab != 0;
                        d->region[i] = (uint8_t)(ab ? ab - 1 : 0);
                    }
                    if (!d->mask[i])
                        d->sign[i] = 0;
                }
            float *sc = d->bscale + ((size_t)r * nblk + b) * nsc;
            for (int k = 0; k < nsc; k++)
                sc[k] = rd16(blk + blk_scale_off(t, cols, b, k, j));
        }
    }
}

bllm_status bllm_binary_unpack(bllm_type type, const void *w, uint64_t nbytes, const bllm_pb8_salient *sal,
                               int rows, int cols, bllm_binary_decomp *d)
{
    bllm_status s = check_tensor(type, nbytes, sal, rows, cols);
    if (!s)
        s = bllm_binary_decomp_init(d, type, rows, cols);
    if (s)
        return s;
    if (bllm_type_is_block(type)) {
        unpack_block(w, d);
        return BLLM_OK;
    }
    layout L = layout_of(type);
    const uint8_t *trailer = (const uint8_t *)w + tile_region(&L, rows, cols);
    int ngrp = cols / BLLM_GROUP;
    for (int r = 0; r < rows; r++) {
        int j = r % BLLM_TILE_ROWS;
        for (int grp = 0; grp < ngrp; grp++) {
            const uint8_t *t = tile_at(&L, w, cols, r, grp);
            size_t i0 = (size_t)r * cols + (size_t)grp * BLLM_GROUP, gi = (size_t)r * ngrp + grp;
            for (int cc = 0; cc < BLLM_GROUP; cc++) {
                if (L.sign != NONE)
                    d->sign[i0 + cc] = (uint8_t)sign_at(t + L.sign, j, cc);
                if (L.sign2 != NONE)
                    d->sign2[i0 + cc] = (uint8_t)sign_at(t + L.sign2, j, cc);
            }
            if (L.codes != NONE) {
                uint64_t mask = rd_bits(t + L.codes + (size_t)j * L.cb, L.cb);
                uint64_t signs = rd_bits(t + L.ksigns + (size_t)j * L.sb, L.sb);
                for (int cc = 0, idx = 0; cc < BLLM_GROUP; cc++)
                    if (mask >> cc & 1) {
                        d->mask[i0 + cc] = 1;
                        d->sign[i0 + cc] = (uint8_t)(signs >> idx++ & 1);
                    }
            }
            if (L.alpha != NONE)
                d->alpha[gi] = rd16(t + L.alpha + 2 * j);
            if (L.alpha2 != NONE)
                d->alpha2[gi] = rd16(t + L.alpha2 + 2 * j);
            if (L.mu != NONE)
                d->mu[gi] = rd16(t + L.mu + 2 * j);
        }
        if (type == BLLM_TYPE_B1)
            d->alpha[r] = rd16(trailer + 2 * (size_t)r);
        if (type == BLLM_TYPE_ONEBIT)
            d->g[r] = rd16(trailer + 2 * (size_t)r);
    }
    if (type == BLLM_TYPE_ONEBIT)
        for (int c = 0; c < cols; c++)
            d->h[c] = rd16(trailer + 2 * (size_t)rows + 2 * (size_t)c);
    if (type == BLLM_TYPE_PB8 && sal)
        for (int r = 0; r < rows; r++) {
            d->sal_scale[r] = bllm_f16_to_f32(sal->scale[r]);
            for (uint32_t e = sal->row_ptr[r]; e < sal->row_ptr[r + 1]; e++) {
                size_t i = (size_t)r * cols + sal->col[e];
                d->salient[i] = 1;
                d->q[i] = sal->val[e];
            }
        }
    return BLLM_OK;
}

/* ------------------------------------------------ pb8 salient companion */

uint64_t bllm_pb8_salient_bytes(uint64_t rows, uint64_t nnz)
{
    return BLLM_PB8_SALIENT_HEADER + 4 * (rows + 1) + 2 * rows + 3 * nnz;
}

bllm_status bllm_pb8_salient_pack(const bllm_binary_decomp *d, void **out, uint64_t *nbytes)
{
    *out = NULL;
    *nbytes = 0;
    if (d->type != BLLM_TYPE_PB8 || !d->salient)
        return bllm_fail(BLLM_ERR_ARG, "salient companion of a %s decomposition: only pb8 has one",
                         bllm_type_name(d->type));
    bllm_status s = check_scale("salient scale", d->sal_scale, (size_t)d->rows, d->type);
    if (!s)
        s = check_bits("salient", d->salient, (size_t)d->rows * d->cols, d->cols, d->type);
    if (s)
        return s;
    uint64_t nnz = 0;
    for (size_t i = 0; i < (size_t)d->rows * d->cols; i++)
        nnz += d->salient[i];
    if (nnz > UINT32_MAX)
        return bllm_fail(BLLM_ERR_ARG, "pb8: %llu salient weights, at most 2^32-1 fit", (unsigned long long)nnz);
    uint64_t n = bllm_pb8_salient_bytes((uint64_t)d->rows, nnz);
    uint8_t *b = calloc(1, n);
    if (!b)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory for a %llu-byte salient companion", (unsigned long long)n);
    uint32_t hdr[6] = {0, BLLM_PB8_SALIENT_VERSION, (uint32_t)d->rows, (uint32_t)d->cols, (uint32_t)nnz, 0};
    memcpy(hdr, BLLM_PB8_SALIENT_MAGIC, 4);
    memcpy(b, hdr, sizeof hdr);
    uint8_t *row_ptr = b + BLLM_PB8_SALIENT_HEADER;
    uint8_t *scale = row_ptr + 4 * ((size_t)d->rows + 1);
    uint8_t *col = scale + 2 * (size_t)d->rows;
    int8_t *val = (int8_t *)(col + 2 * nnz);
    uint32_t e = 0;
    for (int r = 0; r < d->rows; r++) {
        memcpy(row_ptr + 4 * (size_t)r, &e, 4);
        wr16(scale + 2 * (size_t)r, d->sal_scale[r]);
        for (int c = 0; c < d->cols; c++) {
            size_t i = (size_t)r * d->cols + c;
            if (d->salient[i]) {
                uint16_t c16 = (uint16_t)c;
                memcpy(col + 2 * (size_t)e, &c16, 2);
                val[e++] = d->q[i];
            }
        }
    }
    memcpy(row_ptr + 4 * (size_t)d->rows, &e, 4);
    *out = b;
    *nbytes = n;
    return BLLM_OK;
}

bllm_status bllm_pb8_salient_parse(const void *data, uint64_t nbytes, int rows, int cols, const char *name,
                                   bllm_pb8_salient *out)
{
    memset(out, 0, sizeof *out);
    const uint8_t *b = data;
    if (!name)
        name = "salient companion";
    if ((uintptr_t)data % 4)
        return bllm_fail(BLLM_ERR_ARG, "%s: data is not 4-byte aligned", name);
    if (nbytes < BLLM_PB8_SALIENT_HEADER)
        return bllm_fail(BLLM_ERR_FORMAT, "%s: %llu bytes, too short for its %u-byte header", name,
                         (unsigned long long)nbytes, BLLM_PB8_SALIENT_HEADER);
    uint32_t hdr[6];
    memcpy(hdr, b, sizeof hdr);
    if (memcmp(b, BLLM_PB8_SALIENT_MAGIC, 4))
        return bllm_fail(BLLM_ERR_FORMAT, "%s: not a pb8 salient companion (wrong magic)", name);
    if (hdr[1] != BLLM_PB8_SALIENT_VERSION)
        return bllm_fail(BLLM_ERR_UNSUPPORTED, "%s: companion version %u, this bllm reads %u", name, hdr[1],
                         BLLM_PB8_SALIENT_VERSION);
    if (hdr[2] != (uint32_t)rows || hdr[3] != (uint32_t)cols)
        return bllm_fail(BLLM_ERR_FORMAT, "%s: companion is for a %u x %u matrix, its matrix is %d x %d", name,
                         hdr[2], hdr[3], rows, cols);
    if (hdr[5] != 0)
        return bllm_fail(BLLM_ERR_FORMAT, "%s: reserved header field is %u, not 0", name, hdr[5]);
    uint32_t nnz = hdr[4];
    if ((uint64_t)nnz > (uint64_t)rows * (uint64_t)cols)
        return bllm_fail(BLLM_ERR_FORMAT, "%s: %u salient weights in a %d x %d matrix", name, nnz, rows, cols);
    uint64_t want = bllm_pb8_salient_bytes((uint64_t)rows, nnz);
    if (nbytes != want)
        return bllm_fail(BLLM_ERR_FORMAT, "%s: %llu bytes, but %d rows and %u salient weights need %llu", name,
                         (unsigned long long)nbytes, rows, nnz, (unsigned long long)want);
    const uint32_t *row_ptr = (const uint32_t *)(b + BLLM_PB8_SALIENT_HEADER);
    const uint16_t *scale = (const uint16_t *)(row_ptr + rows + 1);
    const uint16_t *col = scale + rows;
    const int8_t *val = (const int8_t *)(col + nnz);
    if (row_ptr[0] != 0)
        return bllm_fail(BLLM_ERR_FORMAT, "%s: row 0 starts at entry %u, not 0", name, row_ptr[0]);
    for (int r = 0; r < rows; r++) {
        uint32_t e0 = row_ptr[r], e1 = row_ptr[r + 1];
        if (e1 < e0 || e1 > nnz)
            return bllm_fail(BLLM_ERR_FORMAT, "%s: row %d spans entries %u..%u (of %u): row pointers must be "
                             "non-decreasing and within the entries", name, r, e0, e1, nnz);
        if ((scale[r] & 0x7c00) == 0x7c00)
            return bllm_fail(BLLM_ERR_FORMAT, "%s: row %d has a non-finite scale", name, r);
        for (uint32_t e = e0; e < e1; e++) {
            if (col[e] >= cols)
                return bllm_fail(BLLM_ERR_FORMAT, "%s: row %d entry %u has column %u, the matrix has %d", name,
                                 r, e - e0, col[e], cols);
            if (e > e0 && col[e] <= col[e - 1])
                return bllm_fail(BLLM_ERR_FORMAT, "%s: row %d columns are not strictly increasing (%u after %u)",
                                 name, r, col[e], col[e - 1]);
        }
    }
    if (row_ptr[rows] != nnz)
        return bllm_fail(BLLM_ERR_FORMAT, "%s: rows hold %u entries, the header says %u", name, row_ptr[rows], nnz);
    out->rows = rows;
    out->cols = cols;
    out->nnz = nnz;
    out->row_ptr = row_ptr;
    out->scale = scale;
    out->col = col;
    out->val = val;
    return BLLM_OK;
}
