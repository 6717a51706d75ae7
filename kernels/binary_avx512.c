/* AVX-512 matmuls of the packed binary types: the kernels of
 * kernels/binary_x86.h built with AVX-512 F/BW/VL on top of the AVX2 flags
 * (kernels/meson.build), which switches on its BINARY_X86_512 part: 64-byte
 * table lookups for the dense sign tiles. dispatch.c offers the
 * "avx512" set only when CPUID and XCR0 grant all of these.
 *
 * The development machine (AMD Zen 3) has no AVX-512 and QEMU 7.2 user
 * mode does not emulate it, so there this file's logic runs only in
 * emulation: tests/kernels/binary_avx512_emu.c builds it again with the
 * AVX2 flags over SIMDe's portable AVX-512 intrinsics, and
 * tests/kernels/test_binary_avx512_emu.c holds that build bit-exact to the
 * AVX2 LUT kernels. Its speed is unmeasured. Natively it is checked by
 * tests/kernels/test_binary_kernels.c wherever the CPU has the features. */
#include "kernels/binary_x86.h"

#if !BINARY_X86_512
#error "binary_avx512.c needs -mavx512f -mavx512bw -mavx512vl"
#endif

BINARY_X86_KERNELS(fill_paths)

/* The LUT kernels of this build; the float path stays AVX2's (the set
 * starts as a copy of "avx2", dispatch.c), since it exists for accuracy, not
 * speed. */
void bllm_binary_avx512_fill(bllm_matmul_fn *mm, bllm_binary_path path)
{
    if (path != BLLM_BINARY_FLOAT)
        fill_paths(mm, 0);
}
