/* Packed binary types, library level:
 *  - N:M pattern codes: the code is the kept mask, code <-> mask inverses,
 *    codes without exactly N bits decode to 0;
 *  - for every type and ragged valid shapes (rows 32..224, cols 64..640),
 *    random decompositions: pack -> bytes equal to the type's size, every
 *    dequantized value bit-exact to the decomposition's value, through the
 *    group decoder, the single-weight decoder and an independent decoder
 *    written here from the byte layout in docs/format.md; unpack -> pack
 *    reproduces the bytes;
 *  - the scalar matmul of every type is bit-identical to the f32 scalar
 *    matmul over the dequantized matrix (both sum w*x in increasing column
 *    order, separate multiply and add), for any 32-row split and token
 *    counts around the kernel's 16-token chunk; pb8 (b1g matmul + salient
 *    corrections) within 2e-6 * sum|w x| of the same reference, all types
 *    within that bound of a double-precision product;
 *  - refusals: bad shapes, inexact fp16 scales, bad masks, and every field
 *    of a damaged pb8 companion, each with a message naming it;
 *  - RTN binarization: the rules of runtime/format/binary.h on random weights. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "runtime/quant/rtn.h"
#include "runtime/error.h"

static int failures, checks;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        checks++;                                                               \
        if (!(cond)) {                                                          \
            failures++;                                                         \
            if (failures < 40) {                                                \
                fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);            \
                fprintf(stderr, __VA_ARGS__);                                   \
                fputc('\n', stderr);                                            \
            }                                                                   \
        }                                                                       \
    } while (0)

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static float unif(float lo, float hi) { return lo + (hi - lo) * (float)(rnd() >> 40) / (float)(1 << 24); }
static int irand(int n) { return (int)(rnd() % (uint64_t)n); }

static const bllm_type packed_types[] = {BLLM_TYPE_B1,   BLLM_TYPE_B1G,  BLLM_TYPE_B1MG,   BLLM_TYPE_RB2G,
                                         BLLM_TYPE_NM24, BLLM_TYPE_NM48, BLLM_TYPE_NM58,   BLLM_TYPE_NM68,
                                         BLLM_TYPE_ONEBIT, BLLM_TYPE_PB8,  BLLM_TYPE_BILLM, BLLM_TYPE_STBLLM};
enum { N_PACKED = sizeof packed_types / sizeof packed_types[0] };

static uint32_t binom(int n, int k)
{
    if (k < 0 || k > n)
        return 0;
    uint32_t c = 1;
    for (int i = 1; i <= k; i++)
        c = c * (uint32_t)(n - k + i) / (uint32_t)i;
    return c;
}

/* ------------------------------------------------------------ N:M codes */

static void test_nm_codes(void)
{
    CHECK(bllm_nm_mask_code(BLLM_TYPE_NM24, 0xA) == 0xA, "2:4 {1,3} must be code 0xA (the mask itself)");
    CHECK(bllm_nm_code_mask(BLLM_TYPE_NM24, 0x7) == 0 && bllm_nm_code_mask(BLLM_TYPE_NM24, 0x1) == 0,
          "2:4 codes without 2 bits set must decode to 0");
    for (int t = 0; t < N_PACKED; t++) {
        bllm_type type = packed_types[t];
        int n, m, b;
        if (!bllm_nm_params(type, &n, &m, &b))
            continue;
        CHECK(b == m, "%s: a %d-bit code for %d columns", bllm_type_name(type), b, m);
        uint32_t valid = 0;
        for (uint32_t code = 0; code < 2u << m; code++) {
            uint32_t mask = bllm_nm_code_mask(type, code);
            if (code >> m || __builtin_popcount(code) != n) {
                CHECK(mask == 0, "%s: invalid code 0x%x decodes to 0x%x", bllm_type_name(type), code, mask);
                CHECK(bllm_nm_mask_code(type, code) == -1, "%s: mask 0x%x is not a pattern", bllm_type_name(type),
                      code);
                continue;
            }
            valid++;
            CHECK(mask == code, "%s code 0x%x mask 0x%x", bllm_type_name(type), code, mask);
            CHECK(bllm_nm_mask_code(type, mask) == (int)code, "%s code 0x%x round trip", bllm_type_name(type), code);
        }
        CHECK(valid == binom(m, n), "%s: %u valid codes, C(%d, %d) = %u", bllm_type_name(type), valid, m, n,
              binom(m, n));
    }
}

/* --------------------------------------------------- random decompositions */

static float rand_fp16(float lo, float hi) { return bllm_fp16_round(unif(lo, hi)); }

