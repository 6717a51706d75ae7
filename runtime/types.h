/* Tensor element types of the .stb format. Each type describes its own
 * layout: a row of `ncols` weights occupies bllm_type_row_bytes() bytes, and
 * its true cost in bits per weight follows from that. Packed binary types
 * append here with new ids; ids are never reused. */
#ifndef BLLM_TYPES_H
#define BLLM_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    BLLM_TYPE_F32 = 0,
    BLLM_TYPE_F16 = 1,
    BLLM_TYPE_BF16 = 2,
    BLLM_TYPE_COUNT
} bllm_type;

typedef struct {
    const char *name;
    uint32_t block_elems;  /* weights per block along a row */
    uint32_t block_bytes;  /* bytes per block */
} bllm_type_traits;

bool bllm_type_valid(uint32_t type);
const bllm_type_traits *bllm_type_get(bllm_type type);
const char *bllm_type_name(bllm_type type);
/* Bytes of one row of ncols weights; 0 if ncols is not a multiple of the
 * type's block size. */
uint64_t bllm_type_row_bytes(bllm_type type, uint64_t ncols);
/* Bytes of a whole tensor (rows x ncols); 0 if invalid; saturates to 0 on
 * overflow. */
uint64_t bllm_type_tensor_bytes(bllm_type type, uint64_t rows, uint64_t ncols);

/* Half-precision conversions (scalar, exact round-to-nearest-even). */
float bllm_f16_to_f32(uint16_t h);
uint16_t bllm_f32_to_f16(float f);
float bllm_bf16_to_f32(uint16_t h);
uint16_t bllm_f32_to_bf16(float f);

#endif
