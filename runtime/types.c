#include "runtime/types.h"

#include <string.h>

static const bllm_type_traits traits[BLLM_TYPE_COUNT] = {
    [BLLM_TYPE_F32] = {"f32", 1, 4},
    [BLLM_TYPE_F16] = {"f16", 1, 2},
    [BLLM_TYPE_BF16] = {"bf16", 1, 2},
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

uint64_t bllm_type_row_bytes(bllm_type type, uint64_t ncols)
{
    const bllm_type_traits *t = bllm_type_get(type);
    if (!t || ncols == 0 || ncols % t->block_elems)
        return 0;
    uint64_t blocks = ncols / t->block_elems;
    if (blocks > UINT64_MAX / t->block_bytes)
        return 0;
    return blocks * t->block_bytes;
}

uint64_t bllm_type_tensor_bytes(bllm_type type, uint64_t rows, uint64_t ncols)
{
    uint64_t row = bllm_type_row_bytes(type, ncols);
    if (!row || rows == 0 || rows > UINT64_MAX / row)
        return 0;
    return rows * row;
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
