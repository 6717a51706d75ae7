/* bllm-convert: a GGUF file, HF checkpoint folder or llama2.c checkpoint in,
 * a .stb file out. The importers (runtime/import/source.h) do the reading and the
 * normalization; this program chooses output types, writes the metadata
 * (hyperparameters, tokenizer, chat template, provenance) and streams the
 * tensors one at a time through the .stb writer. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "models/llama_hparams.h"
#include "runtime/file_io.h"
#include "runtime/format/blockq.h"
#include "runtime/import/source.h"
#include "runtime/format/stb.h"
#include "runtime/format/types.h"
#include "tokenizer/tokenizer.h"
#include "tools/cli.h"

#ifndef BLLM_VERSION
#define BLLM_VERSION "0.1.0"
#endif

static void usage(FILE *f) {
    fprintf(f,
            "usage: bllm-convert INPUT -o OUT.stb [options]\n"
            "\n"
            "INPUT is a GGUF file, a Hugging Face checkpoint folder (config.json,\n"
            "*.safetensors, tokenizer.json or tokenizer.model) or a llama2.c checkpoint.\n"
            "\n"
            "options:\n"
            "  -o, --output PATH      the .stb file to write (required)\n"
            "  -t, --type TYPE        f32 (default), f16 or bf16 for matrices; norms and\n"
            "                         other 1-D tensors always stay f32\n"
            "      --tokenizer PATH   tokenizer.bin of a llama2.c checkpoint\n"
            "  -f, --format FMT       auto (default), gguf, hf or llama2c\n"
            "      --force            replace OUT.stb if it exists (never the input)\n"
            "      --embed-type T     the token embedding in q8, q6, q4 or q4nl (8, 6 or 4 bits\n"
            "                         per weight plus an fp16 scale per 32; q4nl's 16 levels\n"
            "                         non-uniform, runtime/format/blockq.h),\n"
            "                         or f16, f32 (default: the --type)\n"
            "      --head-type T      the output head likewise; a tied model's one matrix\n"
            "                         takes --head-type when given\n"
            "  -q, --quiet            no progress bar\n"
            "  -h, --help             this text\n");
}

static const char *kind_name(bllm_source_kind k) {
    switch (k) {
    case BLLM_SOURCE_GGUF: return "gguf";
    case BLLM_SOURCE_HF: return "hf";
    case BLLM_SOURCE_LLAMA2C: return "llama2c";
    default: return "auto";
    }
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int fail(const char *what, bllm_status st) {
    fprintf(stderr, "\nbllm-convert: %s: %s: %s\n", what, bllm_status_name(st), bllm_last_error());
    return 1;
}

static void progress(int i, int n, const char *name, double done, double total) {
    int width = 24, filled = total > 0 ? (int)(width * done / total) : width;
    char bar[32];
    for (int k = 0; k < width; k++)
        bar[k] = k < filled ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r[%s] %4d/%-4d %8.1f/%.1f MiB  %-32.32s", bar, i, n, done / 1048576.0,
            total / 1048576.0, name);
    fflush(stderr);
}

int main(int argc, char **argv) {
    const char *out = NULL, *tok = NULL, *type_s = "f32", *fmt = "auto";
    bool quiet = false, force = false;
    enum { OPT_FORCE = 256, OPT_EMBED, OPT_HEAD };
    const char *embed_s = NULL, *head_s = NULL;
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'}, {"type", required_argument, NULL, 't'},
        {"tokenizer", required_argument, NULL, 'k'}, {"format", required_argument, NULL, 'f'},
        {"quiet", no_argument, NULL, 'q'},         {"help", no_argument, NULL, 'h'},
        {"force", no_argument, NULL, OPT_FORCE},
        {"embed-type", required_argument, NULL, OPT_EMBED}, {"head-type", required_argument, NULL, OPT_HEAD},
        {NULL, 0, NULL, 0},
    };
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:t:f:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 't': type_s = optarg; break;
        case 'k': tok = optarg; break;
        case 'f': fmt = optarg; break;
        case 'q': quiet = true; break;
        case OPT_FORCE: force = true; break;
        case OPT_EMBED: embed_s = optarg; break;
        case OPT_HEAD: head_s = optarg; break;
        case 'h': usage(stdout); return 0;
        case ':':
            fprintf(stderr, "bllm-convert: option '%s' needs a value\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "bllm-convert: unknown option '%s' (see --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc - 1 || !out) {
        fprintf(stderr, "bllm-convert: %s\n", optind >= argc ? "no INPUT given"
                                               : optind < argc - 1 ? "more than one INPUT given"
                                                                   : "no output given (-o OUT.stb)");
        usage(stderr);
        return 2;
    }
    const char *input = argv[optind];
    bllm_type type;
    if (strcmp(type_s, "f32") == 0)
        type = BLLM_TYPE_F32;
    else if (strcmp(type_s, "f16") == 0)
        type = BLLM_TYPE_F16;
    else if (strcmp(type_s, "bf16") == 0)
        type = BLLM_TYPE_BF16;
    else {
        fprintf(stderr, "bllm-convert: unknown --type '%s' (f32, f16 or bf16)\n", type_s);
        return 2;
    }
    int embed_type = BLLM_TYPE_COUNT, head_type = BLLM_TYPE_COUNT;
    if ((embed_s && !bllm_cli_parse_blockq("bllm-convert", "--embed-type", embed_s, &embed_type)) ||
        (head_s && !bllm_cli_parse_blockq("bllm-convert", "--head-type", head_s, &head_type)))
        return 2;
    bllm_source_kind kind;
    if (strcmp(fmt, "auto") == 0)
        kind = BLLM_SOURCE_AUTO;
    else if (strcmp(fmt, "gguf") == 0)
        kind = BLLM_SOURCE_GGUF;
    else if (strcmp(fmt, "hf") == 0)
        kind = BLLM_SOURCE_HF;
    else if (strcmp(fmt, "llama2c") == 0)
        kind = BLLM_SOURCE_LLAMA2C;
    else {
        fprintf(stderr, "bllm-convert: unknown --format '%s' (auto, gguf, hf or llama2c)\n", fmt);
        return 2;
    }
    quiet = quiet || !isatty(2);
    if (tok && kind != BLLM_SOURCE_AUTO && kind != BLLM_SOURCE_LLAMA2C)
        fprintf(stderr, "bllm-convert: note: --tokenizer is only used for llama2.c checkpoints\n");

    {
        const char *ins[] = {input, tok};
        if (bllm_check_output(out, ins, 2, force)) {
            fprintf(stderr, "bllm-convert: %s\n", bllm_last_error());
            return 1;
        }
    }
    double t0 = now();
    bllm_source *src = NULL;
    bllm_status st = bllm_source_open(input, kind, tok, &src);
    if (st) {
        fprintf(stderr, "bllm-convert: cannot read '%s': %s: %s\n", input, bllm_status_name(st),
                bllm_last_error());
        return 1;
    }
    const bllm_llama_hparams *hp = bllm_source_hparams(src);
    const bllm_tokenizer_spec *spec = bllm_source_tokenizer(src);
    int n = bllm_source_n_tensors(src);
    bllm_stb_writer *w = bllm_stb_writer_new();
    float *f32 = NULL;
    uint16_t *half = NULL;
    int rc = 1;
    if (!w) {
        fprintf(stderr, "bllm-convert: out of memory\n");
        goto done;
    }
    bllm_stb_writer_set_replace(w, force);
    bllm_stb_writer_set_check(w, bllm_model_verify);

    /* ---- metadata ---- */
    char abs_in[PATH_MAX];
    if (!realpath(input, abs_in))
        snprintf(abs_in, sizeof(abs_in), "%s", input);
    const char *sha = bllm_source_sha256(src);
    if (!sha) {
        rc = fail("hashing the source", BLLM_ERR_IO);
        goto done;
    }
    char options[1024];
    snprintf(options, sizeof(options), "--type %s --format %s%s%s%s%s%s%s", type_s,
             kind_name(bllm_source_get_kind(src)), tok ? " --tokenizer " : "", tok ? tok : "",
             embed_s ? " --embed-type " : "", embed_s ? embed_s : "", head_s ? " --head-type " : "",
             head_s ? head_s : "");
    char created[64];
    snprintf(created, sizeof(created), "bllm-convert %s", BLLM_VERSION);
    const char *name = hp->name[0] ? hp->name : "unnamed";
    const char *tmpl = bllm_source_chat_template(src);
    if ((st = bllm_stb_set_str(w, "general.architecture", "llama", 5)) ||
        (st = bllm_stb_set_str(w, "general.name", name, strlen(name))) ||
        (st = bllm_llama_hparams_to_stb(hp, w)) || (st = bllm_tokenizer_spec_to_stb(spec, w)) ||
        (tmpl && (st = bllm_stb_set_str(w, "tokenizer.chat_template", tmpl, strlen(tmpl)))) ||
        (st = bllm_stb_set_str(w, "provenance.source_path", abs_in, strlen(abs_in))) ||
        (st = bllm_stb_set_str(w, "provenance.source_sha256", sha, strlen(sha))) ||
        (st = bllm_stb_set_str(w, "provenance.source_format", kind_name(bllm_source_get_kind(src)),
                               strlen(kind_name(bllm_source_get_kind(src))))) ||
        (st = bllm_stb_set_str(w, "provenance.options", options, strlen(options))) ||
        (st = bllm_stb_set_str(w, "provenance.created_by", created, strlen(created)))) {
        rc = fail("writing metadata", st);
        goto done;
    }

    /* ---- tensor directory ---- */
    bool tied = true;
    for (int i = 0; i < n; i++)
        tied = tied && strcmp(bllm_source_tensor_at(src, i)->name, "output.weight");
    uint64_t max_numel = 0;
    double total = 0;
    bllm_type *types = calloc((size_t)(n ? n : 1), sizeof(*types));
    if (!types) {
        fprintf(stderr, "bllm-convert: out of memory\n");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const bllm_source_tensor *t = bllm_source_tensor_at(src, i);
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++)
            numel *= (uint64_t)t->dims[d];
        if (numel > max_numel)
            max_numel = numel;
        types[i] = t->ndim == 1 ? BLLM_TYPE_F32 : type;
        bllm_type bq = t->ndim != 2                                ? BLLM_TYPE_COUNT
                       : !strcmp(t->name, "output.weight")        ? head_type
                       : strcmp(t->name, "token_embd.weight")      ? BLLM_TYPE_COUNT
                       : tied && head_type != BLLM_TYPE_COUNT      ? head_type
                                                                   : embed_type;
        if (bq != BLLM_TYPE_COUNT) {
            if (!bllm_type_shape_ok(bq, (uint64_t)t->dims[0], (uint64_t)t->dims[1])) {
                fprintf(stderr, "bllm-convert: '%s' has %lld columns; %s needs a multiple of 32\n", t->name,
                        (long long)t->dims[1], bllm_type_name(bq));
                free(types);
                goto done;
            }
            types[i] = bq;
        }
        total += (double)bllm_type_tensor_bytes(types[i], t->ndim == 2 ? (uint64_t)t->dims[0] : 1,
                                                (uint64_t)t->dims[t->ndim - 1]);
        if (bllm_stb_add_tensor(w, t->name, types[i], t->ndim, t->dims) < 0) {
            free(types);
            rc = fail(t->name, BLLM_ERR_ARG);
            goto done;
        }
    }
    f32 = malloc((size_t)(max_numel ? max_numel : 1) * sizeof(float));
    half = malloc((size_t)(max_numel ? max_numel : 1) * sizeof(uint16_t));
    if (!f32 || !half) {
        free(types);
        fprintf(stderr, "bllm-convert: out of memory (%llu values for the largest tensor)\n",
                (unsigned long long)max_numel);
        goto done;
    }
    if ((st = bllm_stb_write_begin(w, out))) {
        free(types);
        rc = fail(out, st);
        goto done;
    }

    /* ---- tensor data ---- */
    double done_bytes = 0;
    for (int i = 0; i < n; i++) {
        const bllm_source_tensor *t = bllm_source_tensor_at(src, i);
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++)
            numel *= (uint64_t)t->dims[d];
        if (!quiet)
            progress(i, n, t->name, done_bytes, total);
        if ((st = bllm_source_read_f32(src, i, f32))) {
            free(types);
            rc = fail(t->name, st);
            goto done;
        }
        for (uint64_t k = 0; k < numel; k++)
            if (!isfinite(f32[k])) {
                fprintf(stderr, "\nbllm-convert: tensor '%s' (%s) holds a non-finite value at "
                        "index %llu: the source is corrupt\n", t->name, t->src_type,
                        (unsigned long long)k);
                free(types);
                goto done;
            }
        const void *data = f32;
        size_t nbytes = (size_t)numel * sizeof(float);
        if (types[i] == BLLM_TYPE_F16) {
            for (uint64_t k = 0; k < numel; k++) {
                half[k] = bllm_f32_to_f16(f32[k]);
                if ((half[k] & 0x7c00) == 0x7c00) {
                    fprintf(stderr, "\nbllm-convert: tensor '%s' has the value %g, beyond the f16 "
                            "range; use --type bf16 or f32\n", t->name, (double)f32[k]);
                    free(types);
                    goto done;
                }
            }
            data = half;
            nbytes = (size_t)numel * 2;
        } else if (types[i] == BLLM_TYPE_BF16) {
            for (uint64_t k = 0; k < numel; k++)
                half[k] = bllm_f32_to_bf16(f32[k]);
            data = half;
            nbytes = (size_t)numel * 2;
        } else if (bllm_type_is_blockq(types[i])) {
            /* fewer bytes than the f16 buffer holds: 34 or 18 per 32 values */
            const uint64_t cols = (uint64_t)t->dims[1], rb = bllm_type_row_bytes(types[i], cols);
            for (int64_t r = 0; r < t->dims[0]; r++)
                bllm_blockq_quantize_row(types[i], f32 + (uint64_t)r * cols, (int)cols, (uint8_t *)half + r * rb);
            data = half;
            nbytes = (size_t)(rb * (uint64_t)t->dims[0]);
        }
        if ((st = bllm_stb_write_tensor(w, i, data, nbytes))) {
            free(types);
            rc = fail(out, st);
            goto done;
        }
        done_bytes += (double)nbytes;
    }
    free(types);
    if (!quiet) {
        progress(n, n, "", done_bytes, total);
        fputc('\n', stderr);
    }
    if ((st = bllm_stb_write_finish(w))) {
        rc = fail(out, st);
        goto done;
    }
    printf("bllm-convert: wrote %s: %d tensors, %.1f MiB (%s matrices) from %s '%s' "
           "(sha256 %.12s...) in %.1f s\n",
           out, n, done_bytes / 1048576.0, type_s, kind_name(bllm_source_get_kind(src)), input, sha,
           now() - t0);
    rc = 0;
done:
    free(f32);
    free(half);
    bllm_stb_writer_free(w);
    bllm_source_close(src);
    return rc;
}
