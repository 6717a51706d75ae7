/* Reads a SentencePiece tokenizer.model (a serialized ModelProto) into an
 * SPM spec. The wire format is parsed by hand (field numbers from
 * sentencepiece_model.proto). Only models the SPM kind reproduces exactly
 * are accepted: BPE model type, no normalization rules, whitespace kept and
 * escaped, no whitespace-as-suffix. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "tokenizer/tok_internal.h"

typedef struct {
    const unsigned char *p, *end;
} pb;

typedef struct {
    uint32_t field, wire;
    uint64_t v;                /* varint / fixed32 value */
    const unsigned char *data; /* LEN payload */
    size_t len;
} pb_field;

static bool pb_varint(pb *b, uint64_t *v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64 && b->p < b->end; shift += 7) {
        unsigned char c = *b->p++;
        r |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false;
}

/* Next field; returns 1, 0 at the end, -1 on corrupt input. */
static int pb_next(pb *b, pb_field *f) {
    if (b->p >= b->end) return 0;
    uint64_t key;
    if (!pb_varint(b, &key)) return -1;
    f->field = (uint32_t)(key >> 3);
    f->wire = (uint32_t)(key & 7);
    switch (f->wire) {
    case 0:
        return pb_varint(b, &f->v) ? 1 : -1;
    case 1:
        if (b->end - b->p < 8) return -1;
        b->p += 8;
        return 1;
    case 2: {
        uint64_t len;
        if (!pb_varint(b, &len) || len > (uint64_t)(b->end - b->p)) return -1;
        f->data = b->p;
        f->len = (size_t)len;
        b->p += len;
        return 1;
    }
    case 5:
        if (b->end - b->p < 4) return -1;
        f->v = (uint32_t)b->p[0] | (uint32_t)b->p[1] << 8 | (uint32_t)b->p[2] << 16 |
               (uint32_t)b->p[3] << 24;
        b->p += 4;
        return 1;
    default:
        return -1;
    }
}

typedef struct {
    int64_t model_type, unk_id, bos_id, eos_id, pad_id;
    bool ws_suffix;
    bool add_dummy_prefix, remove_extra_ws, escape_ws;
    size_t charsmap_len;
    char name[32];
} spm_settings;

static bllm_status parse_settings(const unsigned char *d, size_t n, bool trainer, spm_settings *s,
                                  const char *path) {
    pb b = {d, d + n};
    pb_field f;
    int r;
    while ((r = pb_next(&b, &f)) > 0) {
        if (trainer && f.wire == 0) {
            if (f.field == 3) s->model_type = (int64_t)f.v;
            else if (f.field == 24) s->ws_suffix = f.v != 0;
            else if (f.field == 40) s->unk_id = (int32_t)f.v;
            else if (f.field == 41) s->bos_id = (int32_t)f.v;
            else if (f.field == 42) s->eos_id = (int32_t)f.v;
            else if (f.field == 43) s->pad_id = (int32_t)f.v;
        } else if (!trainer) {
            if (f.field == 1 && f.wire == 2) {
                size_t k = f.len < sizeof s->name - 1 ? f.len : sizeof s->name - 1;
                memcpy(s->name, f.data, k);
                s->name[k] = '\0';
            } else if (f.field == 2 && f.wire == 2) {
                s->charsmap_len = f.len;
            } else if (f.wire == 0) {
                if (f.field == 3) s->add_dummy_prefix = f.v != 0;
                else if (f.field == 4) s->remove_extra_ws = f.v != 0;
                else if (f.field == 5) s->escape_ws = f.v != 0;
            }
        }
    }
    if (r < 0)
        return bllm_fail(BLLM_ERR_FORMAT, "tokenizer: %s: corrupt %s spec", path,
                         trainer ? "trainer" : "normalizer");
    return BLLM_OK;
}

