/* The aarch64 kernel sets against the scalar reference, run under qemu-user
 * (tests/neon/meson.build cross-builds this file with the kernel layer only).
 *
 * Float types: the checks and tolerance of tests/test_float_kernels.h, as
 * for the x86 sets.
 *
 * Packed binary types (random decompositions packed by runtime/format/binary.c,
 * shapes of 1..3 row tiles and 1..24 column groups, 1..17 tokens so token
 * chunks and pairs end raggedly, row ranges that are whole tiles, partial
 * tiles or empty, buffers misaligned on odd cases):
 * - neon-float (the float path) against the scalar reference and a double
 *   sum, within TOL as above;
 * - neon (the int8 lookup path) bit for bit against ref_q8() below, an
 *   independent scalar implementation of the quantization and f32
 *   accumulation order documented in kernels/binary_neon.c, computed from
 *   the decomposition (no packed bytes, no tables); and within the
 *   quantization bound sum_c |w_eff| * d_g / 2 (+ TOL) of the exact result,
 *   printing the error measured against the float scalar path.
 *
 * - neon-pop (the popcount path of the tile-shaped types) bit for bit
 *   against the scalar popcount reference (kernels/binary_pop_scalar.c), on
 *   every row range, and on N:M tensors with random mask bytes.
 *
 * Dispatch: with BLLM_KERNELS unset the neon set must be active; naming a
 * set this CPU cannot run must fall back to scalar (the test runs once with
 * BLLM_KERNELS=avx2 for that, with --dispatch-only). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bllm.h"
#include "kernels/binary_pop.h"
#include "kernels/blockq.h"
#include "kernels/kernels.h"
#include "runtime/format/binary.h"
#include "runtime/format/blockq.h"

#include "tests/test_float_kernels.h"

/* ------------------------------------------------------ packed types */

static float fp16_rand(float lo, float hi) /* an fp16 value in about [lo, hi) */
{
    return bllm_fp16_round(lo + (hi - lo) * (rng_uniform() + 1.0f) * 0.5f);
}

/* A random scale of varied magnitude (2^-8 .. 2^3), sometimes zero. */
static float rand_scale(void)
{
    if (rng_int(16) == 0)
        return 0.0f;
    return bllm_fp16_round(ldexpf(0.5f + 0.5f * (rng_uniform() + 1.0f) * 0.5f, rng_int(12) - 8));
}

/* Fill an initialized decomposition with random signs, N:M masks and fp16
 * scales. */
static void gen_decomp(bllm_binary_decomp *d)
{
    const int rows = d->rows, cols = d->cols, ng = cols / BLLM_GROUP;
    const size_t n = (size_t)rows * cols;
    for (size_t i = 0; i < n; i++) {
        d->sign[i] = (uint8_t)(rng_next() & 1);
        if (d->sign2)
            d->sign2[i] = (uint8_t)(rng_next() & 1);
    }
    int nn, mm;
    if (bllm_nm_params(d->type, &nn, &mm, NULL))
        for (size_t i0 = 0; i0 < n; i0 += (size_t)mm) {
            for (int p = 0; p < mm; p++)
                d->mask[i0 + p] = 0;
            for (int k = 0; k < nn;) { /* nn distinct random positions */
                int p = rng_int(mm);
                if (!d->mask[i0 + p]) {
                    d->mask[i0 + p] = 1;
                    k++;
                }
            }
        }
    size_t na = d->type == BLLM_TYPE_B1 ? (size_t)rows : (size_t)rows * ng;
    for (size_t i = 0; d->alpha && i < na; i++)
        d->alpha[i] = rand_scale();
    for (size_t i = 0; d->alpha2 && i < (size_t)rows * ng; i++)
        d->alpha2[i] = bllm_fp16_round(rand_scale() * 0.5f);
    for (size_t i = 0; d->mu && i < (size_t)rows * ng; i++)
        d->mu[i] = rng_int(8) ? bllm_fp16_round(fp16_rand(-0.5f, 0.5f) * (d->alpha[i] + 0.01f)) : 0.0f;
    for (int r = 0; d->g && r < rows; r++)
        d->g[r] = rand_scale();
    for (int c = 0; d->h && c < cols; c++)
        d->h[c] = bllm_fp16_round(rand_scale() * (rng_int(2) ? 1.0f : -1.0f));
    for (int c = 0; d->col_salient && c < cols; c++) /* some blocks without any */
        d->col_salient[c] = (uint8_t)((c / 128) % 3 != 2 && rng_int(5) == 0);
    for (size_t i = 0; d->bscale && i < (size_t)rows * bllm_billm_blocks(cols) * bllm_blk_scales(d->type); i++)
        d->bscale[i] = i % 2 ? rand_scale() : bllm_fp16_round(fp16_rand(-0.5f, 0.5f) * 0.1f);
    if (d->type == BLLM_TYPE_STBLLM) { /* kept with probability 5/8 (any count per group); regions of the
                                          kept non-salient weights; the residual sign only where kept in
                                          a salient column */
        for (size_t i = 0; i < n; i++) {
            int c = (int)(i % (size_t)cols);
            d->mask[i] = (uint8_t)(rng_int(8) < 5);
            d->region[i] = (uint8_t)(d->mask[i] && !d->col_salient[c] ? rng_int(3) : 0);
            d->sign2[i] &= d->mask[i] & d->col_salient[c];
        }
    }
}

