/* bllm-server: an OpenAI-compatible HTTP server with continuous batching.
 *   bllm-server -m model.stb [--host 127.0.0.1] [--port 8080] [-c N] [--parallel P] [-t T] [--api-key KEY]
 *
 * HTTP by libmicrohttpd (a thread per connection), JSON by cJSON. Requests
 * wait in a bounded queue for one of P slots (a context each: its own KV
 * cache and sampler). One scheduler thread runs the slots: a new request's
 * prompt is evaluated on its own, then every step all decoding slots go
 * through the weights as one batch (bllm_eval_batch), each sampling its own
 * next token; a request joins at the next step and leaves when done.
 * Connection threads only wait on their request's output (docs/server.md). */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <getopt.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bllm.h"
#include "tools/cli.h"

#define MAX_BODY (1 << 20) /* bytes of a request body */
#define MAX_STOP 4         /* stop strings per request */

typedef struct {
    const char *model, *host, *api_key, *chat_template;
    int port, n_ctx, parallel, threads, kv_type;
    bool map_file;
} options;

/* ------------------------------------------------------------- requests */

typedef struct request {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs; /* the connection and the scheduler */
    bool chat, stream;
    int32_t *prompt;
    int n_prompt, max_tokens;
    bllm_sampler_params sp;
    char *stop[MAX_STOP];
    int n_stop;
    char id[40];
    long created;
    /* output, under mu */
    char *text;
    size_t len, cap, sent;
    int n_gen;
    const char *finish; /* NULL while running: "stop" or "length" */
    bool cancelled;     /* the client went away */
    bool started;       /* streaming: the role chunk was sent */
    bool ended;         /* streaming: the final chunk and [DONE] were produced */
    char *sse;          /* streaming: bytes produced but not yet handed to MHD */
    size_t sse_len, sse_off;
    struct request *next; /* the queue */
} request;

