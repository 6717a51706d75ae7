/* The AVX-512 binary kernels, executed on an AVX2 CPU. kernels/binary_avx512.c
 * (64-byte sign-tile lookups; the rest is the AVX2 code) runs
 * natively only where the CPU has AVX-512 F/BW/VL, which the
 * development machine lacks; binary_avx512_emu.c builds the same file over
 * SIMDe's portable versions of those intrinsics, so its logic runs here.
 * That checks the logic (lane layouts, table indexing, folding),
 * trusting SIMDe to implement each intrinsic as the instruction behaves;
 * it says nothing about speed. binary_avx512vnni_emu.c does the same for
 * kernels/binary_avx512vnni.c (lookups by vpermb + vpdpbusd), and the
 * native "avx512" set, where the CPU has it, is held to the same
 * comparisons.
 *
 * Both builds quantize x identically (shared code, kernels/binary_x86.h)
 * and their lookups produce exact integer sums that go through the same f32
 * operations in the same order, so the emulated kernels must equal the
 * AVX2 LUT kernels ("avx2-lut", bllm_binary_avx2_fill with
 * BLLM_BINARY_LUT) bit for bit: every output, over the whole y buffer
 * (rows outside [r0, r1) and one float past the end hold a sentinel). They
 * are also held to the int8-activation reference with the LUT tolerance of
 * test_binary_kernels.c (|y - y_q| <= 2e-6 M_q, f32 RMS error < 3%), so a
 * bug shared by both builds fails too. The exception: the VNNI build's
 * dense types look up quantized tables (bllm_binary_tq_group), other
 * integers, so they are held to that reference alone (tq_reference, the
 * same tolerance), and ragged ranges to the scalar kernels.
 *
 * Every binary type (pb8: its b1g part, as the kernels compute it), GEMV
 * and GEMM: the extreme shapes, shapes with enough columns to split into
 * several table blocks (GEMM, and GEMV for N:M's larger tables), random
 * shapes; row ranges: all rows, a random whole-tile sub-range, an empty
 * one, and a ragged one (not whole tiles: both hand it to the scalar
 * reference, so it must equal scalar exactly). N:M tensors with groups
 * keeping other than N of M (a corrupt file) go through the GEMV pipeline
 * and the GEMM decoder, stbllm tensors with random bytes in their bit
 * planes through its plane ANDs. */
#include "binary_checks.h"
#include "kernels/binary_pop.h"

/* tests/kernels/binary_avx512_emu.c: kernels/binary_avx512.c's fill;
 * binary_avx512vnni_emu.c: kernels/binary_avx512vnni.c's;
 * binary_avx512pop_emu.c: kernels/binary_avx512pop.c's. */
void bllm_binary_avx512emu_fill(bllm_matmul_fn *mm, bllm_binary_path path);
void bllm_binary_avx512vnniemu_fill(bllm_matmul_fn *mm, bllm_binary_path path);
void bllm_binary_avx512popemu_fill(bllm_matmul_fn *mm);

static int failures, checks;

typedef struct {
    long compared, differ; /* floats of y, bit-exact vs avx2-lut */
    int ragged_bad;        /* ragged ranges not equal to scalar */
} exact_stats;

/* y from one kernel on a sentinel-filled buffer of ny + 1 floats. */
static float *run(bllm_matmul_fn fn, const float *x, const void *w, int n_tok, int cols, int rows, int r0, int r1)
{
    size_t ny = (size_t)n_tok * rows;
    float *y = malloc((ny + 1) * sizeof *y);
    fill_sentinel(y, ny + 1);
    fn(y, x, w, n_tok, cols, rows, r0, r1);
    return y;
}

/* The kernel under test against its bit-exact reference (avx2-lut for the
 * LUT kernels, the scalar popcount reference for the popcount ones) over
 * the whole buffer; with ragged, the LUT kernels also against the scalar
 * reference (the popcount ones hand ragged ranges to their reference,
 * which the first comparison covers). */
