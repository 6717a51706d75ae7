#include "runtime/memory.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_PAGE ((size_t)2 << 20)

static size_t round_up(size_t n) { return (n + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1); }

void *bllm_large_alloc(size_t bytes)
{
    if (bytes == 0 || bytes > SIZE_MAX - 2 * HUGE_PAGE)
        return NULL;
    size_t size = round_up(bytes);
    /* Over-map by one huge page and trim both ends, since mmap only
     * promises 4 KiB alignment and a huge page needs a 2 MiB-aligned slot. */
    uint8_t *raw = mmap(NULL, size + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    uint8_t *p = (uint8_t *)(((uintptr_t)raw + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (p > raw)
        munmap(raw, (size_t)(p - raw));
    size_t tail = (size_t)(raw + size + HUGE_PAGE - (p + size));
    if (tail)
        munmap(p + size, tail);
#ifdef MADV_HUGEPAGE
    madvise(p, size, MADV_HUGEPAGE); /* advice only: failure leaves 4 KiB pages */
#endif
    return p;
}

void bllm_large_free(void *p, size_t bytes)
{
    if (p)
        munmap(p, round_up(bytes));
}

const char *bllm_huge_page_policy(void)
{
    FILE *fp = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!fp)
        return "unknown";
    char line[128] = "";
    const char *policy = "unknown";
    if (fgets(line, sizeof line, fp)) {
        if (strstr(line, "[always]"))
            policy = "always";
        else if (strstr(line, "[madvise]"))
            policy = "madvise";
        else if (strstr(line, "[never]"))
            policy = "never";
    }
    fclose(fp);
    return policy;
}