static void request_unref(request *r)
{
    pthread_mutex_lock(&r->mu);
    int left = --r->refs;
    pthread_mutex_unlock(&r->mu);
    if (left)
        return;
    for (int i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    free(r->prompt);
    free(r->text);
    free(r->sse);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

/* ---------------------------------------------------------------- state */

typedef struct {
    bllm_context *ctx;
    bllm_sampler *sampler;
    request *req;
    int32_t next, prev;
    bool decoding;
} slot;

static struct {
    options o;
    bllm_model *model;
    const char *model_name;
    bllm_chat_style style;
    const char *tmpl;
    int n_vocab;
    slot *slots;
    float *logits; /* parallel x n_vocab */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    request *queue_head, *queue_tail;
    int queued, queue_max, busy;
    int open_requests; /* HTTP requests between their first call and completion */
    bool stopping;
} S = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* ----------------------------------------------------------- scheduler */

/* Length of s[0..n) without a trailing incomplete UTF-8 sequence: a
 * token may end inside a character, whose rest comes with the next one. */
static size_t utf8_whole(const char *s, size_t n)
{
    size_t i = n, back = 0;
    while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
        i--, back++;
    if (i == 0)
        return n;
    unsigned char c = (unsigned char)s[i - 1];
    size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    return need > back + 1 ? i - 1 : n;
}

/* Text of the request that may be sent: all of it once finished, else
 * less what could still become a stop string, in whole characters. */
static size_t sendable(const request *r)
{
    if (r->finish)
        return r->len;
    size_t hold = 0;
    for (int i = 0; i < r->n_stop; i++) {
        size_t n = strlen(r->stop[i]);
        hold = n - 1 > hold ? n - 1 : hold;
    }
    return utf8_whole(r->text, r->len > hold ? r->len - hold : 0);
}

/* Bytes that are not UTF-8 (a generation that stopped inside a character,
 * or a token of raw bytes) become U+FFFD, so the JSON stays valid. */
static char *utf8_clean(const char *s, size_t n)
{
    char *out = malloc(3 * n + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        bool ok = len > 0 && i + len <= n && !(len == 2 && c < 0xc2);
        for (size_t k = 1; ok && k < len; k++)
            ok = ((unsigned char)s[i + k] & 0xc0) == 0x80;
        if (ok) {
            memcpy(o, s + i, len);
            o += len, i += len;
        } else {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3, i++;
        }
    }
    *o = '\0';
    return out;
}

static void finish(slot *sl, const char *why)
{
    request *r = sl->req;
    pthread_mutex_lock(&r->mu);
    if (!r->finish)
        r->finish = why;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    request_unref(r);
    sl->req = NULL;
    sl->decoding = false;
    pthread_mutex_lock(&S.mu);
    S.busy--;
    pthread_mutex_unlock(&S.mu);
}

/* Sample from logits, append the text, decide whether the request ends. */
static void step_slot(slot *sl, const float *logits)
{
    request *r = sl->req;
    float *l = (float *)logits;
    int32_t tok = bllm_sampler_sample(sl->sampler, l);
    if (bllm_token_is_eog(S.model, tok)) {
        finish(sl, "stop");
        return;
    }
    bllm_sampler_accept(sl->sampler, tok);
    char piece[256];
    int n = bllm_token_to_text(S.model, sl->prev, tok, piece, sizeof piece);
    n = n < 0 ? 0 : n < (int)sizeof piece ? n : (int)sizeof piece - 1;
    sl->prev = tok;
    pthread_mutex_lock(&r->mu);
    if (r->len + (size_t)n + 1 > r->cap) {
        size_t cap = 2 * (r->len + (size_t)n + 64);
        char *t = realloc(r->text, cap);
        if (t)
            r->text = t, r->cap = cap;
    }
    if (r->len + (size_t)n + 1 <= r->cap) {
        memcpy(r->text + r->len, piece, (size_t)n);
        r->len += (size_t)n;
        r->text[r->len] = '\0';
    }
    r->n_gen++;
    const char *why = NULL;
    for (int i = 0; i < r->n_stop && !why; i++) {
        size_t from = r->len > (size_t)n + strlen(r->stop[i]) ? r->len - (size_t)n - strlen(r->stop[i]) : 0;
        char *hit = strstr(r->text + from, r->stop[i]);
        if (hit) {
            r->len = (size_t)(hit - r->text);
            r->text[r->len] = '\0';
            why = "stop";
        }
    }
    if (!why && (r->n_gen >= r->max_tokens || bllm_context_pos(sl->ctx) >= bllm_context_n_ctx(sl->ctx)))
        why = "length";
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (why)
        finish(sl, why);
    else
        sl->next = tok, sl->decoding = true;
}

static void *scheduler(void *arg)
{
    (void)arg;
    const int P = S.o.parallel;
    for (;;) {
        pthread_mutex_lock(&S.mu);
        /* hand queued requests to free slots */
        for (int i = 0; i < P && S.queue_head; i++)
            if (!S.slots[i].req) {
                request *r = S.queue_head;
                S.queue_head = r->next;
                if (!S.queue_head)
                    S.queue_tail = NULL;
                S.queued--;
                S.busy++;
                S.slots[i].req = r;
                S.slots[i].decoding = false;
            }
        bool any = false;
        for (int i = 0; i < P; i++)
            any |= S.slots[i].req != NULL;
        if (!any) {
            if (S.stopping) {
                pthread_mutex_unlock(&S.mu);
                return NULL;
            }
            pthread_cond_wait(&S.cv, &S.mu);
            pthread_mutex_unlock(&S.mu);
            continue;
        }
        pthread_mutex_unlock(&S.mu);

        /* cancelled requests leave; new ones get their prompt evaluated */
        for (int i = 0; i < P; i++) {
            slot *sl = &S.slots[i];
            if (!sl->req)
                continue;
            pthread_mutex_lock(&sl->req->mu);
            bool gone = sl->req->cancelled;
            pthread_mutex_unlock(&sl->req->mu);
            if (gone) {
                finish(sl, "stop");
                continue;
            }
            if (sl->decoding)
                continue;
            request *r = sl->req;
            bllm_context_reset(sl->ctx);
            bllm_sampler_free(sl->sampler);
            sl->sampler = NULL;
            if (bllm_sampler_new(&r->sp, S.n_vocab, &sl->sampler) ||
                bllm_eval(sl->ctx, r->prompt, r->n_prompt, S.logits, false)) {
                fprintf(stderr, "bllm-server: %s\n", bllm_last_error());
                finish(sl, "stop");
                continue;
            }
            for (int k = 0; k < r->n_prompt; k++)
                bllm_sampler_accept(sl->sampler, r->prompt[k]);
            sl->prev = r->prompt[r->n_prompt - 1];
            step_slot(sl, S.logits);
        }
        /* one batch: every decoding slot's next token */
        bllm_context *ctxs[P];
        int32_t toks[P];
        int idx[P], n = 0;
        for (int i = 0; i < P; i++)
            if (S.slots[i].req && S.slots[i].decoding)
                ctxs[n] = S.slots[i].ctx, toks[n] = S.slots[i].next, idx[n++] = i;
        if (n == 0)
            continue;
        if (bllm_eval_batch(ctxs, toks, n, S.logits)) {
            fprintf(stderr, "bllm-server: %s\n", bllm_last_error());
            for (int k = 0; k < n; k++)
                finish(&S.slots[idx[k]], "length");
            continue;
        }
        for (int k = 0; k < n; k++)
            step_slot(&S.slots[idx[k]], S.logits + (size_t)k * S.n_vocab);
    }
}

/* ------------------------------------------------------------- responses */

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, cJSON *j)
{
    char *body = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* OpenAI's error object. */
static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *type, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *j = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(j, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", type);
    cJSON_AddNullToObject(e, "param");
    cJSON_AddNullToObject(e, "code");
    return send_json(c, status, j);
}

static cJSON *usage_json(const request *r)
{
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", r->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", r->n_gen);
    cJSON_AddNumberToObject(u, "total_tokens", r->n_prompt + r->n_gen);
    return u;
}

/* A streaming chunk (chat: delta; completion: text) as one SSE event. */
static char *chunk_event(const request *r, const char *text, size_t len, bool role, const char *finish_reason)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", r->id);
    cJSON_AddStringToObject(j, "object", r->chat ? "chat.completion.chunk" : "text_completion");
    cJSON_AddNumberToObject(j, "created", (double)r->created);
    cJSON_AddStringToObject(j, "model", S.model_name);
    cJSON *ch = cJSON_AddArrayToObject(j, "choices"), *c0 = cJSON_CreateObject();
    cJSON_AddItemToArray(ch, c0);
    cJSON_AddNumberToObject(c0, "index", 0);
    char *t = utf8_clean(text ? text : "", len);
    if (!t)
        return NULL;
    if (r->chat) {
        cJSON *d = cJSON_AddObjectToObject(c0, "delta");
        if (role)
            cJSON_AddStringToObject(d, "role", "assistant");
        if (len || role)
            cJSON_AddStringToObject(d, "content", t);
    } else {
        cJSON_AddStringToObject(c0, "text", t);
    }
    free(t);
    if (finish_reason)
        cJSON_AddStringToObject(c0, "finish_reason", finish_reason);
    else
        cJSON_AddNullToObject(c0, "finish_reason");
    if (finish_reason)
        cJSON_AddItemToObject(j, "usage", usage_json(r));
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    size_t n = strlen(s);
    char *ev = malloc(n + 9);
    if (ev)
        snprintf(ev, n + 9, "data: %s\n\n", s);
    free(s);
    return ev;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    request *r = cls;
    pthread_mutex_lock(&r->mu);
    while (r->sse_off == r->sse_len) {
        free(r->sse);
        r->sse = NULL;
        r->sse_len = r->sse_off = 0;
        size_t ok = sendable(r);
        if (r->cancelled) {
            pthread_mutex_unlock(&r->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (!r->started) { /* chat streams open with the role */
            r->started = true;
            if (!r->chat)
                continue;
            r->sse = chunk_event(r, "", 0, true, NULL);
        } else if (ok > r->sent) {
            r->sse = chunk_event(r, r->text + r->sent, ok - r->sent, false, NULL);
            r->sent = ok;
        } else if (r->finish && r->sent == r->len) {
            if (r->ended) {
                pthread_mutex_unlock(&r->mu);
                return MHD_CONTENT_READER_END_OF_STREAM;
            }
            char *last = chunk_event(r, "", 0, false, r->finish);
            const char *done = "data: [DONE]\n\n";
            r->sse = last ? realloc(last, strlen(last) + strlen(done) + 1) : NULL;
            if (r->sse)
                strcat(r->sse, done);
            r->ended = true;
        } else {
            pthread_cond_wait(&r->cv, &r->mu);
            continue;
        }
        if (!r->sse) {
            pthread_mutex_unlock(&r->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        r->sse_len = strlen(r->sse);
    }
    size_t n = r->sse_len - r->sse_off < max ? r->sse_len - r->sse_off : max;
    memcpy(buf, r->sse + r->sse_off, n);
    r->sse_off += n;
    pthread_mutex_unlock(&r->mu);
    return (ssize_t)n;
}

static void stream_free(void *cls) { request_unref(cls); }

/* --------------------------------------------------------- the requests */

typedef struct {
    char *body;
    size_t len;
    bool too_large;
    request *req; /* set once queued: the completion callback cancels it */
} connection;

static int get_number(cJSON *j, const char *key, double lo, double hi, double *out, char *err, size_t cap)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi)) {
        snprintf(err, cap, "'%s' must be a number in [%g, %g]", key, lo, hi);
        return -1;
    }
    *out = v->valuedouble;
    return 1;
}

/* get_number into a float or int field, left as it is when the key is
 * absent; false (err set) when the value is bad */
static bool get_float(cJSON *j, const char *key, double lo, double hi, float *out, char *err, size_t cap)
{
    double v;
    const int got = get_number(j, key, lo, hi, &v, err, cap);
    if (got > 0)
        *out = (float)v;
    return got >= 0;
}

static bool get_int(cJSON *j, const char *key, double lo, double hi, int *out, char *err, size_t cap)
{
    double v;
    const int got = get_number(j, key, lo, hi, &v, err, cap);
    if (got > 0)
        *out = (int)v;
    return got >= 0;
}

/* The request from its JSON, or an error message (400). */
static request *parse_request(cJSON *j, bool chat, char *err, size_t cap)
{
    request *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->refs = 1;
    r->chat = chat;
    r->sp = bllm_sampler_default_params();
    r->sp.seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)r;
    char *prompt = NULL;
    double v;
    int bad = 0;
    if (!cJSON_IsObject(j)) {
        snprintf(err, cap, "the body must be a JSON object");
        goto fail;
    }
    cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "stream");
    if (st && !cJSON_IsNull(st) && !cJSON_IsBool(st)) {
        snprintf(err, cap, "'stream' must be a boolean");
        goto fail;
    }
    r->stream = st && cJSON_IsTrue(st);
    r->max_tokens = -1;
    if (!get_int(j, "max_tokens", 1, 1 << 24, &r->max_tokens, err, cap) ||
        !get_float(j, "temperature", 0, 100, &r->sp.temperature, err, cap) ||
        !get_float(j, "top_p", 0, 1, &r->sp.top_p, err, cap) || !get_float(j, "min_p", 0, 1, &r->sp.min_p, err, cap) ||
        !get_int(j, "top_k", 0, 1 << 24, &r->sp.top_k, err, cap) ||
        !get_float(j, "repeat_penalty", 0.01, 100, &r->sp.repeat_penalty, err, cap))
        goto fail;
    if ((bad = get_number(j, "seed", -9.2e18, 9.2e18, &v, err, cap)) < 0)
        goto fail;
    if (bad > 0)
        r->sp.seed = (uint64_t)(int64_t)v;
    for (const char *const *k = (const char *const[]){"presence_penalty", "frequency_penalty", NULL}; *k; k++)
        if ((bad = get_number(j, *k, -2, 2, &v, err, cap)) < 0)
            goto fail;
        else if (bad > 0 && v != 0) {
            snprintf(err, cap, "'%s' is not supported (use repeat_penalty)", *k);
            goto fail;
        }
    cJSON *stop = cJSON_GetObjectItemCaseSensitive(j, "stop");
    if (stop && !cJSON_IsNull(stop)) {
        if (cJSON_IsString(stop) && *stop->valuestring) {
            r->stop[r->n_stop++] = strdup(stop->valuestring);
        } else if (cJSON_IsArray(stop) && cJSON_GetArraySize(stop) <= MAX_STOP) {
            cJSON *e;
            cJSON_ArrayForEach(e, stop)
            {
                if (!cJSON_IsString(e) || !*e->valuestring) {
                    snprintf(err, cap, "'stop' must hold non-empty strings");
                    goto fail;
                }
                r->stop[r->n_stop++] = strdup(e->valuestring);
            }
        } else {
            snprintf(err, cap, "'stop' must be a string or an array of at most %d strings", MAX_STOP);
            goto fail;
        }
    }
    if (chat) {
        cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages"), *e;
        int n = cJSON_IsArray(msgs) ? cJSON_GetArraySize(msgs) : -1;
        if (n < 1) {
            snprintf(err, cap, "'messages' must be a non-empty array");
            goto fail;
        }
        bllm_chat_message *m = calloc((size_t)n, sizeof *m);
        int i = 0;
        cJSON_ArrayForEach(e, msgs)
        {
            cJSON *role = cJSON_GetObjectItemCaseSensitive(e, "role");
            cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
            if (!cJSON_IsString(role) || !cJSON_IsString(content)) {
                snprintf(err, cap, "messages[%d] needs string 'role' and 'content'", i);
                free(m);
                goto fail;
            }
            m[i].role = role->valuestring, m[i++].content = content->valuestring;
        }
        if (bllm_chat_format(S.style, S.tmpl, m, n, true, &prompt)) {
            snprintf(err, cap, "%s", bllm_last_error());
            free(m);
            goto fail;
        }
        free(m);
    } else {
        cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "prompt");
        if (!cJSON_IsString(p)) {
            snprintf(err, cap, "'prompt' must be a string");
            goto fail;
        }
        prompt = strdup(p->valuestring);
    }
    size_t cap_t = strlen(prompt) + 8, n = 0;
    r->prompt = malloc(cap_t * sizeof *r->prompt);
    bool bos = bllm_model_adds_bos(S.model) && !(chat && bllm_chat_style_has_bos(S.style));
    if (!r->prompt || bllm_tokenize(S.model, prompt, strlen(prompt), bos, chat, r->prompt, cap_t, &n)) {
        snprintf(err, cap, "cannot tokenize the prompt: %s", bllm_last_error());
        goto fail;
    }
    if (n == 0) {
        snprintf(err, cap, "the prompt is empty");
        goto fail;
    }
    r->n_prompt = (int)n;
    if (r->n_prompt >= S.o.n_ctx) {
        snprintf(err, cap, "the prompt is %d tokens; the context holds %d (bllm-server -c)", r->n_prompt, S.o.n_ctx);
        goto fail;
    }
    int room = S.o.n_ctx - r->n_prompt;
    if (r->max_tokens < 0 || r->max_tokens > room)
        r->max_tokens = room;
    free(prompt);
    return r;