static void check_exact(const bllm_kernel_set *emu, const bllm_kernel_set *lut, bllm_type ty, int rows, int cols,
                        int n_tok, int r0, int r1, int ragged, const void *w, const float *x, exact_stats *ex)
{
    ragged = ragged && !strstr(emu->name, "-pop");
    size_t ny = (size_t)n_tok * rows;
    float *ye = run(emu->matmul[ty], x, w, n_tok, cols, rows, r0, r1);
    float *yl = run(lut->matmul[ty], x, w, n_tok, cols, rows, r0, r1);
    /* quantized tables: other integers than avx2-lut's, so held to their
     * own reference (check_case) and, ragged, to scalar only */
    for (size_t i = 0; i <= ny && !runs_tq(emu, ty); i++) {
        ex->compared++;
        if (memcmp(&ye[i], &yl[i], sizeof(float)) != 0 && ex->differ++ < 3) {
            uint32_t be, bl;
            memcpy(&be, &ye[i], 4);
            memcpy(&bl, &yl[i], 4);
            printf("  FAIL %s %s %dx%d n_tok=%d rows [%d,%d): y[%zu] = %.9g (0x%08x), %s %.9g (0x%08x)\n",
                   emu->name, bllm_type_name(ty), rows, cols, n_tok, r0, r1, i, ye[i], be, lut->name, yl[i], bl);
        }
    }
    if (ragged) {
        float *ys = run(bllm_kernels_scalar()->matmul[ty], x, w, n_tok, cols, rows, r0, r1);
        if (memcmp(ye, ys, (ny + 1) * sizeof(float)) != 0 && ex->ragged_bad++ < 3)
            printf("  FAIL %s %dx%d n_tok=%d rows [%d,%d) (not whole tiles): differs from scalar\n",
                   bllm_type_name(ty), rows, cols, n_tok, r0, r1);
        free(ys);
    }
    free(ye);
    free(yl);
}

/* One tensor: bit-exact on 4 row ranges, int8 reference on the 3 whole-tile
 * ones. d: the decomposition w decodes to (for corrupted N:M tensors, what
 * bllm_binary_unpack makes of them). */
static void check_tensor(const bllm_kernel_set *emu, const bllm_kernel_set *lut, bllm_type ty, int rows, int cols,
                         int n_tok, const bllm_binary_decomp *d, const void *w, stats *st, exact_stats *ex);

/* The popcount kernels: emu (or the native set) against the scalar
 * popcount reference spop; and spop against avx2-lut where the latter sums
 * every column in one table block (at most 19 groups: the random shapes),
 * since the two paths share their integer sums and f32 steps. */
static const bllm_kernel_set *g_cross_a, *g_cross_b;
static exact_stats *g_cross_ex;

static void check_tensor(const bllm_kernel_set *emu, const bllm_kernel_set *lut, bllm_type ty, int rows, int cols,
                         int n_tok, const bllm_binary_decomp *d, const void *w, stats *st, exact_stats *ex)
{
    float *x = malloc(sizeof(float) * (size_t)n_tok * cols);
    random_x(x, n_tok, cols);
    size_t ny = (size_t)n_tok * rows;
    float *yref = malloc(sizeof(float) * ny);
    double *yq = malloc(sizeof(double) * ny), *mq = malloc(sizeof(double) * ny);
    const int tq = runs_tq(emu, ty);
    bllm_kernels_scalar()->matmul[ty](yref, x, w, n_tok, cols, rows, 0, rows);
    (tq ? tq_reference : lut_reference)(d, x, n_tok, yq, mq);
    int nt = rows / 32, a = rng_int(nt), b = a + 1 + rng_int(nt - a);
    int ra = rng_int(rows), rb = ra + 1 + rng_int(rows - ra);
    if (ra % 32 == 0 && rb % 32 == 0) /* ragged on at least one end */
        rb--;
    int ranges[4][2] = {{0, rows}, {32 * a, 32 * b}, {32 * (nt / 2), 32 * (nt / 2)}, {ra, rb}};
    const tested ts = {emu, tq ? 2 : 1};
    for (int g = 0; g < 4; g++) {
        check_exact(emu, lut, ty, rows, cols, n_tok, ranges[g][0], ranges[g][1], g == 3, w, x, ex);
        if (g_cross_a && cols <= 19 * 64 && g < 3) /* avx2-lut hands ragged ranges to the f32 scalar */
            check_exact(g_cross_a, g_cross_b, ty, rows, cols, n_tok, ranges[g][0], ranges[g][1], 0, w, x,
                        g_cross_ex);
        /* mf: only read for the FLOAT path; block types' batches run on f32
         * tiles (checked against the scalar reference in test-binary-kernels;
         * here bit-exact vs avx2-lut like the rest) */
        if (g < 3 && !(bllm_type_is_block(ty) && n_tok >= BLLM_BLK_GEMM_MIN_TOK))
            check_case(&ts, ty, rows, cols, n_tok, ranges[g][0], ranges[g][1], w, x, yref, yq, mq, NULL, st);
    }
    free(x);
    free(yref);
    free(yq);
    free(mq);
}

