/* Forward pass against golden logits from PyTorch (tests/model/make_golden.py).
 *
 * usage: test_logits NAME MODEL.stb GOLDEN TOL_TOP TOL_LSE N_SEQ
 *
 * The golden file holds the exact input ids and, for every position, the
 * log-sum-exp of the reference logit row and its top-16 logits. The model
 * runs those ids (a) as one batch with all_logits, (b) one token per call for
 * the first N_SEQ positions, (c) as one batch again on 1 thread. Checks:
 *  - |logit - golden| <= TOL_TOP for every golden top-16 id, every position;
 *  - |lse - golden lse| <= TOL_LSE (catches errors spread over the whole row);
 *  - argmax equals the golden top-1 wherever the golden top-1/top-2 margin
 *    exceeds 2*TOL_TOP (a closer pair is a legitimate tie at float32 and is
 *    only counted and reported);
 *  - full stored rows (if any): every logit within TOL_TOP;
 *  - 1-thread and 2-thread logits bit-identical (the runtime promises
 *    deterministic results independent of the thread count). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bllm.h"

typedef struct {
    uint32_t n_vocab, n_tokens, top_k, n_full;
    int32_t *tokens;
    float *lse;       /* n_tokens */
    int32_t *top_id;  /* n_tokens * top_k */
    float *top_logit; /* n_tokens * top_k */
    uint32_t *full_pos;
    float *full;      /* n_full * n_vocab */
} golden;

static int rd(FILE *f, void *p, size_t n) { return fread(p, 1, n, f) == n; }

/* The format is little-endian (make_golden.py); so is every target bllm
 * supports, so fields are read directly. */
static int golden_read(const char *path, golden *g) {
    memset(g, 0, sizeof *g);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open golden file %s\n", path);
        return 0;
    }
    char magic[8];
    uint32_t note_len;
    int ok = rd(f, magic, 8) && memcmp(magic, "BLLMGLD1", 8) == 0 && rd(f, &note_len, 4) &&
             note_len < (1u << 20) && fseek(f, note_len, SEEK_CUR) == 0 &&
             rd(f, &g->n_vocab, 4) && rd(f, &g->n_tokens, 4) && rd(f, &g->top_k, 4) &&
             rd(f, &g->n_full, 4);
    ok = ok && g->n_vocab > 0 && g->n_vocab < (1u << 22) && g->n_tokens > 0 &&
         g->n_tokens < 65536 && g->top_k > 1 && g->top_k <= g->n_vocab && g->n_full < 64;
    if (ok) {
        size_t nt = g->n_tokens, k = g->top_k;
        g->tokens = malloc(nt * sizeof *g->tokens);
        g->lse = malloc(nt * sizeof *g->lse);
        g->top_id = malloc(nt * k * sizeof *g->top_id);
        g->top_logit = malloc(nt * k * sizeof *g->top_logit);
        g->full_pos = malloc((g->n_full + 1) * sizeof *g->full_pos);
        g->full = malloc(((size_t)g->n_full * g->n_vocab + 1) * sizeof *g->full);
        ok = g->tokens && g->lse && g->top_id && g->top_logit && g->full_pos && g->full &&
             rd(f, g->tokens, nt * 4);
        for (size_t p = 0; ok && p < nt; p++)
            ok = rd(f, &g->lse[p], 4) && rd(f, &g->top_id[p * k], k * 4) &&
                 rd(f, &g->top_logit[p * k], k * 4);
        for (uint32_t i = 0; ok && i < g->n_full; i++)
            ok = rd(f, &g->full_pos[i], 4) && g->full_pos[i] < g->n_tokens &&
                 rd(f, &g->full[(size_t)i * g->n_vocab], (size_t)g->n_vocab * 4);
        for (size_t p = 0; ok && p < nt; p++) {
            ok = g->tokens[p] >= 0 && (uint32_t)g->tokens[p] < g->n_vocab;
            for (size_t j = 0; ok && j < k; j++)
                ok = g->top_id[p * k + j] >= 0 && (uint32_t)g->top_id[p * k + j] < g->n_vocab;
        }
        ok = ok && fgetc(f) == EOF;
    }
    fclose(f);
    if (!ok) fprintf(stderr, "%s: not a valid golden file (make_golden.py)\n", path);
    return ok;
}

static void golden_free(golden *g) {
    free(g->tokens);
    free(g->lse);
    free(g->top_id);
    free(g->top_logit);
    free(g->full_pos);
    free(g->full);
}

typedef struct {
    double max_top, max_lse;
    int top1_ok, top1_checked, near_ties, n_pos;
    int worst_pos;
    int fails;
} stats;

static double row_lse(const float *row, int n) {
    double m = -INFINITY, s = 0.0;
    for (int i = 0; i < n; i++) m = row[i] > m ? row[i] : m;
    for (int i = 0; i < n; i++) s += exp((double)row[i] - m);
    return m + log(s);
}