fail:
    free(prompt);
    request_unref(r);
    return NULL;
}

static enum MHD_Result handle_completion(struct MHD_Connection *c, connection *cn, bool chat)
{
    if (cn->too_large)
        return send_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "invalid_request_error",
                          "the request body exceeds %d bytes", MAX_BODY);
    cJSON *j = cJSON_ParseWithLength(cn->body ? cn->body : "", cn->len);
    if (!j)
        return send_error(c, MHD_HTTP_BAD_REQUEST, "invalid_request_error", "the body is not valid JSON");
    char err[512];
    request *r = parse_request(j, chat, err, sizeof err);
    cJSON_Delete(j);
    if (!r)
        return send_error(c, MHD_HTTP_BAD_REQUEST, "invalid_request_error", "%s", err);
    static unsigned long seq;
    r->created = (long)time(NULL);
    pthread_mutex_lock(&S.mu);
    snprintf(r->id, sizeof r->id, "%s-%lu", chat ? "chatcmpl" : "cmpl", ++seq);
    if (S.stopping || S.queued >= S.queue_max) {
        bool stopping = S.stopping;
        pthread_mutex_unlock(&S.mu);
        request_unref(r);
        return send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "server_error",
                          stopping ? "the server is shutting down" : "all %d slots are busy and %d requests wait; "
                                                                      "try again later",
                          S.o.parallel, S.queue_max);
    }
    r->refs = 2; /* this connection and the scheduler */
    if (S.queue_tail)
        S.queue_tail->next = r;
    else
        S.queue_head = r;
    S.queue_tail = r;
    S.queued++;
    pthread_cond_signal(&S.cv);
    pthread_mutex_unlock(&S.mu);
    cn->req = r;
    if (r->stream) {
        pthread_mutex_lock(&r->mu);
        r->refs++; /* the response's reader */
        pthread_mutex_unlock(&r->mu);
        struct MHD_Response *resp =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, r, stream_free);
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    pthread_mutex_lock(&r->mu);
    while (!r->finish)
        pthread_cond_wait(&r->cv, &r->mu);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "id", r->id);
    cJSON_AddStringToObject(out, "object", chat ? "chat.completion" : "text_completion");
    cJSON_AddNumberToObject(out, "created", (double)r->created);
    cJSON_AddStringToObject(out, "model", S.model_name);
    cJSON *ch = cJSON_AddArrayToObject(out, "choices"), *c0 = cJSON_CreateObject();
    cJSON_AddItemToArray(ch, c0);
    cJSON_AddNumberToObject(c0, "index", 0);
    if (chat) {
        cJSON *m = cJSON_AddObjectToObject(c0, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        char *t = utf8_clean(r->text ? r->text : "", r->len);
        cJSON_AddStringToObject(m, "content", t ? t : "");
        free(t);
    } else {
        char *t = utf8_clean(r->text ? r->text : "", r->len);
        cJSON_AddStringToObject(c0, "text", t ? t : "");
        free(t);
    }
    cJSON_AddStringToObject(c0, "finish_reason", r->finish);
    cJSON_AddItemToObject(out, "usage", usage_json(r));
    pthread_mutex_unlock(&r->mu);
    return send_json(c, MHD_HTTP_OK, out);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)cls, (void)version;
    connection *cn = *con_cls;
    if (!cn) {
        if (!(cn = calloc(1, sizeof *cn)))
            return MHD_NO;
        *con_cls = cn;
        pthread_mutex_lock(&S.mu);
        S.open_requests++;
        pthread_mutex_unlock(&S.mu);
        return MHD_YES;
    }
    if (*upload_size) {
        if (!cn->too_large && cn->len + *upload_size <= MAX_BODY) {
            char *b = realloc(cn->body, cn->len + *upload_size + 1);
            if (b) {
                memcpy(b + cn->len, upload, *upload_size);
                cn->body = b;
                cn->len += *upload_size;
                b[cn->len] = '\0';
            }
        } else {
            cn->too_large = true;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (S.o.api_key) {
        const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
        if (!auth || strncmp(auth, "Bearer ", 7) || strcmp(auth + 7, S.o.api_key))
            return send_error(c, MHD_HTTP_UNAUTHORIZED, "invalid_request_error", "missing or wrong API key");
    }
    const bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    if (get && !strcmp(url, "/health")) {
        uint64_t evals, toks;
        bllm_model_eval_counts(S.model, &evals, &toks);
        cJSON *j = cJSON_CreateObject();
        pthread_mutex_lock(&S.mu);
        cJSON_AddStringToObject(j, "status", "ok");
        cJSON_AddNumberToObject(j, "slots_processing", S.busy);
        cJSON_AddNumberToObject(j, "slots_idle", S.o.parallel - S.busy);
        cJSON_AddNumberToObject(j, "requests_queued", S.queued);
        pthread_mutex_unlock(&S.mu);
        cJSON_AddNumberToObject(j, "evaluations", (double)evals);
        cJSON_AddNumberToObject(j, "evaluated_tokens", (double)toks);
        return send_json(c, MHD_HTTP_OK, j);
    }
    if (get && !strcmp(url, "/v1/models")) {
        cJSON *j = cJSON_CreateObject(), *d = cJSON_AddArrayToObject(j, "data"), *m = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "object", "list");
        cJSON_AddItemToArray(d, m);
        cJSON_AddStringToObject(m, "id", S.model_name);
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", 0);
        cJSON_AddStringToObject(m, "owned_by", "bllm");
        return send_json(c, MHD_HTTP_OK, j);
    }
    if (post && !strcmp(url, "/v1/chat/completions"))
        return handle_completion(c, cn, true);
    if (post && !strcmp(url, "/v1/completions"))
        return handle_completion(c, cn, false);
    return send_error(c, MHD_HTTP_NOT_FOUND, "invalid_request_error", "no route %s %s", method, url);
}