/* Pass or fail of one type's batch, printed. rms_tol: the loose bound on
 * the int8 activations' error, a statistic of the random draws (outlier
 * groups weigh heavily in few tensors) rather than an exactness check. */
static void report(const bllm_kernel_set *emu, const bllm_kernel_set *lut, const char *what, bllm_type ty,
                   const stats *st, const exact_stats *ex, double rms_tol)
{
    int bad = st->bad || ex->differ || ex->ragged_bad;
    int rms_bad = !(st->rms_num <= rms_tol * rms_tol * st->rms_den);
    if (runs_tq(emu, ty))
        printf("%s %-6s %s: quantized tables, max |y - y_tqref| / M_t %.2e (tol 2e-06); rel RMS vs f32 %.2e %s\n",
               emu->name, bllm_type_name(ty), what, st->max_err, sqrt(st->rms_num / (st->rms_den + 1e-300)),
               bad || rms_bad ? "FAIL" : "ok");
    else
        printf("%s %-6s %s: bit-exact vs %s: %ld of %ld floats differ; max |y - y_int8ref| / M_q %.2e "
               "(tol 2e-06); rel RMS vs f32 %.2e %s\n",
               emu->name, bllm_type_name(ty), what, lut->name, ex->differ, ex->compared, st->max_err,
               sqrt(st->rms_num / (st->rms_den + 1e-300)), bad || rms_bad ? "FAIL" : "ok");
    if (rms_bad)
        printf("  FAIL %s: int8 activation error above %g%% RMS\n", bllm_type_name(ty), 100 * rms_tol);
    checks++;
    failures += bad || rms_bad;
}

static void test_type(const bllm_kernel_set *emu, const bllm_kernel_set *lut, bllm_type ty, int n_cases)
{
    stats st;
    exact_stats ex;
    memset(&st, 0, sizeof st);
    memset(&ex, 0, sizeof ex);
    for (int k = 0; k < n_cases; k++) {
        int rows, cols, n_tok;
        switch (k) {
        case 0: rows = 32, cols = 64, n_tok = 1; break;
        case 1: rows = 352, cols = 1216, n_tok = 17; break;
        /* past 48 groups (dense) or 24 (N:M) per 8-token chunk the tables
         * come in column blocks, the last token alone (GEMV route) */
        case 2: rows = 64, cols = 64 * 52, n_tok = 9; break;
        /* past 192 groups an N:M GEMV splits too */
        case 3: rows = 64, cols = 64 * 200, n_tok = 1; break;
        default:
            rows = 32 * (1 + rng_int(11));
            cols = 64 * (1 + rng_int(19));
            n_tok = k < 6 ? 1 : 1 + rng_int(17);
            break;
        }
        bllm_binary_decomp d;
        void *w = random_tensor(ty, rows, cols, &d);
        check_tensor(emu, lut, ty, rows, cols, n_tok, &d, w, &st, &ex);
        bllm_binary_decomp_free(&d);
        free(w);
    }
    char what[32];
    snprintf(what, sizeof what, "%2d shapes", n_cases);
    report(emu, lut, what, ty, &st, &ex, 0.03);
}

