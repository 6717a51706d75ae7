/* The scalar reference of the popcount path (kernels/binary_pop.h): int8
 * activations, integer sums by popcount, then the f32 steps of the x86
 * kernels (kernels/binary_x86.h, tg_token) in their order, so every SIMD
 * popcount kernel must equal this bit for bit. Per token and 64-column
 * group, with u = P(s) - kneg (and v = P(mask) - kneg for N:M), the row's
 * running sum acc (from 0, groups in column order) takes
 *   b1, onebit  acc = fma(d, 2u - kabs, acc)                    (times g or alpha[r] at the end)
 *   b1g, pb8    acc = fma(alpha * d, 2u - kabs, acc)
 *   b1mg        acc = fma(mu, sum, acc); acc = fma(alpha * d, 2u - kabs, acc)
 *   rb2g        t = alpha * (2u - kabs); t = fma(alpha2, 2u2 - kabs, t);
 *               acc = fma(mu, sum, acc); acc = fma(d, t, acc)
 *   nm          t = fma(mu, v + kneg, alpha * ((2u - v) + kneg)); acc = fma(d, t, acc)
 * where every integer expression is exact in f32, kabs = sum |q|, kneg = the
 * sum of the negative q, and sum is the f32 sum of the group's x in the x86
 * kernels' order (x86_sum). onebit scales x by h first (one f32 product). */
#include <math.h>
#include <string.h>

#include "kernels/binary_pop.h"
#include "kernels/binary_simd.h"
#include "runtime/format/binary.h"

/* The x86 kernels' order: two 8-lane sums over alternate 8-column blocks,
 * added, then folded 8 -> 4 -> 2 -> 1. */
static float x86_sum(const float *x)
{
    float s0[8] = {0}, s1[8] = {0}, s[8];
    for (int i = 0; i < 8; i++)
        for (int l = 0; l < 8; l++) {
            if (i & 1)
                s1[l] += x[8 * i + l];
            else
                s0[l] += x[8 * i + l];
        }
    for (int l = 0; l < 8; l++)
        s[l] = s0[l] + s1[l];
    float a = (s[0] + s[4]) + (s[2] + s[6]), b = (s[1] + s[5]) + (s[3] + s[7]);
    return a + b;
}

/* kernels/act_quant.h's quantization; a group is non-finite when its amax
 * or its x86_sum is (the x86 kernels' test, which differs from act_quant.h's
 * only where a sum of finite values overflows). */
void bllm_pop_prep_group(const float *x, bllm_pop_group *g)
{
    float amax = 0.0f;
    for (int c = 0; c < 64; c++)
        amax = fabsf(x[c]) > amax ? fabsf(x[c]) : amax;
    g->sum = x86_sum(x);
    int8_t q[64];
    int kabs = 0, kneg = 0;
    if (!isfinite(g->sum) || !isfinite(amax)) {
        memset(q, 0, sizeof q);
        g->d = NAN;
    } else {
        const float id = amax > 0.0f ? (float)BLLM_BINARY_QMAX / amax : 0.0f;
        for (int c = 0; c < 64; c++) {
            q[c] = (int8_t)nearbyintf(x[c] * id);
            kabs += q[c] < 0 ? -q[c] : q[c];
            kneg += q[c] < 0 ? q[c] : 0;
        }
        g->d = amax / (float)BLLM_BINARY_QMAX;
    }
    g->kabs = (float)kabs;
    g->kneg = (float)kneg;
    bllm_pop_planes(q, g->p);
}

static void matmul_pop(bllm_type ty, float *y, const float *x, const void *w, int n_tok, int cols, int rows,
                       int r0, int r1)
{
    const int ngrp = cols / 64;
    const uint16_t *h = ty == BLLM_TYPE_ONEBIT ? bllm_onebit_h(w, rows, cols) : NULL;
    for (int t = 0; t < n_tok; t++) {
        float *yt = y + (size_t)t * rows;
        for (int r = r0; r < r1; r++)
            yt[r] = 0.0f;
        for (int grp = 0; grp < ngrp; grp++) {
            float xh[64];
            const float *xg = x + (size_t)t * cols + (size_t)grp * 64;
            if (h) {
                for (int c = 0; c < 64; c++)
                    xh[c] = xg[c] * bllm_f16_to_f32(h[grp * 64 + c]);
                xg = xh;
            }
            bllm_pop_group g;
            bllm_pop_prep_group(xg, &g);
            for (int r = r0; r < r1; r++) {
                bllm_binary_row_group rg;
                bllm_binary_row_group_get(ty, w, rows, cols, r, grp, &rg);
                const float u = (float)bllm_pop_dot(rg.sign, g.p) - g.kneg;
                float acc = yt[r];
                switch (ty) {
                case BLLM_TYPE_B1:
                case BLLM_TYPE_ONEBIT: acc = fmaf(g.d, 2.0f * u - g.kabs, acc); break;
                case BLLM_TYPE_B1G:
                case BLLM_TYPE_PB8: acc = fmaf(rg.alpha * g.d, 2.0f * u - g.kabs, acc); break;
                case BLLM_TYPE_B1MG:
                    acc = fmaf(rg.mu, g.sum, acc);
                    acc = fmaf(rg.alpha * g.d, 2.0f * u - g.kabs, acc);
                    break;
                case BLLM_TYPE_RB2G: {
                    const float u2 = (float)bllm_pop_dot(rg.sign2, g.p) - g.kneg;
                    float tt = rg.alpha * (2.0f * u - g.kabs);
                    tt = fmaf(rg.alpha2, 2.0f * u2 - g.kabs, tt);
                    acc = fmaf(rg.mu, g.sum, acc);
                    acc = fmaf(g.d, tt, acc);
                    break;
                }
                default: { /* N:M */
                    const float v = (float)bllm_pop_dot(rg.mask, g.p) - g.kneg;
                    const float tt = fmaf(rg.mu, v + g.kneg, rg.alpha * ((2.0f * u - v) + g.kneg));
                    acc = fmaf(g.d, tt, acc);
                    break;
                }
                }
                yt[r] = acc;
            }
        }
        if (ty == BLLM_TYPE_B1 || ty == BLLM_TYPE_ONEBIT)
            for (int r = r0; r < r1; r++) {
                bllm_binary_row_group rg;
                bllm_binary_row_group_get(ty, w, rows, cols, r, 0, &rg);
                yt[r] *= rg.rscale;
            }
    }
}

#define DEFINE(name, TYPE, KTYPE)                                                                             \
    void bllm_matmul_##name##_pop_scalar(float *y, const float *x, const void *w, int n_tok, int cols,         \
                                         int rows, int r0, int r1)                                             \
    {                                                                                                         \
        matmul_pop(KTYPE, y, x, w, n_tok, cols, rows, r0, r1);                                                \
    }
BLLM_TILE_TYPES(DEFINE)

void bllm_binary_pop_fill_scalar(bllm_matmul_fn *mm)
{
#define SET(name, TYPE, KTYPE) mm[TYPE] = bllm_matmul_##name##_pop_scalar;
    BLLM_TILE_TYPES(SET)
#undef SET
}
