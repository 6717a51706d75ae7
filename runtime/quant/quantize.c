/* Whole-model quantization (runtime/quant/quantize.h). RTN needs one tensor
 * in memory at a time: read it as f32 from the input, binarize or convert
 * it, stream it to the .stb writer; the pb8 companion's size is known
 * before quantizing (RTN keeps a fixed count per row), so the directory is
 * complete before the first byte of data is written, as the writer
 * requires. The calibrated methods run the engine over the whole model
 * first (its packed results are small) and then write the same way. */
#include "runtime/quant/quantize.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/llama_hparams.h"
#include "runtime/error.h"
#include "runtime/sha256.h"
#include "runtime/import/source.h"
#include "runtime/quant/nm_alloc.h"
#include "runtime/format/stb.h"
#include "tokenizer/tokenizer.h"
#include "runtime/file_io.h"
#include "runtime/format/blockq.h"

#ifndef BLLM_VERSION
#define BLLM_VERSION "0.1.0"
#endif

void bllm_quantize_params_default(bllm_quantize_params *p)
{
    memset(p, 0, sizeof *p);
    p->method = "rtn";
    p->type = BLLM_TYPE_B1G;
    p->keep_type = BLLM_TYPE_F16;
    p->embed_type = p->head_type = BLLM_TYPE_COUNT;
    bllm_rtn_options_default(&p->rtn);
    p->calib_samples = 128;
    p->calib_len = 2048;
    bllm_method_options_default(&p->mopts);
    p->nm_alloc = -1;
    p->nm_alloc_samples = 16;
    p->replace_output = true;
}

