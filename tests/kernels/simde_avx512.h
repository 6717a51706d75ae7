/* SIMDe's AVX-512 with native aliases, for the emulated builds of the
 * AVX-512 kernels (binary_avx512_emu.c, binary_avx512pop_emu.c): included
 * before the kernel source, as those files explain. SIMDe 0.7.4 lacks three
 * 512-bit conversions the kernels use (int32 -> f32 and f16 -> f32, both
 * exact, and f32 -> int32 rounded as MXCSR says, nearest-even); they are
 * supplied here, by elements and by halves. */
#ifndef BLLM_TESTS_SIMDE_AVX512_H
#define BLLM_TESTS_SIMDE_AVX512_H

#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include <simde/x86/f16c.h>

static inline simde__m512 emu_mm512_cvtepi32_ps(simde__m512i a)
{
    int32_t i[16];
    float f[16];
    simde_mm512_storeu_si512(i, a);
    for (int k = 0; k < 16; k++)
        f[k] = (float)i[k];
    return simde_mm512_loadu_ps(f);
}

static inline simde__m512 emu_mm512_cvtph_ps(simde__m256i h)
{
    float f[16];
    simde_mm256_storeu_ps(f, simde_mm256_cvtph_ps(simde_mm256_castsi256_si128(h)));
    simde_mm256_storeu_ps(f + 8, simde_mm256_cvtph_ps(simde_mm256_extracti128_si256(h, 1)));
    return simde_mm512_loadu_ps(f);
}

static inline simde__m512i emu_mm512_cvtps_epi32(simde__m512 a)
{
    float f[16];
    int32_t i[16];
    simde_mm512_storeu_ps(f, a);
    simde_mm256_storeu_si256((simde__m256i *)i, simde_mm256_cvtps_epi32(simde_mm256_loadu_ps(f)));
    simde_mm256_storeu_si256((simde__m256i *)(i + 8), simde_mm256_cvtps_epi32(simde_mm256_loadu_ps(f + 8)));
    return simde_mm512_loadu_si512(i);
}

#define _mm512_cvtepi32_ps(a) emu_mm512_cvtepi32_ps(a)
#define _mm512_cvtps_epi32(a) emu_mm512_cvtps_epi32(a)
#define _mm512_cvtph_ps(h) emu_mm512_cvtph_ps(h)

#endif
