/* Test driver for the tokenizers: builds a tokenizer from a GGUF file's
 * vocabulary, a SentencePiece tokenizer.model or a llama2.c tokenizer.bin,
 * optionally round-trips the spec through a .stb file, then encodes or
 * decodes a file.
 *
 *   tok_dump (--gguf F | --spm-model F | --llama2c F | --source F) [--via-stb OUT.stb]
 *            [--bos] [--special] MODE FILE
 *   --pre NAME: replace the BPE pre-tokenizer name (to test each pattern).
 *   --source F: the spec bllm_source_open() (runtime/import/source.h, the converters'
 *   path) builds from a GGUF file or HF directory.
 *   MODE encode: FILE is text; prints token ids, one per line
 *        decode: FILE holds ids (whitespace separated); writes the bytes
 *                decode_token() gives for each, following the previous one
 *        bench:  prints the best of 5 encode times of FILE, in seconds
 *        info:   prints the spec's kind, vocab size and special ids
 *        pretok: BPE only; prints the pre-tokenizer's pieces of FILE as
 *                "start end" byte offsets, one per line
 *
 * The GGUF reader here is deliberately tiny and separate from
 * runtime/import/gguf.c: it reads only the tokenizer.ggml.* keys, so this test does
 * not depend on the converter's source code path. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime/import/source.h"
#include "runtime/format/stb.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/tokenizer.h"

static void die(const char *what) {
    fprintf(stderr, "tok_dump: %s: %s\n", what, bllm_last_error());
    exit(1);
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "tok_dump: cannot open %s: %s\n", path, strerror(errno));
        exit(1);
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (n == cap) buf = realloc(buf, (cap *= 2) + 1);
        size_t r = fread(buf + n, 1, cap - n, f);
        if (r == 0) break;
        n += r;
    }
    if (f != stdin) fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* ---- minimal GGUF metadata reader (tokenizer keys only) ---- */

enum { G_U8, G_I8, G_U16, G_I16, G_U32, G_I32, G_F32, G_BOOL, G_STR, G_ARR, G_U64, G_I64, G_F64 };

typedef struct {
    const unsigned char *p, *end;
} cur;

