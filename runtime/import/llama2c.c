/* llama2.c checkpoints (karpathy/llama2.c) as a bllm_source.
 *
 * Legacy ("version 0") files: 7 int32 (dim, hidden_dim, n_layers, n_heads,
 * n_kv_heads, vocab_size, seq_len; a negative vocab_size means a separate
 * classifier follows), then F32 arrays in this order: token_embedding,
 * rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, freq_cis_real,
 * freq_cis_imag (skipped), [wcls]. Each per-layer array holds all layers.
 *
 * Version 1 files (export.py --version 1): u32 magic "ak42", int32 version,
 * the same 7 ints, u8 shared_classifier, zero padding to 256 bytes, then:
 * rms_att, rms_ffn, rms_final, token_embedding, wq, wk, wv, wo, w1, w2, w3,
 * [wcls]; no freq_cis.
 *
 * Matrices are [out][in] row-major, the PyTorch order; llama2.c already
 * rotates adjacent pairs, so nothing is permuted. w1 = gate, w3 = up,
 * w2 = down. The tokenizer comes from a separate tokenizer.bin. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/import/source_impl.h"

#define L2C_MAGIC 0x616b3432u
#define L2C_V1_HEADER 256u

typedef struct {
    bllm_mapped map;
    uint64_t *offset; /* per source tensor: byte offset into the file */
} l2c_impl;

static bllm_status l2c_read(bllm_source *s, int i, float *out) {
    l2c_impl *im = s->impl;
    const bllm_source_tensor *t = &s->tensors[i];
    uint64_t n = (uint64_t)t->dims[0] * (uint64_t)t->dims[1] * (uint64_t)t->dims[2] * (uint64_t)t->dims[3];
    memcpy(out, im->map.data + im->offset[i], n * sizeof(float));
    return BLLM_OK;
}

static void l2c_close(bllm_source *s) {
    l2c_impl *im = s->impl;
    if (!im)
        return;
    bllm_unmap_file(&im->map);
    free(im->offset);
    free(im);
    s->impl = NULL;
}

static const bllm_source_ops l2c_ops = {l2c_read, l2c_close};

enum { T_EMB, T_ATT_NORM, T_Q, T_K, T_V, T_O, T_FFN_NORM, T_GATE, T_DOWN, T_UP, T_OUT_NORM, T_FREQ, T_CLS, T_COUNT };

typedef struct {
    const char *name; /* per layer: the part after "blk.N." */
    bool per_layer;
    int64_t rows, cols; /* cols 0: 1-D */
} l2c_array;

static bllm_status add(bllm_source *s, l2c_impl *im, const char *name, int64_t rows, int64_t cols,
                       uint64_t off) {
    int64_t dims[2] = {rows, cols};
    int idx = bllm_source_add_tensor(s, name, cols ? 2 : 1, dims, "F32");
    if (idx < 0)
        return BLLM_ERR_FORMAT;
    im->offset[idx] = off;
    return BLLM_OK;
}

static bllm_status read_tokenizer(bllm_source *s, const char *path, uint32_t n_vocab) {
    bllm_status st = bllm_tokenizer_load_llama2c(path, &s->tok_buf);
    if (st != BLLM_OK)
        return st;
    s->tok = s->tok_buf.spec;
    /* llama2.c reads exactly vocab_size entries; any other count means the
     * tokenizer belongs to another model. */
    if (s->tok.n_vocab != n_vocab)
        return bllm_fail(BLLM_ERR_FORMAT, "'%s' has %u tokens but the checkpoint's vocabulary is "
                         "%u (wrong tokenizer for this model?)", path, s->tok.n_vocab, n_vocab);
    s->tok.eot_id = bllm_source_guess_eot(&s->tok);
    return BLLM_OK;
}

