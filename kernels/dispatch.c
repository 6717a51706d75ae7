/* Choosing the kernel set.
 *
 * The best set the CPU supports is used unless BLLM_KERNELS names one
 * (scalar|avx2|avx2-lut|avx2-float|avx512|avx512-pop|neon|neon-lut|neon-float|neon-pop), so
 * tests and benchmarks can force each path. Policy when the variable names
 * a set that is unknown or that this CPU cannot run: bllm_kernels_select()
 * returns NULL (with the reason in bllm_last_error()), and bllm_kernels()
 * prints the reason on stderr once and runs the scalar reference: the
 * override exists to pin a code path, so when it cannot be honoured we fall
 * back to the one path whose results are always defined rather than guess,
 * and say so loudly. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "runtime/error.h"

/* kernels/meson.build builds avx2.c exactly for these targets. */
#if defined(__x86_64__) || defined(__i386__)
#define BLLM_HAVE_AVX2 1
const bllm_kernel_set *bllm_kernels_avx2_impl(void);
/* kernels/salient_avx2.c, built with avx2.c */
void bllm_salient_matvec_avx2(float *y, const float *x, const void *w, const bllm_pb8_salient *s, int n_tok,
                              int cols, int rows, int r0, int r1);
#else
#define BLLM_HAVE_AVX2 0
#endif

#if BLLM_HAVE_AVX2
#include <cpuid.h>

/* CPU features for the avx2 set: AVX2 and FMA via __builtin_cpu_supports,
 * F16C and AVX from CPUID directly (clang 14 rejects the name "f16c"). AVX
 * instructions fault unless the OS saves the YMM registers on context
 * switches (XCR0 bits 1 and 2); libgcc's feature table already folds that
 * check into "avx2" and "fma", but doing it here keeps the guarantee
 * independent of the compiler runtime, and covers F16C. */
static int cpu_has_avx2(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    if (!(c & bit_OSXSAVE) || !(c & bit_AVX) || !(c & bit_F16C))
        return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6) != 6)
        return 0;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

/* ---- x86: packed binary types ----------------------------------------
 * kernels/meson.build builds binary_avx2.c and binary_avx512.c exactly for
 * x86 (kernels/binary_simd.h, docs/binary-kernels.md). The avx2 sets are
 * avx2.c's dense kernels plus the binary kernels of one path: "avx2" the
 * path measured fastest for each type and n_tok, "avx2-lut" and
 * "avx2-float" forced. "avx512" is "avx2" with AVX-512 lookup kernels
 * (binary_avx512vnni.c's where the CPU has VBMI and VNNI, else
 * binary_avx512.c's: equal bit for bit); it is offered only when CPUID and
 * the OS grant every feature they use. */
#if BLLM_HAVE_AVX2
#include "kernels/binary_pop.h"
#include "kernels/binary_simd.h"
#include "kernels/blockq.h"

/* bextr, pdep and popcnt in the N:M decoders. */
static int cpu_has_bmi2(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_POPCNT))
        return 0;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_BMI) && (b & bit_BMI2);
}

/* AVX-512 F, BW, VL, with the OS saving opmask and ZMM state (XCR0
 * bits 5-7) besides YMM, plus what the avx2 build needs. */
static int cpu_has_avx512(void)
{
    unsigned a, b, c, d;
    if (!cpu_has_avx2() || !cpu_has_bmi2() || !__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    if (!(b & bit_AVX512F) || !(b & bit_AVX512BW) || !(b & bit_AVX512VL))
        return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 0xe6) == 0xe6;
}

/* AVX512_VNNI: CPUID leaf 7, ECX bit 11 (the ZMM state is cpu_has_avx512's). */
static int cpu_has_avx512_vnni(void)
{
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (c & (1u << 11));
}

/* AVX512_VBMI (leaf 7 ECX bit 1) and AVX512_VNNI: the dense lookups of
 * kernels/binary_avx512vnni.c, beside cpu_has_avx512's. */
