/* GGUF (v2/v3) reading, internal to the importers: a validated view of a
 * memory-mapped file, plus row dequantization of the ggml block formats
 * (gguf_dequant.c). Every offset and length is checked against the file at
 * open, so later accessors index the mapping without further checks. */
#ifndef BLLM_GGUF_H
#define BLLM_GGUF_H

#include <stdbool.h>
#include <stdint.h>

#include "bllm.h"
#include "runtime/import/source_impl.h"

/* Metadata value types (GGUF numbering). */
enum {
    BLLM_GGUF_UINT8 = 0,
    BLLM_GGUF_INT8 = 1,
    BLLM_GGUF_UINT16 = 2,
    BLLM_GGUF_INT16 = 3,
    BLLM_GGUF_UINT32 = 4,
    BLLM_GGUF_INT32 = 5,
    BLLM_GGUF_FLOAT32 = 6,
    BLLM_GGUF_BOOL = 7,
    BLLM_GGUF_STRING = 8,
    BLLM_GGUF_ARRAY = 9,
    BLLM_GGUF_UINT64 = 10,
    BLLM_GGUF_INT64 = 11,
    BLLM_GGUF_FLOAT64 = 12,
};

/* ggml tensor types found in GGUF files (ggml.h numbering). */
enum {
    BLLM_GGML_F32 = 0,
    BLLM_GGML_F16 = 1,
    BLLM_GGML_Q4_0 = 2,
    BLLM_GGML_Q4_1 = 3,
    BLLM_GGML_Q5_0 = 6,
    BLLM_GGML_Q5_1 = 7,
    BLLM_GGML_Q8_0 = 8,
    BLLM_GGML_Q2_K = 10,
    BLLM_GGML_Q3_K = 11,
    BLLM_GGML_Q4_K = 12,
    BLLM_GGML_Q5_K = 13,
    BLLM_GGML_Q6_K = 14,
    BLLM_GGML_Q8_K = 15,
    BLLM_GGML_I8 = 24,
    BLLM_GGML_I16 = 25,
    BLLM_GGML_I32 = 26,
    BLLM_GGML_F64 = 28,
    BLLM_GGML_BF16 = 30,
};

typedef struct {
    const char *key; /* into the mapping, not NUL-terminated */
    uint64_t key_len;
    uint32_t type;
    /* Scalars and strings: val points at the value (a string at its u64
     * length prefix). Arrays: arr_type, arr_n, val at the first element and,
     * for string arrays, str_off[i] = offset of element i from val. */
    const uint8_t *val;
    uint32_t arr_type;
    uint64_t arr_n;
    uint64_t *str_off;
} bllm_gguf_kv;

typedef struct {
    char name[96];
    uint32_t n_dims;
    int64_t ne[4];   /* ggml order: ne[0] is the innermost (columns) */
    uint32_t type;
    uint64_t offset; /* from the start of the data section */
    uint64_t nbytes;
    const uint8_t *data;
} bllm_gguf_tensor;

typedef struct {
    bllm_mapped map;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;
    uint64_t n_kv;
    bllm_gguf_kv *kv;
    uint64_t n_tensors;
    bllm_gguf_tensor *tensors;
} bllm_gguf;

bllm_status bllm_gguf_open(const char *path, bllm_gguf **out);
void bllm_gguf_close(bllm_gguf *g);

const bllm_gguf_kv *bllm_gguf_find(const bllm_gguf *g, const char *key);
const bllm_gguf_tensor *bllm_gguf_find_tensor(const bllm_gguf *g, const char *name);
/* Getters: BLLM_ERR_NOT_FOUND when absent (no message set), BLLM_ERR_FORMAT
 * when the value has an incompatible type or does not fit. Integer getters
 * take any integer type; f32 takes FLOAT32/FLOAT64. */
bllm_status bllm_gguf_get_u32(const bllm_gguf *g, const char *key, uint32_t *v);
bllm_status bllm_gguf_get_i64(const bllm_gguf *g, const char *key, int64_t *v);
bllm_status bllm_gguf_get_f32(const bllm_gguf *g, const char *key, float *v);
bllm_status bllm_gguf_get_bool(const bllm_gguf *g, const char *key, bool *v);
bllm_status bllm_gguf_get_str(const bllm_gguf *g, const char *key, const char **s, uint64_t *len);
/* An array whose elements have type elem_type. */
bllm_status bllm_gguf_get_arr(const bllm_gguf *g, const char *key, uint32_t elem_type,
                              const bllm_gguf_kv **kv);
void bllm_gguf_arr_str(const bllm_gguf_kv *kv, uint64_t i, const char **s, uint64_t *len);

/* ---- ggml types (gguf_dequant.c) ---- */
/* Name ("Q4_K") or NULL for an id this reader does not know. */
const char *bllm_ggml_type_name(uint32_t type);
/* Block geometry; false for unknown ids. */
bool bllm_ggml_type_size(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes);
bool bllm_ggml_type_can_dequant(uint32_t type);
/* Dequantize n values (a multiple of the block size) from src. */
bllm_status bllm_ggml_dequant(uint32_t type, const void *src, float *dst, uint64_t n);

#endif
