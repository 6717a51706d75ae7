/* Bytes per weight as stored, and bytes read per generated token, from a
 * .stb tensor directory. Counting the bytes each tensor actually occupies
 * (not a nominal width) keeps bits/weight honest for packed types whose
 * scales, masks or indices live inside their blocks. */
#include "runtime/eval/bench.h"

#include <string.h>

#include "runtime/error.h"
#include "runtime/format/stb.h"

double bllm_bits_per_weight(uint64_t bytes, uint64_t weights)
{
    return weights ? 8.0 * (double)bytes / (double)weights : 0.0;
}

bllm_status bllm_weight_stats_of(const char *path, bllm_weight_stats *out)
{
    memset(out, 0, sizeof *out);
    bllm_stb_file *f = NULL;
    bllm_status s = bllm_stb_open(path, false, &f);
    if (s)
        return s;
    out->file_bytes = bllm_stb_file_bytes(f);
    out->n_tensors = bllm_stb_n_tensors(f);
    const bllm_stb_tensor *embd = NULL;
    bool has_head = false;
    for (int i = 0; i < out->n_tensors; i++) {
        const bllm_stb_tensor *t = bllm_stb_tensor_at(f, i);
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++)
            numel *= (uint64_t)t->dims[d];
        out->weight_bytes += t->nbytes;
        if (t->type == BLLM_TYPE_U8) {
            /* A companion (pb8's "X.salient"): its bytes belong to its
             * matrix, it adds no weights of its own. */
            if (strncmp(t->name, "blk.", 4) == 0)
                out->linear_bytes += t->nbytes;
            out->token_bytes += t->nbytes;
            continue;
        }
        out->n_weights += numel;
        if (t->ndim == 2 && strncmp(t->name, "blk.", 4) == 0) {
            out->n_linear += numel;
            out->linear_bytes += t->nbytes;
        }
        if (strcmp(t->name, "token_embd.weight") == 0)
            embd = t;
        else
            out->token_bytes += t->nbytes;
        if (strcmp(t->name, "output.weight") == 0)
            has_head = true;
    }
    if (embd && embd->dims[0] > 0) {
        out->token_bytes += embd->nbytes / (uint64_t)embd->dims[0]; /* one row looked up */
        if (!has_head)
            out->token_bytes += embd->nbytes; /* tied: the head reads all of it */
    }
    bllm_stb_close(f);
    return BLLM_OK;
}
