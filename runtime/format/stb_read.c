/* .stb reader: map (or read) the file, then validate every byte we will ever trust
 * before handing out a pointer. A corrupt file must produce a message, never
 * a crash, so all parsing goes through a bounds-checked cursor. */
#include "runtime/format/stb.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "runtime/error.h"
#include "runtime/format/stb_layout.h"
#include "runtime/file_io.h"
#include "runtime/memory.h"

typedef struct {
    char *key;
    bllm_meta_type type;
    const uint8_t *value; /* first byte of the value in the mapping */
    uint64_t value_bytes;
    bllm_meta_type elem_type; /* arrays */
    uint64_t count;           /* arrays */
    uint32_t *str_offs;       /* string arrays */
} meta_entry;

struct bllm_stb_file {
    char *path;
    const uint8_t *map;
    uint64_t size;
    bool resident; /* map is a bllm_large_alloc copy, not the file's mapping */
    stb_header hdr;
    int n_meta;
    meta_entry *meta;
    int n_tensors;
    bllm_stb_tensor *tensors;
};

typedef struct {
    const uint8_t *p, *end;
    const char *what; /* section being parsed, for messages */
    const char *path;
} cursor;

static bool take(cursor *c, void *dst, size_t n)
{
    if ((size_t)(c->end - c->p) < n)
        return false;
    if (dst)
        memcpy(dst, c->p, n);
    c->p += n;
    return true;
}

static bllm_status truncated(const cursor *c)
{
    return bllm_fail(BLLM_ERR_FORMAT, "%s: %s section is truncated or corrupt",
                     c->path, c->what);
}

static size_t meta_scalar_bytes(bllm_meta_type t)
{
    switch (t) {
    case BLLM_META_U8:
    case BLLM_META_BOOL: return 1;
    case BLLM_META_U16: return 2;
    case BLLM_META_I32:
    case BLLM_META_U32:
    case BLLM_META_F32: return 4;
    case BLLM_META_U64:
    case BLLM_META_F64: return 8;
    default: return 0;
    }
}

static bllm_status parse_meta(bllm_stb_file *f)
{
    cursor c = {f->map + f->hdr.meta_offset, f->map + f->hdr.meta_offset + f->hdr.meta_bytes,
                "metadata", f->path};
    f->meta = calloc(f->hdr.n_meta ? f->hdr.n_meta : 1, sizeof *f->meta);
    if (!f->meta)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory reading metadata");
    for (uint32_t i = 0; i < f->hdr.n_meta; i++) {
        meta_entry *e = &f->meta[i];
        uint16_t klen;
        uint8_t type;
        if (!take(&c, &klen, 2) || klen == 0 || (size_t)(c.end - c.p) < klen)
            return truncated(&c);
        e->key = strndup((const char *)c.p, klen);
        if (!e->key)
            return bllm_fail(BLLM_ERR_NOMEM, "out of memory reading metadata");
        f->n_meta = (int)i + 1;
        if (strlen(e->key) != klen)
            return bllm_fail(BLLM_ERR_FORMAT, "%s: metadata key %u contains a NUL byte", f->path, i);
        c.p += klen;
        for (uint32_t j = 0; j < i; j++)
            if (!strcmp(f->meta[j].key, e->key))
                return bllm_fail(BLLM_ERR_FORMAT, "%s: metadata key '%s' appears twice", f->path, e->key);
        if (!take(&c, &type, 1))
            return truncated(&c);
        e->type = type;
        e->value = c.p;
        if (type == BLLM_META_STR) {
            uint32_t len;
            if (!take(&c, &len, 4) || !take(&c, NULL, len))
                return truncated(&c);
        } else if (type == BLLM_META_ARR) {
            uint8_t et;
            if (!take(&c, &et, 1) || !take(&c, &e->count, 8))
                return truncated(&c);
            e->elem_type = et;
            if (et == BLLM_META_STR) {
                if (e->count > (uint64_t)(c.end - c.p) / 4 || e->count > UINT32_MAX)
                    return truncated(&c);
                e->str_offs = malloc((e->count ? e->count : 1) * sizeof *e->str_offs);
                if (!e->str_offs)
                    return bllm_fail(BLLM_ERR_NOMEM, "out of memory reading metadata");
                const uint8_t *base = c.p;
                for (uint64_t k = 0; k < e->count; k++) {
                    uint32_t len;
                    if ((uint64_t)(c.p - base) > UINT32_MAX)
                        return bllm_fail(BLLM_ERR_FORMAT, "%s: string array '%s' too large", f->path, e->key);
                    e->str_offs[k] = (uint32_t)(c.p - base);
                    if (!take(&c, &len, 4) || !take(&c, NULL, len))
                        return truncated(&c);
                }
            } else {
                size_t eb = meta_scalar_bytes(et);
                if (!eb)
                    return bllm_fail(BLLM_ERR_FORMAT, "%s: metadata '%s' has unknown array element type %u",
                                     f->path, e->key, et);
                if (e->count > (uint64_t)(c.end - c.p) / eb)
                    return truncated(&c);
                c.p += e->count * eb;
            }
        } else {
            size_t sb = meta_scalar_bytes(type);
            if (!sb)
                return bllm_fail(BLLM_ERR_FORMAT, "%s: metadata '%s' has unknown type %u", f->path, e->key, type);
            if (!take(&c, NULL, sb))
                return truncated(&c);
        }
        e->value_bytes = (uint64_t)(c.p - e->value);
    }
    if (c.p != c.end)
        return bllm_fail(BLLM_ERR_FORMAT, "%s: %zu stray bytes after the metadata", f->path, (size_t)(c.end - c.p));
    return BLLM_OK;
}

