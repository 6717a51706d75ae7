/* bllm-bench: prompt-processing and generation throughput, llama-bench style.
 *   bllm-bench -m a.stb -m b.stb -p 512 -n 128 -t 1,2 -r 5 --roofline --chart out.svg
 * For every model x thread count x test: one warm-up run, then -r timed runs
 * from an empty context on random token ids (fixed seed); t/s is the mean
 * and sample deviation over the runs. What each column means, and how
 * bits/weight and the roofline are computed: docs/bench.md. Measuring code
 * lives in runtime/eval/bench.h; this file runs the loops and prints. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bllm.h"
#include "runtime/blas.h"
#include "runtime/eval/bench.h"
#include "runtime/memory.h"
#include "tools/cli.h"

enum { MAX_MODELS = 64, MAX_LIST = 64 };
typedef enum { FMT_MD, FMT_JSON, FMT_CSV } out_format;

typedef struct {
    int v[MAX_LIST];
    int n;
} int_list;

typedef struct {
    const char *models[MAX_MODELS];
    int n_models;
    int_list prompt, gen, threads, depth;
    int reps, kv_type;
    out_format fmt;
    bool roofline, map_file;
    int bw_mib;
    const char *chart;
} options;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: bllm-bench -m MODEL.stb [-m MODEL.stb ...] [options]\n"
            "\n"
            "Throughput of prompt processing (ppN: N tokens as one batch from an empty\n"
            "context) and text generation (tgN: N single-token evaluations from an empty\n"
            "context) on random token ids, mean +- sd over the repetitions. With a depth D\n"
            "the context first holds D tokens (one untimed batch) and the test is named\n"
            "\"tgN @ dD\", as llama-bench names it.\n"
            "\n"
            "  -m, --model FILE     model in .stb format; repeat for several\n"
            "  -p, --n-prompt LIST  prompt lengths, comma-separated (default 512; 0 = no pp test)\n"
            "  -n, --n-gen LIST     generated tokens, comma-separated (default 128; 0 = no tg test)\n"
            "  -d, --n-depth LIST   tokens in the context before each test, comma-separated\n"
            "                       (default 0)\n"
            "  -t, --threads LIST   thread counts, comma-separated (default: online CPUs)\n"
            "  -r, --repetitions N  timed runs per test, after one warm-up run (default 5)\n"
            "      --cache-type T   KV cache storage: f16 (default), f32 or q8\n"
            "      --mmap           serve weights from the file's mapping (4 KiB pages) instead\n"
            "                       of reading them into huge-page memory\n"
            "  -o, --output FMT     md (default), json or csv, to stdout\n"
            "      --roofline       measure memory read bandwidth per thread count and show\n"
            "                       the generation ceiling (bandwidth / bytes read per token)\n"
            "      --bw-mib N       buffer for the bandwidth measurement (default 1024 MiB)\n"
            "      --chart FILE     write an SVG of t/s against bits/weight\n"
            "  -h, --help           this help\n"
            "\n"
            "Random-weight models of real shapes: see bllm-random. Kernel set: BLLM_KERNELS.\n");
}

/* "1,2,4" -> list; every value in [lo, hi]. */
static bool parse_list(const char *s, long lo, long hi, int_list *out)
{
    out->n = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < lo || v > hi || out->n == MAX_LIST)
            return false;
        out->v[out->n++] = (int)v;
        if (*end == '\0')
            return true;
        if (*end != ',')
            return false;
        p = end + 1;
    }
}

