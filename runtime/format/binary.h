/* Packed binary weights (types b1 .. pb8, runtime/format/types.h): the explicit
 * decomposition a quantizer produces (signs, masks, scales), packing it into
 * the byte layouts of docs/format.md, reading those bytes back
 * (dequantization to f32, one 64-column group at a time for kernels), the
 * pb8 salient companion. The quantizers that produce decompositions live
 * in runtime/quant/. Internal to libbllm, its tools and tests; the SIMD
 * kernels build on the same layout (kernels/binary_*.c).
 *
 * The value of every weight is defined here, in f32, by the decomposition:
 *   b1      s ? a : -a                    a = alpha[r]
 *   b1g     s ? a : -a                    a = alpha[r][c/64]
 *   b1mg    mu + (s ? a : -a)             per row per 64 columns
 *   rb2g    (mu + (s1 ? a1 : -a1)) + (s2 ? a2 : -a2)
 *   nmNM    kept ? mu + (s ? a : -a) : 0
 *   onebit  s ? gh : -gh                  gh = g[r] * h[c] (one f32 product)
 *   pb8     salient ? (float)q * scale[r] : the b1g value
 *   billm   per row per 128-column block (the last may be 64 wide):
 *           salient column  (mu1 + (s ? a1 : -a1)) + (mu2 + (s2 ? a2 : -a2))
 *           other, s2 = 0   mu_c + (s ? a_c : -a_c)   (concentrated group)
 *           other, s2 = 1   mu_s + (s ? a_s : -a_s)   (sparse group)
 *   stbllm  per row per 128-column block, as billm, and pruned weights 0:
 *           pruned          0
 *           salient column  (mu1 + (s ? a1 : -a1)) + (mu2 + (s2 ? a2 : -a2))
 *           other, region k mu_k + (s ? a_k : -a_k)   k = 0, 1, 2 (|w| small
 *                                                     to large)
 * with every scale an fp16 value and every operation one f32 rounding, so
 * pack -> dequantize reproduces exactly what the quantizer meant. */
#ifndef BLLM_BINARY_H
#define BLLM_BINARY_H

#include <stdbool.h>
#include <stdint.h>

#include "bllm.h"
#include "runtime/format/types.h"

/* ------------------------------------------------------ decomposition */

/* One matrix of a packed type, unpacked: one byte per weight for signs and
 * masks (row-major rows x cols), f32 scales that must be exactly
 * representable in fp16 (bllm_fp16_round). Arrays a type does not use are
 * NULL. Group arrays are [rows][cols / 64]. */
typedef struct {
    bllm_type type;
    int rows, cols;
    uint8_t *sign;      /* all types: 1 = +1, 0 = -1 (nm: only kept positions
                           are stored) */
    uint8_t *sign2;     /* rb2g: the second (residual) sign plane; billm:
                           the residual sign in salient columns, the group
                           (1 = sparse) elsewhere; stbllm: the residual
                           sign in salient columns, 0 elsewhere */
    uint8_t *mask;      /* nm types: 1 = kept; exactly N per aligned group of
                           M columns. stbllm: 1 = kept (any count: its N:M
                           is the quantizer's promise, not the type's) */
    uint8_t *region;    /* stbllm: magnitude region 0..2 of a kept weight in
                           a non-salient column (0 elsewhere) */
    float *alpha;       /* b1: [rows]; b1g, b1mg, rb2g, nm, pb8: groups */
    float *alpha2;      /* rb2g: groups */
    float *mu;          /* b1mg, rb2g, nm: groups */
    float *g, *h;       /* onebit: [rows], [cols] */
    uint8_t *salient;   /* pb8: 1 = salient (value q * sal_scale[r]) */
    int8_t *q;          /* pb8: int8 value at salient positions */
    float *sal_scale;   /* pb8: [rows] */
    uint8_t *col_salient; /* billm, stbllm: [cols], 1 = salient column (every
                           row) */
    float *bscale;      /* billm, stbllm: [rows][blocks][bllm_blk_scales(type)],
                           blocks = ceil(cols / 128) */
} bllm_binary_decomp;

/* The scales of a billm block row, in their stored order. */
enum {
    BLLM_BILLM_MU_C, BLLM_BILLM_A_C, /* concentrated group (small |w|) */
    BLLM_BILLM_MU_S, BLLM_BILLM_A_S, /* sparse group (large |w|) */
    BLLM_BILLM_MU_1, BLLM_BILLM_A_1, /* salient columns, first order */
    BLLM_BILLM_MU_2, BLLM_BILLM_A_2, /* salient columns, residual */
    BLLM_BILLM_SCALES
};
/* The scales of an stbllm block row, in their stored order. */
enum {
    BLLM_STBLLM_MU_R0, BLLM_STBLLM_A_R0, /* non-salient, |w| < p */
    BLLM_STBLLM_MU_R1, BLLM_STBLLM_A_R1, /* p <= |w| < 2p */
    BLLM_STBLLM_MU_R2, BLLM_STBLLM_A_R2, /* 2p <= |w| */
    BLLM_STBLLM_MU_1, BLLM_STBLLM_A_1,   /* salient columns, first order */
    BLLM_STBLLM_MU_2, BLLM_STBLLM_A_2,   /* salient columns, residual */
    BLLM_STBLLM_SCALES
};

