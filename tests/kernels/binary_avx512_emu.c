/* kernels/binary_avx512.c, built for an AVX2 CPU so the test suite can run
 * it (tests/kernels/test_binary_avx512_emu.c): SIMDe supplies the AVX-512
 * intrinsics its BINARY_X86_512 parts use, as portable code over AVX2, and
 * its native aliases map the _mm512_* and AVX-512VL _mm256_* names to
 * them. The flags are the avx2 build's (tests/kernels/meson.build), so every
 * instruction here runs on this CPU.
 *
 * Order matters. SIMDe includes GCC's <immintrin.h> first (for its AVX2
 * implementations); GCC declares all AVX-512 types and intrinsics there
 * whatever the flags, and SIMDe reuses those types, so its aliases are
 * macros over names already declared and binary_x86.h's own
 * <immintrin.h> adds nothing. BINARY_X86_512 is preset because the
 * __AVX512*__ macros that normally set it are (rightly) absent. The fill
 * function is renamed so it does not stand in for the real one at link
 * time: dispatch.c must keep calling the genuine AVX-512 build. */
#include "tests/kernels/simde_avx512.h"

#define BINARY_X86_512 1
#define bllm_binary_avx512_fill bllm_binary_avx512emu_fill
#include "kernels/binary_avx512.c"
