/* .stb container tests: a written file reads back identically, and every
 * kind of damage is refused with a specific message instead of a crash. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/format/stb.h"
#include "runtime/format/stb_layout.h"

static int failures, checks;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        checks++;                                                               \
        if (!(cond)) {                                                          \
            failures++;                                                         \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

static char dir[256];

static void path_of(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", dir, name); }

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*len);
    if (fread(b, 1, *len, f) != *len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    return b;
}

static void spit(const char *path, const void *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, len, f);
    fclose(f);
}

/* Writes a small file: metadata of every type and three tensors. */
static int write_sample(const char *path, float *a, uint16_t *b, float *c)
{
    bllm_stb_writer *w = bllm_stb_writer_new();
    const char *strs[] = {"alpha", "", "g\xc4\x9f" "amma"};
    float fa[] = {1.5f, -2.0f};
    int32_t ia[] = {7, -9, 11};
    int rc = 0;
    rc |= bllm_stb_set_str(w, "general.architecture", "llama", 5);
    rc |= bllm_stb_set_u32(w, "test.u32", 4000000000u);
    rc |= bllm_stb_set_i32(w, "test.i32", -5);
    rc |= bllm_stb_set_u64(w, "test.u64", 1ull << 40);
    rc |= bllm_stb_set_f32(w, "test.f32", 0.25f);
    rc |= bllm_stb_set_bool(w, "test.bool", true);
    rc |= bllm_stb_set_arr_str(w, "test.strs", strs, NULL, 3);
    rc |= bllm_stb_set_arr_f32(w, "test.f32s", fa, 2);
    rc |= bllm_stb_set_arr_i32(w, "test.i32s", ia, 3);
    CHECK(bllm_stb_set_u32(w, "test.u32", 1) == BLLM_ERR_ARG, "duplicate key accepted");
    int64_t da[2] = {3, 5}, db[1] = {7}, dc[2] = {2, 3};
    int ta = bllm_stb_add_tensor(w, "a", BLLM_TYPE_F32, 2, da);
    int tb = bllm_stb_add_tensor(w, "b", BLLM_TYPE_F16, 1, db);
    int tc = bllm_stb_add_tensor(w, "c.weight", BLLM_TYPE_F32, 2, dc);
    CHECK(bllm_stb_add_tensor(w, "a", BLLM_TYPE_F32, 2, da) < 0, "duplicate tensor accepted");
    rc |= bllm_stb_write_begin(w, path);
    rc |= bllm_stb_write_tensor(w, ta, a, 15 * 4);
    CHECK(bllm_stb_write_tensor(w, tb, b, 3) == BLLM_ERR_ARG, "wrong byte count accepted");
    rc |= bllm_stb_write_tensor(w, tb, b, 7 * 2);
    rc |= bllm_stb_write_tensor(w, tc, c, 6 * 4);
    rc |= bllm_stb_write_finish(w);
    bllm_stb_writer_free(w);
    return rc;
}

/* Both ways in: the file's mapping and the copy in huge-page memory that
 * bllm_model_load uses, which must read and refuse exactly the same. */
typedef bllm_status (*opener)(const char *, bool, bllm_stb_file **);
static const opener openers[2] = {bllm_stb_open, bllm_stb_load};
static const char *const opener_names[2] = {"mapped", "loaded"};

