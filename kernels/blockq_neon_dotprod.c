/* kernels/blockq_neon.c built with the ARMv8.2 dot product extension
 * (sdot), as bllm_matmul_*_neon_dotprod; only run where
 * bllm_neon_has_dotprod() says the CPU has it. kernels/meson.build gives
 * this file -march=armv8.2-a+dotprod; the pragma does the same under GCC
 * for the qemu test's single cross-compile line (tests/neon/meson.build),
 * which builds every file with the same flags. */
#if defined(__GNUC__) && !defined(__clang__) && !defined(__ARM_FEATURE_DOTPROD)
#pragma GCC target("arch=armv8.2-a+dotprod")
#endif
#define BLOCKQ_NEON_DOTPROD
#include "kernels/blockq_neon.c"