static int cmp_by_offset(const void *a, const void *b)
{
    const bllm_stb_tensor *x = *(const bllm_stb_tensor *const *)a, *y = *(const bllm_stb_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static bllm_status parse_directory(bllm_stb_file *f)
{
    cursor c = {f->map + f->hdr.dir_offset, f->map + f->hdr.dir_offset + f->hdr.dir_bytes,
                "tensor directory", f->path};
    f->tensors = calloc(f->hdr.n_tensors ? f->hdr.n_tensors : 1, sizeof *f->tensors);
    if (!f->tensors)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory reading the tensor directory");
    for (uint32_t i = 0; i < f->hdr.n_tensors; i++) {
        bllm_stb_tensor *t = &f->tensors[i];
        uint16_t nlen;
        uint32_t type, ndim;
        if (!take(&c, &nlen, 2) || nlen == 0 || (size_t)(c.end - c.p) < nlen)
            return truncated(&c);
        char *name = strndup((const char *)c.p, nlen);
        if (!name)
            return bllm_fail(BLLM_ERR_NOMEM, "out of memory reading the tensor directory");
        t->name = name;
        f->n_tensors = (int)i + 1;
        c.p += nlen;
        if (strlen(name) != nlen)
            return bllm_fail(BLLM_ERR_FORMAT, "%s: tensor %u name contains a NUL byte", f->path, i);
        if (!take(&c, &type, 4) || !take(&c, &ndim, 4))
            return truncated(&c);
        if (!bllm_type_valid(type))
            return bllm_fail(BLLM_ERR_FORMAT, "%s: tensor '%s' has unknown type %u (file from a newer bllm?)",
                             f->path, name, type);
        if (f->hdr.version < 2 && type >= BLLM_TYPE_NM24 && type <= BLLM_TYPE_NM68)
            return bllm_fail(BLLM_ERR_UNSUPPORTED,
                             "%s: tensor '%s' is %s in the layout of .stb version 1 (pattern codes), which "
                             "this bllm no longer reads; quantize the model again",
                             f->path, name, bllm_type_name((bllm_type)type));
        if (ndim < 1 || ndim > BLLM_STB_MAX_DIMS)
            return bllm_fail(BLLM_ERR_FORMAT, "%s: tensor '%s' has %u dimensions (1..%d allowed)",
                             f->path, name, ndim, BLLM_STB_MAX_DIMS);
        t->type = (bllm_type)type;
        t->ndim = (int)ndim;
        uint64_t rows = 1;
        for (uint32_t d = 0; d < ndim; d++) {
            uint64_t v;
            if (!take(&c, &v, 8))
                return truncated(&c);
            if (v == 0 || v > (1ull << 40))
                return bllm_fail(BLLM_ERR_FORMAT, "%s: tensor '%s' has absurd dimension %llu",
                                 f->path, name, (unsigned long long)v);
            t->dims[d] = (int64_t)v;
            if (d + 1 < ndim) {
                if (rows > (1ull << 48) / v)
                    return bllm_fail(BLLM_ERR_FORMAT, "%s: tensor '%s' has an absurd shape", f->path, name);
                rows *= v;
            }
        }
        if (!take(&c, &t->offset, 8) || !take(&c, &t->nbytes, 8) || !take(&c, &t->checksum, 8))
            return truncated(&c);
        uint64_t cols = (uint64_t)t->dims[ndim - 1];
        uint64_t want = bllm_type_tensor_bytes(t->type, rows, cols);
        if (!want)
            return bllm_fail(BLLM_ERR_FORMAT, "%s: tensor '%s': %llu rows x %llu columns do not fit type %s%s",
                             f->path, name, (unsigned long long)rows, (unsigned long long)cols,
                             bllm_type_name(t->type),
                             bllm_type_is_packed(t->type)
                                 ? " (packed binary types need rows % 32 == 0 and columns % 64 == 0)"
                                 : "");
        if (t->nbytes != want)
            return bllm_fail(BLLM_ERR_FORMAT, "%s: tensor '%s' claims %llu bytes but its %s shape needs %llu",
                             f->path, name, (unsigned long long)t->nbytes, bllm_type_name(t->type),
                             (unsigned long long)want);
        if (t->offset % BLLM_STB_ALIGN)
            return bllm_fail(BLLM_ERR_FORMAT, "%s: tensor '%s' offset %llu is not %u-byte aligned",
                             f->path, name, (unsigned long long)t->offset, BLLM_STB_ALIGN);
        if (t->offset > f->hdr.data_bytes || t->nbytes > f->hdr.data_bytes - t->offset)
            return bllm_fail(BLLM_ERR_FORMAT, "%s: tensor '%s' (offset %llu, %llu bytes) lies outside the "
                             "data section (%llu bytes)", f->path, name, (unsigned long long)t->offset,
                             (unsigned long long)t->nbytes, (unsigned long long)f->hdr.data_bytes);
        t->data = f->map + f->hdr.data_offset + t->offset;
        for (uint32_t j = 0; j < i; j++)
            if (!strcmp(f->tensors[j].name, name))
                return bllm_fail(BLLM_ERR_FORMAT, "%s: tensor '%s' appears twice", f->path, name);
    }
    if (c.p != c.end)
        return bllm_fail(BLLM_ERR_FORMAT, "%s: stray bytes after the tensor directory", f->path);

    /* Overlapping tensors would let one write alias another's weights. */
    if (f->n_tensors > 1) {
        const bllm_stb_tensor **order = malloc(f->n_tensors * sizeof *order);
        if (!order)
            return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
        for (int i = 0; i < f->n_tensors; i++)
            order[i] = &f->tensors[i];
        qsort(order, f->n_tensors, sizeof *order, cmp_by_offset);
        for (int i = 1; i < f->n_tensors; i++) {
            if (order[i - 1]->offset + order[i - 1]->nbytes > order[i]->offset) {
                bllm_status s = bllm_fail(BLLM_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", f->path,
                                          order[i - 1]->name, order[i]->name);
                free(order);
                return s;
            }
        }
        free(order);
    }
    return BLLM_OK;
}

static bllm_status check_header(bllm_stb_file *f)
{
    stb_header *h = &f->hdr;
    if (f->size < BLLM_STB_HEADER_BYTES) {
        if (f->size >= 8 && memcmp(f->map, BLLM_STB_MAGIC, 8))
            return bllm_fail(BLLM_ERR_FORMAT, "%s: not a .stb file (wrong magic)", f->path);
        return bllm_fail(BLLM_ERR_FORMAT, "%s: file is truncated (%llu bytes, header alone is %u)",
                         f->path, (unsigned long long)f->size, BLLM_STB_HEADER_BYTES);
    }
    memcpy(h, f->map, sizeof *h);
    if (memcmp(h->magic, BLLM_STB_MAGIC, 8)) {
        if (!memcmp(f->map, "GGUF", 4))
            return bllm_fail(BLLM_ERR_FORMAT, "%s: this is a GGUF file; convert it first with bllm-convert", f->path);
        return bllm_fail(BLLM_ERR_FORMAT, "%s: not a .stb file (wrong magic)", f->path);
    }
    if (h->version < BLLM_STB_VERSION_MIN || h->version > BLLM_STB_VERSION)
        return bllm_fail(BLLM_ERR_UNSUPPORTED, "%s: .stb version %u, this bllm reads versions %u..%u",
                         f->path, h->version, BLLM_STB_VERSION_MIN, BLLM_STB_VERSION);
    if (h->header_bytes != BLLM_STB_HEADER_BYTES)
        return bllm_fail(BLLM_ERR_FORMAT, "%s: header size %u, expected %u", f->path, h->header_bytes,
                         BLLM_STB_HEADER_BYTES);
    if (h->file_bytes != f->size)
        return bllm_fail(BLLM_ERR_FORMAT, "%s: file is %llu bytes but its header says %llu (%s)", f->path,
                         (unsigned long long)f->size, (unsigned long long)h->file_bytes,
                         f->size < h->file_bytes ? "truncated" : "trailing garbage");
    /* Sections in order, each inside the file: header | meta | dir | pad | data. */
    if (h->meta_offset != BLLM_STB_HEADER_BYTES || h->meta_bytes > f->size ||
        h->dir_offset != h->meta_offset + h->meta_bytes || h->dir_bytes > f->size - h->dir_offset ||
        h->data_offset < h->dir_offset + h->dir_bytes || h->data_offset % BLLM_STB_ALIGN ||
        h->data_offset > f->size || h->data_bytes != f->size - h->data_offset)
        return bllm_fail(BLLM_ERR_FORMAT, "%s: section offsets in the header are inconsistent", f->path);
    if (h->n_tensors > h->dir_bytes / 40 + 1 || h->n_meta > h->meta_bytes / 4 + 1)
        return bllm_fail(BLLM_ERR_FORMAT, "%s: header counts (%u tensors, %u keys) cannot fit their sections",
                         f->path, h->n_tensors, h->n_meta);
    uint64_t sum = XXH3_64bits(f->map + h->meta_offset, h->meta_bytes + h->dir_bytes);
    if (sum != h->index_checksum)
        return bllm_fail(BLLM_ERR_CHECKSUM, "%s: metadata/directory checksum mismatch (file corrupt)", f->path);
    return BLLM_OK;
}

/* The whole file into huge-page memory, read() in pieces: a short read or
 * an error is the caller's failure to report, never a partial file. */
static bllm_status read_resident(int fd, bllm_stb_file *f, void **out)
{
    uint8_t *buf = bllm_large_alloc(f->size);
    if (!buf)
        return bllm_fail(BLLM_ERR_NOMEM, "%s: cannot allocate %llu MiB to load it (try mapping it instead)",
                         f->path, (unsigned long long)(f->size >> 20));
    for (uint64_t done = 0; done < f->size;) {
        size_t want = f->size - done > ((size_t)1 << 30) ? (size_t)1 << 30 : (size_t)(f->size - done);
        ssize_t got = pread(fd, buf + done, want, (off_t)done);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            bllm_status s = bllm_fail(BLLM_ERR_IO, "cannot read %s: %s", f->path,
                                      got < 0 ? strerror(errno) : "file shrank while loading");
            bllm_large_free(buf, f->size);
            return s;
        }
        done += (uint64_t)got;
    }
    /* read-only from here, as the mapping is: a stray write faults */
    mprotect(buf, f->size, PROT_READ);
    *out = buf;
    return BLLM_OK;
}

static bllm_status open_file(const char *path, bool verify_checksums, bool resident, bllm_stb_file **out)
{
    *out = NULL;
    int fd;
    struct stat st;
    bllm_status os = bllm_open_input(path, "model", &fd, &st);
    if (os)
        return os;
    if (st.st_size == 0) {
        close(fd);
        return bllm_fail(BLLM_ERR_FORMAT, "%s: file is empty", path);
    }
    bllm_stb_file *f = calloc(1, sizeof *f);
    if (!f) {
        close(fd);
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    }
    f->path = strdup(path);
    f->size = (uint64_t)st.st_size;
    /* Anything that is not a .stb file goes the mapped way, where the header
     * check names what it is, rather than being read whole first (a 13 GB
     * GGUF given by mistake would otherwise end in "cannot allocate"). */
    char magic[8];
    if (resident && (pread(fd, magic, sizeof magic, 0) != (ssize_t)sizeof magic ||
                     memcmp(magic, BLLM_STB_MAGIC, sizeof magic)))
        resident = false;
    void *m = NULL;
    if (resident) {
        bllm_status rs = read_resident(fd, f, &m);
        close(fd);
        if (rs) {
            bllm_stb_close(f);
            return rs;
        }
        f->resident = true;
    } else {
        m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        close(fd);
        if (m == MAP_FAILED) {
            bllm_status s = bllm_fail(BLLM_ERR_IO, "cannot map %s: %s", path, strerror(errno));
            bllm_stb_close(f);
            return s;
        }
    }
    f->map = m;
    bllm_status s = check_header(f);
    if (!s)
        s = parse_meta(f);
    if (!s)
        s = parse_directory(f);
    if (!s && verify_checksums)
        s = bllm_stb_verify_checksums(f);
    if (s) {
        bllm_stb_close(f);
        return s;
    }
    *out = f;
    return BLLM_OK;
}

bllm_status bllm_stb_open(const char *path, bool verify_checksums, bllm_stb_file **out)
{
    return open_file(path, verify_checksums, false, out);
}

bllm_status bllm_stb_load(const char *path, bool verify_checksums, bllm_stb_file **out)
{
    return open_file(path, verify_checksums, true, out);
}

void bllm_stb_close(bllm_stb_file *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta[i].key);
        free(f->meta[i].str_offs);
    }
    free(f->meta);
    for (int i = 0; i < f->n_tensors; i++)
        free((char *)f->tensors[i].name);
    free(f->tensors);
    if (f->map && f->resident)
        bllm_large_free((void *)f->map, f->size);
    else if (f->map)
        munmap((void *)f->map, f->size);
    free(f->path);
    free(f);
}