static void random_decomp(bllm_binary_decomp *d)
{
    int rows = d->rows, cols = d->cols, ngrp = cols / 64;
    size_t n = (size_t)rows * cols;
    for (size_t i = 0; i < n; i++)
        d->sign[i] = (uint8_t)(rnd() & 1);
    if (d->sign2)
        for (size_t i = 0; i < n; i++)
            d->sign2[i] = (uint8_t)(rnd() & 1);
    int nn, m;
    if (bllm_nm_params(d->type, &nn, &m, NULL)) {
        for (size_t i = 0; i < n; i += (size_t)m) {
            for (int p = 0; p < m; p++)
                d->mask[i + p] = 0;
            for (int k = 0; k < nn;) {
                int p = irand(m);
                if (!d->mask[i + p])
                    d->mask[i + p] = 1, k++;
            }
        }
        for (size_t i = 0; i < n; i++)
            if (!d->mask[i])
                d->sign[i] = 0; /* pruned signs are not stored */
    }
    size_t na = d->type == BLLM_TYPE_B1 ? (size_t)rows : (size_t)rows * ngrp;
    for (size_t i = 0; d->alpha && i < na; i++)
        d->alpha[i] = rand_fp16(0.0f, 0.2f);
    for (size_t i = 0; d->alpha2 && i < (size_t)rows * ngrp; i++)
        d->alpha2[i] = rand_fp16(0.0f, 0.05f);
    for (size_t i = 0; d->mu && i < (size_t)rows * ngrp; i++)
        d->mu[i] = rand_fp16(-0.05f, 0.05f);
    for (int r = 0; d->g && r < rows; r++)
        d->g[r] = rand_fp16(0.05f, 0.5f);
    for (int c = 0; d->h && c < cols; c++)
        d->h[c] = rand_fp16(0.05f, 0.5f);
    for (int c = 0; d->col_salient && c < cols; c++)
        d->col_salient[c] = (uint8_t)(irand(6) == 0);
    for (size_t i = 0; d->bscale && i < (size_t)rows * bllm_billm_blocks(cols) * bllm_blk_scales(d->type); i++)
        d->bscale[i] = i % 2 ? rand_fp16(0.0f, 0.2f) : rand_fp16(-0.05f, 0.05f);
    if (d->region) /* stbllm: any kept share; regions and residual signs where they belong */
        for (size_t i = 0; i < n; i++) {
            int c = (int)(i % (size_t)cols);
            d->mask[i] = (uint8_t)(irand(3) != 0);
            d->region[i] = d->mask[i] && !d->col_salient[c] ? (uint8_t)irand(3) : 0;
            d->sign2[i] &= d->mask[i] & d->col_salient[c];
            d->sign[i] &= d->mask[i];
        }
    if (d->salient)
        for (int r = 0; r < rows; r++) {
            d->sal_scale[r] = rand_fp16(0.0005f, 0.01f);
            int frac = irand(4); /* 0, 1/8, 2/8, 3/8 of the row */
            for (int c = 0; c < cols; c++)
                if (irand(8) < frac) {
                    size_t i = (size_t)r * cols + c;
                    d->salient[i] = 1;
                    d->q[i] = (int8_t)(irand(256) - 128);
                }
        }
}

/* ----------------------------------- independent decoder from the docs */

static float f16at(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return bllm_f16_to_f32(h);
}

/* docs/format.md: sign of (j, cc) is bit (j/16)*4 + cc%4 of byte 16*(cc/4) + j%16 */
static int doc_sign(const uint8_t *tile, int j, int cc) { return tile[16 * (cc / 4) + j % 16] >> ((j / 16) * 4 + cc % 4) & 1; }

static int doc_stream_bits(const uint8_t *p, int bit, int nbits)
{
    int v = 0;
    for (int b = 0; b < nbits; b++, bit++)
        v |= (p[bit / 8] >> (bit % 8) & 1) << b;
    return v;
}

