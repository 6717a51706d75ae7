/* End to end: a model with packed binary matrices generates exactly what its
 * dequantized f32 copy generates.
 *
 * usage: test_packed_generate NAME PACKED.stb F32.stb N_GEN TOL N_THREADS PROMPT
 *
 * Both models run greedy decoding of N_GEN tokens after PROMPT, one token
 * per step, with the kernel set in use ($BLLM_KERNELS or the best one). The
 * token sequences must be equal and every step's logits within TOL
 * (absolute). Under the scalar kernels TOL is 0: the packed matmul sums
 * exactly like the f32 one over the dequantized weights, and f16 embeddings
 * hold the same values as their f32 copy, so the logits are bit-identical.
 * The packed file must actually hold packed matrices (else the test would
 * compare a model with itself). With N_THREADS > 1 the packed model also
 * runs on 1 thread and must give the same logits bit for bit. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bllm.h"
#include "runtime/format/stb.h"

static int missing_marker(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("FAIL: cannot open %s\n", path);
        return 1;
    }
    char buf[512] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    if (n >= 8 && !memcmp(buf, "MISSING:", 8)) {
        printf("FAIL: %s was not built: %s\n", path, buf);
        return 1;
    }
    return 0;
}

static int count_packed(const char *path, int *n_packed, char *first_type, size_t cap)
{
    bllm_stb_file *f;
    if (bllm_stb_open(path, false, &f)) {
        printf("FAIL: %s: %s\n", path, bllm_last_error());
        return 1;
    }
    *n_packed = 0;
    for (int i = 0; i < bllm_stb_n_tensors(f); i++) {
        const bllm_stb_tensor *t = bllm_stb_tensor_at(f, i);
        if (bllm_type_is_packed(t->type) && (*n_packed)++ == 0)
            snprintf(first_type, cap, "%s", bllm_type_name(t->type));
    }
    bllm_stb_close(f);
    return 0;
}

/* Greedy decoding; logits of every generated step into out[n_gen][n_vocab].
 * With forced != NULL the tokens fed back are forced[] (teacher forcing)
 * instead of the argmax, which is still stored in toks. */
