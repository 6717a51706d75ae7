/* The stored tensors of an N:M-sparse model are N:M exactly: every stbllm
 * matrix of a .stb written by `bllm-quantize --method stbllm|pbs2p` is
 * dequantized, and in every aligned group of M inputs of every row exactly
 * the M - N_l pruned weights are 0 (N_l the block's N, from the file's
 * provenance: layer_nm_n, else nm_n), the stored mask keeps exactly N_l,
 * and so at least M - N_l of every M weights are 0. A kept weight may
 * itself decode to 0 (its region's mu and a equal in fp16, or a residual
 * that cancels the first order exactly: measured 358 of 26.5 million on
 * SmolLM2 4:8); those are counted and printed, not failures.
 *
 * usage: test_nm_model MODEL.stb [MIN_MATRICES] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bllm.h"
#include "runtime/format/binary.h"
#include "runtime/format/stb.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_nm_model MODEL.stb [MIN_MATRICES]\n");
        return 2;
    }
    int min_matrices = argc > 2 ? atoi(argv[2]) : 1;
    bllm_stb_file *f;
    if (bllm_stb_open(argv[1], true, &f)) {
        printf("FAIL: %s: %s\n", argv[1], bllm_last_error());
        return 1;
    }
    uint32_t n_default = 0, m = 0;
    const char *layers = NULL;
    size_t layers_len = 0;
    if (bllm_stb_get_u32(f, "provenance.quantization.nm_n", &n_default) ||
        bllm_stb_get_u32(f, "provenance.quantization.nm_m", &m) || m == 0) {
        printf("FAIL: %s has no provenance.quantization.nm_n / nm_m\n", argv[1]);
        return 1;
    }
    int layer_n[4096];
    int n_layers = 0;
    if (!bllm_stb_get_str(f, "provenance.quantization.layer_nm_n", &layers, &layers_len)) {
        char buf[16384];
        snprintf(buf, sizeof buf, "%.*s", (int)layers_len, layers);
        for (char *tok = strtok(buf, ","); tok && n_layers < 4096; tok = strtok(NULL, ","))
            layer_n[n_layers++] = atoi(tok);
    }
    int matrices = 0, failures = 0;
    uint64_t groups = 0, kept_zero = 0;
    for (int t = 0; t < bllm_stb_n_tensors(f); t++) {
        const bllm_stb_tensor *x = bllm_stb_tensor_at(f, t);
        if (x->type != BLLM_TYPE_STBLLM)
            continue;
        int layer = -1;
        if (sscanf(x->name, "blk.%d.", &layer) != 1 || layer < 0 || (n_layers && layer >= n_layers)) {
            printf("FAIL: %s: no layer number in the name, or beyond layer_nm_n\n", x->name);
            failures++;
            continue;
        }
        const int N = n_layers ? layer_n[layer] : (int)n_default;
        const int rows = (int)x->dims[0], cols = (int)x->dims[1];
        float *w = malloc((size_t)rows * cols * sizeof *w);
        bllm_binary_decomp d;
        if (!w || bllm_binary_dequantize(x->type, x->data, x->nbytes, NULL, rows, cols, w) ||
            bllm_binary_unpack(x->type, x->data, x->nbytes, NULL, rows, cols, &d)) {
            printf("FAIL: %s: %s\n", x->name, bllm_last_error());
            free(w);
            failures++;
            continue;
        }
        int bad = 0;
        for (size_t g = 0; g < (size_t)rows * cols; g += m) {
            int zeros = 0, kept = 0, pruned_nonzero = 0;
            for (uint32_t p = 0; p < m; p++) {
                zeros += w[g + p] == 0.0f;
                kept += d.mask[g + p];
                pruned_nonzero += !d.mask[g + p] && w[g + p] != 0.0f;
                kept_zero += d.mask[g + p] && w[g + p] == 0.0f;
            }
            groups++;
            if (kept != N || pruned_nonzero || zeros < (int)m - N) {
                if (bad++ < 3)
                    printf("FAIL: %s row %zu columns %zu..%zu: %d zeros, %d kept by the mask, want %d:%u\n",
                           x->name, g / (size_t)cols, g % (size_t)cols, g % (size_t)cols + m - 1, zeros, kept, N, m);
            }
        }
        failures += bad;
        matrices++;
        bllm_binary_decomp_free(&d);
        free(w);
    }
    if (matrices < min_matrices) {
        printf("FAIL: %d stbllm matrices, want at least %d\n", matrices, min_matrices);
        failures++;
    }
    printf("%s: %d stbllm matrices, %llu groups of %u checked, N per layer %s; %llu kept weights decode to 0\n",
           argv[1], matrices, (unsigned long long)groups, m, n_layers ? "from layer_nm_n" : "uniform",
           (unsigned long long)kept_zero);
    bllm_stb_close(f);
    printf(failures ? "FAIL\n" : "OK\n");
    return failures ? 1 : 0;
}