static int parse_args(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    o->prompt = (int_list){{512}, 1};
    o->gen = (int_list){{128}, 1};
    o->depth = (int_list){{0}, 1};
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    o->threads = (int_list){{ncpu > 0 ? (int)ncpu : 1}, 1};
    o->reps = 5;
    o->bw_mib = 1024;
    enum { O_ROOFLINE = 256, O_CACHE, O_BWMIB, O_CHART, O_MMAP };
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},        {"n-prompt", required_argument, NULL, 'p'},
        {"n-gen", required_argument, NULL, 'n'},        {"threads", required_argument, NULL, 't'},
        {"n-depth", required_argument, NULL, 'd'},
        {"repetitions", required_argument, NULL, 'r'},  {"output", required_argument, NULL, 'o'},
        {"cache-type", required_argument, NULL, O_CACHE}, {"bw-mib", required_argument, NULL, O_BWMIB},
        {"chart", required_argument, NULL, O_CHART},    {"roofline", no_argument, NULL, O_ROOFLINE},
        {"mmap", no_argument, NULL, O_MMAP},            {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":m:p:n:d:t:r:o:h", opts, NULL)) != -1;) {
        const char *v = optarg, *want = "comma-separated integers >= 0";
        bool ok = true;
        int_list l;
        switch (c) {
        case 'h': usage(stdout); exit(0);
        case O_ROOFLINE: o->roofline = true; break;
        case O_MMAP: o->map_file = true; break;
        case 'm':
            if (o->n_models == MAX_MODELS) {
                fprintf(stderr, "bllm-bench: at most %d models\n", MAX_MODELS);
                return -1;
            }
            o->models[o->n_models++] = v;
            break;
        case O_CACHE:
            if (!bllm_cli_parse_kv("bllm-bench", v, &o->kv_type))
                return -1;
            break;
        case 'p': ok = parse_list(v, 0, 1 << 24, &o->prompt); break;
        case 'n': ok = parse_list(v, 0, 1 << 24, &o->gen); break;
        case 'd': ok = parse_list(v, 0, 1 << 24, &o->depth); break;
        case 't':
            ok = parse_list(v, 1, 1024, &o->threads);
            want = "comma-separated integers >= 1";
            break;
        case 'r':
            ok = parse_list(v, 1, 100000, &l) && l.n == 1;
            o->reps = l.v[0];
            want = "one integer >= 1";
            break;
        case 'o':
            if (!strcmp(v, "md"))
                o->fmt = FMT_MD;
            else if (!strcmp(v, "json"))
                o->fmt = FMT_JSON;
            else if (!strcmp(v, "csv"))
                o->fmt = FMT_CSV;
            else {
                fprintf(stderr, "bllm-bench: unknown output format '%s' (md, json or csv)\n", v);
                return -1;
            }
            break;
        case O_BWMIB:
            ok = parse_list(v, 16, 1 << 20, &l) && l.n == 1;
            o->bw_mib = l.v[0];
            want = "one integer >= 16";
            break;
        case O_CHART: o->chart = v; break;
        default: bllm_cli_getopt_error("bllm-bench", c, argv); return -1;
        }
        if (!ok) {
            bllm_cli_bad_value("bllm-bench", opts, c, v, want);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "bllm-bench: unexpected argument '%s' (see --help)\n", argv[optind]);
        return -1;
    }
    if (!o->n_models) {
        fprintf(stderr, "bllm-bench: no model given (-m MODEL.stb); see --help\n");
        return -1;
    }
    bool any = false;
    for (int i = 0; i < o->prompt.n; i++)
        any |= o->prompt.v[i] > 0;
    for (int i = 0; i < o->gen.n; i++)
        any |= o->gen.v[i] > 0;
    if (!any) {
        fprintf(stderr, "bllm-bench: nothing to measure: every -p and -n value is 0\n");
        return -1;
    }
    return 0;
}

/* --------------------------------------------------------------- models */

typedef struct {
    const char *path, *file; /* file: base name */
    char label[64];          /* base name without .stb, for the chart */
    bllm_model *model;
    const bllm_model_info *info;
    bllm_weight_stats ws;
    double bpw_linear, bpw_all;
} model_entry;

static int load_models(const options *o, model_entry *m, int max_ctx)
{
    for (int i = 0; i < o->n_models; i++) {
        model_entry *e = &m[i];
        e->path = o->models[i];
        const char *slash = strrchr(e->path, '/');
        e->file = slash ? slash + 1 : e->path;
        snprintf(e->label, sizeof e->label, "%s", e->file);
        size_t len = strlen(e->label);
        if (len > 4 && !strcmp(e->label + len - 4, ".stb"))
            e->label[len - 4] = '\0';
        bllm_load_params lp = {.map_file = o->map_file};
        bllm_status s = bllm_model_load(e->path, &lp, &e->model);
        if (!s)
            s = bllm_weight_stats_of(e->path, &e->ws);
        if (s) {
            fprintf(stderr, "bllm-bench: cannot load model '%s': %s\n", e->path, bllm_last_error());
            return -1;
        }
        e->info = bllm_model_get_info(e->model);
        if (max_ctx > e->info->max_seq_len) {
            fprintf(stderr, "bllm-bench: %s: a test needs %d positions but the model's context is %d; "
                            "lower -p/-n/-d\n", e->file, max_ctx, e->info->max_seq_len);
            return -1;
        }
        e->bpw_linear = bllm_bits_per_weight(e->ws.linear_bytes, e->ws.n_linear);
        e->bpw_all = bllm_bits_per_weight(e->ws.weight_bytes, e->ws.n_weights);
    }
    return 0;
}