/* Value of (r, c) read straight from the documented layout. */
static float doc_value(bllm_type type, const uint8_t *w, const bllm_pb8_salient *sal, int rows, int cols, int r,
                       int c)
{
    size_t tiles = (size_t)(rows / 32) * (cols / 64), t = (size_t)(r / 32) * (cols / 64) + (size_t)(c / 64);
    int j = r % 32, cc = c % 64;
    switch (type) {
    case BLLM_TYPE_BILLM: {
        /* docs/format.md: per 32-row tile row, blocks of 128 columns (the
         * last 64 wide when cols % 128 == 64) of 1536 (1024) bytes: per
         * 64-column half a sign plane and a second plane, then 8 fp16
         * scales of 32 rows each (mu_c a_c mu_s a_s mu1 a1 mu2 a2); after
         * all tile rows, one bit per column, 1 = salient */
        size_t row_bytes = (size_t)(cols / 128) * 1536 + (cols % 128 ? 1024 : 0);
        int b = c / 128, h = c % 128 / 64, halves = cols - 128 * b >= 128 ? 2 : 1;
        const uint8_t *blk = w + (size_t)(r / 32) * row_bytes + (size_t)b * 1536;
        const uint8_t *flags = w + (size_t)(rows / 32) * row_bytes;
        float sc[8];
        for (int k = 0; k < 8; k++)
            sc[k] = f16at(blk + 512 * halves + 64 * k + 2 * j);
        int s1 = doc_sign(blk + 512 * h, j, cc), s2 = doc_sign(blk + 512 * h + 256, j, cc);
        if (flags[c / 8] >> (c % 8) & 1) {
            float v1 = sc[4] + (s1 ? sc[5] : -sc[5]);
            return v1 + (sc[6] + (s2 ? sc[7] : -sc[7]));
        }
        return s2 ? sc[2] + (s1 ? sc[3] : -sc[3]) : sc[0] + (s1 ? sc[1] : -sc[1]);
    }
    case BLLM_TYPE_STBLLM: {
        /* docs/format.md: as billm with three 256-byte planes per half (S, A,
         * B) and 10 scales (mu_0 a_0 mu_1 a_1 mu_2 a_2 mu1 a1 mu2 a2): 2176
         * (1408) bytes a block. Salient column: A kept, B residual sign;
         * else AB = 00 pruned, 01/10/11 region 0/1/2 */
        size_t row_bytes = (size_t)(cols / 128) * 2176 + (cols % 128 ? 1408 : 0);
        int b = c / 128, h = c % 128 / 64, halves = cols - 128 * b >= 128 ? 2 : 1;
        const uint8_t *blk = w + (size_t)(r / 32) * row_bytes + (size_t)b * 2176;
        const uint8_t *flags = w + (size_t)(rows / 32) * row_bytes;
        float sc[10];
        for (int k = 0; k < 10; k++)
            sc[k] = f16at(blk + 768 * halves + 64 * k + 2 * j);
        int s = doc_sign(blk + 768 * h, j, cc), A = doc_sign(blk + 768 * h + 256, j, cc);
        int B = doc_sign(blk + 768 * h + 512, j, cc);
        if (flags[c / 8] >> (c % 8) & 1) {
            if (!A)
                return 0.0f;
            float v1 = sc[6] + (s ? sc[7] : -sc[7]);
            return v1 + (sc[8] + (B ? sc[9] : -sc[9]));
        }
        int k = 2 * A + B - 1;
        return k < 0 ? 0.0f : sc[2 * k] + (s ? sc[2 * k + 1] : -sc[2 * k + 1]);
    }
    case BLLM_TYPE_B1: {
        const uint8_t *tile = w + 256 * t;
        float a = f16at(w + 256 * tiles + 2 * (size_t)r);
        return doc_sign(tile, j, cc) ? a : -a;
    }
    case BLLM_TYPE_PB8:
    case BLLM_TYPE_B1G: {
        for (uint32_t e = sal ? sal->row_ptr[r] : 0; sal && e < sal->row_ptr[r + 1]; e++)
            if (sal->col[e] == c)
                return (float)sal->val[e] * bllm_f16_to_f32(sal->scale[r]);
        const uint8_t *tile = w + 320 * t;
        float a = f16at(tile + 256 + 2 * j);
        return doc_sign(tile, j, cc) ? a : -a;
    }
    case BLLM_TYPE_B1MG: {
        const uint8_t *tile = w + 384 * t;
        float a = f16at(tile + 256 + 2 * j), mu = f16at(tile + 320 + 2 * j);
        return mu + (doc_sign(tile, j, cc) ? a : -a);
    }
    case BLLM_TYPE_RB2G: {
        const uint8_t *tile = w + 704 * t;
        float a1 = f16at(tile + 512 + 2 * j), a2 = f16at(tile + 576 + 2 * j), mu = f16at(tile + 640 + 2 * j);
        float base = mu + (doc_sign(tile, j, cc) ? a1 : -a1);
        return base + (doc_sign(tile + 256, j, cc) ? a2 : -a2);
    }
    case BLLM_TYPE_ONEBIT: {
        const uint8_t *tile = w + 256 * t;
        float g = f16at(w + 256 * tiles + 2 * (size_t)r), h = f16at(w + 256 * tiles + 2 * (size_t)rows + 2 * (size_t)c);
        float gh = g * h;
        return doc_sign(tile, j, cc) ? gh : -gh;
    }
    default: {
        /* docs/format.md: row j's kept mask is 8 bytes at 8 j, its kept signs
         * sb bytes at 256 + sb j; the i-th kept column of the row (counting
         * from column 0) takes sign bit i */
        int n, m;
        bllm_nm_params(type, &n, &m, NULL);
        int sb = (64 / m) * n / 8;
        const uint8_t *tile = w + (size_t)(32 * (8 + sb) + 128) * t;
        if (!doc_stream_bits(tile + 8 * j, cc, 1))
            return 0.0f;
        int idx = 0;
        for (int q = 0; q < cc; q++)
            idx += doc_stream_bits(tile + 8 * j, q, 1);
        int s = idx < 8 * sb ? doc_stream_bits(tile + 256 + j * sb, idx, 1) : 0;
        float a = f16at(tile + 32 * (8 + sb) + 2 * j), mu = f16at(tile + 32 * (8 + sb) + 64 + 2 * j);
        return mu + (s ? a : -a);
    }
    }
}

