/* bllm-perplexity: perplexity of a .stb model on a text, and optionally the
 * KL divergence from a base model (docs/perplexity.md).
 *   bllm-perplexity -m model.stb -f ../shared/data/wiki.test.raw -c 2048
 *   bllm-perplexity -m q.stb -f wiki.test.raw --kl-base f32.stb --json */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bllm.h"
#include "tools/cli.h"
#include "runtime/eval/perplexity.h"

#define PROG "bllm-perplexity"

typedef struct {
    const char *model, *file, *tokens_file, *kl_base;
    int n_ctx, n_chunks, n_threads, kv_type;
    bllm_ppl_protocol protocol;
    bool json, verify, map_file;
} options;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: " PROG " -m MODEL.stb -f TEXT [options]\n"
            "\n"
            "  -m, --model FILE      model in .stb format (see bllm-convert)\n"
            "  -f, --file FILE       text to score (e.g. wiki.test.raw), tokenized once as a whole\n"
            "      --tokens FILE     score these token ids instead of a text: decimal ids separated by\n"
            "                        white space, used as given (no BOS is added)\n"
            "  -c, --ctx-size N      window length (default: 2048 for gptq, 512 for llamacpp,\n"
            "                        capped at the model's context)\n"
            "      --protocol P      gptq (default): non-overlapping windows, every prediction scored,\n"
            "                        as the GPTQ/BiLLM papers report;\n"
            "                        llamacpp: windows start with BOS, second half scored, as\n"
            "                        llama.cpp's perplexity tool\n"
            "      --chunks N        score at most the first N windows\n"
            "      --kl-base FILE    also run this base model (same vocabulary) on the same windows and\n"
            "                        report KL(base || model) and top-1 agreement\n"
            "  -t, --threads N       threads (default: all online CPUs)\n"
            "      --cache-type T    KV cache storage: f16 (default), f32 or q8\n"
            "      --json            print the result as one JSON object on stdout\n"
            "      --verify          verify tensor checksums at load\n"
            "      --mmap            serve weights from the file's mapping (4 KiB pages)\n"
            "                        instead of reading them into huge-page memory\n"
            "  -h, --help            this help\n"
            "\n"
            "Progress goes to stderr, the result to stdout.\n");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int parse_args(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    o->protocol = BLLM_PPL_GPTQ;
    enum { O_JSON = 256, O_VERIFY, O_TOKENS, O_KLBASE, O_CACHE, O_CHUNKS, O_PROTOCOL, O_MMAP };
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},          {"file", required_argument, NULL, 'f'},
        {"ctx-size", required_argument, NULL, 'c'},       {"threads", required_argument, NULL, 't'},
        {"tokens", required_argument, NULL, O_TOKENS},    {"kl-base", required_argument, NULL, O_KLBASE},
        {"cache-type", required_argument, NULL, O_CACHE}, {"chunks", required_argument, NULL, O_CHUNKS},
        {"protocol", required_argument, NULL, O_PROTOCOL}, {"json", no_argument, NULL, O_JSON},
        {"verify", no_argument, NULL, O_VERIFY},          {"mmap", no_argument, NULL, O_MMAP},
        {"help", no_argument, NULL, 'h'},                {NULL, 0, NULL, 0},
    };
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":m:f:c:t:h", opts, NULL)) != -1;) {
        const char *v = optarg;
        bool ok = true;
        switch (c) {
        case 'h': usage(stdout); exit(0);
        case O_JSON: o->json = true; break;
        case O_VERIFY: o->verify = true; break;
        case O_MMAP: o->map_file = true; break;
        case 'm': o->model = v; break;
        case 'f': o->file = v; break;
        case O_TOKENS: o->tokens_file = v; break;
        case O_KLBASE: o->kl_base = v; break;
        case 'c': ok = bllm_cli_parse_int(v, 2, 1 << 24, &o->n_ctx); break;
        case O_CACHE:
            if (!bllm_cli_parse_kv(PROG, v, &o->kv_type))
                return -1;
            break;
        case O_CHUNKS: ok = bllm_cli_parse_int(v, 1, 1 << 30, &o->n_chunks); break;
        case 't': ok = bllm_cli_parse_int(v, 1, 1024, &o->n_threads); break;
        case O_PROTOCOL: ok = bllm_ppl_protocol_parse(v, &o->protocol); break;
        default: bllm_cli_getopt_error(PROG, c, argv); return -1;
        }
        if (!ok) {
            bllm_cli_bad_value(PROG, opts, c, v, NULL);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument '%s' (see --help)\n", argv[optind]);
        return -1;
    }
    if (!o->model) {
        fprintf(stderr, PROG ": no model given (-m MODEL.stb); see --help\n");
        return -1;
    }
    if (!o->file == !o->tokens_file) {
        fprintf(stderr, PROG ": give the text to score with -f FILE (or token ids with --tokens FILE), "
                        "exactly one of them; see --help\n");
        return -1;
    }
    return 0;
}

