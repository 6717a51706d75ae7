/* The SIMD matmuls of the packed binary types against the scalar reference
 * (kernels/binary_scalar.c), for every type, every x86 kernel set this CPU
 * runs, on random decompositions packed by runtime/format/binary.c: rows 32..352,
 * cols 64..1216, n_tok 1..17, row sub-ranges in steps of 32. Batches of
 * BLLM_BLK_GEMM_MIN_TOK or more tokens of billm and stbllm take the f32
 * path in every x86 set and are checked as FLOAT.
 *
 * FLOAT path ("avx2-float"): f32 sums in another order, so
 *   |y - y_scalar| <= 1e-5 * M,  M = sum_c (|mu| + |alpha| + |alpha2|) |x_c|
 * (for onebit |g h_c|), the size of the decomposition's terms: an f32 sum of
 * n <= 1216 terms regrouped differs by at most ~2 n 2^-24 of it, and far
 * less typically; a wrong sign costs 2 |alpha x_c| / M ~ 1 / cols, 100x more.
 * LUT path ("avx2-lut", and "avx512" where the CPU has it): the integer
 * part is exact, so it is checked against a reference that quantizes x the
 * same way (kernels/binary_simd.h) and sums the integer products exactly:
 *   |y - y_q| <= 2e-6 * M_q,  M_q = the same magnitude over d * q
 * which covers the f32 rounding of the per-group scaling (< 25 roundings),
 * while one table entry off by 1 moves y by d |alpha| >= M_q / (64 * 127 *
 * groups) ~ 6e-6 M_q at 1216 columns, a sign flip by far more. Its error
 * against the float reference (the cost of int8 activations) is printed
 * and bounded loosely (relative RMS < 3%: 1.2-1.8% per type over 40 random
 * shapes, whose activation groups hold x50 outliers now and then).
 * The VNNI build's dense types (the native "avx512" set where the CPU has
 * VBMI and VNNI: runs_tq) look up quantized tables instead: held to
 * tq_reference (the same sums over bllm_binary_tq_group's int8 entries)
 * with the same tolerance over M_t = sum over groups of |step| |alpha| K
 * (0.75-0.90% RMS against the float reference).
 * billm and stbllm: M and M_q take for each column the |mu| + |alpha| of
 * its kind (salient: both pairs; the rest: every group's or region's), and
 * stbllm 0 for a pruned weight, which no looked-up plane holds. stbllm's
 * LUT path puts its mu terms through the tables too (kernels/binary_x86.h):
 * y_q is then d sum_c w_c q_c over the exact weight values, and its kernel
 * scales exact integer sums (per region R_k and 2 RS_k - R_k, per salient
 * part K, 2 L(A & S) - K, 2 L(A & B) - K) by the stored scales, so each
 * partial sum of a group is at most its share M_q,g = |d| sum_c ts_c |q_c|.
 * Per group that is at most 10 roundings relative to M_q,g (9 products or
 * FMAs, mu1 + mu2) and one relative to the running sum (<= M_q): at 19
 * groups <= (10 + 19) 2^-24 M_q = 1.7e-6 M_q, inside 2e-6. (The equal
 * form with coefficients mu_k - alpha_k, mu2 - alpha2 - c0 - c1, ... would
 * need a bound several times looser: its coefficients and partial sums
 * reach several times the scales'.) stbllm tensors with
 * random bytes in their bit planes (patterns the packer never writes) are
 * checked against their unpacked decomposition.
 * "avx2" (the measured choice per type and n_tok) is checked like the path
 * it uses. Rows outside [r0, r1) must stay untouched, and nothing past y's
 * end written. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bllm.h"
#include "kernels/binary_pop.h"
#include "kernels/binary_simd.h"
#include "kernels/kernels.h"
#include "runtime/format/binary.h"
#include "binary_checks.h"

static int failures, checks;

/* Which path an automatic set ("avx2", "avx512", "avx512-pop", the scalar
 * popcount reference) runs for ty: the float path exactly when it holds the
 * forced float set's kernel or the scalar reference. */