/* billm's part of ref_q8 for row r, group g (the formula at binary_neon.c's
 * billm section): integer sums over q, then the f32 steps. */
static float ref_q8_billm(const bllm_binary_decomp *d, int r, int g, const int *q, float dd, float xsn, float xss,
                          float acc, double *bnd)
{
    const float *sc = d->bscale + ((size_t)r * bllm_billm_blocks(d->cols) + (size_t)(g / 2)) * BLLM_BILLM_SCALES;
    int sgn_n = 0, mn = 0, msn = 0, sg1 = 0, sg2 = 0, any_s = 0;
    for (int k = 0; k < BLLM_GROUP; k++) {
        int c = g * BLLM_GROUP + k;
        size_t i = (size_t)r * d->cols + c;
        int s1 = d->sign[i] ? 1 : -1, s2 = d->sign2[i] ? 1 : -1;
        double weff = bllm_binary_decomp_value(d, r, c);
        if (d->col_salient[c]) {
            any_s = 1;
            sg1 += s1 * q[c], sg2 += s2 * q[c];
            weff -= (double)sc[BLLM_BILLM_MU_1] + sc[BLLM_BILLM_MU_2];
        } else {
            sgn_n += s1 * q[c];
            if (d->sign2[i])
                mn += q[c], msn += s1 * q[c];
            weff -= sc[BLLM_BILLM_MU_C];
        }
        *bnd += fabs(weff) * dd * (0.5 + 1e-3);
    }
    acc = fmaf(sc[BLLM_BILLM_MU_C], xsn, acc);
    acc = fmaf((sc[BLLM_BILLM_MU_S] - sc[BLLM_BILLM_MU_C]) * dd, (float)mn, acc);
    acc = fmaf(sc[BLLM_BILLM_A_C] * dd, (float)sgn_n, acc);
    acc = fmaf((sc[BLLM_BILLM_A_S] - sc[BLLM_BILLM_A_C]) * dd, (float)msn, acc);
    if (any_s) {
        acc = fmaf(sc[BLLM_BILLM_MU_1] + sc[BLLM_BILLM_MU_2], xss, acc);
        acc = fmaf(sc[BLLM_BILLM_A_1] * dd, (float)sg1, acc);
        acc = fmaf(sc[BLLM_BILLM_A_2] * dd, (float)sg2, acc);
    }
    return acc;
}

/* stbllm's part of ref_q8 for row r, group g (the formula at binary_neon.c's
 * block section): integer sums per region and of the salient columns over
 * q, then the f32 steps. Every term, mu included, meets the quantized x. */
static float ref_q8_stbllm(const bllm_binary_decomp *d, int r, int g, const int *q, float dd, float acc,
                           double *bnd)
{
    const float *sc = d->bscale + ((size_t)r * bllm_billm_blocks(d->cols) + (size_t)(g / 2)) * BLLM_STBLLM_SCALES;
    int kept[3] = {0, 0, 0}, sgn[3] = {0, 0, 0}, ks = 0, sg1 = 0, sg2 = 0, any_s = 0;
    for (int k = 0; k < BLLM_GROUP; k++) {
        int c = g * BLLM_GROUP + k;
        size_t i = (size_t)r * d->cols + c;
        any_s |= d->col_salient[c];
        *bnd += fabs((double)bllm_binary_decomp_value(d, r, c)) * dd * (0.5 + 1e-3);
        if (!d->mask[i])
            continue;
        int s1 = d->sign[i] ? q[c] : -q[c];
        if (d->col_salient[c]) {
            ks += q[c], sg1 += s1, sg2 += d->sign2[i] ? q[c] : -q[c];
        } else {
            kept[d->region[i]] += q[c];
            sgn[d->region[i]] += s1;
        }
    }
    for (int k = 0; k < 3; k++) {
        acc = fmaf(sc[BLLM_STBLLM_MU_R0 + 2 * k] * dd, (float)kept[k], acc);
        acc = fmaf(sc[BLLM_STBLLM_A_R0 + 2 * k] * dd, (float)sgn[k], acc);
    }
    if (any_s) {
        acc = fmaf((sc[BLLM_STBLLM_MU_1] + sc[BLLM_STBLLM_MU_2]) * dd, (float)ks, acc);
        acc = fmaf(sc[BLLM_STBLLM_A_1] * dd, (float)sg1, acc);
        acc = fmaf(sc[BLLM_STBLLM_A_2] * dd, (float)sg2, acc);
    }
    return acc;
}

/* The f32 sum of 64 values in the lookup path's order: s_l = u[l] + u[4+l]
 * + ... + u[60+l], then (s0 + s1) + (s2 + s3). */
static float sum64(const float *u)
{
    float sl[4];
    for (int l = 0; l < 4; l++) {
        sl[l] = u[l];
        for (int i = 1; i < 16; i++)
            sl[l] += u[4 * i + l];
    }
    return (sl[0] + sl[1]) + (sl[2] + sl[3]);
}

/* The lookup path's definition (kernels/binary_neon.c), straight from the
 * decomposition: x quantized per token per 64 columns, exact integer sums,
 * then the documented f32 steps in group order. Also returns, per output,
 * the quantization error bound sum_c |w_eff(r,c)| * d_g * (1/2 + 1e-3). The
 * f32 steps have fixed operands, so fmaf here and vfmaq_f32 there agree bit
 * for bit. */
