/* Memory for what a token streams through once per step: the weights when
 * they are loaded rather than mapped, the KV cache, the bandwidth probe.
 *
 * Why not malloc or the file's own mapping: both give 4 KiB pages, and a
 * decode step that streams a few hundred MB then takes a TLB miss every
 * 4 KiB. Measured on a 2-vCPU Sapphire Rapids VM, TinyLlama-shape b1g
 * tg128: weights served from the file mapping 44 tok/s, copied into 4 KiB
 * anonymous pages 47, into 2 MiB transparent huge pages 56 (1 thread;
 * 81 -> 100 at 2). So the region is 2 MiB aligned and marked
 * MADV_HUGEPAGE; where the system's THP policy is "never" it still works,
 * in 4 KiB pages. */
#ifndef BLLM_MEMORY_H
#define BLLM_MEMORY_H

#include <stdbool.h>
#include <stddef.h>

/* Zero-filled, 2 MiB aligned, NULL when out of memory. Release with
 * bllm_large_free and the same size. */
void *bllm_large_alloc(size_t bytes);
void bllm_large_free(void *p, size_t bytes);

/* The system's transparent huge page policy for such regions: "always",
 * "madvise" (both give huge pages here), "never" or "unknown". */
const char *bllm_huge_page_policy(void);

#endif
