/* .stb writer. Metadata and the directory are small and kept in memory; tensor
 * data goes straight to disk at offsets fixed by write_begin(), so converting
 * a 7B model needs one tensor of memory, not the whole model. The output is
 * written to a unique temporary beside the target, synced and renamed on
 * success (runtime/file_io.h), so a crash, a signal or a second writer never
 * leaves a half-written file under the real name. */
#include "runtime/format/stb.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "runtime/error.h"
#include "runtime/file_io.h"
#include "runtime/format/stb_layout.h"

typedef struct {
    char *name;
    bllm_type type;
    int ndim;
    int64_t dims[BLLM_STB_MAX_DIMS];
    uint64_t offset, nbytes, checksum;
    bool written;
} wtensor;

struct bllm_stb_writer {
    uint8_t *meta;
    size_t meta_len, meta_cap;
    uint32_t n_meta;
    char **keys;
    wtensor *tensors;
    int n_tensors, cap_tensors;
    bllm_out_file out;
    bool open, replace;
    bllm_status (*check)(const char *path);
    uint64_t data_offset, data_bytes, dir_bytes;
    int next_tensor;
    bool failed;
};

bllm_stb_writer *bllm_stb_writer_new(void)
{
    bllm_stb_writer *w = calloc(1, sizeof(bllm_stb_writer));
    if (w) {
        w->out.fd = -1;
        w->replace = true;
    }
    return w;
}

void bllm_stb_writer_set_replace(bllm_stb_writer *w, bool replace) { w->replace = replace; }
void bllm_stb_writer_set_check(bllm_stb_writer *w, bllm_status (*check)(const char *path)) { w->check = check; }

void bllm_stb_writer_free(bllm_stb_writer *w)
{
    if (!w)
        return;
    bllm_out_discard(&w->out);
    for (uint32_t i = 0; i < w->n_meta; i++)
        free(w->keys[i]);
    free(w->keys);
    for (int i = 0; i < w->n_tensors; i++)
        free(w->tensors[i].name);
    free(w->tensors);
    free(w->meta);
    free(w);
}

static bool put(bllm_stb_writer *w, const void *p, size_t n)
{
    if (w->meta_len + n > w->meta_cap) {
        size_t cap = w->meta_cap ? w->meta_cap : 4096;
        while (cap < w->meta_len + n)
            cap *= 2;
        uint8_t *m = realloc(w->meta, cap);
        if (!m)
            return false;
        w->meta = m;
        w->meta_cap = cap;
    }
    memcpy(w->meta + w->meta_len, p, n);
    w->meta_len += n;
    return true;
}

static bllm_status begin_key(bllm_stb_writer *w, const char *key, bllm_meta_type type)
{
    size_t klen = strlen(key);
    if (w->open)
        return bllm_fail(BLLM_ERR_ARG, "metadata '%s' set after write_begin", key);
    if (klen == 0 || klen > UINT16_MAX)
        return bllm_fail(BLLM_ERR_ARG, "bad metadata key length %zu", klen);
    for (uint32_t i = 0; i < w->n_meta; i++)
        if (!strcmp(w->keys[i], key))
            return bllm_fail(BLLM_ERR_ARG, "metadata key '%s' set twice", key);
    char **keys = realloc(w->keys, (w->n_meta + 1) * sizeof *keys);
    if (!keys)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    w->keys = keys;
    if (!(keys[w->n_meta] = strdup(key)))
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    w->n_meta++;
    uint16_t kl = (uint16_t)klen;
    uint8_t t = (uint8_t)type;
    if (!put(w, &kl, 2) || !put(w, key, klen) || !put(w, &t, 1))
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    return BLLM_OK;
}

static bllm_status set_scalar(bllm_stb_writer *w, const char *key, bllm_meta_type t, const void *v, size_t n)
{
    bllm_status s = begin_key(w, key, t);
    if (s)
        return s;
    return put(w, v, n) ? BLLM_OK : bllm_fail(BLLM_ERR_NOMEM, "out of memory");
}