/* The connection is over: a request still running loses its client. */
static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c, (void)toe;
    connection *cn = *con_cls;
    if (!cn)
        return;
    if (cn->req) {
        pthread_mutex_lock(&cn->req->mu);
        if (!cn->req->finish || toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
            cn->req->cancelled = true;
        pthread_cond_broadcast(&cn->req->cv);
        pthread_mutex_unlock(&cn->req->mu);
        request_unref(cn->req);
    }
    free(cn->body);
    free(cn);
    *con_cls = NULL;
    pthread_mutex_lock(&S.mu);
    S.open_requests--;
    pthread_mutex_unlock(&S.mu);
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *out)
{
    fprintf(out, "usage: bllm-server -m MODEL.stb [options]\n"
                 "\n"
                 "An OpenAI-compatible server: POST /v1/chat/completions, POST /v1/completions\n"
                 "(streamed with \"stream\": true), GET /v1/models, GET /health.\n"
                 "\n"
                 "  -m, --model FILE      model in .stb format\n"
                 "      --host ADDR       IPv4 address to listen on (default 127.0.0.1)\n"
                 "      --port N          port (default 8080)\n"
                 "  -c, --ctx-size N      context per slot (default: the model's, at most 4096)\n"
                 "  -np, --parallel P     slots decoded together as one batch (default 4)\n"
                 "  -t, --threads N       threads (default: all online CPUs)\n"
                 "      --api-key KEY     require \"Authorization: Bearer KEY\"\n"
                 "      --chat-template T chatml, llama2, llama3, mistral, zephyr or gemma\n"
                 "      --cache-type T    KV cache storage: f16 (default), f32 or q8\n"
                 "      --mmap            serve weights from the file's mapping (shares the page\n"
                 "                        cache between processes; decodes slower: 4 KiB pages)\n"
                 "  -h, --help            this help\n"
                 "\n"
                 "SIGINT or SIGTERM: stop taking requests, finish the running ones, exit.\n");
}

