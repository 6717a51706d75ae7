/* pb8's salient add (bllm_kernel_set.salient_matvec) in every kernel set
 * this CPU runs, on random b1g bytes with hand-built companions whose rows
 * hold 0 entries, every column, a few spread far apart (more than 4 groups
 * between neighbours), dense runs, one every 20..80 columns (8 entries
 * spanning more than 4 groups), or a random tenth or third; n_tok 1..9; full,
 * arbitrary (not whole-tile) and empty row ranges.
 *
 * The scalar reference, bllm_salient_matvec, must equal bit for bit the
 * definition written out here (d = (float)q * scale - b, then a = 0,
 * a += d * x[c] in increasing column order, y += a). Every other set must
 * compute the same products summed in another order, so
 *   |y - y_ref| <= 2 (n + 2) 2^-24 M,  M = |y_0| + sum_e |d_e x[c_e]|
 * (n = the row's entries): both sums of n + 1 terms lie within
 * (n + 1) 2^-24 M of the exact one (an f32 sum of any order, FMA or not).
 * One wrong sign moves y by 2 |alpha x_c|, about 2 M / n: far outside.
 * Rows outside [r0, r1) must keep their bits, nothing past y's end may be
 * written, and a non-finite x at a column no entry of a row names must
 * leave that row finite (padding lanes read nothing). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bllm.h"
#include "kernels/kernels.h"
#include "runtime/format/binary.h"

static int failures, checks;

#include "tests/test_rng.h"

/* A random fp16 value of varied size, sometimes negative or zero. */
static uint16_t rng_f16(void)
{
    if (rng_int(40) == 0)
        return 0;
    float v = (float)(0.01 + rng_unif()) * (float)pow(10.0, rng_int(4) - 2);
    return bllm_f32_to_f16(rng_int(5) == 0 ? -v : v);
}

/* b1g bytes: random signs, random alphas. */
static uint8_t *random_b1g(int rows, int cols)
{
    size_t nt = (size_t)rows / 32 * (cols / 64);
    uint8_t *w = malloc(nt * 320);
    for (size_t t = 0; t < nt; t++) {
        for (int i = 0; i < 256; i++)
            w[t * 320 + i] = (uint8_t)rng_next();
        for (int j = 0; j < 32; j++) {
            uint16_t a = rng_f16();
            memcpy(w + t * 320 + 256 + 2 * j, &a, 2);
        }
    }
    return w;
}

/* Row r's salient columns, by kind. */
static int pick_columns(int kind, int cols, uint8_t *sel)
{
    memset(sel, 0, (size_t)cols);
    int n = 0;
    switch (kind) {
    case 0: break; /* none */
    case 1: memset(sel, 1, (size_t)cols); n = cols; break; /* every column */
    case 2: /* a few, far apart: vectors spanning more than 4 groups */
        for (int c = rng_int(300); c < cols; c += 250 + rng_int(200))
            sel[c] = 1, n++;
        break;
    case 3: { /* a dense run */
        int a = rng_int(cols), b = a + 1 + rng_int(cols - a);
        for (int c = a; c < b; c++)
            sel[c] = 1, n++;
        break;
    }
    case 6: /* every 20 to 80 columns: vectors of 8 spanning more than 4 groups */
        for (int c = rng_int(20); c < cols; c += 20 + rng_int(60))
            sel[c] = 1, n++;
        break;
    default: /* a random tenth or so, at varied density */
        for (int c = 0; c < cols; c++)
            if (rng_int(kind == 4 ? 10 : 3) == 0) /* kinds 4 and 5 */
                sel[c] = 1, n++;
        break;
    }
    return n;
}