static bool same_bits(float a, float b) { return !memcmp(&a, &b, 4); }

/* --------------------------------------------------------- round trips */

static void test_round_trip(bllm_type type, int rows, int cols)
{
    const char *tn = bllm_type_name(type);
    bllm_binary_decomp d, u;
    CHECK(!bllm_binary_decomp_init(&d, type, rows, cols), "%s %dx%d init: %s", tn, rows, cols, bllm_last_error());
    random_decomp(&d);
    uint64_t nb = bllm_type_tensor_bytes(type, (uint64_t)rows, (uint64_t)cols);
    CHECK(nb > 0, "%s %dx%d has no size", tn, rows, cols);
    uint8_t *w = malloc(nb), *w2 = malloc(nb);
    CHECK(bllm_binary_pack(&d, w, nb - 1) == BLLM_ERR_ARG, "%s: a wrong byte count must be refused", tn);
    bllm_status s = bllm_binary_pack(&d, w, nb);
    CHECK(!s, "%s %dx%d pack: %s", tn, rows, cols, bllm_last_error());

    bllm_pb8_salient sal, *psal = NULL;
    void *cbuf = NULL;
    uint64_t cbytes = 0;
    if (type == BLLM_TYPE_PB8) {
        s = bllm_pb8_salient_pack(&d, &cbuf, &cbytes);
        CHECK(!s, "pb8 companion pack: %s", bllm_last_error());
        uint64_t nnz = 0;
        for (size_t i = 0; i < (size_t)rows * cols; i++)
            nnz += d.salient[i];
        CHECK(cbytes == bllm_pb8_salient_bytes((uint64_t)rows, nnz) &&
                  cbytes == 24 + 4 * ((uint64_t)rows + 1) + 2 * (uint64_t)rows + 3 * nnz,
              "pb8 companion is %llu bytes", (unsigned long long)cbytes);
        s = bllm_pb8_salient_parse(cbuf, cbytes, rows, cols, "test", &sal);
        CHECK(!s, "pb8 companion parse: %s", bllm_last_error());
        psal = &sal;
    }

    float *deq = malloc((size_t)rows * cols * sizeof(float));
    CHECK(!bllm_binary_dequantize(type, w, nb, psal, rows, cols, deq), "%s dequantize: %s", tn, bllm_last_error());
    int bad_deq = 0, bad_one = 0, bad_doc = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            float want = bllm_binary_decomp_value(&d, r, c);
            float got = deq[(size_t)r * cols + c];
            bad_deq += !same_bits(got, want);
            bool sal_here = type == BLLM_TYPE_PB8 && d.salient[(size_t)r * cols + c];
            if (!sal_here)
                bad_one += !same_bits(bllm_binary_weight(type, w, rows, cols, r, c), want);
            bad_doc += !same_bits(doc_value(type, w, psal, rows, cols, r, c), want);
        }
    CHECK(!bad_deq, "%s %dx%d: %d dequantized values differ from the decomposition", tn, rows, cols, bad_deq);
    CHECK(!bad_one, "%s %dx%d: %d single-weight decodes differ", tn, rows, cols, bad_one);
    CHECK(!bad_doc, "%s %dx%d: %d values differ from the documented layout", tn, rows, cols, bad_doc);

    /* rows r0..r1 (unaligned) agree with the whole */
    int r0 = irand(rows), r1 = r0 + 1 + irand(rows - r0);
    float *part = malloc((size_t)(r1 - r0) * cols * sizeof(float));
    bllm_binary_dequant_rows(type, w, psal, rows, cols, r0, r1, part);
    CHECK(!memcmp(part, deq + (size_t)r0 * cols, (size_t)(r1 - r0) * cols * sizeof(float)),
          "%s: rows %d..%d differ from the whole", tn, r0, r1);
    free(part);

    CHECK(!bllm_binary_unpack(type, w, nb, psal, rows, cols, &u), "%s unpack: %s", tn, bllm_last_error());
    CHECK(!bllm_binary_pack(&u, w2, nb) && !memcmp(w, w2, nb), "%s %dx%d: unpack -> pack changes the bytes", tn, rows,
          cols);
    int bad_u = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            bad_u += !same_bits(bllm_binary_decomp_value(&u, r, c), bllm_binary_decomp_value(&d, r, c));
    CHECK(!bad_u, "%s: %d unpacked values differ", tn, bad_u);
    if (type == BLLM_TYPE_PB8) {
        void *c2;
        uint64_t c2b;
        CHECK(!bllm_pb8_salient_pack(&u, &c2, &c2b) && c2b == cbytes && !memcmp(c2, cbuf, cbytes),
              "pb8: companion does not round trip");
        free(c2);
    }
    bllm_binary_decomp_free(&u);
    bllm_binary_decomp_free(&d);
    free(deq);
    free(w);
    free(w2);
    free(cbuf);
}

