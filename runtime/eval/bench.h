/* Benchmark support shared by the measuring tools (bllm-bench, and
 * bllm-perplexity for its timings): a clock, mean and deviation, what the
 * CPU and the build are, this machine's memory read bandwidth, how many bytes
 * a model stores per weight and reads per generated token, and an SVG
 * scatter chart. docs/bench.md explains the numbers. */
#ifndef BLLM_BENCH_H
#define BLLM_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "bllm.h"

/* ---- timing and statistics (bench_stats.c) ---- */

/* Monotonic wall-clock seconds. */
double bllm_time_s(void);

typedef struct {
    int n;
    double mean, sd; /* sd: sample standard deviation (n - 1); 0 if n < 2 */
    double min, max;
} bllm_stats;

bllm_stats bllm_stats_of(const double *x, int n);

/* ---- the machine and the build (cpu_info.c, build_id.c) ---- */

/* CPU model name from /proc/cpuinfo, or "unknown CPU". */
void bllm_cpu_name(char *buf, size_t cap);
/* SIMD features the CPU and OS both support, from CPUID/XGETBV, as a
 * space-separated list ("sse4_2 avx avx2 fma f16c ..."; "" if none known). */
void bllm_cpu_features(char *buf, size_t cap);
/* "0.1.0 (g6411717-dirty, gcc 12.2.0)": project version, `git describe` of
 * the source tree when built (meson vcs_tag) and the compiler. */
const char *bllm_build_id(void);

/* ---- memory bandwidth (membw.c) ---- */

/* Streaming read bandwidth in bytes per second over a buffer of `bytes`
 * (pick it far larger than the last-level cache), split across n_threads
 * threads, with AVX2 loads where the CPU has them: the best of at least
 * `reps` passes made over at least one second. */
bllm_status bllm_read_bandwidth(size_t bytes, int n_threads, int reps, double *bytes_per_s);

/* ---- what a model stores and reads (weight_stats.c) ---- */

typedef struct {
    uint64_t file_bytes;
    int n_tensors;
    uint64_t n_weights, weight_bytes; /* every tensor */
    uint64_t n_linear, linear_bytes;  /* 2-D matrices named blk.* */
    /* Tensor bytes read to generate one token: every tensor except the
     * embedding table, one row of that table, and the whole table again
     * when it doubles as the output head (no output.weight). KV-cache
     * traffic is not counted (it grows with the position). */
    uint64_t token_bytes;
} bllm_weight_stats;

/* Sizes from the tensor directory of a .stb file (bytes actually stored). */
bllm_status bllm_weight_stats_of(const char *path, bllm_weight_stats *out);
/* 8 * bytes / weights, 0 when weights is 0. */
double bllm_bits_per_weight(uint64_t bytes, uint64_t weights);

/* ---- SVG scatter chart (svg_chart.c) ---- */

typedef struct {
    double x, y;
    const char *label;  /* drawn next to the point; may be NULL */
    int series;         /* colour and legend entry */
} bllm_chart_point;

typedef struct {
    const char *title, *x_label, *y_label;
    const bllm_chart_point *points;
    int n_points;
} bllm_chart_panel;

/* Panels side by side, sharing the legend of series names. Axes start at 0
 * with rounded ticks. */
bllm_status bllm_svg_chart_write(const char *path, const char *title, const bllm_chart_panel *panels,
                                 int n_panels, const char *const *series_names, int n_series);

#endif