uint64_t bllm_stb_file_bytes(const bllm_stb_file *f) { return f->size; }

bllm_status bllm_stb_verify_checksums(const bllm_stb_file *f)
{
    for (int i = 0; i < f->n_tensors; i++) {
        const bllm_stb_tensor *t = &f->tensors[i];
        if (XXH3_64bits(t->data, t->nbytes) != t->checksum)
            return bllm_fail(BLLM_ERR_CHECKSUM, "%s: tensor '%s' data does not match its checksum (file corrupt)",
                             f->path, t->name);
    }
    return BLLM_OK;
}

int bllm_stb_n_tensors(const bllm_stb_file *f) { return f->n_tensors; }

const bllm_stb_tensor *bllm_stb_tensor_at(const bllm_stb_file *f, int i)
{
    return i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}

const bllm_stb_tensor *bllm_stb_find_tensor(const bllm_stb_file *f, const char *name)
{
    for (int i = 0; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, name))
            return &f->tensors[i];
    return NULL;
}

static const meta_entry *find_meta(const bllm_stb_file *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta[i].key, key))
            return &f->meta[i];
    return NULL;
}

static bllm_status get_int(const bllm_stb_file *f, const char *key, int64_t lo, int64_t hi, int64_t *v)
{
    const meta_entry *e = find_meta(f, key);
    if (!e)
        return BLLM_ERR_NOT_FOUND;
    int64_t x;
    switch (e->type) {
    case BLLM_META_U8: x = e->value[0]; break;
    case BLLM_META_BOOL: x = e->value[0] != 0; break;
    case BLLM_META_I32: { int32_t t; memcpy(&t, e->value, 4); x = t; break; }
    case BLLM_META_U32: { uint32_t t; memcpy(&t, e->value, 4); x = t; break; }
    case BLLM_META_U64: {
        uint64_t t;
        memcpy(&t, e->value, 8);
        if (t > INT64_MAX)
            return bllm_fail(BLLM_ERR_FORMAT, "%s: metadata '%s' is out of range", f->path, key);
        x = (int64_t)t;
        break;
    }
    default:
        return bllm_fail(BLLM_ERR_FORMAT, "%s: metadata '%s' is not an integer", f->path, key);
    }
    if (x < lo || x > hi)
        return bllm_fail(BLLM_ERR_FORMAT, "%s: metadata '%s' = %lld is out of range", f->path, key, (long long)x);
    *v = x;
    return BLLM_OK;
}