/* The block types (billm, stbllm) share one layout (docs/format.md): per
 * 32-row tile row, per column block b (128 columns, the last 64 when cols %
 * 128 == 64), for each 64-column half h its bit planes (256 bytes each, the
 * sign plane first) at half_bytes * h, then the scales, scale k of tile row
 * j at half_bytes * halves + 2 (32 k + j). After all tile rows, one bit per
 * column (1 = salient). billm has 2 planes (sign, second) and 8 scales;
 * stbllm 3 planes (sign, A, B) and 10 scales. stbllm's A and B: in a salient
 * column A = kept, B = the residual sign; elsewhere (A, B) = 00 pruned, 01
 * region 0, 10 region 1, 11 region 2. Pruned weights have every bit 0. */
static inline bool bllm_type_is_block(bllm_type t) { return t == BLLM_TYPE_BILLM || t == BLLM_TYPE_STBLLM; }
static inline int bllm_blk_planes(bllm_type t) { return t == BLLM_TYPE_STBLLM ? 3 : 2; }
static inline int bllm_blk_scales(bllm_type t)
{
    return t == BLLM_TYPE_STBLLM ? BLLM_STBLLM_SCALES : BLLM_BILLM_SCALES;
}
static inline size_t bllm_blk_half_bytes(bllm_type t) { return 256 * (size_t)bllm_blk_planes(t); }
/* Bytes of one block of a tile row, with `halves` 64-column halves. */
static inline size_t bllm_blk_block_bytes(bllm_type t, int halves)
{
    return (size_t)halves * bllm_blk_half_bytes(t) + 64 * (size_t)bllm_blk_scales(t);
}
/* Column blocks of a block-type matrix. */
static inline int bllm_billm_blocks(int cols) { return (cols + BLLM_BILLM_BLOCK - 1) / BLLM_BILLM_BLOCK; }
static inline size_t bllm_blk_tile_row_bytes(bllm_type t, int cols)
{
    return (size_t)(cols / BLLM_BILLM_BLOCK) * bllm_blk_block_bytes(t, 2) +
           (cols % BLLM_BILLM_BLOCK ? bllm_blk_block_bytes(t, 1) : 0);
}
static inline int bllm_billm_halves(int cols, int b)
{
    return cols - b * BLLM_BILLM_BLOCK >= BLLM_BILLM_BLOCK ? 2 : 1;
}
static inline const uint8_t *bllm_blk_flags(bllm_type t, const void *w, int rows, int cols)
{
    return (const uint8_t *)w + (size_t)(rows / 32) * bllm_blk_tile_row_bytes(t, cols);
}

/* Allocate (zeroed) the arrays type uses. Refuses a non-packed type or a
 * shape the type does not accept (rows % 32, cols % 64). */
bllm_status bllm_binary_decomp_init(bllm_binary_decomp *d, bllm_type type, int rows, int cols);
void bllm_binary_decomp_free(bllm_binary_decomp *d);
/* The f32 value weight (r, c) has under the decomposition (the formulas
 * above, pb8 salient positions included). */
float bllm_binary_decomp_value(const bllm_binary_decomp *d, int r, int c);
/* The nearest fp16 value, as an f32 (what every stored scale must be). */
float bllm_fp16_round(float x);

/* Pack into the type's byte layout; nbytes must be
 * bllm_type_tensor_bytes(type, rows, cols). Refuses (BLLM_ERR_ARG, with the
 * position) a sign or mask byte other than 0/1, an N:M group without exactly
 * N kept, a non-finite scale or one fp16 cannot hold exactly. For pb8 this
 * writes the b1g part; the companion comes from bllm_pb8_salient_pack. */
bllm_status bllm_binary_pack(const bllm_binary_decomp *d, void *out, uint64_t nbytes);

/* ------------------------------------------------------- N:M patterns */

/* N, M and the pattern-code width (M bits) of an nm type; false for other
 * types. */
bool bllm_nm_params(bllm_type type, int *n, int *m, int *code_bits);
/* Kept-position mask (bit p = column p of the group kept) of a stored
 * pattern code. The code is that mask itself; a code without exactly N of
 * its M bits set never appears in a valid file and decodes to 0 (all
 * pruned). */
uint32_t bllm_nm_code_mask(bllm_type type, uint32_t code);
/* Inverse: the code of a mask with exactly N bits among the low M; -1 else. */
int bllm_nm_mask_code(bllm_type type, uint32_t mask);

/* ------------------------------------------------ pb8 salient companion */

