/* Dequantization of ggml's block formats to F32, written from the block
 * layouts ggml documents (ggml-common.h) and gguf-py's reference
 * quants.py. Each multiplication and addition happens in F32 in the same
 * order as the reference, so the results are bit-identical to
 * gguf.quants.dequantize (this relies on no FMA contraction, which is what
 * ISO C mode (-std=c17) gives GCC and Clang). */
#include <string.h>

#include "runtime/error.h"
#include "runtime/import/gguf.h"
#include "runtime/format/types.h"

#define QK_K 256

typedef struct {
    uint32_t id;
    const char *name;
    uint32_t block_elems, block_bytes;
} ggml_type_info;

/* Types this reader can size (so a file holding them opens and is
 * validated); only some of them can be dequantized. */
static const ggml_type_info type_table[] = {
    {0, "F32", 1, 4},
    {1, "F16", 1, 2},
    {2, "Q4_0", 32, 18},
    {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},
    {7, "Q5_1", 32, 24},
    {8, "Q8_0", 32, 34},
    {10, "Q2_K", QK_K, 84},
    {11, "Q3_K", QK_K, 110},
    {12, "Q4_K", QK_K, 144},
    {13, "Q5_K", QK_K, 176},
    {14, "Q6_K", QK_K, 210},
    {15, "Q8_K", QK_K, 292},
    {16, "IQ2_XXS", QK_K, 66},
    {17, "IQ2_XS", QK_K, 74},
    {18, "IQ3_XXS", QK_K, 98},
    {19, "IQ1_S", QK_K, 50},
    {20, "IQ4_NL", 32, 18},
    {21, "IQ3_S", QK_K, 110},
    {22, "IQ2_S", QK_K, 82},
    {23, "IQ4_XS", QK_K, 136},
    {24, "I8", 1, 1},
    {25, "I16", 1, 2},
    {26, "I32", 1, 4},
    {27, "I64", 1, 8},
    {28, "F64", 1, 8},
    {29, "IQ1_M", QK_K, 56},
    {30, "BF16", 1, 2},
    {34, "TQ1_0", QK_K, 54},
    {35, "TQ2_0", QK_K, 66},
    {39, "MXFP4", 32, 17},
};

static const ggml_type_info *type_info(uint32_t type) {
    for (size_t i = 0; i < sizeof(type_table) / sizeof(type_table[0]); i++)
        if (type_table[i].id == type)
            return &type_table[i];
    return NULL;
}

const char *bllm_ggml_type_name(uint32_t type) {
    const ggml_type_info *t = type_info(type);
    return t ? t->name : NULL;
}

bool bllm_ggml_type_size(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes) {
    const ggml_type_info *t = type_info(type);
    if (!t)
        return false;
    *block_elems = t->block_elems;
    *block_bytes = t->block_bytes;
    return true;
}

static inline float f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return bllm_f16_to_f32(h);
}

/* ---- 32-element blocks ---- */

/* Q4_0: f16 d; 16 bytes of nibbles. Low nibbles are elements 0..15, high
 * nibbles 16..31; value = d * (q - 8). */
static void dq_q4_0(const uint8_t *b, float *y) {
    float d = f16_at(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)((int)(qs[j] & 0x0F) - 8);
        y[j + 16] = d * (float)((int)(qs[j] >> 4) - 8);
    }
}

/* Q4_1: f16 d, f16 m; nibbles as Q4_0; value = d * q + m. */
static void dq_q4_1(const uint8_t *b, float *y) {
    float d = f16_at(b), m = f16_at(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        float lo = d * (float)(qs[j] & 0x0F);
        float hi = d * (float)(qs[j] >> 4);
        y[j] = lo + m;
        y[j + 16] = hi + m;
    }
}

/* Q5_0: f16 d; u32 qh (bit j = 5th bit of element j); nibbles as Q4_0;
 * value = d * (q - 16). */
static void dq_q5_0(const uint8_t *b, float *y) {
    float d = f16_at(b);
    uint32_t qh;
    memcpy(&qh, b + 2, 4);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        int lo = (qs[j] & 0x0F) | (int)(((qh >> j) & 1) << 4);
        int hi = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
        y[j] = d * (float)(lo - 16);
        y[j + 16] = d * (float)(hi - 16);
    }
}

/* Q5_1: f16 d, f16 m, u32 qh, nibbles; value = d * q + m. */
static void dq_q5_1(const uint8_t *b, float *y) {
    float d = f16_at(b), m = f16_at(b + 2);
    uint32_t qh;
    memcpy(&qh, b + 4, 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        int lo = (qs[j] & 0x0F) | (int)(((qh >> j) & 1) << 4);
        int hi = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
        float a = d * (float)lo, c = d * (float)hi;
        y[j] = a + m;
        y[j + 16] = c + m;
    }
}