bllm_status bllm_stb_set_u32(bllm_stb_writer *w, const char *key, uint32_t v)
{
    return set_scalar(w, key, BLLM_META_U32, &v, 4);
}
bllm_status bllm_stb_set_i32(bllm_stb_writer *w, const char *key, int32_t v)
{
    return set_scalar(w, key, BLLM_META_I32, &v, 4);
}
bllm_status bllm_stb_set_u64(bllm_stb_writer *w, const char *key, uint64_t v)
{
    return set_scalar(w, key, BLLM_META_U64, &v, 8);
}
bllm_status bllm_stb_set_f32(bllm_stb_writer *w, const char *key, float v)
{
    return set_scalar(w, key, BLLM_META_F32, &v, 4);
}
bllm_status bllm_stb_set_bool(bllm_stb_writer *w, const char *key, bool v)
{
    uint8_t b = v;
    return set_scalar(w, key, BLLM_META_BOOL, &b, 1);
}

static bool put_str(bllm_stb_writer *w, const char *s, size_t len)
{
    if (len > UINT32_MAX)
        return false;
    uint32_t n = (uint32_t)len;
    return put(w, &n, 4) && put(w, s, len);
}

bllm_status bllm_stb_set_str(bllm_stb_writer *w, const char *key, const char *s, size_t len)
{
    bllm_status st = begin_key(w, key, BLLM_META_STR);
    if (st)
        return st;
    return put_str(w, s, len) ? BLLM_OK : bllm_fail(BLLM_ERR_NOMEM, "out of memory");
}

static bllm_status begin_array(bllm_stb_writer *w, const char *key, bllm_meta_type et, uint64_t n)
{
    bllm_status s = begin_key(w, key, BLLM_META_ARR);
    if (s)
        return s;
    uint8_t t = (uint8_t)et;
    return put(w, &t, 1) && put(w, &n, 8) ? BLLM_OK : bllm_fail(BLLM_ERR_NOMEM, "out of memory");
}

bllm_status bllm_stb_set_arr_str(bllm_stb_writer *w, const char *key, const char *const *strs,
                                 const size_t *lens, uint64_t n)
{
    bllm_status s = begin_array(w, key, BLLM_META_STR, n);
    for (uint64_t i = 0; !s && i < n; i++)
        if (!put_str(w, strs[i], lens ? lens[i] : strlen(strs[i])))
            s = bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    return s;
}

/* A numeric array: n little-endian elements of elem_bytes each. */
static bllm_status set_arr_raw(bllm_stb_writer *w, const char *key, bllm_meta_type et, const void *v, uint64_t n,
                               size_t elem_bytes)
{
    bllm_status s = begin_array(w, key, et, n);
    if (!s && n && !put(w, v, n * elem_bytes))
        s = bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    return s;
}

bllm_status bllm_stb_set_arr_f32(bllm_stb_writer *w, const char *key, const float *v, uint64_t n)
{
    return set_arr_raw(w, key, BLLM_META_F32, v, n, 4);
}

bllm_status bllm_stb_set_arr_i32(bllm_stb_writer *w, const char *key, const int32_t *v, uint64_t n)
{
    return set_arr_raw(w, key, BLLM_META_I32, v, n, 4);
}

bllm_status bllm_stb_set_arr_u32(bllm_stb_writer *w, const char *key, const uint32_t *v, uint64_t n)
{
    return set_arr_raw(w, key, BLLM_META_U32, v, n, 4);
}

bllm_status bllm_stb_set_arr_u16(bllm_stb_writer *w, const char *key, const uint16_t *v, uint64_t n)
{
    return set_arr_raw(w, key, BLLM_META_U16, v, n, 2);
}

bllm_status bllm_stb_set_arr_u8(bllm_stb_writer *w, const char *key, const uint8_t *v, uint64_t n)
{
    return set_arr_raw(w, key, BLLM_META_U8, v, n, 1);
}

