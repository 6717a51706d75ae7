/* Unit checks of the tokenizer front end on tiny hand-made vocabularies:
 * the output-buffer contract, special-token splitting (leftmost-longest,
 * CONTROL only with parse_special, USER_DEFINED always), decode edge cases,
 * spec validation, and the .stb metadata round trip with its error paths.
 * No data files needed. Writes temporary .stb files in $TMPDIR or /tmp. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/format/stb.h"
#include "tokenizer/tokenizer.h"

static int n_pass, n_fail;

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        if (cond) {                                                                            \
            n_pass++;                                                                          \
        } else {                                                                               \
            n_fail++;                                                                          \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                        \
            printf(__VA_ARGS__);                                                               \
            printf(" [last error: %s]\n", bllm_last_error());                                  \
        }                                                                                      \
    } while (0)

/* ---- a tiny byte-level BPE vocab ---- */
static const char *bpe_toks[] = {"a", "b", "ab", "\xc4\xa0" /* Ġ */, "\xc4\xa0" "ab", "<|x|>",
                                 "<|x|>y", "<u>", "y", "!"};
enum { T_A, T_B, T_AB, T_SP, T_SPAB, T_X, T_XY, T_U, T_Y, T_BANG, N_BPE };
static const char *bpe_merges[] = {"a b", "\xc4\xa0 ab"};
static size_t bpe_lens[N_BPE], merge_lens[2];
static int32_t bpe_types[N_BPE] = {1, 1, 1, 1, 1, 3, 3, 4, 1, 1};

static bllm_tokenizer_spec bpe_spec(void) {
    for (int i = 0; i < N_BPE; i++) bpe_lens[i] = strlen(bpe_toks[i]);
    for (int i = 0; i < 2; i++) merge_lens[i] = strlen(bpe_merges[i]);
    bllm_tokenizer_spec s = {
        .kind = BLLM_TOK_BPE, .n_vocab = N_BPE, .tokens = bpe_toks, .token_lens = bpe_lens,
        .token_types = bpe_types, .n_merges = 2, .merges = bpe_merges, .merge_lens = merge_lens,
        .pre = "gpt2", .bos_id = T_X, .eos_id = -1, .unk_id = -1, .pad_id = -1, .eot_id = -1};
    return s;
}

