/* Single-threaded matmul throughput of each kernel set, as a markdown table.
 *
 *   bench-matmul [--isa NAME]... [--min-time SECONDS]
 *
 * Shapes are rows x cols of W (SmolLM2-135M: attention/generic 4096x4096,
 * ffn_down 576x1536, ffn_up 1536x576, output 49152x576), for one token
 * (GEMV, decoding) and 64 tokens (GEMM, prompt). GB/s counts the weight bytes
 * once per call, the traffic that bounds GEMV; GFLOP/s is 2*rows*cols*n_tok
 * per call. Each row reports the median time over calls repeated for at
 * least --min-time seconds after one warm-up call. Note which shapes fit in
 * cache: small f16 matrices are served from L2/L3, not DRAM. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bllm.h"
#include "kernels/kernels.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static uint64_t rng = 88172645463325252ull;
static float rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) * 0x1p-52 - 1.0);
}

/* Median seconds per call. */
static double time_matmul(bllm_matmul_fn fn, float *y, const float *x, const void *w, int n_tok,
                          int cols, int rows, double min_time)
{
    enum { MAX_CALLS = 1000 };
    static double t[MAX_CALLS];
    double t0 = now();
    fn(y, x, w, n_tok, cols, rows, 0, rows); /* warm-up: page faults, caches */
    double first = now() - t0;
    int n = 0;
    double start = now();
    if (first > min_time) { /* slow path: one more call is enough */
        t0 = now();
        fn(y, x, w, n_tok, cols, rows, 0, rows);
        return now() - t0;
    }
    while (n < MAX_CALLS && (n < 3 || now() - start < min_time)) {
        t0 = now();
        fn(y, x, w, n_tok, cols, rows, 0, rows);
        t[n++] = now() - t0;
    }
    qsort(t, (size_t)n, sizeof t[0], cmp_double);
    return t[n / 2];
}

static void cpu_name(char *buf, size_t cap)
{
    snprintf(buf, cap, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            if (p) {
                p += 1 + (p[1] == ' ');
                p[strcspn(p, "\n")] = '\0';
                snprintf(buf, cap, "%s", p);
            }
            break;
        }
    }
    fclose(f);
}

int main(int argc, char **argv)
{
    const bllm_kernel_set *sets[8];
    int n_sets = 0;
    double min_time = 0.3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--isa") && i + 1 < argc && n_sets < 8) {
            const bllm_kernel_set *s = bllm_kernels_select(argv[++i]);
            if (!s) {
                fprintf(stderr, "bench-matmul: %s\n", bllm_last_error());
                return 1;
            }
            sets[n_sets++] = s;
        } else if (!strcmp(argv[i], "--min-time") && i + 1 < argc) {
            min_time = atof(argv[++i]);
        } else {
            fprintf(stderr, "usage: bench-matmul [--isa scalar|avx2]... [--min-time SECONDS]\n");
            return 2;
        }
    }
    if (n_sets == 0) {
        sets[n_sets++] = bllm_kernels_scalar();
        const bllm_kernel_set *avx2 = bllm_kernels_select("avx2");
        if (avx2)
            sets[n_sets++] = avx2;
    }

    static const int shapes[][2] = {{4096, 4096}, {576, 1536}, {1536, 576}, {49152, 576}};
    static const int toks[] = {1, 64};
    const bllm_type types[] = {BLLM_TYPE_F32, BLLM_TYPE_F16, BLLM_TYPE_BF16};

    char cpu[256];
    cpu_name(cpu, sizeof cpu);
    printf("CPU: %s, 1 thread, median of >= %.2f s per row\n\n", cpu, min_time);
    printf("| W rows x cols | type | n_tok | kernels | ms/call | GB/s (weights) | GFLOP/s | vs %s |\n",
           sets[0]->name);
    printf("|---|---|---:|---|---:|---:|---:|---:|\n");

    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int rows = shapes[si][0], cols = shapes[si][1];
        size_t nw = (size_t)rows * cols;
        void *w = malloc(nw * 4);
        float *x = malloc((size_t)64 * cols * sizeof *x);
        float *y = malloc((size_t)64 * rows * sizeof *y);
        if (!w || !x || !y) {
            fprintf(stderr, "bench-matmul: out of memory\n");
            return 1;
        }
        for (size_t i = 0; i < (size_t)64 * cols; i++)
            x[i] = rnd();
        for (size_t ti = 0; ti < 3; ti++) {
            bllm_type ty = types[ti];
            size_t es = ty == BLLM_TYPE_F32 ? 4 : 2;
            for (size_t i = 0; i < nw; i++) {
                float v = rnd();
                if (ty == BLLM_TYPE_F32)
                    ((float *)w)[i] = v;
                else if (ty == BLLM_TYPE_F16)
                    ((uint16_t *)w)[i] = bllm_f32_to_f16(v);
                else
                    ((uint16_t *)w)[i] = bllm_f32_to_bf16(v);
            }
            for (size_t ki = 0; ki < sizeof toks / sizeof *toks; ki++) {
                int n_tok = toks[ki];
                double base = 0;
                for (int s = 0; s < n_sets; s++) {
                    bllm_matmul_fn fn = sets[s]->matmul[ty];
                    if (!fn)
                        continue;
                    double sec = time_matmul(fn, y, x, w, n_tok, cols, rows, min_time);
                    if (s == 0)
                        base = sec;
                    printf("| %dx%d | %s | %d | %s | %.3f | %.2f | %.2f | %.1fx |\n", rows, cols,
                           bllm_type_name(ty), n_tok, sets[s]->name, sec * 1e3,
                           (double)nw * es / sec * 1e-9, 2.0 * nw * n_tok / sec * 1e-9,
                           base / sec);
                    fflush(stdout);
                }
            }
        }
        free(w);
        free(x);
        free(y);
    }
    return 0;
}
