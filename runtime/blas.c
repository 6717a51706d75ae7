#include "runtime/blas.h"

#include <cblas.h>
#include <string.h>

const char *bllm_blas_core(void) { return openblas_get_corename(); }

const char *bllm_blas_better_core(void)
{
    if (strcmp(bllm_blas_core(), "Prescott") != 0)
        return NULL;
#if defined(__x86_64__) || defined(__i386__)
    /* libgcc's checks include the OS's XSAVE support (XCR0) */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
#endif
    return NULL;
}