int bllm_stb_add_tensor(bllm_stb_writer *w, const char *name, bllm_type type, int ndim, const int64_t *dims)
{
    if (w->open) {
        bllm_fail(BLLM_ERR_ARG, "tensor '%s' added after write_begin", name);
        return -1;
    }
    size_t nlen = strlen(name);
    if (nlen == 0 || nlen > UINT16_MAX || ndim < 1 || ndim > BLLM_STB_MAX_DIMS || !bllm_type_valid(type)) {
        bllm_fail(BLLM_ERR_ARG, "tensor '%s': bad name, type or rank", name);
        return -1;
    }
    uint64_t rows = 1;
    for (int d = 0; d + 1 < ndim; d++)
        rows *= (uint64_t)dims[d];
    for (int d = 0; d < ndim; d++)
        if (dims[d] <= 0) {
            bllm_fail(BLLM_ERR_ARG, "tensor '%s': dimension %d is %lld", name, d, (long long)dims[d]);
            return -1;
        }
    uint64_t nbytes = bllm_type_tensor_bytes(type, rows, (uint64_t)dims[ndim - 1]);
    if (!nbytes) {
        bllm_fail(BLLM_ERR_ARG, "tensor '%s': shape does not fit type %s", name, bllm_type_name(type));
        return -1;
    }
    for (int i = 0; i < w->n_tensors; i++)
        if (!strcmp(w->tensors[i].name, name)) {
            bllm_fail(BLLM_ERR_ARG, "tensor '%s' added twice", name);
            return -1;
        }
    if (w->n_tensors == w->cap_tensors) {
        int cap = w->cap_tensors ? 2 * w->cap_tensors : 64;
        wtensor *t = realloc(w->tensors, cap * sizeof *t);
        if (!t) {
            bllm_fail(BLLM_ERR_NOMEM, "out of memory");
            return -1;
        }
        w->tensors = t;
        w->cap_tensors = cap;
    }
    wtensor *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name))) {
        bllm_fail(BLLM_ERR_NOMEM, "out of memory");
        return -1;
    }
    t->type = type;
    t->ndim = ndim;
    memcpy(t->dims, dims, ndim * sizeof *dims);
    t->nbytes = nbytes;
    return w->n_tensors++;
}

static uint64_t align_up(uint64_t x) { return (x + BLLM_STB_ALIGN - 1) / BLLM_STB_ALIGN * BLLM_STB_ALIGN; }

bllm_status bllm_stb_write_begin(bllm_stb_writer *w, const char *path)
{
    if (w->open)
        return bllm_fail(BLLM_ERR_ARG, "write_begin called twice");
    w->dir_bytes = 0;
    for (int i = 0; i < w->n_tensors; i++)
        w->dir_bytes += 2 + strlen(w->tensors[i].name) + 4 + 4 + 8 * (uint64_t)w->tensors[i].ndim + 24;
    w->data_offset = align_up(BLLM_STB_HEADER_BYTES + w->meta_len + w->dir_bytes);
    uint64_t off = 0;
    for (int i = 0; i < w->n_tensors; i++) {
        w->tensors[i].offset = off;
        off = align_up(off + w->tensors[i].nbytes);
    }
    /* The last tensor ends the file exactly; no trailing pad. */
    w->data_bytes = w->n_tensors ? w->tensors[w->n_tensors - 1].offset + w->tensors[w->n_tensors - 1].nbytes : 0;
    bllm_status s = bllm_out_begin(&w->out, path);
    if (s)
        return s;
    w->open = true;
    w->next_tensor = 0;
    return BLLM_OK;
}

static bllm_status write_at(bllm_stb_writer *w, uint64_t off, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t k = pwrite(w->out.fd, b, n, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            w->failed = true;
            return bllm_fail(BLLM_ERR_IO, "writing %s: %s", w->out.tmp, k < 0 ? strerror(errno) : "no space written");
        }
        b += k, off += (uint64_t)k, n -= (size_t)k;
    }
    return BLLM_OK;
}

