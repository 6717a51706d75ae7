/* bllm-run: generate text from a .stb model, or chat with an instruct model.
 *   bllm-run -m model.stb -p "Once upon a time" -n 128
 *   bllm-run -m smollm2.stb --chat */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bllm.h"
#include "tools/cli.h"

typedef struct {
    const char *model, *prompt, *prompt_file, *system;
    int n_predict, n_threads, n_ctx, kv_type;
    bool chat, verify, no_bos, show_prompt;
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
            "      --cache-type T      KV cache storage: f16 (default) or f32\n"
            "  -c, --ctx-size N        context length (default: the model's, capped at 4096)\n"
            "  -s, --seed N            sampling seed (default: time-based)\n"
            "      --temp T            temperature (default 0.8; 0 = greedy)\n"
            "      --top-k N           keep the N most likely tokens (default 40; 0 = off)\n"
            "      --top-p P           nucleus sampling mass (default 0.95; 1 = off)\n"
            "      --min-p P           drop tokens below P x the best one's probability (default 0.05)\n"
            "      --repeat-penalty R  penalize recent tokens (default 1.0 = off)\n"
            "      --repeat-last-n N   tokens the penalty looks back at (default 64)\n"
            "      --chat, -cnv        interactive chat using the model's chat template\n"
            "      --system TEXT       system prompt for --chat\n"
            "      --no-bos            do not prepend BOS even if the model asks for it\n"
            "      --no-display-prompt print only generated text\n"
            "      --verify            verify tensor checksums at load\n"
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
    /* the options that take a value */
    static const char *const valued[] = {
        "--cache-type", "--ctx-size", "--file", "--min-p", "--model", "--n-predict", "--prompt", "--repeat-last-n",
        "--repeat-penalty", "--seed", "--system", "--temp", "--threads", "--top-k", "--top-p", "-c", "-f",
        "-m", "-n", "-p", "-s", "-t", NULL};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true, takes = true;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--chat") || !strcmp(a, "-cnv")) {
            o->chat = true, takes = false;
        } else if (!strcmp(a, "--verify")) {
            o->verify = true, takes = false;
        } else if (!strcmp(a, "--no-bos")) {
            o->no_bos = true, takes = false;
        } else if (!strcmp(a, "--no-display-prompt")) {
            o->show_prompt = false, takes = false;
        } else if (!v && !bllm_cli_valued(a, valued)) {
            fprintf(stderr, "bllm-run: unknown option '%s' (see --help)\n", a);
            return -1;
        } else if (!v) {
            fprintf(stderr, "bllm-run: option %s needs a value (see --help)\n", a);
            return -1;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            o->model = v;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            o->prompt = v;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            o->prompt_file = v;
        } else if (!strcmp(a, "--system")) {
            o->system = v;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            ok = bllm_cli_parse_int(v, -1, 1 << 24, &o->n_predict);
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            ok = bllm_cli_parse_int(v, 1, 1024, &o->n_threads);
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            ok = bllm_cli_parse_int(v, 1, 1 << 24, &o->n_ctx);
        } else if (!strcmp(a, "--cache-type")) {
            if (!bllm_cli_parse_kv("bllm-run", v, &o->kv_type))
                return -1;
        } else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            o->sp.seed = strtoull(v, &end, 10);
            ok = !errno && !*end && end != v;
        } else if (!strcmp(a, "--temp")) {
            ok = bllm_cli_parse_float(v, &o->sp.temperature) && o->sp.temperature >= 0;
        } else if (!strcmp(a, "--top-k")) {
            ok = bllm_cli_parse_int(v, 0, 1 << 24, &o->sp.top_k);
        } else if (!strcmp(a, "--top-p")) {
            ok = bllm_cli_parse_float(v, &o->sp.top_p) && o->sp.top_p > 0 && o->sp.top_p <= 1;
        } else if (!strcmp(a, "--min-p")) {
            ok = bllm_cli_parse_float(v, &o->sp.min_p) && o->sp.min_p >= 0 && o->sp.min_p <= 1;
        } else if (!strcmp(a, "--repeat-penalty")) {
            ok = bllm_cli_parse_float(v, &o->sp.repeat_penalty) && o->sp.repeat_penalty > 0;
        } else if (!strcmp(a, "--repeat-last-n")) {
            ok = bllm_cli_parse_int(v, 0, 1 << 20, &o->sp.repeat_last_n);
        } else {
            fprintf(stderr, "bllm-run: unknown option '%s' (see --help)\n", a);
            return -1;
        }
        if (!ok) {
            fprintf(stderr, "bllm-run: bad value '%s' for %s\n", v, a);
            return -1;
        }
        if (takes)
            i++;
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
    double t0 = now_ms();
    st = bllm_eval(s->ctx, toks, (int)n, s->logits, false);
    s->prompt_ms += now_ms() - t0;
    s->prompt_tokens += (int)n;
    for (size_t i = 0; i < n; i++)
        bllm_sampler_accept(s->sampler, toks[i]);
    s->last_token = toks[n - 1];
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