bllm_status bllm_stb_get_u32(const bllm_stb_file *f, const char *key, uint32_t *v)
{
    int64_t x;
    bllm_status s = get_int(f, key, 0, UINT32_MAX, &x);
    if (!s)
        *v = (uint32_t)x;
    return s;
}

bllm_status bllm_stb_get_i32(const bllm_stb_file *f, const char *key, int32_t *v)
{
    int64_t x;
    bllm_status s = get_int(f, key, INT32_MIN, INT32_MAX, &x);
    if (!s)
        *v = (int32_t)x;
    return s;
}

bllm_status bllm_stb_get_u64(const bllm_stb_file *f, const char *key, uint64_t *v)
{
    int64_t x;
    bllm_status s = get_int(f, key, 0, INT64_MAX, &x);
    if (!s)
        *v = (uint64_t)x;
    return s;
}

bllm_status bllm_stb_get_bool(const bllm_stb_file *f, const char *key, bool *v)
{
    int64_t x;
    bllm_status s = get_int(f, key, 0, 1, &x);
    if (!s)
        *v = x != 0;
    return s;
}

bllm_status bllm_stb_get_f32(const bllm_stb_file *f, const char *key, float *v)
{
    const meta_entry *e = find_meta(f, key);
    if (!e)
        return BLLM_ERR_NOT_FOUND;
    if (e->type == BLLM_META_F32) {
        memcpy(v, e->value, 4);
    } else if (e->type == BLLM_META_F64) {
        double d;
        memcpy(&d, e->value, 8);
        *v = (float)d;
    } else {
        return bllm_fail(BLLM_ERR_FORMAT, "%s: metadata '%s' is not a float", f->path, key);
    }
    return BLLM_OK;
}