static int row_argmax(const float *row, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (row[i] > row[best]) best = i;
    return best;
}

/* Compare the logits of position p against the golden record. */
static void check_row(const golden *g, int p, const float *row, double tol_top,
                      double tol_lse, const char *what, stats *st) {
    const int32_t *ids = &g->top_id[(size_t)p * g->top_k];
    const float *ref = &g->top_logit[(size_t)p * g->top_k];
    double dtop = 0.0;
    int finite = 1;
    for (uint32_t j = 0; j < g->n_vocab; j++) finite &= isfinite(row[j]) != 0;
    for (uint32_t j = 0; j < g->top_k; j++) {
        double d = fabs((double)row[ids[j]] - ref[j]);
        dtop = d > dtop || isnan(d) ? d : dtop;
    }
    double dlse = fabs(row_lse(row, (int)g->n_vocab) - g->lse[p]);
    int am = row_argmax(row, (int)g->n_vocab);
    st->n_pos++;
    if (!(dtop <= st->max_top)) {
        st->max_top = dtop;
        st->worst_pos = p;
    }
    if (!(dlse <= st->max_lse)) st->max_lse = dlse;
    if ((double)ref[0] - ref[1] > 2.0 * tol_top) {
        st->top1_checked++;
        st->top1_ok += am == ids[0];
    } else {
        st->near_ties++;
    }
    int bad = !finite || !(dtop <= tol_top) || !(dlse <= tol_lse) ||
              ((double)ref[0] - ref[1] > 2.0 * tol_top && am != ids[0]);
    if (bad) {
        if (st->fails < 8)
            fprintf(stderr,
                    "  %s pos %d: max|d top%u| %.3e (tol %.1e), |d lse| %.3e (tol %.1e), "
                    "argmax %d (golden %d: %.5f, %d: %.5f, got %.5f)%s\n",
                    what, p, g->top_k, dtop, tol_top, dlse, tol_lse, am, ids[0], ref[0], ids[1],
                    ref[1], row[ids[0]], finite ? "" : ", NON-FINITE logits");
        st->fails++;
    }
}

static int stats_line(const char *name, const char *what, const stats *st, unsigned top_k) {
    printf("%s %s: %d positions, max|d top%u| %.3e (pos %d), max|d lse| %.3e, top-1 %d/%d",
           name, what, st->n_pos, top_k, st->max_top, st->worst_pos, st->max_lse, st->top1_ok,
           st->top1_checked);
    if (st->near_ties) printf(" (+%d near-ties not checked)", st->near_ties);
    printf("\n");
    return st->fails == 0;
}

static int file_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    /* The build writes a marker instead of a model when the source
     * checkpoint is missing (tests/model/convert.sh): show it. */
    char head[512] = {0};
    size_t n = fread(head, 1, sizeof head - 1, f);
    fclose(f);
    if (n >= 8 && memcmp(head, "MISSING:", 8) == 0) {
        fprintf(stderr, "%s was not converted: %s", path, head);
        return 0;
    }
    return 1;
}

/* The references attend over f32 keys and values, so (a)-(c) use the f32
 * cache; (d) measures the default f16 cache against it. */