/* Q8_0: f16 d; 32 int8; value = q * d. */
static void dq_q8_0(const uint8_t *b, float *y) {
    float d = f16_at(b);
    const int8_t *qs = (const int8_t *)(b + 2);
    for (int j = 0; j < 32; j++)
        y[j] = (float)qs[j] * d;
}

/* ---- 256-element super-blocks (k-quants) ---- */

/* Q2_K: u8 scales[16] (low nibble scale, high nibble min), u8 qs[64]
 * (2-bit), f16 d, f16 dmin. Element e: qs byte (e/128)*32 + e%32, shift
 * 2*((e%128)/32); sub-block e/16; value = d*sc * q - dmin*m. */
static void dq_q2_k(const uint8_t *b, float *y) {
    const uint8_t *sc = b, *qs = b + 16;
    float d = f16_at(b + 80), dmin = f16_at(b + 82);
    for (int e = 0; e < QK_K; e++) {
        int k = e / 16;
        float dl = d * (float)(sc[k] & 0x0F), ml = dmin * (float)(sc[k] >> 4);
        int q = (qs[(e / 128) * 32 + e % 32] >> (2 * ((e % 128) / 32))) & 3;
        float v = dl * (float)q;
        y[e] = v - ml;
    }
}

/* Q3_K: u8 hmask[32], u8 qs[64] (low 2 bits), u8 scales[12] (16 6-bit
 * scales biased by 32), f16 d. The high bit comes from hmask[e%32] bit
 * e/32 and, set, means no -4 offset. */
static void dq_q3_k(const uint8_t *b, float *y) {
    const uint8_t *hm = b, *qs = b + 32, *sc = b + 96;
    float d = f16_at(b + 108);
    float dl[16];
    for (int k = 0; k < 16; k++) {
        int lo = (sc[k % 8] >> (4 * (k / 8))) & 0x0F;
        int hi = (sc[8 + k % 4] >> (2 * (k / 4))) & 0x03;
        dl[k] = d * (float)((int8_t)(uint8_t)(lo | (hi << 4)) - 32);
    }
    for (int e = 0; e < QK_K; e++) {
        int ql = (qs[(e / 128) * 32 + e % 32] >> (2 * ((e % 128) / 32))) & 3;
        int h = (hm[e % 32] >> (e / 32)) & 1;
        int q = ql - ((h ^ 1) << 2);
        y[e] = dl[e / 16] * (float)q;
    }
}

/* The 12 bytes of 6-bit scales and mins shared by Q4_K and Q5_K: bytes
 * 0-3 hold scales 0-3 (and the top bits of scales 4-7), bytes 4-7 mins 0-3
 * (and the top bits of mins 4-7), bytes 8-11 the low nibbles of scales 4-7
 * (low) and mins 4-7 (high). */
static void k_scale_min(const uint8_t *s, uint8_t sc[8], uint8_t mn[8]) {
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = (uint8_t)((s[j + 8] & 0x0F) | ((s[j] >> 2) & 0x30));
        mn[j + 4] = (uint8_t)((s[j + 8] >> 4) | ((s[j + 4] >> 2) & 0x30));
    }
}

/* Q4_K: f16 d, f16 dmin, scales[12], qs[128]. 8 sub-blocks of 32: sub-block
 * k uses qs bytes (k/2)*32.. and nibble k%2; value = d*sc[k] * q - dmin*m[k]. */
static void dq_q4_k(const uint8_t *b, float *y) {
    float d = f16_at(b), dmin = f16_at(b + 2);
    uint8_t sc[8], mn[8];
    k_scale_min(b + 4, sc, mn);
    const uint8_t *qs = b + 16;
    for (int k = 0; k < 8; k++) {
        float dd = d * (float)sc[k], dm = dmin * (float)mn[k];
        const uint8_t *q = qs + (k / 2) * 32;
        int sh = 4 * (k % 2);
        for (int l = 0; l < 32; l++) {
            float v = dd * (float)((q[l] >> sh) & 0x0F);
            y[k * 32 + l] = v - dm;
        }
    }
}

/* Q5_K: as Q4_K plus qh[32] before qs: bit k of qh[l] is the 5th bit of
 * element l of sub-block k. */
static void dq_q5_k(const uint8_t *b, float *y) {
    float d = f16_at(b), dmin = f16_at(b + 2);
    uint8_t sc[8], mn[8];
    k_scale_min(b + 4, sc, mn);
    const uint8_t *qh = b + 16, *qs = b + 48;
    for (int k = 0; k < 8; k++) {
        float dd = d * (float)sc[k], dm = dmin * (float)mn[k];
        const uint8_t *q = qs + (k / 2) * 32;
        int sh = 4 * (k % 2);
        for (int l = 0; l < 32; l++) {
            int v5 = ((q[l] >> sh) & 0x0F) | (((qh[l] >> k) & 1) << 4);
            float v = dd * (float)v5;
            y[k * 32 + l] = v - dm;
        }
    }
}

