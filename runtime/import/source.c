/* Source checkpoints: format detection, the shared bookkeeping of the
 * importers, provenance hashing, and the final check that what an importer
 * produced follows the Llama conventions of models/llama_hparams.h. */
#include "runtime/import/source_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/sha256.h"
#include "runtime/file_io.h"

/* ---------------------------------------------------------------- files */

bllm_status bllm_map_file(const char *path, bllm_mapped *m) {
    m->data = NULL;
    m->size = 0;
    int fd;
    struct stat st;
    bllm_status s = bllm_open_input(path, "file", &fd, &st);
    if (s)
        return s;
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return bllm_fail(BLLM_ERR_IO, "cannot map '%s': %s", path, strerror(e));
        }
        m->data = p;
        m->size = (size_t)st.st_size;
    }
    close(fd);
    return BLLM_OK;
}

void bllm_unmap_file(bllm_mapped *m) {
    if (m->data)
        munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

bllm_status bllm_read_text_file(const char *path, size_t max_bytes, char **buf, size_t *len) {
    *buf = NULL;
    bllm_mapped m;
    bllm_status st = bllm_map_file(path, &m);
    if (st != BLLM_OK)
        return st;
    if (m.size > max_bytes) {
        bllm_unmap_file(&m);
        return bllm_fail(BLLM_ERR_FORMAT, "'%s' is implausibly large (%zu bytes)", path, m.size);
    }
    char *b = malloc(m.size + 1);
    if (!b) {
        bllm_unmap_file(&m);
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory reading '%s'", path);
    }
    if (m.size)
        memcpy(b, m.data, m.size);
    b[m.size] = '\0';
    if (len)
        *len = m.size;
    bllm_unmap_file(&m);
    *buf = b;
    return BLLM_OK;
}

/* ---------------------------------------------------------------- arena */

struct bllm_arena_chunk {
    bllm_arena_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char mem[];
};

void *bllm_arena_alloc(bllm_arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    bllm_arena_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > ((size_t)1 << 20) ? n : ((size_t)1 << 20);
        c = malloc(sizeof(*c) + cap);
        if (!c)
            return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->mem + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *bllm_arena_strndup(bllm_arena *a, const char *s, size_t n) {
    char *d = bllm_arena_alloc(a, n + 1);
    if (d && n)
        memcpy(d, s, n);
    return d;
}

void bllm_arena_free(bllm_arena *a) {
    bllm_arena_chunk *c = a->head;
    while (c) {
        bllm_arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    a->head = NULL;
}

/* ------------------------------------------------------------ bookkeeping */

int bllm_source_add_tensor(bllm_source *s, const char *name, int ndim,
                           const int64_t *dims, const char *src_type) {
    if (strlen(name) >= sizeof(s->tensors[0].name)) {
        bllm_fail(BLLM_ERR_FORMAT, "tensor name too long: '%.64s...'", name);
        return -1;
    }
    if (ndim < 1 || ndim > 4) {
        bllm_fail(BLLM_ERR_UNSUPPORTED, "tensor '%s' has %d dimensions (1 to 4 supported)", name, ndim);
        return -1;
    }
    if (s->n_tensors == s->cap_tensors) {
        int cap = s->cap_tensors ? 2 * s->cap_tensors : 64;
        bllm_source_tensor *t = realloc(s->tensors, (size_t)cap * sizeof(*t));
        if (!t) {
            bllm_fail(BLLM_ERR_NOMEM, "out of memory");
            return -1;
        }
        s->tensors = t;
        s->cap_tensors = cap;
    }
    bllm_source_tensor *t = &s->tensors[s->n_tensors];
    memset(t, 0, sizeof(*t));
    strcpy(t->name, name);
    t->ndim = ndim;
    for (int i = 0; i < 4; i++)
        t->dims[i] = i < ndim ? dims[i] : 1;
    snprintf(t->src_type, sizeof(t->src_type), "%s", src_type);
    return s->n_tensors++;
}

bllm_status bllm_source_add_file(bllm_source *s, const char *path) {
    char **f = realloc(s->files, (size_t)(s->n_files + 1) * sizeof(*f));
    if (!f)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    s->files = f;
    f[s->n_files] = strdup(path);
    if (!f[s->n_files])
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    s->n_files++;
    return BLLM_OK;
}

int32_t bllm_source_find_token(const bllm_tokenizer_spec *t, const char *str) {
    size_t n = strlen(str);
    for (uint32_t i = 0; i < t->n_vocab; i++)
        if (t->token_lens[i] == n && memcmp(t->tokens[i], str, n) == 0)
            return (int32_t)i;
    return -1;
}

int32_t bllm_source_guess_eot(const bllm_tokenizer_spec *t) {
    static const char *const names[] = {"<|im_end|>", "<|eot_id|>", "<|end|>"};
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        int32_t id = bllm_source_find_token(t, names[k]);
        if (id >= 0)
            return id;
    }
    return -1;
}

/* ------------------------------------------------------------ validation */

static const bllm_source_tensor *find_tensor(const bllm_source *s, const char *name) {
    for (int i = 0; i < s->n_tensors; i++)
        if (strcmp(s->tensors[i].name, name) == 0)
            return &s->tensors[i];
    return NULL;
}

static bllm_status expect_shape(const bllm_source *s, const char *name, bool required,
                                int ndim, int64_t d0, int64_t d1) {
    const bllm_source_tensor *t = find_tensor(s, name);
    if (!t) {
        if (!required)
            return BLLM_OK;
        return bllm_fail(BLLM_ERR_FORMAT, "tensor '%s' is missing", name);
    }
    bool ok = t->ndim == ndim && t->dims[0] == d0 && (ndim < 2 || t->dims[1] == d1);
    if (!ok) {
        char want[48], got[64];
        if (ndim == 1)
            snprintf(want, sizeof(want), "[%lld]", (long long)d0);
        else
            snprintf(want, sizeof(want), "[%lld, %lld]", (long long)d0, (long long)d1);
        int n = snprintf(got, sizeof(got), "[");
        for (int i = 0; i < t->ndim; i++)
            n += snprintf(got + n, sizeof(got) - (size_t)n, "%s%lld", i ? ", " : "",
                          (long long)t->dims[i]);
        snprintf(got + n, sizeof(got) - (size_t)n, "]");
        return bllm_fail(BLLM_ERR_FORMAT, "tensor '%s' has shape %s, hyperparameters imply %s",
                         name, got, want);
    }
    return BLLM_OK;
}

/* Every tensor a Llama model needs, with the shapes the hyperparameters
 * imply; catching a mismatch here names the culprit before hours of work. */
static bllm_status validate(bllm_source *s) {
    const bllm_llama_hparams *hp = &s->hp;
    bllm_status st = bllm_llama_hparams_check(hp);
    if (st != BLLM_OK)
        return st;
    int64_t dim = hp->dim, ff = hp->hidden_dim, V = hp->n_vocab;
    int64_t q = (int64_t)hp->n_heads * hp->head_dim, kv = (int64_t)hp->n_kv_heads * hp->head_dim;
    if ((st = expect_shape(s, "token_embd.weight", true, 2, V, dim)) ||
        (st = expect_shape(s, "output.weight", false, 2, V, dim)) ||
        (st = expect_shape(s, "output_norm.weight", true, 1, dim, 0)))
        return st;
    for (uint32_t l = 0; l < hp->n_layers; l++) {
        static const struct {
            const char *n;
            int nd;
            int r, c; /* 0 dim, 1 q, 2 kv, 3 ff */
        } spec[] = {
            {"attn_norm", 1, 0, 0}, {"attn_q", 2, 1, 0},   {"attn_k", 2, 2, 0},
            {"attn_v", 2, 2, 0},    {"attn_output", 2, 0, 1}, {"ffn_norm", 1, 0, 0},
            {"ffn_gate", 2, 3, 0},  {"ffn_up", 2, 3, 0},   {"ffn_down", 2, 0, 3},
        };
        for (size_t k = 0; k < sizeof(spec) / sizeof(spec[0]); k++) {
            int64_t sz[4] = {dim, q, kv, ff};
            char name[96];
            snprintf(name, sizeof(name), "blk.%u.%s.weight", l, spec[k].n);
            if ((st = expect_shape(s, name, true, spec[k].nd, sz[spec[k].r], sz[spec[k].c])))
                return st;
        }
    }
    if ((st = bllm_tokenizer_spec_check(&s->tok)))
        return st;
    if (s->tok.n_vocab > hp->n_vocab)
        return bllm_fail(BLLM_ERR_FORMAT,
                         "the tokenizer has %u tokens but the embedding only %u rows",
                         s->tok.n_vocab, hp->n_vocab);
    int32_t ids[] = {s->tok.bos_id, s->tok.eos_id, s->tok.unk_id, s->tok.pad_id, s->tok.eot_id};
    static const char *idn[] = {"bos", "eos", "unk", "pad", "eot"};
    for (int k = 0; k < 5; k++)
        if (ids[k] < -1 || ids[k] >= (int32_t)s->tok.n_vocab)
            return bllm_fail(BLLM_ERR_FORMAT, "tokenizer %s id %d is outside the vocabulary (%u)",
                             idn[k], ids[k], s->tok.n_vocab);
    return BLLM_OK;
}

/* ------------------------------------------------------------- open/close */

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bllm_status detect(const char *path, bllm_source_kind *kind) {
    struct stat st;
    if (stat(path, &st) != 0)
        return bllm_fail(BLLM_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        *kind = BLLM_SOURCE_HF;
        return BLLM_OK;
    }
    FILE *f;
    bllm_status s = bllm_fopen_input(path, "checkpoint", &f);
    if (s)
        return s;
    char magic[8] = {0};
    size_t n = fread(magic, 1, 8, f);
    fclose(f);
    if (n == 8 && memcmp(magic, "BLLMSTB\0", 8) == 0)
        return bllm_fail(BLLM_ERR_FORMAT, "%s is already a .stb model, not a checkpoint to import", path);
    *kind = (n >= 4 && memcmp(magic, "GGUF", 4) == 0) ? BLLM_SOURCE_GGUF : BLLM_SOURCE_LLAMA2C;
    return BLLM_OK;
}

bllm_status bllm_source_open(const char *path, bllm_source_kind kind,
                             const char *tokenizer_path, bllm_source **out) {
    if (!out)
        return bllm_fail(BLLM_ERR_ARG, "bllm_source_open: out is NULL");
    *out = NULL;
    if (!path || !*path)
        return bllm_fail(BLLM_ERR_ARG, "bllm_source_open: no path given");
    bllm_status st;
    bool auto_kind = kind == BLLM_SOURCE_AUTO;
    if (auto_kind && (st = detect(path, &kind)) != BLLM_OK)
        return st;
    if (kind == BLLM_SOURCE_HF && !is_dir(path))
        return bllm_fail(BLLM_ERR_ARG, "'%s' is not a directory (an HF checkpoint is a folder "
                         "with config.json and *.safetensors)", path);
    size_t plen = strlen(path);
    if (auto_kind && kind == BLLM_SOURCE_LLAMA2C &&
        ((plen >= 12 && strcmp(path + plen - 12, ".safetensors") == 0) ||
         (plen >= 5 && strcmp(path + plen - 5, ".json") == 0)))
        return bllm_fail(BLLM_ERR_ARG, "'%s' is one file of an HF checkpoint: pass its folder", path);
    if (kind == BLLM_SOURCE_LLAMA2C && (!tokenizer_path || !*tokenizer_path))
        return bllm_fail(BLLM_ERR_ARG,
                         "'%s' %s a llama2.c checkpoint, which needs its tokenizer.bin "
                         "(tokenizer path)", path, auto_kind ? "is neither GGUF nor a folder, so it is read as" : "is");

    bllm_source *s = calloc(1, sizeof(*s));
    if (!s)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    s->kind = kind;
    switch (kind) {
    case BLLM_SOURCE_GGUF: st = bllm_source_open_gguf(path, s); break;
    case BLLM_SOURCE_HF: st = bllm_source_open_hf(path, s); break;
    case BLLM_SOURCE_LLAMA2C: st = bllm_source_open_llama2c(path, tokenizer_path, s); break;
    default: st = bllm_fail(BLLM_ERR_ARG, "unknown source kind %d", (int)kind); break;
    }
    if (st == BLLM_OK)
        st = validate(s);
    if (st != BLLM_OK) {
        bllm_source_close(s);
        return st;
    }
    *out = s;
    return BLLM_OK;
}

void bllm_source_close(bllm_source *s) {
    if (!s)
        return;
    if (s->ops && s->ops->close)
        s->ops->close(s);
    free(s->tensors);
    for (int i = 0; i < s->n_files; i++)
        free(s->files[i]);
    free(s->files);
    bllm_tokenizer_spec_buf_free(&s->tok_buf);
    bllm_arena_free(&s->arena);
    free(s);
}

bllm_source_kind bllm_source_get_kind(const bllm_source *s) { return s->kind; }
const bllm_llama_hparams *bllm_source_hparams(const bllm_source *s) { return &s->hp; }
const bllm_tokenizer_spec *bllm_source_tokenizer(const bllm_source *s) { return &s->tok; }
const char *bllm_source_chat_template(const bllm_source *s) { return s->chat_template; }
int bllm_source_n_tensors(const bllm_source *s) { return s->n_tensors; }

const bllm_source_tensor *bllm_source_tensor_at(const bllm_source *s, int i) {
    return (i >= 0 && i < s->n_tensors) ? &s->tensors[i] : NULL;
}

bllm_status bllm_source_read_f32(bllm_source *s, int i, float *out) {
    if (!s || !out || i < 0 || i >= s->n_tensors)
        return bllm_fail(BLLM_ERR_ARG, "bllm_source_read_f32: bad tensor index %d", i);
    return s->ops->read_f32(s, i, out);
}

/* ------------------------------------------------------------- provenance */

static const char *base_name(const char *p) {
    const char *b = strrchr(p, '/');
    return b ? b + 1 : p;
}

static int cmp_base(const void *a, const void *b) {
    return strcmp(base_name(*(char *const *)a), base_name(*(char *const *)b));
}

/* One file: its plain SHA-256 (what sha256sum prints). Several: SHA-256 of
 * the sha256sum-style manifest "<hex>  <basename>\n", lines sorted by
 * basename in byte order — reproducible with sha256sum | sha256sum. Lazy
 * because hashing a large checkpoint takes a while and not every user of a
 * source needs it; not thread-safe on the first call. */
const char *bllm_source_sha256(const bllm_source *cs) {
    bllm_source *s = (bllm_source *)cs;
    if (s->sha_done)
        return s->sha256;
    if (s->n_files == 0) {
        bllm_fail(BLLM_ERR_ARG, "source has no files to hash");
        return NULL;
    }
    if (s->n_files == 1) {
        if (bllm_sha256_file(s->files[0], s->sha256) != BLLM_OK)
            return NULL;
    } else {
        char **sorted = malloc((size_t)s->n_files * sizeof(*sorted));
        size_t cap = 0;
        for (int i = 0; i < s->n_files; i++)
            cap += 64 + 2 + strlen(base_name(s->files[i])) + 1;
        char *man = malloc(cap + 1);
        if (!sorted || !man) {
            free(sorted);
            free(man);
            bllm_fail(BLLM_ERR_NOMEM, "out of memory");
            return NULL;
        }
        memcpy(sorted, s->files, (size_t)s->n_files * sizeof(*sorted));
        qsort(sorted, (size_t)s->n_files, sizeof(*sorted), cmp_base);
        size_t len = 0;
        bllm_status st = BLLM_OK;
        for (int i = 0; i < s->n_files && st == BLLM_OK; i++) {
            char hex[65];
            st = bllm_sha256_file(sorted[i], hex);
            if (st == BLLM_OK)
                len += (size_t)sprintf(man + len, "%s  %s\n", hex, base_name(sorted[i]));
        }
        if (st == BLLM_OK)
            st = bllm_sha256_buf(man, len, s->sha256);
        free(sorted);
        free(man);
        if (st != BLLM_OK)
            return NULL;
    }
    s->sha_done = true;
    return s->sha256;
}