/* Overwrites count random group masks of an N:M tensor with random
 * invalid ones (those bllm_nm_code_mask decodes to 0: other than N of M
 * kept; a corrupt file). Masks: cb = 8 bytes per row at the start of each
 * tile (docs/format.md). */
static void corrupt_nm_masks(bllm_type ty, uint8_t *w, int rows, int cols, int count)
{
    int N, M, B;
    bllm_nm_params(ty, &N, &M, &B);
    int cb = 64 / M * B / 8, sb = 64 / M * N / 8;
    size_t tile_bytes = 32u * (cb + sb) + 128;
    for (int k = 0; k < count; k++) {
        size_t t = (size_t)rng_int(rows / 32 * (cols / 64));
        int j = rng_int(32), bit = rng_int(64 / M) * B;
        uint32_t v;
        do
            v = (uint32_t)rng_int(1 << B);
        while (bllm_nm_code_mask(ty, v) != 0);
        uint8_t *code = w + t * tile_bytes + (size_t)j * cb;
        for (int b = 0; b < B; b++) {
            int at = bit + b;
            code[at >> 3] = (uint8_t)((code[at >> 3] & ~(1u << (at & 7))) | ((v >> b) & 1u) << (at & 7));
        }
    }
}

/* N:M tensors with random invalid masks: GEMV (the pipelined decoder) and
 * GEMM (the per-tile one); stbllm tensors with random bytes in their bit
 * planes (bit patterns the packer never writes). Expected values from the
 * unpacked bytes. */