bllm_status bllm_source_open_llama2c(const char *path, const char *tokenizer_path, bllm_source *s) {
    l2c_impl *im = calloc(1, sizeof(*im));
    if (!im)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    s->ops = &l2c_ops;
    s->impl = im;
    bllm_status st = bllm_map_file(path, &im->map);
    if (st != BLLM_OK)
        return st;
    const uint8_t *d = im->map.data;
    uint64_t size = im->map.size;
    bool v1 = false;
    uint32_t magic = 0;
    if (size >= 4)
        memcpy(&magic, d, 4);
    int32_t h[7];
    uint64_t header;
    bool shared;
    if (magic == L2C_MAGIC) {
        int32_t version;
        if (size < L2C_V1_HEADER)
            return bllm_fail(BLLM_ERR_FORMAT, "'%s': truncated llama2.c header", path);
        memcpy(&version, d + 4, 4);
        if (version != 1)
            return bllm_fail(BLLM_ERR_UNSUPPORTED, "'%s': llama2.c format version %d is not "
                             "supported (0 and 1 are; 2 is int8-quantized)", path, version);
        memcpy(h, d + 8, sizeof(h));
        shared = d[36] != 0;
        header = L2C_V1_HEADER;
        v1 = true;
    } else {
        if (size < sizeof(h))
            return bllm_fail(BLLM_ERR_FORMAT, "'%s' is too short to be a llama2.c checkpoint", path);
        memcpy(h, d, sizeof(h));
        shared = h[5] > 0;
        header = sizeof(h);
    }
    int64_t dim = h[0], ff = h[1], L = h[2], nh = h[3], nkv = h[4], seq = h[6];
    int64_t V = h[5] < 0 ? -(int64_t)h[5] : h[5];
    if (dim <= 0 || ff <= 0 || L <= 0 || nh <= 0 || nkv <= 0 || V <= 0 || seq <= 0 ||
        dim > (1 << 16) || ff > (1 << 18) || L > 1024 || nh > dim || nkv > nh || V > (1 << 22) ||
        seq > (1 << 24) || dim % nh || nh % nkv || (dim / nh) % 2)
        return bllm_fail(BLLM_ERR_FORMAT, "'%s' is not a llama2.c checkpoint (header %d %d %d %d %d "
                         "%d %d is not a valid model shape)", path, h[0], h[1], h[2], h[3], h[4],
                         h[5], h[6]);
    int64_t hs = dim / nh, kvd = nkv * hs;
    l2c_array arr[T_COUNT] = {
        [T_EMB] = {"token_embd.weight", false, V, dim},
        [T_ATT_NORM] = {"attn_norm.weight", true, dim, 0},
        [T_Q] = {"attn_q.weight", true, dim, dim},
        [T_K] = {"attn_k.weight", true, kvd, dim},
        [T_V] = {"attn_v.weight", true, kvd, dim},
        [T_O] = {"attn_output.weight", true, dim, dim},
        [T_FFN_NORM] = {"ffn_norm.weight", true, dim, 0},
        [T_GATE] = {"ffn_gate.weight", true, ff, dim},
        [T_DOWN] = {"ffn_down.weight", true, dim, ff},
        [T_UP] = {"ffn_up.weight", true, ff, dim},
        [T_OUT_NORM] = {"output_norm.weight", false, dim, 0},
        [T_FREQ] = {NULL, false, v1 ? 0 : seq * hs, 0}, /* real and imaginary halves */
        [T_CLS] = {"output.weight", false, shared ? 0 : V, dim},
    };
    static const int legacy_order[] = {T_EMB, T_ATT_NORM, T_Q, T_K, T_V, T_O, T_FFN_NORM,
                                       T_GATE, T_DOWN, T_UP, T_OUT_NORM, T_FREQ, T_CLS};
    static const int v1_order[] = {T_ATT_NORM, T_FFN_NORM, T_OUT_NORM, T_EMB, T_Q, T_K, T_V,
                                   T_O, T_GATE, T_DOWN, T_UP, T_CLS};
    const int *order = v1 ? v1_order : legacy_order;
    int n_order = v1 ? (int)(sizeof(v1_order) / sizeof(int)) : (int)(sizeof(legacy_order) / sizeof(int));
    uint64_t start[T_COUNT] = {0};
    uint64_t off = header;
    for (int k = 0; k < n_order; k++) {
        const l2c_array *a = &arr[order[k]];
        start[order[k]] = off;
        uint64_t n = (uint64_t)a->rows * (uint64_t)(a->cols ? a->cols : 1) * (a->per_layer ? (uint64_t)L : 1);
        off += n * sizeof(float);
    }
    if (off != size)
        return bllm_fail(BLLM_ERR_FORMAT, "'%s': a llama2.c checkpoint with header %d %d %d %d %d %d "
                         "%d has %llu bytes, the file %llu (truncated, or not a llama2.c file)", path,
                         h[0], h[1], h[2], h[3], h[4], h[5], h[6], (unsigned long long)off,
                         (unsigned long long)size);

    s->hp = (bllm_llama_hparams){
        .n_vocab = (uint32_t)V, .dim = (uint32_t)dim, .hidden_dim = (uint32_t)ff,
        .n_layers = (uint32_t)L, .n_heads = (uint32_t)nh, .n_kv_heads = (uint32_t)nkv,
        .head_dim = (uint32_t)hs, .max_seq_len = (uint32_t)seq, .rope_theta = 10000.0f,
        .norm_eps = 1e-5f, .rope_scaling = BLLM_ROPE_SCALING_NONE, .rope_factor = 1.0f,
    };
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t bl = strcspn(base, ".");
    snprintf(s->hp.name, sizeof(s->hp.name), "%.*s", (int)(bl ? bl : strlen(base)), base);

    im->offset = calloc((size_t)(9 * L + 3), sizeof(uint64_t));
    if (!im->offset)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    if ((st = add(s, im, arr[T_EMB].name, V, dim, start[T_EMB])))
        return st;
    static const int layer_order[] = {T_ATT_NORM, T_Q, T_K, T_V, T_O, T_FFN_NORM, T_GATE, T_UP, T_DOWN};
    for (int64_t l = 0; l < L; l++)
        for (size_t k = 0; k < sizeof(layer_order) / sizeof(int); k++) {
            const l2c_array *a = &arr[layer_order[k]];
            uint64_t per = (uint64_t)a->rows * (uint64_t)(a->cols ? a->cols : 1) * sizeof(float);
            char name[96];
            snprintf(name, sizeof(name), "blk.%lld.%s", (long long)l, a->name);
            if ((st = add(s, im, name, a->rows, a->cols, start[layer_order[k]] + (uint64_t)l * per)))
                return st;
        }
    if ((st = add(s, im, arr[T_OUT_NORM].name, dim, 0, start[T_OUT_NORM])))
        return st;
    if (!shared && (st = add(s, im, arr[T_CLS].name, V, dim, start[T_CLS])))
        return st;
    if ((st = bllm_source_add_file(s, path)) || (st = bllm_source_add_file(s, tokenizer_path)))
        return st;
    return read_tokenizer(s, tokenizer_path, (uint32_t)V);
}
