/* What CPU this is and which SIMD extensions it can run, for benchmark
 * reports. A feature counts only if the OS also saves its registers
 * (XCR0), since otherwise the instructions fault even though CPUID lists
 * them. */
#include "runtime/eval/bench.h"

#include <stdio.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

void bllm_cpu_name(char *buf, size_t cap)
{
    snprintf(buf, cap, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        /* x86: "model name"; some ARM kernels: "Model" or "Hardware" */
        if (strncmp(line, "model name", 10) == 0 || strncmp(line, "Model\t", 6) == 0) {
            char *p = strchr(line, ':');
            if (p) {
                p += 1 + (p[1] == ' ');
                p[strcspn(p, "\n")] = '\0';
                snprintf(buf, cap, "%s", p);
            }
            break;
        }
    }
    fclose(f);
}

static void add(char *buf, size_t cap, const char *name)
{
    size_t len = strlen(buf);
    snprintf(buf + len, cap - len, "%s%s", len ? " " : "", name);
}

void bllm_cpu_features(char *buf, size_t cap)
{
    if (!cap)
        return;
    buf[0] = '\0';
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return;
    unsigned c1 = c;
    if (c1 & (1u << 0)) add(buf, cap, "sse3");
    if (c1 & (1u << 9)) add(buf, cap, "ssse3");
    if (c1 & (1u << 19)) add(buf, cap, "sse4_1");
    if (c1 & (1u << 20)) add(buf, cap, "sse4_2");
    if (c1 & (1u << 23)) add(buf, cap, "popcnt");
    uint64_t xcr0 = 0;
    if (c1 & bit_OSXSAVE) {
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        xcr0 = ((uint64_t)hi << 32) | lo;
    }
    int ymm = (xcr0 & 6) == 6, zmm = ymm && (xcr0 & 0xe0) == 0xe0, amx = (xcr0 & 0x60000) == 0x60000;
    unsigned b7 = 0, c7 = 0, d7 = 0, a71 = 0;
    if (__get_cpuid_max(0, NULL) >= 7) {
        __cpuid_count(7, 0, a, b7, c7, d7);
        unsigned t1, t2, t3;
        __cpuid_count(7, 1, a71, t1, t2, t3);
    }
    if (ymm) {
        if (c1 & bit_AVX) add(buf, cap, "avx");
        if (b7 & (1u << 5)) add(buf, cap, "avx2");
        if (c1 & (1u << 12)) add(buf, cap, "fma");
        if (c1 & (1u << 29)) add(buf, cap, "f16c");
        if (a71 & (1u << 4)) add(buf, cap, "avx_vnni");
    }
    if (b7 & (1u << 3)) add(buf, cap, "bmi1");
    if (b7 & (1u << 8)) add(buf, cap, "bmi2");
    if (zmm) {
        if (b7 & (1u << 16)) add(buf, cap, "avx512f");
        if (b7 & (1u << 17)) add(buf, cap, "avx512dq");
        if (b7 & (1u << 30)) add(buf, cap, "avx512bw");
        if (b7 & (1u << 31)) add(buf, cap, "avx512vl");
        if (c7 & (1u << 1)) add(buf, cap, "avx512vbmi");
        if (c7 & (1u << 11)) add(buf, cap, "avx512vnni");
        if (c7 & (1u << 14)) add(buf, cap, "avx512vpopcntdq");
        if (a71 & (1u << 5)) add(buf, cap, "avx512bf16");
        if (d7 & (1u << 23)) add(buf, cap, "avx512fp16");
    }
    if (amx && (d7 & (1u << 24))) add(buf, cap, "amx");
#elif defined(__aarch64__)
    add(buf, cap, "neon");
#if defined(__linux__)
    unsigned long hw = getauxval(AT_HWCAP);
    if (hw & (1ul << 20)) add(buf, cap, "asimddp"); /* HWCAP_ASIMDDP */
    if (hw & (1ul << 22)) add(buf, cap, "sve");     /* HWCAP_SVE */
#endif
#endif
}
