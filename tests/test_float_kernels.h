/* Checks of the float kernels (f32, f16, bf16 matmuls, dot, axpy) shared
 * by tests/kernels/test_kernels.c (x86 sets) and tests/neon/test_neon.c
 * (aarch64 sets under qemu), so both hold every set to the same rules:
 *
 * An f32 sum of n products reordered (vector lanes, FMA, column blocks)
 * differs from the plain order by at most about 2*n*2^-24*sum|w||x| in the
 * worst case and by ~sqrt(n)*2^-24*sum|w||x| typically. We allow
 * TOL = 1e-5 * sum|w||x|: loose enough for every reordering of n <= 1537 on
 * random data, yet a dropped, doubled or misconverted weight costs about
 * |w_c x_c| / sum|w||x| >= 1/cols-ish, orders of magnitude above it.
 * Products landing in the f32 subnormal range lose relative precision
 * whatever the order, so each of the n products may add an absolute 2^-149.
 * Outputs outside the requested rows must stay bit-for-bit untouched.
 *
 * Header-only (static functions), included once per test program, after
 * tests/test_rng.h; it owns the program's failures and checks counters. */
#ifndef BLLM_TEST_FLOAT_KERNELS_H
#define BLLM_TEST_FLOAT_KERNELS_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bllm.h"
#include "kernels/kernels.h"
#include "tests/test_rng.h"

#define TOL 1e-5

static int failures;
static int checks;