static int cpu_has_avx512_vbmi_vnni(void)
{
    unsigned a, b, c, d;
    return cpu_has_avx512() && cpu_has_avx512_vnni() && __get_cpuid_count(7, 0, &a, &b, &c, &d) &&
           (c & (1u << 1));
}

/* AVX-VNNI: CPUID leaf 7 subleaf 1, EAX bit 4 (the YMM state is
 * cpu_has_avx2's). */
static int cpu_has_avx_vnni(void)
{
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 4));
}

/* AVX512_VPOPCNTDQ (leaf 7 ECX bit 14) and AVX512_VBMI (bit 1): the
 * popcount path (kernels/binary_avx512pop.c), beside cpu_has_avx512's. */
static int cpu_has_avx512_pop(void)
{
    unsigned a, b, c, d;
    return cpu_has_avx512() && __get_cpuid_count(7, 0, &a, &b, &c, &d) && (c & (1u << 14)) && (c & (1u << 1));
}

static bllm_kernel_set x86_avx2, x86_avx2_lut, x86_avx2_float, x86_avx512, x86_avx512_pop;
static pthread_once_t x86_once = PTHREAD_ONCE_INIT;

static void binary_scalar_fill(bllm_matmul_fn *mm)
{
    const bllm_kernel_set *s = bllm_kernels_scalar();
    for (int t = 0; t < BLLM_TYPE_COUNT; t++)
        if (bllm_type_is_packed((bllm_type)t))
            mm[t] = s->matmul[t];
}

static void x86_init(void)
{
    const int bmi2 = cpu_has_bmi2();
    x86_avx2 = x86_avx2_lut = x86_avx2_float = x86_avx512 = *bllm_kernels_avx2_impl();
    /* needs AVX2, FMA and F16C only, so every x86 set has it */
    x86_avx2.salient_matvec = x86_avx2_lut.salient_matvec = x86_avx2_float.salient_matvec =
        bllm_salient_matvec_avx2;
    x86_avx2_lut.name = "avx2-lut";
    x86_avx2_float.name = "avx2-float";
    x86_avx512.name = "avx512";
    if (bmi2) {
        bllm_binary_avx2_fill(x86_avx2.matmul, BLLM_BINARY_AUTO);
        bllm_binary_avx2_fill(x86_avx2_lut.matmul, BLLM_BINARY_LUT);
        bllm_binary_avx2_fill(x86_avx2_float.matmul, BLLM_BINARY_FLOAT);
    } else { /* an AVX2 CPU without BMI1/BMI2/POPCNT (none known): binary types stay scalar */
        binary_scalar_fill(x86_avx2.matmul);
        binary_scalar_fill(x86_avx2_lut.matmul);
        binary_scalar_fill(x86_avx2_float.matmul);
    }
    /* q8/q6/q4/q4nl need AVX2, FMA and F16C only */
    bllm_kernel_set *sets[] = {&x86_avx2, &x86_avx2_lut, &x86_avx2_float};
    for (int i = 0; i < 3; i++) {
        sets[i]->matmul[BLLM_TYPE_Q8] = bllm_matmul_q8_avx2;
        sets[i]->matmul[BLLM_TYPE_Q4] = bllm_matmul_q4_avx2;
        sets[i]->matmul[BLLM_TYPE_Q6] = bllm_matmul_q6_avx2;
        sets[i]->matmul[BLLM_TYPE_Q4NL] = bllm_matmul_q4nl_avx2;
        if (cpu_has_avx_vnni()) {
            sets[i]->matmul_x16[BLLM_TYPE_Q4] = bllm_matmul_q4_x16_avxvnni;
            sets[i]->matmul_x16[BLLM_TYPE_Q4NL] = bllm_matmul_q4nl_x16_avxvnni;
        }
    }
    x86_avx512 = x86_avx2;
    x86_avx512.name = "avx512";
    if (cpu_has_avx512()) {
        if (cpu_has_avx512_vbmi_vnni())
            bllm_binary_avx512vnni_fill(x86_avx512.matmul, BLLM_BINARY_AUTO);
        else
            bllm_binary_avx512_fill(x86_avx512.matmul, BLLM_BINARY_AUTO);
        x86_avx512.attend_f16 = bllm_attend_f16_avx512;
    }
    if (cpu_has_avx512() && cpu_has_avx512_vnni()) {
        x86_avx512.matmul[BLLM_TYPE_Q8] = bllm_matmul_q8_vnni;
        x86_avx512.matmul[BLLM_TYPE_Q4] = bllm_matmul_q4_vnni;
        x86_avx512.matmul[BLLM_TYPE_Q6] = bllm_matmul_q6_vnni;
        x86_avx512.matmul[BLLM_TYPE_Q4NL] = bllm_matmul_q4nl_vnni;
        x86_avx512.matmul_x16[BLLM_TYPE_Q4] = bllm_matmul_q4_x16_vnni;
        x86_avx512.matmul_x16[BLLM_TYPE_Q4NL] = bllm_matmul_q4nl_x16_vnni;
    }
    /* "avx512" with the popcount path for the tile-shaped types */
    x86_avx512_pop = x86_avx512;
    x86_avx512_pop.name = "avx512-pop";
    if (cpu_has_avx512_pop())
        bllm_binary_avx512pop_fill(x86_avx512_pop.matmul);
}

