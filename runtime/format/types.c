#include "runtime/format/types.h"

#include <string.h>

/* ---- element types: any shape, a fixed number of bytes per weight ---- */

static bool any_shape(uint64_t rows, uint64_t cols) { return rows > 0 && cols > 0; }

static uint64_t elem_bytes_n(uint64_t rows, uint64_t cols, uint64_t size)
{
    uint64_t n, b;
    if (__builtin_mul_overflow(rows, cols, &n) || __builtin_mul_overflow(n, size, &b))
        return 0;
    return b;
}
static uint64_t bytes_f32(uint64_t rows, uint64_t cols) { return elem_bytes_n(rows, cols, 4); }
static uint64_t bytes_16(uint64_t rows, uint64_t cols) { return elem_bytes_n(rows, cols, 2); }
static uint64_t bytes_u8(uint64_t rows, uint64_t cols) { return elem_bytes_n(rows, cols, 1); }

/* ---- packed binary types: whole 32x64 tiles (docs/format.md) ---- */

static bool tiled(uint64_t rows, uint64_t cols)
{
    return rows > 0 && cols > 0 && rows % BLLM_TILE_ROWS == 0 && cols % BLLM_TILE_COLS == 0;
}
/* pb8's companion stores salient columns as u16. */
static bool tiled_u16_cols(uint64_t rows, uint64_t cols) { return tiled(rows, cols) && cols <= 65536; }

/* tiles * per_tile + per_row * rows + per_col * cols, or 0 on overflow. */
static uint64_t tile_bytes(uint64_t rows, uint64_t cols, uint64_t per_tile, uint64_t per_row, uint64_t per_col)
{
    uint64_t tiles, a, b, c, s;
    if (__builtin_mul_overflow(rows / BLLM_TILE_ROWS, cols / BLLM_TILE_COLS, &tiles) ||
        __builtin_mul_overflow(tiles, per_tile, &a) || __builtin_mul_overflow(rows, per_row, &b) ||
        __builtin_mul_overflow(cols, per_col, &c) || __builtin_add_overflow(a, b, &s) ||
        __builtin_add_overflow(s, c, &s))
        return 0;
    return s;
}

/* Per tile: sign bits are 256 bytes; an fp16 per tile row is 64 bytes.
 * N:M tiles: 32 rows x (8 kept-mask bytes + kept-sign bytes) + alpha and mu. */
static uint64_t bytes_b1(uint64_t r, uint64_t c) { return tile_bytes(r, c, 256, 2, 0); }
static uint64_t bytes_b1g(uint64_t r, uint64_t c) { return tile_bytes(r, c, 256 + 64, 0, 0); }
static uint64_t bytes_b1mg(uint64_t r, uint64_t c) { return tile_bytes(r, c, 256 + 128, 0, 0); }
static uint64_t bytes_rb2g(uint64_t r, uint64_t c) { return tile_bytes(r, c, 512 + 192, 0, 0); }
static uint64_t bytes_nm24(uint64_t r, uint64_t c) { return tile_bytes(r, c, 32 * (8 + 4) + 128, 0, 0); }
static uint64_t bytes_nm48(uint64_t r, uint64_t c) { return tile_bytes(r, c, 32 * (8 + 4) + 128, 0, 0); }
static uint64_t bytes_nm58(uint64_t r, uint64_t c) { return tile_bytes(r, c, 32 * (8 + 5) + 128, 0, 0); }
static uint64_t bytes_nm68(uint64_t r, uint64_t c) { return tile_bytes(r, c, 32 * (8 + 6) + 128, 0, 0); }
static uint64_t bytes_onebit(uint64_t r, uint64_t c) { return tile_bytes(r, c, 256, 2, 2); }
/* billm, stbllm (docs/format.md): per 32 rows x 64 columns `planes` bit
 * planes of 256 bytes; per 32 rows x 128-column block (the last may be 64
 * wide) `scales` fp16 scales per row (64 bytes each); one salient bit per
 * column. billm: 2 planes, 8 scales; stbllm: 3 and 10. */
static uint64_t bytes_block(uint64_t r, uint64_t c, uint64_t planes, uint64_t scales)
{
    uint64_t blocks = (c + BLLM_BILLM_BLOCK - 1) / BLLM_BILLM_BLOCK, a, b, s;
    if (__builtin_mul_overflow(blocks, 64 * scales, &a) || __builtin_mul_overflow(r / BLLM_TILE_ROWS, a, &a))
        return 0;
    b = tile_bytes(r, c, 256 * planes, 0, 0);
    if (!b || __builtin_add_overflow(a, b, &s) || __builtin_add_overflow(s, c / 8, &s))
        return 0;
    return s;
}
static uint64_t bytes_billm(uint64_t r, uint64_t c) { return bytes_block(r, c, 2, 8); }
static uint64_t bytes_stbllm(uint64_t r, uint64_t c) { return bytes_block(r, c, 3, 10); }

/* ---- block-quantized rows: whole blocks of 32 columns ---- */

static bool cols32(uint64_t rows, uint64_t cols) { return rows > 0 && cols > 0 && cols % 32 == 0; }
static uint64_t bytes_q8(uint64_t r, uint64_t c) { return elem_bytes_n(r, c / 32, 2 + 32); }
static uint64_t bytes_q4(uint64_t r, uint64_t c) { return elem_bytes_n(r, c / 32, 2 + 16); }
static uint64_t bytes_q6(uint64_t r, uint64_t c) { return elem_bytes_n(r, c / 32, 2 + 16 + 8); }