static void ref_q8(const bllm_binary_decomp *d, const float *x, int n_tok, float *y, double *bound)
{
    const int rows = d->rows, cols = d->cols, ng = cols / BLLM_GROUP;
    const bllm_type ty = d->type;
    const int nm = bllm_nm_params(ty, NULL, NULL, NULL);
    int *q = malloc((size_t)cols * sizeof *q);
    float *dg = malloc((size_t)ng * sizeof *dg);
    float *xs = malloc((size_t)ng * sizeof *xs);
    float *xsn = malloc((size_t)ng * sizeof *xsn), *xss = malloc((size_t)ng * sizeof *xss);
    for (int t = 0; t < n_tok; t++) {
        const float *xt = x + (size_t)t * cols;
        for (int g = 0; g < ng; g++) {
            float u[BLLM_GROUP], amax = 0.0f;
            for (int k = 0; k < BLLM_GROUP; k++) {
                int c = g * BLLM_GROUP + k;
                u[k] = ty == BLLM_TYPE_ONEBIT ? d->h[c] * xt[c] : xt[c];
                if (fabsf(u[k]) > amax)
                    amax = fabsf(u[k]);
            }
            float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
            dg[g] = amax / 127.0f;
            xs[g] = sum64(u); /* the f32 group sum, in the documented order */
            if (ty == BLLM_TYPE_BILLM) { /* and of its non-salient and salient parts */
                float un[BLLM_GROUP], us[BLLM_GROUP];
                for (int k = 0; k < BLLM_GROUP; k++) {
                    int sal = d->col_salient[g * BLLM_GROUP + k];
                    un[k] = sal ? 0.0f : u[k];
                    us[k] = sal ? u[k] : 0.0f;
                }
                xsn[g] = sum64(un);
                xss[g] = sum64(us);
            }
            for (int k = 0; k < BLLM_GROUP; k++) {
                float v = nearbyintf(u[k] * inv); /* ties to even */
                int qi = v > 127.0f ? 127 : v < -127.0f ? -127 : (int)v;
                q[g * BLLM_GROUP + k] = qi;
            }
        }
        for (int r = 0; r < rows; r++) {
            float acc = 0.0f;
            double bnd = 0.0;
            for (int g = 0; g < ng; g++) {
                size_t gi = (size_t)r * ng + g;
                if (ty == BLLM_TYPE_BILLM) {
                    acc = ref_q8_billm(d, r, g, q, dg[g], xsn[g], xss[g], acc, &bnd);
                    continue;
                }
                if (ty == BLLM_TYPE_STBLLM) {
                    acc = ref_q8_stbllm(d, r, g, q, dg[g], acc, &bnd);
                    continue;
                }
                int s1 = 0, s2 = 0, kept = 0;
                for (int k = 0; k < BLLM_GROUP; k++) {
                    int c = g * BLLM_GROUP + k;
                    size_t i = (size_t)r * cols + c;
                    if (nm && !d->mask[i])
                        continue;
                    s1 += d->sign[i] ? q[c] : -q[c];
                    if (d->sign2)
                        s2 += d->sign2[i] ? q[c] : -q[c];
                    kept += q[c];
                    /* the weight the quantized x meets: onebit's g, and
                     * b1mg and rb2g without mu (their mu term uses the
                     * exact sum) */
                    double weff = ty == BLLM_TYPE_ONEBIT ? d->g[r] : bllm_binary_decomp_value(d, r, c);
                    if (ty == BLLM_TYPE_B1MG || ty == BLLM_TYPE_RB2G)
                        weff -= d->mu[gi];
                    bnd += fabs(weff) * dg[g] * (0.5 + 1e-3);
                }
                float a = ty == BLLM_TYPE_B1 ? d->alpha[r] : ty == BLLM_TYPE_ONEBIT ? d->g[r] : d->alpha[gi];
                float dd = dg[g];
                if (nm) {
                    acc = fmaf(a * dd, (float)s1, acc); /* the signed kept sum */
                    acc = fmaf(d->mu[gi] * dd, (float)kept, acc);
                    continue;
                }
                acc = fmaf(a * dd, (float)s1, acc);
                if (ty == BLLM_TYPE_RB2G)
                    acc = fmaf(d->alpha2[gi] * dd, (float)s2, acc);
                if (ty == BLLM_TYPE_B1MG || ty == BLLM_TYPE_RB2G)
                    acc = fmaf(d->mu[gi], xs[g], acc);
            }
            y[(size_t)t * rows + r] = acc;
            bound[(size_t)t * rows + r] = bnd;
        }
    }
    free(q);
    free(dg);
    free(xs);
    free(xsn);
    free(xss);
}

typedef struct {
    double float_vs_scalar, float_vs_double; /* neon-float, / sum|w||x| */
    double lut_vs_scalar, lut_sum_rel;       /* neon: max and sum of err / sum|w||x| */
    double lut_vs_bound;                     /* neon: max |y - exact| / bound */
    long n_out;
    int bad_float, bad_lut, bad_exact;
} packed_stats;

/* corrupt (N:M, stbllm): after packing, N:M tensors get random kept masks
 * in random rows (a damaged file: groups keeping other than N of M), stbllm
 * tensors random bytes in their bit planes (bits the packer never writes:
 * a sign where pruned, B or a sign without A in a salient column); the
 * values to expect are then those bllm_binary_unpack reads from the bytes
 * (N:M: the i-th kept column of a row taking kept-sign bit i,
 * docs/format.md). */