static int runs_lut(const bllm_kernel_set *s, bllm_type ty)
{
    const bllm_kernel_set *flt = bllm_kernels_select("avx2-float");
    return (!flt || s->matmul[ty] != flt->matmul[ty]) && s->matmul[ty] != bllm_kernels_scalar()->matmul[ty];
}

/* Batches of the block types from BLLM_BLK_GEMM_MIN_TOK tokens on run on
 * weights expanded to f32 in every x86 set (kernels/binary_x86.h): checked
 * as the FLOAT path. NEON keeps its tables (its sets say "neon"). */
static int batch_as_float(bllm_type ty, int n_tok)
{
    return bllm_type_is_block(ty) && n_tok >= BLLM_BLK_GEMM_MIN_TOK;
}

static void test_type(const tested *sets, int n_sets, bllm_type ty, int n_cases)
{
    stats st[8], sb[8]; /* sb: block types' batches, expanded to f32 (checked as FLOAT) */
    memset(st, 0, sizeof st);
    memset(sb, 0, sizeof sb);
    for (int k = 0; k < n_cases; k++) {
        /* the extremes first (a GEMV row so wide that its tables come in
         * column blocks, added into y, and outgrow L1, so row tiles go
         * three at a time: kernels/binary_x86.h), then random shapes */
        int rows = k == 0 ? 32 : k == 1 ? 352 : k == 2 ? 160 : 32 * (1 + rng_int(11));
        int cols = k == 0 ? 64 : k == 1 ? 1216 : k == 2 ? 64 * 520 : 64 * (1 + rng_int(19));
        int n_tok = k == 0 ? 1 : k == 1 ? 17 : k < 4 ? 1 : 1 + rng_int(17);
        bllm_binary_decomp d;
        void *w = random_tensor(ty, rows, cols, &d);
        float *x = malloc(sizeof(float) * (size_t)n_tok * cols);
        random_x(x, n_tok, cols);
        size_t ny = (size_t)n_tok * rows;
        float *yref = malloc(sizeof(float) * ny);
        double *yq = malloc(sizeof(double) * ny), *mq = malloc(sizeof(double) * ny);
        double *mf = malloc(sizeof(double) * ny);
        double *yt = malloc(sizeof(double) * ny), *mt = malloc(sizeof(double) * ny);
        bllm_kernels_scalar()->matmul[ty](yref, x, w, n_tok, cols, rows, 0, rows);
        lut_reference(&d, x, n_tok, yq, mq);
        if (tq_type(ty))
            tq_reference(&d, x, n_tok, yt, mt);
        for (int t = 0; t < n_tok; t++)
            for (int r = 0; r < rows; r++) {
                double m = 0;
                for (int c = 0; c < cols; c++)
                    m += term_size(&d, r, c) * fabs(x[(size_t)t * cols + c]);
                mf[(size_t)t * rows + r] = m + cols * 0x1p-149 / 1e-5;
            }
        /* full range, a random whole-tile sub-range, an empty one */
        int nt = rows / 32, a = rng_int(nt), b = a + 1 + rng_int(nt - a);
        int ranges[3][2] = {{0, rows}, {32 * a, 32 * b}, {32 * (nt / 2), 32 * (nt / 2)}};
        for (int s = 0; s < n_sets; s++) {
            tested ts = sets[s];
            if (ts.lut < 0)
                ts.lut = runs_lut(ts.set, ty);
            if (ts.lut && runs_tq(ts.set, ty))
                ts.lut = 2;
            const int batch = batch_as_float(ty, n_tok);
            if (batch)
                ts.lut = 0;
            for (int g = 0; g < 3; g++)
                check_case(&ts, ty, rows, cols, n_tok, ranges[g][0], ranges[g][1], w, x, yref,
                           ts.lut == 2 ? yt : yq, ts.lut == 2 ? mt : mq, mf, batch ? &sb[s] : &st[s]);
        }
        bllm_binary_decomp_free(&d);
        free(w);
        free(x);
        free(yref);
        free(yq);
        free(mq);
        free(mf);
        free(yt);
        free(mt);
    }
    for (int s = 0; s < n_sets; s++) {
        checks++;
        int lut = sets[s].lut < 0 ? runs_lut(sets[s].set, ty) : sets[s].lut;
        if (lut && runs_tq(sets[s].set, ty))
            printf("%-10s %-6s %2d shapes: max |y - y_tqref| / M_t %.2e (tol 2e-06); quantized tables vs "
                   "f32 reference: rel RMS %.2e %s\n",
                   sets[s].set->name, bllm_type_name(ty), n_cases, st[s].max_err,
                   sqrt(st[s].rms_num / (st[s].rms_den + 1e-300)), st[s].bad ? "FAIL" : "ok");
        else if (lut)
            printf("%-10s %-6s %2d shapes: max |y - y_int8ref| / M_q %.2e (tol 2e-06); int8 activations vs "
                   "f32 reference: rel RMS %.2e %s\n",
                   sets[s].set->name, bllm_type_name(ty), n_cases, st[s].max_err,
                   sqrt(st[s].rms_num / (st[s].rms_den + 1e-300)), st[s].bad ? "FAIL" : "ok");
        else
            printf("%-10s %-6s %2d shapes: max |y - y_scalar| / M %.2e (tol 1e-05) %s\n", sets[s].set->name,
                   bllm_type_name(ty), n_cases, st[s].max_err, st[s].bad ? "FAIL" : "ok");
        if (lut && !(st[s].rms_num <= 9e-4 * st[s].rms_den)) {
            printf("  FAIL %s %s: int8 activation error above 3%% RMS\n", sets[s].set->name, bllm_type_name(ty));
            st[s].bad++;
        }
        if (st[s].bad)
            failures++;
        if (bllm_type_is_block(ty)) {
            checks++;
            printf("%-10s %-6s batches of >= %d tokens (f32 tiles): max |y - y_scalar| / M %.2e (tol 1e-05) %s\n",
                   sets[s].set->name, bllm_type_name(ty), BLLM_BLK_GEMM_MIN_TOK, sb[s].max_err,
                   sb[s].bad ? "FAIL" : "ok");
            failures += sb[s].bad != 0;
        }
    }
}

