/* q8, q6, q4 and q4nl (runtime/format/blockq.h, kernels/blockq.h):
 * - quantize -> dequantize: every value within half a step (d / 2) of the
 *   input (q4, q6: on the side opposite the block's largest magnitude,
 *   which stops at 7 d / 31 d, within |x| - 7 d / 31 d); q4nl: on the
 *   level nearest to it (levels as docs/format.md lists them), the largest
 *   magnitude on the first level; zero blocks zero, NaN scales refused by
 *   bllm_blockq_check;
 * - with importance (bllm_blockq_quantize_row_weighted): no block's
 *   weighted error above the unweighted rule's, and with a few heavy
 *   columns (an LLM head's input has them) the total clearly below;
 * - the scalar matmul against a double-precision sum over the same
 *   integers (the definition, decoded here from docs/format.md), to 3e-6 of the term sizes (two roundings
 *   per block term and one per addition: (nb + 2) 2^-24 <= 2.5e-6 at the
 *   40 blocks drawn);
 * - every SIMD set this CPU runs (avx2 and its variants with maddubs,
 *   avx512 with vpdpbusd where AVX-512 VNNI is there) against the scalar
 *   reference to 1e-5 of M = sum_b |d_w d_x| sum_i |q_w q_x| (the integer
 *   sums are exact in both; only the f32 summation order differs), on
 *   random shapes, token counts 1..9, row sub-ranges; rows outside the
 *   range untouched;
 * - q4 and q4nl repacked to the x16 layout: its scalar reference equal to
 *   the row-major one bit for bit, its SIMD kernels (avx512 with VNNI)
 *   against the scalar reference as above. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bllm.h"
#include "kernels/blockq.h"
#include "kernels/kernels.h"
#include "runtime/format/blockq.h"

#define TEST_RNG_SEED 0x6a09e667f3bcc909ull
#include "tests/test_rng.h"

static int failures, checks;

/* q4nl's levels as docs/format.md gives them. */
static const int q4nl_doc[16] = {-127, -102, -81, -64, -49, -35, -22, -9, 3, 16, 29, 42, 57, 73, 91, 113};

