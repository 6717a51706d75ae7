/* Compute kernels with one dispatch point.
 *
 * bllm_kernels() picks, on first use, the best implementation the CPU supports
 * (overridable with BLLM_KERNELS=scalar|avx2|... so tests can force each
 * path); every fast path must match the scalar reference in kernels/scalar.c.
 *
 * Matrix convention: W is rows x cols, row-major, in its storage type; x is
 * n_tok x cols (f32, row stride cols); y is n_tok x rows (f32, row stride
 * rows). y = x W^T, i.e. y[t][r] = sum_c W[r][c] x[t][c]. The kernels compute
 * the rows r0..r1-1 only, so callers split work across threads by rows. */
#ifndef BLLM_KERNELS_H
#define BLLM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/format/binary.h"
#include "runtime/format/types.h"

typedef void (*bllm_matmul_fn)(float *y, const float *x, const void *w, int n_tok,
                               int cols, int rows, int r0, int r1);

/* A promise about a product's input. A caller about to run matmul kernels
 * on this thread several times over one x that nobody writes in between
 * (the row batches of one product shared between threads; Q, K and V on
 * one input) opens a scope with an id no earlier scope had; a kernel that
 * kept work prepared from x (kernels/binary_x86.h) then reuses it within
 * the scope when x is the same pointer, without comparing its contents
 * again. Outside a scope (id 0, the default) kernels trust nothing. */
void bllm_matmul_scope_begin(uint64_t id);
void bllm_matmul_scope_end(void);
uint64_t bllm_matmul_scope(void);

/* pb8's salient part, added to y after matmul[BLLM_TYPE_PB8] (which computes
 * the b1g part): the contract of bllm_salient_matvec (runtime/format/binary.h),
 * the scalar reference. Rows r0..r1-1, any split. */
typedef void (*bllm_salient_fn)(float *y, const float *x, const void *w, const bllm_pb8_salient *s,
                                int n_tok, int cols, int rows, int r0, int r1);

/* The packed binary types, for the lists of kernels each ISA file defines
 * and registers: X(name, TYPE, KTYPE), KTYPE the type whose bytes the
 * kernels read (pb8's tiles are b1g's; its salient part is the set's
 * salient_matvec). The tile-shaped types, then the block types, which have
 * no popcount path. */
#define BLLM_TILE_TYPES(X)                                                                                   \
    X(b1, BLLM_TYPE_B1, BLLM_TYPE_B1)                                                                         \
    X(b1g, BLLM_TYPE_B1G, BLLM_TYPE_B1G)                                                                      \
    X(b1mg, BLLM_TYPE_B1MG, BLLM_TYPE_B1MG)                                                                   \
    X(rb2g, BLLM_TYPE_RB2G, BLLM_TYPE_RB2G)                                                                   \
    X(nm24, BLLM_TYPE_NM24, BLLM_TYPE_NM24)                                                                   \
    X(nm48, BLLM_TYPE_NM48, BLLM_TYPE_NM48)                                                                   \
    X(nm58, BLLM_TYPE_NM58, BLLM_TYPE_NM58)                                                                   \
    X(nm68, BLLM_TYPE_NM68, BLLM_TYPE_NM68)                                                                   \
    X(onebit, BLLM_TYPE_ONEBIT, BLLM_TYPE_ONEBIT)                                                             \
    X(pb8, BLLM_TYPE_PB8, BLLM_TYPE_B1G)
#define BLLM_BLOCK_TYPES(X)                                                                                  \
    X(billm, BLLM_TYPE_BILLM, BLLM_TYPE_BILLM)                                                                \
    X(stbllm, BLLM_TYPE_STBLLM, BLLM_TYPE_STBLLM)

