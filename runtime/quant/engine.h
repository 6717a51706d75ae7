/* The calibration engine: layer by layer, the model's own forward code
 * (models/llama.h, block stages) runs the calibration windows through each
 * block whose inputs already come from the quantized blocks before it; the
 * Hessian H = 2 X X^T / n of every linear layer's inputs is gathered and the
 * chosen method (method.h) quantizes the layer; the next stage then runs on
 * the quantized layer (GPTQ's "true sequential" order):
 *
 *   attn_norm          -> H(q, k, v shared)   quantize wq, wk, wv
 *   attention          -> H(wo)               quantize wo
 *   attn_residual, ffn_norm -> H(gate, up)    quantize w_gate, w_up
 *   ffn_hidden         -> H(w_down)           quantize w_down
 *   ffn_residual       -> the next block's inputs
 *
 * Activations of all windows stay in memory between stages (f32, or f16
 * when f32 would take more than half the machine's memory); weights are
 * read one layer at a time, so a model larger than memory as f32 can be
 * quantized as long as one layer and the activations fit. */
#ifndef BLLM_QUANT_ENGINE_H
#define BLLM_QUANT_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "bllm.h"
#include "models/llama_hparams.h"
#include "runtime/quant/method.h"
#include "tokenizer/tokenizer.h"

/* Where the engine reads float weights from: tensor `name` (GGUF names,
 * docs/format.md) as n f32 values. */
typedef struct {
    void *ctx;
    bllm_status (*read_f32)(void *ctx, const char *name, float *out, uint64_t n);
} bllm_engine_source;

typedef struct {
    const char *calib_path;
    int calib_samples; /* windows (128) */
    int calib_len;     /* tokens per window (2048), capped at the context */
    uint64_t seed;
    const bllm_method *method;
    bllm_method_options mopts;
    int n_threads;     /* 0: online CPUs */
    bool keep_sim;     /* keep the simulated f32 weights of every matrix */
    int act_store;     /* activations between stages: 0 auto (f32 unless
                          that takes over half the memory), 32 f32, 16 f16 */
    bool progress;     /* progress bar on stderr */
    const int *layer_nm_n; /* stbllm: N of N:M per layer (n_layers entries), in
                              place of mopts.nm_n; NULL = mopts.nm_n everywhere */
    /* Probe mode: no quantization. Each matrix the method's type could hold
     * is shown to probe (float weights, its input Hessian) and the forward
     * goes on with the float weights; the result holds no matrices. Used to
     * measure the float model layer by layer before choosing per-layer
     * settings (stbllm's N:M allocation). hinv: H's damped inverse factor,
     * as the methods get it. */
    bllm_status (*probe)(void *ctx, int layer, const char *name, const float *w, int rows, int cols,
                         const double *H, const bllm_gptq_hinv *hinv, bllm_pool *pool);
    void *probe_ctx;
    bool probe_hinv;   /* the probe reads hinv (else it is not computed) */
} bllm_engine_params;

/* One quantized matrix. */
typedef struct {
    char name[96];
    int layer, rows, cols;
    bllm_type type;
    void *data;               /* packed bytes (bllm_type_tensor_bytes) */
    uint64_t nbytes;
    void *companion;          /* pb8: "name.salient" bytes, else NULL */
    uint64_t companion_bytes;
    float *sim;               /* keep_sim: rows x cols simulated weights */
    bllm_method_report rep;
    double seconds;
} bllm_engine_matrix;

typedef struct {
    int n;
    bllm_engine_matrix *m;
    int calib_len;             /* after capping */
    uint64_t calib_file_tokens;
    char calib_sha256[65];
    bool act_f16;              /* activations were stored in f16 */
    int hinv_retries;          /* Hessians whose damping had to grow */
    double seconds, seconds_forward, seconds_hessian, seconds_method;
    int n_layers;
    int *layer_nm_n;           /* N of N:M per layer, when the params gave it */
    int nm_alloc;              /* bllm_nm_alloc_mode that chose it (set by the caller) */
    double seconds_alloc;      /* its probe pass (set by the caller) */
    /* dim values: the mean square of each column of the output head's
     * input (the final norm of the quantized model's last hidden state)
     * over the calibration tokens, the importance with which the head is
     * quantized (runtime/format/blockq.h); NULL in probe mode */
    float *head_importance;
    int head_importance_n;
} bllm_engine_result;

/* Quantize every blk.* linear layer of a Llama model described by hp with
 * tokenizer spec tok. Matrices whose shape the method's type cannot hold
 * stay float (not in the result) and the forward uses them as they are. */
bllm_status bllm_engine_run(const bllm_engine_source *src, const bllm_llama_hparams *hp,
                            const bllm_tokenizer_spec *tok, const bllm_engine_params *p, bllm_engine_result *out);
void bllm_engine_result_free(bllm_engine_result *r);
/* The result for tensor `name`, or NULL. */
const bllm_engine_matrix *bllm_engine_find(const bllm_engine_result *r, const char *name);

#endif