static float rnd_normal(void)
{
    double u1 = rng_unif() + 0x1p-60, u2 = rng_unif();
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static void random_rows(float *x, int n, int cols)
{
    for (int i = 0; i < n; i++)
        for (int b = 0; b < cols / 32; b++) {
            float scale = (float)pow(10.0, rng_int(5) - 2);
            int zero = rng_int(10) == 0;
            for (int c = 0; c < 32; c++)
                x[(size_t)i * cols + 32 * b + c] = zero ? 0.0f : rnd_normal() * scale;
        }
}

static void test_roundtrip(bllm_type ty)
{
    const int rows = 7, cols = 256;
    float *x = malloc(sizeof(float) * rows * cols), *z = malloc(sizeof(float) * rows * cols);
    uint8_t *q = malloc(bllm_type_tensor_bytes(ty, rows, cols));
    random_rows(x, rows, cols);
    const uint64_t rb = bllm_type_row_bytes(ty, cols);
    int bad = 0;
    for (int r = 0; r < rows; r++) {
        bllm_blockq_quantize_row(ty, x + r * cols, cols, q + r * rb);
        bllm_blockq_dequant_row(ty, q + r * rb, cols, z + r * cols);
        for (int b = 0; b < cols / 32; b++) {
            const float *xb = x + r * cols + 32 * b, *zb = z + r * cols + 32 * b;
            uint16_t h;
            memcpy(&h, q + r * rb + (size_t)b * bllm_blockq_block_bytes(ty), 2);
            float d = fabsf(bllm_f16_to_f32(h)), amax = 0.0f;
            int at = 0;
            for (int c = 0; c < 32; c++)
                if (fabsf(xb[c]) > amax)
                    amax = fabsf(xb[c]), at = c;
            if (ty == BLLM_TYPE_Q4NL) {
                const float dsigned = bllm_f16_to_f32(h);
                for (int c = 0; c < 32; c++) {
                    double near = INFINITY;
                    for (int k = 0; k < 16; k++)
                        near = fmin(near, fabs((double)dsigned * q4nl_doc[k] - xb[c]));
                    bad += !(fabs((double)zb[c] - xb[c]) <= near * (1 + 1e-6) + 1e-30);
                }
                /* the largest magnitude on the first level, to d's fp16 rounding */
                bad += !(fabs((double)zb[at] - xb[at]) <= 127.0 * d * 0x1p-11 + 1e-30);
                if (amax == 0.0f && (d != 0.0f || zb[at] != 0.0f))
                    bad++;
                continue;
            }
            for (int c = 0; c < 32; c++) {
                /* half a step, plus the fp16 rounding of d carried to the
                 * largest level (127, 32 or 8 steps of 2^-11 relative) */
                const int top = ty == BLLM_TYPE_Q8 ? 127 : ty == BLLM_TYPE_Q6 ? 32 : 8;
                double tol = 0.5 * d + top * d * 0x1p-11 + 1e-30;
                /* q4, q6: the side opposite the largest magnitude stops at
                 * 7 d / 31 d */
                if (ty != BLLM_TYPE_Q8 && fabs(xb[c]) > (top - 0.5) * d)
                    tol += fabs(xb[c]) - (top - 0.5) * d;
                if (fabs((double)zb[c] - xb[c]) > tol)
                    bad++;
            }
            if (amax == 0.0f && (d != 0.0f || zb[at] != 0.0f))
                bad++;
        }
    }
    checks++;
    printf("%s round trip: %d values off by more than their bound %s\n", bllm_type_name(ty), bad, bad ? "FAIL" : "ok");
    failures += bad != 0;
    /* a NaN scale is refused, naming where */
    uint16_t nan16 = 0x7e00;
    memcpy(q + rb + (size_t)3 * bllm_blockq_block_bytes(ty), &nan16, 2);
    bllm_status s = bllm_blockq_check(ty, q, rows, cols, "t");
    checks++;
    int ok = s == BLLM_ERR_FORMAT && strstr(bllm_last_error(), "row 1, block 3");
    printf("%s NaN scale refused: %s %s\n", bllm_type_name(ty), bllm_last_error(), ok ? "ok" : "FAIL");
    failures += !ok;
    free(x);
    free(z);
    free(q);
}

/* The definition in double over the same integers, and the size M. */
static void reference(bllm_type ty, const uint8_t *w, const float *x, int n_tok, int cols, int rows, double *yd,
                      double *m)
{
    const int nb = cols / 32, bs = bllm_blockq_block_bytes(ty);
    int8_t qx[32];
    for (int t = 0; t < n_tok; t++)
        for (int r = 0; r < rows; r++) {
            double acc = 0, mag = 0;
            for (int b = 0; b < nb; b++) {
                const uint8_t *blk = w + ((size_t)r * nb + b) * bs;
                float dx = bllm_blockq_quantize_x(x + (size_t)t * cols + 32 * b, qx);
                uint16_t h;
                memcpy(&h, blk, 2);
                float dw = bllm_f16_to_f32(h);
                long s = 0, sa = 0;
                for (int i = 0; i < 32; i++) {
                    int nib = i < 16 ? (blk[2 + i] & 15) : (blk[2 + i - 16] >> 4);
                    int top2 = (blk[18 + i % 8] >> (2 * (i / 8))) & 3; /* q6: byte i % 8, bit pair i / 8 */
                    int qw = ty == BLLM_TYPE_Q8     ? (int8_t)blk[2 + i]
                             : ty == BLLM_TYPE_Q6   ? nib + 16 * top2 - 32
                             : ty == BLLM_TYPE_Q4NL ? q4nl_doc[nib]
                                                    : nib - 8;
                    s += (long)qw * qx[i];
                    sa += labs((long)qw * qx[i]);
                }
                acc += (double)(dw * dx) * (double)s;
                mag += fabs((double)(dw * dx)) * (double)sa;
            }
            yd[(size_t)t * rows + r] = acc;
            m[(size_t)t * rows + r] = mag + 1e-30;
        }
}

/* fn on rows r0..r1 of w against the scalar reference yref, to 1e-5 of M
 * (m): the largest error into *worst, misses and writes outside the rows
 * (y holds n_tok x rows + 1 floats) into *bad. */
static void check_kernel(bllm_matmul_fn fn, const void *w, const float *x, int n_tok, int cols, int rows, int r0,
                         int r1, const float *yref, const double *m, float *y, double *worst, int *bad)
{
    const size_t ny = (size_t)n_tok * rows;
    for (size_t i = 0; i <= ny; i++)
        y[i] = -12345.0f;
    fn(y, x, w, n_tok, cols, rows, r0, r1);
    for (int t = 0; t < n_tok; t++)
        for (int r = 0; r < rows; r++) {
            size_t i = (size_t)t * rows + r;
            if (r < r0 || r >= r1) {
                *bad += y[i] != -12345.0f;
                continue;
            }
            double e = fabs(y[i] - yref[i]) / m[i];
            *worst = e > *worst ? e : *worst;
            *bad += !(e <= 1e-5);
        }
    *bad += y[ny] != -12345.0f;
}

static void test_matmul(bllm_type ty, const bllm_kernel_set *const *sets, int n_sets)
{
    double worst_ref = 0, worst[8] = {0};
    int bad[8] = {0}, bad_ref = 0;
    for (int k = 0; k < 24; k++) {
        int rows = 1 + rng_int(70), cols = 32 * (1 + rng_int(40)), n_tok = 1 + rng_int(9);
        float *wf = malloc(sizeof(float) * rows * cols), *x = malloc(sizeof(float) * n_tok * cols);
        uint8_t *w = malloc(bllm_type_tensor_bytes(ty, rows, cols));
        random_rows(wf, rows, cols);
        random_rows(x, n_tok, cols);
        for (int r = 0; r < rows; r++)
            bllm_blockq_quantize_row(ty, wf + (size_t)r * cols, cols, w + r * bllm_type_row_bytes(ty, cols));
        size_t ny = (size_t)n_tok * rows;
        double *yd = malloc(sizeof(double) * ny), *m = malloc(sizeof(double) * ny);
        float *yref = malloc(sizeof(float) * ny), *y = malloc(sizeof(float) * (ny + 1));
        reference(ty, w, x, n_tok, cols, rows, yd, m);
        bllm_kernels_scalar()->matmul[ty](yref, x, w, n_tok, cols, rows, 0, rows);
        for (size_t i = 0; i < ny; i++) {
            double e = fabs(yref[i] - yd[i]) / m[i];
            worst_ref = e > worst_ref ? e : worst_ref;
            bad_ref += !(e <= 3e-6);
        }
        int r0 = rng_int(rows), r1 = r0 + rng_int(rows - r0 + 1);
        for (int s = 0; s < n_sets; s++) {
            check_kernel(sets[s]->matmul[ty], w, x, n_tok, cols, rows, r0, r1, yref, m, y, &worst[s], &bad[s]);
        }
        free(wf);
        free(x);
        free(w);
        free(yd);
        free(m);
        free(yref);
        free(y);
    }
    checks++;
    printf("%s scalar vs the definition: max error / M %.2e (tol 3e-6) %s\n", bllm_type_name(ty), worst_ref,
           bad_ref ? "FAIL" : "ok");
    failures += bad_ref != 0;
    for (int s = 0; s < n_sets; s++) {
        checks++;
        printf("%-10s %s vs scalar: max error / M %.2e (tol 1e-5), rows outside the range untouched %s\n",
               sets[s]->name, bllm_type_name(ty), worst[s], bad[s] ? "FAIL" : "ok");
        failures += bad[s] != 0;
    }
}

/* The x16 layout (kernels/blockq.h): the repacked matrix through the
 * layout's scalar reference equals the file layout's, bit for bit (same
 * operations in the same order), and every set's x16 kernel matches the
 * scalar reference as the row-major kernels do, on row ranges of whole
 * groups. */
static void test_x16(bllm_type ty, const bllm_kernel_set *const *sets, int n_sets)
{
    double worst[8] = {0};
    int bad[8] = {0}, same_bad = 0;
    for (int k = 0; k < 24; k++) {
        const int G = BLLM_BLOCKQ_X16_ROWS;
        int rows = G * (1 + rng_int(6)), cols = 32 * (1 + rng_int(40)), n_tok = 1 + rng_int(9);
        size_t bytes = bllm_type_tensor_bytes(ty, rows, cols), ny = (size_t)n_tok * rows;
        float *wf = malloc(sizeof(float) * rows * cols), *x = malloc(sizeof(float) * n_tok * cols);
        uint8_t *w = malloc(bytes), *wx = malloc(bytes);
        random_rows(wf, rows, cols);
        random_rows(x, n_tok, cols);
        for (int r = 0; r < rows; r++)
            bllm_blockq_quantize_row(ty, wf + (size_t)r * cols, cols, w + r * bllm_type_row_bytes(ty, cols));
        bllm_blockq_repack_x16(ty, w, rows, cols, wx);
        float *yref = malloc(sizeof(float) * ny), *y = malloc(sizeof(float) * (ny + 1));
        double *yd = malloc(sizeof(double) * ny), *m = malloc(sizeof(double) * ny);
        reference(ty, w, x, n_tok, cols, rows, yd, m);
        bllm_kernels_scalar()->matmul[ty](yref, x, w, n_tok, cols, rows, 0, rows);
        (ty == BLLM_TYPE_Q4 ? bllm_matmul_q4_x16_scalar : bllm_matmul_q4nl_x16_scalar)(y, x, wx, n_tok, cols, rows,
                                                                                       0, rows);
        same_bad += memcmp(y, yref, sizeof(float) * ny) != 0;
        int r0 = G * rng_int(rows / G), r1 = r0 + G * rng_int((rows - r0) / G + 1);
        for (int s = 0; s < n_sets; s++) {
            if (!sets[s]->matmul_x16[ty])
                continue;
            check_kernel(sets[s]->matmul_x16[ty], wx, x, n_tok, cols, rows, r0, r1, yref, m, y, &worst[s], &bad[s]);
        }
        free(wf);
        free(x);
        free(w);
        free(wx);
        free(yref);
        free(y);
        free(yd);
        free(m);
    }
    checks++;
    printf("%s x16 layout, scalar: equal to the row-major scalar bit for bit %s\n", bllm_type_name(ty),
           same_bad ? "FAIL" : "ok");
    failures += same_bad != 0;
    for (int s = 0; s < n_sets; s++) {
        if (!sets[s]->matmul_x16[ty])
            continue;
        checks++;
        printf("%-10s %s x16 vs scalar: max error / M %.2e (tol 1e-5), rows outside the range untouched %s\n",
               sets[s]->name, bllm_type_name(ty), worst[s], bad[s] ? "FAIL" : "ok");
        failures += bad[s] != 0;
    }
}

/* The x16 kernels keep x's quantized activations for the next call within
 * the caller's scope (bllm_matmul_scope_begin: the row batches of one
 * shared product): in a new scope, or none, an input changed in place is
 * quantized again, bit for bit as a fresh call; within one the x86 SIMD
 * kernels take the promise at its word (a change goes unseen: proof that
 * they reused it). */
static void test_x16_scope(bllm_type ty, const bllm_kernel_set *const *sets, int n_sets)
{
    static uint64_t ids;
    const int rows = 4 * BLLM_BLOCKQ_X16_ROWS, cols = 256, half = rows / 2;
    size_t bytes = bllm_type_tensor_bytes(ty, rows, cols);
    float *wf = malloc(sizeof(float) * rows * cols), x[256], x2[256], xb[256];
    float fresh[4 * BLLM_BLOCKQ_X16_ROWS], fresh2[4 * BLLM_BLOCKQ_X16_ROWS], y[4 * BLLM_BLOCKQ_X16_ROWS];
    uint8_t *w = malloc(bytes), *wx = malloc(bytes);
    random_rows(wf, rows, cols);
    random_rows(x, 1, cols);
    for (int r = 0; r < rows; r++)
        bllm_blockq_quantize_row(ty, wf + (size_t)r * cols, cols, w + r * bllm_type_row_bytes(ty, cols));
    bllm_blockq_repack_x16(ty, w, rows, cols, wx);
    memcpy(x2, x, sizeof x);
    x2[5] = 1000.0f * (fabsf(x[5]) + 1.0f);
    for (int s = 0; s < n_sets; s++) {
        const bllm_matmul_fn f = sets[s]->matmul_x16[ty];
        if (!f)
            continue;
        int bad = 0;
        f(fresh, x, wx, 1, cols, rows, 0, rows);
        f(fresh2, x2, wx, 1, cols, rows, 0, rows);
        memcpy(xb, x, sizeof xb);
        bllm_matmul_scope_begin(++ids);
        f(y, xb, wx, 1, cols, rows, 0, half);
        f(y, xb, wx, 1, cols, rows, half, rows);
        bad += memcmp(y, fresh, sizeof y) != 0;
        xb[5] = x2[5];
        bllm_matmul_scope_begin(++ids);
        f(y, xb, wx, 1, cols, rows, 0, rows);
        bad += memcmp(y, fresh2, sizeof y) != 0;
        xb[5] = x[5];
        bllm_matmul_scope_end();
        f(y, xb, wx, 1, cols, rows, 0, rows);
        bad += memcmp(y, fresh, sizeof y) != 0;
        if (strncmp(sets[s]->name, "avx", 3) == 0) {
            bllm_matmul_scope_begin(++ids);
            f(y, xb, wx, 1, cols, rows, 0, half);
            xb[5] = x2[5];
            f(y, xb, wx, 1, cols, rows, half, rows);
            bad += memcmp(y + half, fresh + half, sizeof(float) * half) != 0; /* x's result, not x2's */
            bllm_matmul_scope_end();
        }
        checks++;
        printf("%-10s %s x16 within and across caller scopes vs fresh calls %s\n", sets[s]->name,
               bllm_type_name(ty), bad ? "FAIL" : "ok");
        failures += bad != 0;
    }
    free(wf);
    free(w);
    free(wx);
}

/* The weighted quantizer against the rule, block by block, on rows whose
 * importance has a few columns 100x the rest. */
static void test_weighted(bllm_type ty)
{
    const int rows = 16, cols = 576, nb = cols / 32;
    float *x = malloc(sizeof(float) * rows * cols), *imp = malloc(sizeof(float) * cols);
    float *z0 = malloc(sizeof(float) * cols), *z1 = malloc(sizeof(float) * cols);
    const uint64_t rb = bllm_type_row_bytes(ty, cols);
    uint8_t *q0 = malloc(rb), *q1 = malloc(rb);
    random_rows(x, rows, cols);
    for (int c = 0; c < cols; c++)
        imp[c] = (float)(0.5 + rng_unif()) * (rng_int(64) == 0 ? 100.0f : 1.0f);
    int worse = 0;
    double e0 = 0, e1 = 0;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        bllm_blockq_quantize_row(ty, xr, cols, q0);
        bllm_blockq_quantize_row_weighted(ty, xr, imp, cols, q1);
        bllm_blockq_dequant_row(ty, q0, cols, z0);
        bllm_blockq_dequant_row(ty, q1, cols, z1);
        for (int b = 0; b < nb; b++) {
            double b0 = 0, b1 = 0, scale = 0;
            for (int c = 32 * b; c < 32 * b + 32; c++) {
                b0 += imp[c] * ((double)z0[c] - xr[c]) * ((double)z0[c] - xr[c]);
                b1 += imp[c] * ((double)z1[c] - xr[c]) * ((double)z1[c] - xr[c]);
                scale += imp[c] * (double)xr[c] * xr[c];
            }
            /* the search sums in f32: a tie may land either side by its rounding */
            worse += b1 > b0 + 1e-5 * scale + 1e-30;
            e0 += b0 / (scale + 1e-30);
            e1 += b1 / (scale + 1e-30);
        }
    }
    checks++;
    const int ok = worse == 0 && e1 < 0.9 * e0;
    printf("%s weighted: %d blocks worse than the rule, relative weighted error %.3g -> %.3g %s\n",
           bllm_type_name(ty), worse, e0 / (rows * nb), e1 / (rows * nb), ok ? "ok" : "FAIL");
    failures += !ok;
    free(x);
    free(imp);
    free(z0);
    free(z1);
    free(q0);
    free(q1);
}