bllm_status bllm_stb_get_str(const bllm_stb_file *f, const char *key, const char **s, size_t *len)
{
    const meta_entry *e = find_meta(f, key);
    if (!e)
        return BLLM_ERR_NOT_FOUND;
    if (e->type != BLLM_META_STR)
        return bllm_fail(BLLM_ERR_FORMAT, "%s: metadata '%s' is not a string", f->path, key);
    uint32_t n;
    memcpy(&n, e->value, 4);
    *s = (const char *)e->value + 4;
    *len = n;
    return BLLM_OK;
}

bllm_status bllm_stb_get_array(const bllm_stb_file *f, const char *key, bllm_stb_array *arr)
{
    const meta_entry *e = find_meta(f, key);
    if (!e)
        return BLLM_ERR_NOT_FOUND;
    if (e->type != BLLM_META_ARR)
        return bllm_fail(BLLM_ERR_FORMAT, "%s: metadata '%s' is not an array", f->path, key);
    arr->elem_type = e->elem_type;
    arr->count = e->count;
    arr->data = e->value + 9;
    arr->str_offs = e->str_offs;
    return BLLM_OK;
}

void bllm_stb_array_str(const bllm_stb_array *arr, uint64_t i, const char **s, size_t *len)
{
    const uint8_t *p = arr->data + arr->str_offs[i];
    uint32_t n;
    memcpy(&n, p, 4);
    *s = (const char *)p + 4;
    *len = n;
}

float bllm_stb_array_f32(const bllm_stb_array *arr, uint64_t i)
{
    float v;
    memcpy(&v, arr->data + 4 * i, 4);
    return v;
}

int32_t bllm_stb_array_i32(const bllm_stb_array *arr, uint64_t i)
{
    int32_t v;
    memcpy(&v, arr->data + 4 * i, 4);
    return v;
}

uint16_t bllm_stb_array_u16(const bllm_stb_array *arr, uint64_t i)
{
    uint16_t v;
    memcpy(&v, arr->data + 2 * i, 2);
    return v;
}

int bllm_stb_n_meta(const bllm_stb_file *f) { return f->n_meta; }
const char *bllm_stb_meta_key(const bllm_stb_file *f, int i) { return f->meta[i].key; }
bllm_meta_type bllm_stb_meta_type(const bllm_stb_file *f, int i) { return f->meta[i].type; }