void bllm_quantize_report_free(bllm_quantize_report *r)
{
    if (r)
        bllm_engine_result_free(&r->engine);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void progress(int i, int n, const char *name)
{
    int width = 24, filled = n ? width * i / n : width;
    char bar[32];
    for (int k = 0; k < width; k++)
        bar[k] = k < filled ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r[%s] %4d/%-4d %-40.40s", bar, i, n, name);
    fflush(stderr);
}

/* ------------------------------------------------------------ the input */

/* Either an importer source or a .stb file; tensors are listed without pb8
 * companions, which are read together with their matrix. */
typedef struct {
    bllm_source *src;
    bllm_stb_file *stb;
    int n;
    int *stb_index; /* stb: directory index of each listed tensor */
    bllm_llama_hparams hp;
    bllm_tokenizer_spec spec; /* stb only (released at close) */
    bool have_spec;
    char sha[65];
    const char *format;
} input;

static bool is_stb(const char *path)
{
    FILE *f;
    if (bllm_fopen_input(path, "model", &f))
        return false;
    char magic[8] = {0};
    size_t n = fread(magic, 1, 8, f);
    fclose(f);
    return n == 8 && !memcmp(magic, "BLLMSTB\0", 8);
}

static bool is_companion(const bllm_stb_tensor *t)
{
    size_t n = strlen(t->name);
    return t->type == BLLM_TYPE_U8 && n > 8 && !strcmp(t->name + n - 8, ".salient");
}

static void input_close(input *in)
{
    if (in->have_spec)
        bllm_tokenizer_spec_release(&in->spec);
    free(in->stb_index);
    bllm_stb_close(in->stb);
    bllm_source_close(in->src);
    memset(in, 0, sizeof *in);
}

static bllm_status input_open(const char *path, const char *tokenizer_path, input *in)
{
    memset(in, 0, sizeof *in);
    bllm_status s;
    if (is_stb(path)) {
        in->format = "stb";
        if ((s = bllm_stb_open(path, true, &in->stb)) || (s = bllm_llama_hparams_from_stb(in->stb, &in->hp)))
            return s;
        if ((s = bllm_tokenizer_spec_from_stb(in->stb, &in->spec)))
            return s;
        in->have_spec = true;
        int nt = bllm_stb_n_tensors(in->stb);
        in->stb_index = malloc((size_t)(nt ? nt : 1) * sizeof *in->stb_index);
        if (!in->stb_index)
            return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
        for (int i = 0; i < nt; i++) {
            const bllm_stb_tensor *t = bllm_stb_tensor_at(in->stb, i);
            if (is_companion(t))
                continue;
            if (t->type == BLLM_TYPE_U8)
                return bllm_fail(BLLM_ERR_UNSUPPORTED, "%s: tensor '%s' holds raw bytes; only pb8 companions "
                                 "('X.salient') are understood", path, t->name);
            if (t->ndim > 2)
                return bllm_fail(BLLM_ERR_UNSUPPORTED, "%s: tensor '%s' has %d dimensions (1 or 2 expected)",
                                 path, t->name, t->ndim);
            in->stb_index[in->n++] = i;
        }
        return bllm_sha256_file(path, in->sha);
    }
    if ((s = bllm_source_open(path, BLLM_SOURCE_AUTO, tokenizer_path, &in->src)))
        return s;
    in->hp = *bllm_source_hparams(in->src);
    in->n = bllm_source_n_tensors(in->src);
    switch (bllm_source_get_kind(in->src)) {
    case BLLM_SOURCE_GGUF: in->format = "gguf"; break;
    case BLLM_SOURCE_HF: in->format = "hf"; break;
    default: in->format = "llama2c"; break;
    }
    const char *sha = bllm_source_sha256(in->src);
    if (!sha)
        return BLLM_ERR_IO;
    snprintf(in->sha, sizeof in->sha, "%s", sha);
    return BLLM_OK;
}

static const bllm_tokenizer_spec *input_tokenizer(const input *in)
{
    return in->src ? bllm_source_tokenizer(in->src) : &in->spec;
}

static const char *input_chat_template(const input *in, char **owned)
{
    *owned = NULL;
    if (in->src)
        return bllm_source_chat_template(in->src);
    const char *s;
    size_t len;
    if (bllm_stb_get_str(in->stb, "tokenizer.chat_template", &s, &len))
        return NULL;
    *owned = strndup(s, len);
    return *owned;
}

typedef struct {
    const char *name;
    int ndim;
    int64_t dims[4];
} tinfo;

static tinfo input_tensor(const input *in, int i)
{
    tinfo ti = {0};
    if (in->src) {
        const bllm_source_tensor *t = bllm_source_tensor_at(in->src, i);
        ti.name = t->name;
        ti.ndim = t->ndim;
        memcpy(ti.dims, t->dims, sizeof ti.dims);
    } else {
        const bllm_stb_tensor *t = bllm_stb_tensor_at(in->stb, in->stb_index[i]);
        ti.name = t->name;
        ti.ndim = t->ndim;
        memcpy(ti.dims, t->dims, (size_t)t->ndim * sizeof ti.dims[0]);
    }
    return ti;
}

static uint64_t numel(const tinfo *t)
{
    uint64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= (uint64_t)t->dims[d];
    return n;
}

static bllm_status read_stb_f32(const bllm_stb_file *f, const bllm_stb_tensor *t, float *out)
{
    uint64_t cols = (uint64_t)t->dims[t->ndim - 1], rows = t->ndim == 2 ? (uint64_t)t->dims[0] : 1;
    uint64_t n = rows * cols;
    if (t->type == BLLM_TYPE_F32) {
        memcpy(out, t->data, n * sizeof(float));
    } else if (t->type == BLLM_TYPE_F16 || t->type == BLLM_TYPE_BF16) {
        const uint16_t *h = t->data;
        for (uint64_t k = 0; k < n; k++)
            out[k] = t->type == BLLM_TYPE_F16 ? bllm_f16_to_f32(h[k]) : bllm_bf16_to_f32(h[k]);
    } else if (bllm_type_is_blockq(t->type)) {
        const uint64_t rb = bllm_type_row_bytes(t->type, cols);
        for (uint64_t r = 0; r < rows; r++)
            bllm_blockq_dequant_row(t->type, (const uint8_t *)t->data + r * rb, (int)cols, out + r * cols);
    } else if (bllm_type_is_packed(t->type)) {
        bllm_pb8_salient sal, *psal = NULL;
        if (t->type == BLLM_TYPE_PB8) {
            char cname[160];
            snprintf(cname, sizeof cname, "%s.salient", t->name);
            const bllm_stb_tensor *c = bllm_stb_find_tensor(f, cname);
            if (!c || c->type != BLLM_TYPE_U8 || c->ndim != 1)
                return bllm_fail(BLLM_ERR_FORMAT, "pb8 tensor '%s' lacks a valid companion '%s'", t->name, cname);
            bllm_status s = bllm_pb8_salient_parse(c->data, c->nbytes, (int)rows, (int)cols, cname, &sal);
            if (s)
                return s;
            psal = &sal;
        }
        return bllm_binary_dequantize(t->type, t->data, t->nbytes, psal, (int)rows, (int)cols, out);
    } else {
        return bllm_fail(BLLM_ERR_UNSUPPORTED, "tensor '%s' has type %s", t->name, bllm_type_name(t->type));
    }
    return BLLM_OK;
}

static bllm_status input_read(input *in, int i, float *out)
{
    if (in->src)
        return bllm_source_read_f32(in->src, i, out);
    return read_stb_f32(in->stb, bllm_stb_tensor_at(in->stb, in->stb_index[i]), out);
}

/* ------------------------------------------------------------ metadata */

static bllm_status set_s(bllm_stb_writer *w, const char *key, const char *v)
{
    return bllm_stb_set_str(w, key, v, strlen(v));
}

/* Model metadata plus provenance; a .stb input's own provenance strings are
 * kept under provenance.parent.* so the chain back to the checkpoint is not
 * lost. */
static bllm_status write_metadata(bllm_stb_writer *w, const input *in, const char *input_path, const char *options,
                                  const char *created_by)
{
    char abs_in[PATH_MAX];
    if (!realpath(input_path, abs_in))
        snprintf(abs_in, sizeof abs_in, "%s", input_path);
    const char *name = in->hp.name[0] ? in->hp.name : "unnamed";
    char *owned_tmpl;
    const char *tmpl = input_chat_template(in, &owned_tmpl);
    bllm_status s;
    if ((s = set_s(w, "general.architecture", "llama")) || (s = set_s(w, "general.name", name)) ||
        (s = bllm_llama_hparams_to_stb(&in->hp, w)) || (s = bllm_tokenizer_spec_to_stb(input_tokenizer(in), w)) ||
        (tmpl && (s = set_s(w, "tokenizer.chat_template", tmpl))) ||
        (s = set_s(w, "provenance.source_path", abs_in)) || (s = set_s(w, "provenance.source_sha256", in->sha)) ||
        (s = set_s(w, "provenance.source_format", in->format)) ||
        (s = set_s(w, "provenance.options", options ? options : "")) ||
        (s = set_s(w, "provenance.created_by", created_by ? created_by : "bllm " BLLM_VERSION))) {
        free(owned_tmpl);
        return s;
    }
    free(owned_tmpl);
    for (int i = 0; in->stb && i < bllm_stb_n_meta(in->stb); i++) {
        const char *key = bllm_stb_meta_key(in->stb, i);
        if (strncmp(key, "provenance.", 11) || bllm_stb_meta_type(in->stb, i) != BLLM_META_STR)
            continue;
        char nk[512];
        const char *v;
        size_t len;
        if (snprintf(nk, sizeof nk, "provenance.parent.%s", key + 11) >= (int)sizeof nk)
            continue;
        if ((s = bllm_stb_get_str(in->stb, key, &v, &len)) || (s = bllm_stb_set_str(w, nk, v, len)))
            return s;
    }
    return BLLM_OK;
}

/* The engine reads weights by name through this. */
static bllm_status engine_read(void *ctx, const char *name, float *out, uint64_t n)
{
    input *in = ctx;
    for (int i = 0; i < in->n; i++) {
        tinfo t = input_tensor(in, i);
        if (strcmp(t.name, name))
            continue;
        if (numel(&t) != n)
            return bllm_fail(BLLM_ERR_FORMAT, "tensor '%s' holds %llu values, the hyperparameters need %llu", name,
                             (unsigned long long)numel(&t), (unsigned long long)n);
        bllm_status s = input_read(in, i, out);
        for (uint64_t k = 0; !s && k < n; k++)
            if (!isfinite(out[k]))
                s = bllm_fail(BLLM_ERR_FORMAT, "tensor '%s' holds a non-finite value at index %llu", name,
                              (unsigned long long)k);
        return s;
    }
    return bllm_fail(BLLM_ERR_FORMAT, "the model lacks tensor '%s'", name);
}

/* Provenance of a quantization: method, type and every option that shaped
 * the result (docs/format.md). */
static bllm_status write_quant_metadata(bllm_stb_writer *w, const bllm_quantize_params *p,
                                        const bllm_engine_result *eng, const char *mode)
{
    bllm_status s;
    const bllm_method *m = bllm_method_find(p->method);
    bllm_type type = m ? m->type : p->type;
    if ((s = set_s(w, "provenance.quantization.method", p->method)) ||
        (s = set_s(w, "provenance.quantization.type", bllm_type_name(type))) ||
        (s = set_s(w, "provenance.quantization.keep_type", bllm_type_name(p->keep_type))))
        return s;
    if (mode && (s = set_s(w, "provenance.quantization.simulated", mode)))
        return s;
    if (!m) {
        if (p->type == BLLM_TYPE_PB8 &&
            (s = bllm_stb_set_f32(w, "provenance.quantization.salient_frac", p->rtn.salient_frac)))
            return s;
        if (p->type == BLLM_TYPE_ONEBIT &&
            (s = bllm_stb_set_u32(w, "provenance.quantization.onebit_iters", (uint32_t)p->rtn.onebit_iters)))
            return s;
        return BLLM_OK;
    }
    char abs_calib[PATH_MAX];
    if (!realpath(p->calib_path, abs_calib))
        snprintf(abs_calib, sizeof abs_calib, "%s", p->calib_path);
    if ((s = set_s(w, "provenance.quantization.calib_file", abs_calib)) ||
        (s = set_s(w, "provenance.quantization.calib_sha256", eng->calib_sha256)) ||
        (s = bllm_stb_set_u32(w, "provenance.quantization.calib_samples", (uint32_t)p->calib_samples)) ||
        (s = bllm_stb_set_u32(w, "provenance.quantization.calib_len", (uint32_t)eng->calib_len)) ||
        (s = bllm_stb_set_u64(w, "provenance.quantization.seed", p->seed)) ||
        (s = bllm_stb_set_f32(w, "provenance.quantization.percdamp", (float)p->mopts.percdamp)) ||
        (s = bllm_stb_set_u32(w, "provenance.quantization.block", (uint32_t)p->mopts.block)))
        return s;
    if (type == BLLM_TYPE_PB8 &&
        (s = bllm_stb_set_f32(w, "provenance.quantization.salient_frac", p->mopts.salient_frac)))
        return s;
    if (type == BLLM_TYPE_STBLLM) {
        static const char *const alloc_names[] = {"uniform", "outlier", "search"};
        char layers[4096] = "";
        size_t len = 0;
        for (int l = 0; eng->layer_nm_n && l < eng->n_layers && len + 8 < sizeof layers; l++)
            len += (size_t)snprintf(layers + len, sizeof layers - len, "%s%d", l ? "," : "", eng->layer_nm_n[l]);
        if ((s = bllm_stb_set_u32(w, "provenance.quantization.nm_n", (uint32_t)p->mopts.nm_n)) ||
            (s = bllm_stb_set_u32(w, "provenance.quantization.nm_m", (uint32_t)p->mopts.nm_m)) ||
            (s = set_s(w, "provenance.quantization.nm_alloc", alloc_names[eng->nm_alloc])) ||
            (eng->layer_nm_n && (s = set_s(w, "provenance.quantization.layer_nm_n", layers))) ||
            (p->mopts.nm_refill && (s = bllm_stb_set_bool(w, "provenance.quantization.nm_refill", true))))
            return s;
    }
    if (bllm_type_is_block(type) &&
        ((s = bllm_stb_set_u32(w, "provenance.quantization.max_salient_cols", (uint32_t)p->mopts.max_salient_cols)) ||
         (s = bllm_stb_set_bool(w, "provenance.quantization.block_errors", p->mopts.intra_block))))
        return s;
    if (type == BLLM_TYPE_ONEBIT &&
        (s = bllm_stb_set_u32(w, "provenance.quantization.onebit_fit_iters", (uint32_t)p->mopts.onebit_fit_iters)))
        return s;
    return BLLM_OK;
}

/* ------------------------------------------------------------- writing */

typedef enum { PLAN_F32, PLAN_F16, PLAN_PACKED, PLAN_BLOCKQ } plan_kind;

typedef struct {
    plan_kind kind;
    bllm_type type;
    int index;      /* writer index */
    int companion;  /* pb8: writer index of X.salient, else -1 */
    uint64_t companion_bytes;
    const bllm_engine_matrix *eng; /* calibrated result, else NULL */
} plan;

static bool is_block_matrix(const tinfo *t) { return t->ndim == 2 && !strncmp(t->name, "blk.", 4); }

static bllm_status to_f16(const char *name, const float *f, uint64_t n, uint16_t *h)
{
    for (uint64_t k = 0; k < n; k++) {
        h[k] = bllm_f32_to_f16(f[k]);
        if ((h[k] & 0x7c00) == 0x7c00)
            return bllm_fail(BLLM_ERR_UNSUPPORTED, "tensor '%s' has the value %g, beyond the f16 range; keep it "
                             "in f32 (--keep-type f32)", name, (double)f[k]);
    }
    return BLLM_OK;
}

/* Whether the model has its own output head (else token_embd is tied). */
static bool has_output(const input *in)
{
    for (int i = 0; i < in->n; i++)
        if (!strcmp(input_tensor(in, i).name, "output.weight"))
            return true;
    return false;
}

/* Whether t is the matrix the output head multiplies by: output.weight,
 * or a tied model's token_embd.weight. */
static bool is_head(const input *in, const tinfo *t)
{
    return !strcmp(t->name, "output.weight") || (!strcmp(t->name, "token_embd.weight") && !has_output(in));
}

/* The type the embedding or the head is to take, or BLLM_TYPE_COUNT for a
 * tensor that is neither (it keeps keep_type). A tied model (no
 * output.weight) has one matrix for both: head_type when set. Unset, both
 * are BLLM_BINARY_HEAD_TYPE (runtime/format/blockq.h). */
static bllm_type head_embed_type(const input *in, const bllm_quantize_params *p, const tinfo *t)
{
    if (t->ndim != 2)
        return BLLM_TYPE_COUNT;
    bllm_type ty;
    if (!strcmp(t->name, "output.weight")) {
        ty = p->head_type;
    } else if (!strcmp(t->name, "token_embd.weight")) {
        ty = !has_output(in) && p->head_type != BLLM_TYPE_COUNT ? p->head_type : p->embed_type;
    } else {
        return BLLM_TYPE_COUNT;
    }
    return ty == BLLM_TYPE_COUNT ? BLLM_BINARY_HEAD_TYPE : ty;
}

/* What run() writes: the quantized model, the f32 copy of a packed one, or
 * the model holding a calibrated quantizer's simulated weights in f32 in
 * place of its packed matrices (every other tensor stored as in the
 * quantized model, so the two differ in those matrices only). */
typedef enum { WRITE_QUANTIZED, WRITE_DEQUANTIZED, WRITE_SIMULATED } write_mode;

static bllm_status run(input *in, const char *input_path, const char *output, const bllm_quantize_params *p,
                       const bllm_engine_result *eng, write_mode mode, bllm_quantize_report *rep)
{
    double t0 = now();
    bllm_stb_writer *w = bllm_stb_writer_new();
    plan *pl = calloc((size_t)(in->n ? in->n : 1), sizeof *pl);
    float *f32 = NULL;
    void *buf = NULL;
    bllm_status s = BLLM_OK;
    const bllm_method *method = bllm_method_find(p->method);
    if (w) {
        bllm_stb_writer_set_replace(w, p->replace_output);
        bllm_stb_writer_set_check(w, bllm_model_verify);
    }
    if (!w || !pl) {
        s = bllm_fail(BLLM_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((s = write_metadata(w, in, input_path, p->options_text, p->created_by)))
        goto done;
    if (mode != WRITE_DEQUANTIZED &&
        (s = write_quant_metadata(w, p, eng, mode == WRITE_SIMULATED ? "f32 simulation of the quantizer" : NULL)))
        goto done;

    /* Directory: every tensor's final type and shape. */
    uint64_t max_n = 1, max_bytes = 1;
    for (int i = 0; i < in->n; i++) {
        tinfo t = input_tensor(in, i);
        uint64_t n = numel(&t);
        max_n = n > max_n ? n : max_n;
        rep->weights_total += n;
        uint64_t rows = t.ndim == 2 ? (uint64_t)t.dims[0] : 1, cols = (uint64_t)t.dims[t.ndim - 1];
        const bllm_engine_matrix *em = eng && is_block_matrix(&t) ? bllm_engine_find(eng, t.name) : NULL;
        bllm_type type;
        pl[i].eng = em;
        if (mode == WRITE_DEQUANTIZED || t.ndim == 1 || (mode == WRITE_SIMULATED && em)) {
            pl[i].kind = PLAN_F32, type = BLLM_TYPE_F32;
        } else if (em) {
            pl[i].kind = PLAN_PACKED, type = em->type;
        } else if (!method && is_block_matrix(&t) && bllm_type_shape_ok(p->type, rows, cols)) {
            pl[i].kind = PLAN_PACKED, type = p->type;
        } else if (bllm_type_is_blockq(head_embed_type(in, p, &t))) {
            pl[i].kind = PLAN_BLOCKQ, type = head_embed_type(in, p, &t);
            if (!bllm_type_shape_ok(type, rows, cols)) {
                s = bllm_fail(BLLM_ERR_ARG, "tensor '%s' has %llu columns; %s needs a multiple of 32", t.name,
                              (unsigned long long)cols, bllm_type_name(type));
                goto done;
            }
        } else {
            const bllm_type he = head_embed_type(in, p, &t), kt = he != BLLM_TYPE_COUNT ? he : p->keep_type;
            pl[i].kind = kt == BLLM_TYPE_F32 ? PLAN_F32 : PLAN_F16;
            type = kt == BLLM_TYPE_F32 ? BLLM_TYPE_F32 : BLLM_TYPE_F16;
        }
        if (is_block_matrix(&t) && mode != WRITE_DEQUANTIZED && !(em || (!method && pl[i].kind == PLAN_PACKED)) &&
            rep->n_kept++ == 0)
            snprintf(rep->first_kept, sizeof rep->first_kept, "%s", t.name);
        pl[i].type = type;
        uint64_t bytes = bllm_type_tensor_bytes(type, rows, cols);
        max_bytes = bytes > max_bytes ? bytes : max_bytes;
        pl[i].companion = -1;
        if ((pl[i].index = bllm_stb_add_tensor(w, t.name, type, t.ndim, t.dims)) < 0) {
            s = BLLM_ERR_ARG;
            goto done;
        }
        if (pl[i].kind == PLAN_PACKED && type == BLLM_TYPE_PB8) {
            char cname[160];
            snprintf(cname, sizeof cname, "%s.salient", t.name);
            pl[i].companion_bytes = em ? em->companion_bytes
                                       : bllm_pb8_salient_bytes(rows, rows * (uint64_t)bllm_rtn_pb8_per_row(
                                                                              (int)cols, p->rtn.salient_frac));
            int64_t cd[1] = {(int64_t)pl[i].companion_bytes};
            if ((pl[i].companion = bllm_stb_add_tensor(w, cname, BLLM_TYPE_U8, 1, cd)) < 0) {
                s = BLLM_ERR_ARG;
                goto done;
            }
        }
    }
    f32 = malloc(max_n * sizeof(float));
    buf = malloc(max_bytes);
    if (!f32 || !buf) {
        s = bllm_fail(BLLM_ERR_NOMEM, "out of memory (%llu values for the largest tensor)",
                      (unsigned long long)max_n);
        goto done;
    }
    if ((s = bllm_stb_write_begin(w, output)))
        goto done;

    for (int i = 0; i < in->n; i++) {
        tinfo t = input_tensor(in, i);
        uint64_t n = numel(&t);
        int rows = t.ndim == 2 ? (int)t.dims[0] : 1, cols = (int)t.dims[t.ndim - 1];
        const bllm_engine_matrix *em = pl[i].eng;
        if (p->progress)
            progress(i, in->n, t.name);
        if (em && pl[i].kind == PLAN_PACKED) {
            if (!(s = bllm_stb_write_tensor(w, pl[i].index, em->data, em->nbytes)) && pl[i].companion >= 0)
                s = bllm_stb_write_tensor(w, pl[i].companion, em->companion, em->companion_bytes);
            rep->n_binarized++;
            rep->weights_binarized += n;
            if (s)
                goto done;
            continue;
        }
        if (em && mode == WRITE_SIMULATED) {
            if (!em->sim) {
                s = bllm_fail(BLLM_ERR_ARG, "internal error: no simulated weights kept for '%s'", t.name);
                goto done;
            }
            if ((s = bllm_stb_write_tensor(w, pl[i].index, em->sim, n * sizeof(float))))
                goto done;
            continue;
        }
        if ((s = input_read(in, i, f32)))
            goto done;
        for (uint64_t k = 0; k < n; k++)
            if (!isfinite(f32[k])) {
                s = bllm_fail(BLLM_ERR_FORMAT, "tensor '%s' holds a non-finite value at index %llu", t.name,
                              (unsigned long long)k);
                goto done;
            }
        switch (pl[i].kind) {
        case PLAN_F32:
            s = bllm_stb_write_tensor(w, pl[i].index, f32, n * sizeof(float));
            break;
        case PLAN_F16:
            if (!(s = to_f16(t.name, f32, n, buf)))
                s = bllm_stb_write_tensor(w, pl[i].index, buf, n * 2);
            break;
        case PLAN_BLOCKQ: {
            /* the head, after a calibration, weighs each column's error by
             * how large its input is (runtime/format/blockq.h) */
            const float *imp = eng && eng->head_importance_n == cols && is_head(in, &t) ? eng->head_importance : NULL;
            const uint64_t rb = bllm_type_row_bytes(pl[i].type, cols);
            for (uint64_t r = 0; r < (uint64_t)rows; r++)
                bllm_blockq_quantize_row_weighted(pl[i].type, f32 + r * cols, imp, (int)cols,
                                                  (uint8_t *)buf + r * rb);
            s = bllm_stb_write_tensor(w, pl[i].index, buf, rows * rb);
            break;
        }
        case PLAN_PACKED: {
            bllm_binary_decomp d;
            uint64_t nb = bllm_type_tensor_bytes(p->type, (uint64_t)rows, (uint64_t)cols);
            if ((s = bllm_binary_rtn(p->type, f32, rows, cols, &p->rtn, &d))) {
                char msg[512];
                snprintf(msg, sizeof msg, "%s", bllm_last_error());
                s = bllm_fail(s, "tensor '%s': %s", t.name, msg);
                break;
            }
            if (!(s = bllm_binary_pack(&d, buf, nb)))
                s = bllm_stb_write_tensor(w, pl[i].index, buf, nb);
            if (!s && pl[i].companion >= 0) {
                void *cb = NULL;
                uint64_t cbytes = 0;
                s = bllm_pb8_salient_pack(&d, &cb, &cbytes);
                if (!s && cbytes != pl[i].companion_bytes)
                    s = bllm_fail(BLLM_ERR_ARG, "tensor '%s': companion is %llu bytes, %llu were planned", t.name,
                                  (unsigned long long)cbytes, (unsigned long long)pl[i].companion_bytes);
                if (!s)
                    s = bllm_stb_write_tensor(w, pl[i].companion, cb, cbytes);
                free(cb);
            }
            bllm_binary_decomp_free(&d);
            rep->n_binarized++;
            rep->weights_binarized += n;
            break;
        }
        }
        if (s)
            goto done;
    }
    if (p->progress) {
        progress(in->n, in->n, "");
        fputc('\n', stderr);
    }
    if ((s = bllm_stb_write_finish(w)))
        goto done;
    rep->n_tensors = 0;
    for (int i = 0; i < in->n; i++)
        rep->n_tensors += 1 + (pl[i].companion >= 0);
    {
        FILE *f = fopen(output, "rb");
        if (f) {
            fseeko(f, 0, SEEK_END);
            rep->file_bytes = (uint64_t)ftello(f);
            fclose(f);
        }
    }
    rep->seconds = now() - t0;
done:
    if (s && p->progress)
        fputc('\n', stderr);
    free(f32);
    free(buf);
    free(pl);
    bllm_stb_writer_free(w);
    return s;
}

static bool has_packed(const input *in)
{
    for (int i = 0; in->stb && i < in->n; i++)
        if (bllm_type_is_packed(bllm_stb_tensor_at(in->stb, in->stb_index[i])->type))
            return true;
    return false;
}

bllm_status bllm_quantize_model(const char *input_path, const char *output, const bllm_quantize_params *p,
                                bllm_quantize_report *report)
{
    bllm_quantize_report dummy;
    if (!report)
        report = &dummy;
    memset(report, 0, sizeof *report);
    const char *mname = p->method ? p->method : "rtn";
    const bllm_method *method = bllm_method_find(mname);
    if (!method && strcmp(mname, "rtn"))
        return bllm_fail(BLLM_ERR_ARG, "unknown quantization method '%s' (rtn, pb-llm, billm, stbllm, pbs2p, "
                         "onebit)", mname);
    if (!method && !bllm_type_is_packed(p->type))
        return bllm_fail(BLLM_ERR_ARG, "quantization target %s is not a packed binary type",
                         bllm_type_name(p->type));
    if (p->keep_type != BLLM_TYPE_F16 && p->keep_type != BLLM_TYPE_F32)
        return bllm_fail(BLLM_ERR_ARG, "keep type must be f16 or f32, not %s", bllm_type_name(p->keep_type));
    for (int k = 0; k < 2; k++) {
        const bllm_type t = k ? p->head_type : p->embed_type;
        if (t != BLLM_TYPE_COUNT && !bllm_type_is_blockq(t) && t != BLLM_TYPE_F16 && t != BLLM_TYPE_F32)
            return bllm_fail(BLLM_ERR_ARG, "the %s must be q8, q6, q4, q4nl, f16 or f32, not %s", k ? "head" : "embedding",
                             bllm_type_name(t));
    }
    if (!method && p->type == BLLM_TYPE_PB8 && !(p->rtn.salient_frac >= 0.0f && p->rtn.salient_frac <= 1.0f))
        return bllm_fail(BLLM_ERR_ARG, "salient fraction %g is not in [0, 1]", (double)p->rtn.salient_frac);
    if (method && (p->calib_samples < 1 || p->calib_len < 2))
        return bllm_fail(BLLM_ERR_ARG, "calibration needs at least 1 window of at least 2 tokens (got %d x %d)",
                         p->calib_samples, p->calib_len);
    if (method && !p->calib_path)
        return bllm_fail(BLLM_ERR_ARG, "%s needs a calibration file", mname);
    if (!method && p->simulated_path)
        return bllm_fail(BLLM_ERR_ARG, "a simulated model is written by the calibrated methods only");
    bllm_quantize_params q = *p;
    q.method = mname;
    input in;
    bllm_status s = input_open(input_path, p->tokenizer_path, &in);
    if (!s && method && has_packed(&in))
        s = bllm_fail(BLLM_ERR_UNSUPPORTED, "%s: its matrices are already packed; %s calibrates float weights "
                      "(give it the F16/F32 model or the original checkpoint)", input_path, mname);
    if (!s && method) {
        bllm_engine_params ep = {.calib_path = p->calib_path, .calib_samples = p->calib_samples,
                                 .calib_len = p->calib_len, .seed = p->seed, .method = method,
                                 .mopts = p->mopts, .n_threads = p->n_threads, .act_store = p->act_store,
                                 .keep_sim = p->simulated_path != NULL, .progress = p->progress};
        bllm_engine_source src = {&in, engine_read};
        int *layer_n = NULL;
        double t_alloc = now();
        int alloc = p->nm_alloc >= 0 ? p->nm_alloc
                    : !strcmp(method->name, "pbs2p") ? BLLM_NM_ALLOC_SEARCH : BLLM_NM_ALLOC_OUTLIER;
        if (method->type == BLLM_TYPE_STBLLM && alloc != BLLM_NM_ALLOC_UNIFORM) {
            if (!(layer_n = malloc(in.hp.n_layers * sizeof *layer_n)))
                s = bllm_fail(BLLM_ERR_NOMEM, "out of memory");
            if (!s && p->progress)
                fprintf(stderr, "per-layer N:M: probing the float model on %d windows\n",
                        p->nm_alloc_samples < p->calib_samples ? p->nm_alloc_samples : p->calib_samples);
            if (!s)
                s = bllm_nm_allocate(&src, &in.hp, input_tokenizer(&in), &ep, (bllm_nm_alloc_mode)alloc,
                                     p->nm_alloc_samples, layer_n, NULL);
            ep.layer_nm_n = layer_n;
        }
        t_alloc = now() - t_alloc;
        if (!s)
            s = bllm_engine_run(&src, &in.hp, input_tokenizer(&in), &ep, &report->engine);
        report->engine.nm_alloc = layer_n ? alloc : BLLM_NM_ALLOC_UNIFORM;
        report->engine.seconds_alloc = layer_n ? t_alloc : 0.0;
        free(layer_n);
    }
    if (!s)
        s = run(&in, input_path, output, &q, method ? &report->engine : NULL, WRITE_QUANTIZED, report);
    if (!s && p->simulated_path) {
        bllm_quantize_report sim_rep;
        memset(&sim_rep, 0, sizeof sim_rep);
        s = run(&in, input_path, p->simulated_path, &q, &report->engine, WRITE_SIMULATED, &sim_rep);
    }
    input_close(&in);
    if (s)
        bllm_quantize_report_free(report);
    return s;
}

bllm_status bllm_dequantize_model(const char *input_path, const char *output, const char *created_by, bool progress,
                                  bool replace_output, bllm_quantize_report *report)
{
    bllm_quantize_report dummy;
    if (!report)
        report = &dummy;
    memset(report, 0, sizeof *report);
    if (!is_stb(input_path))
        return bllm_fail(BLLM_ERR_ARG, "%s: --dequantize reads a .stb file", input_path);
    bllm_quantize_params p;
    bllm_quantize_params_default(&p);
    p.options_text = "--dequantize";
    p.created_by = created_by;
    p.progress = progress;
    p.replace_output = replace_output;
    input in;
    bllm_status s = input_open(input_path, NULL, &in);
    if (!s)
        s = run(&in, input_path, output, &p, NULL, WRITE_DEQUANTIZED, report);
    input_close(&in);
    return s;
}
