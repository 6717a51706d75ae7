/* The .stb container: reading (mmap, validated) and writing (streamed).
 * Byte layout in docs/format.md. Internal to libbllm and its tools. */
#ifndef BLLM_STB_H
#define BLLM_STB_H

#include "bllm.h"
#include "types.h"

#define BLLM_STB_MAGIC "BLLMSTB\0"
/* Version 2 changed the N:M layouts (kept masks instead of pattern codes);
 * version 1 files still load unless they hold an N:M tensor. Version 3
 * added the q4nl tensor type and U16 metadata (the tokenizer's merges as
 * token-id pairs); earlier files are a subset of it. */
#define BLLM_STB_VERSION 3u
#define BLLM_STB_VERSION_MIN 1u
#define BLLM_STB_HEADER_BYTES 128u
#define BLLM_STB_ALIGN 64u
#define BLLM_STB_MAX_DIMS 4

/* Metadata value types as stored in the file. */
typedef enum {
    BLLM_META_U8 = 0,
    BLLM_META_BOOL = 1,
    BLLM_META_I32 = 2,
    BLLM_META_U32 = 3,
    BLLM_META_F32 = 4,
    BLLM_META_U64 = 5,
    BLLM_META_F64 = 6,
    BLLM_META_STR = 7,
    BLLM_META_ARR = 8, /* element type (not ARR) + count + elements */
    BLLM_META_U16 = 9, /* version 3 */
} bllm_meta_type;

typedef struct {
    const char *name;     /* NUL-terminated copy owned by the file handle */
    bllm_type type;
    int ndim;
    int64_t dims[BLLM_STB_MAX_DIMS]; /* PyTorch order: dims[0] = rows (out) */
    uint64_t offset;      /* from the start of the data section */
    uint64_t nbytes;
    uint64_t checksum;    /* XXH3-64 of the bytes */
    const void *data;     /* points into the mapping */
} bllm_stb_tensor;

typedef struct bllm_stb_file bllm_stb_file;

/* Map and validate a file: header, metadata, directory, bounds, alignment,
 * overlaps, byte sizes against types and shapes. Checksums only if asked. */
bllm_status bllm_stb_open(const char *path, bool verify_checksums,
                          bllm_stb_file **out);
/* The same checks on a copy of the file in huge-page memory (runtime/
 * memory.h): what inference wants, since a token streams every weight and
 * the mapping's 4 KiB pages cost 12-28% of decode speed. Costs a read of
 * the file at load and its size in memory beside the page cache. */
bllm_status bllm_stb_load(const char *path, bool verify_checksums,
                          bllm_stb_file **out);
void bllm_stb_close(bllm_stb_file *f);
uint64_t bllm_stb_file_bytes(const bllm_stb_file *f);
bllm_status bllm_stb_verify_checksums(const bllm_stb_file *f);

int bllm_stb_n_tensors(const bllm_stb_file *f);
const bllm_stb_tensor *bllm_stb_tensor_at(const bllm_stb_file *f, int i);
const bllm_stb_tensor *bllm_stb_find_tensor(const bllm_stb_file *f, const char *name);

/* Metadata lookups. They return BLLM_ERR_NOT_FOUND if the key is absent and
 * BLLM_ERR_FORMAT (with a message) if it holds another type. Integer getters
 * accept any integer-typed value that fits. */
bllm_status bllm_stb_get_u32(const bllm_stb_file *f, const char *key, uint32_t *v);
bllm_status bllm_stb_get_i32(const bllm_stb_file *f, const char *key, int32_t *v);
bllm_status bllm_stb_get_u64(const bllm_stb_file *f, const char *key, uint64_t *v);
bllm_status bllm_stb_get_f32(const bllm_stb_file *f, const char *key, float *v);
bllm_status bllm_stb_get_bool(const bllm_stb_file *f, const char *key, bool *v);
/* Strings are not NUL-terminated in the mapping; len is their byte count. */
bllm_status bllm_stb_get_str(const bllm_stb_file *f, const char *key,
                             const char **s, size_t *len);

