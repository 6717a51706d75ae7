#include "runtime/quant/nm_alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"

#define OUTLIER_TIMES 6.0 /* a score is an outlier above 6x its matrix's mean */
#define LAMBDA 0.08       /* OWL's range of the keep ratio: +-lambda */

typedef struct {
    bllm_nm_alloc_mode mode;
    const bllm_engine_params *base;
    int n_layers;
    double *outl, *weights;  /* outlier mode: outlier weights, all weights per block */
    double *err;             /* search mode: [layer][3] summed squared rel. errors at N-1, N, N+1 */
} probe_ctx;

static bllm_status probe(void *arg, int layer, const char *name, const float *w, int rows, int cols, const double *H,
                         const bllm_gptq_hinv *hinv, bllm_pool *pool)
{
    probe_ctx *x = arg;
    (void)name;
    const size_t n = (size_t)rows * cols;
    if (x->mode == BLLM_NM_ALLOC_OUTLIER) {
        float *score = malloc(n * sizeof *score);
        if (!score)
            return bllm_fail(BLLM_ERR_NOMEM, "out of memory for the N:M allocation probe");
        bllm_status s = bllm_stbllm_scores(w, rows, cols, H, score);
        if (!s) {
            double mean = 0.0;
            for (size_t i = 0; i < n; i++)
                mean += score[i];
            mean /= (double)n;
            size_t out = 0;
            for (size_t i = 0; i < n; i++)
                out += score[i] > OUTLIER_TIMES * mean;
            x->outl[layer] += (double)out;
            x->weights[layer] += (double)n;
        }
        free(score);
        return s;
    }
    /* search: STBLLM's one-shot mask at N - 1, N, N + 1 */
    float *sim = malloc(n * sizeof *sim);
    if (!sim)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory for the N:M allocation probe");
    bllm_status s = BLLM_OK;
    for (int k = 0; k < 3 && !s; k++) {
        bllm_method_options mo = x->base->mopts;
        mo.nm_n += k - 1;
        if (mo.nm_n < 1 || mo.nm_n > mo.nm_m) {
            x->err[3 * layer + k] = INFINITY;
            continue;
        }
        bllm_binary_decomp d;
        bllm_method_report rep;
        s = bllm_method_stbllm(w, rows, cols, H, hinv, &mo, pool, &d, sim, &rep);
        if (!s) {
            x->err[3 * layer + k] += rep.rel_error * rep.rel_error;
            bllm_binary_decomp_free(&d);
        }
    }
    free(sim);
    return s;
}

void bllm_nm_alloc_outlier(const double *share, int L, int n, int m, double lambda, int *layer_n)
{
    double lo = INFINITY, hi = -INFINITY, mean = 0.0;
    for (int l = 0; l < L; l++) {
        lo = fmin(lo, share[l]);
        hi = fmax(hi, share[l]);
    }
    double *d = malloc((size_t)L * sizeof *d), *want = malloc((size_t)L * sizeof *want);
    if (!d || !want || !(hi > lo)) { /* all alike (or no memory): uniform */
        for (int l = 0; l < L; l++)
            layer_n[l] = n;
        free(d), free(want);
        return;
    }
    for (int l = 0; l < L; l++)
        mean += (d[l] = (share[l] - lo) / (hi - lo)) / L;
    long sum = 0;
    for (int l = 0; l < L; l++) {
        double keep = (double)n / m + 2.0 * lambda * (d[l] - mean);
        want[l] = keep * m;
        long v = lround(want[l]);
        layer_n[l] = (int)(v < 1 ? 1 : v > m ? m : v);
        sum += layer_n[l];
    }
    /* correct the rounding where it moved least, until the average is n */
    while (sum != (long)n * L) {
        int best = -1, dir = sum > (long)n * L ? -1 : 1;
        double best_gap = INFINITY;
        for (int l = 0; l < L; l++) {
            int v = layer_n[l] + dir;
            if (v < 1 || v > m)
                continue;
            double gap = fabs(v - want[l]);
            if (gap < best_gap)
                best_gap = gap, best = l;
        }
        if (best < 0)
            break;
        layer_n[best] += dir;
        sum += dir;
    }
    free(d), free(want);
}

/* Greedy swaps: one block up, another down, while the summed error falls. */
static void alloc_search(const double *err, int L, int n, int *layer_n)
{
    for (int l = 0; l < L; l++)
        layer_n[l] = n;
    for (;;) {
        int up = -1, down = -1;
        double best_gain = 0.0, best_loss = INFINITY;
        for (int l = 0; l < L; l++) {
            if (layer_n[l] != n)
                continue;
            double gain = err[3 * l + 1] - err[3 * l + 2], loss = err[3 * l] - err[3 * l + 1];
            if (isfinite(gain) && gain > best_gain)
                best_gain = gain, up = l;
            if (isfinite(loss) && loss < best_loss)
                best_loss = loss, down = l;
        }
        if (up < 0 || down < 0 || up == down || !(best_gain > best_loss))
            break;
        layer_n[up]++;
        layer_n[down]--;
    }
}

bllm_status bllm_nm_allocate(const bllm_engine_source *src, const bllm_llama_hparams *hp,
                             const bllm_tokenizer_spec *tok, const bllm_engine_params *base, bllm_nm_alloc_mode mode,
                             int samples, int *layer_n, double *score)
{
    const int L = (int)hp->n_layers, n = base->mopts.nm_n, m = base->mopts.nm_m;
    if (mode == BLLM_NM_ALLOC_UNIFORM) {
        for (int l = 0; l < L; l++) {
            layer_n[l] = n;
            if (score)
                score[l] = 0.0;
        }
        return BLLM_OK;
    }
    probe_ctx x = {.mode = mode, .base = base, .n_layers = L};
    x.outl = calloc((size_t)L, sizeof(double));
    x.weights = calloc((size_t)L, sizeof(double));
    x.err = calloc(3 * (size_t)L, sizeof(double));
    if (!x.outl || !x.weights || !x.err) {
        free(x.outl), free(x.weights), free(x.err);
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory for the N:M allocation");
    }
    bllm_engine_params p = *base;
    p.calib_samples = samples < base->calib_samples ? samples : base->calib_samples;
    p.keep_sim = false;
    p.layer_nm_n = NULL;
    p.probe = probe;
    p.probe_ctx = &x;
    p.probe_hinv = mode == BLLM_NM_ALLOC_SEARCH;
    bllm_engine_result r;
    bllm_status s = bllm_engine_run(src, hp, tok, &p, &r);
    if (!s) {
        bllm_engine_result_free(&r);
        if (mode == BLLM_NM_ALLOC_OUTLIER) {
            for (int l = 0; l < L; l++)
                x.outl[l] = x.weights[l] > 0.0 ? x.outl[l] / x.weights[l] : 0.0;
            bllm_nm_alloc_outlier(x.outl, L, n, m, LAMBDA, layer_n);
            if (score)
                memcpy(score, x.outl, (size_t)L * sizeof *score);
        } else {
            alloc_search(x.err, L, n, layer_n);
            for (int l = 0; score && l < L; l++)
                score[l] = x.err[3 * l + 1] - x.err[3 * l + 2];
        }
    }
    free(x.outl), free(x.weights), free(x.err);
    return s;
}
