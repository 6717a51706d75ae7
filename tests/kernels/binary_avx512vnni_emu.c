/* kernels/binary_avx512vnni.c (the dense lookups by vpermb + vpdpbusd:
 * AVX-512 VBMI and VNNI on top of F/BW/VL) built for an AVX2 CPU over
 * SIMDe's portable intrinsics, so the suite runs its logic on every x86
 * machine (tests/kernels/test_binary_avx512_emu.c). As binary_avx512_emu.c:
 * SIMDe first, BINARY_X86_512 and BINARY_X86_VNNI preset (their
 * __AVX512*__ macros are rightly absent), the fill renamed so dispatch.c
 * keeps the genuine build. */
#include "tests/kernels/simde_avx512.h"

#define BINARY_X86_512 1
#define BINARY_X86_VNNI 1
#define bllm_binary_avx512vnni_fill bllm_binary_avx512vnniemu_fill
#include "kernels/binary_avx512vnni.c"