/* Rows not in whole tiles go to the scalar reference of the set's path
 * (the popcount sets: the scalar popcount reference): identical output. */
static void test_ragged(const tested *sets, int n_sets)
{
    bllm_binary_decomp d;
    int rows = 96, cols = 192, n_tok = 3;
    void *w = random_tensor(BLLM_TYPE_B1MG, rows, cols, &d);
    float x[3 * 192], y0[3 * 96], y1[3 * 96];
    random_x(x, n_tok, cols);
    for (int s = 0; s < n_sets; s++) {
        memset(y0, 0, sizeof y0);
        memset(y1, 0, sizeof y1);
        const int pop = strstr(sets[s].set->name, "-pop") != NULL;
        (pop ? bllm_matmul_b1mg_pop_scalar : bllm_kernels_scalar()->matmul[BLLM_TYPE_B1MG])(y0, x, w, n_tok, cols,
                                                                                            rows, 5, 71);
        sets[s].set->matmul[BLLM_TYPE_B1MG](y1, x, w, n_tok, cols, rows, 5, 71);
        checks++;
        int ok = memcmp(y0, y1, sizeof y0) == 0;
        printf("%-10s b1mg rows [5,71) (not whole tiles): %s %s, %s\n", sets[s].set->name,
               ok ? "same as" : "differs from", pop ? "scalar-pop" : "scalar", ok ? "ok" : "FAIL");
        failures += !ok;
    }
    bllm_binary_decomp_free(&d);
    free(w);
}