static void test_round_trip_with(const char *path, const float *a, const uint16_t *b, const float *c, int how)
{
    bllm_stb_file *f;
    bllm_status s = openers[how](path, true, &f);
    CHECK(s == BLLM_OK, "open failed: %s", bllm_last_error());
    if (s)
        return;
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    float f32;
    bool bo;
    const char *str;
    size_t len;
    CHECK(!bllm_stb_get_u32(f, "test.u32", &u32) && u32 == 4000000000u, "u32");
    CHECK(!bllm_stb_get_i32(f, "test.i32", &i32) && i32 == -5, "i32");
    CHECK(!bllm_stb_get_u64(f, "test.u64", &u64) && u64 == 1ull << 40, "u64");
    CHECK(!bllm_stb_get_f32(f, "test.f32", &f32) && f32 == 0.25f, "f32");
    CHECK(!bllm_stb_get_bool(f, "test.bool", &bo) && bo, "bool");
    CHECK(!bllm_stb_get_str(f, "general.architecture", &str, &len) && len == 5 && !memcmp(str, "llama", 5), "str");
    CHECK(bllm_stb_get_u32(f, "missing", &u32) == BLLM_ERR_NOT_FOUND, "missing key");
    CHECK(bllm_stb_get_i32(f, "test.u32", &i32) == BLLM_ERR_FORMAT, "u32 4e9 must not fit i32");
    CHECK(bllm_stb_get_str(f, "test.u32", &str, &len) == BLLM_ERR_FORMAT, "type confusion");
    bllm_stb_array arr;
    CHECK(!bllm_stb_get_array(f, "test.strs", &arr) && arr.count == 3 && arr.elem_type == BLLM_META_STR, "str arr");
    bllm_stb_array_str(&arr, 2, &str, &len);
    CHECK(len == 7 && !memcmp(str, "g\xc4\x9f" "amma", 7), "str arr element");
    bllm_stb_array_str(&arr, 1, &str, &len);
    CHECK(len == 0, "empty string element");
    CHECK(!bllm_stb_get_array(f, "test.f32s", &arr) && arr.count == 2 && bllm_stb_array_f32(&arr, 1) == -2.0f, "f32 arr");
    CHECK(!bllm_stb_get_array(f, "test.i32s", &arr) && arr.count == 3 && bllm_stb_array_i32(&arr, 1) == -9, "i32 arr");
    CHECK(bllm_stb_n_tensors(f) == 3, "tensor count");
    const bllm_stb_tensor *t = bllm_stb_find_tensor(f, "a");
    CHECK(t && t->type == BLLM_TYPE_F32 && t->ndim == 2 && t->dims[0] == 3 && t->dims[1] == 5, "tensor a");
    CHECK(t && !memcmp(t->data, a, 60) && ((uintptr_t)t->data % BLLM_STB_ALIGN) == 0, "tensor a data/alignment");
    t = bllm_stb_find_tensor(f, "b");
    CHECK(t && t->type == BLLM_TYPE_F16 && !memcmp(t->data, b, 14), "tensor b");
    t = bllm_stb_find_tensor(f, "c.weight");
    CHECK(t && !memcmp(t->data, c, 24) && t->offset % BLLM_STB_ALIGN == 0, "tensor c");
    bllm_stb_close(f);
}

static void test_round_trip(const char *path, const float *a, const uint16_t *b, const float *c)
{
    for (int how = 0; how < 2; how++)
        test_round_trip_with(path, a, b, c, how);
}

/* Apply a mutation to a copy of the good file and expect a refusal whose
 * message contains `needle`. */
static void expect_refused(const unsigned char *good, size_t len, const char *what,
                           void (*mutate)(unsigned char *, size_t *), bllm_status want, const char *needle,
                           bool verify)
{
    unsigned char *b = malloc(len + 64);
    memcpy(b, good, len);
    size_t n = len;
    mutate(b, &n);
    char p[300];
    path_of(p, sizeof p, "bad.stb");
    spit(p, b, n);
    free(b);
    for (int how = 0; how < 2; how++) {
        bllm_stb_file *f = NULL;
        bllm_status s = openers[how](p, verify, &f);
        CHECK(s == want, "%s (%s): status %d (%s), wanted %d", what, opener_names[how], s, bllm_last_error(), want);
        CHECK(strstr(bllm_last_error(), needle) != NULL, "%s (%s): message '%s' lacks '%s'", what,
              opener_names[how], bllm_last_error(), needle);
        CHECK(f == NULL, "%s (%s): handle returned on failure", what, opener_names[how]);
        if (s == want)
            printf("ok   refused %-34s (%s) -> %s\n", what, opener_names[how], bllm_last_error());
        bllm_stb_close(f);
    }
}

