/* Test helper: exposes what the importers (runtime/import/source.h) and the .stb
 * reader see, so the Python tests can compare it with gguf-py, safetensors,
 * numpy and sentencepiece.
 *
 *   source_dump info   [-f FMT] [-t TOK] SRC            JSON: hparams, tokenizer
 *                                                       summary, tensors, sha256
 *   source_dump tensor [-f FMT] [-t TOK] SRC NAME OUT   raw F32 values of NAME
 *   source_dump vocab  [-f FMT] [-t TOK] SRC OUT        JSON: tokens (hex), scores,
 *                                                       types, merges (hex)
 *   source_dump stb-info FILE.stb                       JSON: metadata, tensors
 *   source_dump stb-tensor FILE.stb NAME OUT            raw F32 values of NAME
 *
 * Exit status 1 with the library's message on stderr when a call fails. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/import/source.h"
#include "runtime/format/stb.h"
#include "runtime/format/types.h"

static int die(const char *what, bllm_status st) {
    fprintf(stderr, "source_dump: %s: %s: %s\n", what, bllm_status_name(st), bllm_last_error());
    return 1;
}

static char *hex(const char *s, size_t n) {
    char *h = malloc(2 * n + 1);
    for (size_t i = 0; i < n; i++)
        sprintf(h + 2 * i, "%02x", (unsigned char)s[i]);
    h[2 * n] = '\0';
    return h;
}

static int print_json(cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    puts(s);
    free(s);
    cJSON_Delete(j);
    return 0;
}

static int write_f32(const char *path, const float *v, uint64_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(v, sizeof(float), n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "source_dump: cannot write %s\n", path);
        return 1;
    }
    return 0;
}

static cJSON *dims_json(int ndim, const int64_t *dims) {
    cJSON *a = cJSON_CreateArray();
    for (int d = 0; d < ndim; d++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber((double)dims[d]));
    return a;
}

static int cmd_info(bllm_source *s) {
    const bllm_llama_hparams *hp = bllm_source_hparams(s);
    const bllm_tokenizer_spec *t = bllm_source_tokenizer(s);
    cJSON *j = cJSON_CreateObject();
    static const char *kinds[] = {"auto", "gguf", "hf", "llama2c"};
    cJSON_AddStringToObject(j, "kind", kinds[bllm_source_get_kind(s)]);
    const char *sha = bllm_source_sha256(s);
    cJSON_AddStringToObject(j, "sha256", sha ? sha : "");
    cJSON *h = cJSON_AddObjectToObject(j, "hparams");
    cJSON_AddStringToObject(h, "name", hp->name);
    cJSON_AddNumberToObject(h, "n_vocab", hp->n_vocab);
    cJSON_AddNumberToObject(h, "dim", hp->dim);
    cJSON_AddNumberToObject(h, "hidden_dim", hp->hidden_dim);
    cJSON_AddNumberToObject(h, "n_layers", hp->n_layers);
    cJSON_AddNumberToObject(h, "n_heads", hp->n_heads);
    cJSON_AddNumberToObject(h, "n_kv_heads", hp->n_kv_heads);
    cJSON_AddNumberToObject(h, "head_dim", hp->head_dim);
    cJSON_AddNumberToObject(h, "max_seq_len", hp->max_seq_len);
    cJSON_AddNumberToObject(h, "rope_theta", hp->rope_theta);
    cJSON_AddNumberToObject(h, "norm_eps", hp->norm_eps);
    cJSON_AddNumberToObject(h, "rope_scaling", hp->rope_scaling);
    cJSON_AddNumberToObject(h, "rope_factor", hp->rope_factor);
    cJSON_AddNumberToObject(h, "rope_low_freq_factor", hp->rope_low_freq_factor);
    cJSON_AddNumberToObject(h, "rope_high_freq_factor", hp->rope_high_freq_factor);
    cJSON_AddNumberToObject(h, "rope_orig_max_seq", hp->rope_orig_max_seq);
    cJSON *k = cJSON_AddObjectToObject(j, "tokenizer");
    cJSON_AddNumberToObject(k, "kind", t->kind);
    cJSON_AddNumberToObject(k, "n_vocab", t->n_vocab);
    cJSON_AddNumberToObject(k, "n_merges", t->n_merges);
    if (t->pre)
        cJSON_AddStringToObject(k, "pre", t->pre);
    else
        cJSON_AddNullToObject(k, "pre");
    cJSON_AddNumberToObject(k, "bos_id", t->bos_id);
    cJSON_AddNumberToObject(k, "eos_id", t->eos_id);
    cJSON_AddNumberToObject(k, "unk_id", t->unk_id);
    cJSON_AddNumberToObject(k, "pad_id", t->pad_id);
    cJSON_AddNumberToObject(k, "eot_id", t->eot_id);
    cJSON_AddBoolToObject(k, "add_bos", t->add_bos);
    cJSON_AddBoolToObject(k, "add_space_prefix", t->add_space_prefix);
    cJSON_AddBoolToObject(k, "has_scores", t->scores != NULL);
    cJSON_AddBoolToObject(k, "has_types", t->token_types != NULL);
    cJSON_AddNumberToObject(k, "max_token_len", t->max_token_len);
    const char *tmpl = bllm_source_chat_template(s);
    if (tmpl)
        cJSON_AddStringToObject(j, "chat_template", tmpl);
    else
        cJSON_AddNullToObject(j, "chat_template");
    cJSON *ts = cJSON_AddArrayToObject(j, "tensors");
    for (int i = 0; i < bllm_source_n_tensors(s); i++) {
        const bllm_source_tensor *x = bllm_source_tensor_at(s, i);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", x->name);
        cJSON_AddItemToObject(o, "dims", dims_json(x->ndim, x->dims));
        cJSON_AddStringToObject(o, "src_type", x->src_type);
        cJSON_AddItemToArray(ts, o);
    }
    return print_json(j);
}

static int cmd_tensor(bllm_source *s, const char *name, const char *out) {
    for (int i = 0; i < bllm_source_n_tensors(s); i++) {
        const bllm_source_tensor *x = bllm_source_tensor_at(s, i);
        if (strcmp(x->name, name) != 0)
            continue;
        uint64_t n = 1;
        for (int d = 0; d < x->ndim; d++)
            n *= (uint64_t)x->dims[d];
        float *v = malloc(n * sizeof(float));
        bllm_status st = bllm_source_read_f32(s, i, v);
        int rc = st ? die(name, st) : write_f32(out, v, n);
        free(v);
        return rc;
    }
    fprintf(stderr, "source_dump: no tensor '%s'\n", name);
    return 1;
}

static int cmd_vocab(bllm_source *s, const char *out) {
    const bllm_tokenizer_spec *t = bllm_source_tokenizer(s);
    cJSON *j = cJSON_CreateObject();
    cJSON *tok = cJSON_AddArrayToObject(j, "tokens");
    cJSON *sc = cJSON_AddArrayToObject(j, "scores");
    cJSON *ty = cJSON_AddArrayToObject(j, "types");
    cJSON *mg = cJSON_AddArrayToObject(j, "merges");
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        char *h = hex(t->tokens[i], t->token_lens[i]);
        cJSON_AddItemToArray(tok, cJSON_CreateString(h));
        free(h);
        if (t->scores)
            cJSON_AddItemToArray(sc, cJSON_CreateNumber(t->scores[i]));
        if (t->token_types)
            cJSON_AddItemToArray(ty, cJSON_CreateNumber(t->token_types[i]));
    }
    for (uint32_t i = 0; i < t->n_merges; i++) {
        char *h = hex(t->merges[i], t->merge_lens[i]);
        cJSON_AddItemToArray(mg, cJSON_CreateString(h));
        free(h);
    }
    char *txt = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    FILE *f = fopen(out, "w");
    int rc = !f || fputs(txt, f) < 0 || fclose(f) != 0;
    free(txt);
    if (rc)
        fprintf(stderr, "source_dump: cannot write %s\n", out);
    return rc;
}

static int cmd_stb_info(const char *path) {
    bllm_stb_file *f;
    bllm_status st = bllm_stb_open(path, true, &f);
    if (st)
        return die(path, st);
    cJSON *j = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(j, "meta");
    for (int i = 0; i < bllm_stb_n_meta(f); i++) {
        const char *key = bllm_stb_meta_key(f, i);
        switch (bllm_stb_meta_type(f, i)) {
        case BLLM_META_STR: {
            const char *s;
            size_t len;
            bllm_stb_get_str(f, key, &s, &len);
            char *c = strndup(s, len);
            cJSON_AddStringToObject(meta, key, c);
            free(c);
            break;
        }
        case BLLM_META_F32: {
            float v;
            bllm_stb_get_f32(f, key, &v);
            cJSON_AddNumberToObject(meta, key, v);
            break;
        }
        case BLLM_META_BOOL: {
            bool v;
            bllm_stb_get_bool(f, key, &v);
            cJSON_AddBoolToObject(meta, key, v);
            break;
        }
        case BLLM_META_ARR: {
            bllm_stb_array a;
            bllm_stb_get_array(f, key, &a);
            cJSON_AddNumberToObject(meta, key, (double)a.count); /* element count */
            break;
        }
        default: {
            uint64_t v;
            int32_t iv;
            if (bllm_stb_get_u64(f, key, &v) == BLLM_OK)
                cJSON_AddNumberToObject(meta, key, (double)v);
            else if (bllm_stb_get_i32(f, key, &iv) == BLLM_OK)
                cJSON_AddNumberToObject(meta, key, iv);
            break;
        }
        }
    }
    cJSON *ts = cJSON_AddArrayToObject(j, "tensors");
    for (int i = 0; i < bllm_stb_n_tensors(f); i++) {
        const bllm_stb_tensor *t = bllm_stb_tensor_at(f, i);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON_AddStringToObject(o, "type", bllm_type_name(t->type));
        cJSON_AddItemToObject(o, "dims", dims_json(t->ndim, t->dims));
        cJSON_AddItemToArray(ts, o);
    }
    bllm_stb_close(f);
    return print_json(j);
}

