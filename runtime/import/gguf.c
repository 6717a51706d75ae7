/* GGUF v2/v3 reader. The whole header is parsed and bounds-checked at open
 * (counts against the bytes that remain, string lengths, tensor shapes,
 * offsets, alignment, overlaps), so a truncated or corrupt file fails with
 * a message naming what is wrong instead of reading past the mapping. */
#include "runtime/import/gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_MAX_DIMS 4u

typedef struct {
    const uint8_t *base;
    uint64_t size, pos;
    const char *path;
} cursor;

static bllm_status truncated(const cursor *c, const char *what) {
    return bllm_fail(BLLM_ERR_FORMAT, "'%s': truncated GGUF (reading %s at byte %llu of %llu)",
                     c->path, what, (unsigned long long)c->pos, (unsigned long long)c->size);
}

static bllm_status rd(cursor *c, void *dst, uint64_t n, const char *what) {
    if (c->size - c->pos < n)
        return truncated(c, what);
    memcpy(dst, c->base + c->pos, n);
    c->pos += n;
    return BLLM_OK;
}

static bllm_status skip(cursor *c, uint64_t n, const char *what) {
    if (c->size - c->pos < n)
        return truncated(c, what);
    c->pos += n;
    return BLLM_OK;
}

/* A string: u64 length + bytes. */
static bllm_status rd_str(cursor *c, const char **s, uint64_t *len, const char *what) {
    *len = 0;
    bllm_status st = rd(c, len, 8, what);
    if (st != BLLM_OK)
        return st;
    if (c->size - c->pos < *len)
        return bllm_fail(BLLM_ERR_FORMAT, "'%s': truncated or corrupt GGUF: %s has length %llu, "
                         "past the end of the file", c->path, what, (unsigned long long)*len);
    *s = (const char *)c->base + c->pos;
    c->pos += *len;
    return BLLM_OK;
}

