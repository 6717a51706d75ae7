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

/* The stored code of the level nearest to u = w / d: q8's q, q4's q - 8
 * and q6's q - 32 rounded and clamped, q4nl's nearest level (the lower of
 * two equally near). */
static int nearest_code(bllm_type t, float u)
{
    if (t == BLLM_TYPE_Q4NL) {
        int k = 0;
        while (k < 15 && u > 0.5f * ((float)bllm_q4nl_levels[k] + (float)bllm_q4nl_levels[k + 1]))
            k++;
        return k;
    }
    const float off = t == BLLM_TYPE_Q8 ? 0.0f : t == BLLM_TYPE_Q4 ? 8.0f : 32.0f;
    const float lo = t == BLLM_TYPE_Q8 ? -127.0f : 0.0f, hi = t == BLLM_TYPE_Q8 ? 127.0f : 2.0f * off - 1.0f;
    float v = nearbyintf(u) + off;
    return (int)(v > hi ? hi : v < lo ? lo : v);
}

/* The codes of a block at scale d (already an fp16 value), and, with imp,
 * their weighted squared error. */
static float block_codes(bllm_type t, const float *x, const float *imp, float d, int code[BLLM_QBLOCK])
{
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    float err = 0.0f;
    for (int i = 0; i < BLLM_QBLOCK; i++) {
        code[i] = nearest_code(t, x[i] * id);
        if (imp) {
            const float e = x[i] - d * (float)bllm_blockq_level(t, code[i]);
            err += imp[i] * e * e;
        }
    }
    return err;
}

static void put_block(bllm_type t, uint16_t dh, const int code[BLLM_QBLOCK], uint8_t *out)
{
    put_f16(out, dh);
    if (t == BLLM_TYPE_Q8) {
        for (int i = 0; i < BLLM_QBLOCK; i++)
            out[2 + i] = (uint8_t)(int8_t)code[i];
        return;
    }
    for (int j = 0; j < 16; j++)
        out[2 + j] = (uint8_t)((code[j] & 15) | (code[j + 16] & 15) << 4);
    if (t == BLLM_TYPE_Q6)
        for (int j = 0; j < 8; j++)
            out[18 + j] = (uint8_t)(code[j] >> 4 | (code[j + 8] >> 4) << 2 | (code[j + 16] >> 4) << 4 |
                                    (code[j + 24] >> 4) << 6);
}

/* The weighted search's candidates besides the rule's d0: d0 scaled by
 * 0.80, 0.81, ..., 1.25, and the scales that put the block's most
 * important value exactly on one of the larger levels (as the rule puts the
 * largest magnitude on the extreme level). */
#define SEARCH_LO (-20)
#define SEARCH_HI 25

void bllm_blockq_quantize_row_weighted(bllm_type t, const float *x, const float *imp, int cols, uint8_t *out)
{
    const int bs = bllm_blockq_block_bytes(t);
    const int n_codes = t == BLLM_TYPE_Q8 ? 255 : t == BLLM_TYPE_Q6 ? 64 : 16;
    for (int b = 0; b < cols / BLLM_QBLOCK; b++, x += BLLM_QBLOCK, out += bs) {
        const float *wb = imp ? imp + (size_t)b * BLLM_QBLOCK : NULL;
        float amax = 0.0f, m = 0.0f;
        for (int i = 0; i < BLLM_QBLOCK; i++)
            if (fabsf(x[i]) > amax)
                amax = fabsf(x[i]), m = x[i];
        /* q4, q6, q4nl: m itself lands on the extreme level (-8, -32,
         * level[0]) exactly */
        const float d0 = t == BLLM_TYPE_Q8    ? amax / 127.0f
                         : t == BLLM_TYPE_Q4NL ? m / (float)bllm_q4nl_levels[0]
                                               : -m / (t == BLLM_TYPE_Q4 ? 8.0f : 32.0f);
        uint16_t dh = bllm_f32_to_f16(d0);
        int code[BLLM_QBLOCK], trial[BLLM_QBLOCK];
        float best = block_codes(t, x, wb, bllm_f16_to_f32(dh), code);
        if (wb && amax > 0.0f) {
            int top = 0;
            for (int i = 1; i < BLLM_QBLOCK; i++)
                if (wb[i] > wb[top])
                    top = i;
            const float max_level = t == BLLM_TYPE_Q8 || t == BLLM_TYPE_Q4NL ? 127.0f
                                    : t == BLLM_TYPE_Q4                     ? 8.0f
                                                                            : 32.0f;
            for (int k = SEARCH_LO; k <= SEARCH_HI + n_codes; k++) {
                float d;
                if (k <= SEARCH_HI) {
                    if (k == 0)
                        continue;
                    d = d0 * (1.0f + 0.01f * (float)k);
                } else {
                    const int c = k - SEARCH_HI - 1; /* the c-th level, ascending */
                    const float lv = t == BLLM_TYPE_Q8 ? (float)(c - 127) : (float)bllm_blockq_level(t, c);
                    if (fabsf(lv) < 0.5f * max_level || x[top] == 0.0f)
                        continue;
                    d = x[top] / lv;
                }
                const uint16_t h = bllm_f32_to_f16(d);
                const float dq = bllm_f16_to_f32(h);
                if (!isfinite(dq) || dq == 0.0f)
                    continue;
                const float e = block_codes(t, x, wb, dq, trial);
                if (e < best) {
                    best = e;
                    dh = h;
                    memcpy(code, trial, sizeof code);
                }
            }
        }
        put_block(t, dh, code, out);
    }
}

void bllm_blockq_quantize_row(bllm_type t, const float *x, int cols, uint8_t *out)
{
    bllm_blockq_quantize_row_weighted(t, x, NULL, cols, out);
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
