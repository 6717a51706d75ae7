/* Which kernels OpenBLAS runs. Debian's OpenBLAS (0.3.21) picks them once,
 * when the library loads, from a table of CPU models; a CPU newer than the
 * table (Sapphire and Emerald Rapids among those seen here) falls back to
 * the generic "Prescott" SSE3 kernels although it runs AVX-512. On an
 * Emerald Rapids VM that made a SmolLM2 BiLLM quantization (Hessians,
 * calibration forward) 2.1x slower and a TinyLlama-shape pp512 (blocked
 * attention) 23% slower than with OPENBLAS_CORETYPE=SkylakeX. The variable
 * is the only switch and is read at load time, so the tools set it and
 * start again (tools/cli.c, bllm_cli_blas_core). */
#ifndef BLLM_RUNTIME_BLAS_H
#define BLLM_RUNTIME_BLAS_H

/* OpenBLAS's name for the kernels it chose ("Haswell", "SkylakeX", ...). */
const char *bllm_blas_core(void);

/* The OPENBLAS_CORETYPE this CPU should have had, when OpenBLAS fell back
 * to its generic kernels on a CPU with AVX2 and FMA ("Haswell") or
 * AVX-512 F/CD/BW/DQ/VL ("SkylakeX"), both with the OS saving their
 * registers; NULL otherwise. */
const char *bllm_blas_better_core(void);

#endif