/* ---------------------------------------------------------------- runs */

typedef struct {
    const model_entry *m;
    int threads;
    bool gen;   /* tg, else pp */
    int n;      /* tokens per run */
    int depth;  /* tokens in the context before each run, untimed */
    char test[24];
    double *ts; /* tokens/s per timed run */
    bllm_stats st;
    double bw, ceiling; /* roofline (tg only); 0 = not measured */
} result;

/* Random valid ids from a fixed seed, the same for every run. */
static void random_tokens(int32_t *t, int n, int n_vocab)
{
    uint64_t x = 0x2545f4914f6cdd1dull;
    for (int i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        t[i] = (int32_t)(x % (uint64_t)n_vocab);
    }
}

/* One run after `depth` tokens (toks[0, depth), one untimed batch) in an
 * emptied context; toks[depth, depth + n) are the run's; seconds in *sec. */
static bllm_status run_once(bllm_context *ctx, const int32_t *toks, int depth, int n, bool gen, float *logits,
                            double *sec)
{
    bllm_context_reset(ctx);
    bllm_status s = depth > 0 ? bllm_eval(ctx, toks, depth, logits, false) : BLLM_OK;
    if (s)
        return s;
    toks += depth;
    double t0 = bllm_time_s();
    if (gen) {
        for (int i = 0; i < n && !s; i++)
            s = bllm_eval(ctx, &toks[i], 1, logits, false);
    } else {
        s = bllm_eval(ctx, toks, n, logits, false);
    }
    *sec = bllm_time_s() - t0;
    return s;
}

static int measure(result *r, bllm_context *ctx, int reps, float *logits)
{
    int32_t *toks = malloc((size_t)(r->depth + r->n) * sizeof *toks);
    r->ts = calloc((size_t)reps, sizeof *r->ts);
    if (!toks || !r->ts) {
        free(toks);
        fprintf(stderr, "bllm-bench: out of memory\n");
        return -1;
    }
    random_tokens(toks, r->depth + r->n, r->m->info->n_vocab);
    bool tty = isatty(2);
    for (int k = -1; k < reps; k++) { /* k = -1: warm-up (page-in, caches, pool start) */
        if (tty)
            fprintf(stderr, "\r%s t=%d %s: %s %d/%d   ", r->m->file, r->threads, r->test,
                    k < 0 ? "warm-up" : "run", k < 0 ? 0 : k + 1, reps);
        double sec;
        if (run_once(ctx, toks, r->depth, r->n, r->gen, logits, &sec)) {
            fprintf(stderr, "\nbllm-bench: %s: %s failed: %s\n", r->m->file, r->test, bllm_last_error());
            free(toks);
            return -1;
        }
        if (k >= 0)
            r->ts[k] = sec > 0 ? r->n / sec : INFINITY;
    }
    if (tty)
        fprintf(stderr, "\r%*s\r", 60, "");
    r->st = bllm_stats_of(r->ts, reps);
    free(toks);
    return 0;
}

/* -------------------------------------------------------------- output */

typedef struct {
    char build[256], cpu[256], features[512];
    const char *kernels, *kv_cache;
    const char *blas; /* OpenBLAS's kernels (attention in prompt batches) */
    char weights[64]; /* where the weights live: "mapped" or "loaded (THP policy)" */
    double load; /* 1-minute load average at start: others' work skews results */
    int_list bw_threads;
    double bw[MAX_LIST]; /* bytes/s per thread count, when --roofline */
    int bw_mib;
} machine;

static double bw_for(const machine *mc, int threads)
{
    for (int i = 0; i < mc->bw_threads.n; i++)
        if (mc->bw_threads.v[i] == threads)
            return mc->bw[i];
    return 0;
}

static void human_bytes(uint64_t b, char *buf, size_t cap)
{
    if (b >= (1ull << 30))
        snprintf(buf, cap, "%.2f GiB", (double)b / (1ull << 30));
    else
        snprintf(buf, cap, "%.1f MiB", (double)b / (1ull << 20));
}

