/* Tensor element types of the .stb format. Each type describes its own
 * layout through two functions, shape_ok(rows, cols) and
 * tensor_bytes(rows, cols), so per-row and per-column trailers (b1, onebit)
 * are expressible and every stored byte is counted: bits per weight are
 * exact (8 * bytes / weights). Byte layouts are in docs/format.md.
 * New types append with new ids; ids are never reused. */
#ifndef BLLM_TYPES_H
#define BLLM_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    BLLM_TYPE_F32 = 0,
    BLLM_TYPE_F16 = 1,
    BLLM_TYPE_BF16 = 2,
    /* Packed binary weights: 32x64 sign tiles (docs/format.md). */
    BLLM_TYPE_B1 = 3,     /* alpha[r] * s */
    BLLM_TYPE_B1G = 4,    /* alpha[r][c/64] * s */
    BLLM_TYPE_B1MG = 5,   /* mu + alpha * s, per row per 64 columns */
    BLLM_TYPE_RB2G = 6,   /* mu + alpha1 * s1 + alpha2 * s2 */
    BLLM_TYPE_NM24 = 7,   /* N:M sparse: kept ? mu + alpha * s : 0 */
    BLLM_TYPE_NM48 = 8,
    BLLM_TYPE_NM58 = 9,
    BLLM_TYPE_NM68 = 10,
    BLLM_TYPE_ONEBIT = 11, /* g[r] * s * h[c] */
    BLLM_TYPE_PB8 = 12,   /* b1g bytes; salient int8 part in "X.salient" */
    BLLM_TYPE_U8 = 13,    /* raw bytes (companion data, 1-D) */
    BLLM_TYPE_BILLM = 14, /* BiLLM: salient columns mu1 + a1 s1 + mu2 + a2 s2,
                             the rest mu + a s in two magnitude groups, per
                             row per 128 columns */
    BLLM_TYPE_STBLLM = 15, /* STBLLM: billm's salient columns and blocks, the
                             rest in three magnitude regions, every weight
                             kept or pruned (N:M by the quantizer) */
    /* Block-quantized rows for the matrices that stay out of binarization
     * (token embedding, output head): per row, per 32 columns, an fp16
     * scale d and 32 values (runtime/format/blockq.h). */
    BLLM_TYPE_Q8 = 16,    /* d * q, q int8 in [-127, 127]: 8.5 bits */
    BLLM_TYPE_Q4 = 17,    /* d * (q - 8), q 4 bits: 4.5 bits */
    BLLM_TYPE_Q6 = 18,    /* d * (q - 32), q 6 bits: 6.5 bits */
    BLLM_TYPE_Q4NL = 19,  /* d * level[q], q 4 bits, 16 non-uniform int8
                             levels: 4.5 bits */
    BLLM_TYPE_COUNT
} bllm_type;

/* Packed types tile 32 rows x 64 columns; group scales cover 64 columns
 * (billm's cover blocks of two groups). */
#define BLLM_TILE_ROWS 32
#define BLLM_TILE_COLS 64
#define BLLM_GROUP 64
#define BLLM_BILLM_BLOCK 128

typedef struct {
    const char *name;
    /* Bytes per weight for element types (f32, f16, bf16, u8); 0 for the
     * packed types, whose weights share bytes. */
    uint32_t elem_bytes;
    bool packed;
    bool (*shape_ok)(uint64_t rows, uint64_t cols);
    /* Bytes of a rows x cols tensor; the shape must be ok; 0 on overflow. */
    uint64_t (*tensor_bytes)(uint64_t rows, uint64_t cols);
} bllm_type_traits;

bool bllm_type_valid(uint32_t type);
const bllm_type_traits *bllm_type_get(bllm_type type);
const char *bllm_type_name(bllm_type type);
/* Look a type up by its name ("f32", "b1g", "nm24", ...). */
bool bllm_type_from_name(const char *name, bllm_type *out);
/* The packed binary weight types (b1 .. pb8, billm). */
bool bllm_type_is_packed(bllm_type type);
/* The block-quantized row types (q8, q6, q4, q4nl). */
bool bllm_type_is_blockq(bllm_type type);
bool bllm_type_shape_ok(bllm_type type, uint64_t rows, uint64_t ncols);
/* Bytes of one row of ncols weights, for element types only (f32, f16,
 * bf16, u8): 0 for packed types, whose rows do not own whole bytes. */
uint64_t bllm_type_row_bytes(bllm_type type, uint64_t ncols);
/* Bytes of a whole tensor (rows x ncols); 0 if the shape does not fit the
 * type or the size overflows. The single source of truth for the .stb
 * reader and writer. For a tensor of more than 2 dims, rows is the product
 * of all dims but the last. */
uint64_t bllm_type_tensor_bytes(bllm_type type, uint64_t rows, uint64_t ncols);
/* 8 * tensor_bytes / (rows * ncols); 0 if the shape does not fit. For pb8
 * this is the b1g part only: the companion "X.salient" adds its own bytes. */
double bllm_type_bits_per_weight(bllm_type type, uint64_t rows, uint64_t ncols);

/* Half-precision conversions (scalar, exact round-to-nearest-even). */
float bllm_f16_to_f32(uint16_t h);
uint16_t bllm_f32_to_f16(float f);
float bllm_bf16_to_f32(uint16_t h);
uint16_t bllm_f32_to_bf16(float f);

#endif
