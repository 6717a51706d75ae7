/* Chat templates. Models ship a Jinja template; like llama.cpp, bllm
 * recognizes the common families by their marker tokens and formats them
 * here in C rather than embedding a template engine. Each format below is
 * the family's reference template written out; the ChatML one is checked
 * against Jinja's rendering of SmolLM2's own template
 * (tests/chat/test_chat.py), the others by the properties every family
 * shares (the formatted prefix of a conversation is a prefix of the
 * formatted whole). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bllm.h"
#include "runtime/error.h"

static const char *const style_names[] = {
    [BLLM_CHAT_NONE] = "none",       [BLLM_CHAT_CHATML] = "chatml", [BLLM_CHAT_LLAMA2] = "llama2",
    [BLLM_CHAT_LLAMA3] = "llama3",   [BLLM_CHAT_MISTRAL] = "mistral", [BLLM_CHAT_ZEPHYR] = "zephyr",
    [BLLM_CHAT_GEMMA] = "gemma",
};

const char *bllm_chat_style_name(bllm_chat_style s)
{
    return s >= 0 && s < (int)(sizeof style_names / sizeof *style_names) ? style_names[s] : "unknown";
}

bool bllm_chat_style_from_name(const char *name, bllm_chat_style *out)
{
    for (int s = BLLM_CHAT_CHATML; s < (int)(sizeof style_names / sizeof *style_names); s++)
        if (!strcmp(name, style_names[s])) {
            *out = (bllm_chat_style)s;
            return true;
        }
    return false;
}

bllm_chat_style bllm_chat_style_of(const char *tmpl)
{
    if (!tmpl)
        return BLLM_CHAT_NONE;
    if (strstr(tmpl, "<|im_start|>"))
        return BLLM_CHAT_CHATML;
    if (strstr(tmpl, "<|start_header_id|>"))
        return BLLM_CHAT_LLAMA3;
    if (strstr(tmpl, "<start_of_turn>"))
        return BLLM_CHAT_GEMMA;
    if (strstr(tmpl, "<|user|>") && strstr(tmpl, "<|assistant|>"))
        return BLLM_CHAT_ZEPHYR;
    if (strstr(tmpl, "[INST]"))
        return strstr(tmpl, "<<SYS>>") ? BLLM_CHAT_LLAMA2 : BLLM_CHAT_MISTRAL;
    return BLLM_CHAT_NONE;
}

/* A system prompt the template inserts when the conversation has none, as a
 * literal (SmolLM2: "<|im_start|>system\nYou are a helpful AI assistant
 * named SmolLM, trained by Hugging Face<|im_end|>"). */
static char *default_system(const char *tmpl)
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

typedef struct {
    char *s;
    size_t n, cap;
    bool oom;
} sbuf;

