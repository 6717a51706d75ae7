/* Block-quantized rows: runtime/format/blockq.h. */
#include "runtime/format/blockq.h"

#include <math.h>
#include <string.h>

#include "runtime/error.h"

static void put_f16(uint8_t *p, uint16_t h) { memcpy(p, &h, 2); }
static float get_f16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return bllm_f16_to_f32(h);
}

void bllm_blockq_quantize_row(bllm_type t, const float *x, int cols, uint8_t *out)
{
    const int bs = bllm_blockq_block_bytes(t);
    for (int b = 0; b < cols / BLLM_QBLOCK; b++, x += BLLM_QBLOCK, out += bs) {
        float amax = 0.0f, m = 0.0f;
        for (int i = 0; i < BLLM_QBLOCK; i++)
            if (fabsf(x[i]) > amax)
                amax = fabsf(x[i]), m = x[i];
        /* q4 and q6: levels -8..7 / -32..31 times d = -m / levels, so m
         * itself is the level -8 / -32 exactly */
        const float levels = t == BLLM_TYPE_Q4 ? 8.0f : 32.0f;
        uint16_t dh = bllm_f32_to_f16(t == BLLM_TYPE_Q8 ? amax / 127.0f : -m / levels);
        float d = bllm_f16_to_f32(dh), id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(out, dh);
        if (t == BLLM_TYPE_Q8) {
            for (int i = 0; i < BLLM_QBLOCK; i++) {
                float q = nearbyintf(x[i] * id);
                out[2 + i] = (uint8_t)(int8_t)(q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q);
            }
            continue;
        }
        uint8_t q[BLLM_QBLOCK];
        for (int i = 0; i < BLLM_QBLOCK; i++) {
            float v = nearbyintf(x[i] * id) + levels;
            q[i] = (uint8_t)(v > 2.0f * levels - 1.0f ? 2.0f * levels - 1.0f : v < 0.0f ? 0.0f : v);
        }
        for (int j = 0; j < 16; j++)
            out[2 + j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
        if (t == BLLM_TYPE_Q6)
            for (int j = 0; j < 8; j++)
                out[18 + j] =
                    (uint8_t)(q[j] >> 4 | (q[j + 8] >> 4) << 2 | (q[j + 16] >> 4) << 4 | (q[j + 24] >> 4) << 6);
    }
}

void bllm_blockq_dequant_row(bllm_type t, const uint8_t *row, int cols, float *out)
{
    const int bs = bllm_blockq_block_bytes(t);
    for (int b = 0; b < cols / BLLM_QBLOCK; b++, row += bs, out += BLLM_QBLOCK) {
        const float d = get_f16(row);
        int8_t q[BLLM_QBLOCK];
        bllm_blockq_levels(t, row, q);
        for (int i = 0; i < BLLM_QBLOCK; i++)
            out[i] = d * (float)q[i];
    }
}

bllm_status bllm_blockq_check(bllm_type t, const void *data, int rows, int cols, const char *name)
{
    const int bs = bllm_blockq_block_bytes(t), nb = cols / BLLM_QBLOCK;
    const uint8_t *p = data;
    for (int r = 0; r < rows; r++)
        for (int b = 0; b < nb; b++, p += bs)
            if (!isfinite(get_f16(p)))
                return bllm_fail(BLLM_ERR_FORMAT, "%s tensor '%s': row %d, block %d has a non-finite scale",
                                 bllm_type_name(t), name, r, b);
    return BLLM_OK;
}