/* Tokenize the whole text once; BOS goes in front iff the model's tokenizer
 * adds one (what HF's tokenizer(text) and llama.cpp's common_tokenize do). */
static int32_t *tokenize_text(bllm_model *model, const char *text, size_t len, size_t *n_out)
{
    bool bos = bllm_model_adds_bos(model);
    size_t cap = len + 8, n = 0;
    int32_t *toks = malloc(cap * sizeof *toks);
    if (!toks) {
        fprintf(stderr, PROG ": out of memory\n");
        return NULL;
    }
    bllm_status st = bllm_tokenize(model, text, len, bos, false, toks, cap, &n);
    if (st == BLLM_ERR_ARG && n > cap) {
        int32_t *t2 = realloc(toks, n * sizeof *toks);
        if (!t2) {
            free(toks);
            fprintf(stderr, PROG ": out of memory\n");
            return NULL;
        }
        toks = t2;
        st = bllm_tokenize(model, text, len, bos, false, toks, n, &n);
    }
    if (st) {
        fprintf(stderr, PROG ": cannot tokenize the text: %s\n", bllm_last_error());
        free(toks);
        return NULL;
    }
    *n_out = n;
    return toks;
}

static int32_t *parse_tokens(const char *path, const char *text, int n_vocab, size_t *n_out)
{
    size_t cap = 1024, n = 0;
    int32_t *toks = malloc(cap * sizeof *toks);
    const char *p = text;
    while (toks) {
        while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
            p++;
        if (!*p)
            break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v >= n_vocab ||
            (*end && *end != ' ' && *end != '\n' && *end != '\t' && *end != '\r')) {
            fprintf(stderr, PROG ": %s: token #%zu is not an id in [0, %d)\n", path, n, n_vocab);
            free(toks);
            return NULL;
        }
        if (n == cap) {
            int32_t *t2 = realloc(toks, 2 * cap * sizeof *toks);
            if (!t2) {
                free(toks);
                toks = NULL;
                break;
            }
            toks = t2;
            cap *= 2;
        }
        toks[n++] = (int32_t)v;
        p = end;
    }
    if (!toks) {
        fprintf(stderr, PROG ": out of memory\n");
        return NULL;
    }
    *n_out = n;
    return toks;
}

/* ------------------------------------------------------------ progress */

typedef struct {
    double t0;
    bool tty;
    int windows_done;
} progress_state;

/* SIGINT/SIGTERM stop the run at the end of the current window, and the
 * windows done so far are reported (like --chunks after the fact). A second
 * one does not wait for the window: the process ends at once with the
 * signal's default action (a window of a large model can take minutes). */
static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    if (g_stop) {
        static const char msg[] = PROG ": interrupted again; stopping now\n";
        ssize_t r = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)r;
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    static const char msg[] = PROG ": stopping after this window (interrupt again to stop now)\n";
    ssize_t r = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)r;
    g_stop = 1;
}

static bool on_window(void *user, int w, int n_windows, const bllm_ppl_stats *s)
{
    progress_state *ps = user;
    ps->windows_done = w + 1;
    bllm_ppl_summary sum;
    bllm_ppl_summarize(s, &sum);
    double el = now_s() - ps->t0;
    double eta = el / (w + 1) * (n_windows - w - 1);
    if (ps->tty) {
        const int width = 30;
        int filled = (int)((double)(w + 1) / n_windows * width);
        char bar[64];
        for (int i = 0; i < width; i++)
            bar[i] = i < filled ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r[%s] %d/%d  ppl %.4f +/- %.4f  %.0fs, eta %.0fs ", bar, w + 1, n_windows, sum.ppl,
                sum.ppl_stderr, el, eta);
        if (w + 1 == n_windows || g_stop)
            fputc('\n', stderr);
    } else {
        fprintf(stderr, PROG ": window %d/%d  ppl %.4f +/- %.4f  %.1fs\n", w + 1, n_windows, sum.ppl, sum.ppl_stderr,
                el);
    }
    if (g_stop && w + 1 < n_windows)
        fprintf(stderr, PROG ": interrupted; reporting the %d windows done\n", w + 1);
    fflush(stderr);
    return !g_stop;
}

