// Thin C++ shim over SentencePiece. The ModelProto is serialized by hand
// (protobuf wire format, field numbers from sentencepiece_model.proto) so
// that neither protobuf headers nor the original tokenizer.model are needed.
#include <sentencepiece_processor.h>

#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <vector>

extern "C" {
#include "runtime/error.h"
#include "tokenizer/spm_shim.h"
}

struct bllm_spm {
    sentencepiece::SentencePieceProcessor sp;
};

namespace {

enum { WIRE_VARINT = 0, WIRE_LEN = 2, WIRE_FIXED32 = 5 };

// ModelProto / SentencePiece / TrainerSpec / NormalizerSpec field numbers
enum { MP_PIECES = 1, MP_TRAINER = 2, MP_NORMALIZER = 3 };
enum { SP_PIECE = 1, SP_SCORE = 2, SP_TYPE = 3 };
enum {
    TS_MODEL_TYPE = 3,
    TS_TREAT_WS_AS_SUFFIX = 24,
    TS_ALLOW_WS_ONLY_PIECES = 26,
    TS_BYTE_FALLBACK = 35,
    TS_UNK_ID = 40,
    TS_BOS_ID = 41,
    TS_EOS_ID = 42,
    TS_PAD_ID = 43,
};
enum { NS_NAME = 1, NS_ADD_DUMMY_PREFIX = 3, NS_REMOVE_EXTRA_WS = 4, NS_ESCAPE_WS = 5 };
enum { MODEL_BPE = 2 };

void put_varint(std::string &s, uint64_t v) {
    while (v >= 0x80) {
        s.push_back(static_cast<char>((v & 0x7F) | 0x80));
        v >>= 7;
    }
    s.push_back(static_cast<char>(v));
}

void put_tag(std::string &s, int field, int wire) {
    put_varint(s, static_cast<uint64_t>(field) << 3 | static_cast<uint64_t>(wire));
}

void put_bytes(std::string &s, int field, const char *p, size_t n) {
    put_tag(s, field, WIRE_LEN);
    put_varint(s, n);
    s.append(p, n);
}

void put_int(std::string &s, int field, int64_t v) {
    put_tag(s, field, WIRE_VARINT);
    put_varint(s, static_cast<uint64_t>(v)); // negative int32 -> 10 bytes, as protobuf does
}

void put_float(std::string &s, int field, float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    put_tag(s, field, WIRE_FIXED32);
    for (int i = 0; i < 4; i++) s.push_back(static_cast<char>((u >> (8 * i)) & 0xFF));
}

bool is_byte_piece(const char *s, size_t n) {
    auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
    return n == 6 && std::memcmp(s, "<0x", 3) == 0 && hex(s[3]) && hex(s[4]) && s[5] == '>';
}

// Piece type for the proto: the spec's, or derived from the special ids
// when the spec carries no types.
int piece_type(const bllm_tokenizer_spec *spec, uint32_t i) {
    int32_t t = bllm_tok_type(spec, static_cast<int32_t>(i));
    if (!spec->token_types && t == BLLM_TOKTYPE_NORMAL &&
        is_byte_piece(spec->tokens[i], spec->token_lens[i]))
        return BLLM_TOKTYPE_BYTE;
    return t;
}

bllm_status build_proto(const bllm_tokenizer_spec *spec, std::string &proto) {
    bool has_unk = false, has_bytes = false;
    std::string piece;
    for (uint32_t i = 0; i < spec->n_vocab; i++) {
        int type = piece_type(spec, i);
        // SentencePiece wants exactly one UNKNOWN piece; GGUF vocabs
        // sometimes type <unk> NORMAL but name it through unk_id.
        if (!spec->token_types || spec->token_types[i] != BLLM_TOKTYPE_UNKNOWN) {
            if (static_cast<int32_t>(i) == spec->unk_id && !has_unk) type = BLLM_TOKTYPE_UNKNOWN;
        }
        if (type == BLLM_TOKTYPE_UNKNOWN) {
            if (has_unk) type = BLLM_TOKTYPE_CONTROL;
            has_unk = true;
        }
        if (type == BLLM_TOKTYPE_BYTE) has_bytes = true;
        if (spec->token_lens[i] == 0)
            return bllm_fail(BLLM_ERR_FORMAT, "tokenizer: SentencePiece piece %u is empty", i);
        piece.clear();
        put_bytes(piece, SP_PIECE, spec->tokens[i], spec->token_lens[i]);
        put_float(piece, SP_SCORE, spec->scores[i]);
        put_int(piece, SP_TYPE, type);
        put_bytes(proto, MP_PIECES, piece.data(), piece.size());
    }
    if (!has_unk)
        return bllm_fail(BLLM_ERR_UNSUPPORTED,
                         "tokenizer: SentencePiece needs an unknown-token piece; the vocab has "
                         "no UNKNOWN token and no unk id");
    std::string ts;
    put_int(ts, TS_MODEL_TYPE, MODEL_BPE);
    put_int(ts, TS_TREAT_WS_AS_SUFFIX, 0);
    put_int(ts, TS_ALLOW_WS_ONLY_PIECES, 1);
    put_int(ts, TS_BYTE_FALLBACK, has_bytes ? 1 : 0);
    put_int(ts, TS_UNK_ID, spec->unk_id);
    put_int(ts, TS_BOS_ID, spec->bos_id);
    put_int(ts, TS_EOS_ID, spec->eos_id);
    put_int(ts, TS_PAD_ID, spec->pad_id);
    put_bytes(proto, MP_TRAINER, ts.data(), ts.size());
    std::string ns;
    put_bytes(ns, NS_NAME, "identity", 8);
    put_int(ns, NS_ADD_DUMMY_PREFIX, spec->add_space_prefix ? 1 : 0);
    put_int(ns, NS_REMOVE_EXTRA_WS, 0);
    put_int(ns, NS_ESCAPE_WS, 1);
    put_bytes(proto, MP_NORMALIZER, ns.data(), ns.size());
    return BLLM_OK;
}

} // namespace