static int generate(const char *path, const int32_t *prompt, int n_prompt, int n_gen, int n_threads, int32_t *toks,
                    float *out, int *n_vocab, const int32_t *forced)
{
    bllm_model *m;
    if (bllm_model_load(path, NULL, &m)) {
        printf("FAIL: loading %s: %s\n", path, bllm_last_error());
        return 1;
    }
    int V = bllm_model_get_info(m)->n_vocab;
    *n_vocab = V;
    /* f32 cache: the two models must differ by their kernels only, and the
     * f16 cache's rounding would amplify a tiny difference into a larger one */
    bllm_context_params cp = {.n_ctx = n_prompt + n_gen + 1, .n_threads = n_threads, .kv_type = BLLM_KV_F32};
    bllm_context *ctx;
    if (bllm_context_new(m, &cp, &ctx)) {
        printf("FAIL: context for %s: %s\n", path, bllm_last_error());
        bllm_model_free(m);
        return 1;
    }
    float *logits = malloc((size_t)V * sizeof(float));
    int rc = 0;
    if (bllm_eval(ctx, prompt, n_prompt, logits, false)) {
        printf("FAIL: eval %s: %s\n", path, bllm_last_error());
        rc = 1;
    }
    for (int i = 0; !rc && i < n_gen; i++) {
        memcpy(out + (size_t)i * V, logits, (size_t)V * sizeof(float));
        int best = 0;
        for (int v = 1; v < V; v++)
            if (logits[v] > logits[best])
                best = v;
        toks[i] = best;
        if (i + 1 < n_gen && bllm_eval(ctx, forced ? &forced[i] : &toks[i], 1, logits, false)) {
            printf("FAIL: eval %s: %s\n", path, bllm_last_error());
            rc = 1;
        }
    }
    free(logits);
    bllm_context_free(ctx);
    bllm_model_free(m);
    return rc;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 8 && argc != 9) {
        fprintf(stderr, "usage: %s NAME PACKED.stb F32.stb N_GEN TOL N_THREADS PROMPT [MIN_AGREE]\n", argv[0]);
        return 2;
    }
    const char *name = argv[1], *packed = argv[2], *ref = argv[3], *prompt_text = argv[7];
    int n_gen = atoi(argv[4]), n_threads = atoi(argv[6]);
    double tol = atof(argv[5]);
    bool forced = argc == 9;
    double min_agree = forced ? atof(argv[8]) : 1.0;
    if (n_gen < 1 || n_threads < 1 || !(tol >= 0) || !(min_agree >= 0 && min_agree <= 1)) {
        fprintf(stderr, "%s: bad arguments\n", argv[0]);
        return 2;
    }
    if (missing_marker(packed) || missing_marker(ref))
        return 1;
    int n_packed;
    char ptype[16] = "";
    if (count_packed(packed, &n_packed, ptype, sizeof ptype))
        return 1;
    if (!n_packed) {
        printf("FAIL: %s holds no packed matrix\n", packed);
        return 1;
    }

    /* Tokenize with the packed model's tokenizer. */
    bllm_model *m;
    if (bllm_model_load(packed, NULL, &m)) {
        printf("FAIL: loading %s: %s\n", packed, bllm_last_error());
        return 1;
    }
    int V = bllm_model_get_info(m)->n_vocab, V2 = 0;
    int32_t prompt[256];
    size_t n_prompt = 0;
    if (bllm_tokenize(m, prompt_text, strlen(prompt_text), true, true, prompt, 256, &n_prompt)) {
        printf("FAIL: tokenize: %s\n", bllm_last_error());
        return 1;
    }
    bllm_model_free(m);

    int32_t *tp = calloc((size_t)n_gen, sizeof *tp), *tr = calloc((size_t)n_gen, sizeof *tr);
    float *lp = malloc((size_t)n_gen * V * sizeof(float)), *lr = malloc((size_t)n_gen * V * sizeof(float));
    if (generate(ref, prompt, (int)n_prompt, n_gen, n_threads, tr, lr, &V2, NULL))
        return 1;
    if (V2 != V) {
        printf("FAIL: vocabularies differ (%d, %d)\n", V, V2);
        return 1;
    }
    if (generate(packed, prompt, (int)n_prompt, n_gen, n_threads, tp, lp, &V2, forced ? tr : NULL))
        return 1;

    /* The thread count must not change a bit: each row of each product is
     * computed whole by one thread, whichever takes it, by the kernel
     * route one call over the whole batch would take. */
    int thread_diff = -1;
    if (n_threads > 1) {
        int32_t *t1 = calloc((size_t)n_gen, sizeof *t1);
        float *l1 = malloc((size_t)n_gen * V * sizeof(float));
        if (generate(packed, prompt, (int)n_prompt, n_gen, 1, t1, l1, &V2, forced ? tr : NULL))
            return 1;
        for (int i = 0; i < n_gen && thread_diff < 0; i++)
            if (t1[i] != tp[i] || memcmp(l1 + (size_t)i * V, lp + (size_t)i * V, (size_t)V * sizeof(float)))
                thread_diff = i;
        free(t1);
        free(l1);
    }

    int first_diff = -1, agree = 0;
    for (int i = 0; i < n_gen; i++) {
        agree += tp[i] == tr[i];
        if (tp[i] != tr[i] && first_diff < 0)
            first_diff = i;
    }
    double worst = 0, min_margin = INFINITY, sq = 0;
    int worst_step = 0;
    /* greedy: after the first difference the sequences are unrelated */
    int steps = forced || first_diff < 0 ? n_gen : first_diff + 1;
    for (int i = 0; i < steps; i++) {
        const float *a = lp + (size_t)i * V, *b = lr + (size_t)i * V;
        float top1 = -INFINITY, top2 = -INFINITY;
        for (int v = 0; v < V; v++) {
            double d = fabs((double)a[v] - b[v]);
            sq += d * d;
            if (!(d <= worst)) /* NaN counts as worst */
                worst = isnan(d) ? INFINITY : d, worst_step = i;
            if (b[v] > top1)
                top2 = top1, top1 = b[v];
            else if (b[v] > top2)
                top2 = b[v];
        }
        min_margin = fmin(min_margin, (double)top1 - top2);
    }
    printf("%s (%d %s matrices), kernels %s, %d threads: prompt %zu tokens, %d generated%s\n", name, n_packed, ptype,
           bllm_kernel_name(), n_threads, n_prompt, n_gen,
           forced ? " (packed model teacher-forced on the f32 copy's tokens)" : "");
    printf("  f32 copy:");
    for (int i = 0; i < n_gen; i++)
        printf(" %d", tr[i]);
    printf("\n  packed:  ");
    for (int i = 0; i < n_gen; i++)
        printf(" %d", tp[i]);
    const double rms = sqrt(sq / ((double)steps * V));
    printf("\n  max |logit(packed) - logit(f32 copy)| = %.3g at step %d (tolerance %.3g), RMS %.3g; smallest "
           "top-1/top-2 margin of the f32 copy %.3g; argmax agreement %d/%d\n", worst, worst_step, tol, rms,
           min_margin, agree, n_gen);
    int rc = 0;
    if (thread_diff >= 0) {
        printf("FAIL: the packed model on %d threads and on 1 differ at step %d\n", n_threads, thread_diff);
        rc = 1;
    }
    if (!forced && first_diff >= 0) {
        printf("FAIL: generated tokens differ from step %d: packed %d, f32 copy %d\n", first_diff, tp[first_diff],
               tr[first_diff]);
        rc = 1;
    }
    if (forced && agree < min_agree * n_gen) {
        printf("FAIL: argmax agrees at %d of %d steps, below %.2f\n", agree, n_gen, min_agree);
        rc = 1;
    }
    if (!(worst <= tol)) {
        printf("FAIL: logits differ by %.3g > %.3g\n", worst, tol);
        rc = 1;
    }
    if (!rc)
        printf("OK\n");
    free(tp), free(tr), free(lp), free(lr);
    return rc;
}
