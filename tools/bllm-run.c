/* bllm-run: generate text from a .stb model, or chat with an instruct model.
 *   bllm-run -m model.stb -p "Once upon a time" -n 128
 *   bllm-run -m smollm2.stb --chat */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <editline/readline.h>

#include "bllm.h"
#include "tools/cli.h"

typedef struct {
    const char *model, *prompt, *prompt_file, *system, *chat_template;
    int n_predict, n_threads, n_ctx, kv_type;
    bool chat, verify, no_bos, show_prompt, map_file;
    bllm_sampler_params sp;
} options;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: bllm-run -m MODEL.stb [-p PROMPT | -f FILE] [options]\n"
            "\n"
            "  -m, --model FILE        model in .stb format (see bllm-convert)\n"
            "  -p, --prompt TEXT       prompt (default: empty, generation starts from BOS)\n"
            "  -f, --file FILE         read the prompt from FILE\n"
            "  -n, --n-predict N       tokens to generate (default 256; -1 = until EOS or context end)\n"
            "  -t, --threads N         threads (default: all online CPUs)\n"
            "      --cache-type T      KV cache storage: f16 (default), f32 or q8\n"
            "  -c, --ctx-size N        context length (default: the model's, capped at 4096)\n"
            "  -s, --seed N            sampling seed (default: time-based)\n"
            "      --temp T            temperature (default 0.8; 0 = greedy)\n"
            "      --top-k N           keep the N most likely tokens (default 40; 0 = off)\n"
            "      --top-p P           nucleus sampling mass (default 0.95; 1 = off)\n"
            "      --min-p P           drop tokens below P x the best one's probability (default 0.05)\n"
            "      --repeat-penalty R  penalize recent tokens (default 1.0 = off)\n"
            "      --repeat-last-n N   tokens the penalty looks back at (default 64)\n"
            "      --chat, -cnv        interactive chat using the model's chat template\n"
            "      --system TEXT       system prompt for --chat (kept when old turns are dropped)\n"
            "      --chat-template T   chatml, llama2, llama3, mistral, zephyr or gemma instead of the\n"
            "                          family recognized from the model's template\n"
            "                          In the chat: Ctrl-C stops an answer, Ctrl-C or Ctrl-D at the\n"
            "                          prompt exits, /reset starts over, /exit quits; with stdin not a\n"
            "                          terminal, each line is a turn and answers go to stdout\n"
            "      --no-bos            do not prepend BOS even if the model asks for it\n"
            "      --no-display-prompt print only generated text\n"
            "      --verify            verify tensor checksums at load\n"
            "      --mmap              serve weights from the file's mapping (starts at once,\n"
            "                          shares the page cache; decodes slower: 4 KiB pages)\n"
            "  -h, --help              this help\n"
            "\n"
            "Output goes to stdout; the timing line and errors go to stderr.\n");
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int parse_args(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    o->n_predict = 256;
    o->show_prompt = true;
    o->sp = bllm_sampler_default_params();
    o->sp.seed = (uint64_t)time(NULL);
    enum { O_CHAT = 256, O_VERIFY, O_NOBOS, O_NODISP, O_SYSTEM, O_TEMPLATE, O_CACHE, O_TEMP, O_TOPK, O_TOPP,
           O_MINP, O_PENALTY, O_LASTN, O_MMAP };
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},        {"prompt", required_argument, NULL, 'p'},
        {"file", required_argument, NULL, 'f'},         {"n-predict", required_argument, NULL, 'n'},
        {"threads", required_argument, NULL, 't'},      {"ctx-size", required_argument, NULL, 'c'},
        {"seed", required_argument, NULL, 's'},         {"system", required_argument, NULL, O_SYSTEM},
        {"chat-template", required_argument, NULL, O_TEMPLATE},
        {"cache-type", required_argument, NULL, O_CACHE}, {"temp", required_argument, NULL, O_TEMP},
        {"top-k", required_argument, NULL, O_TOPK},     {"top-p", required_argument, NULL, O_TOPP},
        {"min-p", required_argument, NULL, O_MINP},     {"repeat-penalty", required_argument, NULL, O_PENALTY},
        {"repeat-last-n", required_argument, NULL, O_LASTN},
        {"chat", no_argument, NULL, O_CHAT},            {"verify", no_argument, NULL, O_VERIFY},
        {"no-bos", no_argument, NULL, O_NOBOS},         {"no-display-prompt", no_argument, NULL, O_NODISP},
        {"mmap", no_argument, NULL, O_MMAP},            {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char optstring[] = ":m:p:f:n:t:c:s:h";
    bllm_cli_alias(argc, argv, optstring, opts, "-cnv", "--chat"); /* llama.cpp's */
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, optstring, opts, NULL)) != -1;) {
        const char *v = optarg;
        bool ok = true;
        switch (c) {
        case 'h': usage(stdout); exit(0);
        case O_CHAT: o->chat = true; break;
        case O_VERIFY: o->verify = true; break;
        case O_MMAP: o->map_file = true; break;
        case O_NOBOS: o->no_bos = true; break;
        case O_NODISP: o->show_prompt = false; break;
        case 'm': o->model = v; break;
        case 'p': o->prompt = v; break;
        case 'f': o->prompt_file = v; break;
        case O_SYSTEM: o->system = v; break;
        case O_TEMPLATE: o->chat_template = v; break;
        case 'n': ok = bllm_cli_parse_int(v, -1, 1 << 24, &o->n_predict); break;
        case 't': ok = bllm_cli_parse_int(v, 1, 1024, &o->n_threads); break;
        case 'c': ok = bllm_cli_parse_int(v, 1, 1 << 24, &o->n_ctx); break;
        case O_CACHE:
            if (!bllm_cli_parse_kv("bllm-run", v, &o->kv_type))
                return -1;
            break;
        case 's': {
            char *end;
            errno = 0;
            o->sp.seed = strtoull(v, &end, 10);
            ok = !errno && !*end && end != v;
            break;
        }
        case O_TEMP: ok = bllm_cli_parse_float(v, &o->sp.temperature) && o->sp.temperature >= 0; break;
        case O_TOPK: ok = bllm_cli_parse_int(v, 0, 1 << 24, &o->sp.top_k); break;
        case O_TOPP: ok = bllm_cli_parse_float(v, &o->sp.top_p) && o->sp.top_p > 0 && o->sp.top_p <= 1; break;
        case O_MINP: ok = bllm_cli_parse_float(v, &o->sp.min_p) && o->sp.min_p >= 0 && o->sp.min_p <= 1; break;
        case O_PENALTY: ok = bllm_cli_parse_float(v, &o->sp.repeat_penalty) && o->sp.repeat_penalty > 0; break;
        case O_LASTN: ok = bllm_cli_parse_int(v, 0, 1 << 20, &o->sp.repeat_last_n); break;
        default: bllm_cli_getopt_error("bllm-run", c, argv); return -1;
        }
        if (!ok) {
            bllm_cli_bad_value("bllm-run", opts, c, v, NULL);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "bllm-run: unexpected argument '%s' (see --help)\n", argv[optind]);
        return -1;
    }
    if (!o->model) {
        fprintf(stderr, "bllm-run: no model given (-m MODEL.stb); see --help\n");
        return -1;
    }
    if (o->prompt && o->prompt_file) {
        fprintf(stderr, "bllm-run: give -p or -f, not both\n");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ generation */

typedef struct {
    bllm_model *model;
    bllm_context *ctx;
    bllm_sampler *sampler;
    float *logits;
    int n_vocab;
    double prompt_ms, gen_ms;
    int prompt_tokens, gen_tokens;
    int32_t last_token; /* last token fed, so decoding knows what precedes */
} session;

static int fail(const char *what)
{
    fprintf(stderr, "bllm-run: %s: %s\n", what, bllm_last_error());
    return 1;
}

/* Evaluate n prompt tokens (timed) and show them to the sampler; logits
 * of the last position are left in s->logits. */
static bllm_status feed_tokens(session *s, const int32_t *toks, size_t n)
{
    double t0 = now_ms();
    bllm_status st = bllm_eval(s->ctx, toks, (int)n, s->logits, false);
    s->prompt_ms += now_ms() - t0;
    s->prompt_tokens += (int)n;
    for (size_t i = 0; i < n; i++)
        bllm_sampler_accept(s->sampler, toks[i]);
    s->last_token = toks[n - 1];
    return st;
}

/* Tokenize text and feed it; logits of the last position are left in
 * s->logits. */
static int feed_text(session *s, const char *text, size_t len, bool add_bos, bool parse_special)
{
    size_t n = 0;
    size_t cap = len + 8;
    int32_t *toks = malloc(cap * sizeof *toks);
    if (!toks)
        return fail("tokenize");
    bllm_status st = bllm_tokenize(s->model, text, len, add_bos, parse_special, toks, cap, &n);
    if (st == BLLM_ERR_ARG && n > cap) {
        int32_t *t2 = realloc(toks, n * sizeof *toks);
        if (!t2) {
            free(toks);
            return fail("tokenize");
        }
        toks = t2;
        st = bllm_tokenize(s->model, text, len, add_bos, parse_special, toks, n, &n);
    }
    if (st) {
        free(toks);
        return fail("tokenize");
    }
    if (n == 0) {
        free(toks);
        fprintf(stderr, "bllm-run: the prompt is empty and the model has no BOS token to start from\n");
        return 1;
    }
    int room = bllm_context_n_ctx(s->ctx) - bllm_context_pos(s->ctx);
    if ((long)n > room) {
        fprintf(stderr, "bllm-run: prompt is %zu tokens but only %d fit in the context (-c %d); "
                        "shorten it or raise -c\n", n, room, bllm_context_n_ctx(s->ctx));
        free(toks);
        return 1;
    }
    st = feed_tokens(s, toks, n);
    free(toks);
    return st ? fail("evaluate prompt") : 0;
}

/* Sample up to n_predict tokens (or until end of generation / context),
 * streaming text to stdout. Returns 0 on success. */
static int generate(session *s, int n_predict)
{
    int32_t prev = s->last_token;
    char piece[256];
    for (int i = 0; n_predict < 0 || i < n_predict; i++) {
        int32_t tok = bllm_sampler_sample(s->sampler, s->logits);
        if (bllm_token_is_eog(s->model, tok))
            break;
        int len = bllm_token_to_text(s->model, prev, tok, piece, sizeof piece);
        if (len > 0)
            fwrite(piece, 1, (size_t)(len < (int)sizeof piece ? len : (int)sizeof piece), stdout);
        fflush(stdout);
        bllm_sampler_accept(s->sampler, tok);
        prev = tok;
        if (bllm_context_pos(s->ctx) >= bllm_context_n_ctx(s->ctx)) {
            fprintf(stderr, "\nbllm-run: context full (%d tokens); stopping\n", bllm_context_n_ctx(s->ctx));
            break;
        }
        double t0 = now_ms();
        bllm_status st = bllm_eval(s->ctx, &tok, 1, s->logits, false);
        s->gen_ms += now_ms() - t0;
        s->gen_tokens++;
        if (st)
            return fail("evaluate");
    }
    return 0;
}

/* ------------------------------------------------------------------ chat */

/* Ctrl-C: during an answer it stops the answer; at the prompt it exits. */
static volatile sig_atomic_t interrupted;
static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* Tokens of text (special tokens parsed), malloc'd in *out. */
static int tokenize_all(session *s, const char *text, bool add_bos, int32_t **out, size_t *n)
{
    size_t cap = strlen(text) + 8;
    int32_t *t = malloc(cap * sizeof *t);
    bllm_status st = t ? bllm_tokenize(s->model, text, strlen(text), add_bos, true, t, cap, n) : BLLM_ERR_NOMEM;
    if (st == BLLM_ERR_ARG && *n > cap) {
        int32_t *t2 = realloc(t, *n * sizeof *t);
        st = t2 ? bllm_tokenize(s->model, text, strlen(text), add_bos, true, t2, *n, n) : BLLM_ERR_NOMEM;
        t = t2 ? t2 : t;
    }
    if (st) {
        free(t);
        return fail("tokenize");
    }
    *out = t;
    return 0;
}

typedef struct {
    bllm_chat_message *m;
    int n, cap;
} history;

static int history_add(history *h, const char *role, const char *content)
{
    if (h->n == h->cap) {
        int cap = h->cap ? 2 * h->cap : 16;
        bllm_chat_message *m = realloc(h->m, (size_t)cap * sizeof *m);
        if (!m)
            return -1;
        h->m = m, h->cap = cap;
    }
    char *c = strdup(content);
    if (!c)
        return -1;
    h->m[h->n++] = (bllm_chat_message){role, c};
    return 0;
}

static void history_drop(history *h, int from, int count)
{
    for (int i = from; i < from + count; i++)
        free((char *)h->m[i].content);
    memmove(h->m + from, h->m + from + count, (size_t)(h->n - from - count) * sizeof *h->m);
    h->n -= count;
}

/* libedit's character source: polls, so a Ctrl-C that lands before the
 * read starts (and so interrupts nothing) still ends the line. */
static int chat_getc(FILE *f)
{
    for (;;) {
        if (interrupted)
            return EOF;
        struct pollfd p = {.fd = fileno(f), .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue; /* timeout, or EINTR: look at the flag again */
        unsigned char c;
        ssize_t n = read(p.fd, &c, 1);
        if (n == 1)
            return c;
        if (n == 0 || errno != EINTR)
            return EOF;
    }
}

/* One line of input: through libedit with a prompt and history on a
 * terminal, plain lines otherwise. NULL at end of input or on Ctrl-C. */
static char *read_turn(bool tty)
{
    if (tty) {
        rl_getc_function = chat_getc;
        char *line = readline("> ");
        if (line && *line)
            add_history(line);
        return line;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len = getline(&line, &cap, stdin);
    if (len < 0) {
        free(line);
        return NULL;
    }
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    return line;
}

/* Generate the answer, streaming it to stdout; the text in *answer. */
static int chat_answer(session *s, int n_predict, char **answer)
{
    size_t len = 0, cap = 256;
    char *text = malloc(cap), piece[256];
    if (!text)
        return fail("answer");
    text[0] = '\0';
    int32_t prev = s->last_token;
    for (int i = 0; n_predict < 0 || i < n_predict; i++) {
        if (interrupted) {
            fprintf(stderr, "\n[answer stopped]");
            break;
        }
        int32_t tok = bllm_sampler_sample(s->sampler, s->logits);
        if (bllm_token_is_eog(s->model, tok))
            break;
        int n = bllm_token_to_text(s->model, prev, tok, piece, sizeof piece);
        n = n < 0 ? 0 : n < (int)sizeof piece ? n : (int)sizeof piece - 1;
        fwrite(piece, 1, (size_t)n, stdout);
        fflush(stdout);
        if (len + (size_t)n + 1 > cap) {
            char *t = realloc(text, cap = 2 * (len + (size_t)n + 1));
            if (!t) {
                free(text);
                return fail("answer");
            }
            text = t;
        }
        memcpy(text + len, piece, (size_t)n);
        text[len += (size_t)n] = '\0';
        bllm_sampler_accept(s->sampler, tok);
        prev = tok;
        if (bllm_context_pos(s->ctx) >= bllm_context_n_ctx(s->ctx)) {
            fprintf(stderr, "\n[context full: answer cut; earlier turns will be dropped]");
            break;
        }
        double t0 = now_ms();
        bllm_status st = bllm_eval(s->ctx, &tok, 1, s->logits, false);
        s->gen_ms += now_ms() - t0;
        s->gen_tokens++;
        if (st) {
            free(text);
            return fail("evaluate");
        }
        s->last_token = tok;
    }
    fputc('\n', stdout);
    fflush(stdout);
    *answer = text;
    return 0;
}

static int chat_loop(session *s, const options *o)
{
    const char *tmpl = bllm_model_chat_template(s->model);
    bllm_chat_style style = bllm_chat_style_of(tmpl);
    if (o->chat_template && !bllm_chat_style_from_name(o->chat_template, &style)) {
        fprintf(stderr, "bllm-run: unknown --chat-template '%s' (chatml, llama2, llama3, mistral, zephyr, gemma)\n",
                o->chat_template);
        return 1;
    }
    if (style == BLLM_CHAT_NONE) {
        fprintf(stderr, "bllm-run: this model has no chat template bllm recognizes; name one with "
                        "--chat-template (chatml, llama2, llama3, mistral, zephyr, gemma)\n");
        return 1;
    }
    const bool tty = isatty(STDIN_FILENO);
    struct sigaction sa = {.sa_handler = on_sigint}; /* no SA_RESTART: a read at the prompt returns */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    if (tty)
        fprintf(stderr, "bllm-run: chat (%s template). Ctrl-C stops an answer, Ctrl-C or Ctrl-D at the prompt "
                        "exits; /reset starts over, /exit quits.\n",
                bllm_chat_style_name(style));
    const int n_ctx = bllm_context_n_ctx(s->ctx);
    const int reserve = n_ctx / 4 < 128 ? n_ctx / 4 : 128; /* room kept for an answer */
    history h = {0};
    int rc = 0, kept = 0; /* kept: leading messages never dropped (the system prompt) */
    if (o->system) {
        if (history_add(&h, "system", o->system))
            return fail("chat");
        kept = 1;
    }
    char *fed = strdup(""); /* the text whose tokens the cache holds */
    for (; fed;) {
        interrupted = 0;
        char *line = read_turn(tty);
        if (!line) {
            if (tty)
                fputc('\n', stderr);
            break; /* end of input, or Ctrl-C at the prompt */
        }
        if (!strcmp(line, "/exit")) {
            free(line);
            break;
        }
        if (!strcmp(line, "/reset")) {
            history_drop(&h, kept, h.n - kept);
            bllm_context_reset(s->ctx);
            fed[0] = '\0';
            fprintf(stderr, "[conversation reset]\n");
            free(line);
            continue;
        }
        if (!*line) {
            free(line);
            continue;
        }
        rc = history_add(&h, "user", line);
        free(line);
        if (rc) {
            rc = fail("chat");
            break;
        }
        /* the new text: the whole conversation formatted, less what the
         * cache holds; when that is not a prefix, or the result would not
         * fit, start the cache over (dropping the oldest turns) */
        char *full = NULL, *delta = NULL;
        int32_t *toks = NULL;
        size_t n = 0;
        int dropped = 0;
        for (;;) {
            free(full);
            free(toks);
            toks = NULL;
            if (bllm_chat_format(style, tmpl, h.m, h.n, true, &full)) {
                rc = fail("chat template");
                break;
            }
            size_t nf = strlen(fed);
            bool prefix = nf > 0 && !strncmp(full, fed, nf) && !dropped;
            delta = prefix ? full + nf : full;
            bool bos = !prefix && bllm_model_adds_bos(s->model) && !bllm_chat_style_has_bos(style);
            if ((rc = tokenize_all(s, delta, bos, &toks, &n)))
                break;
            int pos = prefix ? bllm_context_pos(s->ctx) : 0;
            if ((long)pos + (long)n + reserve <= n_ctx)
                break;
            if (h.n - kept <= 1) { /* the new message alone does not fit */
                fprintf(stderr, "[message too long for the context of %d tokens; not sent]\n", n_ctx);
                history_drop(&h, h.n - 1, 1);
                n = 0;
                break;
            }
            /* the oldest turn after the system prompt: a user message and its answer */
            int k = h.n - kept > 2 && !strcmp(h.m[kept + 1].role, "assistant") ? 2 : 1;
            history_drop(&h, kept, k);
            dropped += k;
        }
        if (rc || n == 0) {
            free(full);
            free(toks);
            if (rc)
                break;
            continue;
        }
        if (dropped)
            fprintf(stderr, "[context full: dropped the %d oldest message%s%s; the cache is rebuilt]\n", dropped,
                    dropped > 1 ? "s" : "", kept ? ", kept the system prompt" : "");
        if (delta == full) {
            bllm_context_reset(s->ctx);
            fed[0] = '\0';
        }
        bllm_status st = feed_tokens(s, toks, n);
        free(toks);
        char *nfed = st ? NULL : malloc(strlen(full) + 1);
        if (nfed)
            strcpy(nfed, full);
        free(full);
        if (!nfed) {
            rc = fail("evaluate");
            break;
        }
        free(fed);
        fed = nfed;
        char *answer = NULL;
        if ((rc = chat_answer(s, o->n_predict, &answer)))
            break;
        char *f2 = realloc(fed, strlen(fed) + strlen(answer) + 1);
        if (!f2 || history_add(&h, "assistant", answer)) {
            free(answer);
            rc = fail("chat");
            break;
        }
        fed = strcat(f2, answer);
        free(answer);
    }
    free(fed);
    history_drop(&h, 0, h.n);
    free(h.m);
    return rc;
}

int main(int argc, char **argv)
{
    bllm_cli_blas_core(argv);
    options o;
    if (parse_args(argc, argv, &o))
        return 2;

    double t0 = now_ms();
    bllm_model *model = NULL;
    bllm_load_params lp = {.verify_checksums = o.verify, .map_file = o.map_file};
    if (bllm_model_load(o.model, &lp, &model))
        return fail("cannot load model");
    const bllm_model_info *info = bllm_model_get_info(model);
    int n_ctx = o.n_ctx;
    if (n_ctx == 0)
        n_ctx = info->max_seq_len < 4096 ? info->max_seq_len : 4096;
    if (n_ctx > info->max_seq_len) {
        fprintf(stderr, "bllm-run: -c %d exceeds the model's trained context of %d tokens\n", n_ctx,
                info->max_seq_len);
        bllm_model_free(model);
        return 1;
    }
    session s = {.model = model, .n_vocab = info->n_vocab};
    bllm_context_params cp = {.n_ctx = n_ctx, .n_threads = o.n_threads, .kv_type = (bllm_kv_type)o.kv_type};
    int rc = 0;
    if (bllm_context_new(model, &cp, &s.ctx)) {
        rc = fail("cannot create context");
        goto done;
    }
    if (bllm_sampler_new(&o.sp, info->n_vocab, &s.sampler)) {
        rc = fail("bad sampling options");
        goto done;
    }
    s.logits = malloc((size_t)info->n_vocab * sizeof(float));
    if (!s.logits) {
        fprintf(stderr, "bllm-run: out of memory\n");
        rc = 1;
        goto done;
    }
    double load_ms = now_ms() - t0;

    if (o.chat) {
        rc = chat_loop(&s, &o);
    } else {
        char *text = NULL;
        size_t len = 0;
        if (o.prompt_file) {
            text = bllm_cli_read_file("bllm-run", "prompt file", o.prompt_file, &len);
            if (!text) {
                rc = 1;
                goto done;
            }
        } else {
            text = strdup(o.prompt ? o.prompt : "");
            len = strlen(text);
        }
        bool bos = !o.no_bos && bllm_model_adds_bos(model);
        if (len == 0 && bllm_token_bos(model) >= 0)
            bos = true; /* an empty prompt starts from BOS */
        if (o.show_prompt) {
            fwrite(text, 1, len, stdout);
            fflush(stdout);
        }
        rc = feed_text(&s, text, len, bos, false);
        free(text);
        if (!rc)
            rc = generate(&s, o.n_predict);
        fputc('\n', stdout);
    }
    fflush(stdout);
    if (rc == 0)
        fprintf(stderr, "bllm-run: load %.0f ms | prompt %d tok, %.2f tok/s | generation %d tok, %.2f tok/s | "
                    "%d threads, kernels %s\n",
            load_ms, s.prompt_tokens, s.prompt_ms > 0 ? s.prompt_tokens * 1e3 / s.prompt_ms : 0.0, s.gen_tokens,
            s.gen_ms > 0 ? s.gen_tokens * 1e3 / s.gen_ms : 0.0, o.n_threads ? o.n_threads : (int)sysconf(_SC_NPROCESSORS_ONLN),
            bllm_kernel_name());
done:
    free(s.logits);
    bllm_sampler_free(s.sampler);
    bllm_context_free(s.ctx);
    bllm_model_free(model);
    return rc;
}
