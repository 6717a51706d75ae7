/* safetensors reader: u64 header length, a JSON header mapping names to
 * {dtype, shape, data_offsets} (relative to the end of the header), then
 * the data. Everything the header claims is checked against the file. */
#include "runtime/import/safetensors.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/format/types.h"

/* Headers of real checkpoints are well under a few MiB. */
#define ST_MAX_HEADER ((uint64_t)256 << 20)

static const struct {
    const char *name;
    unsigned size;
} dtypes[] = {
    [BLLM_ST_BOOL] = {"BOOL", 1},    [BLLM_ST_U8] = {"U8", 1},
    [BLLM_ST_I8] = {"I8", 1},        [BLLM_ST_F8_E4M3] = {"F8_E4M3", 1},
    [BLLM_ST_F8_E5M2] = {"F8_E5M2", 1}, [BLLM_ST_I16] = {"I16", 2},
    [BLLM_ST_U16] = {"U16", 2},      [BLLM_ST_F16] = {"F16", 2},
    [BLLM_ST_BF16] = {"BF16", 2},    [BLLM_ST_I32] = {"I32", 4},
    [BLLM_ST_U32] = {"U32", 4},      [BLLM_ST_F32] = {"F32", 4},
    [BLLM_ST_I64] = {"I64", 8},      [BLLM_ST_U64] = {"U64", 8},
    [BLLM_ST_F64] = {"F64", 8},
};

const char *bllm_st_dtype_name(bllm_st_dtype t) {
    return (unsigned)t < sizeof(dtypes) / sizeof(dtypes[0]) ? dtypes[t].name : "?";
}

static int cmp_tensor(const void *a, const void *b) {
    return strcmp(((const bllm_st_tensor *)a)->name, ((const bllm_st_tensor *)b)->name);
}

static int cmp_ptr(const void *a, const void *b) {
    const bllm_st_tensor *x = *(const bllm_st_tensor *const *)a;
    const bllm_st_tensor *y = *(const bllm_st_tensor *const *)b;
    return x->data < y->data ? -1 : x->data > y->data;
}

/* A JSON number that is a non-negative integer exactly. */
static bool json_u64(const cJSON *j, uint64_t max, uint64_t *v) {
    if (!cJSON_IsNumber(j))
        return false;
    double d = j->valuedouble;
    if (!(d >= 0) || d > (double)max || d != floor(d))
        return false;
    *v = (uint64_t)d;
    return true;
}

static bllm_status parse_entry(const char *path, const cJSON *e, const uint8_t *data,
                               uint64_t data_len, bllm_st_tensor *t) {
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return bllm_fail(BLLM_ERR_FORMAT, "'%s': header entry '%s' is not an object", path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off) ||
        cJSON_GetArraySize(off) != 2)
        return bllm_fail(BLLM_ERR_FORMAT, "'%s': tensor '%s' lacks dtype, shape or data_offsets",
                         path, name);
    int k = -1;
    for (unsigned i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]); i++)
        if (strcmp(dt->valuestring, dtypes[i].name) == 0)
            k = (int)i;
    if (k < 0)
        return bllm_fail(BLLM_ERR_UNSUPPORTED, "'%s': tensor '%s' has unknown dtype '%.16s'", path,
                         name, dt->valuestring);
    t->dtype = (bllm_st_dtype)k;
    int nd = cJSON_GetArraySize(sh);
    if (nd > BLLM_ST_MAX_DIMS)
        return bllm_fail(BLLM_ERR_UNSUPPORTED, "'%s': tensor '%s' has %d dimensions", path, name, nd);
    t->ndim = nd;
    uint64_t numel = 1;
    for (int i = 0; i < nd; i++) {
        uint64_t d;
        if (!json_u64(cJSON_GetArrayItem(sh, i), (double)((uint64_t)1 << 40), &d) ||
            (d && numel > ((uint64_t)1 << 50) / d))
            return bllm_fail(BLLM_ERR_FORMAT, "'%s': tensor '%s' has an invalid shape", path, name);
        t->shape[i] = (int64_t)d;
        numel *= d;
    }
    t->numel = numel;
    uint64_t b, en;
    if (!json_u64(cJSON_GetArrayItem(off, 0), UINT64_MAX / 2, &b) ||
        !json_u64(cJSON_GetArrayItem(off, 1), UINT64_MAX / 2, &en) || b > en)
        return bllm_fail(BLLM_ERR_FORMAT, "'%s': tensor '%s' has invalid data_offsets", path, name);
    if (en > data_len)
        return bllm_fail(BLLM_ERR_FORMAT, "'%s': tensor '%s' (bytes %llu..%llu) lies beyond the "
                         "end of the file (truncated?)", path, name, (unsigned long long)b,
                         (unsigned long long)en);
    if (en - b != numel * dtypes[k].size)
        return bllm_fail(BLLM_ERR_FORMAT, "'%s': tensor '%s' has %llu bytes, its shape and dtype "
                         "need %llu", path, name, (unsigned long long)(en - b),
                         (unsigned long long)(numel * dtypes[k].size));
    t->data = data + b;
    t->nbytes = en - b;
    return BLLM_OK;
}