static int parse_args(int argc, char **argv, options *o)
{
    *o = (options){.host = "127.0.0.1", .port = 8080, .parallel = 4};
    enum { O_HOST = 256, O_PORT, O_APIKEY, O_TEMPLATE, O_CACHE, O_PARALLEL, O_MMAP };
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},         {"ctx-size", required_argument, NULL, 'c'},
        {"threads", required_argument, NULL, 't'},       {"host", required_argument, NULL, O_HOST},
        {"port", required_argument, NULL, O_PORT},       {"parallel", required_argument, NULL, O_PARALLEL},
        {"api-key", required_argument, NULL, O_APIKEY},  {"chat-template", required_argument, NULL, O_TEMPLATE},
        {"cache-type", required_argument, NULL, O_CACHE}, {"mmap", no_argument, NULL, O_MMAP},
        {"help", no_argument, NULL, 'h'},               {NULL, 0, NULL, 0},
    };
    static const char optstring[] = ":m:c:t:h";
    bllm_cli_alias(argc, argv, optstring, opts, "-np", "--parallel"); /* llama-server's */
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, optstring, opts, NULL)) != -1;) {
        const char *v = optarg;
        bool ok = true;
        switch (c) {
        case 'h': usage(stdout); exit(0);
        case 'm': o->model = v; break;
        case O_HOST: o->host = v; break;
        case O_PORT: ok = bllm_cli_parse_int(v, 1, 65535, &o->port); break;
        case 'c': ok = bllm_cli_parse_int(v, 8, 1 << 20, &o->n_ctx); break;
        case O_PARALLEL: ok = bllm_cli_parse_int(v, 1, 64, &o->parallel); break;
        case 't': ok = bllm_cli_parse_int(v, 1, 1024, &o->threads); break;
        case O_APIKEY: o->api_key = v; break;
        case O_MMAP: o->map_file = true; break;
        case O_TEMPLATE: o->chat_template = v; break;
        case O_CACHE:
            if (!bllm_cli_parse_kv("bllm-server", v, &o->kv_type))
                return -1;
            break;
        default: bllm_cli_getopt_error("bllm-server", c, argv); return -1;
        }
        if (!ok) {
            bllm_cli_bad_value("bllm-server", opts, c, v, NULL);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "bllm-server: unexpected argument '%s' (see --help)\n", argv[optind]);
        return -1;
    }
    if (!o->model) {
        fprintf(stderr, "bllm-server: no model given (-m MODEL.stb); see --help\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    bllm_cli_blas_core(argv);
    if (parse_args(argc, argv, &S.o))
        return 2;
    /* SIGINT/SIGTERM go to sigwait below: blocked before any thread starts
     * (the contexts' pools, the scheduler, libmicrohttpd's), which inherit
     * the mask */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)S.o.port)};
    if (inet_pton(AF_INET, S.o.host, &addr.sin_addr) != 1) {
        fprintf(stderr, "bllm-server: --host takes an IPv4 address, not '%s'\n", S.o.host);
        return 2;
    }
    bllm_load_params lp = {.map_file = S.o.map_file};
    if (bllm_model_load(S.o.model, &lp, &S.model)) {
        fprintf(stderr, "bllm-server: cannot load model: %s\n", bllm_last_error());
        return 1;
    }
    const bllm_model_info *info = bllm_model_get_info(S.model);
    S.n_vocab = info->n_vocab;
    S.model_name = info->name && *info->name ? info->name : S.o.model;
    S.tmpl = bllm_model_chat_template(S.model);
    S.style = bllm_chat_style_of(S.tmpl);
    if (S.o.chat_template && !bllm_chat_style_from_name(S.o.chat_template, &S.style)) {
        fprintf(stderr, "bllm-server: unknown --chat-template '%s'\n", S.o.chat_template);
        return 2;
    }
    if (!S.o.n_ctx)
        S.o.n_ctx = info->max_seq_len < 4096 ? info->max_seq_len : 4096;
    if (S.o.n_ctx > info->max_seq_len) {
        fprintf(stderr, "bllm-server: -c %d exceeds the model's trained context of %d\n", S.o.n_ctx,
                info->max_seq_len);
        return 2;
    }
    S.queue_max = 4 * S.o.parallel;
    S.slots = calloc((size_t)S.o.parallel, sizeof *S.slots);
    S.logits = malloc(sizeof(float) * (size_t)S.o.parallel * S.n_vocab);
    if (!S.slots || !S.logits)
        return 1;
    for (int i = 0; i < S.o.parallel; i++) {
        /* one set of threads for all slots: they never run at the same time */
        bllm_context_params cp = {.n_ctx = S.o.n_ctx, .n_threads = S.o.threads,
                                  .kv_type = (bllm_kv_type)S.o.kv_type,
                                  .share_threads = i ? S.slots[0].ctx : NULL};
        if (bllm_context_new(S.model, &cp, &S.slots[i].ctx)) {
            fprintf(stderr, "bllm-server: cannot create slot %d: %s\n", i, bllm_last_error());
            return 1;
        }
    }
    pthread_t sched;
    pthread_create(&sched, NULL, scheduler, NULL);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        handle, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "bllm-server: cannot listen on %s:%d (in use?)\n", S.o.host, S.o.port);
        return 1;
    }
    fprintf(stderr, "bllm-server: %s on http://%s:%d, %d slots of %d tokens, kernels %s\n", S.model_name,
            S.o.host, S.o.port, S.o.parallel, S.o.n_ctx, bllm_kernel_name());
    int sig;
    sigwait(&sigs, &sig);
    fprintf(stderr, "bllm-server: %s: finishing the running requests\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    pthread_mutex_lock(&S.mu);
    S.stopping = true;
    pthread_cond_signal(&S.cv);
    pthread_mutex_unlock(&S.mu);
    pthread_join(sched, NULL); /* returns when no request runs or waits */
    /* requests still being read or answered (a late one gets its 503, a
     * finished one its last bytes) before the connections close */
    for (int i = 0; i < 600; i++) {
        pthread_mutex_lock(&S.mu);
        int open = S.open_requests;
        pthread_mutex_unlock(&S.mu);
        if (!open)
            break;
        usleep(50000);
    }
    MHD_stop_daemon(d);
    for (int i = 0; i < S.o.parallel; i++) {
        bllm_sampler_free(S.slots[i].sampler);
        bllm_context_free(S.slots[i].ctx);
    }
    free(S.slots);
    free(S.logits);
    bllm_model_free(S.model);
    fprintf(stderr, "bllm-server: stopped\n");
    return 0;
}