bllm_status bllm_stb_write_tensor(bllm_stb_writer *w, int index, const void *data, size_t nbytes)
{
    if (!w->open)
        return bllm_fail(BLLM_ERR_ARG, "write_tensor before write_begin");
    if (index < 0 || index >= w->n_tensors)
        return bllm_fail(BLLM_ERR_ARG, "write_tensor: no tensor %d", index);
    wtensor *t = &w->tensors[index];
    if (t->written)
        return bllm_fail(BLLM_ERR_ARG, "tensor '%s' written twice", t->name);
    if (nbytes != t->nbytes)
        return bllm_fail(BLLM_ERR_ARG, "tensor '%s': %zu bytes given, %llu expected", t->name, nbytes,
                         (unsigned long long)t->nbytes);
    bllm_status s = write_at(w, w->data_offset + t->offset, data, nbytes);
    if (s)
        return s;
    t->checksum = XXH3_64bits(data, nbytes);
    t->written = true;
    return BLLM_OK;
}

bllm_status bllm_stb_write_finish(bllm_stb_writer *w)
{
    if (!w->open)
        return bllm_fail(BLLM_ERR_ARG, "write_finish before write_begin");
    if (w->failed)
        return bllm_fail(BLLM_ERR_IO, "an earlier write to %s failed", w->out.tmp);
    for (int i = 0; i < w->n_tensors; i++)
        if (!w->tensors[i].written)
            return bllm_fail(BLLM_ERR_ARG, "tensor '%s' was never written", w->tensors[i].name);

    /* The directory goes right after the metadata in the same buffer so one
     * checksum covers both. */
    size_t meta_len = w->meta_len;
    for (int i = 0; i < w->n_tensors; i++) {
        wtensor *t = &w->tensors[i];
        uint16_t nl = (uint16_t)strlen(t->name);
        uint32_t type = t->type, ndim = (uint32_t)t->ndim;
        bool ok = put(w, &nl, 2) && put(w, t->name, nl) && put(w, &type, 4) && put(w, &ndim, 4);
        for (int d = 0; ok && d < t->ndim; d++)
            ok = put(w, &t->dims[d], 8);
        ok = ok && put(w, &t->offset, 8) && put(w, &t->nbytes, 8) && put(w, &t->checksum, 8);
        if (!ok)
            return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    }
    stb_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, BLLM_STB_MAGIC, 8);
    h.version = BLLM_STB_VERSION;
    h.header_bytes = BLLM_STB_HEADER_BYTES;
    h.meta_offset = BLLM_STB_HEADER_BYTES;
    h.meta_bytes = meta_len;
    h.dir_offset = h.meta_offset + meta_len;
    h.dir_bytes = w->meta_len - meta_len;
    h.n_meta = w->n_meta;
    h.n_tensors = (uint32_t)w->n_tensors;
    h.data_offset = w->data_offset;
    h.data_bytes = w->data_bytes;
    h.file_bytes = h.data_offset + h.data_bytes;
    h.index_checksum = XXH3_64bits(w->meta, w->meta_len);
    bllm_status s = write_at(w, 0, &h, sizeof h);
    if (!s)
        s = write_at(w, BLLM_STB_HEADER_BYTES, w->meta, w->meta_len);
    /* Zero the gap between directory and data (it may hold stale bytes). */
    uint64_t gap_at = BLLM_STB_HEADER_BYTES + w->meta_len;
    static const uint8_t zeros[BLLM_STB_ALIGN];
    if (!s && w->data_offset > gap_at)
        s = write_at(w, gap_at, zeros, w->data_offset - gap_at);
    /* Padding between tensors is zero-filled by the file system (holes). */
    if (!s && ftruncate(w->out.fd, (off_t)h.file_bytes))
        s = bllm_fail(BLLM_ERR_IO, "sizing %s: %s", w->out.tmp, strerror(errno));
    w->open = false;
    if (!s && w->check && (s = w->check(w->out.tmp)))
        s = bllm_fail(s, "the model written to %s does not load back, so it was not kept: %s", w->out.path,
                      bllm_last_error());
    if (s)
        bllm_out_discard(&w->out);
    else
        s = bllm_out_commit(&w->out, w->replace);
    return s;
}