/* Q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16], f16 d.
 * Element e = c*128 + r (c = half): low nibble from ql[c*64 + r%64] shifted
 * 4*(r/64), high bits from qh[c*32 + r%32] shifted 2*(r/32); value =
 * (d*scale[e/16]) * (q - 32). */
static void dq_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = f16_at(b + 208);
    for (int e = 0; e < QK_K; e++) {
        int c = e / 128, r = e % 128;
        int lo = (ql[c * 64 + r % 64] >> (4 * (r / 64))) & 0x0F;
        int hi = (qh[c * 32 + r % 32] >> (2 * (r / 32))) & 0x03;
        int q = (lo | (hi << 4)) - 32;
        float ds = d * (float)sc[e / 16];
        y[e] = ds * (float)q;
    }
}

/* Q8_K: f32 d, int8 qs[256], int16 bsums[16] (sums, unused here). */
static void dq_q8_k(const uint8_t *b, float *y) {
    float d;
    memcpy(&d, b, 4);
    const int8_t *qs = (const int8_t *)(b + 4);
    for (int e = 0; e < QK_K; e++)
        y[e] = d * (float)qs[e];
}

typedef void (*dq_block_fn)(const uint8_t *, float *);

static dq_block_fn block_fn(uint32_t type) {
    switch (type) {
    case BLLM_GGML_Q4_0: return dq_q4_0;
    case BLLM_GGML_Q4_1: return dq_q4_1;
    case BLLM_GGML_Q5_0: return dq_q5_0;
    case BLLM_GGML_Q5_1: return dq_q5_1;
    case BLLM_GGML_Q8_0: return dq_q8_0;
    case BLLM_GGML_Q2_K: return dq_q2_k;
    case BLLM_GGML_Q3_K: return dq_q3_k;
    case BLLM_GGML_Q4_K: return dq_q4_k;
    case BLLM_GGML_Q5_K: return dq_q5_k;
    case BLLM_GGML_Q6_K: return dq_q6_k;
    case BLLM_GGML_Q8_K: return dq_q8_k;
    default: return NULL;
    }
}

bool bllm_ggml_type_can_dequant(uint32_t type) {
    switch (type) {
    case BLLM_GGML_F32: case BLLM_GGML_F16: case BLLM_GGML_BF16: case BLLM_GGML_F64:
    case BLLM_GGML_I8: case BLLM_GGML_I16: case BLLM_GGML_I32:
        return true;
    default:
        return block_fn(type) != NULL;
    }
}

bllm_status bllm_ggml_dequant(uint32_t type, const void *src, float *dst, uint64_t n) {
    const uint8_t *p = src;
    switch (type) {
    case BLLM_GGML_F32:
        memcpy(dst, p, n * 4);
        return BLLM_OK;
    case BLLM_GGML_F16:
        for (uint64_t i = 0; i < n; i++)
            dst[i] = f16_at(p + 2 * i);
        return BLLM_OK;
    case BLLM_GGML_BF16:
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = bllm_bf16_to_f32(h);
        }
        return BLLM_OK;
    case BLLM_GGML_F64:
        for (uint64_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, p + 8 * i, 8);
            dst[i] = (float)v;
        }
        return BLLM_OK;
    case BLLM_GGML_I8:
        for (uint64_t i = 0; i < n; i++)
            dst[i] = (float)(int8_t)p[i];
        return BLLM_OK;
    case BLLM_GGML_I16:
        for (uint64_t i = 0; i < n; i++) {
            int16_t v;
            memcpy(&v, p + 2 * i, 2);
            dst[i] = (float)v;
        }
        return BLLM_OK;
    case BLLM_GGML_I32:
        for (uint64_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, p + 4 * i, 4);
            dst[i] = (float)v;
        }
        return BLLM_OK;
    default:
        break;
    }
    dq_block_fn fn = block_fn(type);
    const ggml_type_info *ti = type_info(type);
    if (!fn || !ti) {
        const char *name = bllm_ggml_type_name(type);
        if (name)
            return bllm_fail(BLLM_ERR_UNSUPPORTED, "dequantizing GGML type %s is not supported", name);
        return bllm_fail(BLLM_ERR_UNSUPPORTED, "unknown GGML type id %u", type);
    }
    if (n % ti->block_elems)
        return bllm_fail(BLLM_ERR_ARG, "%llu values is not a whole number of %s blocks",
                         (unsigned long long)n, ti->name);
    for (uint64_t i = 0, nb = n / ti->block_elems; i < nb; i++)
        fn(p + i * ti->block_bytes, dst + i * ti->block_elems);
    return BLLM_OK;
}
