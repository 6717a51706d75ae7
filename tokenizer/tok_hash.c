/* Open-addressing hash maps for vocab (string -> id) and BPE merge
 * (id pair -> rank, result) lookups, plus the small token vector. Linear
 * probing at load factor <= 1/2 keeps lookups to a probe or two. */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "runtime/error.h"

bllm_status bllm_tokvec_push(bllm_tokvec *v, int32_t id) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 256;
        int32_t *p = realloc(v->v, cap * sizeof *p);
        if (!p) return bllm_fail(BLLM_ERR_NOMEM, "tokenizer: out of memory (%zu tokens)", cap);
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = id;
    return BLLM_OK;
}

void bllm_tokvec_free(bllm_tokvec *v) {
    free(v->v);
    v->v = NULL;
    v->n = v->cap = 0;
}

static uint64_t table_size(uint64_t n) {
    uint64_t size = 16;
    while (size < 2 * n) size *= 2;
    return size;
}

bllm_status bllm_strmap_init(bllm_strmap *m, const char *const *strs, const size_t *lens,
                             uint32_t n) {
    memset(m, 0, sizeof *m);
    uint64_t size = table_size(n);
    m->ids = malloc(size * sizeof *m->ids);
    m->hashes = malloc(size * sizeof *m->hashes);
    if (!m->ids || !m->hashes) {
        bllm_strmap_free(m);
        return bllm_fail(BLLM_ERR_NOMEM, "tokenizer: out of memory for the vocab map");
    }
    memset(m->ids, 0xff, size * sizeof *m->ids);
    m->mask = size - 1;
    m->strs = strs;
    m->lens = lens;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t h = XXH3_64bits(strs[i], lens[i]);
        uint64_t slot = h & m->mask;
        bool dup = false;
        while (m->ids[slot] >= 0) {
            int32_t o = m->ids[slot];
            if (m->hashes[slot] == (uint32_t)h && lens[o] == lens[i] &&
                memcmp(strs[o], strs[i], lens[i]) == 0) {
                dup = true;
                break;
            }
            slot = (slot + 1) & m->mask;
        }
        if (dup) continue;
        m->ids[slot] = (int32_t)i;
        m->hashes[slot] = (uint32_t)h;
    }
    return BLLM_OK;
}

int32_t bllm_strmap_get(const bllm_strmap *m, const char *s, size_t len) {
    uint64_t h = XXH3_64bits(s, len);
    uint64_t slot = h & m->mask;
    for (;;) {
        int32_t id = m->ids[slot];
        if (id < 0) return -1;
        if (m->hashes[slot] == (uint32_t)h && m->lens[id] == len &&
            memcmp(m->strs[id], s, len) == 0)
            return id;
        slot = (slot + 1) & m->mask;
    }
}

void bllm_strmap_free(bllm_strmap *m) {
    free(m->ids);
    free(m->hashes);
    memset(m, 0, sizeof *m);
}

static uint64_t mix64(uint64_t x) {
    /* splitmix64 finalizer: id pairs are dense small integers */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

bllm_status bllm_u64map_init(bllm_u64map *m, uint64_t expected) {
    memset(m, 0, sizeof *m);
    uint64_t size = table_size(expected);
    m->keys = malloc(size * sizeof *m->keys);
    m->vals = malloc(size * sizeof *m->vals);
    if (!m->keys || !m->vals) {
        bllm_u64map_free(m);
        return bllm_fail(BLLM_ERR_NOMEM, "tokenizer: out of memory for the merge map");
    }
    memset(m->keys, 0xff, size * sizeof *m->keys);
    m->mask = size - 1;
    return BLLM_OK;
}

static bllm_status u64map_grow(bllm_u64map *m) {
    bllm_u64map g;
    bllm_status st = bllm_u64map_init(&g, (m->mask + 1));
    if (st) return st;
    for (uint64_t i = 0; i <= m->mask; i++)
        if (m->keys[i] != UINT64_MAX) bllm_u64map_put(&g, m->keys[i], m->vals[i]);
    bllm_u64map_free(m);
    *m = g;
    return BLLM_OK;
}

bllm_status bllm_u64map_put(bllm_u64map *m, uint64_t key, uint64_t val) {
    if (key == UINT64_MAX) return bllm_fail(BLLM_ERR_ARG, "tokenizer: reserved map key");
    if (2 * (m->n + 1) > m->mask + 1) {
        bllm_status st = u64map_grow(m);
        if (st) return st;
    }
    uint64_t slot = mix64(key) & m->mask;
    while (m->keys[slot] != UINT64_MAX) {
        if (m->keys[slot] == key) return BLLM_OK;
        slot = (slot + 1) & m->mask;
    }
    m->keys[slot] = key;
    m->vals[slot] = val;
    m->n++;
    return BLLM_OK;
}

bool bllm_u64map_get(const bllm_u64map *m, uint64_t key, uint64_t *val) {
    uint64_t slot = mix64(key) & m->mask;
    for (;;) {
        uint64_t k = m->keys[slot];
        if (k == UINT64_MAX) return false;
        if (k == key) {
            *val = m->vals[slot];
            return true;
        }
        slot = (slot + 1) & m->mask;
    }
}

void bllm_u64map_free(bllm_u64map *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

void bllm_tok_emit(char *buf, size_t cap, size_t *off, const char *src, size_t len) {
    if (*off < cap) {
        size_t n = cap - *off < len ? cap - *off : len;
        memcpy(buf + *off, src, n);
    }
    *off += len;
}

int32_t bllm_tok_type(const bllm_tokenizer_spec *spec, int32_t id) {
    if (!spec->token_types) {
        /* no types stored: the special ids are all we know */
        if (id == spec->bos_id || id == spec->eos_id || id == spec->eot_id) return BLLM_TOKTYPE_CONTROL;
        if (id == spec->unk_id) return BLLM_TOKTYPE_UNKNOWN;
        return BLLM_TOKTYPE_NORMAL;
    }
    int32_t t = spec->token_types[id];
    return t == 0 ? BLLM_TOKTYPE_NORMAL : t;
}