typedef struct {
    const char *name;
    bllm_matmul_fn matmul[BLLM_TYPE_COUNT]; /* NULL: type not supported here */
    bllm_salient_fn salient_matvec;         /* never NULL in a set bllm_kernels* returns */
    /* Kernels on the row-interleaved x16 layout of a block-quantized type
     * (kernels/blockq.h), where this set runs it faster than the file's
     * layout; NULL for the others. Callers repack (bllm_blockq_repack_x16)
     * the matrices worth the copy (the forward pass: the output head). */
    bllm_matmul_fn matmul_x16[BLLM_TYPE_COUNT];
    float (*dot_f32)(const float *a, const float *b, int n);
    /* y += a * x */
    void (*axpy_f32)(float *y, float a, const float *x, int n);
    /* the same with b, x in f16 (the KV cache) */
    float (*dot_f16)(const float *a, const uint16_t *b, int n);
    void (*axpy_f16)(float *y, float a, const uint16_t *x, int n);
    /* y = x, f16 to f32 (exact) */
    void (*cvt_f16_f32)(float *y, const uint16_t *x, int n);
    /* y = x rounded to f16 as bllm_f32_to_f16 rounds, bit for bit (nearest
     * even, overflow to inf, NaN kept quiet): the f16 cache's writes */
    void (*cvt_f32_f16)(uint16_t *y, const float *x, int n);
    /* the same with b, x in q8 blocks (the q8 KV cache): n / 32 blocks of
     * an fp16 scale d and 32 int8 q, value d * q (runtime/format/blockq.h);
     * n a multiple of 32. dot sums each block's products, then d times
     * that; axpy and cvt form d * q (exact) and use it as the f16 ones. */
    float (*dot_q8)(const float *a, const uint8_t *b, int n);
    void (*axpy_q8)(float *y, float a, const uint8_t *x, int n);
    void (*cvt_q8_f32)(float *y, const uint8_t *x, int n);
    /* x[i] = e^(x[i] - max) for i < n, returning their sum: a softmax's
     * numerators (attention) */
    float (*exp_sub_sum)(float *x, int n, float max);
    /* gate[i] = silu(gate[i]) * up[i] (the SwiGLU) */
    void (*swiglu)(float *gate, const float *up, size_t n);
    /* Attention of nq query rows (q, nq x hd, row stride hd) over the n >= 1
     * keys and values of one head of an f16 cache (row j at k + j * stride,
     * v + j * stride): out[g] = sum_j p_gj v_j, p_g = softmax(scale * q_g .
     * k_j), nq x hd. The query heads of a GQA group share one call, so each
     * cached row is converted once for all of them. scores: nq * n floats
     * of scratch. NULL in sets without it (the forward pass then composes
     * dot_f16 and axpy_f16). */
    void (*attend_f16)(float *out, const float *q, int nq, int hd, const uint16_t *k, const uint16_t *v,
                       size_t stride, int n, float scale, float *scores);
} bllm_kernel_set;

/* Pick the kernel set; name NULL = best available (or $BLLM_KERNELS).
 * Returns NULL if the named set is unknown or not supported by this CPU. */
const bllm_kernel_set *bllm_kernels_select(const char *name);
/* The active set, initialized on first use. If $BLLM_KERNELS names a set
 * that is unknown or unsupported here, the reason goes to stderr and the
 * scalar set is used (kernels/dispatch.c). */
const bllm_kernel_set *bllm_kernels(void);

const bllm_kernel_set *bllm_kernels_scalar(void);
/* The scalar set's exp_sub_sum and swiglu (libm's expf), which the NEON
 * sets share. */
float bllm_exp_sub_sum_scalar(float *x, int n, float max);
void bllm_swiglu_scalar(float *gate, const float *up, size_t n);
/* The scalar set's attend_f16, which the SIMD ones fall back on for head
 * sizes they do not take (not a multiple of their vector width, or above
 * 256). */
void bllm_attend_f16_scalar(float *out, const float *q, int nq, int hd, const uint16_t *k, const uint16_t *v,
                            size_t stride, int n, float scale, float *scores);
/* x86 only: the avx512 sets' attend_f16 (kernels/attend_avx512.c) */
void bllm_attend_f16_avx512(float *out, const float *q, int nq, int hd, const uint16_t *k, const uint16_t *v,
                            size_t stride, int n, float scale, float *scores);
const bllm_kernel_set *bllm_kernels_avx2(void); /* NULL if not compiled in */
/* aarch64 only, NULL elsewhere. neon: packed binary types by int8 table
 * lookups (also named "neon-lut"); neon-float: the same set with the float
 * path for those types. */
const bllm_kernel_set *bllm_kernels_neon(void);
const bllm_kernel_set *bllm_kernels_neon_float(void);

#endif
