/* bllm-quantize: binarize a model's linear layers into a packed .stb, or
 * (--dequantize) turn a packed .stb back into an f32 one. The work is in
 * runtime/quant/quantize.c; this file parses options and prints the outcome. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/quant/quantize.h"

#ifndef BLLM_VERSION
#define BLLM_VERSION "0.1.0"
#endif

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bllm-quantize INPUT -o OUT.stb --type TYPE [options]\n"
            "       bllm-quantize --dequantize PACKED.stb -o OUT.stb\n"
            "\n"
            "INPUT is a GGUF file, a Hugging Face checkpoint folder, a llama2.c checkpoint or a\n"
            ".stb file. Every 2-D blk.* matrix is binarized; embeddings and the output head\n"
            "keep --keep-type, norms stay f32.\n"
            "\n"
            "options:\n"
            "  -o, --output PATH      the .stb file to write (required)\n"
            "  -m, --method METHOD    rtn (default; calibrated methods come later)\n"
            "  -t, --type TYPE        b1, b1g (default), b1mg, rb2g, nm24, nm48, nm58, nm68,\n"
            "                         onebit or pb8 (docs/format.md)\n"
            "      --salient FRAC     pb8: fraction of each row kept in int8 (default 0.1)\n"
            "      --onebit-iters N   onebit: power iterations for rank-1 |W| (default 32)\n"
            "      --keep-type TYPE   f16 (default) or f32 for the matrices not binarized\n"
            "      --tokenizer PATH   tokenizer.bin of a llama2.c checkpoint\n"
            "      --dequantize       write the f32 copy of a packed .stb instead\n"
            "  -q, --quiet            no progress bar\n"
            "  -h, --help             this text\n");
}

int main(int argc, char **argv)
{
    const char *out = NULL, *method = "rtn", *type_s = "b1g", *keep_s = "f16", *tok = NULL;
    const char *salient_s = NULL, *iters_s = NULL;
    bool quiet = false, dequantize = false;
    enum { OPT_SALIENT = 256, OPT_KEEP, OPT_TOK, OPT_DEQ, OPT_ITERS };
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},     {"method", required_argument, NULL, 'm'},
        {"type", required_argument, NULL, 't'},       {"salient", required_argument, NULL, OPT_SALIENT},
        {"keep-type", required_argument, NULL, OPT_KEEP}, {"tokenizer", required_argument, NULL, OPT_TOK},
        {"dequantize", no_argument, NULL, OPT_DEQ},   {"onebit-iters", required_argument, NULL, OPT_ITERS},
        {"quiet", no_argument, NULL, 'q'},            {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "o:m:t:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'm': method = optarg; break;
        case 't': type_s = optarg; break;
        case OPT_SALIENT: salient_s = optarg; break;
        case OPT_KEEP: keep_s = optarg; break;
        case OPT_TOK: tok = optarg; break;
        case OPT_DEQ: dequantize = true; break;
        case OPT_ITERS: iters_s = optarg; break;
        case 'q': quiet = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1 || !out) {
        fprintf(stderr, "bllm-quantize: %s\n", optind >= argc       ? "no INPUT given"
                                               : optind < argc - 1 ? "more than one INPUT given"
                                                                   : "no output given (-o OUT.stb)");
        usage(stderr);
        return 2;
    }
    const char *input = argv[optind];
    char created[64];
    snprintf(created, sizeof created, "bllm-quantize %s", BLLM_VERSION);
    bool progress = !quiet && isatty(2);
    bllm_quantize_report rep;

    if (dequantize) {
        bllm_status s = bllm_dequantize_model(input, out, created, progress, &rep);
        if (s) {
            fprintf(stderr, "bllm-quantize: %s: %s\n", bllm_status_name(s), bllm_last_error());
            return 1;
        }
        printf("bllm-quantize: wrote %s: %d tensors in f32, %.1f MiB, from %s in %.1f s\n", out, rep.n_tensors,
               (double)rep.file_bytes / 1048576.0, input, rep.seconds);
        return 0;
    }

    bllm_quantize_params p;
    bllm_quantize_params_default(&p);
    if (strcmp(method, "rtn")) {
        fprintf(stderr, "bllm-quantize: unknown --method '%s' (only rtn so far)\n", method);
        return 2;
    }
    if (!bllm_type_from_name(type_s, &p.type) || !bllm_type_is_packed(p.type)) {
        fprintf(stderr, "bllm-quantize: unknown --type '%s' (b1, b1g, b1mg, rb2g, nm24, nm48, nm58, nm68, "
                        "onebit, pb8)\n", type_s);
        return 2;
    }
    if (!bllm_type_from_name(keep_s, &p.keep_type) ||
        (p.keep_type != BLLM_TYPE_F16 && p.keep_type != BLLM_TYPE_F32)) {
        fprintf(stderr, "bllm-quantize: --keep-type must be f16 or f32, not '%s'\n", keep_s);
        return 2;
    }
    if (salient_s) {
        char *end;
        p.rtn.salient_frac = strtof(salient_s, &end);
        if (*end || end == salient_s || !(p.rtn.salient_frac >= 0.0f && p.rtn.salient_frac <= 1.0f)) {
            fprintf(stderr, "bllm-quantize: --salient must be a fraction in [0, 1], not '%s'\n", salient_s);
            return 2;
        }
        if (p.type != BLLM_TYPE_PB8)
            fprintf(stderr, "bllm-quantize: note: --salient only applies to --type pb8\n");
    }
    if (iters_s) {
        char *end;
        long n = strtol(iters_s, &end, 10);
        if (*end || end == iters_s || n < 1 || n > 10000) {
            fprintf(stderr, "bllm-quantize: --onebit-iters must be 1..10000, not '%s'\n", iters_s);
            return 2;
        }
        p.rtn.onebit_iters = (int)n;
    }
    char options[1024];
    int len = snprintf(options, sizeof options, "--method %s --type %s --keep-type %s", method, type_s, keep_s);
    if (p.type == BLLM_TYPE_PB8)
        len += snprintf(options + len, sizeof options - (size_t)len, " --salient %g", (double)p.rtn.salient_frac);
    if (p.type == BLLM_TYPE_ONEBIT)
        len += snprintf(options + len, sizeof options - (size_t)len, " --onebit-iters %d", p.rtn.onebit_iters);
    if (tok)
        snprintf(options + len, sizeof options - (size_t)len, " --tokenizer %s", tok);
    p.options_text = options;
    p.created_by = created;
    p.tokenizer_path = tok;
    p.progress = progress;

    bllm_status s = bllm_quantize_model(input, out, &p, &rep);
    if (s) {
        fprintf(stderr, "bllm-quantize: %s: %s\n", bllm_status_name(s), bllm_last_error());
        return 1;
    }
    printf("bllm-quantize: wrote %s: %d tensors, %d matrices (%.1fM weights) in %s, %.1f MiB, in %.1f s\n", out,
           rep.n_tensors, rep.n_binarized, (double)rep.weights_binarized / 1e6, bllm_type_name(p.type),
           (double)rep.file_bytes / 1048576.0, rep.seconds);
    if (rep.n_kept)
        printf("bllm-quantize: note: %d blk.* matrices kept in %s because their shape is not a multiple of "
               "32 x 64 (first: %s)\n", rep.n_kept, bllm_type_name(p.keep_type), rep.first_kept);
    return 0;
}