static void human_count(uint64_t n, char *buf, size_t cap)
{
    if (n >= 1000000000ull)
        snprintf(buf, cap, "%.2f B", n / 1e9);
    else if (n >= 1000000ull)
        snprintf(buf, cap, "%.2f M", n / 1e6);
    else
        snprintf(buf, cap, "%.1f K", n / 1e3);
}

static void md_header(const machine *mc, bool roofline)
{
    printf("build: %s  \nCPU: %s, %ld online CPUs, load average %.2f at start  \nCPU features: %s  \n"
           "kernels: %s, KV cache %s, weights %s, OpenBLAS %s  \n", mc->build, mc->cpu, sysconf(_SC_NPROCESSORS_ONLN),
           mc->load, mc->features[0] ? mc->features : "(none detected)", mc->kernels, mc->kv_cache, mc->weights,
           mc->blas);
    if (roofline) {
        printf("read bandwidth (%d MiB buffer, best pass before and after the runs):", mc->bw_mib);
        for (int i = 0; i < mc->bw_threads.n; i++)
            printf("%s %d thread%s %.1f GB/s", i ? "," : "", mc->bw_threads.v[i], mc->bw_threads.v[i] > 1 ? "s" : "",
                   mc->bw[i] / 1e9);
        printf("  \n");
    }
    printf("\n| model | file | weights | params | bpw linear | bpw all | threads | test | t/s |%s\n",
           roofline ? " MB/token | ceiling t/s | % of ceiling |" : "");
    printf("|---|---:|---:|---:|---:|---:|---:|---|---:|%s\n", roofline ? "---:|---:|---:|" : "");
}

static void md_row(const result *r, bool roofline)
{
    char fb[32], wb[32], np[32];
    human_bytes(r->m->ws.file_bytes, fb, sizeof fb);
    human_bytes(r->m->ws.weight_bytes, wb, sizeof wb);
    human_count(r->m->ws.n_weights, np, sizeof np);
    printf("| %s | %s | %s | %s | %.2f | %.2f | %d | %s | %.2f ± %.2f |", r->m->file, fb, wb, np, r->m->bpw_linear,
           r->m->bpw_all, r->threads, r->test, r->st.mean, r->st.sd);
    if (roofline) {
        if (r->gen && r->ceiling > 0)
            printf(" %.1f | %.2f | %.0f%% |", r->m->ws.token_bytes / 1e6, r->ceiling, 100 * r->st.mean / r->ceiling);
        else
            printf(" - | - | - |");
    }
    printf("\n");
}

static const char *csv_fields[] = {
    "model", "model_path", "model_name", "file_bytes", "weight_bytes", "n_params", "linear_bytes", "linear_params",
    "bpw_linear", "bpw_all", "threads", "test", "n_prompt", "n_gen", "n_depth", "reps", "ts_mean", "ts_sd", "ts_samples",
    "token_bytes", "bandwidth_bytes_per_s", "ceiling_ts", "ceiling_pct", "cpu", "cpu_features", "kernels", "build",
    "loadavg", "kv_cache", "weights_memory", "blas",
};

static void csv_str(const char *s, bool last)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"')
            putchar('"');
        putchar(*s);
    }
    putchar('"');
    putchar(last ? '\n' : ',');
}

static void csv_header(void)
{
    size_t n = sizeof csv_fields / sizeof *csv_fields;
    for (size_t i = 0; i < n; i++)
        printf("%s%s", csv_fields[i], i + 1 < n ? "," : "\n");
}

static void csv_row(const result *r, const machine *mc)
{
    const model_entry *m = r->m;
    csv_str(m->file, false);
    csv_str(m->path, false);
    csv_str(m->info->name ? m->info->name : "", false);
    printf("%llu,%llu,%llu,%llu,%llu,%.6f,%.6f,%d,", (unsigned long long)m->ws.file_bytes,
           (unsigned long long)m->ws.weight_bytes, (unsigned long long)m->ws.n_weights,
           (unsigned long long)m->ws.linear_bytes, (unsigned long long)m->ws.n_linear, m->bpw_linear, m->bpw_all,
           r->threads);
    csv_str(r->test, false);
    printf("%d,%d,%d,%d,%.6g,%.6g,\"", r->gen ? 0 : r->n, r->gen ? r->n : 0, r->depth, r->st.n, r->st.mean, r->st.sd);
    for (int k = 0; k < r->st.n; k++)
        printf("%s%.6g", k ? ";" : "", r->ts[k]);
    printf("\",%llu,", (unsigned long long)m->ws.token_bytes);
    if (r->ceiling > 0)
        printf("%.6g,%.6g,%.4g,", r->bw, r->ceiling, 100 * r->st.mean / r->ceiling);
    else
        printf(",,,");
    csv_str(mc->cpu, false);
    csv_str(mc->features, false);
    csv_str(mc->kernels, false);
    csv_str(mc->build, false);
    printf("%.2f,", mc->load);
    csv_str(mc->kv_cache, false);
    csv_str(mc->weights, false);
    csv_str(mc->blas, true);
}