static bllm_status parse_file(bllm_safetensors *st, const char *path, const bllm_mapped *m) {
    if (m->size < 8)
        return bllm_fail(BLLM_ERR_FORMAT, "'%s' is too short to be a safetensors file", path);
    uint64_t hlen;
    memcpy(&hlen, m->data, 8);
    if (hlen < 2 || hlen > ST_MAX_HEADER || hlen > m->size - 8)
        return bllm_fail(BLLM_ERR_FORMAT, "'%s': not a safetensors file or truncated (header "
                         "length %llu, file %zu bytes)", path, (unsigned long long)hlen, m->size);
    if (m->data[8] != '{')
        return bllm_fail(BLLM_ERR_FORMAT, "'%s': the safetensors header is not a JSON object", path);
    cJSON *root = cJSON_ParseWithLength((const char *)m->data + 8, (size_t)hlen);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return bllm_fail(BLLM_ERR_FORMAT, "'%s': the safetensors header is not valid JSON", path);
    }
    const uint8_t *data = m->data + 8 + hlen;
    uint64_t data_len = m->size - 8 - hlen;
    int n = 0;
    for (const cJSON *e = root->child; e; e = e->next)
        n += strcmp(e->string, "__metadata__") != 0;
    bllm_st_tensor *t = realloc(st->tensors, (size_t)(st->n_tensors + n + 1) * sizeof(*t));
    if (!t) {
        cJSON_Delete(root);
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    }
    st->tensors = t;
    bllm_status s = BLLM_OK;
    for (const cJSON *e = root->child; e && s == BLLM_OK; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0)
            continue;
        bllm_st_tensor *x = &st->tensors[st->n_tensors];
        memset(x, 0, sizeof(*x));
        s = parse_entry(path, e, data, data_len, x);
        if (s == BLLM_OK) {
            if (!(x->name = strdup(e->string)))
                s = bllm_fail(BLLM_ERR_NOMEM, "out of memory");
            else
                st->n_tensors++;
        }
    }
    cJSON_Delete(root);
    return s;
}

void bllm_safetensors_close(bllm_safetensors *st) {
    if (!st)
        return;
    for (int i = 0; i < st->n_tensors; i++)
        free(st->tensors[i].name);
    free(st->tensors);
    for (int i = 0; i < st->n_files; i++)
        bllm_unmap_file(&st->maps[i]);
    free(st->maps);
    free(st);
}

bllm_status bllm_safetensors_open(const char *const *paths, int n_paths, bllm_safetensors **out) {
    *out = NULL;
    bllm_safetensors *st = calloc(1, sizeof(*st));
    if (!st || !(st->maps = calloc((size_t)(n_paths > 0 ? n_paths : 1), sizeof(*st->maps)))) {
        free(st);
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    }
    bllm_status s = BLLM_OK;
    for (int i = 0; i < n_paths && s == BLLM_OK; i++) {
        s = bllm_map_file(paths[i], &st->maps[i]);
        if (s == BLLM_OK) {
            st->n_files = i + 1;
            s = parse_file(st, paths[i], &st->maps[i]);
        }
    }
    if (s == BLLM_OK && st->n_tensors > 1) {
        qsort(st->tensors, (size_t)st->n_tensors, sizeof(*st->tensors), cmp_tensor);
        for (int i = 1; i < st->n_tensors && s == BLLM_OK; i++)
            if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0)
                s = bllm_fail(BLLM_ERR_FORMAT, "tensor '%s' appears twice in the safetensors files",
                              st->tensors[i].name);
        /* Overlaps: data pointers of different files never interleave, so
         * one sort by address covers them all. */
        const bllm_st_tensor **v = malloc((size_t)st->n_tensors * sizeof(*v));
        if (!v && s == BLLM_OK)
            s = bllm_fail(BLLM_ERR_NOMEM, "out of memory");
        if (v && s == BLLM_OK) {
            for (int i = 0; i < st->n_tensors; i++)
                v[i] = &st->tensors[i];
            qsort(v, (size_t)st->n_tensors, sizeof(*v), cmp_ptr);
            for (int i = 1; i < st->n_tensors && s == BLLM_OK; i++)
                if (v[i - 1]->data + v[i - 1]->nbytes > v[i]->data)
                    s = bllm_fail(BLLM_ERR_FORMAT, "safetensors tensors '%s' and '%s' overlap",
                                  v[i - 1]->name, v[i]->name);
        }
        free(v);
    }
    if (s != BLLM_OK) {
        bllm_safetensors_close(st);
        return s;
    }
    *out = st;
    return BLLM_OK;
}

const bllm_st_tensor *bllm_safetensors_find(const bllm_safetensors *st, const char *name) {
    int lo = 0, hi = st->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(st->tensors[mid].name, name);
        if (c == 0)
            return &st->tensors[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

bllm_status bllm_st_read_f32(const bllm_st_tensor *t, float *out) {
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case BLLM_ST_F32:
        memcpy(out, p, t->numel * 4);
        return BLLM_OK;
    case BLLM_ST_F16:
    case BLLM_ST_BF16:
        for (uint64_t i = 0; i < t->numel; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = t->dtype == BLLM_ST_F16 ? bllm_f16_to_f32(h) : bllm_bf16_to_f32(h);
        }
        return BLLM_OK;
    default:
        return bllm_fail(BLLM_ERR_UNSUPPORTED, "tensor '%s' has dtype %s (F32, F16 and BF16 are "
                         "supported)", t->name, bllm_st_dtype_name(t->dtype));
    }
}