static const bllm_type_traits traits[BLLM_TYPE_COUNT] = {
    [BLLM_TYPE_F32] = {"f32", 4, false, any_shape, bytes_f32},
    [BLLM_TYPE_F16] = {"f16", 2, false, any_shape, bytes_16},
    [BLLM_TYPE_BF16] = {"bf16", 2, false, any_shape, bytes_16},
    [BLLM_TYPE_B1] = {"b1", 0, true, tiled, bytes_b1},
    [BLLM_TYPE_B1G] = {"b1g", 0, true, tiled, bytes_b1g},
    [BLLM_TYPE_B1MG] = {"b1mg", 0, true, tiled, bytes_b1mg},
    [BLLM_TYPE_RB2G] = {"rb2g", 0, true, tiled, bytes_rb2g},
    [BLLM_TYPE_NM24] = {"nm24", 0, true, tiled, bytes_nm24},
    [BLLM_TYPE_NM48] = {"nm48", 0, true, tiled, bytes_nm48},
    [BLLM_TYPE_NM58] = {"nm58", 0, true, tiled, bytes_nm58},
    [BLLM_TYPE_NM68] = {"nm68", 0, true, tiled, bytes_nm68},
    [BLLM_TYPE_ONEBIT] = {"onebit", 0, true, tiled, bytes_onebit},
    [BLLM_TYPE_PB8] = {"pb8", 0, true, tiled_u16_cols, bytes_b1g},
    [BLLM_TYPE_U8] = {"u8", 1, false, any_shape, bytes_u8},
    [BLLM_TYPE_BILLM] = {"billm", 0, true, tiled, bytes_billm},
    [BLLM_TYPE_STBLLM] = {"stbllm", 0, true, tiled, bytes_stbllm},
    [BLLM_TYPE_Q8] = {"q8", 0, false, cols32, bytes_q8},
    [BLLM_TYPE_Q4] = {"q4", 0, false, cols32, bytes_q4},
    [BLLM_TYPE_Q6] = {"q6", 0, false, cols32, bytes_q6},
    [BLLM_TYPE_Q4NL] = {"q4nl", 0, false, cols32, bytes_q4},
};

bool bllm_type_valid(uint32_t type) { return type < BLLM_TYPE_COUNT; }

const bllm_type_traits *bllm_type_get(bllm_type type)
{
    return bllm_type_valid((uint32_t)type) ? &traits[type] : NULL;
}

const char *bllm_type_name(bllm_type type)
{
    return bllm_type_valid((uint32_t)type) ? traits[type].name : "invalid";
}

bool bllm_type_from_name(const char *name, bllm_type *out)
{
    for (int t = 0; name && t < BLLM_TYPE_COUNT; t++)
        if (!strcmp(traits[t].name, name)) {
            *out = (bllm_type)t;
            return true;
        }
    return false;
}

bool bllm_type_is_packed(bllm_type type) { return bllm_type_valid((uint32_t)type) && traits[type].packed; }
bool bllm_type_is_blockq(bllm_type type)
{
    return type == BLLM_TYPE_Q8 || type == BLLM_TYPE_Q4 || type == BLLM_TYPE_Q6 || type == BLLM_TYPE_Q4NL;
}

bool bllm_type_shape_ok(bllm_type type, uint64_t rows, uint64_t ncols)
{
    const bllm_type_traits *t = bllm_type_get(type);
    return t && t->shape_ok(rows, ncols);
}

uint64_t bllm_type_row_bytes(bllm_type type, uint64_t ncols)
{
    const bllm_type_traits *t = bllm_type_get(type);
    if (!t || t->packed || ncols == 0)
        return 0;
    return t->tensor_bytes(1, ncols);
}

uint64_t bllm_type_tensor_bytes(bllm_type type, uint64_t rows, uint64_t ncols)
{
    const bllm_type_traits *t = bllm_type_get(type);
    if (!t || !t->shape_ok(rows, ncols))
        return 0;
    return t->tensor_bytes(rows, ncols);
}

double bllm_type_bits_per_weight(bllm_type type, uint64_t rows, uint64_t ncols)
{
    uint64_t b = bllm_type_tensor_bytes(type, rows, ncols);
    return b ? 8.0 * (double)b / ((double)rows * (double)ncols) : 0.0;
}

static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float bllm_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0x1f) /* inf / nan */
        return bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0)
            return bits_f32(sign);
        /* subnormal: value = man * 2^-24 exactly representable in f32 */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t bllm_f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf or nan (keep nan quiet and non-zero) */
        return sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 | ((ax >> 13) & 0x3ff) : 0);
    if (ax >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return sign | 0x7c00;
    if (ax < 0x38800000u) { /* below the smallest normal half: subnormal */
        /* add 0.5 so that the float adder rounds to nearest-even at 2^-24 */
        float v = bits_f32(ax) + 0.5f;
        return sign | (uint16_t)(f32_bits(v) - 0x3f000000u);
    }
    uint32_t mant_odd = (ax >> 13) & 1;
    ax += 0xc8000fffu + mant_odd; /* rebias exponent (-112 << 23) and round */
    return sign | (uint16_t)(ax >> 13);
}

float bllm_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t bllm_f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) /* nan: keep it a (quiet) nan */
        return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fffu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}