/* ------------------------------------------------------------ main */

static int fail(const char *what)
{
    fprintf(stderr, PROG ": %s: %s\n", what, bllm_last_error());
    return 1;
}

static bllm_model *load(const char *path, const options *o)
{
    bllm_model *m = NULL;
    bllm_load_params lp = {.verify_checksums = o->verify, .map_file = o->map_file};
    if (bllm_model_load(path, &lp, &m)) {
        fprintf(stderr, PROG ": cannot load model %s: %s\n", path, bllm_last_error());
        return NULL;
    }
    return m;
}

static void print_json(const options *o, const bllm_ppl_plan *plan, int planned, const bllm_ppl_summary *s,
                       double secs, size_t n_text_tokens, int n_threads)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model", o->model);
    cJSON_AddStringToObject(j, "input", o->file ? o->file : o->tokens_file);
    cJSON_AddStringToObject(j, "protocol", bllm_ppl_protocol_name(o->protocol));
    cJSON_AddNumberToObject(j, "ctx", plan->n_ctx);
    cJSON_AddNumberToObject(j, "chunks", plan->n_windows);
    if (plan->n_windows < planned) {
        cJSON_AddBoolToObject(j, "interrupted", true);
        cJSON_AddNumberToObject(j, "chunks_planned", planned);
    }
    cJSON_AddNumberToObject(j, "text_tokens", (double)n_text_tokens);
    cJSON_AddNumberToObject(j, "tokens", (double)s->tokens);
    cJSON_AddNumberToObject(j, "nll_mean", s->nll_mean);
    cJSON_AddNumberToObject(j, "nll_stderr", s->nll_stderr);
    cJSON_AddNumberToObject(j, "ppl", s->ppl);
    cJSON_AddNumberToObject(j, "ppl_stderr", s->ppl_stderr);
    cJSON_AddNumberToObject(j, "seconds", secs);
    cJSON_AddNumberToObject(j, "tokens_evaluated", (double)plan->n_windows * plan->n_ctx);
    cJSON_AddNumberToObject(j, "tokens_per_second", secs > 0 ? plan->n_windows * (double)plan->n_ctx / secs : 0.0);
    cJSON_AddNumberToObject(j, "threads", n_threads);
    if (s->has_kl) {
        cJSON_AddStringToObject(j, "kl_base", o->kl_base);
        cJSON_AddNumberToObject(j, "kl_mean", s->kl_mean);
        cJSON_AddNumberToObject(j, "kl_stderr", s->kl_stderr);
        cJSON_AddNumberToObject(j, "top1_agreement", s->top1_agree);
    }
    char *txt = cJSON_PrintUnformatted(j);
    if (txt)
        puts(txt);
    free(txt);
    cJSON_Delete(j);
}