/* ------------------------------------------------------------- matmul */

static void test_matmul(bllm_type type, int rows, int cols, int n_tok)
{
    const char *tn = bllm_type_name(type);
    const bllm_kernel_set *ks = bllm_kernels_scalar();
    bllm_binary_decomp d;
    if (bllm_binary_decomp_init(&d, type, rows, cols)) {
        CHECK(0, "init %s", tn);
        return;
    }
    random_decomp(&d);
    uint64_t nb = bllm_type_tensor_bytes(type, (uint64_t)rows, (uint64_t)cols);
    uint8_t *w = malloc(nb);
    CHECK(!bllm_binary_pack(&d, w, nb), "%s pack: %s", tn, bllm_last_error());
    bllm_pb8_salient sal, *psal = NULL;
    void *cbuf = NULL;
    uint64_t cbytes;
    if (type == BLLM_TYPE_PB8 && !bllm_pb8_salient_pack(&d, &cbuf, &cbytes) &&
        !bllm_pb8_salient_parse(cbuf, cbytes, rows, cols, "test", &sal))
        psal = &sal;
    float *deq = malloc((size_t)rows * cols * sizeof(float));
    bllm_binary_dequantize(type, w, nb, psal, rows, cols, deq);
    float *x = malloc((size_t)n_tok * cols * sizeof(float));
    for (size_t i = 0; i < (size_t)n_tok * cols; i++)
        x[i] = unif(-1.0f, 1.0f);
    size_t ny = (size_t)n_tok * rows;
    float *y = malloc(ny * sizeof(float)), *ref = malloc(ny * sizeof(float));
    CHECK(ks->matmul[type] != NULL, "scalar set has no matmul for %s", tn);
    ks->matmul[BLLM_TYPE_F32](ref, x, deq, n_tok, cols, rows, 0, rows);
    for (size_t i = 0; i < ny; i++)
        y[i] = NAN;
    /* random 32-row split */
    for (int r0 = 0; r0 < rows;) {
        int r1 = r0 + 32 * (1 + irand(3));
        if (r1 > rows)
            r1 = rows;
        ks->matmul[type](y, x, w, n_tok, cols, rows, r0, r1);
        if (psal)
            ks->salient_matvec(y, x, w, psal, n_tok, cols, rows, r0, r1);
        r0 = r1;
    }
    double worst_ref = 0, worst_dbl = 0;
    int differ = 0;
    for (int t = 0; t < n_tok; t++)
        for (int r = 0; r < rows; r++) {
            double mag = 0, exact = 0;
            for (int c = 0; c < cols; c++) {
                double p = (double)deq[(size_t)r * cols + c] * x[(size_t)t * cols + c];
                exact += p;
                mag += fabs(p);
            }
            size_t i = (size_t)t * rows + r;
            differ += !same_bits(y[i], ref[i]);
            double e1 = fabs(y[i] - ref[i]) / (mag + 1e-30), e2 = fabs(y[i] - exact) / (mag + 1e-30);
            worst_ref = e1 > worst_ref ? e1 : worst_ref;
            worst_dbl = e2 > worst_dbl ? e2 : worst_dbl;
            if (!isfinite(y[i]))
                worst_ref = INFINITY;
        }
    if (type != BLLM_TYPE_PB8)
        CHECK(!differ, "%s %dx%d n_tok %d: %d outputs not bit-identical to the f32 matmul over the dequantized "
              "matrix (worst rel %.3g)", tn, rows, cols, n_tok, differ, worst_ref);
    CHECK(worst_ref <= 2e-6, "%s %dx%d n_tok %d: error vs f32 reference %.3g > 2e-6 of sum|w x|", tn, rows, cols,
          n_tok, worst_ref);
    CHECK(worst_dbl <= 2e-6, "%s %dx%d n_tok %d: error vs double %.3g > 2e-6 of sum|w x|", tn, rows, cols, n_tok,
          worst_dbl);
    bllm_binary_decomp_free(&d);
    free(w), free(deq), free(x), free(y), free(ref), free(cbuf);
}

/* ----------------------------------------------------------- refusals */

static bool msg_has(const char *needle) { return strstr(bllm_last_error(), needle) != NULL; }