/* A companion (docs/format.md) with the given per-row kinds, parsed. */
static void *random_companion(int rows, int cols, const int *kind, bllm_pb8_salient *s)
{
    uint8_t *sel = malloc((size_t)rows * cols);
    uint32_t nnz = 0;
    for (int r = 0; r < rows; r++)
        nnz += (uint32_t)pick_columns(kind[r], cols, sel + (size_t)r * cols);
    uint64_t nb = bllm_pb8_salient_bytes((uint64_t)rows, nnz);
    uint8_t *b = calloc(1, nb);
    uint32_t hdr[5] = {BLLM_PB8_SALIENT_VERSION, (uint32_t)rows, (uint32_t)cols, nnz, 0};
    memcpy(b, BLLM_PB8_SALIENT_MAGIC, 4);
    memcpy(b + 4, hdr, sizeof hdr);
    uint32_t *row_ptr = (uint32_t *)(b + 24);
    uint16_t *scale = (uint16_t *)(b + 28 + 4 * (size_t)rows);
    uint16_t *col = (uint16_t *)(b + 28 + 6 * (size_t)rows);
    int8_t *val = (int8_t *)(b + 28 + 6 * (size_t)rows + 2 * (size_t)nnz);
    uint32_t e = 0;
    for (int r = 0; r < rows; r++) {
        row_ptr[r] = e;
        scale[r] = rng_f16();
        for (int c = 0; c < cols; c++)
            if (sel[(size_t)r * cols + c]) {
                col[e] = (uint16_t)c;
                val[e++] = (int8_t)(rng_int(6) == 0 ? (rng_int(2) ? 127 : -128) : (int)(rng_next() & 255) - 128);
            }
    }
    row_ptr[rows] = e;
    free(sel);
    if (bllm_pb8_salient_parse(b, nb, rows, cols, "test.salient", s) != BLLM_OK) {
        printf("FAIL: companion refused: %s\n", bllm_last_error());
        exit(1);
    }
    return b;
}

/* The definition, written out (see the header). */
static float delta(const uint8_t *w, const bllm_pb8_salient *s, int rows, int cols, int r, uint32_t e)
{
    float b = bllm_binary_weight(BLLM_TYPE_B1G, w, rows, cols, r, s->col[e]);
    return (float)s->val[e] * bllm_f16_to_f32(s->scale[r]) - b;
}

static void definition(float *y, const float *x, const uint8_t *w, const bllm_pb8_salient *s, int n_tok, int cols,
                       int rows, int r0, int r1)
{
    for (int t = 0; t < n_tok; t++)
        for (int r = r0; r < r1; r++) {
            if (s->row_ptr[r] == s->row_ptr[r + 1])
                continue;
            float a = 0.0f;
            for (uint32_t e = s->row_ptr[r]; e < s->row_ptr[r + 1]; e++) {
                float p = delta(w, s, rows, cols, r, e) * x[(size_t)t * cols + s->col[e]];
                a += p;
            }
            y[(size_t)t * rows + r] += a;
        }
}

static const uint32_t SENTINEL = 0x7fc0beefu;

typedef struct {
    double max_rel; /* max |y - y_ref| / M */
    int bad;
} stats;