/* A validated view of "X.salient" (u8 tensor; layout in docs/format.md):
 * CSR over rows, columns strictly increasing within a row. Points into the
 * companion's bytes. */
typedef struct {
    int rows, cols;
    uint32_t nnz;
    const uint32_t *row_ptr; /* rows + 1 entries; row r is [row_ptr[r], row_ptr[r+1]) */
    const uint16_t *scale;   /* fp16 [rows] */
    const uint16_t *col;     /* [nnz] */
    const int8_t *val;       /* [nnz] */
} bllm_pb8_salient;

#define BLLM_PB8_SALIENT_MAGIC "PB8S"
#define BLLM_PB8_SALIENT_VERSION 1u
#define BLLM_PB8_SALIENT_HEADER 24u
/* Bytes of a companion with rows rows and nnz salient weights. */
uint64_t bllm_pb8_salient_bytes(uint64_t rows, uint64_t nnz);
/* Build the companion from a pb8 decomposition; *out is malloc'ed. */
bllm_status bllm_pb8_salient_pack(const bllm_binary_decomp *d, void **out, uint64_t *nbytes);
/* Validate everything a kernel will trust (magic, version, rows and cols
 * equal to the matrix's, size, row_ptr monotone and ending at nnz, columns
 * in range and strictly increasing per row, finite scales) and fill *out.
 * data must be 4-byte aligned (tensor data in a .stb is 64-byte aligned).
 * name is used in messages. */
bllm_status bllm_pb8_salient_parse(const void *data, uint64_t nbytes, int rows, int cols, const char *name,
                                   bllm_pb8_salient *out);

/* ------------------------------------------------------ dequantization */

/* The 64 values of row r, columns 64*grp .. 64*grp+63, of a packed tensor
 * w (rows x cols, shape already validated). pb8 decodes as b1g: the salient
 * part is separate (bllm_pb8_apply_salient, bllm_salient_matvec). */
void bllm_binary_dequant_group(bllm_type type, const void *w, int rows, int cols, int r, int grp,
                               float out[BLLM_GROUP]);
/* One weight, as above. */
float bllm_binary_weight(bllm_type type, const void *w, int rows, int cols, int r, int c);
/* One row of one 64-column group of a tile-shaped type (b1 .. pb8, not
 * billm or stbllm) as words and scales, for kernels that work on a row's
 * bits at once (the popcount path, kernels/binary_pop.h): bit c of each
 * word is column c of the group. N:M: mask = the kept columns, sign = the
 * kept signs scattered to them (the i-th kept column takes stored sign bit
 * i, whatever the mask); other types: mask all ones. Scales as stored (fp16
 * read as f32), 0 where the type has none; b1's alpha[r] and onebit's g[r]
 * are rscale (1 for the rest); onebit's h is bllm_onebit_h. */
typedef struct {
    uint64_t sign, sign2, mask;
    float alpha, alpha2, mu, rscale;
} bllm_binary_row_group;
void bllm_binary_row_group_get(bllm_type type, const void *w, int rows, int cols, int r, int grp,
                               bllm_binary_row_group *out);
/* onebit's column scales h, fp16[cols]. */
const uint16_t *bllm_onebit_h(const void *w, int rows, int cols);
/* Rows r0..r1-1 (any rows) into out[(r1 - r0) * cols]; sal (pb8 only, may
 * be NULL) replaces the salient positions. */
void bllm_binary_dequant_rows(bllm_type type, const void *w, const bllm_pb8_salient *sal, int rows, int cols,
                              int r0, int r1, float *out);
/* Checked whole-tensor form: verifies the type, shape and nbytes first. */
bllm_status bllm_binary_dequantize(bllm_type type, const void *w, uint64_t nbytes, const bllm_pb8_salient *sal,
                                   int rows, int cols, float *out);
/* Read packed bytes back into a decomposition (d is initialized here; free
 * with bllm_binary_decomp_free). Signs at pruned N:M positions read as 0. */
bllm_status bllm_binary_unpack(bllm_type type, const void *w, uint64_t nbytes, const bllm_pb8_salient *sal,
                               int rows, int cols, bllm_binary_decomp *d);

/* -------------------------------------------------- kernel-layer entry */

/* pb8's sparse part of y = x W^T, for rows r0..r1-1 (any split): adds
 *   sum over salient (r, c), in increasing c, of (q * scale[r] - b(r, c)) * x[t][c]
 * to y[t][r], where b is the b1g value stored at (r, c) in w (the salient
 * value replaces it). The scalar reference (kernels/binary_scalar.c) of
 * bllm_kernel_set.salient_matvec, which the forward pass calls after the
 * pb8 matmul (kernels->matmul[BLLM_TYPE_PB8] computes the b1g part only). */
void bllm_salient_matvec(float *y, const float *x, const void *w, const bllm_pb8_salient *s, int n_tok, int cols,
                         int rows, int r0, int r1);

#endif