static void test_refusals(void)
{
    bllm_binary_decomp d;
    CHECK(bllm_binary_decomp_init(&d, BLLM_TYPE_B1G, 32, 96) == BLLM_ERR_ARG && msg_has("cols % 64"),
          "96 columns accepted: %s", bllm_last_error());
    CHECK(bllm_binary_decomp_init(&d, BLLM_TYPE_B1G, 48, 64) == BLLM_ERR_ARG, "48 rows accepted");
    CHECK(bllm_binary_decomp_init(&d, BLLM_TYPE_F16, 32, 64) == BLLM_ERR_ARG, "f16 is not packed");
    for (int t = 0; t < N_PACKED; t++) {
        bllm_type type = packed_types[t];
        CHECK(!bllm_type_shape_ok(type, 32, 96) && !bllm_type_shape_ok(type, 40, 64) &&
                  bllm_type_tensor_bytes(type, 32, 96) == 0 && bllm_type_tensor_bytes(type, 16, 64) == 0 &&
                  bllm_type_shape_ok(type, 224, 640),
              "%s shape rules", bllm_type_name(type));
    }
    CHECK(!bllm_type_shape_ok(BLLM_TYPE_PB8, 32, 65536 + 64), "pb8 columns must fit u16");

    CHECK(!bllm_binary_decomp_init(&d, BLLM_TYPE_B1MG, 32, 64), "init");
    uint8_t buf[384];
    d.alpha[3] = 0.1f; /* not an fp16 value */
    CHECK(bllm_binary_pack(&d, buf, 384) == BLLM_ERR_ARG && msg_has("alpha[3]"), "inexact alpha accepted: %s",
          bllm_last_error());
    d.alpha[3] = bllm_fp16_round(0.1f);
    d.mu[5] = INFINITY;
    CHECK(bllm_binary_pack(&d, buf, 384) == BLLM_ERR_ARG && msg_has("mu[5]"), "infinite mu accepted");
    d.mu[5] = 0;
    d.sign[70] = 2;
    CHECK(bllm_binary_pack(&d, buf, 384) == BLLM_ERR_ARG && msg_has("row 1 column 6"), "sign 2 accepted: %s",
          bllm_last_error());
    bllm_binary_decomp_free(&d);

    CHECK(!bllm_binary_decomp_init(&d, BLLM_TYPE_NM24, 32, 64), "init");
    for (size_t i = 0; i < 32 * 64; i++)
        d.mask[i] = (i % 4) < 2;
    d.mask[4 * 3 + 2] = 1; /* row 0 group 3 keeps 3 */
    uint8_t nbuf[512];
    CHECK(bllm_binary_pack(&d, nbuf, 512) == BLLM_ERR_ARG && msg_has("columns 12..15 keep 3"),
          "3 kept of 4 accepted: %s", bllm_last_error());
    bllm_binary_decomp_free(&d);

    /* pb8 companion: build a valid one, then damage each field */
    int rows = 32, cols = 128;
    CHECK(!bllm_binary_decomp_init(&d, BLLM_TYPE_PB8, rows, cols), "init");
    random_decomp(&d);
    d.salient[5 * cols + 7] = d.salient[5 * cols + 9] = 1; /* row 5 holds >= 2 entries */
    void *cb;
    uint64_t n;
    CHECK(!bllm_pb8_salient_pack(&d, &cb, &n), "pack");
    bllm_pb8_salient s;
    CHECK(!bllm_pb8_salient_parse(cb, n, rows, cols, "X.salient", &s), "valid companion refused: %s",
          bllm_last_error());
    uint8_t *b = malloc(n);
    uint32_t nnz;
    memcpy(&nnz, (uint8_t *)cb + 16, 4);
    size_t rp = 24, sc = rp + 4 * (size_t)(rows + 1), co = sc + 2 * (size_t)rows;
    uint32_t r5;
    memcpy(&r5, (uint8_t *)cb + rp + 4 * 5, 4);
    struct {
        const char *what, *msg;
        size_t off;
        uint32_t val;
        int width;
        bllm_status st;
    } cases[] = {
        {"magic", "wrong magic", 0, 'Q', 1, BLLM_ERR_FORMAT},
        {"version", "version 2", 4, 2, 4, BLLM_ERR_UNSUPPORTED},
        {"rows", "33 x 128", 8, 33, 4, BLLM_ERR_FORMAT},
        {"cols", "32 x 64", 12, 64, 4, BLLM_ERR_FORMAT},
        {"nnz", "bytes", 16, nnz + 1, 4, BLLM_ERR_FORMAT},
        {"reserved", "reserved", 20, 1, 4, BLLM_ERR_FORMAT},
        {"row_ptr[0]", "row 0 starts", rp, 1, 4, BLLM_ERR_FORMAT},
        {"row_ptr decreasing", "non-decreasing", rp + 4 * 6, r5 - 1, 4, BLLM_ERR_FORMAT},
        {"row_ptr end", "entries", rp + 4 * (size_t)rows, nnz - 1, 4, BLLM_ERR_FORMAT},
        {"scale", "non-finite scale", sc + 2 * 3, 0x7c00, 2, BLLM_ERR_FORMAT},
        {"column range", "has column 128", co + 2 * (size_t)r5, 128, 2, BLLM_ERR_FORMAT},
        {"column order", "strictly increasing", co + 2 * (size_t)(r5 + 1), 0, 2, BLLM_ERR_FORMAT},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        memcpy(b, cb, n);
        memcpy(b + cases[k].off, &cases[k].val, (size_t)cases[k].width);
        bllm_status st = bllm_pb8_salient_parse(b, n, rows, cols, "X.salient", &s);
        CHECK(st == cases[k].st && msg_has(cases[k].msg) && msg_has("X.salient"),
              "damaged companion (%s): status %d, message '%s'", cases[k].what, st, bllm_last_error());
    }
    CHECK(bllm_pb8_salient_parse(cb, n - 1, rows, cols, "X.salient", &s) == BLLM_ERR_FORMAT && msg_has("bytes"),
          "short companion accepted");
    CHECK(bllm_pb8_salient_parse(cb, 10, rows, cols, "X.salient", &s) == BLLM_ERR_FORMAT, "tiny companion accepted");
    free(b);
    free(cb);
    bllm_binary_decomp_free(&d);
}