static const bllm_kernel_set *x86_set(const bllm_kernel_set *s)
{
    pthread_once(&x86_once, x86_init);
    return s;
}

/* The x86 sets by name, as select_aarch64 below. */
static const bllm_kernel_set *select_x86(const char *name, int *known)
{
    const int avx512 = strcmp(name, "avx512") == 0, pop = strcmp(name, "avx512-pop") == 0;
    const int lut = strcmp(name, "avx2-lut") == 0, flt = strcmp(name, "avx2-float") == 0;
    *known = avx512 || pop || lut || flt;
    if (!*known)
        return NULL;
    if (!cpu_has_avx2()) {
        bllm_fail(BLLM_ERR_UNSUPPORTED,
                  "kernel set '%s' needs AVX2, FMA and F16C with OS support; this CPU lacks them", name);
        return NULL;
    }
    if (avx512 && !cpu_has_avx512()) {
        bllm_fail(BLLM_ERR_UNSUPPORTED,
                  "kernel set 'avx512' needs AVX-512 F, BW and VL (plus BMI1, BMI2, POPCNT) with OS "
                  "support of the ZMM state; this CPU lacks them");
        return NULL;
    }
    if (pop && !cpu_has_avx512_pop()) {
        bllm_fail(BLLM_ERR_UNSUPPORTED,
                  "kernel set 'avx512-pop' needs AVX-512 VPOPCNTDQ and VBMI besides what 'avx512' needs; "
                  "this CPU lacks them");
        return NULL;
    }
    return x86_set(avx512 ? &x86_avx512 : pop ? &x86_avx512_pop : lut ? &x86_avx2_lut : &x86_avx2_float);
}
#endif
/* ---- end x86: packed binary types ---- */

/* ---- aarch64 ---------------------------------------------------------
 * kernels/meson.build builds neon.c and binary_neon.c exactly for this
 * target. Advanced SIMD (with FMA and f16 conversions) is part of the
 * AArch64 base architecture, so the neon sets need no run-time feature
 * check: every aarch64 CPU runs them. The one optional extension used, the
 * dot product (sdot) of the block-quantized kernels, is checked inside
 * them (kernels/blockq_neon.c, bllm_neon_has_dotprod). */
#if defined(__aarch64__)
#define BLLM_HAVE_NEON 1
const bllm_kernel_set *bllm_kernels_neon_impl(void);
const bllm_kernel_set *bllm_kernels_neon_lut_impl(void);
const bllm_kernel_set *bllm_kernels_neon_float_impl(void);
const bllm_kernel_set *bllm_kernels_neon_pop_impl(void);
#else
#define BLLM_HAVE_NEON 0
#endif

const bllm_kernel_set *bllm_kernels_neon(void)
{
#if BLLM_HAVE_NEON
    return bllm_kernels_neon_impl();
#else
    return NULL;
#endif
}

const bllm_kernel_set *bllm_kernels_neon_float(void)
{
#if BLLM_HAVE_NEON
    return bllm_kernels_neon_float_impl();
#else
    return NULL;
#endif
}