static bool ids_eq(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

static void test_bpe(void) {
    bllm_tokenizer_spec s = bpe_spec();
    bllm_tokenizer *t;
    CHECK(bllm_tokenizer_new(&s, &t) == BLLM_OK, "tiny BPE tokenizer builds");
    if (!t) return;
    int32_t ids[16];
    size_t n = 99;

    CHECK(bllm_tokenizer_encode(t, "ab ab", 5, false, false, ids, 16, &n) == BLLM_OK, "encode");
    int32_t want1[] = {T_AB, T_SPAB};
    CHECK(ids_eq(ids, n, want1, 2), "\"ab ab\" -> ab, Gab (got %zu tokens)", n);

    /* too small a buffer: ARG, with the count needed */
    n = 0;
    CHECK(bllm_tokenizer_encode(t, "ab ab", 5, false, false, ids, 1, &n) == BLLM_ERR_ARG && n == 2,
          "cap 1 -> BLLM_ERR_ARG and n = 2 (n = %zu)", n);
    CHECK(bllm_tokenizer_encode(t, "ab", 2, true, false, NULL, 0, &n) == BLLM_ERR_ARG && n == 2,
          "size query with add_bos counts BOS (n = %zu)", n);
    CHECK(bllm_tokenizer_encode(t, "", 0, false, false, NULL, 0, &n) == BLLM_OK && n == 0,
          "empty text -> 0 tokens");
    CHECK(bllm_tokenizer_encode(t, NULL, 3, false, false, ids, 16, &n) == BLLM_ERR_ARG,
          "NULL text with a length is rejected");

    /* specials: longest first, CONTROL only with parse_special, USER_DEFINED always */
    const char *txt = "a<|x|>y<|x|>!<u>b";
    CHECK(bllm_tokenizer_encode(t, txt, strlen(txt), false, true, ids, 16, &n) == BLLM_OK, "special");
    int32_t want2[] = {T_A, T_XY, T_X, T_BANG, T_U, T_B};
    CHECK(ids_eq(ids, n, want2, 6), "parse_special on: a <|x|>y <|x|> ! <u> b (got %zu tokens)", n);
    CHECK(bllm_tokenizer_encode(t, txt, strlen(txt), false, false, ids, 16, &n) == BLLM_OK, "plain");
    bool has_control = false, has_user = false;
    for (size_t i = 0; i < n; i++) {
        has_control |= ids[i] == T_X || ids[i] == T_XY;
        has_user |= ids[i] == T_U;
    }
    CHECK(!has_control && has_user, "parse_special off: no CONTROL ids, USER_DEFINED kept");

    /* decode */
    char buf[16];
    CHECK(bllm_tokenizer_decode_token(t, -1, T_SPAB, buf, sizeof buf) == 3 && !memcmp(buf, " ab", 3),
          "Gab decodes to \" ab\"");
    CHECK(bllm_tokenizer_decode_token(t, -1, T_X, buf, sizeof buf) == 0, "CONTROL decodes to nothing");
    CHECK(bllm_tokenizer_decode_token(t, -1, T_U, buf, sizeof buf) == 3 && !memcmp(buf, "<u>", 3),
          "USER_DEFINED decodes to its text");
    CHECK(bllm_tokenizer_decode_token(t, -1, N_BPE, buf, sizeof buf) == -1, "out-of-range id -> -1");
    CHECK(bllm_tokenizer_decode_token(t, -1, -5, buf, sizeof buf) == -1, "negative id -> -1");
    memset(buf, 0, sizeof buf);
    CHECK(bllm_tokenizer_decode_token(t, -1, T_SPAB, buf, 2) == 3 && !memcmp(buf, " a", 2) && !buf[2],
          "short buffer: full count, truncated prefix");
    CHECK(bllm_tokenizer_n_vocab(t) == N_BPE, "n_vocab");
    bllm_tokenizer_free(t);

    s.pre = "no-such-pre";
    bllm_status st = bllm_tokenizer_new(&s, &t);
    CHECK(st == BLLM_ERR_UNSUPPORTED && strstr(bllm_last_error(), "no-such-pre"),
          "unknown pre-tokenizer -> UNSUPPORTED naming it");
}

static void test_spec_check(void) {
    bllm_tokenizer_spec s = bpe_spec();
    bllm_tokenizer *t = NULL;
    s.bos_id = N_BPE;
    CHECK(bllm_tokenizer_new(&s, &t) == BLLM_ERR_FORMAT && strstr(bllm_last_error(), "BOS"),
          "BOS id out of range -> FORMAT");
    s = bpe_spec();
    int32_t bad_types[N_BPE];
    memcpy(bad_types, bpe_types, sizeof bad_types);
    bad_types[3] = 9;
    s.token_types = bad_types;
    CHECK(bllm_tokenizer_new(&s, &t) == BLLM_ERR_FORMAT, "token type 9 -> FORMAT");
    s = bpe_spec();
    s.kind = BLLM_TOK_SPM; /* no scores */
    CHECK(bllm_tokenizer_new(&s, &t) == BLLM_ERR_FORMAT && strstr(bllm_last_error(), "scores"),
          "SPM without scores -> FORMAT");
    s = bpe_spec();
    s.n_vocab = 0;
    CHECK(bllm_tokenizer_new(&s, &t) == BLLM_ERR_FORMAT, "empty vocab -> FORMAT");
    CHECK(t == NULL, "no tokenizer on failure");
}

/* ---- a tiny SentencePiece vocab without token types (derived from ids) ---- */
static void test_spm(void) {
    const char *toks[] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81", "a", "b", "\xe2\x96\x81" "a",
                          "\xe2\x96\x81" "ab"};
    size_t lens[8];
    for (int i = 0; i < 8; i++) lens[i] = strlen(toks[i]);
    float scores[8] = {0, 0, 0, -1, -2, -3, -4, -5};
    bllm_tokenizer_spec s = {.kind = BLLM_TOK_SPM, .n_vocab = 8, .tokens = toks, .token_lens = lens,
                             .scores = scores, .bos_id = 1, .eos_id = 2, .unk_id = 0, .pad_id = -1,
                             .eot_id = -1, .add_bos = true, .add_space_prefix = true};
    bllm_tokenizer *t;
    CHECK(bllm_tokenizer_new(&s, &t) == BLLM_OK, "tiny SPM tokenizer builds");
    if (!t) return;
    int32_t ids[8];
    size_t n;
    CHECK(bllm_tokenizer_encode(t, "ab", 2, true, false, ids, 8, &n) == BLLM_OK && n == 2 &&
              ids[0] == 1 && ids[1] == 7,
          "\"ab\" with BOS -> <s> _ab");
    char buf[8];
    CHECK(bllm_tokenizer_decode_token(t, 1, 7, buf, sizeof buf) == 2 && !memcmp(buf, "ab", 2),
          "dummy-prefix space dropped after BOS");
    CHECK(bllm_tokenizer_decode_token(t, 4, 7, buf, sizeof buf) == 3 && !memcmp(buf, " ab", 3),
          "space kept mid-text");
    CHECK(bllm_tokenizer_decode_token(t, -1, 0, buf, sizeof buf) == 5, "<unk> decodes to \" \\u2047 \"");
    CHECK(bllm_tokenizer_encode(t, "<s>a", 4, false, true, ids, 8, &n) == BLLM_OK && n == 2 &&
              ids[0] == 1 && ids[1] == 6,
          "parse_special splits <s> (derived CONTROL)");
    bllm_tokenizer_free(t);
}

