/* safetensors files (HF checkpoints), internal to the importers: several
 * files opened as one validated set of tensors. */
#ifndef BLLM_SAFETENSORS_H
#define BLLM_SAFETENSORS_H

#include "runtime/import/source_impl.h"

typedef enum {
    BLLM_ST_BOOL, BLLM_ST_U8, BLLM_ST_I8, BLLM_ST_F8_E4M3, BLLM_ST_F8_E5M2,
    BLLM_ST_I16, BLLM_ST_U16, BLLM_ST_F16, BLLM_ST_BF16,
    BLLM_ST_I32, BLLM_ST_U32, BLLM_ST_F32,
    BLLM_ST_I64, BLLM_ST_U64, BLLM_ST_F64,
} bllm_st_dtype;

#define BLLM_ST_MAX_DIMS 8

typedef struct {
    char *name;
    bllm_st_dtype dtype;
    int ndim;
    int64_t shape[BLLM_ST_MAX_DIMS];
    uint64_t numel;
    const uint8_t *data; /* into the owning file's mapping */
    uint64_t nbytes;
} bllm_st_tensor;

typedef struct {
    int n_files;
    bllm_mapped *maps;
    int n_tensors;
    bllm_st_tensor *tensors; /* sorted by name */
} bllm_safetensors;

/* Opens and validates every file (header JSON, dtypes, shapes, offsets
 * inside the data, no overlaps, no name in two files). */
bllm_status bllm_safetensors_open(const char *const *paths, int n_paths, bllm_safetensors **out);
void bllm_safetensors_close(bllm_safetensors *st);
const bllm_st_tensor *bllm_safetensors_find(const bllm_safetensors *st, const char *name);
const char *bllm_st_dtype_name(bllm_st_dtype t);
/* All numel values as F32; F32, F16 and BF16 only. */
bllm_status bllm_st_read_f32(const bllm_st_tensor *t, float *out);

#endif