/* The aarch64 sets by name ("neon-lut" and "neon-float" force one path
 * for the packed types, like avx2-lut and avx2-float); NULL (with the
 * reason) if name is one of them but this build cannot run it, and
 * *known = 0 if name is not one. */
static const bllm_kernel_set *select_aarch64(const char *name, int *known)
{
    const int neon = strcmp(name, "neon") == 0, lut = strcmp(name, "neon-lut") == 0,
              flt = strcmp(name, "neon-float") == 0, pop = strcmp(name, "neon-pop") == 0;
    *known = neon || lut || flt || pop;
    if (!*known)
        return NULL;
#if BLLM_HAVE_NEON
    return neon  ? bllm_kernels_neon()
           : lut ? bllm_kernels_neon_lut_impl()
           : pop ? bllm_kernels_neon_pop_impl()
                 : bllm_kernels_neon_float();
#else
    bllm_fail(BLLM_ERR_UNSUPPORTED, "kernel set '%s' is only built for aarch64", name);
    return NULL;
#endif
}
/* ---- end aarch64 ---- */

const bllm_kernel_set *bllm_kernels_avx2(void)
{
#if BLLM_HAVE_AVX2
    return x86_set(&x86_avx2); /* avx2.c's set plus the binary kernels */
#else
    return NULL;
#endif
}

/* Best first. */
static const bllm_kernel_set *best_available(void)
{
#if BLLM_HAVE_AVX2
    if (cpu_has_avx512())
        return x86_set(&x86_avx512);
    if (cpu_has_avx2())
        return bllm_kernels_avx2();
#endif
#if BLLM_HAVE_NEON
    return bllm_kernels_neon();
#endif
    return bllm_kernels_scalar();
}

const bllm_kernel_set *bllm_kernels_select(const char *name)
{
    if (!name) {
        name = getenv("BLLM_KERNELS");
        if (!name || !*name)
            return best_available();
    }
    if (strcmp(name, "scalar") == 0)
        return bllm_kernels_scalar();
    if (strcmp(name, "avx2") == 0) {
#if BLLM_HAVE_AVX2
        if (cpu_has_avx2())
            return bllm_kernels_avx2();
        bllm_fail(BLLM_ERR_UNSUPPORTED,
                  "kernel set 'avx2' needs AVX2, FMA and F16C with OS support; this CPU lacks them");
#else
        bllm_fail(BLLM_ERR_UNSUPPORTED, "kernel set 'avx2' is not built for this architecture");
#endif
        return NULL;
    }
    int known;
#if BLLM_HAVE_AVX2
    const bllm_kernel_set *x86 = select_x86(name, &known);
    if (known)
        return x86;
#else
    if (!strcmp(name, "avx2-lut") || !strcmp(name, "avx2-float") || !strcmp(name, "avx512") ||
        !strcmp(name, "avx512-pop")) {
        bllm_fail(BLLM_ERR_UNSUPPORTED, "kernel set '%s' is not built for this architecture", name);
        return NULL;
    }
#endif
    const bllm_kernel_set *arm = select_aarch64(name, &known);
    if (known)
        return arm;
    bllm_fail(BLLM_ERR_ARG,
              "unknown kernel set '%s' (known: scalar, avx2, avx2-lut, avx2-float, avx512, avx512-pop, neon, "
              "neon-lut, neon-float, neon-pop)",
              name);
    return NULL;
}

static const bllm_kernel_set *active;
static pthread_once_t active_once = PTHREAD_ONCE_INIT;

static void init_active(void)
{
    active = bllm_kernels_select(NULL);
    if (!active) {
        fprintf(stderr, "bllm: BLLM_KERNELS=%s: %s; using the scalar kernels\n",
                getenv("BLLM_KERNELS"), bllm_last_error());
        active = bllm_kernels_scalar();
    }
}

const bllm_kernel_set *bllm_kernels(void)
{
    pthread_once(&active_once, init_active);
    return active;
}

const char *bllm_kernel_name(void) { return bllm_kernels()->name; }