/* Every set on a tensor w whose expected values come from its unpacked
 * decomposition dc (a damaged file: the reference reads some matrix from
 * any bytes, and the SIMD decoders must read the same one), GEMV and GEMM,
 * all rows. what: printed after the type. */
static void check_unpacked(const tested *sets, int n_sets, bllm_type ty, const void *w,
                           const bllm_binary_decomp *dc, int n_tok, const char *what)
{
    const int rows = dc->rows, cols = dc->cols;
    float *x = malloc(sizeof(float) * (size_t)n_tok * cols);
    random_x(x, n_tok, cols);
    size_t ny = (size_t)n_tok * rows;
    float *yref = malloc(sizeof(float) * ny);
    double *yq = malloc(sizeof(double) * ny), *mq = malloc(sizeof(double) * ny), *mf = malloc(sizeof(double) * ny);
    bllm_kernels_scalar()->matmul[ty](yref, x, w, n_tok, cols, rows, 0, rows);
    lut_reference(dc, x, n_tok, yq, mq);
    for (int t = 0; t < n_tok; t++)
        for (int r = 0; r < rows; r++) {
            double m = 0;
            for (int c = 0; c < cols; c++)
                m += term_size(dc, r, c) * fabs(x[(size_t)t * cols + c]);
            mf[(size_t)t * rows + r] = m + cols * 0x1p-149 / 1e-5;
        }
    for (int s = 0; s < n_sets; s++) {
        tested ts = sets[s];
        if (ts.lut < 0)
            ts.lut = runs_lut(ts.set, ty);
        stats st;
        memset(&st, 0, sizeof st);
        for (int n = 1; n <= n_tok; n += 2) { /* GEMV and GEMM decoders */
            tested tn = ts;
            if (batch_as_float(ty, n))
                tn.lut = 0;
            check_case(&tn, ty, rows, cols, n, 0, rows, w, x, yref, yq, mq, mf, &st);
        }
        checks++;
        printf("%-10s %-6s %s: max error %.2e %s\n", ts.set->name, bllm_type_name(ty), what, st.max_err,
               st.bad ? "FAIL" : "ok");
        failures += st.bad != 0;
    }
    free(x);
    free(yref);
    free(yq);
    free(mq);
    free(mf);
}

/* N:M tiles whose masks keep other than N of M (a corrupt file: here whole
 * groups set to all ones): the reference reads the i-th kept column of a
 * row with kept-sign bit i, 0 past the stored bits (docs/format.md), and
 * the SIMD decoders must agree. The expected values come from
 * bllm_binary_unpack of the corrupted bytes. */
static void test_invalid_masks(const tested *sets, int n_sets)
{
    /* its own draws, whatever the type tests before it drew */
    rng_state = TEST_RNG_SEED ^ 0x5bd1e995ull;
    for (int ty = BLLM_TYPE_NM24; ty <= BLLM_TYPE_NM68; ty++) {
        int N, M, B, rows = 96, cols = 256, n_tok = 3;
        bllm_nm_params((bllm_type)ty, &N, &M, &B);
        bllm_binary_decomp d, dc;
        uint8_t *w = random_tensor((bllm_type)ty, rows, cols, &d);
        uint64_t nb = bllm_type_tensor_bytes((bllm_type)ty, rows, cols);
        int cb = 64 / M * B / 8, sb = 64 / M * N / 8;
        size_t tile_bytes = 32u * (cb + sb) + 128;
        /* all ones keeps M of M: invalid for every nm type */
        for (int k = 0; k < 20; k++) {
            size_t t = (size_t)rng_int(rows / 32 * (cols / 64));
            int j = rng_int(32), f = rng_int(64 / M), bit = f * B;
            uint8_t *code = w + t * tile_bytes + (size_t)j * cb;
            for (int b = bit; b < bit + B; b++)
                code[b >> 3] |= (uint8_t)(1u << (b & 7));
        }
        if (bllm_binary_unpack((bllm_type)ty, w, nb, NULL, rows, cols, &dc) != BLLM_OK) {
            printf("FAIL: unpack of the corrupted %s: %s\n", bllm_type_name((bllm_type)ty), bllm_last_error());
            failures++;
            continue;
        }
        check_unpacked(sets, n_sets, (bllm_type)ty, w, &dc, n_tok, "with 20 invalid group masks");
        bllm_binary_decomp_free(&d);
        bllm_binary_decomp_free(&dc);
        free(w);
    }
}