/* One set, one case: y starts random inside [r0, r1), sentinel outside. */
static void check(const bllm_kernel_set *set, const uint8_t *w, const bllm_pb8_salient *s, const float *x, int n_tok,
                  int cols, int rows, int r0, int r1, stats *st)
{
    size_t ny = (size_t)n_tok * rows;
    float *y0 = malloc((ny + 1) * sizeof *y0), *y = malloc((ny + 1) * sizeof *y), *yr = malloc(ny * sizeof *yr);
    for (size_t i = 0; i <= ny; i++) {
        int r = (int)(i % (size_t)rows);
        if (i < ny && r >= r0 && r < r1)
            y0[i] = (float)(rng_unif() - 0.5) * 4.0f;
        else
            memcpy(&y0[i], &SENTINEL, 4);
    }
    memcpy(y, y0, (ny + 1) * sizeof *y);
    memcpy(yr, y0, ny * sizeof *yr);
    bllm_salient_matvec(yr, x, w, s, n_tok, cols, rows, r0, r1);
    set->salient_matvec(y, x, w, s, n_tok, cols, rows, r0, r1);
    const int exact = set == bllm_kernels_scalar();
    for (int t = 0; t < n_tok; t++)
        for (int r = 0; r < rows; r++) {
            size_t i = (size_t)t * rows + r;
            if (r < r0 || r >= r1 || exact) {
                if (memcmp(&y[i], &yr[i], 4) != 0 && st->bad++ < 3)
                    printf("  FAIL %s: y[%d][%d] = %.9g, reference %.9g (%s)\n", set->name, t, r, y[i], yr[i],
                           exact ? "must be identical" : "outside the rows, must be untouched");
                continue;
            }
            uint32_t e0 = s->row_ptr[r], e1 = s->row_ptr[r + 1];
            double m = fabs(y0[i]);
            for (uint32_t e = e0; e < e1; e++)
                m += fabs((double)delta(w, s, rows, cols, r, e) * x[(size_t)t * cols + s->col[e]]);
            double err = fabs((double)y[i] - yr[i]), tol = 2.0 * (e1 - e0 + 2) * 0x1p-24 * m + 0x1p-140;
            if (!(err <= tol) && !(isnan(y[i]) && isnan(yr[i]))) {
                if (st->bad++ < 3)
                    printf("  FAIL %s %dx%d n_tok=%d rows [%d,%d): y[%d][%d] = %.9g, reference %.9g, %u entries "
                           "(tolerance %.3g)\n",
                           set->name, rows, cols, n_tok, r0, r1, t, r, y[i], yr[i], e1 - e0, tol);
            } else if (m > 0 && err / m > st->max_rel)
                st->max_rel = err / m;
        }
    if (memcmp(&y[ny], &SENTINEL, 4) != 0 && st->bad++ < 3)
        printf("  FAIL %s: wrote past the end of y\n", set->name);
    free(y0);
    free(y);
    free(yr);
}

/* The scalar reference against the definition, bit for bit. */
static void test_reference(int n_cases)
{
    int bad = 0;
    for (int k = 0; k < n_cases; k++) {
        int rows = 32 * (1 + rng_int(4)), cols = 64 * (1 + rng_int(12)), n_tok = 1 + rng_int(20);
        int *kind = malloc(sizeof(int) * rows);
        for (int r = 0; r < rows; r++)
            kind[r] = rng_int(7);
        bllm_pb8_salient s;
        uint8_t *w = random_b1g(rows, cols);
        void *comp = random_companion(rows, cols, kind, &s);
        float *x = malloc(sizeof(float) * n_tok * cols), *y0 = malloc(sizeof(float) * n_tok * rows),
              *y1 = malloc(sizeof(float) * n_tok * rows);
        for (int i = 0; i < n_tok * cols; i++)
            x[i] = (float)(rng_unif() - 0.5);
        for (int i = 0; i < n_tok * rows; i++)
            y0[i] = y1[i] = (float)rng_unif();
        int r0 = rng_int(rows), r1 = r0 + rng_int(rows - r0 + 1);
        bllm_salient_matvec(y0, x, w, &s, n_tok, cols, rows, r0, r1);
        definition(y1, x, w, &s, n_tok, cols, rows, r0, r1);
        bad += memcmp(y0, y1, sizeof(float) * n_tok * rows) != 0;
        free(kind);
        free(w);
        free(comp);
        free(x);
        free(y0);
        free(y1);
    }
    checks++;
    printf("bllm_salient_matvec vs the definition, %d cases: %s\n", n_cases, bad ? "differs, FAIL" : "identical, ok");
    failures += bad != 0;
}