/* ---------------------------------------------------------------- RTN */

static float mean_abs(const float *w, int n, float mu)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += fabsf(w[i] - mu);
    return bllm_fp16_round((float)(s / n));
}

static void test_rtn(void)
{
    int rows = 64, cols = 192;
    float *w = malloc((size_t)rows * cols * sizeof(float));
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        w[i] = unif(-0.1f, 0.1f) + (i % 7 == 0 ? 0.05f : 0.0f);
    w[3] = 0.0f; /* sign of 0 is +1 */
    bllm_binary_decomp d;
    bllm_rtn_options o;
    bllm_rtn_options_default(&o);
    CHECK(o.salient_frac == 0.1f, "default salient fraction");

    CHECK(!bllm_binary_rtn(BLLM_TYPE_B1, w, rows, cols, &o, &d), "rtn b1");
    int bad = 0;
    for (int r = 0; r < rows; r++)
        bad += d.alpha[r] != mean_abs(w + (size_t)r * cols, cols, 0.0f);
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        bad += d.sign[i] != (w[i] >= 0.0f);
    CHECK(!bad && d.sign[3] == 1, "b1 RTN: %d mismatches", bad);
    bllm_binary_decomp_free(&d);

    CHECK(!bllm_binary_rtn(BLLM_TYPE_B1MG, w, rows, cols, &o, &d), "rtn b1mg");
    bad = 0;
    for (int r = 0; r < rows; r++)
        for (int g = 0; g < cols / 64; g++) {
            const float *wg = w + (size_t)r * cols + 64 * g;
            double s = 0;
            for (int c = 0; c < 64; c++)
                s += wg[c];
            float mu = bllm_fp16_round((float)(s / 64));
            bad += d.mu[r * (cols / 64) + g] != mu || d.alpha[r * (cols / 64) + g] != mean_abs(wg, 64, mu);
            for (int c = 0; c < 64; c++)
                bad += d.sign[(size_t)r * cols + 64 * g + c] != (wg[c] - mu >= 0.0f);
        }
    CHECK(!bad, "b1mg RTN: %d mismatches", bad);
    bllm_binary_decomp_free(&d);

    /* residual binarization lowers the error of the one-level fit */
    bllm_binary_decomp d1, d2;
    CHECK(!bllm_binary_rtn(BLLM_TYPE_B1MG, w, rows, cols, &o, &d1) && !bllm_binary_rtn(BLLM_TYPE_RB2G, w, rows, cols,
                                                                                        &o, &d2),
          "rtn rb2g");
    double e1 = 0, e2 = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            double v = w[(size_t)r * cols + c];
            e1 += pow(v - bllm_binary_decomp_value(&d1, r, c), 2);
            e2 += pow(v - bllm_binary_decomp_value(&d2, r, c), 2);
        }
    CHECK(e2 < 0.5 * e1, "rb2g error %.4g not well below b1mg's %.4g", e2, e1);
    bllm_binary_decomp_free(&d1);
    bllm_binary_decomp_free(&d2);

    for (int t = 0; t < N_PACKED; t++) {
        bllm_type type = packed_types[t];
        int n, m;
        if (!bllm_nm_params(type, &n, &m, NULL))
            continue;
        CHECK(!bllm_binary_rtn(type, w, rows, cols, &o, &d), "rtn %s", bllm_type_name(type));
        bad = 0;
        for (size_t i = 0; i < (size_t)rows * cols; i += (size_t)m) {
            /* every kept |w| >= every pruned |w| of the group */
            float min_kept = INFINITY, max_pruned = 0;
            int kept = 0;
            for (int p = 0; p < m; p++) {
                float a = fabsf(w[i + p]);
                if (d.mask[i + p])
                    kept++, min_kept = a < min_kept ? a : min_kept;
                else
                    max_pruned = a > max_pruned ? a : max_pruned;
            }
            bad += kept != n || min_kept < max_pruned;
        }
        CHECK(!bad, "%s RTN keeps the wrong weights in %d groups", bllm_type_name(type), bad);
        bllm_binary_decomp_free(&d);
    }

    CHECK(!bllm_binary_rtn(BLLM_TYPE_PB8, w, rows, cols, &o, &d), "rtn pb8");
    bad = 0;
    int k = bllm_rtn_pb8_per_row(cols, o.salient_frac);
    CHECK(k == 19, "pb8 keeps %d of 192 per row", k);
    for (int r = 0; r < rows; r++) {
        const float *wr = w + (size_t)r * cols;
        int cnt = 0;
        float min_s = INFINITY, max_n = 0, maxabs = 0;
        for (int c = 0; c < cols; c++) {
            float a = fabsf(wr[c]);
            maxabs = a > maxabs ? a : maxabs;
            if (d.salient[(size_t)r * cols + c])
                cnt++, min_s = a < min_s ? a : min_s;
            else
                max_n = a > max_n ? a : max_n;
        }
        float scale = bllm_fp16_round(maxabs / 127.0f);
        bad += cnt != k || min_s < max_n || d.sal_scale[r] != scale;
        for (int c = 0; c < cols; c++)
            if (d.salient[(size_t)r * cols + c]) {
                long q = lrintf(wr[c] / scale);
                q = q > 127 ? 127 : q < -127 ? -127 : q;
                bad += d.q[(size_t)r * cols + c] != q;
            }
    }
    CHECK(!bad, "pb8 RTN: %d mismatches", bad);
    bllm_binary_decomp_free(&d);

    /* onebit: g h^T is the rank-1 fit of |W|; on an exactly rank-1 |W| the
     * fit is exact up to fp16 rounding */
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            w[(size_t)r * cols + c] = (0.5f + (float)r / rows) * (0.2f + (float)(c % 13) / 13.0f) *
                                      (rnd() & 1 ? 1.0f : -1.0f) * 0.1f;
    CHECK(!bllm_binary_rtn(BLLM_TYPE_ONEBIT, w, rows, cols, &o, &d), "rtn onebit");
    double worst = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            double v = w[(size_t)r * cols + c], got = bllm_binary_decomp_value(&d, r, c);
            worst = fmax(worst, fabs(got - v) / fabs(v));
        }
    CHECK(worst < 2e-3, "onebit on a rank-1 |W|: worst relative error %.3g", worst);
    bllm_binary_decomp_free(&d);

    w[5] = NAN;
    CHECK(bllm_binary_rtn(BLLM_TYPE_B1G, w, rows, cols, &o, &d) == BLLM_ERR_ARG && msg_has("not finite"),
          "NaN weight accepted");
    free(w);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_nm_codes();
    static const int shapes[][2] = {{32, 64}, {64, 128}, {96, 192}, {224, 640}, {160, 320}, {32, 576}};
    for (int t = 0; t < N_PACKED; t++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            test_round_trip(packed_types[t], shapes[s][0], shapes[s][1]);
    for (int i = 0; i < 20; i++) /* ragged random shapes */
        test_round_trip(packed_types[irand(N_PACKED)], 32 * (1 + irand(7)), 64 * (1 + irand(10)));
    static const int toks[] = {1, 3, 16, 17, 33};
    for (int t = 0; t < N_PACKED; t++)
        for (size_t k = 0; k < sizeof toks / sizeof toks[0]; k++)
            test_matmul(packed_types[t], 32 * (1 + irand(7)), 64 * (1 + irand(10)), toks[k]);
    test_refusals();
    test_rtn();
    /* billm's stored size, by the formula of docs/format.md: 3 bits per
     * weight in whole 128-column blocks, 4 in a 64-column last block, plus
     * one bit per column */
    static const int bshapes[][2] = {{576, 576}, {1536, 576}, {576, 1536}, {32, 64}, {4096, 11008}};
    for (size_t k = 0; k < sizeof bshapes / sizeof bshapes[0]; k++) {
        uint64_t r = (uint64_t)bshapes[k][0], c = (uint64_t)bshapes[k][1];
        uint64_t want = r / 32 * (c / 128 * 1536 + (c % 128 ? 1024 : 0)) + c / 8;
        CHECK(bllm_type_tensor_bytes(BLLM_TYPE_BILLM, r, c) == want, "billm %llux%llu: %llu bytes, docs say %llu",
              (unsigned long long)r, (unsigned long long)c,
              (unsigned long long)bllm_type_tensor_bytes(BLLM_TYPE_BILLM, r, c), (unsigned long long)want);
        /* stbllm: 4.25 bits per weight in whole blocks, 5.5 in a last 64-column one */
        want = r / 32 * (c / 128 * 2176 + (c % 128 ? 1408 : 0)) + c / 8;
        CHECK(bllm_type_tensor_bytes(BLLM_TYPE_STBLLM, r, c) == want, "stbllm %llux%llu: %llu bytes, docs say %llu",
              (unsigned long long)r, (unsigned long long)c,
              (unsigned long long)bllm_type_tensor_bytes(BLLM_TYPE_STBLLM, r, c), (unsigned long long)want);
    }
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