/* stbllm tensors with random bytes in their bit planes: bit patterns the
 * packer never writes (a sign bit where pruned; in a salient column B or a
 * sign without A), which the reference reads as 0 and the kernels' plane
 * ANDs must too. */
static void test_block_any_bits(const tested *sets, int n_sets)
{
    rng_state = TEST_RNG_SEED ^ 0x9e3779b9ull;
    const bllm_type ty = BLLM_TYPE_STBLLM;
    const int rows = 96, cols = 320;
    bllm_binary_decomp d, dc;
    uint8_t *w = random_tensor(ty, rows, cols, &d);
    corrupt_block_planes(ty, w, rows, cols, 600);
    if (bllm_binary_unpack(ty, w, bllm_type_tensor_bytes(ty, rows, cols), NULL, rows, cols, &dc) != BLLM_OK) {
        printf("FAIL: unpack of the corrupted %s: %s\n", bllm_type_name(ty), bllm_last_error());
        failures++;
    } else {
        check_unpacked(sets, n_sets, ty, w, &dc, 2 * BLLM_BLK_GEMM_MIN_TOK + 1, "with 600 random plane bytes");
        bllm_binary_decomp_free(&dc);
    }
    bllm_binary_decomp_free(&d);
    free(w);
}

/* A NaN or inf activation makes the outputs NaN/inf in every path rather
 * than quietly finite. */
static void test_nonfinite(const tested *sets, int n_sets)
{
    bllm_binary_decomp d;
    int rows = 64, cols = 128;
    void *w = random_tensor(BLLM_TYPE_B1G, rows, cols, &d);
    float x[128], y[64];
    random_x(x, 1, cols);
    x[77] = NAN;
    for (int s = 0; s < n_sets; s++) {
        sets[s].set->matmul[BLLM_TYPE_B1G](y, x, w, 1, cols, rows, 0, rows);
        int bad = 0;
        for (int r = 0; r < rows; r++)
            bad += isfinite(y[r]);
        checks++;
        printf("%-10s b1g with a NaN activation: %d of %d outputs finite %s\n", sets[s].set->name, bad, rows,
               bad ? "FAIL" : "ok");
        failures += bad != 0;
    }
    bllm_binary_decomp_free(&d);
    free(w);
}

/* A kernel called again on the same input (the forward pass does, where a
 * thread's rows span Q, K and V) may reuse what it prepared from it
 * (kernels/binary_x86.h): results must be bit for bit those of a fresh
 * preparation, and an input changed in place, same pointer, must be
 * prepared again (and its result change), unless the caller's scope
 * promised it would not change (bllm_matmul_scope_begin). Each reference
 * call follows a call on other input, which forces a fresh preparation. */