extern "C" bllm_status bllm_spm_new(const bllm_tokenizer_spec *spec, bllm_spm **out) {
    *out = nullptr;
    try {
        std::string proto;
        bllm_status st = build_proto(spec, proto);
        if (st != BLLM_OK) return st;
        bllm_spm *s = new bllm_spm;
        auto status = s->sp.LoadFromSerializedProto(proto);
        if (!status.ok()) {
            std::string msg = status.ToString();
            delete s;
            return bllm_fail(BLLM_ERR_FORMAT, "tokenizer: SentencePiece rejected the vocab: %s",
                             msg.c_str());
        }
        *out = s;
        return BLLM_OK;
    } catch (const std::bad_alloc &) {
        return bllm_fail(BLLM_ERR_NOMEM, "tokenizer: out of memory building the SentencePiece model");
    } catch (const std::exception &e) {
        return bllm_fail(BLLM_ERR_FORMAT, "tokenizer: SentencePiece: %s", e.what());
    }
}

extern "C" void bllm_spm_free(bllm_spm *s) { delete s; }

extern "C" bllm_status bllm_spm_encode(const bllm_spm *s, const char *text, size_t len,
                                       bllm_tokvec *out) {
    try {
        std::vector<int> ids;
        auto status = s->sp.Encode(absl::string_view(text, len), &ids);
        if (!status.ok())
            return bllm_fail(BLLM_ERR_FORMAT, "tokenizer: SentencePiece encode failed: %s",
                             status.ToString().c_str());
        for (int id : ids) {
            bllm_status st = bllm_tokvec_push(out, id);
            if (st != BLLM_OK) return st;
        }
        return BLLM_OK;
    } catch (const std::bad_alloc &) {
        return bllm_fail(BLLM_ERR_NOMEM, "tokenizer: out of memory in SentencePiece");
    } catch (const std::exception &e) {
        return bllm_fail(BLLM_ERR_FORMAT, "tokenizer: SentencePiece: %s", e.what());
    }
}
