/* The fixed 128-byte .stb header, shared by reader and writer. The format is
 * little-endian; bllm only builds for little-endian hosts (checked below). */
#ifndef BLLM_STB_LAYOUT_H
#define BLLM_STB_LAYOUT_H

#include <stdint.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "bllm's .stb format is little-endian; big-endian hosts are not supported"
#endif

typedef struct {
    char magic[8];            /* "BLLMSTB\0" */
    uint32_t version;
    uint32_t header_bytes;    /* 128 */
    uint64_t file_bytes;      /* whole file: detects truncation at once */
    uint64_t meta_offset;     /* = 128 */
    uint64_t meta_bytes;
    uint64_t dir_offset;      /* = meta_offset + meta_bytes */
    uint64_t dir_bytes;
    uint32_t n_meta;
    uint32_t n_tensors;
    uint64_t data_offset;     /* multiple of 64 */
    uint64_t data_bytes;      /* = file_bytes - data_offset */
    uint64_t index_checksum;  /* XXH3-64 of metadata + directory bytes */
    uint8_t reserved[40];     /* zero */
} stb_header;

_Static_assert(sizeof(stb_header) == 128, "stb header must be 128 bytes");

#endif