static void test_packed_case(const bllm_kernel_set *scalar, const bllm_kernel_set *lut,
                             const bllm_kernel_set *flt, bllm_type ty, int rows, int cols, int n_tok,
                             int corrupt, packed_stats *st)
{
    bllm_binary_decomp d;
    if (bllm_binary_decomp_init(&d, ty, rows, cols) != BLLM_OK) {
        printf("FAIL: decomp_init %s %dx%d: %s\n", bllm_type_name(ty), rows, cols, bllm_last_error());
        failures++;
        return;
    }
    gen_decomp(&d);
    uint64_t nbytes = bllm_type_tensor_bytes(ty, (uint64_t)rows, (uint64_t)cols);
    int shift = (rows / 32 + cols / 64 + n_tok) & 1; /* odd cases: misaligned buffers */
    uint8_t *wbuf = malloc(nbytes + 1);
    void *w = wbuf + shift;
    if (bllm_binary_pack(&d, w, nbytes) != BLLM_OK) {
        printf("FAIL: pack %s %dx%d: %s\n", bllm_type_name(ty), rows, cols, bllm_last_error());
        failures++;
        free(wbuf);
        bllm_binary_decomp_free(&d);
        return;
    }
    if (corrupt) {
        if (bllm_type_is_block(ty)) { /* random bytes in the bit planes, none in the scales */
            const size_t trb = bllm_blk_tile_row_bytes(ty, cols), bb = bllm_blk_block_bytes(ty, 2);
            const size_t hb = bllm_blk_half_bytes(ty);
            for (int k = 0; k < 400; k++) {
                int tr = rng_int(rows / 32), b = rng_int(bllm_billm_blocks(cols));
                int h = rng_int(bllm_billm_halves(cols, b));
                ((uint8_t *)w)[(size_t)tr * trb + (size_t)b * bb + hb * (size_t)h + (size_t)rng_int((int)hb)] =
                    (uint8_t)rng_next();
            }
        } else {
            int sb = (int)(bllm_type_tensor_bytes(ty, 32, 64) - 128) / 32 - 8;
            size_t tile_bytes = 32u * (8 + (size_t)sb) + 128;
            for (int k = 0; k < 24; k++) {
                uint8_t *row = (uint8_t *)w + (size_t)rng_int(rows / 32 * (cols / 64)) * tile_bytes + 8 * rng_int(32);
                for (int b = 0; b < 8; b++)
                    row[b] = (uint8_t)rng_next();
            }
        }
        bllm_binary_decomp_free(&d);
        if (bllm_binary_unpack(ty, w, nbytes, NULL, rows, cols, &d) != BLLM_OK) {
            printf("FAIL: unpack of the corrupted %s: %s\n", bllm_type_name(ty), bllm_last_error());
            failures++;
            free(wbuf);
            return;
        }
    }
    float *xbuf = malloc(((size_t)n_tok * cols + 1) * sizeof *xbuf);
    float *x = xbuf + shift;
    for (int t = 0; t < n_tok; t++)
        for (int g = 0; g < cols / BLLM_GROUP; g++) {
            /* groups of very different scales, some all zero (amax = 0) */
            float sc = rng_int(10) == 0 ? 0.0f : powf(10.0f, 2.0f * rng_uniform());
            for (int k = 0; k < BLLM_GROUP; k++)
                x[(size_t)t * cols + g * BLLM_GROUP + k] = rng_uniform() * sc;
        }

    /* exact results and magnitudes from the decomposition's values */
    size_t ny = (size_t)n_tok * rows;
    double *exact = malloc(ny * sizeof *exact), *mag = malloc(ny * sizeof *mag);
    for (int r = 0; r < rows; r++)
        for (int t = 0; t < n_tok; t++) {
            double e = 0, m = 0;
            for (int c = 0; c < cols; c++) {
                double p = (double)bllm_binary_decomp_value(&d, r, c) * x[(size_t)t * cols + c];
                e += p;
                m += fabs(p);
            }
            exact[(size_t)t * rows + r] = e;
            mag[(size_t)t * rows + r] = m + (cols + 1) * 0x1p-149 / TOL;
        }
    float *yq = malloc(ny * sizeof *yq);
    double *bound = malloc(ny * sizeof *bound);
    ref_q8(&d, x, n_tok, yq, bound);

    /* whole range, whole tiles from the second, a ragged range, empty */
    int ranges[4][2] = {{0, rows}, {32, rows}, {0, 0}, {rows / 2, rows / 2}};
    ranges[2][0] = rng_int(rows);
    ranges[2][1] = ranges[2][0] + 1 + rng_int(rows - ranges[2][0]);
    if (rows == 32)
        ranges[1][0] = ranges[1][1] = 0;
    float *ys = malloc(ny * sizeof *ys), *yl = malloc((ny + 1) * sizeof *yl),
          *yf = malloc((ny + 1) * sizeof *yf);
    for (int g = 0; g < 4; g++) {
        int r0 = ranges[g][0], r1 = ranges[g][1];
        fill_sentinel(ys, ny);
        fill_sentinel(yl, ny + 1);
        fill_sentinel(yf, ny + 1);
        scalar->matmul[ty](ys, x, w, n_tok, cols, rows, r0, r1);
        lut->matmul[ty](yl, x, w, n_tok, cols, rows, r0, r1);
        flt->matmul[ty](yf, x, w, n_tok, cols, rows, r0, r1);
        if (!is_sentinel(&yl[ny]) || !is_sentinel(&yf[ny])) {
            printf("  FAIL %s: wrote past the end of y\n", bllm_type_name(ty));
            st->bad_lut++;
        }
        for (int t = 0; t < n_tok; t++)
            for (int r = 0; r < rows; r++) {
                size_t i = (size_t)t * rows + r;
                if (r < r0 || r >= r1) {
                    if (!is_sentinel(&yl[i]) || !is_sentinel(&yf[i])) {
                        if (st->bad_lut + st->bad_float < 5)
                            printf("  FAIL %s: wrote y[t=%d][r=%d] outside rows [%d,%d)\n",
                                   bllm_type_name(ty), t, r, r0, r1);
                        st->bad_float++;
                    }
                    continue;
                }
                double es = fabs(ys[i] - exact[i]) / mag[i];
                if (!(es <= TOL)) {
                    if (st->bad_exact < 3)
                        printf("  FAIL scalar %s y[%d][%d] = %.9g, exact %.9g\n", bllm_type_name(ty), t, r,
                               ys[i], exact[i]);
                    st->bad_exact++;
                }
                double ef = fabs(yf[i] - ys[i]) / mag[i], efd = fabs(yf[i] - exact[i]) / mag[i];
                if (!(ef <= TOL) || !(efd <= TOL)) {
                    if (st->bad_float < 3)
                        printf("  FAIL neon-float %s %dx%d n_tok=%d y[%d][%d] = %.9g, scalar %.9g, "
                               "exact %.9g\n",
                               bllm_type_name(ty), rows, cols, n_tok, t, r, yf[i], ys[i], exact[i]);
                    st->bad_float++;
                }
                if (!(ef <= st->float_vs_scalar))
                    st->float_vs_scalar = ef;
                if (!(efd <= st->float_vs_double))
                    st->float_vs_double = efd;
                /* the lookup path: bit-exact vs ref_q8, and within the bound */
                double el = fabs(yl[i] - ys[i]) / mag[i];
                double eb = fabs(yl[i] - exact[i]) / (bound[i] + TOL * mag[i]);
                if (memcmp(&yl[i], &yq[i], 4) != 0 || !(eb <= 1.0)) {
                    if (st->bad_lut < 3)
                        printf("  FAIL neon %s %dx%d n_tok=%d rows [%d,%d) y[%d][%d] = %.9g, int8 "
                               "reference %.9g, exact %.9g (bound %.3g)\n",
                               bllm_type_name(ty), rows, cols, n_tok, r0, r1, t, r, yl[i], yq[i],
                               exact[i], bound[i]);
                    st->bad_lut++;
                }
                if (!(el <= st->lut_vs_scalar))
                    st->lut_vs_scalar = el;
                if (!(eb <= st->lut_vs_bound))
                    st->lut_vs_bound = eb;
                st->lut_sum_rel += el;
                st->n_out++;
            }
    }
    free(ys);
    free(yl);
    free(yf);
    free(yq);
    free(bound);
    free(exact);
    free(mag);
    free(xbuf);
    free(wbuf);
    bllm_binary_decomp_free(&d);
}