int main(int argc, char **argv)
{
    bllm_cli_blas_core(argv);
    options o;
    if (parse_args(argc, argv, &o))
        return 2;

    int rc = 1;
    bllm_model *model = NULL, *base = NULL;
    bllm_context *ctx = NULL, *base_ctx = NULL;
    int32_t *tokens = NULL;
    size_t n_tokens = 0;

    /* Read the input before the (slower) model load so a wrong path fails fast. */
    size_t len = 0;
    char *text = bllm_cli_read_file(PROG, o.file ? "text file" : "token file", o.file ? o.file : o.tokens_file, &len);
    if (!text)
        return 1;
    if (!(model = load(o.model, &o)))
        goto done;
    const bllm_model_info *info = bllm_model_get_info(model);
    if (o.kl_base) {
        if (!(base = load(o.kl_base, &o)))
            goto done;
        const bllm_model_info *bi = bllm_model_get_info(base);
        if (bi->n_vocab != info->n_vocab) {
            fprintf(stderr, PROG ": the base model %s has a vocabulary of %d tokens, the model %d: "
                            "KL divergence needs the same vocabulary\n", o.kl_base, bi->n_vocab, info->n_vocab);
            goto done;
        }
    }
    int max_ctx = info->max_seq_len;
    if (base && bllm_model_get_info(base)->max_seq_len < max_ctx)
        max_ctx = bllm_model_get_info(base)->max_seq_len;
    int n_ctx = o.n_ctx;
    if (n_ctx == 0) {
        n_ctx = o.protocol == BLLM_PPL_LLAMACPP ? 512 : 2048;
        if (n_ctx > max_ctx)
            n_ctx = max_ctx;
    } else if (n_ctx > max_ctx) {
        fprintf(stderr, PROG ": -c %d exceeds the %s context of %d tokens\n", n_ctx,
                info->max_seq_len == max_ctx ? "model's" : "base model's", max_ctx);
        goto done;
    }

    if (o.file)
        tokens = tokenize_text(model, text, len, &n_tokens);
    else
        tokens = parse_tokens(o.tokens_file, text, info->n_vocab, &n_tokens);
    if (!tokens)
        goto done;
    if (n_tokens < (size_t)n_ctx) {
        fprintf(stderr, PROG ": %s has %zu tokens, fewer than one window of %d (-c); "
                        "use a longer text or a smaller -c\n", o.file ? o.file : o.tokens_file, n_tokens, n_ctx);
        goto done;
    }

    bllm_ppl_params pp = {
        .protocol = o.protocol,
        .n_ctx = n_ctx,
        .max_windows = o.n_chunks,
        .bos = bllm_model_adds_bos(model) ? bllm_token_bos(model) : -1,
    };
    bllm_ppl_plan plan;
    if (bllm_ppl_plan_make(&pp, n_tokens, &plan)) {
        rc = fail("bad parameters");
        goto done;
    }
    bllm_context_params cp = {.n_ctx = n_ctx, .n_threads = o.n_threads, .kv_type = (bllm_kv_type)o.kv_type};
    if (bllm_context_new(model, &cp, &ctx) || (base && bllm_context_new(base, &cp, &base_ctx))) {
        rc = fail("cannot create context");
        goto done;
    }
    /* before the plan line, so that a caller who has read it knows an
     * interrupt is handled */
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int n_threads = o.n_threads ? o.n_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    fprintf(stderr,
            PROG ": %s protocol, %zu tokens, %d windows of %d, scoring positions %d..%d of each (%d per window)%s; "
                 "%d threads, kernels %s\n",
            bllm_ppl_protocol_name(o.protocol), n_tokens, plan.n_windows, plan.n_ctx, plan.first_scored,
            plan.first_scored + plan.n_scored - 1, plan.n_scored,
            o.protocol == BLLM_PPL_LLAMACPP && pp.bos >= 0 ? ", BOS first" : "", n_threads, bllm_kernel_name());

    progress_state ps = {.t0 = now_s(), .tty = isatty(STDERR_FILENO)};
    bllm_ppl_stats stats;
    if (bllm_ppl_evaluate(model, ctx, base, base_ctx, tokens, n_tokens, &pp, o.n_threads, on_window, &ps, &stats)) {
        rc = fail("evaluation failed");
        goto done;
    }
    double secs = now_s() - ps.t0;
    if (ps.windows_done == 0) {
        fprintf(stderr, PROG ": interrupted before the first window ended; nothing to report\n");
        goto done;
    }
    int planned = plan.n_windows;
    plan.n_windows = ps.windows_done;
    bllm_ppl_summary s;
    bllm_ppl_summarize(&stats, &s);
    double tps = secs > 0 ? plan.n_windows * (double)plan.n_ctx / secs : 0.0;
    if (o.json) {
        print_json(&o, &plan, planned, &s, secs, n_tokens, n_threads);
    } else {
        printf("perplexity: %.4f +/- %.4f (%s, c=%d, %d windows, mean NLL %.6f +/- %.6f)\n", s.ppl, s.ppl_stderr,
               bllm_ppl_protocol_name(o.protocol), plan.n_ctx, plan.n_windows, s.nll_mean, s.nll_stderr);
        if (plan.n_windows < planned)
            printf("interrupted: %d of %d windows scored\n", plan.n_windows, planned);
        printf("tokens scored: %llu, %.1f s, %.1f tokens/s evaluated%s\n", (unsigned long long)s.tokens, secs, tps,
               base ? " (each by both models)" : "");
        if (s.has_kl)
            printf("KL(base || model): %.6f +/- %.6f nats/token, top-1 agreement %.3f%%\n", s.kl_mean, s.kl_stderr,
                   100.0 * s.top1_agree);
    }
    rc = 0;
done:
    free(text);
    free(tokens);
    bllm_context_free(ctx);
    bllm_context_free(base_ctx);
    bllm_model_free(model);
    bllm_model_free(base);
    return rc;
}