static void need(cur *c, size_t n) {
    if ((size_t)(c->end - c->p) < n) {
        fprintf(stderr, "tok_dump: truncated GGUF\n");
        exit(1);
    }
}
static uint64_t rd(cur *c, size_t n) {
    need(c, n);
    uint64_t v = 0;
    memcpy(&v, c->p, n);
    c->p += n;
    return v;
}
static size_t scalar_size(uint32_t t) {
    static const size_t sz[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (t > G_F64 || t == G_STR || t == G_ARR) return 0;
    return sz[t];
}
static void skip_value(cur *c, uint32_t t) {
    if (t == G_STR) {
        uint64_t n = rd(c, 8);
        need(c, n);
        c->p += n;
    } else if (t == G_ARR) {
        uint32_t et = (uint32_t)rd(c, 4);
        uint64_t n = rd(c, 8);
        for (uint64_t i = 0; i < n; i++) skip_value(c, et);
    } else {
        size_t s = scalar_size(t);
        if (!s) {
            fprintf(stderr, "tok_dump: bad GGUF type %u\n", t);
            exit(1);
        }
        need(c, s);
        c->p += s;
    }
}
static int64_t as_int(cur *c, uint32_t t) {
    switch (t) {
    case G_U8: return (uint8_t)rd(c, 1);
    case G_I8: return (int8_t)rd(c, 1);
    case G_U16: return (uint16_t)rd(c, 2);
    case G_I16: return (int16_t)rd(c, 2);
    case G_U32: return (uint32_t)rd(c, 4);
    case G_I32: return (int32_t)rd(c, 4);
    case G_BOOL: return rd(c, 1) != 0;
    case G_U64: return (int64_t)rd(c, 8);
    case G_I64: return (int64_t)rd(c, 8);
    }
    fprintf(stderr, "tok_dump: expected an integer GGUF value (type %u)\n", t);
    exit(1);
}
static void str_array(cur *c, uint32_t *n, const char ***s, size_t **l) {
    uint32_t et = (uint32_t)rd(c, 4);
    uint64_t cnt = rd(c, 8);
    if (et != G_STR) {
        fprintf(stderr, "tok_dump: expected a string array\n");
        exit(1);
    }
    *n = (uint32_t)cnt;
    *s = malloc((cnt + 1) * sizeof **s);
    *l = malloc((cnt + 1) * sizeof **l);
    for (uint64_t i = 0; i < cnt; i++) {
        uint64_t len = rd(c, 8);
        need(c, len);
        (*s)[i] = (const char *)c->p;
        (*l)[i] = len;
        c->p += len;
    }
}

static void load_gguf(const char *path, bllm_tokenizer_spec *sp) {
    int fd = open(path, O_RDONLY);
    struct stat stt;
    if (fd < 0 || fstat(fd, &stt) != 0) {
        fprintf(stderr, "tok_dump: cannot open %s: %s\n", path, strerror(errno));
        exit(1);
    }
    void *map = mmap(NULL, (size_t)stt.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        fprintf(stderr, "tok_dump: cannot map %s\n", path);
        exit(1);
    }
    cur c = {map, (const unsigned char *)map + stt.st_size};
    need(&c, 4);
    if (memcmp(c.p, "GGUF", 4) != 0) {
        fprintf(stderr, "tok_dump: %s is not a GGUF file\n", path);
        exit(1);
    }
    c.p += 4;
    uint32_t version = (uint32_t)rd(&c, 4);
    if (version < 2) {
        fprintf(stderr, "tok_dump: GGUF version %u not handled\n", version);
        exit(1);
    }
    rd(&c, 8); /* tensor count */
    uint64_t n_kv = rd(&c, 8);
    memset(sp, 0, sizeof *sp);
    sp->bos_id = sp->eos_id = sp->unk_id = sp->pad_id = sp->eot_id = -1;
    sp->add_bos = false;
    char model[32] = "";
    for (uint64_t k = 0; k < n_kv; k++) {
        uint64_t klen = rd(&c, 8);
        need(&c, klen);
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)(klen < 255 ? klen : 255), (const char *)c.p);
        c.p += klen;
        uint32_t t = (uint32_t)rd(&c, 4);
        if (!strcmp(key, "tokenizer.ggml.model") && t == G_STR) {
            uint64_t n = rd(&c, 8);
            need(&c, n);
            snprintf(model, sizeof model, "%.*s", (int)(n < 31 ? n : 31), (const char *)c.p);
            c.p += n;
        } else if (!strcmp(key, "tokenizer.ggml.pre") && t == G_STR) {
            uint64_t n = rd(&c, 8);
            need(&c, n);
            sp->pre = strndup((const char *)c.p, n);
            c.p += n;
        } else if (!strcmp(key, "tokenizer.ggml.tokens") && t == G_ARR) {
            str_array(&c, &sp->n_vocab, (const char ***)&sp->tokens, (size_t **)&sp->token_lens);
        } else if (!strcmp(key, "tokenizer.ggml.merges") && t == G_ARR) {
            str_array(&c, &sp->n_merges, (const char ***)&sp->merges, (size_t **)&sp->merge_lens);
        } else if ((!strcmp(key, "tokenizer.ggml.scores") || !strcmp(key, "tokenizer.ggml.token_type")) &&
                   t == G_ARR) {
            uint32_t et = (uint32_t)rd(&c, 4);
            uint64_t n = rd(&c, 8);
            if (scalar_size(et) != 4) {
                fprintf(stderr, "tok_dump: %s: unexpected element type %u\n", key, et);
                exit(1);
            }
            need(&c, 4 * n);
            void *a = malloc(4 * n + 4);
            memcpy(a, c.p, 4 * n);
            c.p += 4 * n;
            if (!strcmp(key, "tokenizer.ggml.scores")) sp->scores = a;
            else sp->token_types = a;
        } else if (!strcmp(key, "tokenizer.ggml.bos_token_id")) {
            sp->bos_id = (int32_t)as_int(&c, t);
        } else if (!strcmp(key, "tokenizer.ggml.eos_token_id")) {
            sp->eos_id = (int32_t)as_int(&c, t);
        } else if (!strcmp(key, "tokenizer.ggml.unknown_token_id")) {
            sp->unk_id = (int32_t)as_int(&c, t);
        } else if (!strcmp(key, "tokenizer.ggml.padding_token_id")) {
            sp->pad_id = (int32_t)as_int(&c, t);
        } else if (!strcmp(key, "tokenizer.ggml.eot_token_id")) {
            sp->eot_id = (int32_t)as_int(&c, t);
        } else if (!strcmp(key, "tokenizer.ggml.add_bos_token")) {
            sp->add_bos = as_int(&c, t) != 0;
        } else if (!strcmp(key, "tokenizer.ggml.add_space_prefix")) {
            sp->add_space_prefix = as_int(&c, t) != 0;
        } else {
            skip_value(&c, t);
        }
    }
    if (!strcmp(model, "gpt2")) {
        sp->kind = BLLM_TOK_BPE;
    } else if (!strcmp(model, "llama")) {
        sp->kind = BLLM_TOK_SPM;
        sp->add_space_prefix = true;
    } else {
        fprintf(stderr, "tok_dump: GGUF tokenizer model \"%s\" not handled\n", model);
        exit(1);
    }
    /* the mapping stays alive until exit: the spec points into it */
}