static uint64_t scalar_size(uint32_t t) {
    switch (t) {
    case BLLM_GGUF_UINT8: case BLLM_GGUF_INT8: case BLLM_GGUF_BOOL: return 1;
    case BLLM_GGUF_UINT16: case BLLM_GGUF_INT16: return 2;
    case BLLM_GGUF_UINT32: case BLLM_GGUF_INT32: case BLLM_GGUF_FLOAT32: return 4;
    case BLLM_GGUF_UINT64: case BLLM_GGUF_INT64: case BLLM_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

static bllm_status parse_kv(cursor *c, bllm_gguf_kv *kv, uint64_t idx) {
    char what[64];
    snprintf(what, sizeof(what), "metadata key #%llu", (unsigned long long)idx);
    bllm_status st = rd_str(c, &kv->key, &kv->key_len, what);
    if (st != BLLM_OK)
        return st;
    if (kv->key_len == 0)
        return bllm_fail(BLLM_ERR_FORMAT, "'%s': metadata key #%llu is empty", c->path,
                         (unsigned long long)idx);
    int kl = kv->key_len > 200 ? 200 : (int)kv->key_len;
    if ((st = rd(c, &kv->type, 4, "a metadata type")) != BLLM_OK)
        return st;
    kv->val = c->base + c->pos;
    if (kv->type == BLLM_GGUF_STRING) {
        const char *s;
        uint64_t len;
        return rd_str(c, &s, &len, "a metadata string");
    }
    if (kv->type != BLLM_GGUF_ARRAY) {
        uint64_t n = scalar_size(kv->type);
        if (!n)
            return bllm_fail(BLLM_ERR_FORMAT, "'%s': metadata '%.*s' has unknown type %u",
                             c->path, kl, kv->key, kv->type);
        return skip(c, n, "a metadata value");
    }
    if ((st = rd(c, &kv->arr_type, 4, "an array type")) != BLLM_OK ||
        (st = rd(c, &kv->arr_n, 8, "an array length")) != BLLM_OK)
        return st;
    kv->val = c->base + c->pos;
    uint64_t left = c->size - c->pos;
    if (kv->arr_type == BLLM_GGUF_STRING) {
        /* Each element needs at least its 8-byte length: bound the count
         * before allocating for it. */
        if (kv->arr_n > left / 8)
            return bllm_fail(BLLM_ERR_FORMAT, "'%s': truncated or corrupt GGUF: array '%.*s' "
                             "claims %llu strings, more than the file can hold", c->path, kl, kv->key,
                             (unsigned long long)kv->arr_n);
        kv->str_off = malloc((kv->arr_n ? kv->arr_n : 1) * sizeof(uint64_t));
        if (!kv->str_off)
            return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
        uint64_t start = c->pos;
        for (uint64_t i = 0; i < kv->arr_n; i++) {
            kv->str_off[i] = c->pos - start;
            const char *s;
            uint64_t len;
            if ((st = rd_str(c, &s, &len, "an array string")) != BLLM_OK)
                return st;
        }
        return BLLM_OK;
    }
    if (kv->arr_type == BLLM_GGUF_ARRAY)
        return bllm_fail(BLLM_ERR_UNSUPPORTED, "'%s': metadata '%.*s' is an array of arrays",
                         c->path, kl, kv->key);
    uint64_t es = scalar_size(kv->arr_type);
    if (!es)
        return bllm_fail(BLLM_ERR_FORMAT, "'%s': array '%.*s' has unknown element type %u",
                         c->path, kl, kv->key, kv->arr_type);
    if (kv->arr_n > left / es)
        return bllm_fail(BLLM_ERR_FORMAT, "'%s': truncated or corrupt GGUF: array '%.*s' "
                         "(%llu elements) runs past the end of the file", c->path, kl, kv->key, (unsigned long long)kv->arr_n);
    c->pos += kv->arr_n * es;
    return BLLM_OK;
}

static bllm_status parse_tensor(cursor *c, bllm_gguf_tensor *t, uint64_t idx) {
    char what[64];
    snprintf(what, sizeof(what), "the name of tensor #%llu", (unsigned long long)idx);
    const char *name = NULL;
    uint64_t len = 0;
    bllm_status st = rd_str(c, &name, &len, what);
    if (st != BLLM_OK)
        return st;
    if (len == 0 || len >= sizeof(t->name) || memchr(name, 0, len))
        return bllm_fail(BLLM_ERR_FORMAT, "'%s': tensor #%llu has an invalid name (length %llu)",
                         c->path, (unsigned long long)idx, (unsigned long long)len);
    memcpy(t->name, name, len);
    t->name[len] = '\0';
    if ((st = rd(c, &t->n_dims, 4, "tensor dimensions")) != BLLM_OK)
        return st;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return bllm_fail(BLLM_ERR_FORMAT, "'%s': tensor '%s' has %u dimensions (1 to 4 allowed)",
                         c->path, t->name, t->n_dims);
    uint64_t numel = 1;
    for (uint32_t i = 0; i < GGUF_MAX_DIMS; i++) {
        uint64_t ne = 1;
        if (i < t->n_dims && (st = rd(c, &ne, 8, "a tensor dimension")) != BLLM_OK)
            return st;
        /* 2^40 per axis and 2^50 in all is far beyond any real model yet
         * keeps every product below overflow. */
        if (ne == 0 || ne > ((uint64_t)1 << 40) || numel > (((uint64_t)1 << 50) / ne))
            return bllm_fail(BLLM_ERR_FORMAT, "'%s': tensor '%s' has an invalid dimension %llu",
                             c->path, t->name, (unsigned long long)ne);
        t->ne[i] = (int64_t)ne;
        numel *= ne;
    }
    if ((st = rd(c, &t->type, 4, "a tensor type")) != BLLM_OK ||
        (st = rd(c, &t->offset, 8, "a tensor offset")) != BLLM_OK)
        return st;
    uint32_t be, bb;
    if (!bllm_ggml_type_size(t->type, &be, &bb))
        return bllm_fail(BLLM_ERR_UNSUPPORTED, "'%s': tensor '%s' has unknown GGML type id %u",
                         c->path, t->name, t->type);
    if (t->ne[0] % be)
        return bllm_fail(BLLM_ERR_FORMAT, "'%s': tensor '%s' row of %lld is not a multiple of "
                         "the %s block size %u", c->path, t->name, (long long)t->ne[0],
                         bllm_ggml_type_name(t->type), be);
    t->nbytes = numel / be * bb;
    return BLLM_OK;
}

static int cmp_off(const void *a, const void *b) {
    const bllm_gguf_tensor *x = *(const bllm_gguf_tensor *const *)a;
    const bllm_gguf_tensor *y = *(const bllm_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int cmp_name(const void *a, const void *b) {
    const bllm_gguf_tensor *x = *(const bllm_gguf_tensor *const *)a;
    const bllm_gguf_tensor *y = *(const bllm_gguf_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static bool key_eq(const bllm_gguf_kv *kv, const char *key, size_t n) {
    return kv->key_len == n && memcmp(kv->key, key, n) == 0;
}

static bllm_status check_layout(bllm_gguf *g, const char *path) {
    if (g->n_tensors == 0)
        return BLLM_OK;
    bllm_gguf_tensor **v = malloc(g->n_tensors * sizeof(*v));
    if (!v)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    for (uint64_t i = 0; i < g->n_tensors; i++)
        v[i] = &g->tensors[i];
    bllm_status st = BLLM_OK;
    qsort(v, g->n_tensors, sizeof(*v), cmp_name);
    for (uint64_t i = 1; i < g->n_tensors && st == BLLM_OK; i++)
        if (strcmp(v[i - 1]->name, v[i]->name) == 0)
            st = bllm_fail(BLLM_ERR_FORMAT, "'%s': tensor '%s' appears twice", path, v[i]->name);
    qsort(v, g->n_tensors, sizeof(*v), cmp_off);
    for (uint64_t i = 1; i < g->n_tensors && st == BLLM_OK; i++)
        if (v[i - 1]->offset + v[i - 1]->nbytes > v[i]->offset)
            st = bllm_fail(BLLM_ERR_FORMAT, "'%s': tensors '%s' and '%s' overlap", path,
                           v[i - 1]->name, v[i]->name);
    free(v);
    return st;
}

static int cmp_key(const void *a, const void *b) {
    const bllm_gguf_kv *x = *(const bllm_gguf_kv *const *)a;
    const bllm_gguf_kv *y = *(const bllm_gguf_kv *const *)b;
    uint64_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int r = memcmp(x->key, y->key, n);
    if (r)
        return r;
    return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

/* Sorting rather than comparing all pairs keeps a hostile file with
 * millions of keys from taking quadratic time. */
static bllm_status check_keys(bllm_gguf *g, const char *path) {
    if (g->n_kv < 2)
        return BLLM_OK;
    const bllm_gguf_kv **v = malloc(g->n_kv * sizeof(*v));
    if (!v)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    for (uint64_t i = 0; i < g->n_kv; i++)
        v[i] = &g->kv[i];
    qsort(v, g->n_kv, sizeof(*v), cmp_key);
    bllm_status st = BLLM_OK;
    for (uint64_t i = 1; i < g->n_kv && st == BLLM_OK; i++)
        if (cmp_key(&v[i - 1], &v[i]) == 0) {
            int kl = v[i]->key_len > 200 ? 200 : (int)v[i]->key_len;
            st = bllm_fail(BLLM_ERR_FORMAT, "'%s': metadata key '%.*s' appears twice", path, kl,
                           v[i]->key);
        }
    free(v);
    return st;
}

void bllm_gguf_close(bllm_gguf *g) {
    if (!g)
        return;
    if (g->kv)
        for (uint64_t i = 0; i < g->n_kv; i++)
            free(g->kv[i].str_off);
    free(g->kv);
    free(g->tensors);
    bllm_unmap_file(&g->map);
    free(g);
}

bllm_status bllm_gguf_open(const char *path, bllm_gguf **out) {
    *out = NULL;
    bllm_gguf *g = calloc(1, sizeof(*g));
    if (!g)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    bllm_status st = bllm_map_file(path, &g->map);
    if (st != BLLM_OK) {
        free(g);
        return st;
    }
    cursor c = {g->map.data, g->map.size, 0, path};
    char magic[4] = {0};
    if ((st = rd(&c, magic, 4, "the magic")) != BLLM_OK)
        goto fail;
    if (memcmp(magic, "GGUF", 4) != 0) {
        st = bllm_fail(BLLM_ERR_FORMAT, "'%s' is not a GGUF file (bad magic)", path);
        goto fail;
    }
    if ((st = rd(&c, &g->version, 4, "the version")) != BLLM_OK)
        goto fail;
    if (g->version != 2 && g->version != 3) {
        if (g->version && (g->version & 0xFFFF) == 0)
            st = bllm_fail(BLLM_ERR_UNSUPPORTED, "'%s' is a big-endian GGUF file", path);
        else
            st = bllm_fail(BLLM_ERR_UNSUPPORTED, "'%s': GGUF version %u is not supported "
                           "(2 and 3 are)", path, g->version);
        goto fail;
    }
    uint64_t n_tensors = 0, n_kv = 0;
    if ((st = rd(&c, &n_tensors, 8, "the tensor count")) != BLLM_OK ||
        (st = rd(&c, &n_kv, 8, "the metadata count")) != BLLM_OK)
        goto fail;
    /* A key needs >= 13 bytes (length, one char, type) and a tensor info
     * >= 33 (length, one char, n_dims, one dim, type, offset). */
    uint64_t left = c.size - c.pos;
    if (n_kv > left / 13 || n_tensors > left / 33) {
        st = bllm_fail(BLLM_ERR_FORMAT, "'%s': truncated or corrupt GGUF: absurd counts (%llu "
                       "tensors, %llu metadata keys) for a %llu-byte file", path, (unsigned long long)n_tensors,
                       (unsigned long long)n_kv, (unsigned long long)c.size);
        goto fail;
    }
    g->kv = calloc(n_kv ? n_kv : 1, sizeof(*g->kv));
    g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof(*g->tensors));
    if (!g->kv || !g->tensors) {
        st = bllm_fail(BLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (uint64_t i = 0; i < n_kv; i++) {
        g->n_kv = i + 1; /* so close() frees what this entry allocated */
        if ((st = parse_kv(&c, &g->kv[i], i)) != BLLM_OK)
            goto fail;
    }
    if ((st = check_keys(g, path)) != BLLM_OK)
        goto fail;
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const bllm_gguf_kv *al = bllm_gguf_find(g, "general.alignment");
    if (al) {
        uint32_t a;
        if (al->type != BLLM_GGUF_UINT32) {
            st = bllm_fail(BLLM_ERR_FORMAT, "'%s': general.alignment is not a uint32", path);
            goto fail;
        }
        memcpy(&a, al->val, 4);
        if (a == 0 || (a & (a - 1)) || a > (1u << 20)) {
            st = bllm_fail(BLLM_ERR_FORMAT, "'%s': general.alignment %u is not a power of two",
                           path, a);
            goto fail;
        }
        g->alignment = a;
    }
    for (uint64_t i = 0; i < n_tensors; i++) {
        g->n_tensors = i + 1;
        if ((st = parse_tensor(&c, &g->tensors[i], i)) != BLLM_OK)
            goto fail;
    }
    g->n_tensors = n_tensors;
    uint64_t data = (c.pos + g->alignment - 1) / g->alignment * g->alignment;
    if (n_tensors && data > c.size) {
        st = truncated(&c, "the padding before tensor data");
        goto fail;
    }
    g->data_offset = data;
    uint64_t avail = c.size > data ? c.size - data : 0;
    for (uint64_t i = 0; i < n_tensors; i++) {
        bllm_gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment) {
            st = bllm_fail(BLLM_ERR_FORMAT, "'%s': tensor '%s' offset %llu is not aligned to %u",
                           path, t->name, (unsigned long long)t->offset, g->alignment);
            goto fail;
        }
        if (t->offset > avail || t->nbytes > avail - t->offset) {
            st = bllm_fail(BLLM_ERR_FORMAT, "'%s': tensor '%s' (%llu bytes at offset %llu) lies "
                           "beyond the end of the file (truncated?)", path, t->name,
                           (unsigned long long)t->nbytes, (unsigned long long)t->offset);
            goto fail;
        }
        t->data = g->map.data + data + t->offset;
    }
    if ((st = check_layout(g, path)) != BLLM_OK)
        goto fail;
    *out = g;
    return BLLM_OK;
fail:
    bllm_gguf_close(g);
    return st;
}

const bllm_gguf_kv *bllm_gguf_find(const bllm_gguf *g, const char *key) {
    size_t n = strlen(key);
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (key_eq(&g->kv[i], key, n))
            return &g->kv[i];
    return NULL;
}

const bllm_gguf_tensor *bllm_gguf_find_tensor(const bllm_gguf *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0)
            return &g->tensors[i];
    return NULL;
}

static bllm_status wrong_type(const char *key, const char *want) {
    return bllm_fail(BLLM_ERR_FORMAT, "GGUF metadata '%s' is not %s", key, want);
}

bllm_status bllm_gguf_get_i64(const bllm_gguf *g, const char *key, int64_t *v) {
    const bllm_gguf_kv *kv = bllm_gguf_find(g, key);
    if (!kv)
        return BLLM_ERR_NOT_FOUND;
    const uint8_t *p = kv->val;
    switch (kv->type) {
    case BLLM_GGUF_UINT8: *v = p[0]; return BLLM_OK;
    case BLLM_GGUF_INT8: *v = (int8_t)p[0]; return BLLM_OK;
    case BLLM_GGUF_UINT16: { uint16_t x; memcpy(&x, p, 2); *v = x; return BLLM_OK; }
    case BLLM_GGUF_INT16: { int16_t x; memcpy(&x, p, 2); *v = x; return BLLM_OK; }
    case BLLM_GGUF_UINT32: { uint32_t x; memcpy(&x, p, 4); *v = x; return BLLM_OK; }
    case BLLM_GGUF_INT32: { int32_t x; memcpy(&x, p, 4); *v = x; return BLLM_OK; }
    case BLLM_GGUF_INT64: { int64_t x; memcpy(&x, p, 8); *v = x; return BLLM_OK; }
    case BLLM_GGUF_UINT64: {
        uint64_t x;
        memcpy(&x, p, 8);
        if (x > (uint64_t)INT64_MAX)
            return bllm_fail(BLLM_ERR_FORMAT, "GGUF metadata '%s' is out of range", key);
        *v = (int64_t)x;
        return BLLM_OK;
    }
    default: return wrong_type(key, "an integer");
    }
}

bllm_status bllm_gguf_get_u32(const bllm_gguf *g, const char *key, uint32_t *v) {
    int64_t x;
    bllm_status st = bllm_gguf_get_i64(g, key, &x);
    if (st != BLLM_OK)
        return st;
    if (x < 0 || x > (int64_t)UINT32_MAX)
        return bllm_fail(BLLM_ERR_FORMAT, "GGUF metadata '%s' = %lld is out of range", key,
                         (long long)x);
    *v = (uint32_t)x;
    return BLLM_OK;
}

bllm_status bllm_gguf_get_f32(const bllm_gguf *g, const char *key, float *v) {
    const bllm_gguf_kv *kv = bllm_gguf_find(g, key);
    if (!kv)
        return BLLM_ERR_NOT_FOUND;
    if (kv->type == BLLM_GGUF_FLOAT32) {
        memcpy(v, kv->val, 4);
        return BLLM_OK;
    }
    if (kv->type == BLLM_GGUF_FLOAT64) {
        double d;
        memcpy(&d, kv->val, 8);
        *v = (float)d;
        return BLLM_OK;
    }
    return wrong_type(key, "a float");
}

bllm_status bllm_gguf_get_bool(const bllm_gguf *g, const char *key, bool *v) {
    const bllm_gguf_kv *kv = bllm_gguf_find(g, key);
    if (!kv)
        return BLLM_ERR_NOT_FOUND;
    if (kv->type != BLLM_GGUF_BOOL)
        return wrong_type(key, "a bool");
    *v = kv->val[0] != 0;
    return BLLM_OK;
}

bllm_status bllm_gguf_get_str(const bllm_gguf *g, const char *key, const char **s, uint64_t *len) {
    const bllm_gguf_kv *kv = bllm_gguf_find(g, key);
    if (!kv)
        return BLLM_ERR_NOT_FOUND;
    if (kv->type != BLLM_GGUF_STRING)
        return wrong_type(key, "a string");
    memcpy(len, kv->val, 8);
    *s = (const char *)kv->val + 8;
    return BLLM_OK;
}

bllm_status bllm_gguf_get_arr(const bllm_gguf *g, const char *key, uint32_t elem_type,
                              const bllm_gguf_kv **out) {
    const bllm_gguf_kv *kv = bllm_gguf_find(g, key);
    if (!kv)
        return BLLM_ERR_NOT_FOUND;
    if (kv->type != BLLM_GGUF_ARRAY || kv->arr_type != elem_type)
        return wrong_type(key, "an array of the expected element type");
    *out = kv;
    return BLLM_OK;
}

void bllm_gguf_arr_str(const bllm_gguf_kv *kv, uint64_t i, const char **s, uint64_t *len) {
    const uint8_t *p = kv->val + kv->str_off[i];
    memcpy(len, p, 8);
    *s = (const char *)p + 8;
}
