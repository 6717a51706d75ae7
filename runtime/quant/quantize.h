/* Whole-model quantization to packed binary types, and the way back: the
 * library behind bllm-quantize (tools/bllm-quantize.c stays a thin CLI).
 *
 * The input is anything bllm_source_open reads (GGUF, HF folder, llama2.c)
 * or a .stb file (float; RTN also takes an already packed one, dequantized
 * first). Every 2-D "blk.*" matrix whose shape fits the target type is
 * quantized: by round-to-nearest (method "rtn", rtn.h, any packed type) or
 * by a calibrated method (method.h: "pb-llm" -> pb8, "billm" -> billm,
 * "stbllm" -> stbllm, "onebit" -> onebit)
 * through the calibration engine (engine.h). A blk.* matrix that does not
 * fit (rows % 32, cols % 64) stays at keep_type and is counted in the
 * report; embeddings and the output head are stored as keep_type (f16 or
 * f32), 1-D tensors (norms) as f32. Metadata (hyperparameters, tokenizer,
 * chat template) is carried over and provenance keys record the input, the
 * calibration data and every option (docs/format.md). */
#ifndef BLLM_QUANTIZE_H
#define BLLM_QUANTIZE_H

#include "bllm.h"
#include "runtime/quant/engine.h"
#include "runtime/quant/rtn.h"

typedef struct {
    const char *method;         /* "rtn" (default) or a calibrated method
                                   (method.h: "pb-llm", "billm", "stbllm",
                                   "onebit") */
    bllm_type type;             /* rtn: packed type for the blk.* matrices
                                   (calibrated methods: their own type) */
    bllm_type keep_type;        /* BLLM_TYPE_F16 (default) or BLLM_TYPE_F32 */
    bllm_type embed_type;       /* token embedding: q8, q6, q4, f16 or f32;
                                   BLLM_TYPE_COUNT (default): q8 */
    bllm_type head_type;        /* output head, likewise; a tied model's one
                                   matrix takes head_type when it is set */
    bllm_rtn_options rtn;
    /* calibrated methods */
    const char *calib_path;     /* default: the shared WikiText-2 valid split */
    int calib_samples, calib_len;
    uint64_t seed;
    bllm_method_options mopts;
    int n_threads;              /* 0: online CPUs */
    int act_store;              /* 0 auto, 32 f32, 16 f16 (engine.h) */
    int nm_alloc;               /* stbllm, pbs2p: bllm_nm_alloc_mode (nm_alloc.h)
                                   of the per-layer N; -1 (default): outlier
                                   for stbllm, search for pbs2p */
    int nm_alloc_samples;       /* windows of its probe pass (16) */
    const char *simulated_path; /* also write the model with the
                                   quantizer's own simulated weights in f32
                                   in place of the packed matrices (or NULL) */
    const char *tokenizer_path; /* llama2.c checkpoints: tokenizer.bin */
    const char *options_text;   /* command-line options, for provenance */
    const char *created_by;     /* e.g. "bllm-quantize 0.1.0" */
    bool progress;              /* progress bar on stderr */
    bool replace_output;        /* replace an existing output file (default
                                   true; bllm-quantize: --force) */
} bllm_quantize_params;

typedef struct {
    int n_tensors;          /* written (pb8 companions included) */
    bllm_engine_result engine; /* calibrated methods: every matrix's result;
                                  free with bllm_quantize_report_free */
    int n_binarized;        /* matrices stored in the packed type */
    int n_kept;             /* blk.* matrices left at keep_type (shape) */
    char first_kept[96];    /* name of the first of those, for messages */
    uint64_t weights_binarized;
    uint64_t weights_total; /* every tensor's values (companions excluded) */
    uint64_t file_bytes;
    double seconds;
} bllm_quantize_report;

void bllm_quantize_params_default(bllm_quantize_params *p);
void bllm_quantize_report_free(bllm_quantize_report *r);
bllm_status bllm_quantize_model(const char *input, const char *output, const bllm_quantize_params *p,
                                bllm_quantize_report *report);

/* A .stb with packed matrices in, the same model with every tensor in f32
 * out (pb8 companions folded into their matrices): the reference a packed
 * model's forward pass is compared with. */
bllm_status bllm_dequantize_model(const char *input, const char *output, const char *created_by, bool progress,
                                  bool replace_output, bllm_quantize_report *report);

#endif