/* spec -> .stb (metadata only) -> spec, to exercise tokenizer_stb.c */
static bllm_tokenizer *via_stb(const bllm_tokenizer_spec *sp, const char *path) {
    bllm_stb_writer *w = bllm_stb_writer_new();
    if (!w) die("stb writer");
    if (bllm_tokenizer_spec_to_stb(sp, w)) die("spec_to_stb");
    if (bllm_stb_write_begin(w, path) || bllm_stb_write_finish(w)) die("writing .stb");
    bllm_stb_writer_free(w);
    bllm_stb_file *f;
    if (bllm_stb_open(path, true, &f)) die("opening .stb");
    bllm_tokenizer_spec back;
    if (bllm_tokenizer_spec_from_stb(f, &back)) die("spec_from_stb");
    bllm_tokenizer *t;
    if (bllm_tokenizer_new(&back, &t)) die("tokenizer_new (from .stb)");
    bllm_tokenizer_spec_release(&back);
    bllm_stb_close(f);
    return t;
}

static void print_piece(void *ctx, size_t start, size_t end) {
    (void)ctx;
    printf("%zu %zu\n", start, end);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int32_t *encode(bllm_tokenizer *t, const char *text, size_t len, bool bos, bool special,
                       size_t *n) {
    /* first call with a deliberately small buffer exercises the size query */
    size_t need_n = 0;
    bllm_status st = bllm_tokenizer_encode(t, text, len, bos, special, NULL, 0, &need_n);
    if (st != BLLM_OK && st != BLLM_ERR_ARG) die("encode");
    if (st == BLLM_OK && need_n != 0) {
        fprintf(stderr, "tok_dump: encode into an empty buffer succeeded with %zu tokens\n", need_n);
        exit(1);
    }
    int32_t *ids = malloc((need_n + 1) * sizeof *ids);
    if (bllm_tokenizer_encode(t, text, len, bos, special, ids, need_n, n)) die("encode");
    if (*n != need_n) {
        fprintf(stderr, "tok_dump: size query said %zu tokens, encode gave %zu\n", need_n, *n);
        exit(1);
    }
    return ids;
}

int main(int argc, char **argv) {
    const char *gguf = NULL, *spm = NULL, *l2c = NULL, *stb = NULL, *srcpath = NULL, *pre = NULL;
    bool bos = false, special = false;
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
        if (!strcmp(argv[i], "--gguf") && i + 1 < argc) gguf = argv[++i];
        else if (!strcmp(argv[i], "--spm-model") && i + 1 < argc) spm = argv[++i];
        else if (!strcmp(argv[i], "--llama2c") && i + 1 < argc) l2c = argv[++i];
        else if (!strcmp(argv[i], "--source") && i + 1 < argc) srcpath = argv[++i];
        else if (!strcmp(argv[i], "--pre") && i + 1 < argc) pre = argv[++i];
        else if (!strcmp(argv[i], "--via-stb") && i + 1 < argc) stb = argv[++i];
        else if (!strcmp(argv[i], "--bos")) bos = true;
        else if (!strcmp(argv[i], "--special")) special = true;
        else break;
    }
    if (i >= argc || (!gguf + !spm + !l2c + !srcpath) != 3) {
        fprintf(stderr, "usage: tok_dump (--gguf F | --spm-model F | --llama2c F | --source F) [--via-stb OUT] "
                        "[--bos] [--special] (encode|decode|bench|info) [FILE]\n");
        return 2;
    }
    const char *mode = argv[i++];
    bllm_tokenizer_spec gspec;
    bllm_tokenizer_spec_buf buf = {0};
    const bllm_tokenizer_spec *sp;
    bllm_source *source = NULL;
    if (srcpath) {
        if (bllm_source_open(srcpath, BLLM_SOURCE_AUTO, NULL, &source)) die(srcpath);
        sp = bllm_source_tokenizer(source);
    } else if (gguf) {
        load_gguf(gguf, &gspec);
        sp = &gspec;
    } else if (spm) {
        if (bllm_tokenizer_load_spm_model(spm, &buf)) die(spm);
        sp = &buf.spec;
    } else {
        if (bllm_tokenizer_load_llama2c(l2c, &buf)) die(l2c);
        sp = &buf.spec;
    }
    bllm_tokenizer_spec over;
    if (pre) {
        over = *sp;
        over.pre = pre;
        sp = &over;
    }
    bllm_tokenizer *t;
    if (stb) {
        t = via_stb(sp, stb);
    } else if (bllm_tokenizer_new(sp, &t)) {
        die("tokenizer_new");
    }
    bllm_tokenizer_spec_buf_free(&buf);
    bllm_source_close(source);
    if (gguf) { /* the tokenizer holds its own copy */
        free((void *)gspec.tokens);
        free((void *)gspec.token_lens);
        free((void *)gspec.merges);
        free((void *)gspec.merge_lens);
        free((void *)gspec.scores);
        free((void *)gspec.token_types);
        free((void *)gspec.pre);
    }
    const bllm_tokenizer_spec *ts = bllm_tokenizer_get_spec(t);

    if (!strcmp(mode, "info")) {
        static const char *kinds[] = {"spm", "bpe", "llama2c"};
        printf("kind %s\nn_vocab %u\nn_merges %u\npre %s\nbos %d\neos %d\nunk %d\npad %d\neot %d\n"
               "add_bos %d\nadd_space_prefix %d\n",
               kinds[ts->kind], bllm_tokenizer_n_vocab(t), ts->n_merges, ts->pre ? ts->pre : "-",
               ts->bos_id, ts->eos_id, ts->unk_id, ts->pad_id, ts->eot_id, ts->add_bos,
               ts->add_space_prefix);
        bllm_tokenizer_free(t);
        return 0;
    }
    if (i >= argc) {
        fprintf(stderr, "tok_dump: %s needs a file\n", mode);
        return 2;
    }
    size_t len;
    char *data = read_file(argv[i], &len);
    int rc = 0;
    if (!strcmp(mode, "encode")) {
        size_t n;
        int32_t *ids = encode(t, data, len, bos, special, &n);
        for (size_t k = 0; k < n; k++) printf("%d\n", ids[k]);
        free(ids);
    } else if (!strcmp(mode, "pretok")) {
        const bllm_bpe *b = bllm_tokenizer_bpe(t);
        if (!b) {
            fprintf(stderr, "tok_dump: pretok needs a BPE tokenizer\n");
            rc = 2;
        } else if (bllm_bpe_pretokenize(b, data, len, print_piece, NULL)) {
            die("pretokenize");
        }
    } else if (!strcmp(mode, "bench")) {
        double best = 1e30;
        size_t n = 0;
        for (int r = 0; r < 5; r++) {
            double t0 = now();
            int32_t *ids = encode(t, data, len, bos, special, &n);
            double dt = now() - t0;
            free(ids);
            if (dt < best) best = dt;
        }
        printf("%.6f %zu\n", best, n);
    } else if (!strcmp(mode, "decode")) {
        int32_t prev = -1;
        char small[8], *p = data;
        for (;;) {
            char *endp;
            long v = strtol(p, &endp, 10);
            if (endp == p) break;
            p = endp;
            /* a tiny buffer first: the count must not depend on cap */
            int need_n = bllm_tokenizer_decode_token(t, prev, (int32_t)v, small, sizeof small);
            if (need_n < 0) {
                fprintf(stderr, "tok_dump: token %ld rejected by decode\n", v);
                rc = 1;
                break;
            }
            char *out = malloc((size_t)need_n + 1);
            int got = bllm_tokenizer_decode_token(t, prev, (int32_t)v, out, (size_t)need_n + 1);
            if (got != need_n || memcmp(out, small, (size_t)(need_n < 8 ? need_n : 8)) != 0) {
                fprintf(stderr, "tok_dump: decode of %ld is not stable across buffer sizes\n", v);
                rc = 1;
            }
            fwrite(out, 1, (size_t)got, stdout);
            free(out);
            prev = (int32_t)v;
        }
    } else {
        fprintf(stderr, "tok_dump: unknown mode %s\n", mode);
        rc = 2;
    }
    free(data);
    bllm_tokenizer_free(t);
    return rc;
}