int main(void)
{
    const char *names[] = {"avx2", "avx2-lut", "avx2-float", "avx512", "neon"};
    const bllm_kernel_set *sets[8];
    int n_sets = 0;
    for (int i = 0; i < 5; i++) {
        const bllm_kernel_set *s = bllm_kernels_select(names[i]);
        if (s && s->matmul[BLLM_TYPE_Q8])
            sets[n_sets++] = s;
    }
    const int8_t header_levels[16] = BLLM_Q4NL_LEVELS;
    int same = 1;
    for (int k = 0; k < 16; k++)
        same &= header_levels[k] == q4nl_doc[k];
    checks++;
    printf("q4nl levels in the header as in docs/format.md %s\n", same ? "ok" : "FAIL");
    failures += !same;
    for (int t = BLLM_TYPE_Q8; t <= BLLM_TYPE_Q4NL; t++) {
        test_roundtrip((bllm_type)t);
        test_weighted((bllm_type)t);
        test_matmul((bllm_type)t, sets, n_sets);
        if (bllm_blockq_x16_fits((bllm_type)t, BLLM_BLOCKQ_X16_ROWS, 32)) {
            test_x16((bllm_type)t, sets, n_sets);
            test_x16_scope((bllm_type)t, sets, n_sets);
        }
    }
    printf("\n%d checks, %d failed (SIMD sets:", checks, failures);
    for (int s = 0; s < n_sets; s++)
        printf(" %s", sets[s]->name);
    printf(")\n");
    return failures != 0;
}