static void test_packed(const bllm_kernel_set *lut, const bllm_kernel_set *flt)
{
    static const bllm_type types[] = {
        BLLM_TYPE_B1,   BLLM_TYPE_B1G,  BLLM_TYPE_B1MG, BLLM_TYPE_RB2G,   BLLM_TYPE_NM24,
        BLLM_TYPE_NM48, BLLM_TYPE_NM58, BLLM_TYPE_NM68, BLLM_TYPE_ONEBIT, BLLM_TYPE_PB8,
        BLLM_TYPE_BILLM, BLLM_TYPE_STBLLM,
    };
    static const int shapes[][2] = {{32, 64}, {32, 192}, {96, 64}, {64, 576}, {32, 1536}};
    static const int toks[] = {1, 2, 3, 9, 17};
    printf("\npacked types: neon-float vs scalar (tol %.0e of sum|wx|); neon (int8 lookups) bit-exact "
           "vs the int8 reference, its error vs scalar / sum|wx| (max, mean) and vs its bound\n",
           TOL);
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        bllm_type ty = types[k];
        packed_stats st = {0};
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
            for (size_t n = 0; n < sizeof toks / sizeof *toks; n++) {
                if (shapes[s][1] >= 1536 && toks[n] > 3 && toks[n] != 17)
                    continue; /* keep the emulated run short */
                test_packed_case(bllm_kernels_scalar(), lut, flt, ty, shapes[s][0], shapes[s][1], toks[n], 0,
                                 &st);
            }
        if ((ty >= BLLM_TYPE_NM24 && ty <= BLLM_TYPE_NM68) || ty == BLLM_TYPE_STBLLM)
            for (int n = 0; n < 3; n++)
                test_packed_case(bllm_kernels_scalar(), lut, flt, ty, 96, 192, toks[n], 1, &st);
        checks += 3;
        printf("%-6s scalar vs double %s | neon-float max %.2e vs scalar, %.2e vs double %s | "
               "neon exact vs int8 ref, vs scalar max %.2e mean %.2e, max err/bound %.2f %s\n",
               bllm_type_name(ty), st.bad_exact ? "FAIL" : "ok", st.float_vs_scalar, st.float_vs_double,
               st.bad_float ? "FAIL" : "ok", st.lut_vs_scalar, st.n_out ? st.lut_sum_rel / st.n_out : 0.0,
               st.lut_vs_bound, st.bad_lut ? "FAIL" : "ok");
        failures += (st.bad_exact > 0) + (st.bad_float > 0) + (st.bad_lut > 0);
    }
}