static inline float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint32_t bits_u32(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* A weight of the given float type as stored, plus its exact f32 value:
 * mostly uniform values of varied scale, some random bit patterns so that
 * subnormals and large exponents of the 16-bit types get exercised. */
static inline float gen_weight(bllm_type ty, void *dst, size_t i)
{
    float v = rng_uniform() * (rng_int(4) == 0 ? 100.0f : 1.0f);
    if (ty == BLLM_TYPE_F32) {
        if (rng_int(20) == 0)
            v = bits_f32((uint32_t)rng_int(0x800000) | (rng_int(2) ? 0x80000000u : 0));
        ((float *)dst)[i] = v;
        return v;
    }
    uint16_t h;
    if (ty == BLLM_TYPE_F16) {
        h = bllm_f32_to_f16(v);
        if (rng_int(10) == 0) {
            do
                h = (uint16_t)rng_next();
            while ((h & 0x7c00) == 0x7c00);
        }
        ((uint16_t *)dst)[i] = h;
        return bllm_f16_to_f32(h);
    }
    h = bllm_f32_to_bf16(v);
    if (rng_int(10) == 0) {
        uint32_t e = rng_int(8) == 0 ? 0 : (uint32_t)(97 + rng_int(41));
        h = (uint16_t)((rng_next() & 0x807f) | (e << 7));
    }
    ((uint16_t *)dst)[i] = h;
    return bllm_bf16_to_f32(h);
}

static const uint32_t SENTINEL = 0x7fc0beefu; /* a NaN no kernel produces */

static inline void fill_sentinel(float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        memcpy(&y[i], &SENTINEL, 4);
}

static inline int is_sentinel(const float *v)
{
    uint32_t u;
    memcpy(&u, v, 4);
    return u == SENTINEL;
}

/* Run set on rows r0..r1 and compare with the scalar output yref and with a
 * double sum over the exact weights wf; track max errors relative to
 * sum|w||x|. */
static inline void check_float(const bllm_kernel_set *set, bllm_type ty, int n_tok, int rows, int cols,
                        int r0, int r1, const void *w, const float *wf, const float *x,
                        const float *yref, double *max_vs_scalar, double *max_vs_double, int *bad)
{
    size_t ny = (size_t)n_tok * rows;
    float *y = malloc((ny + 1) * sizeof *y);
    fill_sentinel(y, ny + 1);
    set->matmul[ty](y, x, w, n_tok, cols, rows, r0, r1);
    for (int t = 0; t < n_tok; t++) {
        for (int r = 0; r < rows; r++) {
            const float *out = &y[(size_t)t * rows + r];
            if (r < r0 || r >= r1) {
                if (!is_sentinel(out)) {
                    if (*bad < 5)
                        printf("  FAIL %s %s: wrote y[t=%d][r=%d] outside rows [%d,%d)\n",
                               set->name, bllm_type_name(ty), t, r, r0, r1);
                    (*bad)++;
                }
                continue;
            }
            double exact = 0, mag = 0;
            for (int c = 0; c < cols; c++) {
                double p = (double)wf[(size_t)r * cols + c] * x[(size_t)t * cols + c];
                exact += p;
                mag += fabs(p);
            }
            double scale = mag + (cols + 1) * 0x1p-149 / TOL;
            double e_d = fabs(*out - exact) / scale;
            double e_s = yref ? fabs(*out - yref[(size_t)t * rows + r]) / scale : 0;
            if (!(e_d <= TOL) || !(e_s <= TOL)) {
                if (*bad < 5)
                    printf("  FAIL %s %s: y[t=%d][r=%d] = %.9g, scalar %.9g, exact %.9g "
                           "(sum|wx| %.3g)\n",
                           set->name, bllm_type_name(ty), t, r, *out,
                           yref ? yref[(size_t)t * rows + r] : NAN, exact, mag);
                (*bad)++;
            }
            if (!(e_d <= *max_vs_double))
                *max_vs_double = e_d;
            if (!(e_s <= *max_vs_scalar))
                *max_vs_scalar = e_s;
        }
    }
    if (!is_sentinel(&y[ny])) {
        printf("  FAIL %s %s: wrote past the end of y\n", set->name, bllm_type_name(ty));
        (*bad)++;
    }
    free(y);
}

/* Every shape rows_list x cols_list x tok_list, for f32, f16 and bf16, on
 * the full row range, a random sub-range and an empty one; sets[0] must be
 * the scalar set (the reference). One summary line per set and type, plus
 * one per failing case. */
static inline void test_float_matmuls(const bllm_kernel_set *const *sets, int n_sets, const int *rows_list, int nr,
                               const int *cols_list, int nc, const int *tok_list, int nt)
{
    const bllm_type types[] = {BLLM_TYPE_F32, BLLM_TYPE_F16, BLLM_TYPE_BF16};

    for (int ti = 0; ti < 3; ti++) {
        bllm_type ty = types[ti];
        size_t es = ty == BLLM_TYPE_F32 ? 4 : 2;
        double mx_s[4] = {0}, mx_d[4] = {0};
        int bad[4] = {0}, cases = 0;
        for (int ri = 0; ri < nr; ri++)
            for (int ci = 0; ci < nc; ci++)
                for (int ki = 0; ki < nt; ki++) {
                    int rows = rows_list[ri], cols = cols_list[ci], n_tok = tok_list[ki];
                    /* odd cases shift the buffers by one element so rows and
                     * tokens start misaligned even where cols is a multiple
                     * of the vector width */
                    int shift = (ri + ci + ki) & 1;
                    size_t nw = (size_t)rows * cols;
                    char *wbuf = malloc((nw + 1) * es);
                    void *w = wbuf + shift * es;
                    float *wf = malloc(nw * sizeof *wf);
                    float *xbuf = malloc(((size_t)n_tok * cols + 1) * sizeof *xbuf);
                    float *x = xbuf + shift;
                    for (size_t i = 0; i < nw; i++)
                        wf[i] = gen_weight(ty, w, i);
                    for (size_t i = 0; i < (size_t)n_tok * cols; i++)
                        x[i] = rng_uniform();

                    /* full range, a random sub-range, and an empty one */
                    int ranges[3][2] = {{0, rows}, {0, 0}, {rows / 2, rows / 2}};
                    ranges[1][0] = rng_int(rows);
                    ranges[1][1] = ranges[1][0] + 1 + rng_int(rows - ranges[1][0]);

                    size_t ny = (size_t)n_tok * rows;
                    float *yref = malloc(ny * sizeof *yref);
                    int bad_before[4];
                    memcpy(bad_before, bad, sizeof bad);
                    for (int g = 0; g < 3; g++) {
                        int r0 = ranges[g][0], r1 = ranges[g][1];
                        fill_sentinel(yref, ny);
                        sets[0]->matmul[ty](yref, x, w, n_tok, cols, rows, r0, r1);
                        for (int s = 0; s < n_sets; s++)
                            check_float(sets[s], ty, n_tok, rows, cols, r0, r1, w, wf, x,
                                        s == 0 ? NULL : yref, &mx_s[s], &mx_d[s], &bad[s]);
                    }
                    for (int s = 0; s < n_sets; s++)
                        if (bad[s] != bad_before[s])
                            printf("  ^ %s %s n_tok=%d rows=%d cols=%d sub=[%d,%d)\n",
                                   sets[s]->name, bllm_type_name(ty), n_tok, rows, cols,
                                   ranges[1][0], ranges[1][1]);
                    cases++;
                    free(yref);
                    free(wbuf);
                    free(wf);
                    free(xbuf);
                }
        for (int s = 0; s < n_sets; s++) {
            checks++;
            printf("%-6s %-5s %d shapes x 3 row ranges: max err/sum|wx| vs scalar %.2e, "
                   "vs double %.2e (tol %.0e) %s\n",
                   sets[s]->name, bllm_type_name(ty), cases, mx_s[s], mx_d[s], TOL,
                   bad[s] ? "FAIL" : "ok");
            if (bad[s])
                failures++;
        }
    }
}

/* dot_f16 and axpy_f16 (f16 second operand: the KV cache) of every set,
 * against sets[0] and a double sum of the same values: the tolerances of
 * the f32 versions. */
static inline void test_dot_axpy_f16(const bllm_kernel_set *const *sets, int n_sets, const int *ns, int nns,
                                     int verbose)
{
    for (int k = 0; k < nns; k++) {
        const int n = ns[k], shift = (int)(k & 1);
        float *a = malloc((n + 2) * sizeof *a), *y0 = malloc((n + 2) * sizeof *y0);
        float *y = malloc((n + 2) * sizeof *y), *yref = malloc((n + 2) * sizeof *yref);
        uint16_t *bh = malloc((n + 2) * sizeof *bh);
        for (int i = 0; i < n + 2; i++) {
            a[i] = rng_uniform();
            bh[i] = bllm_f32_to_f16(rng_uniform() * 10);
            y0[i] = rng_uniform() * 5;
        }
        const float alpha = rng_uniform() * 3;
        double exact = 0, mag = 0;
        for (int i = 0; i < n; i++) {
            double p = (double)a[shift + i] * bllm_f16_to_f32(bh[shift + i]);
            exact += p;
            mag += fabs(p);
        }
        const double scale = mag > 0 ? mag : 1e-30;
        const float dref = sets[0]->dot_f16(a + shift, bh + shift, n);
        memcpy(yref, y0, (n + 2) * sizeof *y);
        sets[0]->axpy_f16(yref + shift, alpha, bh + shift, n);
        for (int s = 0; s < n_sets; s++) {
            int bad = 0;
            const float d = sets[s]->dot_f16(a + shift, bh + shift, n);
            const double ed = fabs(d - exact) / scale, es = fabs(d - dref) / scale;
            if (!(ed <= TOL) || !(es <= TOL) || (n == 0 && d != 0.0f))
                bad++;
            memcpy(y, y0, (n + 2) * sizeof *y);
            sets[s]->axpy_f16(y + shift, alpha, bh + shift, n);
            double ea = 0;
            for (int i = 0; i < n + 2; i++) {
                if (i < shift || i >= shift + n) {
                    bad += memcmp(&y[i], &y0[i], 4) != 0;
                    continue;
                }
                const double x = bllm_f16_to_f32(bh[i]), m = fabs(y0[i]) + fabs((double)alpha * x);
                double e = fabs(y[i] - ((double)y0[i] + (double)alpha * x)) / (m > 0 ? m : 1e-30);
                const double e2 = fabs(y[i] - yref[i]) / (m > 0 ? m : 1e-30);
                e = e2 > e ? e2 : e;
                bad += !(e <= 1e-6);
                ea = e > ea ? e : ea;
            }
            checks++;
            if (verbose || bad || k == nns - 1)
                printf("%-6s dot_f16 n=%-4d err/sum|ab|: vs scalar %.2e, vs double %.2e (tol %.0e); "
                       "axpy_f16 max rel err %.2e (tol 1e-06) %s\n",
                       sets[s]->name, n, es, ed, TOL, ea, bad ? "FAIL" : "ok");
            failures += bad != 0;
        }
        free(a);
        free(y0);
        free(y);
        free(yref);
        free(bh);
    }
}

/* dot_q8, axpy_q8 and cvt_q8_f32 (q8 blocks: the q8 KV cache) of every set
 * on lengths 32..512, against sets[0] and a double sum of the same values:
 * the f32 tolerances; cvt exact (d * q is one rounding in every set). */
static inline void test_q8_kv(const bllm_kernel_set *const *sets, int n_sets, int verbose)
{
    static const int ns[] = {32, 64, 96, 128, 256, 512};
    for (int k = 0; k < (int)(sizeof ns / sizeof *ns); k++) {
        const int n = ns[k], nb = n / 32;
        float *a = malloc(n * sizeof *a), *y0 = malloc(n * sizeof *y0), *y = malloc(n * sizeof *y);
        float *yref = malloc(n * sizeof *yref), *xf = malloc(n * sizeof *xf), *cv = malloc(n * sizeof *cv);
        uint8_t *q = malloc((size_t)nb * 34 + 1); /* + 1: unaligned blocks */
        uint8_t *b = q + (k & 1);
        for (int i = 0; i < n; i++) {
            a[i] = rng_uniform();
            y0[i] = rng_uniform() * 5;
        }
        for (int j = 0; j < nb; j++) {
            const uint16_t d = bllm_f32_to_f16(rng_uniform() * 0.1f);
            memcpy(b + 34 * j, &d, 2);
            for (int i = 0; i < 32; i++) {
                b[34 * j + 2 + i] = (uint8_t)(int8_t)(rng_int(255) - 127);
                xf[32 * j + i] = bllm_f16_to_f32(d) * (float)(int8_t)b[34 * j + 2 + i];
            }
        }
        const float alpha = rng_uniform() * 3;
        double exact = 0, mag = 0;
        for (int i = 0; i < n; i++) {
            exact += (double)a[i] * xf[i];
            mag += fabs((double)a[i] * xf[i]);
        }
        const double scale = mag > 0 ? mag : 1e-30;
        const float dref = sets[0]->dot_q8(a, b, n);
        memcpy(yref, y0, n * sizeof *y);
        sets[0]->axpy_q8(yref, alpha, b, n);
        for (int s = 0; s < n_sets; s++) {
            int bad = 0;
            const float d = sets[s]->dot_q8(a, b, n);
            const double ed = fabs(d - exact) / scale, es = fabs(d - dref) / scale;
            bad += !(ed <= TOL) || !(es <= TOL);
            memcpy(y, y0, n * sizeof *y);
            sets[s]->axpy_q8(y, alpha, b, n);
            sets[s]->cvt_q8_f32(cv, b, n);
            double ea = 0;
            for (int i = 0; i < n; i++) {
                const double m = fabs(y0[i]) + fabs((double)alpha * xf[i]);
                double e = fabs(y[i] - ((double)y0[i] + (double)alpha * xf[i])) / (m > 0 ? m : 1e-30);
                const double e2 = fabs(y[i] - yref[i]) / (m > 0 ? m : 1e-30);
                e = e2 > e ? e2 : e;
                bad += !(e <= 1e-6) + (memcmp(&cv[i], &xf[i], 4) != 0);
                ea = e > ea ? e : ea;
            }
            checks++;
            if (verbose || bad || k == 5)
                printf("%-6s dot_q8 n=%-4d err/sum|ab|: vs scalar %.2e, vs double %.2e (tol %.0e); "
                       "axpy_q8 max rel err %.2e (tol 1e-06); cvt_q8_f32 exact %s\n",
                       sets[s]->name, n, es, ed, TOL, ea, bad ? "FAIL" : "ok");
            failures += bad != 0;
        }
        free(a), free(y0), free(y), free(yref), free(xf), free(cv), free(q);
    }
}

/* cvt_f32_f16 of every set against bllm_f32_to_f16, bit for bit: every
 * 65536th f32 bit pattern (both signs, subnormals, the rounding ties,
 * overflow, inf, NaN payloads) and the exact halfway points between
 * neighbouring halves, on lengths around the vector widths. */
static inline void test_cvt_f32_f16(const bllm_kernel_set *const *sets, int n_sets)
{
    enum { N = 65536 + 2048 + 7 };
    float *x = malloc(N * sizeof *x);
    uint16_t *y = malloc(N * sizeof *y);
    for (uint32_t i = 0; i < 65536; i++)
        x[i] = bits_f32(i << 16 | (i * 2654435761u >> 16));
    for (int i = 0; i < 2048; i++) { /* halfway between half i and i + 1 (positive halves up to 0x7bff) */
        const uint32_t h = (uint32_t)rng_int(0x7bff);
        x[65536 + i] = (bllm_f16_to_f32((uint16_t)h) + bllm_f16_to_f32((uint16_t)(h + 1))) / 2 * (i & 1 ? -1 : 1);
    }
    for (int i = 65536 + 2048; i < N; i++)
        x[i] = rng_uniform() * 70000;
    for (int s = 0; s < n_sets; s++) {
        int bad = 0;
        for (int len = 0; len < 20 && !bad; len++) { /* ragged tails */
            memset(y, 0xee, (len + 1) * sizeof *y);
            sets[s]->cvt_f32_f16(y, x + 3 * len, len);
            for (int i = 0; i < len; i++)
                bad += y[i] != bllm_f32_to_f16(x[3 * len + i]);
            bad += y[len] != 0xeeee;
        }
        sets[s]->cvt_f32_f16(y, x, N);
        uint32_t first = 0;
        for (int i = 0; i < N; i++)
            if (y[i] != bllm_f32_to_f16(x[i]) && !bad++)
                first = (uint32_t)i;
        checks++;
        printf("%-6s cvt_f32_f16 %d values: %s", sets[s]->name, N, bad ? "FAIL" : "bit-exact ok");
        if (bad)
            printf(" (%d differ; first %08x -> %04x, want %04x)", bad, (unsigned)bits_u32(x[first]), y[first],
                   bllm_f32_to_f16(x[first]));
        printf("\n");
        failures += bad != 0;
    }
    free(x);
    free(y);
}

/* attend_f16 of every set that has one, on GQA-shaped cases (query rows,
 * head size, keys, cache row stride), against sets[0] and a double
 * computation of the same f16 values: each output within TOL of
 * sum_j p_j |v_j| (its softmax-weighted magnitude); the scratch used is
 * nq * n floats and nothing past the nq x hd outputs is written. Head sizes
 * not a multiple of the vector width and above 256 take the fallback. */
static inline void test_attend_f16(const bllm_kernel_set *const *sets, int n_sets, int verbose)
{
    static const int cases[][3] = {{1, 64, 1},   {8, 64, 7},  {8, 64, 16}, {8, 64, 64}, {3, 64, 100},
                                   {4, 128, 33}, {2, 72, 9},  {3, 80, 31}, {2, 16, 3},  {2, 12, 5},
                                   {5, 256, 17}, {1, 264, 3}, {9, 64, 1000}};
    const int n_cases = (int)(sizeof cases / sizeof *cases);
    for (int c = 0; c < n_cases; c++) {
        const int nq = cases[c][0], hd = cases[c][1], n = cases[c][2];
        const size_t stride = (size_t)hd * 3 + 8; /* rows of a wider cache, this head in the middle */
        float *q = malloc((size_t)nq * hd * sizeof *q), *ref = malloc((size_t)nq * hd * sizeof *ref);
        float *out = malloc(((size_t)nq * hd + 4) * sizeof *out), *sc = malloc(((size_t)nq * n + 4) * sizeof *sc);
        double *want = malloc((size_t)nq * hd * sizeof *want), *mag = malloc((size_t)nq * hd * sizeof *mag);
        double *p = malloc((size_t)n * sizeof *p);
        uint16_t *kc = malloc((size_t)n * stride * sizeof *kc), *vc = malloc((size_t)n * stride * sizeof *vc);
        for (size_t i = 0; i < (size_t)nq * hd; i++)
            q[i] = rng_uniform() * 2;
        for (size_t i = 0; i < (size_t)n * stride; i++) {
            kc[i] = bllm_f32_to_f16(rng_uniform() * 2);
            vc[i] = bllm_f32_to_f16(rng_uniform() * 3);
        }
        const uint16_t *k = kc + hd, *v = vc + hd;
        const float scale = 1.0f / sqrtf((float)hd);
        for (int g = 0; g < nq; g++) {
            double maxv = -INFINITY, sum = 0;
            for (int j = 0; j < n; j++) {
                double d = 0;
                for (int i = 0; i < hd; i++)
                    d += (double)q[(size_t)g * hd + i] * bllm_f16_to_f32(k[(size_t)j * stride + i]);
                p[j] = d * scale;
                maxv = p[j] > maxv ? p[j] : maxv;
            }
            for (int j = 0; j < n; j++)
                sum += (p[j] = exp(p[j] - maxv));
            for (int i = 0; i < hd; i++) {
                double o = 0, m = 0;
                for (int j = 0; j < n; j++) {
                    const double x = bllm_f16_to_f32(v[(size_t)j * stride + i]);
                    o += p[j] / sum * x;
                    m += p[j] / sum * fabs(x);
                }
                want[(size_t)g * hd + i] = o;
                mag[(size_t)g * hd + i] = m;
            }
        }
        sets[0]->attend_f16(ref, q, nq, hd, k, v, stride, n, scale, sc);
        for (int s = 0; s < n_sets; s++) {
            if (!sets[s]->attend_f16)
                continue;
            fill_sentinel(out + (size_t)nq * hd, 4);
            fill_sentinel(sc + (size_t)nq * n, 4);
            sets[s]->attend_f16(out, q, nq, hd, k, v, stride, n, scale, sc);
            int past = 0;
            for (int i = 0; i < 4; i++)
                past += !is_sentinel(out + (size_t)nq * hd + i) + !is_sentinel(sc + (size_t)nq * n + i);
            double es = 0, ed = 0;
            for (size_t i = 0; i < (size_t)nq * hd; i++) {
                const double m = mag[i] > 0 ? mag[i] : 1e-30;
                const double e1 = fabs(out[i] - ref[i]) / m, e2 = fabs(out[i] - want[i]) / m;
                es = e1 > es ? e1 : es;
                ed = e2 > ed ? e2 : ed;
            }
            const int bad = !(es <= TOL) || !(ed <= TOL) || past;
            checks++;
            if (verbose || bad || c == n_cases - 1)
                printf("%-6s attend_f16 nq=%d hd=%-3d n=%-4d err/sum p|v|: vs scalar %.2e, vs double %.2e "
                       "(tol %.0e)%s %s\n",
                       sets[s]->name, nq, hd, n, es, ed, TOL, past ? ", wrote past its buffers" : "",
                       bad ? "FAIL" : "ok");
            failures += bad != 0;
        }
        free(q), free(ref), free(out), free(sc), free(want), free(mag), free(p), free(kc), free(vc);
    }
}

/* dot_f32 and axpy_f32 of every set on each length in ns, against sets[0]
 * (scalar) and a double sum; verbose prints every case, else failures and
 * the last length. */
static inline void test_dot_axpy(const bllm_kernel_set *const *sets, int n_sets, const int *ns, int nns, int verbose)
{
    for (int k = 0; k < nns; k++) {
        int n = ns[k];
        int shift = (int)(k & 1);
        float *a = malloc((n + 2) * sizeof *a), *b = malloc((n + 2) * sizeof *b);
        float *y0 = malloc((n + 2) * sizeof *y0), *y = malloc((n + 2) * sizeof *y);
        float *yref = malloc((n + 2) * sizeof *yref);
        for (int i = 0; i < n + 2; i++) {
            a[i] = rng_uniform();
            b[i] = rng_uniform() * 10;
            y0[i] = rng_uniform() * 5;
        }
        float alpha = rng_uniform() * 3;
        double exact = 0, mag = 0;
        for (int i = 0; i < n; i++) {
            exact += (double)a[shift + i] * b[shift + i];
            mag += fabs((double)a[shift + i] * b[shift + i]);
        }
        double scale = mag > 0 ? mag : 1e-30;
        float dref = sets[0]->dot_f32(a + shift, b + shift, n);
        memcpy(yref, y0, (n + 2) * sizeof *y);
        sets[0]->axpy_f32(yref + shift, alpha, a + shift, n);
        for (int s = 0; s < n_sets; s++) {
            int bad = 0;
            float d = sets[s]->dot_f32(a + shift, b + shift, n);
            double ed = fabs(d - exact) / scale, es = fabs(d - dref) / scale;
            if (!(ed <= TOL) || !(es <= TOL) || (n == 0 && d != 0.0f))
                bad++;
            /* y + a*x rounded once (FMA) or twice: at most 2 ulp apart */
            memcpy(y, y0, (n + 2) * sizeof *y);
            sets[s]->axpy_f32(y + shift, alpha, a + shift, n);
            double ea = 0;
            for (int i = 0; i < n + 2; i++) {
                if (i < shift || i >= shift + n) {
                    if (memcmp(&y[i], &y0[i], 4) != 0)
                        bad++; /* touched outside [0, n) */
                    continue;
                }
                double m = fabs(y0[i]) + fabs((double)alpha * a[i]);
                double e = fabs(y[i] - ((double)y0[i] + (double)alpha * a[i])) / (m > 0 ? m : 1e-30);
                double e2 = fabs(y[i] - yref[i]) / (m > 0 ? m : 1e-30);
                if (e2 > e)
                    e = e2;
                if (!(e <= 1e-6))
                    bad++;
                if (e > ea)
                    ea = e;
            }
            checks++;
            if (verbose || bad || k == nns - 1)
                printf("%-6s dot  n=%-4d err/sum|ab|: vs scalar %.2e, vs double %.2e (tol %.0e); "
                       "axpy max rel err %.2e (tol 1e-06) %s\n",
                       sets[s]->name, n, es, ed, TOL, ea, bad ? "FAIL" : "ok");
            if (bad)
                failures++;
        }
        free(a);
        free(b);
        free(y0);
        free(y);
        free(yref);
    }
    test_dot_axpy_f16(sets, n_sets, ns, nns, verbose);
    test_q8_kv(sets, n_sets, verbose);
    test_attend_f16(sets, n_sets, verbose);
    test_cvt_f32_f16(sets, n_sets);
}

/* exp_sub_sum and swiglu of every set on each length in ns, element by
 * element against double: exp within 3e-7 relative (SLEEF's and libm's
 * expf are both within 1 ulp, 1.2e-7), swiglu within 1e-6 (an exp, an add,
 * a division and a product), the sum within TOL; nothing past n touched. */
static inline void test_exp_swiglu(const bllm_kernel_set *const *sets, int n_sets, const int *ns, int nns, int verbose)
{
    for (int k = 0; k < nns; k++) {
        const int n = ns[k];
        float *x0 = malloc((n + 1) * sizeof *x0), *x = malloc((n + 1) * sizeof *x);
        float *g0 = malloc((n + 1) * sizeof *g0), *g = malloc((n + 1) * sizeof *g), *up = malloc((n + 1) * sizeof *up);
        float max = -INFINITY;
        for (int i = 0; i < n; i++) {
            x0[i] = rng_uniform() * 25 - 20; /* scores: e^-45 .. 1 */
            max = x0[i] > max ? x0[i] : max;
            g0[i] = rng_uniform() * 20 - 10;
            up[i] = rng_uniform() * 4 - 2;
        }
        x0[n] = g0[n] = bits_f32(SENTINEL);
        if (n == 0)
            max = 0.0f;
        for (int s = 0; s < n_sets; s++) {
            int bad = 0;
            double ee = 0, es = 0, exact = 0;
            memcpy(x, x0, (n + 1) * sizeof *x);
            const float sum = sets[s]->exp_sub_sum(x, n, max);
            for (int i = 0; i < n; i++) {
                const double want = exp((double)(x0[i] - max));
                const double e = fabs(x[i] - want) / want;
                ee = e > ee ? e : ee;
                exact += want;
            }
            es = n ? fabs(sum - exact) / exact : fabs(sum);
            bad += !(ee <= 3e-7) + !(es <= TOL) + !is_sentinel(&x[n]);
            memcpy(g, g0, (n + 1) * sizeof *g);
            sets[s]->swiglu(g, up, (size_t)n);
            double eg = 0;
            for (int i = 0; i < n; i++) {
                const double want = (double)g0[i] / (1.0 + exp(-(double)g0[i])) * up[i];
                const double e = fabs(g[i] - want) / (fabs(want) > 1e-30 ? fabs(want) : 1e-30);
                eg = e > eg ? e : eg;
            }
            bad += !(eg <= 1e-6) + !is_sentinel(&g[n]);
            checks++;
            if (verbose || bad || k == nns - 1)
                printf("%-6s exp_sub_sum n=%-4d max rel err %.2e (tol 3e-07), sum %.2e (tol %.0e); "
                       "swiglu max rel err %.2e (tol 1e-06) %s\n",
                       sets[s]->name, n, ee, es, TOL, eg, bad ? "FAIL" : "ok");
            failures += bad != 0;
        }
        free(x0), free(x), free(g0), free(g), free(up);
    }
}

#endif
