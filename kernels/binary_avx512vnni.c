/* The AVX-512 lookup kernels again, built with VBMI and VNNI on top of the
 * AVX-512 flags (kernels/meson.build), which switches on binary_x86.h's
 * BINARY_X86_VNNI part: the dense tiles' lookups by vpermb, a row's four
 * quads side by side, summed into its int32 lane by vpdpbusd, with no byte
 * folding or 16-bit widening after them (lut_rows_i32). Same tables, same
 * exact integer sums, so the results are binary_avx512.c's bit for bit.
 * dispatch.c fills the "avx512" set from this build where CPUID grants
 * VBMI and VNNI besides what binary_avx512.c needs (Ice Lake, Sapphire
 * Rapids, Zen 4 on); tests/kernels/binary_avx512vnni_emu.c runs it over
 * SIMDe where it does not.
 *
 * Cost per 32 x 64 tile and token, in vector operations: 16 lookups + 16
 * byte adds + ~28 to fold, widen and convert before, 16 vpermb + 16
 * vpdpbusd + 4 after (and 4 more vpermb per tile to reorder the signs);
 * docs/binary-kernels.md has the measured speeds. */
#define bllm_binary_avx512_fill bllm_binary_avx512vnni_fill
#include "kernels/binary_avx512.c"

#if !BINARY_X86_VNNI
#error "binary_avx512vnni.c needs -mavx512vbmi -mavx512vnni on top of the AVX-512 flags"
#endif