static void expect(int ok, const char *what)
{
    checks++;
    if (!ok) {
        printf("FAIL: %s\n", what);
        failures++;
    }
}

/* neon-pop against the scalar popcount reference, bit for bit over the
 * whole y buffer (one float past it and rows outside [r0, r1) hold a
 * sentinel): full, whole-tile, empty and ragged row ranges; corrupt: random
 * bytes in the N:M kept masks (any mask is some matrix, the same for both). */
static void test_pop(const bllm_kernel_set *pop)
{
    static const bllm_type types[] = {BLLM_TYPE_B1,   BLLM_TYPE_B1G,  BLLM_TYPE_B1MG, BLLM_TYPE_RB2G,
                                      BLLM_TYPE_NM24, BLLM_TYPE_NM48, BLLM_TYPE_NM58, BLLM_TYPE_NM68,
                                      BLLM_TYPE_ONEBIT, BLLM_TYPE_PB8};
    static const int shapes[][3] = {{32, 64, 1}, {96, 192, 3}, {64, 576, 9}, {32, 1536, 1}, {96, 128, 17}};
    bllm_kernel_set spop = *bllm_kernels_scalar();
    bllm_binary_pop_fill_scalar(spop.matmul);
    const uint32_t sentinel = 0x7fc0beefu;
    printf("\npopcount path: neon-pop vs the scalar popcount reference, bit for bit\n");
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        const bllm_type ty = types[k];
        const int nm = ty >= BLLM_TYPE_NM24 && ty <= BLLM_TYPE_NM68;
        long compared = 0, differ = 0;
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
            for (int corrupt = 0; corrupt <= nm; corrupt++) {
                const int rows = shapes[si][0], cols = shapes[si][1], n_tok = shapes[si][2];
                bllm_binary_decomp d;
                if (bllm_binary_decomp_init(&d, ty, rows, cols) != BLLM_OK) {
                    printf("FAIL: decomp_init %s: %s\n", bllm_type_name(ty), bllm_last_error());
                    failures++;
                    return;
                }
                gen_decomp(&d);
                const uint64_t nb = bllm_type_tensor_bytes(ty, (uint64_t)rows, (uint64_t)cols);
                uint8_t *w = malloc(nb);
                if (bllm_binary_pack(&d, w, nb) != BLLM_OK) {
                    printf("FAIL: pack %s: %s\n", bllm_type_name(ty), bllm_last_error());
                    failures++;
                    return;
                }
                if (corrupt) { /* masks: the first 256 bytes of every tile */
                    const size_t tb = nb / ((size_t)rows / 32 * (cols / 64));
                    for (int i = 0; i < 64; i++)
                        w[tb * (size_t)rng_int(rows / 32 * (cols / 64)) + (size_t)rng_int(256)] = (uint8_t)rng_next();
                }
                float *x = malloc(sizeof(float) * (size_t)n_tok * cols);
                for (int i = 0; i < n_tok * cols; i++)
                    x[i] = rng_uniform() * (rng_int(50) ? 1.0f : 30.0f);
                const size_t ny = (size_t)n_tok * rows;
                float *ya = malloc(sizeof(float) * (ny + 1)), *yb = malloc(sizeof(float) * (ny + 1));
                const int ranges[4][2] = {{0, rows}, {32, rows}, {32, 32}, {5, rows - 7}};
                for (int g = 0; g < 4; g++) {
                    for (size_t i = 0; i <= ny; i++) {
                        memcpy(&ya[i], &sentinel, 4);
                        memcpy(&yb[i], &sentinel, 4);
                    }
                    int r0 = ranges[g][0] < rows ? ranges[g][0] : 0, r1 = ranges[g][1];
                    spop.matmul[ty](ya, x, w, n_tok, cols, rows, r0, r1);
                    pop->matmul[ty](yb, x, w, n_tok, cols, rows, r0, r1);
                    for (size_t i = 0; i <= ny; i++, compared++)
                        if (memcmp(&ya[i], &yb[i], 4) != 0 && differ++ < 3)
                            printf("  FAIL %s %dx%d n_tok=%d rows [%d,%d): y[%zu] = %.9g, scalar-pop %.9g\n",
                                   bllm_type_name(ty), rows, cols, n_tok, r0, r1, i, yb[i], ya[i]);
                }
                free(ya);
                free(yb);
                free(x);
                free(w);
                bllm_binary_decomp_free(&d);
            }
        checks++;
        failures += differ != 0;
        printf("neon-pop %-6s %ld of %ld floats differ %s\n", bllm_type_name(ty), differ, compared,
               differ ? "FAIL" : "ok");
    }
}

/* q8/q4/q6/q4nl (kernels/blockq_neon.c; fn indexed by type - BLLM_TYPE_Q8)
 * against the scalar reference: both sum the same integers exactly, so
 * they differ by f32 summation order only: within 1e-5 of M = sum_c |w_c
 * x_c| (dequantized w, f32 x) plus the quantization of x, far below what
 * one wrong product would move. */