static void test_set(const bllm_kernel_set *set, int n_cases)
{
    stats st = {0, 0};
    if (!set->salient_matvec) {
        printf("FAIL: set %s has no salient_matvec\n", set->name);
        failures++;
        return;
    }
    int n_run = 0;
    for (int k = 0; k < n_cases; k++) {
        /* the extremes first: one tile of 64 columns, a wide matrix whose
         * all-salient rows exceed one 512-entry chunk */
        int rows = k == 0 ? 32 : 32 * (1 + rng_int(5));
        int cols = k == 0 ? 64 : k == 1 ? 1216 : 64 * (1 + rng_int(19));
        int *kind = malloc(sizeof(int) * rows);
        for (int r = 0; r < rows; r++)
            kind[r] = rng_int(7);
        if (rows > 32) /* one tile row without any entry */
            for (int r = 32; r < 64; r++)
                kind[r] = 0;
        bllm_pb8_salient s;
        uint8_t *w = random_b1g(rows, cols);
        void *comp = random_companion(rows, cols, kind, &s);
        float *x = malloc(sizeof(float) * 9 * cols);
        for (int i = 0; i < 9 * cols; i++)
            x[i] = (float)(rng_unif() - 0.5) * (float)pow(10.0, rng_int(5) - 2);
        for (int n_tok = 1; n_tok <= 9; n_tok++) {
            int a = rng_int(rows), b = a + 1 + rng_int(rows - a);
            int ranges[3][2] = {{0, rows}, {a, b}, {a, a}};
            for (int g = 0; g < 3; g++, n_run++)
                check(set, w, &s, x, n_tok, cols, rows, ranges[g][0], ranges[g][1], &st);
        }
        free(kind);
        free(w);
        free(comp);
        free(x);
    }
    checks++;
    printf("%-10s %d cases: max |y - y_ref| / M %.2e (tolerance 2 (n + 2) 2^-24) %s\n", set->name, n_run,
           st.max_rel, st.bad ? "FAIL" : "ok");
    failures += st.bad != 0;
}

/* x non-finite at a column a row does not name leaves the row finite; at
 * one it names, the row is NaN or inf. */
static void test_nonfinite(const bllm_kernel_set *set)
{
    int rows = 64, cols = 256, kind[64];
    for (int r = 0; r < rows; r++)
        kind[r] = 2 + r % 5; /* sparse, dense runs, random: tails of every length */
    bllm_pb8_salient s;
    uint8_t *w = random_b1g(rows, cols);
    void *comp = random_companion(rows, cols, kind, &s);
    int bad = 0;
    for (int n_tok = 1; n_tok <= 2; n_tok++)
        for (int c = 0; c < cols; c += 37) {
            float x[2 * 256], y[2 * 64];
            for (int i = 0; i < n_tok * cols; i++)
                x[i] = (float)(rng_unif() - 0.5);
            for (int t = 0; t < n_tok; t++)
                x[t * cols + c] = c % 2 ? INFINITY : NAN;
            memset(y, 0, sizeof y);
            set->salient_matvec(y, x, w, &s, n_tok, cols, rows, 0, rows);
            for (int r = 0; r < rows; r++) {
                int named = 0;
                for (uint32_t e = s.row_ptr[r]; e < s.row_ptr[r + 1]; e++)
                    named |= s.col[e] == c;
                for (int t = 0; t < n_tok; t++) {
                    int finite = isfinite(y[t * rows + r]) != 0;
                    bad += named ? finite : !finite;
                }
            }
        }
    checks++;
    printf("%-10s non-finite x: %s\n", set->name, bad ? "FAIL" : "finite exactly where no entry reads it, ok");
    failures += bad != 0;
    free(w);
    free(comp);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int n_cases = argc > 1 ? atoi(argv[1]) : 12;
    test_reference(n_cases);
    const char *names[] = {"scalar", "avx2", "avx2-lut", "avx2-float", "avx512", "neon", "neon-lut", "neon-float"};
    for (int i = 0; i < 8; i++) {
        const bllm_kernel_set *set = bllm_kernels_select(names[i]);
        if (!set) {
            printf("kernel set %-10s not available here\n", names[i]);
            continue;
        }
        test_set(set, n_cases);
        test_nonfinite(set);
    }
    if (!bllm_kernels()->salient_matvec) {
        printf("FAIL: the active set %s has no salient_matvec\n", bllm_kernel_name());
        failures++;
    }
    printf("\n%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