/* ---- .stb round trip and read-side validation ---- */
static char tmp_path[512];

static bllm_status write_stb(bllm_stb_writer *w) {
    bllm_status st = bllm_stb_write_begin(w, tmp_path);
    if (!st) st = bllm_stb_write_finish(w);
    bllm_stb_writer_free(w);
    return st;
}

static bllm_status read_back(bllm_tokenizer_spec *out, bllm_stb_file **f) {
    bllm_status st = bllm_stb_open(tmp_path, false, f);
    if (st) return st;
    return bllm_tokenizer_spec_from_stb(*f, out);
}

static void test_stb(void) {
    const char *dir = getenv("TMPDIR");
    snprintf(tmp_path, sizeof tmp_path, "%s/bllm_tok_spec_%d.stb", dir && *dir ? dir : "/tmp",
             (int)getpid());
    bllm_tokenizer_spec s = bpe_spec();
    s.eot_id = T_U;
    s.add_bos = true;
    s.max_token_len = 7;
    bllm_stb_writer *w = bllm_stb_writer_new();
    CHECK(bllm_tokenizer_spec_to_stb(&s, w) == BLLM_OK, "spec_to_stb");
    CHECK(write_stb(w) == BLLM_OK, "write .stb");
    bllm_tokenizer_spec r;
    bllm_stb_file *f = NULL;
    CHECK(read_back(&r, &f) == BLLM_OK, "spec_from_stb");
    bool same = r.kind == s.kind && r.n_vocab == s.n_vocab && r.n_merges == s.n_merges &&
                r.bos_id == s.bos_id && r.eos_id == -1 && r.eot_id == T_U && r.add_bos &&
                !r.add_space_prefix && r.max_token_len == 7 && r.pre && !strcmp(r.pre, "gpt2") &&
                r.token_types && !r.scores;
    for (uint32_t i = 0; same && i < r.n_vocab; i++)
        same = r.token_lens[i] == bpe_lens[i] && !memcmp(r.tokens[i], bpe_toks[i], bpe_lens[i]) &&
               r.token_types[i] == bpe_types[i];
    for (uint32_t i = 0; same && i < r.n_merges; i++)
        same = r.merge_lens[i] == merge_lens[i] && !memcmp(r.merges[i], bpe_merges[i], merge_lens[i]);
    CHECK(same, "every field survives the .stb round trip");
    bllm_tokenizer_spec_release(&r);
    /* stored compactly: types as bytes, merges as token-id pairs */
    bllm_stb_array arr;
    CHECK(bllm_stb_get_array(f, "tokenizer.token_types", &arr) == BLLM_OK && arr.elem_type == BLLM_META_U8 &&
              arr.count == N_BPE, "token types stored as U8");
    CHECK(bllm_stb_get_array(f, "tokenizer.merge_ids", &arr) == BLLM_OK && arr.elem_type == BLLM_META_U16 &&
              arr.count == 4 && bllm_stb_array_u16(&arr, 0) == T_A && bllm_stb_array_u16(&arr, 1) == T_B &&
              bllm_stb_array_u16(&arr, 2) == T_SP && bllm_stb_array_u16(&arr, 3) == T_AB,
          "merges stored as U16 id pairs (a b -> %d %d, G ab -> %d %d)", T_A, T_B, T_SP, T_AB);
    CHECK(bllm_stb_get_array(f, "tokenizer.merges", &arr) == BLLM_ERR_NOT_FOUND, "no merge strings besides");
    bllm_stb_close(f);

    /* a merge whose halves are not both tokens keeps the strings */
    const char *odd_merges[] = {"a b", "a zz"};
    size_t odd_lens[] = {3, 4};
    bllm_tokenizer_spec so = s;
    so.merges = odd_merges;
    so.merge_lens = odd_lens;
    w = bllm_stb_writer_new();
    CHECK(bllm_tokenizer_spec_to_stb(&so, w) == BLLM_OK && write_stb(w) == BLLM_OK, "write odd merges");
    f = NULL;
    CHECK(read_back(&r, &f) == BLLM_OK && r.n_merges == 2 && r.merge_lens[1] == 4 && !memcmp(r.merges[1], "a zz", 4),
          "odd merges round trip as strings");
    CHECK(bllm_stb_get_array(f, "tokenizer.merges", &arr) == BLLM_OK && arr.elem_type == BLLM_META_STR,
          "odd merges stored as strings");
    bllm_tokenizer_spec_release(&r);
    bllm_stb_close(f);

    /* files from before version 3: I32 types, string merges */
    w = bllm_stb_writer_new();
    bllm_stb_set_str(w, "tokenizer.kind", "bpe", 3);
    bllm_stb_set_arr_str(w, "tokenizer.tokens", bpe_toks, bpe_lens, N_BPE);
    bllm_stb_set_arr_i32(w, "tokenizer.token_types", bpe_types, N_BPE);
    bllm_stb_set_arr_str(w, "tokenizer.merges", bpe_merges, merge_lens, 2);
    CHECK(write_stb(w) == BLLM_OK, "write old-style .stb");
    f = NULL;
    same = read_back(&r, &f) == BLLM_OK && r.n_merges == 2 && r.token_types;
    for (uint32_t i = 0; same && i < N_BPE; i++) same = r.token_types[i] == bpe_types[i];
    for (uint32_t i = 0; same && i < 2; i++)
        same = r.merge_lens[i] == merge_lens[i] && !memcmp(r.merges[i], bpe_merges[i], merge_lens[i]);
    CHECK(same, "I32 types and string merges still read");
    bllm_tokenizer_spec_release(&r);
    bllm_stb_close(f);

    /* merge ids out of range or unpaired */
    for (int bad = 0; bad < 2; bad++) {
        w = bllm_stb_writer_new();
        bllm_stb_set_str(w, "tokenizer.kind", "bpe", 3);
        bllm_stb_set_arr_str(w, "tokenizer.tokens", bpe_toks, bpe_lens, N_BPE);
        const uint16_t ids[4] = {T_A, T_B, T_SP, bad ? T_AB : 4000};
        bllm_stb_set_arr_u16(w, "tokenizer.merge_ids", ids, bad ? 3 : 4);
        write_stb(w);
        f = NULL;
        bllm_status sb = read_back(&r, &f);
        CHECK(sb == BLLM_ERR_FORMAT && strstr(bllm_last_error(), bad ? "pairs" : "token 4000"),
              "merge_ids %s -> FORMAT", bad ? "of odd count" : "naming token 4000");
        bllm_stb_close(f);
    }

    /* scores count mismatch */
    w = bllm_stb_writer_new();
    float sc[3] = {0, 0, 0};
    bllm_stb_set_str(w, "tokenizer.kind", "bpe", 3);
    bllm_stb_set_arr_str(w, "tokenizer.tokens", bpe_toks, bpe_lens, N_BPE);
    bllm_stb_set_arr_f32(w, "tokenizer.scores", sc, 3);
    CHECK(write_stb(w) == BLLM_OK, "write bad .stb");
    f = NULL;
    bllm_status st = read_back(&r, &f);
    CHECK(st == BLLM_ERR_FORMAT && strstr(bllm_last_error(), "tokenizer.scores"),
          "scores count mismatch -> FORMAT naming the key");
    CHECK(r.tokens == NULL, "failed read leaves an empty spec");
    bllm_stb_close(f);

    /* id out of range */
    w = bllm_stb_writer_new();
    bllm_stb_set_str(w, "tokenizer.kind", "llama2c", 7);
    bllm_stb_set_arr_str(w, "tokenizer.tokens", bpe_toks, bpe_lens, N_BPE);
    float sc10[N_BPE] = {0};
    bllm_stb_set_arr_f32(w, "tokenizer.scores", sc10, N_BPE);
    bllm_stb_set_i32(w, "tokenizer.eos_id", 1000);
    write_stb(w);
    f = NULL;
    st = read_back(&r, &f);
    CHECK(st == BLLM_ERR_FORMAT && strstr(bllm_last_error(), "EOS"), "EOS id 1000 -> FORMAT");
    bllm_stb_close(f);

    /* unknown kind, missing tokenizer */
    w = bllm_stb_writer_new();
    bllm_stb_set_str(w, "tokenizer.kind", "wordpiece", 9);
    write_stb(w);
    f = NULL;
    st = read_back(&r, &f);
    CHECK(st == BLLM_ERR_UNSUPPORTED && strstr(bllm_last_error(), "wordpiece"), "unknown kind");
    bllm_stb_close(f);
    w = bllm_stb_writer_new();
    bllm_stb_set_u32(w, "llama.dim", 8);
    write_stb(w);
    f = NULL;
    st = read_back(&r, &f);
    CHECK(st == BLLM_ERR_NOT_FOUND, "no tokenizer keys -> NOT_FOUND");
    bllm_stb_close(f);

    /* tokens of the wrong element type */
    w = bllm_stb_writer_new();
    bllm_stb_set_str(w, "tokenizer.kind", "bpe", 3);
    bllm_stb_set_arr_f32(w, "tokenizer.tokens", sc, 3);
    write_stb(w);
    f = NULL;
    st = read_back(&r, &f);
    CHECK(st == BLLM_ERR_FORMAT && strstr(bllm_last_error(), "tokenizer.tokens"),
          "tokens as floats -> FORMAT");
    bllm_stb_close(f);
    unlink(tmp_path);
}

int main(void) {
    test_bpe();
    test_spec_check();
    test_spm();
    test_stb();
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