/* Arrays: numeric arrays expose a pointer to little-endian elements in the
 * mapping (possibly unaligned: read with memcpy); string arrays are indexed. */
typedef struct {
    bllm_meta_type elem_type;
    uint64_t count;
    const uint8_t *data;       /* numeric elements */
    const uint32_t *str_offs;  /* string arrays: offset of element i's length
                                  prefix, relative to data (owned by the file) */
} bllm_stb_array;
bllm_status bllm_stb_get_array(const bllm_stb_file *f, const char *key, bllm_stb_array *arr);
/* Element i of a string array. */
void bllm_stb_array_str(const bllm_stb_array *arr, uint64_t i, const char **s, size_t *len);
float bllm_stb_array_f32(const bllm_stb_array *arr, uint64_t i);
int32_t bllm_stb_array_i32(const bllm_stb_array *arr, uint64_t i);
uint16_t bllm_stb_array_u16(const bllm_stb_array *arr, uint64_t i);

/* Iterate metadata keys (for bllm-info and debugging). */
int bllm_stb_n_meta(const bllm_stb_file *f);
const char *bllm_stb_meta_key(const bllm_stb_file *f, int i);
bllm_meta_type bllm_stb_meta_type(const bllm_stb_file *f, int i);

/* ---- writing ----
 * Usage: set metadata; declare every tensor (name, type, shape); begin();
 * then write each tensor's bytes in declaration order; finish(). Memory use
 * stays at one tensor: data streams to disk, checksums are patched at the end.
 * The file appears under its final name only when finish() succeeds. */
typedef struct bllm_stb_writer bllm_stb_writer;

bllm_stb_writer *bllm_stb_writer_new(void);
void bllm_stb_writer_free(bllm_stb_writer *w);

bllm_status bllm_stb_set_u32(bllm_stb_writer *w, const char *key, uint32_t v);
bllm_status bllm_stb_set_i32(bllm_stb_writer *w, const char *key, int32_t v);
bllm_status bllm_stb_set_u64(bllm_stb_writer *w, const char *key, uint64_t v);
bllm_status bllm_stb_set_f32(bllm_stb_writer *w, const char *key, float v);
bllm_status bllm_stb_set_bool(bllm_stb_writer *w, const char *key, bool v);
bllm_status bllm_stb_set_str(bllm_stb_writer *w, const char *key, const char *s, size_t len);
bllm_status bllm_stb_set_arr_str(bllm_stb_writer *w, const char *key,
                                 const char *const *strs, const size_t *lens, uint64_t n);
bllm_status bllm_stb_set_arr_f32(bllm_stb_writer *w, const char *key, const float *v, uint64_t n);
bllm_status bllm_stb_set_arr_i32(bllm_stb_writer *w, const char *key, const int32_t *v, uint64_t n);
bllm_status bllm_stb_set_arr_u32(bllm_stb_writer *w, const char *key, const uint32_t *v, uint64_t n);
bllm_status bllm_stb_set_arr_u16(bllm_stb_writer *w, const char *key, const uint16_t *v, uint64_t n);
bllm_status bllm_stb_set_arr_u8(bllm_stb_writer *w, const char *key, const uint8_t *v, uint64_t n);

/* Returns the tensor's index, or -1 (see bllm_last_error). */
int bllm_stb_add_tensor(bllm_stb_writer *w, const char *name, bllm_type type,
                        int ndim, const int64_t *dims);
/* Whether write_finish may replace an existing file at the path (default
 * true; the tools pass --force). Without, an existing file is refused. */
void bllm_stb_writer_set_replace(bllm_stb_writer *w, bool replace);
/* A check run by write_finish on the complete file, still under its
 * temporary name, before it takes the target's (bllm_model_verify: the
 * model loads in full). An error there discards the file. */
void bllm_stb_writer_set_check(bllm_stb_writer *w, bllm_status (*check)(const char *path));
bllm_status bllm_stb_write_begin(bllm_stb_writer *w, const char *path);
bllm_status bllm_stb_write_tensor(bllm_stb_writer *w, int index, const void *data, size_t nbytes);
bllm_status bllm_stb_write_finish(bllm_stb_writer *w);

#endif