static void test_invalid_masks(const bllm_kernel_set *emu, const bllm_kernel_set *lut, int n_cases, int n_types)
{
    /* its own draws, whatever the type tests before it drew */
    rng_state = TEST_RNG_SEED ^ 0x5bd1e995ull;
    static const bllm_type types[] = {BLLM_TYPE_NM24, BLLM_TYPE_NM48, BLLM_TYPE_NM58, BLLM_TYPE_NM68,
                                      BLLM_TYPE_STBLLM};
    for (size_t i = 0; i < (size_t)n_types; i++) {
        const bllm_type ty = types[i];
        stats st;
        exact_stats ex;
        memset(&st, 0, sizeof st);
        memset(&ex, 0, sizeof ex);
        for (int k = 0; k < n_cases; k++) {
            int rows = 32 * (1 + rng_int(6)), cols = 64 * (1 + rng_int(8)), n_tok = k & 1 ? 1 + rng_int(12) : 1;
            bllm_binary_decomp d, dc;
            uint8_t *w = random_tensor(ty, rows, cols, &d);
            uint64_t nb = bllm_type_tensor_bytes(ty, rows, cols);
            if (bllm_type_is_block(ty))
                corrupt_block_planes(ty, w, rows, cols, 1 + rng_int(200));
            else
                corrupt_nm_masks(ty, w, rows, cols, 1 + rng_int(24));
            if (bllm_binary_unpack(ty, w, nb, NULL, rows, cols, &dc) != BLLM_OK) {
                printf("  FAIL: unpack of the corrupted %s: %s\n", bllm_type_name(ty), bllm_last_error());
                st.bad++;
            } else {
                check_tensor(emu, lut, ty, rows, cols, n_tok, &dc, w, &st, &ex);
                bllm_binary_decomp_free(&dc);
            }
            bllm_binary_decomp_free(&d);
            free(w);
        }
        char what[48];
        snprintf(what, sizeof what, "%2d tensors, %s", n_cases,
                 bllm_type_is_block(ty) ? "random plane bytes" : "invalid masks");
        report(emu, lut, what, ty, &st, &ex, 0.03); /* 16 small tensors: a noisier statistic */
    }
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int n_cases = argc > 1 ? atoi(argv[1]) : 16;
    const bllm_kernel_set *lut = bllm_kernels_select("avx2-lut");
    if (!lut) {
        printf("skipped: the avx2-lut set does not run here: %s\n", bllm_last_error());
        return 77;
    }
    /* the emulation needs what the avx2 build needs (BMI2 for the N:M
     * decoders); without it avx2-lut holds the scalar kernels */
    if (lut->matmul[BLLM_TYPE_NM24] == bllm_kernels_scalar()->matmul[BLLM_TYPE_NM24]) {
        printf("skipped: the CPU lacks BMI1/BMI2/POPCNT, so avx2-lut runs the scalar kernels\n");
        return 77;
    }
    bllm_kernel_set emu = *lut;
    emu.name = "avx512-emu";
    bllm_binary_avx512emu_fill(emu.matmul, BLLM_BINARY_AUTO);

    for (int ty = 0; ty < BLLM_TYPE_COUNT; ty++)
        if (bllm_type_is_packed(ty))
            test_type(&emu, lut, ty, n_cases);
    test_invalid_masks(&emu, lut, n_cases, 5);

    /* The VBMI + VNNI lookups, and the native "avx512" set where the CPU
     * has it (whichever of the two builds dispatch.c chose): against
     * avx2-lut bit for bit (same integers) except the dense types, whose
     * one-byte quantized tables (bllm_binary_tq_group) have their own
     * reference. */
    bllm_kernel_set vnni = *lut;
    vnni.name = "avx512-vnni-emu";
    bllm_binary_avx512vnniemu_fill(vnni.matmul, BLLM_BINARY_AUTO);
    g_tq_more = vnni.matmul;
    const bllm_kernel_set *native512 = bllm_kernels_select("avx512");
    if (!native512)
        printf("native avx512 not run: %s\n", bllm_last_error());
    for (int ty = 0; ty < BLLM_TYPE_COUNT; ty++)
        if (bllm_type_is_packed(ty)) {
            test_type(&vnni, lut, ty, n_cases);
            if (native512)
                test_type(native512, lut, ty, n_cases);
        }
    test_invalid_masks(&vnni, lut, n_cases, 5);
    if (native512)
        test_invalid_masks(native512, lut, n_cases, 5);

    /* The popcount path (tile-shaped types; billm and stbllm keep the LUT
     * kernels): its emulated build and, where the CPU has it, its native
     * one, against the scalar popcount reference, which in turn must equal
     * avx2-lut wherever that sums in one block. */
    bllm_kernel_set spop = *lut, epop = emu;
    spop.name = "scalar-pop";
    bllm_binary_pop_fill_scalar(spop.matmul);
    epop.name = "avx512-pop-emu";
    bllm_binary_avx512popemu_fill(epop.matmul);
    const bllm_kernel_set *native = bllm_kernels_select("avx512-pop");
    if (!native)
        printf("native avx512-pop not run: %s\n", bllm_last_error());
    exact_stats cross;
    memset(&cross, 0, sizeof cross);
    g_cross_a = &spop, g_cross_b = lut, g_cross_ex = &cross;
    for (int ty = 0; ty < BLLM_TYPE_COUNT; ty++)
        if (bllm_type_is_packed(ty) && !bllm_type_is_block(ty)) {
            test_type(&epop, &spop, ty, n_cases);
            if (native)
                test_type(native, &spop, ty, n_cases);
        }
    test_invalid_masks(&epop, &spop, n_cases, 4);
    if (native)
        test_invalid_masks(native, &spop, n_cases, 4);
    g_cross_a = NULL;
    checks++;
    failures += cross.differ != 0;
    printf("scalar-pop vs avx2-lut (one table block): %ld of %ld floats differ %s\n", cross.differ, cross.compared,
           cross.differ ? "FAIL" : "ok");

    printf("\n%d checks, %d failed (AVX-512 kernels over SIMDe%s%s vs their references and the int8 reference)\n",
           checks, failures, native512 ? ", native avx512" : "", native ? ", native avx512-pop" : "");
    return failures ? 1 : 0;
}