static void test_reused_input(const tested *sets, int n_sets)
{
    static uint64_t scope_ids;
    static const bllm_type types[] = {BLLM_TYPE_B1G, BLLM_TYPE_ONEBIT, BLLM_TYPE_NM24, BLLM_TYPE_BILLM};
    const int rows = 64, cols = 256;
    float x[256], x2[256], other[256], y[64], ref[64];
    for (int k = 0; k < (int)(sizeof types / sizeof *types); k++) {
        const bllm_type ty = types[k];
        bllm_binary_decomp d1, d2;
        void *w1 = random_tensor(ty, rows, cols, &d1), *w2 = random_tensor(ty, rows, cols, &d2);
        random_x(x, 1, cols);
        random_x(other, 1, cols);
        memcpy(x2, x, sizeof x);
        x2[5] = 1000.0f * (fabsf(x[5]) + 1.0f); /* the new maximum of its group: its int8 scale moves */
        for (int s = 0; s < n_sets; s++) {
            const bllm_matmul_fn mm = sets[s].set->matmul[ty];
            int bad = 0;
            float xb[256];
            memcpy(xb, x, sizeof xb);
            mm(y, other, w1, 1, cols, rows, 0, rows);
            mm(ref, x, w2, 1, cols, rows, 0, rows); /* fresh */
            mm(y, xb, w1, 1, cols, rows, 0, rows);
            mm(y, xb, w2, 1, cols, rows, 0, rows); /* may reuse xb's preparation */
            bad += memcmp(y, ref, sizeof y) != 0;
            float before[64];
            memcpy(before, y, sizeof y);
            xb[5] = x2[5]; /* same pointer, new content */
            mm(y, xb, w2, 1, cols, rows, 32, rows);
            bad += !memcmp(y + 32, before + 32, 32 * sizeof *y); /* it must see the change */
            mm(ref, other, w1, 1, cols, rows, 0, rows);
            mm(ref, x2, w2, 1, cols, rows, 32, rows); /* fresh */
            bad += memcmp(y + 32, ref + 32, 32 * sizeof *y) != 0;
            /* Within a caller's scope the same pointer is trusted: in a
             * new scope (or none) an input changed in place is prepared
             * again; inside one the x86 SIMD sets take the promise at its
             * word and reuse what they kept (so a change goes unseen:
             * proof that the comparison was skipped). */
            memcpy(xb, x, sizeof xb);
            bllm_matmul_scope_begin(++scope_ids);
            mm(y, other, w1, 1, cols, rows, 0, rows);
            mm(y, xb, w1, 1, cols, rows, 0, rows);
            xb[5] = x2[5];
            mm(y, xb, w2, 1, cols, rows, 0, rows);
            bllm_matmul_scope_begin(++scope_ids);
            mm(y, xb, w2, 1, cols, rows, 32, rows);
            bad += memcmp(y + 32, ref + 32, 32 * sizeof *y) != 0; /* the change seen */
            xb[5] = x[5];
            bllm_matmul_scope_end();
            mm(y, xb, w2, 1, cols, rows, 32, rows);
            mm(ref, other, w1, 1, cols, rows, 0, rows);
            mm(ref, x, w2, 1, cols, rows, 0, rows); /* fresh */
            bad += memcmp(y + 32, ref + 32, 32 * sizeof *y) != 0;
            if (ty == BLLM_TYPE_B1G && strncmp(sets[s].set->name, "avx", 3) == 0) {
                bllm_matmul_scope_begin(++scope_ids);
                mm(y, other, w1, 1, cols, rows, 0, rows);
                mm(y, xb, w1, 1, cols, rows, 0, rows);
                xb[5] = x2[5];
                mm(y, xb, w2, 1, cols, rows, 0, rows);
                bad += memcmp(y, ref, sizeof y) != 0; /* x's result, not x2's */
                bllm_matmul_scope_end();
            }
            checks++;
            if (bad)
                printf("%-10s %s: a second call on the same input differs from a fresh one FAIL\n",
                       sets[s].set->name, bllm_type_name(ty));
            failures += bad != 0;
        }
        printf("%s: repeated and in-place-changed inputs against fresh calls, %d sets checked\n", bllm_type_name(ty),
               n_sets);
        bllm_binary_decomp_free(&d1);
        bllm_binary_decomp_free(&d2);
        free(w1);
        free(w2);
    }
}