static cJSON *json_row(const result *r, const machine *mc)
{
    const model_entry *m = r->m;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model", m->file);
    cJSON_AddStringToObject(j, "model_path", m->path);
    cJSON_AddStringToObject(j, "model_name", m->info->name ? m->info->name : "");
    cJSON_AddNumberToObject(j, "file_bytes", (double)m->ws.file_bytes);
    cJSON_AddNumberToObject(j, "weight_bytes", (double)m->ws.weight_bytes);
    cJSON_AddNumberToObject(j, "n_params", (double)m->ws.n_weights);
    cJSON_AddNumberToObject(j, "linear_bytes", (double)m->ws.linear_bytes);
    cJSON_AddNumberToObject(j, "linear_params", (double)m->ws.n_linear);
    cJSON_AddNumberToObject(j, "bpw_linear", m->bpw_linear);
    cJSON_AddNumberToObject(j, "bpw_all", m->bpw_all);
    cJSON_AddNumberToObject(j, "threads", r->threads);
    cJSON_AddStringToObject(j, "test", r->test);
    cJSON_AddNumberToObject(j, "n_prompt", r->gen ? 0 : r->n);
    cJSON_AddNumberToObject(j, "n_gen", r->gen ? r->n : 0);
    cJSON_AddNumberToObject(j, "n_depth", r->depth);
    cJSON_AddNumberToObject(j, "reps", r->st.n);
    cJSON_AddNumberToObject(j, "ts_mean", r->st.mean);
    cJSON_AddNumberToObject(j, "ts_sd", r->st.sd);
    cJSON_AddItemToObject(j, "ts_samples", cJSON_CreateDoubleArray(r->ts, r->st.n));
    cJSON_AddNumberToObject(j, "token_bytes", (double)m->ws.token_bytes);
    if (r->ceiling > 0) {
        cJSON_AddNumberToObject(j, "bandwidth_bytes_per_s", r->bw);
        cJSON_AddNumberToObject(j, "ceiling_ts", r->ceiling);
        cJSON_AddNumberToObject(j, "ceiling_pct", 100 * r->st.mean / r->ceiling);
    } else {
        cJSON_AddNullToObject(j, "bandwidth_bytes_per_s");
        cJSON_AddNullToObject(j, "ceiling_ts");
        cJSON_AddNullToObject(j, "ceiling_pct");
    }
    cJSON_AddStringToObject(j, "cpu", mc->cpu);
    cJSON_AddStringToObject(j, "cpu_features", mc->features);
    cJSON_AddStringToObject(j, "kernels", mc->kernels);
    cJSON_AddStringToObject(j, "kv_cache", mc->kv_cache);
    cJSON_AddStringToObject(j, "weights_memory", mc->weights);
    cJSON_AddStringToObject(j, "blas", mc->blas);
    cJSON_AddStringToObject(j, "build", mc->build);
    cJSON_AddNumberToObject(j, "loadavg", mc->load);
    return j;
}

