/* What the tests of the packed binary kernels share (test_binary_kernels.c,
 * test_binary_avx512_emu.c): random packed tensors and activations, the
 * int8-activation reference of the LUT path, and the check of one call
 * against it or the scalar reference. The tolerances and why they hold are
 * in test_binary_kernels.c's opening comment. Static: each test program
 * includes this once. */
#ifndef BLLM_TESTS_KERNELS_BINARY_CHECKS_H
#define BLLM_TESTS_KERNELS_BINARY_CHECKS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bllm.h"
#include "kernels/binary_simd.h"
#include "kernels/kernels.h"
#include "runtime/format/binary.h"

#define TEST_RNG_SEED 0x243f6a8885a308d3ull
#include "tests/test_rng.h"
static float rng_normal(void)
{
    double u1 = rng_unif() + 0x1p-60, u2 = rng_unif();
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
/* An fp16-exact scale, mostly positive, of varied size. */
static float rng_scale(int allow_negative)
{
    float v = (float)(0.01 + rng_unif()) * (rng_int(8) == 0 ? 16.0f : 1.0f);
    if (allow_negative && rng_int(4) == 0)
        v = -v;
    return bllm_fp16_round(v);
}

/* A random decomposition of type ty, packed. */
static void *random_tensor(bllm_type ty, int rows, int cols, bllm_binary_decomp *d)
{
    if (bllm_binary_decomp_init(d, ty, rows, cols) != BLLM_OK) {
        printf("FAIL: decomp_init %s: %s\n", bllm_type_name(ty), bllm_last_error());
        exit(1);
    }
    size_t n = (size_t)rows * cols, ng = (size_t)rows * (cols / 64);
    int N = 0, M = 1;
    bllm_nm_params(ty, &N, &M, NULL);
    if (ty == BLLM_TYPE_STBLLM) /* any count kept: N of 8, N = 4..8 per tensor */
        N = 4 + rng_int(5), M = 8;
    for (size_t i = 0; i < n; i++) {
        d->sign[i] = (uint8_t)rng_int(2);
        if (d->sign2)
            d->sign2[i] = (uint8_t)rng_int(2);
    }
    if (d->mask)
        for (size_t i = 0; i < n; i += (size_t)M) { /* exactly N of every M */
            int left = N;
            for (int k = 0; k < M; k++) {
                int keep = rng_int(M - k) < left;
                d->mask[i + k] = (uint8_t)keep;
                left -= keep;
            }
        }
    size_t na = ty == BLLM_TYPE_B1 ? (size_t)rows : ng;
    if (d->alpha)
        for (size_t i = 0; i < na; i++)
            d->alpha[i] = rng_scale(1);
    if (d->alpha2)
        for (size_t i = 0; i < ng; i++)
            d->alpha2[i] = rng_scale(1);
    if (d->mu)
        for (size_t i = 0; i < ng; i++)
            d->mu[i] = bllm_fp16_round((float)(rng_unif() - 0.5) * 0.5f);
    if (d->g)
        for (int r = 0; r < rows; r++)
            d->g[r] = rng_scale(1);
    if (d->h)
        for (int c = 0; c < cols; c++)
            d->h[c] = rng_scale(1);
    if (d->col_salient) /* billm: a few salient columns per block, some blocks none */
        for (int c = 0; c < cols; c++)
            d->col_salient[c] = (uint8_t)(rng_int(5) == 0 && (c / 128) % 3 != 1);
    if (d->region) /* stbllm: regions of the kept non-salient weights, the
                      residual sign only where kept in a salient column */
        for (size_t i = 0; i < n; i++) {
            int c = (int)(i % (size_t)cols);
            d->region[i] = (uint8_t)(d->mask[i] && !d->col_salient[c] ? rng_int(3) : 0);
            d->sign2[i] &= d->mask[i] & d->col_salient[c];
        }
    if (d->bscale) {
        size_t nbs = (size_t)rows * bllm_billm_blocks(cols) * bllm_blk_scales(ty);
        for (size_t i = 0; i < nbs; i++)
            d->bscale[i] = i % 2 == 0 ? bllm_fp16_round((float)(rng_unif() - 0.5) * 0.5f) : rng_scale(1);
    }
    uint64_t nb = bllm_type_tensor_bytes(ty, (uint64_t)rows, (uint64_t)cols);
    void *w = malloc(nb);
    if (!w || bllm_binary_pack(d, w, nb) != BLLM_OK) {
        printf("FAIL: pack %s %dx%d: %s\n", bllm_type_name(ty), rows, cols, bllm_last_error());
        exit(1);
    }
    return w;
}

/* Activations: normal, with per-group magnitudes from 1e-3 to 1e3, some
 * all-zero groups and an outlier now and then. */
static void random_x(float *x, int n_tok, int cols)
{
    for (int t = 0; t < n_tok; t++)
        for (int g = 0; g < cols / 64; g++) {
            float *xg = x + (size_t)t * cols + 64 * g;
            int kind = rng_int(12);
            float scale = (float)pow(10.0, rng_int(7) - 3);
            for (int c = 0; c < 64; c++)
                xg[c] = kind == 0 ? 0.0f : rng_normal() * scale;
            if (kind == 1)
                xg[rng_int(64)] *= 50.0f;
        }
}

/* Per-weight term sizes of row r at column c: |mu| + |alpha| + |alpha2|,
 * and |g h| for onebit; and the value of the signed part for the LUT
 * reference. */
static double term_size(const bllm_binary_decomp *d, int r, int c)
{
    size_t gi = (size_t)r * (d->cols / 64) + (size_t)(c / 64);
    switch (d->type) {
    case BLLM_TYPE_B1: return fabs(d->alpha[r]);
    case BLLM_TYPE_ONEBIT: return fabs((double)d->g[r] * d->h[c]);
    case BLLM_TYPE_BILLM:
    case BLLM_TYPE_STBLLM: { /* the scales of the column's kind (salient or not) */
        const int ns = bllm_blk_scales(d->type);
        const int mu1 = d->type == BLLM_TYPE_BILLM ? BLLM_BILLM_MU_1 : BLLM_STBLLM_MU_1;
        const float *sc = d->bscale + ((size_t)r * bllm_billm_blocks(d->cols) + (size_t)(c / 128)) * ns;
        if (d->mask && !d->mask[(size_t)r * d->cols + c])
            return 0.0; /* stbllm, pruned: in no plane the kernels look up */
        double sum = 0.0;
        for (int k = d->col_salient[c] ? mu1 : 0; k < (d->col_salient[c] ? ns : mu1); k++)
            sum += fabs(sc[k]);
        return sum;
    }
    default: break;
    }
    double s = fabs(d->alpha[gi]);
    if (d->alpha2)
        s += fabs(d->alpha2[gi]);
    if (d->mu)
        s += fabs(d->mu[gi]);
    return s;
}

/* The types the VNNI build runs on one-byte quantized tables
 * (bllm_binary_tq_group): the dense ones. */
static int tq_type(bllm_type ty)
{
    return ty == BLLM_TYPE_B1 || ty == BLLM_TYPE_B1G || ty == BLLM_TYPE_B1MG || ty == BLLM_TYPE_RB2G ||
           ty == BLLM_TYPE_ONEBIT || ty == BLLM_TYPE_PB8;
}

/* Kernels known to run ty on those tables: kernels/binary_avx512vnni.c's
 * (the native "avx512" set holds them where the CPU has VBMI and VNNI) and
 * any a test registers in g_tq_more (its SIMDe build). */
static const bllm_matmul_fn *g_tq_more;
static int runs_tq(const bllm_kernel_set *s, bllm_type ty)
{
    if (!tq_type(ty))
        return 0;
#if defined(__x86_64__) || defined(__i386__)
    static bllm_matmul_fn native[BLLM_TYPE_COUNT];
    if (!native[BLLM_TYPE_B1G])
        bllm_binary_avx512vnni_fill(native, BLLM_BINARY_AUTO);
    if (s->matmul[ty] == native[ty])
        return 1;
#endif
    return g_tq_more && s->matmul[ty] == g_tq_more[ty];
}

/* One token's x as the kernels see it (onebit folds h in first: x * h in
 * f32) and each 64-column group's f32 sum (the mu terms). */
static void fold_x(const bllm_binary_decomp *d, const float *xt, float *xh, float *sg)
{
    for (int c = 0; c < d->cols; c++)
        xh[c] = d->type == BLLM_TYPE_ONEBIT ? xt[c] * d->h[c] : xt[c];
    for (int g = 0; g < d->cols / 64; g++) {
        double s = 0;
        for (int c = 0; c < 64; c++)
            s += xh[64 * g + c];
        sg[g] = (float)s;
    }
}

/* One 64-column group g of row r of a tile-shaped type, both references:
 * y += its value from the signed sums s1 (s2: rb2g's second plane) at step
 * dd, the group's f32 sum sg and (N:M) the quantized sum of the kept q;
 * m += its magnitude, |dd| * (term size) * count plus the mu term, where
 * count bounds |s1| (sum |q|, or K). */
static void group_terms(const bllm_binary_decomp *d, int r, int g, double dd, long s1, long s2, long kept,
                        float sg, double count, double *y, double *m)
{
    size_t gi = (size_t)r * (d->cols / 64) + (size_t)g;
    switch (d->type) {
    case BLLM_TYPE_B1: *y += d->alpha[r] * dd * (double)s1; break;
    case BLLM_TYPE_ONEBIT: *y += d->g[r] * dd * (double)s1; break;
    case BLLM_TYPE_B1G:
    case BLLM_TYPE_PB8: *y += d->alpha[gi] * dd * (double)s1; break;
    case BLLM_TYPE_B1MG: *y += d->alpha[gi] * dd * (double)s1 + (double)d->mu[gi] * sg; break;
    case BLLM_TYPE_RB2G:
        *y += dd * ((double)d->alpha[gi] * s1 + (double)d->alpha2[gi] * s2) + (double)d->mu[gi] * sg;
        break;
    default: /* N:M: the mu term over the kept, quantized */
        *y += dd * ((double)d->alpha[gi] * s1 + (double)d->mu[gi] * kept);
        break;
    }
    double ts = d->type == BLLM_TYPE_ONEBIT ? fabs(d->g[r]) : term_size(d, r, 64 * g);
    *m += fabs(dd) * ts * count;
    if (d->mu && !d->mask)
        *m += fabs(d->mu[gi] * sg);
}

/* The quantized-table path's y_t[t][r] in double and its magnitude M_t =
 * sum over groups of |step| * (term size) * K (|sum_q T_q[s_q]| <= K, the
 * sum of the quads' largest entries); for a dense type only. */
static void tq_reference(const bllm_binary_decomp *d, const float *x, int n_tok, double *yt, double *mt)
{
    int rows = d->rows, cols = d->cols, ngrp = cols / 64;
    int8_t *tab = malloc((size_t)ngrp * 256);
    int32_t *K = malloc(sizeof(int32_t) * (size_t)ngrp);
    float *dg = malloc(sizeof(float) * ngrp), *sg = malloc(sizeof(float) * ngrp), *xh = malloc(sizeof(float) * cols);
    for (int t = 0; t < n_tok; t++) {
        fold_x(d, x + (size_t)t * cols, xh, sg);
        for (int g = 0; g < ngrp; g++)
            dg[g] = bllm_binary_tq_group(xh + 64 * g, tab + 256 * (size_t)g, &K[g]);
        for (int r = 0; r < rows; r++) {
            double y = 0, m = 0;
            for (int g = 0; g < ngrp; g++) {
                long s1 = 0, s2 = 0;
                for (int q = 0; q < 16; q++) {
                    int b1 = 0, b2 = 0;
                    for (int k = 0; k < 4; k++) {
                        size_t i = (size_t)r * cols + 64 * g + 4 * q + k;
                        b1 |= d->sign[i] << k;
                        if (d->sign2)
                            b2 |= d->sign2[i] << k;
                    }
                    s1 += tab[256 * (size_t)g + 16 * q + b1];
                    s2 += tab[256 * (size_t)g + 16 * q + b2];
                }
                group_terms(d, r, g, dg[g], s1, s2, 0, sg[g], (double)K[g], &y, &m);
            }
            yt[(size_t)t * rows + r] = y;
            mt[(size_t)t * rows + r] = m;
        }
    }
    free(tab);
    free(K);
    free(dg);
    free(sg);
    free(xh);
}

/* y_q[t][r] for the LUT path in double, and its magnitude M_q. */
static void lut_reference(const bllm_binary_decomp *d, const float *x, int n_tok, double *yq, double *mq)
{
    int rows = d->rows, cols = d->cols, ngrp = cols / 64;
    int8_t *q = malloc((size_t)cols);
    float *dg = malloc(sizeof(float) * ngrp), *sg = malloc(sizeof(float) * ngrp), *xh = malloc(sizeof(float) * cols);
    for (int t = 0; t < n_tok; t++) {
        fold_x(d, x + (size_t)t * cols, xh, sg);
        for (int g = 0; g < ngrp; g++)
            dg[g] = bllm_binary_quantize_group(xh + 64 * g, q + 64 * g);
        for (int r = 0; r < rows; r++) {
            double y = 0, m = 0;
            for (int g = 0; g < ngrp; g++) {
                long s1 = 0, s2 = 0, kept = 0, absq = 0;
                for (int c = 64 * g; c < 64 * g + 64; c++) {
                    size_t i = (size_t)r * cols + c;
                    int qc = q[c];
                    absq += abs(qc);
                    if (d->mask && !d->mask[i])
                        continue;
                    s1 += d->sign[i] ? qc : -qc;
                    if (d->sign2)
                        s2 += d->sign2[i] ? qc : -qc;
                    kept += qc;
                }
                double dd = dg[g];
                if (d->type == BLLM_TYPE_STBLLM) {
                    /* every term over q (kernels/binary_x86.h's block
                     * section): y_q = d sum_c w_c q_c with w_c the exact
                     * mu + (+-a) (salient: both pairs) of the scales; the
                     * kernels sum region and salient subsets of q exactly
                     * and scale each by one stored scale (mu1 + mu2 one
                     * f32 sum), every partial sum bounded by M_q below */
                    const float *sc = d->bscale + ((size_t)r * bllm_billm_blocks(cols) + (size_t)(g / 2)) *
                                                      BLLM_STBLLM_SCALES;
                    double yg = 0, mg = 0;
                    for (int c = 64 * g; c < 64 * g + 64; c++) {
                        size_t i = (size_t)r * cols + c;
                        if (!d->mask[i])
                            continue;
                        double s = d->sign[i] ? 1.0 : -1.0, v;
                        if (d->col_salient[c])
                            v = (double)sc[BLLM_STBLLM_MU_1] + s * sc[BLLM_STBLLM_A_1] + sc[BLLM_STBLLM_MU_2] +
                                (d->sign2[i] ? 1.0 : -1.0) * sc[BLLM_STBLLM_A_2];
                        else
                            v = (double)sc[BLLM_STBLLM_MU_R0 + 2 * d->region[i]] +
                                s * sc[BLLM_STBLLM_A_R0 + 2 * d->region[i]];
                        yg += v * q[c];
                        mg += term_size(d, r, c) * abs(q[c]);
                    }
                    y += dd * yg;
                    m += fabs(dd) * mg;
                    continue;
                }
                if (d->type == BLLM_TYPE_BILLM) { /* the formula of kernels/binary_x86.h's billm section */
                    const float *sc = d->bscale + ((size_t)r * bllm_billm_blocks(cols) + (size_t)(g / 2)) *
                                                      BLLM_BILLM_SCALES;
                    double xn = 0, xs = 0;
                    long sg = 0, mq = 0, msq = 0, s1q = 0, s2q = 0;
                    for (int c = 64 * g; c < 64 * g + 64; c++) {
                        size_t i = (size_t)r * cols + c;
                        int qc = q[c], sgn = d->sign[i] ? 1 : -1, sgn2 = d->sign2[i] ? 1 : -1;
                        if (d->col_salient[c]) {
                            xs += x[(size_t)t * cols + c];
                            s1q += sgn * qc, s2q += sgn2 * qc;
                        } else {
                            xn += x[(size_t)t * cols + c];
                            sg += sgn * qc;
                            if (d->sign2[i])
                                mq += qc, msq += sgn * qc;
                        }
                    }
                    y += (double)sc[BLLM_BILLM_MU_C] * (float)xn +
                         ((double)sc[BLLM_BILLM_MU_1] + sc[BLLM_BILLM_MU_2]) * (float)xs +
                         dd * (((double)sc[BLLM_BILLM_MU_S] - sc[BLLM_BILLM_MU_C]) * mq + sc[BLLM_BILLM_A_C] * sg +
                               ((double)sc[BLLM_BILLM_A_S] - sc[BLLM_BILLM_A_C]) * msq + sc[BLLM_BILLM_A_1] * s1q +
                               sc[BLLM_BILLM_A_2] * s2q);
                    double ts = 0;
                    for (int c = 64 * g; c < 64 * g + 64; c++)
                        ts = fmax(ts, term_size(d, r, c));
                    m += fabs(dd) * ts * 2.0 * (double)absq + fabs(sc[BLLM_BILLM_MU_C] * xn) +
                         fabs((sc[BLLM_BILLM_MU_1] + sc[BLLM_BILLM_MU_2]) * xs);
                    continue;
                }
                group_terms(d, r, g, dd, s1, s2, kept, sg[g], (double)absq, &y, &m);
            }
            yq[(size_t)t * rows + r] = y;
            mq[(size_t)t * rows + r] = m;
        }
    }
    free(q);
    free(dg);
    free(sg);
    free(xh);
}

/* Overwrites count random bytes of a block-type tensor's bit planes (never
 * its scales or salient flags) with random values: for stbllm, bits the
 * packer never writes (a sign where pruned, B without A in a salient
 * column), which every kernel must read as the reference decoder does. */
static void corrupt_block_planes(bllm_type ty, uint8_t *w, int rows, int cols, int count)
{
    const size_t trb = bllm_blk_tile_row_bytes(ty, cols), bb = bllm_blk_block_bytes(ty, 2);
    const size_t hb = bllm_blk_half_bytes(ty);
    for (int k = 0; k < count; k++) {
        int tr = rng_int(rows / 32), b = rng_int(bllm_billm_blocks(cols));
        int h = rng_int(bllm_billm_halves(cols, b));
        w[(size_t)tr * trb + (size_t)b * bb + hb * (size_t)h + (size_t)rng_int((int)hb)] = (uint8_t)rng_int(256);
    }
}

static const uint32_t SENTINEL = 0x7fc0beefu;
static void fill_sentinel(float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        memcpy(&y[i], &SENTINEL, 4);
}
static int is_sentinel(const float *v) { return memcmp(v, &SENTINEL, 4) == 0; }

typedef struct {
    const bllm_kernel_set *set;
    int lut; /* checked as the LUT path (1: int8 x, 2: quantized tables; else as FLOAT) */
} tested;

typedef struct {
    double max_err, rms_num, rms_den;
    int bad;
} stats;

static void check_case(const tested *ts, bllm_type ty, int rows, int cols, int n_tok, int r0, int r1,
                       const void *w, const float *x, const float *yref,
                       const double *yq, const double *mq, const double *mf, stats *st)
{
    size_t ny = (size_t)n_tok * rows;
    float *y = malloc((ny + 1) * sizeof *y);
    fill_sentinel(y, ny + 1);
    ts->set->matmul[ty](y, x, w, n_tok, cols, rows, r0, r1);
    for (int t = 0; t < n_tok; t++)
        for (int r = 0; r < rows; r++) {
            size_t i = (size_t)t * rows + r;
            if (r < r0 || r >= r1) {
                if (!is_sentinel(&y[i])) {
                    if (st->bad++ < 3)
                        printf("  FAIL %s %s: wrote y[%d][%d] outside rows [%d,%d)\n", ts->set->name,
                               bllm_type_name(ty), t, r, r0, r1);
                }
                continue;
            }
            double e;
            if (ts->lut) {
                e = fabs(y[i] - yq[i]) / (mq[i] + 1e-30);
                if (!(e <= 2e-6) && !(mq[i] == 0 && y[i] == 0)) {
                    if (st->bad++ < 3)
                        printf("  FAIL %s %s %dx%d n_tok=%d: y[%d][%d] = %.9g, %s reference %.9g "
                               "(magnitude %.3g)\n",
                               ts->set->name, bllm_type_name(ty), rows, cols, n_tok, t, r, y[i],
                               ts->lut == 2 ? "quantized-table" : "int8", yq[i], mq[i]);
                }
                double ef = y[i] - yref[i];
                st->rms_num += ef * ef;
                st->rms_den += (double)yref[i] * yref[i];
            } else {
                e = fabs(y[i] - yref[i]) / (mf[i] + 1e-30);
                if (!(e <= 1e-5)) {
                    if (st->bad++ < 3)
                        printf("  FAIL %s %s %dx%d n_tok=%d: y[%d][%d] = %.9g, scalar %.9g (magnitude %.3g)\n",
                               ts->set->name, bllm_type_name(ty), rows, cols, n_tok, t, r, y[i], yref[i], mf[i]);
                }
            }
            if (e > st->max_err)
                st->max_err = e;
        }
    if (!is_sentinel(&y[ny]) && st->bad++ < 3)
        printf("  FAIL %s %s: wrote past the end of y\n", ts->set->name, bllm_type_name(ty));
    free(y);
}

#endif