/* The quantization contract itself on edge values. */
static void test_quantize(void)
{
    float x[64];
    int8_t q[64];
    for (int c = 0; c < 64; c++)
        x[c] = (float)(c - 32) * 0.25f;
    float dq = bllm_binary_quantize_group(x, q);
    int ok = dq == 8.0f / 127.0f && q[0] == -127 && q[32] == 0 && q[63] == (int8_t)nearbyintf(7.75f * (127.0f / 8.0f));
    memset(x, 0, sizeof x);
    ok = ok && bllm_binary_quantize_group(x, q) == 0.0f && q[5] == 0;
    x[3] = INFINITY;
    ok = ok && isnan(bllm_binary_quantize_group(x, q));
    checks++;
    printf("quantization contract on edge values: %s\n", ok ? "ok" : "FAIL");
    failures += !ok;
}

static void test_dispatch(void)
{
    const char *names[] = {"avx2", "avx2-lut", "avx2-float", "avx512", "avx512-pop"};
    for (int i = 0; i < 5; i++) {
        const bllm_kernel_set *s = bllm_kernels_select(names[i]);
        checks++;
        if (s && strcmp(s->name, names[i]) != 0) {
            printf("FAIL: bllm_kernels_select(\"%s\") gave set '%s'\n", names[i], s->name);
            failures++;
            continue;
        }
        if (!s)
            printf("kernel set %-10s not available here: %s\n", names[i], bllm_last_error());
        for (int t = 0; s && t < BLLM_TYPE_COUNT; t++)
            if (bllm_type_is_packed((bllm_type)t) && !s->matmul[t]) {
                printf("FAIL: set %s has no matmul for %s\n", s->name, bllm_type_name((bllm_type)t));
                failures++;
            }
    }
    printf("active kernel set: %s (BLLM_KERNELS=%s)\n", bllm_kernel_name(),
           getenv("BLLM_KERNELS") ? getenv("BLLM_KERNELS") : "(unset)");
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int n_cases = argc > 1 ? atoi(argv[1]) : 12;
    test_dispatch();
    test_quantize();

    tested sets[8];
    int n_sets = 0;
    const bllm_kernel_set *s;
    if ((s = bllm_kernels_select("avx2-lut")))
        sets[n_sets++] = (tested){s, 1};
    if ((s = bllm_kernels_select("avx2-float")))
        sets[n_sets++] = (tested){s, 0};
    if ((s = bllm_kernels_select("avx2")))
        sets[n_sets++] = (tested){s, -1}; /* checked as the path it runs */
    if ((s = bllm_kernels_select("avx512")))
        sets[n_sets++] = (tested){s, -1};
    else
        printf("skipped: CPU lacks avx512 (F, BW, VL with OS support) or it is not built: %s\n",
               bllm_last_error());
    if ((s = bllm_kernels_select("avx512-pop")))
        sets[n_sets++] = (tested){s, -1};
    else
        printf("skipped: CPU lacks avx512-pop (VPOPCNTDQ, VBMI) or it is not built: %s\n", bllm_last_error());
    if (n_sets == 0) {
        printf("skipped: no x86 SIMD kernel set runs here (%s)\n", bllm_last_error());
        return 77;
    }
    /* the popcount path's scalar reference, checked like the LUT path (its
     * SIMD kernels are held to it bit for bit in test-binary-avx512-emu) */
    bllm_kernel_set scalar_pop = *bllm_kernels_scalar();
    scalar_pop.name = "scalar-pop";
    bllm_binary_pop_fill_scalar(scalar_pop.matmul);
    sets[n_sets++] = (tested){&scalar_pop, -1};

    for (int ty = 0; ty < BLLM_TYPE_COUNT; ty++)
        if (bllm_type_is_packed((bllm_type)ty))
            test_type(sets, n_sets, (bllm_type)ty, n_cases);
    test_ragged(sets, n_sets);
    test_invalid_masks(sets, n_sets);
    test_block_any_bits(sets, n_sets);
    test_nonfinite(sets, n_sets);
    test_reused_input(sets, n_sets);

    printf("\n%d checks, %d failed (sets:", checks, failures);
    for (int i = 0; i < n_sets; i++)
        printf(" %s", sets[i].set->name);
    printf(")\n");
    return failures ? 1 : 0;
}