static void m_magic(unsigned char *b, size_t *n) { (void)n; memcpy(b, "NOTASTB!", 8); }
static void m_gguf(unsigned char *b, size_t *n) { (void)n; memcpy(b, "GGUF", 4); }
static void m_trunc_header(unsigned char *b, size_t *n) { (void)b; *n = 100; }
static void m_trunc_data(unsigned char *b, size_t *n) { (void)b; *n -= 10; }
static void m_trailing(unsigned char *b, size_t *n) { memset(b + *n, 0, 16); *n += 16; }
static void m_empty(unsigned char *b, size_t *n) { (void)b; *n = 0; }
static void m_version(unsigned char *b, size_t *n) { (void)n; b[8] = 99; }

/* Directory edits must keep the index checksum valid so the specific check
 * (not just the checksum) is exercised: patch, then re-hash. */
#include <xxhash.h>
static void rehash(unsigned char *b)
{
    stb_header h;
    memcpy(&h, b, sizeof h);
    h.index_checksum = XXH3_64bits(b + h.meta_offset, h.meta_bytes + h.dir_bytes);
    memcpy(b, &h, sizeof h);
}
/* Locate tensor `name`'s directory entry fields. */
static unsigned char *dir_entry(unsigned char *b, const char *name)
{
    stb_header h;
    memcpy(&h, b, sizeof h);
    unsigned char *p = b + h.dir_offset;
    for (uint32_t i = 0; i < h.n_tensors; i++) {
        uint16_t nl;
        memcpy(&nl, p, 2);
        bool match = nl == strlen(name) && !memcmp(p + 2, name, nl);
        unsigned char *e = p + 2 + nl; /* type, ndim, dims..., offset, nbytes, checksum */
        if (match)
            return e;
        uint32_t ndim;
        memcpy(&ndim, e + 4, 4);
        p = e + 8 + 8 * ndim + 24;
    }
    return NULL;
}
static void set_u64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static void m_offset_oob(unsigned char *b, size_t *n)
{
    (void)n;
    set_u64(dir_entry(b, "c.weight") + 8 + 16, 1u << 20); /* offset far past EOF */
    rehash(b);
}
static void m_misaligned(unsigned char *b, size_t *n)
{
    (void)n;
    unsigned char *e = dir_entry(b, "c.weight");
    uint64_t off;
    memcpy(&off, e + 8 + 16, 8);
    set_u64(e + 8 + 16, off + 4);
    rehash(b);
}
static void m_shape(unsigned char *b, size_t *n)
{
    (void)n;
    set_u64(dir_entry(b, "a") + 8, 4); /* 4x5 f32 needs 80 bytes, 60 stored */
    rehash(b);
}
static void m_absurd_dim(unsigned char *b, size_t *n)
{
    (void)n;
    set_u64(dir_entry(b, "a") + 8, 1ull << 62);
    rehash(b);
}
static void m_overlap(unsigned char *b, size_t *n)
{
    (void)n;
    set_u64(dir_entry(b, "c.weight") + 8 + 16, 0); /* same offset as "a" */
    rehash(b);
}
static void m_bad_type(unsigned char *b, size_t *n)
{
    (void)n;
    uint32_t t = 250;
    memcpy(dir_entry(b, "b"), &t, 4);
    rehash(b);
}
/* .stb version 1 stored N:M tensors as pattern codes (docs/format.md) */
static void m_v1_nm(unsigned char *b, size_t *n)
{
    (void)n;
    uint32_t v = 1, t = BLLM_TYPE_NM48;
    memcpy(b + 8, &v, 4);
    memcpy(dir_entry(b, "b"), &t, 4);
    rehash(b);
}
static void m_index_flip(unsigned char *b, size_t *n) { (void)n; b[BLLM_STB_HEADER_BYTES + 3] ^= 0x40; }
static void m_data_flip(unsigned char *b, size_t *n) { b[*n - 1] ^= 0x01; }
static void m_counts(unsigned char *b, size_t *n)
{
    (void)n;
    stb_header h;
    memcpy(&h, b, sizeof h);
    h.n_tensors = 0xfffffff0u;
    memcpy(b, &h, sizeof h);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/bllm-stb-XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    float a[15], c[6];
    uint16_t b[7];
    for (int i = 0; i < 15; i++)
        a[i] = (float)i * 0.5f - 3.0f;
    for (int i = 0; i < 7; i++)
        b[i] = bllm_f32_to_f16((float)i / 3.0f);
    for (int i = 0; i < 6; i++)
        c[i] = -(float)i;
    char good[300];
    path_of(good, sizeof good, "good.stb");
    CHECK(write_sample(good, a, b, c) == 0, "writing the sample failed: %s", bllm_last_error());
    char tmpname[310];
    snprintf(tmpname, sizeof tmpname, "%s.tmp", good);
    CHECK(access(tmpname, F_OK) != 0, "temporary file left behind");
    test_round_trip(good, a, b, c);

    size_t len;
    unsigned char *g = slurp(good, &len);
    CHECK(g != NULL, "cannot read back the sample");
    if (g) {
        expect_refused(g, len, "wrong magic", m_magic, BLLM_ERR_FORMAT, "wrong magic", false);
        expect_refused(g, len, "GGUF given instead of .stb", m_gguf, BLLM_ERR_FORMAT, "bllm-convert", false);
        expect_refused(g, len, "empty file", m_empty, BLLM_ERR_FORMAT, "empty", false);
        expect_refused(g, len, "truncated header", m_trunc_header, BLLM_ERR_FORMAT, "truncated", false);
        expect_refused(g, len, "truncated data", m_trunc_data, BLLM_ERR_FORMAT, "truncated", false);
        expect_refused(g, len, "trailing garbage", m_trailing, BLLM_ERR_FORMAT, "trailing", false);
        expect_refused(g, len, "future version", m_version, BLLM_ERR_UNSUPPORTED, "version", false);
        expect_refused(g, len, "tensor offset past the end", m_offset_oob, BLLM_ERR_FORMAT, "outside the data", false);
        expect_refused(g, len, "misaligned tensor", m_misaligned, BLLM_ERR_FORMAT, "aligned", false);
        expect_refused(g, len, "shape/size mismatch", m_shape, BLLM_ERR_FORMAT, "needs", false);
        expect_refused(g, len, "absurd dimension", m_absurd_dim, BLLM_ERR_FORMAT, "absurd", false);
        expect_refused(g, len, "overlapping tensors", m_overlap, BLLM_ERR_FORMAT, "overlap", false);
        expect_refused(g, len, "unknown tensor type", m_bad_type, BLLM_ERR_FORMAT, "unknown type", false);
        expect_refused(g, len, "corrupt metadata byte", m_index_flip, BLLM_ERR_CHECKSUM, "checksum", false);
        expect_refused(g, len, "corrupt tensor byte (verify)", m_data_flip, BLLM_ERR_CHECKSUM, "c.weight", true);
        expect_refused(g, len, "absurd tensor count", m_counts, BLLM_ERR_FORMAT, "cannot fit", false);
        expect_refused(g, len, "N:M tensor in a version 1 file", m_v1_nm, BLLM_ERR_UNSUPPORTED, "quantize the model again",
                       false);
        /* version 1 files without N:M tensors still load */
        g[8] = 1;
        char v1[300];
        path_of(v1, sizeof v1, "v1.stb");
        spit(v1, g, len);
        test_round_trip(v1, a, b, c);
        free(g);
    }
    bllm_stb_file *f;
    char missing[300];
    path_of(missing, sizeof missing, "no-such.stb");
    CHECK(bllm_stb_open(missing, false, &f) == BLLM_ERR_IO && strstr(bllm_last_error(), "cannot open"),
          "missing file: %s", bllm_last_error());
    CHECK(bllm_stb_load(missing, false, &f) == BLLM_ERR_IO && strstr(bllm_last_error(), "cannot open"),
          "missing file (loaded): %s", bllm_last_error());

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", dir);
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