static void test_blockq(const bllm_kernel_set *scalar, const char *name, const bllm_matmul_fn fn[4])
{
    static const int rows_list[] = {1, 3, 9, 67}, cols_list[] = {32, 96, 576}, tok_list[] = {1, 2, 5};
    for (int ty = BLLM_TYPE_Q8; ty <= BLLM_TYPE_Q4NL; ty++) {
        double worst = 0;
        int bad = 0;
        for (int a = 0; a < 4; a++)
            for (int b = 0; b < 3; b++)
                for (int c = 0; c < 3; c++) {
                    int rows = rows_list[a], cols = cols_list[b], n_tok = tok_list[c];
                    uint64_t rb = bllm_type_row_bytes((bllm_type)ty, (uint64_t)cols);
                    float *wf = malloc(sizeof(float) * rows * cols), *x = malloc(sizeof(float) * n_tok * cols);
                    float *deq = malloc(sizeof(float) * cols);
                    uint8_t *w = malloc(rb * rows);
                    float *y0 = malloc(sizeof(float) * n_tok * rows), *y1 = malloc(sizeof(float) * n_tok * rows);
                    for (int i = 0; i < rows * cols; i++)
                        wf[i] = rng_uniform() * 0.1f;
                    for (int i = 0; i < n_tok * cols; i++)
                        x[i] = rng_uniform() * (i % 37 == 0 ? 20.0f : 1.0f);
                    for (int r = 0; r < rows; r++)
                        bllm_blockq_quantize_row((bllm_type)ty, wf + (size_t)r * cols, cols, w + r * rb);
                    scalar->matmul[ty](y0, x, w, n_tok, cols, rows, 0, rows);
                    fn[ty - BLLM_TYPE_Q8](y1, x, w, n_tok, cols, rows, 0, rows);
                    for (int r = 0; r < rows; r++) {
                        bllm_blockq_dequant_row((bllm_type)ty, w + r * rb, cols, deq);
                        for (int t = 0; t < n_tok; t++) {
                            double m = 1e-30;
                            for (int k = 0; k < cols; k++)
                                m += fabs((double)deq[k] * x[(size_t)t * cols + k]);
                            double e = fabs((double)y1[(size_t)t * rows + r] - y0[(size_t)t * rows + r]) / m;
                            worst = e > worst ? e : worst;
                            bad += !(e <= 1e-5);
                        }
                    }
                    free(wf);
                    free(x);
                    free(deq);
                    free(w);
                    free(y0);
                    free(y1);
                }
        expect(bad == 0, "neon q8/q4/q6/q4nl against the scalar reference");
        printf("%s %s vs scalar: max error / M %.2e (tol 1e-5) %s\n", name, bllm_type_name((bllm_type)ty), worst,
               bad ? "FAIL" : "ok");
    }
}

