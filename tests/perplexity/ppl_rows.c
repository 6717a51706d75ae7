/* Test driver for the scoring arithmetic of runtime/eval/perplexity.c: reads rows
 * of logits and prints what bllm_ppl_score_row makes of each, then the
 * summary of all of them, for test_ppl_math.py to compare with numpy.
 *
 *   ppl_rows FILE
 * FILE (little-endian): u32 n_rows, then per row
 *   u32 n_vocab, i32 target, u32 has_base, f32 logits[n_vocab],
 *   f32 base[n_vocab] (only when has_base)
 * Output: one line per row "nll kl same_top", then one line
 *   "summary tokens nll_mean nll_stderr ppl ppl_stderr kl_mean kl_stderr top1"
 * (KL fields are those of the rows that had a base). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "runtime/eval/perplexity.h"

static int rd(void *p, size_t n, FILE *f) { return fread(p, 1, n, f) == n ? 0 : -1; }

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: ppl_rows FILE\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    uint32_t n_rows;
    if (rd(&n_rows, 4, f)) {
        fprintf(stderr, "short file\n");
        return 1;
    }
    bllm_ppl_stats all = {0};
    for (uint32_t r = 0; r < n_rows; r++) {
        uint32_t n_vocab, has_base;
        int32_t target;
        if (rd(&n_vocab, 4, f) || rd(&target, 4, f) || rd(&has_base, 4, f) || n_vocab == 0 ||
            target < 0 || (uint32_t)target >= n_vocab) {
            fprintf(stderr, "bad row header %u\n", r);
            return 1;
        }
        float *logits = malloc(n_vocab * sizeof(float)), *base = has_base ? malloc(n_vocab * sizeof(float)) : NULL;
        if (!logits || (has_base && !base) || rd(logits, n_vocab * sizeof(float), f) ||
            (base && rd(base, n_vocab * sizeof(float), f))) {
            fprintf(stderr, "short row %u\n", r);
            return 1;
        }
        bllm_ppl_stats one = {0};
        bllm_ppl_score_row(&one, logits, base, (int)n_vocab, target);
        printf("%.17g %.17g %" PRIu64 "\n", one.sum_nll, one.sum_kl, one.n_same_top);
        bllm_ppl_stats_merge(&all, &one);
        free(logits);
        free(base);
    }
    fclose(f);
    bllm_ppl_summary s;
    bllm_ppl_summarize(&all, &s);
    printf("summary %" PRIu64 " %.17g %.17g %.17g %.17g %.17g %.17g %.17g\n", s.tokens, s.nll_mean, s.nll_stderr,
           s.ppl, s.ppl_stderr, s.kl_mean, s.kl_stderr, s.top1_agree);
    return 0;
}