static bllm_status eval_batch(bllm_model *m, int n_threads, int n_ctx, const golden *g,
                              float *logits, bllm_kv_type kv) {
    bllm_context *ctx = NULL;
    bllm_context_params cp = {.n_ctx = n_ctx, .n_threads = n_threads, .kv_type = kv};
    bllm_status s = bllm_context_new(m, &cp, &ctx);
    if (s != BLLM_OK) return s;
    s = bllm_eval(ctx, g->tokens, (int)g->n_tokens, logits, true);
    if (s == BLLM_OK && bllm_context_pos(ctx) != (int)g->n_tokens) {
        fprintf(stderr, "context pos %d after a %u-token batch\n", bllm_context_pos(ctx),
                g->n_tokens);
        s = BLLM_ERR_ARG;
    }
    bllm_context_free(ctx);
    return s;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s NAME MODEL.stb GOLDEN TOL_TOP TOL_LSE N_SEQ\n", argv[0]);
        return 2;
    }
    const char *name = argv[1], *model_path = argv[2], *golden_path = argv[3];
    double tol_top = atof(argv[4]), tol_lse = atof(argv[5]);
    int n_seq = atoi(argv[6]);
    if (!(tol_top > 0) || !(tol_lse > 0) || n_seq < 1) {
        fprintf(stderr, "bad tolerances or N_SEQ\n");
        return 2;
    }
    if (!file_exists(model_path)) {
        fprintf(stderr, "FAIL: model %s missing (built from BLLM_SHARED/BLLM_CACHE by "
                        "bllm-convert; see tests/model/README.md)\n", model_path);
        return 1;
    }
    golden g;
    if (!golden_read(golden_path, &g)) return 1;
    if ((uint32_t)n_seq > g.n_tokens) n_seq = (int)g.n_tokens;

    bllm_model *m = NULL;
    bllm_load_params lp = {.verify_checksums = false};
    bllm_status s = bllm_model_load(model_path, &lp, &m);
    if (s != BLLM_OK) {
        fprintf(stderr, "FAIL: load %s: %s: %s\n", model_path, bllm_status_name(s),
                bllm_last_error());
        golden_free(&g);
        return 1;
    }
    const bllm_model_info *info = bllm_model_get_info(m);
    if (info->n_vocab != (int)g.n_vocab) {
        fprintf(stderr, "FAIL: model vocab %d, golden %u\n", info->n_vocab, g.n_vocab);
        bllm_model_free(m);
        golden_free(&g);
        return 1;
    }
    const size_t V = g.n_vocab, N = g.n_tokens;
    /* Small context: the test only needs the golden sequence, and a model's
     * full window (8192 for SmolLM2) would waste memory on KV cache. */
    int n_ctx = (int)N < info->max_seq_len ? (int)N : info->max_seq_len;
    float *l2 = malloc(N * V * sizeof *l2), *l1 = malloc(N * V * sizeof *l1);
    float *row = malloc(V * sizeof *row);
    int ok = l2 && l1 && row;
    if (!ok) fprintf(stderr, "FAIL: out of memory\n");

    /* (a) one batch, 2 threads */
    stats sb = {0};
    if (ok && (s = eval_batch(m, 2, n_ctx, &g, l2, BLLM_KV_F32)) != BLLM_OK) {
        fprintf(stderr, "FAIL: batch eval: %s: %s\n", bllm_status_name(s), bllm_last_error());
        ok = 0;
    }
    if (ok) {
        for (size_t p = 0; p < N; p++)
            check_row(&g, (int)p, &l2[p * V], tol_top, tol_lse, "batch", &sb);
        ok &= stats_line(name, "batch", &sb, g.top_k);
        ok &= sb.top1_ok == sb.top1_checked;
        /* full rows stored for small vocabularies */
        double dfull = 0.0;
        for (uint32_t i = 0; i < g.n_full; i++)
            for (size_t j = 0; j < V; j++) {
                double d = fabs((double)l2[g.full_pos[i] * V + j] - g.full[i * V + j]);
                dfull = d > dfull || isnan(d) ? d : dfull;
            }
        if (g.n_full) {
            printf("%s full rows: %u rows x %zu logits, max|d| %.3e\n", name, g.n_full, V, dfull);
            if (!(dfull <= tol_top)) {
                fprintf(stderr, "FAIL: full-row difference %.3e > %.1e\n", dfull, tol_top);
                ok = 0;
            }
        }
    }

    /* (b) token by token, 2 threads */
    stats ss = {0};
    double d_seq_batch = 0.0;
    if (ok) {
        bllm_context *ctx = NULL;
        bllm_context_params cp = {.n_ctx = n_ctx, .n_threads = 2, .kv_type = BLLM_KV_F32};
        s = bllm_context_new(m, &cp, &ctx);
        for (int p = 0; s == BLLM_OK && p < n_seq; p++) {
            s = bllm_eval(ctx, &g.tokens[p], 1, row, false);
            if (s != BLLM_OK) break;
            if (bllm_context_pos(ctx) != p + 1) {
                fprintf(stderr, "FAIL: context pos %d after %d single-token evals\n",
                        bllm_context_pos(ctx), p + 1);
                ok = 0;
                break;
            }
            check_row(&g, p, row, tol_top, tol_lse, "sequential", &ss);
            for (size_t j = 0; j < V; j++) {
                double d = fabs((double)row[j] - l2[(size_t)p * V + j]);
                d_seq_batch = d > d_seq_batch || isnan(d) ? d : d_seq_batch;
            }
        }
        if (s != BLLM_OK) {
            fprintf(stderr, "FAIL: sequential eval: %s: %s\n", bllm_status_name(s),
                    bllm_last_error());
            ok = 0;
        }
        bllm_context_free(ctx);
        if (ok) {
            ok &= stats_line(name, "sequential", &ss, g.top_k);
            ok &= ss.top1_ok == ss.top1_checked;
            printf("%s sequential vs batch: max|d logit| %.3e over %d positions x %zu\n", name,
                   d_seq_batch, n_seq, V);
        }
    }

    /* (c) one batch on 1 thread: must match 2 threads bit for bit */
    if (ok) {
        s = eval_batch(m, 1, n_ctx, &g, l1, BLLM_KV_F32);
        if (s != BLLM_OK) {
            fprintf(stderr, "FAIL: 1-thread batch eval: %s: %s\n", bllm_status_name(s),
                    bllm_last_error());
            ok = 0;
        } else {
            size_t ndiff = 0, first = 0;
            for (size_t i = 0; i < N * V; i++)
                if (memcmp(&l1[i], &l2[i], sizeof(float)) != 0 && ndiff++ == 0) first = i;
            printf("%s threads 1 vs 2: %zu of %zu logits differ\n", name, ndiff, N * V);
            if (ndiff) {
                fprintf(stderr, "FAIL: thread count changes results (first at pos %zu id %zu: "
                                "%.9g vs %.9g)\n", first / V, first % V, l1[first], l2[first]);
                ok = 0;
            }
        }
    }

    /* (d) the default f16 cache and the q8 one: keys and values rounded to
     * 11 significant bits (f16) or to 1/254 of each 32-value block's
     * largest (q8) move the logits far more than the kernels' summation
     * order, so the bounds are looser (the same top-1 token at >= 95% of
     * positions for f16, 90% for q8; no logit off by more than 0.2, q8 1.0:
     * SmolLM2 measured 0.030 and 0.66, top-1 128 and 127 of 128)
     * and the measured sizes are printed. q8 needs a head size that is a
     * multiple of 32: other models must be refused with that reason. */
    for (int c = 0; ok && c < 2; c++) {
        const bllm_kv_type kv = c ? BLLM_KV_Q8 : BLLM_KV_DEFAULT;
        const char *kname = c ? "q8" : "f16";
        s = eval_batch(m, 2, n_ctx, &g, l1, kv);
        if (c && bllm_model_get_info(m)->head_dim % 32) {
            const int refused = s == BLLM_ERR_UNSUPPORTED && strstr(bllm_last_error(), "multiple of 32");
            printf("%s q8 KV cache with head size %d: %s%s\n", name, bllm_model_get_info(m)->head_dim,
                   refused ? "refused: " : "FAIL, not refused: ", refused ? bllm_last_error() : bllm_status_name(s));
            ok &= refused;
            break;
        }
        if (s != BLLM_OK) {
            fprintf(stderr, "FAIL: %s-cache batch eval: %s: %s\n", kname, bllm_status_name(s), bllm_last_error());
            ok = 0;
            break;
        }
        double dmax = 0.0;
        size_t same = 0;
        for (size_t p = 0; p < N; p++) {
            size_t a1 = 0, a2 = 0;
            for (size_t j = 0; j < V; j++) {
                double d = fabs((double)l1[p * V + j] - l2[p * V + j]);
                dmax = d > dmax || isnan(d) ? d : dmax;
                a1 = l1[p * V + j] > l1[p * V + a1] ? j : a1;
                a2 = l2[p * V + j] > l2[p * V + a2] ? j : a2;
            }
            same += a1 == a2;
        }
        printf("%s %s vs f32 KV cache: max|d logit| %.3e, same top-1 at %zu of %zu positions\n", name, kname,
               dmax, same, N);
        if (!(dmax > 0.0 && dmax <= (c ? 1.0 : 0.2)) || same * 20 < N * (c ? 18 : 19)) {
            fprintf(stderr, "FAIL: the %s cache is not used or too far from f32\n", kname);
            ok = 0;
        }
    }

    /* (e) the weights served from the file's mapping instead of the loaded
     * copy (bllm_load_params.map_file): the same bytes, so the same logits
     * bit for bit. */
    if (ok) {
        bllm_model *mm = NULL;
        bllm_load_params mp = {.map_file = true};
        s = bllm_model_load(model_path, &mp, &mm);
        if (!s)
            s = eval_batch(mm, 2, n_ctx, &g, l1, BLLM_KV_F32);
        if (s != BLLM_OK) {
            fprintf(stderr, "FAIL: mapped model: %s: %s\n", bllm_status_name(s), bllm_last_error());
            ok = 0;
        } else {
            size_t ndiff = 0;
            for (size_t i = 0; i < N * V; i++)
                ndiff += memcmp(&l1[i], &l2[i], sizeof(float)) != 0;
            printf("%s mapped vs loaded weights: %zu of %zu logits differ\n", name, ndiff, N * V);
            if (ndiff) {
                fprintf(stderr, "FAIL: the mapped model's logits differ from the loaded one's\n");
                ok = 0;
            }
        }
        bllm_model_free(mm);
    }

    printf("%s: %s (tolerances: top %.1e, lse %.1e; kernels %s)\n", name, ok ? "PASS" : "FAIL",
           tol_top, tol_lse, bllm_kernel_name());
    free(l1);
    free(l2);
    free(row);
    bllm_model_free(m);
    golden_free(&g);
    return ok ? 0 : 1;
}
