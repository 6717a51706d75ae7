/* AVX2 matmuls of the packed binary types: the kernels of
 * kernels/binary_x86.h built with -mavx2 -mfma -mf16c -mbmi -mbmi2
 * -mpopcnt (kernels/meson.build). dispatch.c hands them out only after
 * checking the CPU. Design and measurements: docs/binary-kernels.md. */
#include "kernels/binary_x86.h"

BINARY_X86_KERNELS(fill_paths)

/* Which path each type runs in the "avx2" set, measured on the development
 * machine (docs/binary-kernels.md): the LUT path was faster for every type,
 * GEMV and GEMM alike (1.5-2.6x the float path), so AUTO is LUT. */
void bllm_binary_avx2_fill(bllm_matmul_fn *mm, bllm_binary_path path)
{
    fill_paths(mm, path == BLLM_BINARY_FLOAT);
}