typedef enum { CHAT_CHATML, CHAT_LLAMA2, CHAT_LLAMA3 } chat_style;

/* Chat templates are Jinja; like llama.cpp we recognize the common families
 * by their marker tokens and format them directly rather than embedding a
 * template engine. */
static bool chat_style_of(const char *tmpl, chat_style *style)
{
    if (!tmpl)
        return false;
    if (strstr(tmpl, "<|im_start|>"))
        *style = CHAT_CHATML;
    else if (strstr(tmpl, "<|start_header_id|>"))
        *style = CHAT_LLAMA3;
    else if (strstr(tmpl, "[INST]"))
        *style = CHAT_LLAMA2;
    else
        return false;
    return true;
}

/* SmolLM2-style templates carry a default system prompt as a literal. */
static char *default_system_prompt(const char *tmpl)
{
    const char *tag = "<|im_start|>system\n";
    const char *p = tmpl ? strstr(tmpl, tag) : NULL;
    if (!p)
        return NULL;
    p += strlen(tag);
    const char *e = strstr(p, "<|im_end|>");
    if (!e || memchr(p, '{', (size_t)(e - p)))
        return NULL;
    return strndup(p, (size_t)(e - p));
}

static char *format_turn(chat_style style, const char *system, const char *user, bool first)
{
    const char *sys = system ? system : "";
    size_t n = strlen(sys) + strlen(user) + 256;
    char *buf = malloc(n);
    if (!buf)
        return NULL;
    switch (style) {
    case CHAT_CHATML:
        if (first && system)
            snprintf(buf, n, "<|im_start|>system\n%s<|im_end|>\n<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n",
                     sys, user);
        else
            snprintf(buf, n, "%s<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n", first ? "" : "\n", user);
        break;
    case CHAT_LLAMA3:
        snprintf(buf, n, "%s%s%s%s<|start_header_id|>user<|end_header_id|>\n\n%s<|eot_id|>"
                         "<|start_header_id|>assistant<|end_header_id|>\n\n",
                 first && system ? "<|start_header_id|>system<|end_header_id|>\n\n" : "",
                 first && system ? sys : "", first && system ? "<|eot_id|>" : "", "", user);
        break;
    case CHAT_LLAMA2:
        if (first && system)
            snprintf(buf, n, "[INST] <<SYS>>\n%s\n<</SYS>>\n\n%s [/INST]", sys, user);
        else
            snprintf(buf, n, "[INST] %s [/INST]", user);
        break;
    }
    return buf;
}

static int chat_loop(session *s, const options *o)
{
    chat_style style;
    const char *tmpl = bllm_model_chat_template(s->model);
    if (!chat_style_of(tmpl, &style)) {
        fprintf(stderr, "bllm-run: this model has no chat template bllm recognizes (ChatML, Llama-2, Llama-3)\n");
        return 1;
    }
    char *def_sys = default_system_prompt(tmpl);
    const char *system = o->system ? o->system : def_sys;
    fprintf(stderr, "bllm-run: chat mode; type a message and press Enter, an empty line or Ctrl-D ends.\n");
    char *line = NULL;
    size_t cap = 0;
    bool first = true;
    int rc = 0;
    for (;;) {
        fputs("\n> ", stdout);
        fflush(stdout);
        ssize_t len = getline(&line, &cap, stdin);
        if (len <= 0)
            break;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            break;
        char *turn = format_turn(style, system, line, first);
        if (!turn) {
            rc = 1;
            break;
        }
        bool bos = first && !o->no_bos && bllm_model_adds_bos(s->model);
        rc = feed_text(s, turn, strlen(turn), bos, true);
        free(turn);
        if (rc)
            break;
        rc = generate(s, o->n_predict);
        if (rc)
            break;
        /* Close the assistant turn in the cache the way the template would. */
        const char *end = style == CHAT_CHATML ? "<|im_end|>" : style == CHAT_LLAMA3 ? "<|eot_id|>" : "";
        if (*end && bllm_context_pos(s->ctx) < bllm_context_n_ctx(s->ctx) - 1)
            rc = feed_text(s, end, strlen(end), false, true);
        if (rc)
            break;
        first = false;
    }
    free(line);
    free(def_sys);
    fputc('\n', stdout);
    return rc;
}

int main(int argc, char **argv)
{
    options o;
    if (parse_args(argc, argv, &o))
        return 2;

    double t0 = now_ms();
    bllm_model *model = NULL;
    bllm_load_params lp = {.verify_checksums = o.verify};
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