/* tg panels first: generation is what the bits/weight drive. */
static int write_chart(const char *path, const result *res, int n_res, const int_list *threads)
{
    bllm_chart_panel panels[2 * MAX_LIST];
    bllm_chart_point *pts = calloc((size_t)n_res, sizeof *pts);
    char (*labels)[96] = calloc((size_t)n_res, sizeof *labels);
    char titles[2 * MAX_LIST][64];
    int n_panels = 0, n_pts = 0;
    if (!pts || !labels) {
        free(pts);
        free(labels);
        fprintf(stderr, "bllm-bench: out of memory\n");
        return -1;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n_res; i++) {
            if (res[i].gen != (pass == 0))
                continue;
            int p = 0;
            while (p < n_panels && strcmp(titles[p], res[i].test))
                p++;
            if (p == n_panels) {
                if (n_panels == 2 * MAX_LIST)
                    continue;
                snprintf(titles[p], sizeof titles[p], "%s", res[i].test);
                panels[p] = (bllm_chart_panel){.title = titles[p],
                                               .x_label = "bits per weight (linear layers, as stored)",
                                               .y_label = res[i].gen ? "generated tokens/s" : "prompt tokens/s",
                                               .points = pts + n_pts};
                n_panels++;
                /* this panel's points are contiguous: gather them now */
                for (int k = i; k < n_res; k++) {
                    if (strcmp(res[k].test, titles[p]))
                        continue;
                    int series = 0;
                    while (series < threads->n && threads->v[series] != res[k].threads)
                        series++;
                    int q = n_pts++;
                    snprintf(labels[q], sizeof labels[q], "%s t%d", res[k].m->label, res[k].threads);
                    pts[q] = (bllm_chart_point){.x = res[k].m->bpw_linear, .y = res[k].st.mean,
                                                .label = labels[q], .series = series};
                    panels[p].n_points++;
                }
            }
        }
    }
    char names[MAX_LIST][24];
    const char *series[MAX_LIST];
    for (int i = 0; i < threads->n; i++) {
        snprintf(names[i], sizeof names[i], "%d thread%s", threads->v[i], threads->v[i] > 1 ? "s" : "");
        series[i] = names[i];
    }
    bllm_status s = bllm_svg_chart_write(path, "bllm-bench: throughput against bits per weight", panels, n_panels,
                                         series, threads->n);
    free(pts);
    free(labels);
    if (s) {
        fprintf(stderr, "bllm-bench: chart: %s\n", bllm_last_error());
        return -1;
    }
    return 0;
}

static int measure_bandwidth(machine *mc, const int_list *threads)
{
    mc->bw_threads = *threads;
    for (int i = 0; i < threads->n; i++) {
        double bw;
        if (bllm_read_bandwidth((size_t)mc->bw_mib << 20, threads->v[i], 5, &bw)) {
            fprintf(stderr, "bllm-bench: bandwidth: %s\n", bllm_last_error());
            return -1;
        }
        if (bw > mc->bw[i])
            mc->bw[i] = bw;
    }
    return 0;
}

