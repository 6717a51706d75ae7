/* kernels/binary_avx512pop.c (the popcount path: AVX-512 VPOPCNTDQ and
 * VBMI on top of F/BW/VL) built for an AVX2 CPU over SIMDe's portable
 * intrinsics, so the suite runs its logic on every x86 machine
 * (tests/kernels/test_binary_avx512_emu.c). As binary_avx512_emu.c: SIMDe
 * first, BINARY_X86_512 and BINARY_X86_POP preset (their __AVX512*__
 * macros are rightly absent), the fill renamed so dispatch.c keeps the
 * genuine build. */
#include "tests/kernels/simde_avx512.h"

#define BINARY_X86_512 1
#define BINARY_X86_POP 1
#define bllm_binary_avx512pop_fill bllm_binary_avx512popemu_fill
#include "kernels/binary_avx512pop.c"
