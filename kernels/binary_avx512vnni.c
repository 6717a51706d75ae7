/* The AVX-512 lookup kernels again, built with VBMI and VNNI on top of the
 * AVX-512 flags (kernels/meson.build), which switches on binary_x86.h's
 * BINARY_X86_VNNI part: the dense tiles' lookups by vpermb, a row's four
 * quads side by side, summed into its int32 lane by vpdpbusd, with no byte
 * folding or 16-bit widening after them. The dense types (b1, b1g, b1mg,
 * rb2g, onebit, pb8) look up one-byte tables of quantized signed sums
 * (bllm_binary_tq_group in kernels/binary_simd.h, build_tq here) where the
 * other builds look up two byte tables of int8 x's sums: half the lookups,
 * at about int8 x's error (docs/binary-kernels.md, "Quantized tables").
 * The N:M and block types keep int8 x and give binary_avx512.c's results
 * bit for bit.
 * dispatch.c fills the "avx512" set from this build where CPUID grants
 * VBMI and VNNI besides what binary_avx512.c needs (Ice Lake, Sapphire
 * Rapids, Zen 4 on); tests/kernels/binary_avx512vnni_emu.c runs it over
 * SIMDe where it does not.
 *
 * Cost per 32 x 64 dense tile and token, in vector operations: 16 lookups
 * + 16 byte adds + ~28 to fold, widen and convert in binary_avx512.c; here
 * 8 vpermb + 8 vpdpbusd + 4, and 4 vpermb per tile to reorder the signs;
 * docs/binary-kernels.md has the measured speeds. */
#define bllm_binary_avx512_fill bllm_binary_avx512vnni_fill
#include "kernels/binary_avx512.c"

#if !BINARY_X86_VNNI
#error "binary_avx512vnni.c needs -mavx512vbmi -mavx512vnni on top of the AVX-512 flags"
#endif