static void test_dispatch(void)
{
    const char *env = getenv("BLLM_KERNELS");
    const bllm_kernel_set *neon = bllm_kernels_neon();
    const bllm_kernel_set *active = bllm_kernels();
    printf("BLLM_KERNELS=%s, active set: %s\n", env ? env : "(unset)", active->name);

    expect(neon && strcmp(neon->name, "neon") == 0, "bllm_kernels_neon() is the neon set");
    expect(bllm_kernels_avx2() == NULL, "no avx2 set on aarch64");
    expect(bllm_kernels_select("neon") == neon, "bllm_kernels_select(\"neon\") is the neon set");
    expect(bllm_kernels_neon_float() && bllm_kernels_select("neon-float") == bllm_kernels_neon_float() &&
               strcmp(bllm_kernels_neon_float()->name, "neon-float") == 0,
           "bllm_kernels_select(\"neon-float\") is the neon-float set");
    const bllm_kernel_set *nl = bllm_kernels_select("neon-lut");
    int same = nl && strcmp(nl->name, "neon-lut") == 0 && nl != neon && neon;
    for (int t = 0; same && t < BLLM_TYPE_COUNT; t++)
        same = nl->matmul[t] == neon->matmul[t];
    expect(same && nl->dot_f32 == neon->dot_f32 && nl->axpy_f32 == neon->axpy_f32,
           "neon-lut is its own set with neon's kernels (the lookup path)");
    expect(bllm_kernels_select("scalar") == bllm_kernels_scalar(), "select(\"scalar\")");
    expect(bllm_kernels_select("avx2") == NULL && strstr(bllm_last_error(), "avx2"),
           "select(\"avx2\") is NULL and the error names it");
    expect(bllm_kernels_select("no-such-isa") == NULL &&
               strstr(bllm_last_error(), "no-such-isa"),
           "an unknown set gives NULL and names it");
    expect(strcmp(bllm_kernel_name(), active->name) == 0, "bllm_kernel_name() agrees");

    /* what bllm_kernels() must have chosen for this environment */
    const bllm_kernel_set *want = neon;
    if (env && *env)
        want = strcmp(env, "scalar") == 0 ? bllm_kernels_scalar()
               : strcmp(env, "neon") == 0       ? neon
               : strcmp(env, "neon-float") == 0 ? bllm_kernels_neon_float()
               : strcmp(env, "neon-lut") == 0   ? bllm_kernels_select("neon-lut")
                                                : bllm_kernels_scalar(); /* unusable: fallback */
    if (active != want)
        printf("  active %s, expected %s\n", active->name, want->name);
    expect(active == want, "bllm_kernels() honours BLLM_KERNELS (or falls back to scalar)");

    unsetenv("BLLM_KERNELS");
    expect(bllm_kernels_select(NULL) == neon, "the default set is neon");
    setenv("BLLM_KERNELS", "scalar", 1);
    expect(bllm_kernels_select(NULL) == bllm_kernels_scalar(), "BLLM_KERNELS=scalar honoured");
    setenv("BLLM_KERNELS", "neon", 1);
    expect(bllm_kernels_select(NULL) == neon, "BLLM_KERNELS=neon honoured");
    if (env)
        setenv("BLLM_KERNELS", env, 1);
    else
        unsetenv("BLLM_KERNELS");
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_dispatch();
    if (argc > 1 && strcmp(argv[1], "--dispatch-only") == 0)
        goto done;

    const bllm_kernel_set *sets[2] = {bllm_kernels_scalar(), bllm_kernels_neon()};
    const int n_sets = sets[1] ? 2 : 1;
    if (n_sets < 2) {
        printf("FAIL: no neon set in this build\n");
        return 1;
    }
    /* every type the scalar reference computes, neon must compute too */
    for (int s = 1; s < n_sets; s++)
        for (int t = 0; t < BLLM_TYPE_COUNT; t++)
            if (sets[0]->matmul[t] && !sets[s]->matmul[t]) {
                printf("FAIL: set %s has no matmul for %s\n", sets[s]->name,
                       bllm_type_name((bllm_type)t));
                failures++;
            }

    /* ragged shapes around the vector widths (4 f32, 8 f16 per q-register)
     * and the tile sizes (4 rows, 4 tokens), a Llama width and one above
     * GEMM_KC (1024); fewer than the x86 test's: all of it is emulated */
    static const int rows_list[] = {1, 3, 7, 9, 64, 67};
    static const int cols_list[] = {1, 3, 4, 7, 17, 64, 100, 576, 1537};
    static const int tok_list[] = {1, 2, 4, 5, 9};
    static const int ns[] = {0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 1000, 4097};
    test_float_matmuls(sets, n_sets, rows_list, 6, cols_list, 9, tok_list, 5);
    test_dot_axpy(sets, n_sets, ns, (int)(sizeof ns / sizeof *ns), 0);
    test_exp_swiglu(sets, n_sets, ns, (int)(sizeof ns / sizeof *ns), 0);

    /* neon-float differs from neon in the packed types only */
    const bllm_kernel_set *nf = bllm_kernels_neon_float();
    expect(nf && nf->matmul[BLLM_TYPE_F32] == sets[1]->matmul[BLLM_TYPE_F32] &&
               nf->matmul[BLLM_TYPE_F16] == sets[1]->matmul[BLLM_TYPE_F16] &&
               nf->matmul[BLLM_TYPE_BF16] == sets[1]->matmul[BLLM_TYPE_BF16] &&
               nf->dot_f32 == sets[1]->dot_f32 && nf->axpy_f32 == sets[1]->axpy_f32,
           "neon-float shares neon's float kernels");
    for (int t = 0; nf && t < BLLM_TYPE_COUNT; t++)
        if (sets[0]->matmul[t] && !nf->matmul[t]) {
            printf("FAIL: set neon-float has no matmul for %s\n", bllm_type_name((bllm_type)t));
            failures++;
        }
    if (nf)
        test_packed(sets[1], nf);
    const bllm_kernel_set *np = bllm_kernels_select("neon-pop");
    expect(np && strcmp(np->name, "neon-pop") == 0, "bllm_kernels_select(\"neon-pop\") is the neon-pop set");
    if (np)
        test_pop(np);
    const bllm_matmul_fn set_q[4] = {sets[1]->matmul[BLLM_TYPE_Q8], sets[1]->matmul[BLLM_TYPE_Q4],
                                     sets[1]->matmul[BLLM_TYPE_Q6], sets[1]->matmul[BLLM_TYPE_Q4NL]};
    const bllm_matmul_fn base_q[4] = {bllm_matmul_q8_neon_base, bllm_matmul_q4_neon_base, bllm_matmul_q6_neon_base,
                                      bllm_matmul_q4nl_neon_base};
    const bllm_matmul_fn dot_q[4] = {bllm_matmul_q8_neon_dotprod, bllm_matmul_q4_neon_dotprod,
                                     bllm_matmul_q6_neon_dotprod, bllm_matmul_q4nl_neon_dotprod};
    test_blockq(sets[0], "neon", set_q);
    test_blockq(sets[0], "neon (base)", base_q);
    /* the sdot build only where the emulated CPU has the extension (-cpu
     * max; a cortex-a53 would die on it), and the detection must say so:
     * meson passes what each -cpu has */
    const char *want_dp = getenv("BLLM_TEST_DOTPROD");
    printf("dotprod (ARMv8.2 sdot): %s\n", bllm_neon_has_dotprod() ? "present" : "absent");
    if (want_dp)
        expect(bllm_neon_has_dotprod() == (atoi(want_dp) != 0), "bllm_neon_has_dotprod() matches the emulated CPU");
    if (bllm_neon_has_dotprod())
        test_blockq(sets[0], "neon (sdot)", dot_q);

done:
    printf("\n%d checks, %d failed\n", checks, failures);
    if (failures) {
        printf("FAILED\n");
        return 1;
    }
    return 0;
}
