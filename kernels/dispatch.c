/* Choosing the kernel set.
 *
 * The best set the CPU supports is used unless BLLM_KERNELS names one
 * (scalar|avx2), so tests and benchmarks can force each path. Policy when the
 * variable names a set that is unknown or that this CPU cannot run:
 * bllm_kernels_select() returns NULL (with the reason in bllm_last_error()),
 * and bllm_kernels() prints the reason on stderr once and runs the scalar
 * reference: the override exists to pin a code path, so when it cannot be
 * honoured we fall back to the one path whose results are always defined
 * rather than guess, and say so loudly. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "runtime/error.h"

/* kernels/meson.build builds avx2.c exactly for these targets. */
#if defined(__x86_64__) || defined(__i386__)
#define BLLM_HAVE_AVX2 1
const bllm_kernel_set *bllm_kernels_avx2_impl(void);
#else
#define BLLM_HAVE_AVX2 0
#endif

#if BLLM_HAVE_AVX2
#include <cpuid.h>

/* CPU features for the avx2 set: AVX2 and FMA via __builtin_cpu_supports,
 * F16C and AVX from CPUID directly (clang 14 rejects the name "f16c"). AVX
 * instructions fault unless the OS saves the YMM registers on context
 * switches (XCR0 bits 1 and 2); libgcc's feature table already folds that
 * check into "avx2" and "fma", but doing it here keeps the guarantee
 * independent of the compiler runtime, and covers F16C. */
static int cpu_has_avx2(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    if (!(c & bit_OSXSAVE) || !(c & bit_AVX) || !(c & bit_F16C))
        return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6) != 6)
        return 0;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

const bllm_kernel_set *bllm_kernels_avx2(void)
{
#if BLLM_HAVE_AVX2
    return bllm_kernels_avx2_impl();
#else
    return NULL;
#endif
}

/* Best first. */
static const bllm_kernel_set *best_available(void)
{
#if BLLM_HAVE_AVX2
    if (cpu_has_avx2())
        return bllm_kernels_avx2();
#endif
    return bllm_kernels_scalar();
}

const bllm_kernel_set *bllm_kernels_select(const char *name)
{
    if (!name) {
        name = getenv("BLLM_KERNELS");
        if (!name || !*name)
            return best_available();
    }
    if (strcmp(name, "scalar") == 0)
        return bllm_kernels_scalar();
    if (strcmp(name, "avx2") == 0) {
#if BLLM_HAVE_AVX2
        if (cpu_has_avx2())
            return bllm_kernels_avx2();
        bllm_fail(BLLM_ERR_UNSUPPORTED,
                  "kernel set 'avx2' needs AVX2, FMA and F16C with OS support; this CPU lacks them");
#else
        bllm_fail(BLLM_ERR_UNSUPPORTED, "kernel set 'avx2' is not built for this architecture");
#endif
        return NULL;
    }
    bllm_fail(BLLM_ERR_ARG, "unknown kernel set '%s' (known: scalar, avx2)", name);
    return NULL;
}

static const bllm_kernel_set *active;
static pthread_once_t active_once = PTHREAD_ONCE_INIT;

static void init_active(void)
{
    active = bllm_kernels_select(NULL);
    if (!active) {
        fprintf(stderr, "bllm: BLLM_KERNELS=%s: %s; using the scalar kernels\n",
                getenv("BLLM_KERNELS"), bllm_last_error());
        active = bllm_kernels_scalar();
    }
}

const bllm_kernel_set *bllm_kernels(void)
{
    pthread_once(&active_once, init_active);
    return active;
}

const char *bllm_kernel_name(void) { return bllm_kernels()->name; }
