/* Token -> text for the piece-based kinds (SPM, LLAMA2C). Both store
 * pieces as text, write bytes as "<0xHH>" BYTE tokens and prepend a dummy
 * space that decoding must drop again at the start of a text. */
#include <string.h>

#include "tokenizer/tok_internal.h"

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* "<0xHH>" -> byte, or -1. */
static int byte_piece(const char *s, size_t len) {
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int hi = hexval(s[3]), lo = hexval(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

int bllm_piece_decode(const bllm_tokenizer_spec *spec, bool spm_space_marker,
                      const char *unk_surface, int32_t prev, int32_t token, char *buf,
                      size_t cap) {
    if (token < 0 || (uint32_t)token >= spec->n_vocab) return -1;
    int32_t type = bllm_tok_type(spec, token);
    const char *s = spec->tokens[token];
    size_t len = spec->token_lens[token];
    size_t off = 0;
    if (type == BLLM_TOKTYPE_CONTROL) return 0;
    if (type == BLLM_TOKTYPE_UNKNOWN && unk_surface) {
        bllm_tok_emit(buf, cap, &off, unk_surface, strlen(unk_surface));
        return (int)off;
    }
    /* llama2.c marks bytes only by their "<0xHH>" text, so accept that too. */
    int b = byte_piece(s, len);
    if (b >= 0 && (type == BLLM_TOKTYPE_BYTE || !spec->token_types)) {
        char c = (char)b;
        bllm_tok_emit(buf, cap, &off, &c, 1);
        return (int)off;
    }
    bool strip = spec->add_space_prefix && (prev < 0 || prev == spec->bos_id);
    static const char marker[3] = {'\xe2', '\x96', '\x81'}; /* U+2581 "▁" */
    size_t i = 0;
    while (i < len) {
        if (spm_space_marker && i + 3 <= len && memcmp(s + i, marker, 3) == 0) {
            if (!(strip && i == 0)) bllm_tok_emit(buf, cap, &off, " ", 1);
            i += 3;
            continue;
        }
        if (!spm_space_marker && strip && i == 0 && s[0] == ' ') {
            i++;
            continue;
        }
        /* copy the run up to the next marker */
        size_t j = i + 1;
        while (j < len && !(spm_space_marker && j + 3 <= len && memcmp(s + j, marker, 3) == 0)) j++;
        bllm_tok_emit(buf, cap, &off, s + i, j - i);
        i = j;
    }
    return (int)off;
}