int main(int argc, char **argv)
{
    bllm_cli_blas_core(argv);
    options o;
    if (parse_args(argc, argv, &o))
        return 2;
    int max_ctx = 1;
    for (int i = 0; i < o.prompt.n; i++)
        max_ctx = o.prompt.v[i] > max_ctx ? o.prompt.v[i] : max_ctx;
    for (int i = 0; i < o.gen.n; i++)
        max_ctx = o.gen.v[i] > max_ctx ? o.gen.v[i] : max_ctx;
    int max_depth = 0;
    for (int i = 0; i < o.depth.n; i++)
        max_depth = o.depth.v[i] > max_depth ? o.depth.v[i] : max_depth;
    max_ctx += max_depth;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 0; i < o.threads.n; i++)
        if (o.threads.v[i] > ncpu)
            fprintf(stderr, "bllm-bench: warning: %d threads on %ld online CPUs: results will be noisy\n",
                    o.threads.v[i], ncpu);

    int rc = 1;
    model_entry *models = calloc((size_t)o.n_models, sizeof *models);
    int n_tests = o.prompt.n + o.gen.n, max_res = o.n_models * o.threads.n * o.depth.n * n_tests;
    result *res = calloc((size_t)max_res, sizeof *res);
    cJSON *json = NULL;
    int n_res = 0;
    if (!models || !res) {
        fprintf(stderr, "bllm-bench: out of memory\n");
        goto done;
    }
    if (load_models(&o, models, max_ctx))
        goto done;

    machine mc = {.kernels = bllm_kernel_name(), .blas = bllm_blas_core(), .kv_cache = o.kv_type == BLLM_KV_F32 ? "f32" : o.kv_type == BLLM_KV_Q8 ? "q8" : "f16",
                  .bw_mib = o.bw_mib};
    if (o.map_file)
        snprintf(mc.weights, sizeof mc.weights, "mapped");
    else
        snprintf(mc.weights, sizeof mc.weights, "loaded (THP %s)", bllm_huge_page_policy());
    if (getloadavg(&mc.load, 1) != 1)
        mc.load = -1;
    if (mc.load > 0.5 * (double)ncpu)
        fprintf(stderr, "bllm-bench: warning: load average %.2f on %ld CPUs: other work will skew the "
                        "results\n", mc.load, ncpu);
    snprintf(mc.build, sizeof mc.build, "%s", bllm_build_id());
    bllm_cpu_name(mc.cpu, sizeof mc.cpu);
    bllm_cpu_features(mc.features, sizeof mc.features);
    /* Bandwidth before the runs (nothing paged in yet) and again after;
     * the better of the two counts, so a burst of other work during one
     * measurement does not lower the ceiling. */
    if (o.roofline && measure_bandwidth(&mc, &o.threads))
        goto done;

    for (int mi = 0; mi < o.n_models; mi++) {
        model_entry *m = &models[mi];
        float *logits = malloc((size_t)m->info->n_vocab * sizeof *logits);
        if (!logits) {
            fprintf(stderr, "bllm-bench: out of memory\n");
            goto done;
        }
        for (int ti = 0; ti < o.threads.n; ti++) {
            bllm_context *ctx = NULL;
            bllm_context_params cp = {.n_ctx = max_ctx, .n_threads = o.threads.v[ti],
                                      .kv_type = (bllm_kv_type)o.kv_type};
            if (bllm_context_new(m->model, &cp, &ctx)) {
                fprintf(stderr, "bllm-bench: %s: cannot create a context: %s\n", m->file, bllm_last_error());
                free(logits);
                goto done;
            }
            for (int k = 0; k < n_tests * o.depth.n; k++) {
                const int kt = k % n_tests, depth = o.depth.v[k / n_tests];
                bool gen = kt >= o.prompt.n;
                int n = gen ? o.gen.v[kt - o.prompt.n] : o.prompt.v[kt];
                if (n == 0)
                    continue;
                result *r = &res[n_res];
                *r = (result){.m = m, .threads = o.threads.v[ti], .gen = gen, .n = n, .depth = depth};
                if (depth > 0)
                    snprintf(r->test, sizeof r->test, "%s%d @ d%d", gen ? "tg" : "pp", n, depth);
                else
                    snprintf(r->test, sizeof r->test, "%s%d", gen ? "tg" : "pp", n);
                if (measure(r, ctx, o.reps, logits)) {
                    free(r->ts);
                    bllm_context_free(ctx);
                    free(logits);
                    goto done;
                }
                n_res++;
                fprintf(stderr, "bllm-bench: %s, %d thread%s, %s: %.2f ± %.2f t/s\n", m->file, r->threads,
                        r->threads > 1 ? "s" : "", r->test, r->st.mean, r->st.sd);
            }
            bllm_context_free(ctx);
        }
        free(logits);
    }
    if (o.roofline && measure_bandwidth(&mc, &o.threads))
        goto done;

    /* The report goes out at the end, when the ceilings are final. */
    for (int i = 0; i < n_res; i++) {
        result *r = &res[i];
        r->bw = bw_for(&mc, r->threads);
        /* token_bytes counts the weights: from a filled context a token
         * also reads the cache, so there is no ceiling to show */
        if (r->gen && r->depth == 0 && r->bw > 0 && r->m->ws.token_bytes)
            r->ceiling = r->bw / (double)r->m->ws.token_bytes;
    }
    if (o.fmt == FMT_MD) {
        md_header(&mc, o.roofline);
        for (int i = 0; i < n_res; i++)
            md_row(&res[i], o.roofline);
    } else if (o.fmt == FMT_CSV) {
        csv_header();
        for (int i = 0; i < n_res; i++)
            csv_row(&res[i], &mc);
    } else {
        json = cJSON_CreateArray();
        for (int i = 0; json && i < n_res; i++)
            cJSON_AddItemToArray(json, json_row(&res[i], &mc));
        char *text = json ? cJSON_Print(json) : NULL;
        if (!text) {
            fprintf(stderr, "bllm-bench: out of memory\n");
            goto done;
        }
        printf("%s\n", text);
        free(text);
    }
    if (o.chart && write_chart(o.chart, res, n_res, &o.threads))
        goto done;
    rc = fflush(stdout) ? 1 : 0;
    if (rc)
        fprintf(stderr, "bllm-bench: writing the report failed: %s\n", strerror(errno));
done:
    cJSON_Delete(json);
    for (int i = 0; i < n_res; i++)
        free(res[i].ts);
    free(res);
    for (int i = 0; models && i < o.n_models; i++)
        bllm_model_free(models[i].model);
    free(models);
    return rc;
}