static void put(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->s = p, b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void puts_(sbuf *b, const char *s) { put(b, s, strlen(s)); }

/* s without leading and trailing white space (the Jinja templates' trim). */
static void put_trimmed(sbuf *b, const char *s)
{
    const char *e = s + strlen(s);
    while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\t' || e[-1] == '\r'))
        e--;
    put(b, s, (size_t)(e - s));
}

static bool is_role(const bllm_chat_message *m, const char *r) { return m->role && !strcmp(m->role, r); }

bllm_status bllm_chat_format(bllm_chat_style style, const char *tmpl, const bllm_chat_message *msgs, int n,
                             bool add_assistant, char **out)
{
    *out = NULL;
    if (n < 0 || (n > 0 && !msgs))
        return bllm_fail(BLLM_ERR_ARG, "chat: %d messages", n);
    for (int i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content ||
            !(is_role(&msgs[i], "system") || is_role(&msgs[i], "user") || is_role(&msgs[i], "assistant")))
            return bllm_fail(BLLM_ERR_ARG, "chat: message %d has role '%s'; system, user or assistant expected", i,
                             msgs[i].role ? msgs[i].role : "(none)");
    sbuf b = {0};
    puts_(&b, "");
    /* families without a system role fold it into the first user turn */
    const char *sys = n > 0 && is_role(&msgs[0], "system") ? msgs[0].content : NULL;
    const int first = sys ? 1 : 0;
    switch (style) {
    case BLLM_CHAT_CHATML: {
        char *def = sys ? NULL : default_system(tmpl);
        if (def) {
            puts_(&b, "<|im_start|>system\n");
            puts_(&b, def);
            puts_(&b, "<|im_end|>\n");
            free(def);
        }
        for (int i = 0; i < n; i++) {
            puts_(&b, "<|im_start|>");
            puts_(&b, msgs[i].role);
            puts_(&b, "\n");
            puts_(&b, msgs[i].content);
            puts_(&b, "<|im_end|>\n");
        }
        if (add_assistant)
            puts_(&b, "<|im_start|>assistant\n");
        break;
    }
    case BLLM_CHAT_LLAMA3:
        puts_(&b, "<|begin_of_text|>");
        for (int i = 0; i < n; i++) {
            puts_(&b, "<|start_header_id|>");
            puts_(&b, msgs[i].role);
            puts_(&b, "<|end_header_id|>\n\n");
            put_trimmed(&b, msgs[i].content);
            puts_(&b, "<|eot_id|>");
        }
        if (add_assistant)
            puts_(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case BLLM_CHAT_LLAMA2:
    case BLLM_CHAT_MISTRAL:
        for (int i = first; i < n; i++) {
            if (is_role(&msgs[i], "user")) {
                puts_(&b, style == BLLM_CHAT_LLAMA2 || i == first ? "<s>[INST] " : "[INST] ");
                if (i == first && sys) {
                    if (style == BLLM_CHAT_LLAMA2) {
                        puts_(&b, "<<SYS>>\n");
                        put_trimmed(&b, sys);
                        puts_(&b, "\n<</SYS>>\n\n");
                    } else {
                        put_trimmed(&b, sys);
                        puts_(&b, "\n\n");
                    }
                }
                put_trimmed(&b, msgs[i].content);
                puts_(&b, " [/INST]");
            } else if (is_role(&msgs[i], "assistant")) {
                puts_(&b, style == BLLM_CHAT_LLAMA2 ? " " : "");
                put_trimmed(&b, msgs[i].content);
                puts_(&b, style == BLLM_CHAT_LLAMA2 ? " </s>" : "</s>");
            }
        }
        break;
    case BLLM_CHAT_ZEPHYR:
        for (int i = 0; i < n; i++) {
            puts_(&b, "<|");
            puts_(&b, msgs[i].role);
            puts_(&b, "|>\n");
            puts_(&b, msgs[i].content);
            puts_(&b, "</s>\n");
        }
        if (add_assistant)
            puts_(&b, "<|assistant|>\n");
        break;
    case BLLM_CHAT_GEMMA:
        puts_(&b, "<bos>");
        for (int i = first; i < n; i++) {
            puts_(&b, "<start_of_turn>");
            puts_(&b, is_role(&msgs[i], "assistant") ? "model" : "user");
            puts_(&b, "\n");
            if (i == first && sys) {
                put_trimmed(&b, sys);
                puts_(&b, "\n\n");
            }
            put_trimmed(&b, msgs[i].content);
            puts_(&b, "<end_of_turn>\n");
        }
        if (add_assistant)
            puts_(&b, "<start_of_turn>model\n");
        break;
    default:
        free(b.s);
        return bllm_fail(BLLM_ERR_ARG, "chat: no template style given");
    }
    if (b.oom) {
        free(b.s);
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory formatting a chat");
    }
    *out = b.s;
    return BLLM_OK;
}

bool bllm_chat_style_has_bos(bllm_chat_style s)
{
    return s == BLLM_CHAT_LLAMA3 || s == BLLM_CHAT_LLAMA2 || s == BLLM_CHAT_MISTRAL || s == BLLM_CHAT_GEMMA;
}