static int cmd_stb_tensor(const char *path, const char *name, const char *out) {
    bllm_stb_file *f;
    bllm_status st = bllm_stb_open(path, false, &f);
    if (st)
        return die(path, st);
    const bllm_stb_tensor *t = bllm_stb_find_tensor(f, name);
    if (!t) {
        bllm_stb_close(f);
        fprintf(stderr, "source_dump: no tensor '%s' in %s\n", name, path);
        return 1;
    }
    uint64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= (uint64_t)t->dims[d];
    float *v = malloc(n * sizeof(float));
    const uint8_t *p = t->data;
    for (uint64_t i = 0; i < n; i++) {
        uint16_t h;
        switch (t->type) {
        case BLLM_TYPE_F32: memcpy(&v[i], p + 4 * i, 4); break;
        case BLLM_TYPE_F16: memcpy(&h, p + 2 * i, 2); v[i] = bllm_f16_to_f32(h); break;
        case BLLM_TYPE_BF16: memcpy(&h, p + 2 * i, 2); v[i] = bllm_bf16_to_f32(h); break;
        default: fprintf(stderr, "source_dump: unexpected type\n"); return 1;
        }
    }
    int rc = write_f32(out, v, n);
    free(v);
    bllm_stb_close(f);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: see the comment at the top of source_dump.c\n");
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "stb-info") == 0)
        return cmd_stb_info(argv[2]);
    if (strcmp(cmd, "stb-tensor") == 0 && argc == 5)
        return cmd_stb_tensor(argv[2], argv[3], argv[4]);
    bllm_source_kind kind = BLLM_SOURCE_AUTO;
    const char *tok = NULL;
    int i = 2;
    for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
        if (strcmp(argv[i], "-t") == 0)
            tok = argv[i + 1];
        else if (strcmp(argv[i], "-f") == 0)
            kind = strcmp(argv[i + 1], "gguf") == 0   ? BLLM_SOURCE_GGUF
                   : strcmp(argv[i + 1], "hf") == 0   ? BLLM_SOURCE_HF
                   : strcmp(argv[i + 1], "llama2c") == 0 ? BLLM_SOURCE_LLAMA2C
                                                         : BLLM_SOURCE_AUTO;
    }
    if (i >= argc)
        return 2;
    bllm_source *s;
    bllm_status st = bllm_source_open(argv[i], kind, tok, &s);
    if (st)
        return die(argv[i], st);
    int rc = 2;
    if (strcmp(cmd, "info") == 0)
        rc = cmd_info(s);
    else if (strcmp(cmd, "tensor") == 0 && i + 2 < argc)
        rc = cmd_tensor(s, argv[i + 1], argv[i + 2]);
    else if (strcmp(cmd, "vocab") == 0 && i + 1 < argc)
        rc = cmd_vocab(s, argv[i + 1]);
    bllm_source_close(s);
    return rc;
}