bllm_status bllm_tokenizer_load_spm_model(const char *path, bllm_tokenizer_spec_buf *out) {
    memset(out, 0, sizeof *out);
    FILE *fp = fopen(path, "rb");
    if (!fp) return bllm_fail(BLLM_ERR_IO, "tokenizer: cannot open %s", path);
    unsigned char *data = NULL;
    size_t size = 0;
    bllm_status st = BLLM_OK;
    if (fseek(fp, 0, SEEK_END) == 0) {
        long end = ftell(fp);
        if (end >= 0 && fseek(fp, 0, SEEK_SET) == 0) {
            size = (size_t)end;
            data = malloc(size ? size : 1);
            if (data && fread(data, 1, size, fp) != size) {
                free(data);
                data = NULL;
            }
        }
    }
    fclose(fp);
    if (!data) return bllm_fail(BLLM_ERR_IO, "tokenizer: cannot read %s", path);

    /* proto defaults */
    spm_settings s = {.model_type = 1, .unk_id = 0, .bos_id = 1, .eos_id = 2, .pad_id = -1,
                      .add_dummy_prefix = true, .remove_extra_ws = true, .escape_ws = true};
    uint32_t n = 0;
    size_t strbytes = 0;
    pb b = {data, data + size};
    pb_field f;
    int r;
    while ((r = pb_next(&b, &f)) > 0) {
        if (f.field == 1 && f.wire == 2) {
            pb pp = {f.data, f.data + f.len};
            pb_field g;
            int rr;
            size_t plen = 0;
            while ((rr = pb_next(&pp, &g)) > 0)
                if (g.field == 1 && g.wire == 2) plen = g.len;
            if (rr < 0) break;
            strbytes += plen + 1;
            if (++n > (1u << 24)) break;
        } else if (f.field == 2 && f.wire == 2) {
            if ((st = parse_settings(f.data, f.len, true, &s, path))) goto fail;
        } else if (f.field == 3 && f.wire == 2) {
            if ((st = parse_settings(f.data, f.len, false, &s, path))) goto fail;
        }
    }
    if (r != 0 || n == 0 || n > (1u << 24)) {
        st = bllm_fail(BLLM_ERR_FORMAT, "tokenizer: %s is not a SentencePiece model (corrupt or empty)", path);
        goto fail;
    }
    if (s.model_type != 2) {
        st = bllm_fail(BLLM_ERR_UNSUPPORTED,
                       "tokenizer: %s: SentencePiece model type %lld (only BPE = 2 is supported)", path,
                       (long long)s.model_type);
        goto fail;
    }
    if (s.charsmap_len > 0 || s.remove_extra_ws || !s.escape_ws || s.ws_suffix) {
        st = bllm_fail(BLLM_ERR_UNSUPPORTED,
                       "tokenizer: %s: normalizer \"%s\" (rules %zu bytes, remove_extra_whitespaces "
                       "%d, escape_whitespaces %d, whitespace-as-suffix %d) is not supported; only "
                       "the identity normalizer as in Llama-2",
                       path, s.name, s.charsmap_len, s.remove_extra_ws, s.escape_ws, s.ws_suffix);
        goto fail;
    }

    if ((st = bllm_spec_store_alloc(out, n, strbytes))) goto fail;
    bllm_spec_store *store = out->priv;
    char *p = store->strings;
    uint32_t i = 0;
    b = (pb){data, data + size};
    while (pb_next(&b, &f) > 0) {
        if (f.field != 1 || f.wire != 2) continue;
        pb pp = {f.data, f.data + f.len};
        pb_field g;
        const unsigned char *piece = NULL;
        size_t plen = 0;
        uint32_t score_bits = 0;
        int64_t type = BLLM_TOKTYPE_NORMAL;
        while (pb_next(&pp, &g) > 0) {
            if (g.field == 1 && g.wire == 2) {
                piece = g.data;
                plen = g.len;
            } else if (g.field == 2 && g.wire == 5) {
                score_bits = (uint32_t)g.v;
            } else if (g.field == 3 && g.wire == 0) {
                type = (int64_t)g.v;
            }
        }
        if (type < 1 || type > BLLM_TOKTYPE_BYTE) {
            st = bllm_fail(BLLM_ERR_FORMAT, "tokenizer: %s: piece %u has bad type %lld", path, i,
                           (long long)type);
            goto fail;
        }
        if (plen) memcpy(p, piece, plen);
        p[plen] = '\0';
        store->tokens[i] = p;
        store->token_lens[i] = plen;
        memcpy(&store->scores[i], &score_bits, 4);
        store->types[i] = (int32_t)type;
        p += plen + 1;
        i++;
    }
    free(data);
    data = NULL;

    bllm_tokenizer_spec *sp = &out->spec;
    sp->kind = BLLM_TOK_SPM;
    sp->n_vocab = n;
    sp->tokens = store->tokens;
    sp->token_lens = store->token_lens;
    sp->scores = store->scores;
    sp->token_types = store->types;
#define ID_OR_NONE(x) ((x) >= 0 && (x) < (int64_t)n ? (int32_t)(x) : -1)
    sp->bos_id = ID_OR_NONE(s.bos_id);
    sp->eos_id = ID_OR_NONE(s.eos_id);
    sp->unk_id = ID_OR_NONE(s.unk_id);
    sp->pad_id = ID_OR_NONE(s.pad_id);
#undef ID_OR_NONE
    sp->eot_id = -1;
    sp->add_bos = sp->bos_id >= 0; /* Llama convention (HF add_bos_token) */
    sp->add_space_prefix = s.add_dummy_prefix;
    if ((st = bllm_tokenizer_spec_check(sp))) goto fail;
    return BLLM_OK;
fail:
    free(data);
    bllm_tokenizer_spec_buf_free(out);
    return st;
}
