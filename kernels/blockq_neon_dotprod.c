/* kernels/blockq_neon.c built with the ARMv8.2 dot product extension
 * (sdot), as bllm_matmul_*_neon_dotprod; only run where
 * bllm_neon_has_dotprod() says the CPU has it. A file of its own, not a
 * second compilation with other flags, so that the qemu test's single
 * cross-compile line (tests/neon/meson.build) builds it too. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("dotprod"))), apply_to = function)
#else
#pragma GCC target("arch=armv8.2-a+dotprod")
#endif
#define BLOCKQ_NEON_DOTPROD
#include "kernels/blockq_neon.c"
#if defined(__clang__)
#pragma clang attribute pop
#endif
