/* bllm-quantize: binarize a model's linear layers into a packed .stb, by
 * round-to-nearest or by a calibrated method, or (--dequantize) turn a
 * packed .stb back into an f32 one. The work is in runtime/quant/; this file
 * parses options and prints the outcome. */
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "runtime/file_io.h"
#include "runtime/quant/calib.h"
#include "runtime/quant/nm_alloc.h"
#include "runtime/quant/quantize.h"
#include "tools/cli.h"

#ifndef BLLM_VERSION
#define BLLM_VERSION "0.1.0"
#endif

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bllm-quantize INPUT -o OUT.stb [--method rtn --type TYPE |\n"
            "                     --method pb-llm|billm|stbllm|pbs2p|onebit] [options]\n"
            "       bllm-quantize --dequantize PACKED.stb -o OUT.stb\n"
            "\n"
            "INPUT is a GGUF file, a Hugging Face checkpoint folder, a llama2.c checkpoint or a\n"
            ".stb file. Every 2-D blk.* matrix is binarized; embeddings and the output head\n"
            "keep --keep-type, norms stay f32.\n"
            "\n"
            "methods:\n"
            "  rtn      round to nearest, no calibration, into any packed --type (default)\n"
            "  pb-llm   PB-LLM: the most salient weights (Hessian criterion) at 8 bits, the\n"
            "           rest binarized, GPTQ error compensation; stored as pb8\n"
            "  billm    BiLLM: residual-binarized salient columns, two magnitude groups for\n"
            "           the rest, GPTQ error compensation; stored as billm\n"
            "  stbllm   STBLLM: N:M pruning by Standardized Importance, then BiLLM's salient\n"
            "           columns and three magnitude regions for the kept weights, GPTQ error\n"
            "           compensation that keeps the zeros; stored as stbllm\n"
            "  pbs2p    PBS2P (from the paper): N:M pruning in steps, one weight per group at\n"
            "           a time, re-binarizing between steps, per-layer N searched; STBLLM's\n"
            "           binarization; stored as stbllm\n"
            "  onebit   OneBit's decomposition (sign(W), rank-1 |W| for the row and column\n"
            "           vectors) with g and h refitted to the calibration outputs by least\n"
            "           squares (not the paper's distillation training); stored as onebit\n"
            "\n"
            "options:\n"
            "  -o, --output PATH      the .stb file to write (required)\n"
            "      --force            replace OUT.stb if it exists (never an input)\n"
            "      --embed-type T     the token embedding: q4nl (default: 4 bits per weight on\n"
            "                         16 non-uniform levels and an fp16 scale per 32), q4\n"
            "                         (uniform levels), q6, q8, or f16, f32\n"
            "      --head-type T      the output head likewise; a tied model's one matrix\n"
            "                         takes --head-type when given. A calibrated method\n"
            "                         weighs the head's errors by its inputs' sizes\n"
            "  -m, --method METHOD    rtn (default), pb-llm, billm, stbllm, pbs2p or onebit\n"
            "      --type TYPE        rtn: b1, b1g (default), b1mg, rb2g, nm24, nm48, nm58, nm68,\n"
            "                         onebit or pb8 (docs/format.md)\n"
            "      --keep-type TYPE   f16 (default) or f32 for the matrices not binarized\n"
            "      --salient FRAC     pb8 / pb-llm: share of weights kept at 8 bits (default 0.1;\n"
            "                         rtn per row, pb-llm over the whole matrix)\n"
            "      --onebit-iters N   rtn onebit: power iterations for rank-1 |W| (default 32)\n"
            "calibrated methods:\n"
            "      --calib FILE       calibration text (default: ../shared/data/wikitext-2/\n"
            "                         valid.tokens.txt, the WikiText-2 validation split)\n"
            "      --calib-samples N  random windows (default 128)\n"
            "      --calib-len L      tokens per window (default 2048, capped at the context)\n"
            "      --seed S           window positions (default 0)\n"
            "      --damp F           Hessian damping, share of its mean diagonal (default 0.01)\n"
            "      --block N          GPTQ column block, a multiple of 64 (default 128)\n"
            "      --nm N:M           stbllm, pbs2p: keep N of every M consecutive inputs\n"
            "                         (default 4:8), on average over the layers\n"
            "      --nm-alloc uniform|outlier|search   the same N in every layer, or N per\n"
            "                         layer from its outlier share (stbllm's default) or from\n"
            "                         a search of its output errors (pbs2p's); both run a probe\n"
            "                         pass of the float model first (docs/quantization.md)\n"
            "      --nm-alloc-samples N  windows of that probe pass (default 16)\n"
            "      --nm-refill        stbllm, for comparison only: do what the authors' code\n"
            "                         does (pruned weights zeroed, then re-filled by the\n"
            "                         compensation and binarized); the model is NOT N:M-sparse\n"
            "      --billm-max-salient N   billm, stbllm: salient columns searched per block,\n"
            "                         1..N (default 49)\n"
            "      --billm-block-errors on|off  feed errors inside a block too (default on;\n"
            "                         off = the authors' code)\n"
            "      --onebit-fit N     onebit: alternating least-squares steps for g and h\n"
            "                         (default 10; 0 keeps the rank-1 |W| initialization)\n"
            "      --write-simulated PATH   also write the quantizer's own f32 simulation\n"
            "      --calib-activations auto|f32|f16   how the windows' activations are kept between\n"
            "                         stages (auto: f32 unless that takes over half the memory)\n"
            "  -t, --threads N        threads (default: all online CPUs)\n"
            "      --tokenizer PATH   tokenizer.bin of a llama2.c checkpoint\n"
            "      --dequantize       write the f32 copy of a packed .stb instead\n"
            "  -q, --quiet            no progress bar, no per-matrix table (the model's row stays)\n"
            "  -h, --help             this text\n");
}

/* The default calibration file: $BLLM_SHARED/data/..., else ../shared/data/...
 * from the working directory, else beside the source tree the tool was built
 * in (build/tools/ -> ../../../shared). */
static const char *default_calib(const char *argv0, char *buf, size_t cap)
{
    const char *env = getenv("BLLM_SHARED");
    if (env && *env) {
        snprintf(buf, cap, "%s/%s", env, BLLM_CALIB_DEFAULT_REL);
        if (access(buf, R_OK) == 0)
            return buf;
    }
    snprintf(buf, cap, "../shared/%s", BLLM_CALIB_DEFAULT_REL);
    if (access(buf, R_OK) == 0)
        return buf;
    char exe[PATH_MAX];
    if (realpath("/proc/self/exe", exe) || realpath(argv0, exe)) {
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            int n = snprintf(buf, cap, "%s/../../../shared/%s", exe, BLLM_CALIB_DEFAULT_REL);
            if (n > 0 && (size_t)n < cap && access(buf, R_OK) == 0)
                return buf;
        }
    }
    return NULL;
}

static double peak_rss_mib(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : 0.0;
}

/* The closing table: one row per matrix, then the model. */
static void print_table(const bllm_quantize_report *rep, const bllm_quantize_params *p, bool rows)
{
    const bllm_engine_result *e = &rep->engine;
    const char *method = p->method;
    printf("\n| matrix | method | type | shape | salient | rel. output error | bits/weight |\n");
    printf("|---|---|---|---|---:|---:|---:|\n");
    double bits = 0.0, weights = 0.0, err2 = 0.0, sal = 0.0;
    for (int i = 0; i < e->n; i++) {
        const bllm_engine_matrix *m = &e->m[i];
        double nw = (double)m->rows * m->cols, b = 8.0 * (double)(m->nbytes + m->companion_bytes);
        if (rows)
            printf("| %s | %s | %s | %dx%d | %.2f%% | %.4f | %.4f |\n", m->name, method, bllm_type_name(m->type),
                   m->rows, m->cols, 100.0 * m->rep.salient_share, m->rep.rel_error, b / nw);
        bits += b, weights += nw, err2 += m->rep.rel_error * m->rep.rel_error, sal += m->rep.salient_share * nw;
    }
    if (e->n)
        printf("| **all %d matrices** | %s | | | %.2f%% | %.4f (rms) | %.4f |\n", e->n, method,
               100.0 * sal / weights, sqrt(err2 / e->n), bits / weights);
    printf("\nwhole file: %.4f bits per weight over all %.1fM weights (%.1f MiB); calibration: %d windows x %d "
           "tokens of %s (sha256 %.12s...), activations in %s\n",
           rep->weights_total ? 8.0 * (double)rep->file_bytes / (double)rep->weights_total : 0.0,
           (double)rep->weights_total / 1e6, (double)rep->file_bytes / 1048576.0, p->calib_samples, e->calib_len,
           p->calib_path, e->calib_sha256, e->act_f16 ? "f16" : "f32");
}

int main(int argc, char **argv)
{
    bllm_cli_blas_core(argv);
    const char *out = NULL, *method = "rtn", *type_s = NULL, *keep_s = "f16", *tok = NULL, *calib = NULL;
    const char *salient_s = NULL, *iters_s = NULL, *sim = NULL;
    bool quiet = false, dequantize = false, force = false;
    const char *embed_head_s[2] = {NULL, NULL};
    bllm_quantize_params p;
    bllm_quantize_params_default(&p);
    long seed = 0;
    enum {
        OPT_SALIENT = 256, OPT_KEEP, OPT_TOK, OPT_DEQ, OPT_ITERS, OPT_CALIB, OPT_SAMPLES, OPT_LEN, OPT_SEED,
        OPT_DAMP, OPT_BLOCK, OPT_MAXSAL, OPT_BLKERR, OPT_SIM, OPT_TYPE, OPT_ACT, OPT_FIT, OPT_NM, OPT_NMALLOC,
        OPT_NMSAMPLES, OPT_FORCE, OPT_REFILL, OPT_EMBED, OPT_HEAD
    };
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},         {"method", required_argument, NULL, 'm'},
        {"type", required_argument, NULL, OPT_TYPE},     {"salient", required_argument, NULL, OPT_SALIENT},
        {"keep-type", required_argument, NULL, OPT_KEEP}, {"tokenizer", required_argument, NULL, OPT_TOK},
        {"dequantize", no_argument, NULL, OPT_DEQ},       {"onebit-iters", required_argument, NULL, OPT_ITERS},
        {"calib", required_argument, NULL, OPT_CALIB},    {"calib-samples", required_argument, NULL, OPT_SAMPLES},
        {"calib-len", required_argument, NULL, OPT_LEN},  {"seed", required_argument, NULL, OPT_SEED},
        {"damp", required_argument, NULL, OPT_DAMP},      {"block", required_argument, NULL, OPT_BLOCK},
        {"billm-max-salient", required_argument, NULL, OPT_MAXSAL},
        {"billm-block-errors", required_argument, NULL, OPT_BLKERR},
        {"write-simulated", required_argument, NULL, OPT_SIM},
        {"onebit-fit", required_argument, NULL, OPT_FIT},
        {"nm", required_argument, NULL, OPT_NM},
        {"nm-alloc", required_argument, NULL, OPT_NMALLOC},
        {"nm-alloc-samples", required_argument, NULL, OPT_NMSAMPLES},
        {"calib-activations", required_argument, NULL, OPT_ACT},
        {"force", no_argument, NULL, OPT_FORCE},
        {"nm-refill", no_argument, NULL, OPT_REFILL},
        {"embed-type", required_argument, NULL, OPT_EMBED},
        {"head-type", required_argument, NULL, OPT_HEAD},
        {"threads", required_argument, NULL, 't'},        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},                 {NULL, 0, NULL, 0},
    };
    int c;
    float fv;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:m:t:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'm': method = optarg; break;
        case OPT_TYPE: type_s = optarg; break;
        case OPT_SALIENT: salient_s = optarg; break;
        case OPT_KEEP: keep_s = optarg; break;
        case OPT_TOK: tok = optarg; break;
        case OPT_DEQ: dequantize = true; break;
        case OPT_ITERS: iters_s = optarg; break;
        case OPT_CALIB: calib = optarg; break;
        case OPT_SIM: sim = optarg; break;
        case OPT_FORCE: force = true; break;
        case OPT_REFILL: p.mopts.nm_refill = true; break;
        case OPT_EMBED:
        case OPT_HEAD: {
            int bt;
            if (!bllm_cli_parse_blockq("bllm-quantize", c == OPT_EMBED ? "--embed-type" : "--head-type", optarg, &bt))
                return 2;
            *(c == OPT_EMBED ? &p.embed_type : &p.head_type) = (bllm_type)bt;
            embed_head_s[c == OPT_HEAD] = optarg;
            break;
        }
        case OPT_ACT:
            if (!strcmp(optarg, "auto") || !strcmp(optarg, "f32") || !strcmp(optarg, "f16")) {
                p.act_store = !strcmp(optarg, "f32") ? 32 : !strcmp(optarg, "f16") ? 16 : 0;
                break;
            }
            fprintf(stderr, "bllm-quantize: --calib-activations takes auto, f32 or f16, not '%s'\n", optarg);
            return 2;
        case OPT_SAMPLES:
            if (!bllm_cli_parse_int(optarg, 1, 1000000, &p.calib_samples)) {
                fprintf(stderr, "bllm-quantize: --calib-samples must be 1..1000000, not '%s'\n", optarg);
                return 2;
            }
            break;
        case OPT_LEN:
            if (!bllm_cli_parse_int(optarg, 2, 1 << 20, &p.calib_len)) {
                fprintf(stderr, "bllm-quantize: --calib-len must be 2..1048576, not '%s'\n", optarg);
                return 2;
            }
            break;
        case OPT_SEED: {
            char *end;
            seed = strtol(optarg, &end, 10);
            if (*end || end == optarg || seed < 0) {
                fprintf(stderr, "bllm-quantize: --seed must be a non-negative integer, not '%s'\n", optarg);
                return 2;
            }
            p.seed = (uint64_t)seed;
            break;
        }
        case OPT_DAMP:
            if (!bllm_cli_parse_float(optarg, &fv) || !(fv > 0.0f && fv <= 10.0f)) {
                fprintf(stderr, "bllm-quantize: --damp must be in (0, 10], not '%s'\n", optarg);
                return 2;
            }
            p.mopts.percdamp = fv;
            break;
        case OPT_BLOCK:
            if (!bllm_cli_parse_int(optarg, 64, 1 << 16, &p.mopts.block) || p.mopts.block % 64) {
                fprintf(stderr, "bllm-quantize: --block must be a multiple of 64, not '%s'\n", optarg);
                return 2;
            }
            break;
        case OPT_MAXSAL:
            if (!bllm_cli_parse_int(optarg, 1, 127, &p.mopts.max_salient_cols)) {
                fprintf(stderr, "bllm-quantize: --billm-max-salient must be 1..127, not '%s'\n", optarg);
                return 2;
            }
            break;
        case OPT_NM: {
            int n = 0, m = 0, used = 0;
            if (sscanf(optarg, "%d:%d%n", &n, &m, &used) != 2 || optarg[used] || !(m == 4 || m == 8 || m == 16) ||
                n < 1 || n > m) {
                fprintf(stderr, "bllm-quantize: --nm takes N:M with M 4, 8 or 16 and 1 <= N <= M, not '%s'\n",
                        optarg);
                return 2;
            }
            p.mopts.nm_n = n, p.mopts.nm_m = m;
            break;
        }
        case OPT_NMALLOC:
            if (strcmp(optarg, "uniform") && strcmp(optarg, "outlier") && strcmp(optarg, "search")) {
                fprintf(stderr, "bllm-quantize: --nm-alloc takes uniform, outlier or search, not '%s'\n", optarg);
                return 2;
            }
            p.nm_alloc = !strcmp(optarg, "uniform")   ? BLLM_NM_ALLOC_UNIFORM
                         : !strcmp(optarg, "outlier") ? BLLM_NM_ALLOC_OUTLIER
                                                      : BLLM_NM_ALLOC_SEARCH;
            break;
        case OPT_NMSAMPLES:
            if (!bllm_cli_parse_int(optarg, 1, 1000000, &p.nm_alloc_samples)) {
                fprintf(stderr, "bllm-quantize: --nm-alloc-samples must be 1..1000000, not '%s'\n", optarg);
                return 2;
            }
            break;
        case OPT_FIT:
            if (!bllm_cli_parse_int(optarg, 0, 1000, &p.mopts.onebit_fit_iters)) {
                fprintf(stderr, "bllm-quantize: --onebit-fit must be 0..1000, not '%s'\n", optarg);
                return 2;
            }
            break;
        case OPT_BLKERR:
            if (strcmp(optarg, "on") && strcmp(optarg, "off")) {
                fprintf(stderr, "bllm-quantize: --billm-block-errors takes on or off, not '%s'\n", optarg);
                return 2;
            }
            p.mopts.intra_block = !strcmp(optarg, "on");
            break;
        case 't':
            if (!bllm_cli_parse_int(optarg, 1, 1024, &p.n_threads)) {
                fprintf(stderr, "bllm-quantize: -t must be 1..1024, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'q': quiet = true; break;
        case 'h': usage(stdout); return 0;
        case ':':
            fprintf(stderr, "bllm-quantize: option '%s' needs a value\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "bllm-quantize: unknown option '%s' (see --help)\n", argv[optind - 1]);
            return 2;
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
    /* before any long work: never over an input, never an existing file
     * unless --force */
    {
        const char *ins[] = {input, tok, calib, sim};
        const char *outs[] = {out, sim};
        for (int i = 0; i < 2; i++)
            if (outs[i] && bllm_check_output(outs[i], ins, i == 0 ? 4 : 3, force)) {
                fprintf(stderr, "bllm-quantize: %s\n", bllm_last_error());
                return 1;
            }
        if (sim && !strcmp(sim, out)) {
            fprintf(stderr, "bllm-quantize: --write-simulated names the output file itself\n");
            return 2;
        }
    }
    p.replace_output = force;
    char created[64];
    snprintf(created, sizeof created, "bllm-quantize %s", BLLM_VERSION);
    bool progress = !quiet && isatty(2);
    bllm_quantize_report rep;

    if (dequantize) {
        bllm_status s = bllm_dequantize_model(input, out, created, progress, force, &rep);
        if (s) {
            fprintf(stderr, "bllm-quantize: %s: %s\n", bllm_status_name(s), bllm_last_error());
            return 1;
        }
        printf("bllm-quantize: wrote %s: %d tensors in f32, %.1f MiB, from %s in %.1f s\n", out, rep.n_tensors,
               (double)rep.file_bytes / 1048576.0, input, rep.seconds);
        return 0;
    }

    const bllm_method *cm = bllm_method_find(method);
    if (!cm && strcmp(method, "rtn")) {
        fprintf(stderr, "bllm-quantize: unknown --method '%s' (rtn, pb-llm, billm, stbllm, pbs2p, onebit)\n", method);
        return 2;
    }
    p.method = method;
    if (cm) {
        p.type = cm->type;
        if (type_s && strcmp(type_s, bllm_type_name(cm->type))) {
            fprintf(stderr, "bllm-quantize: --method %s stores %s; --type %s does not apply\n", method,
                    bllm_type_name(cm->type), type_s);
            return 2;
        }
    } else if (!bllm_type_from_name(type_s ? type_s : "b1g", &p.type) || !bllm_type_is_packed(p.type)) {
        fprintf(stderr, "bllm-quantize: unknown --type '%s' (b1, b1g, b1mg, rb2g, nm24, nm48, nm58, nm68, "
                        "onebit, pb8)\n", type_s);
        return 2;
    }
    if (!cm && bllm_type_is_block(p.type)) {
        fprintf(stderr, "bllm-quantize: %s holds a calibrated decomposition; use --method %s\n",
                bllm_type_name(p.type), bllm_type_name(p.type));
        return 2;
    }
    if (!bllm_type_from_name(keep_s, &p.keep_type) ||
        (p.keep_type != BLLM_TYPE_F16 && p.keep_type != BLLM_TYPE_F32)) {
        fprintf(stderr, "bllm-quantize: --keep-type must be f16 or f32, not '%s'\n", keep_s);
        return 2;
    }
    if (salient_s) {
        if (!bllm_cli_parse_float(salient_s, &fv) || !(fv >= 0.0f && fv <= 1.0f)) {
            fprintf(stderr, "bllm-quantize: --salient must be a fraction in [0, 1], not '%s'\n", salient_s);
            return 2;
        }
        p.rtn.salient_frac = p.mopts.salient_frac = fv;
        if (p.type != BLLM_TYPE_PB8)
            fprintf(stderr, "bllm-quantize: note: --salient only applies to pb8 and pb-llm\n");
    }
    if (iters_s) {
        int n;
        if (!bllm_cli_parse_int(iters_s, 1, 10000, &n)) {
            fprintf(stderr, "bllm-quantize: --onebit-iters must be 1..10000, not '%s'\n", iters_s);
            return 2;
        }
        p.rtn.onebit_iters = n;
    }
    char calib_buf[PATH_MAX];
    if (cm) {
        if (!calib && !(calib = default_calib(argv[0], calib_buf, sizeof calib_buf))) {
            fprintf(stderr, "bllm-quantize: no calibration file: the default %s was not found under $BLLM_SHARED, "
                            "../shared or beside the source tree; give one with --calib FILE\n",
                    BLLM_CALIB_DEFAULT_REL);
            return 2;
        }
        if (bllm_type_is_block(cm->type) && p.mopts.block != 128) {
            fprintf(stderr, "bllm-quantize: %s stores its scales per 128 columns; --block must be 128\n",
                    bllm_type_name(cm->type));
            return 2;
        }
    } else if (calib || sim) {
        fprintf(stderr, "bllm-quantize: --calib and --write-simulated apply to the calibrated methods, not rtn\n");
        return 2;
    }
    if (p.mopts.nm_refill && (!cm || strcmp(cm->name, "stbllm"))) {
        fprintf(stderr, "bllm-quantize: --nm-refill applies to --method stbllm only\n");
        return 2;
    }
    p.calib_path = calib;
    p.simulated_path = sim;

    char options[2048];
    int len = snprintf(options, sizeof options, "--method %s --type %s --keep-type %s", method,
                       bllm_type_name(p.type), keep_s);
    if (p.type == BLLM_TYPE_PB8)
        len += snprintf(options + len, sizeof options - (size_t)len, " --salient %g",
                        (double)(cm ? p.mopts.salient_frac : p.rtn.salient_frac));
    if (!cm && p.type == BLLM_TYPE_ONEBIT)
        len += snprintf(options + len, sizeof options - (size_t)len, " --onebit-iters %d", p.rtn.onebit_iters);
    if (cm) {
        len += snprintf(options + len, sizeof options - (size_t)len,
                        " --calib %s --calib-samples %d --calib-len %d --seed %llu --damp %g --block %d", calib,
                        p.calib_samples, p.calib_len, (unsigned long long)p.seed, p.mopts.percdamp, p.mopts.block);
        if (cm->type == BLLM_TYPE_STBLLM)
            len += snprintf(options + len, sizeof options - (size_t)len, " --nm %d:%d --nm-alloc %s "
                            "--nm-alloc-samples %d", p.mopts.nm_n, p.mopts.nm_m,
                            p.nm_alloc < 0 ? "default" : p.nm_alloc == BLLM_NM_ALLOC_UNIFORM ? "uniform"
                            : p.nm_alloc == BLLM_NM_ALLOC_OUTLIER ? "outlier" : "search",
                            p.nm_alloc_samples);
        if (bllm_type_is_block(cm->type))
            len += snprintf(options + len, sizeof options - (size_t)len,
                            " --billm-max-salient %d --billm-block-errors %s", p.mopts.max_salient_cols,
                            p.mopts.intra_block ? "on" : "off");
        if (p.mopts.nm_refill)
            len += snprintf(options + len, sizeof options - (size_t)len, " --nm-refill");
        if (!strcmp(cm->name, "onebit"))
            len += snprintf(options + len, sizeof options - (size_t)len, " --onebit-fit %d",
                            p.mopts.onebit_fit_iters);
        if (p.act_store)
            len += snprintf(options + len, sizeof options - (size_t)len, " --calib-activations f%d", p.act_store);
    }
    for (int k = 0; k < 2; k++)
        if (embed_head_s[k] && len < (int)sizeof options)
            len += snprintf(options + len, sizeof options - (size_t)len, " --%s %s", k ? "head-type" : "embed-type",
                            embed_head_s[k]);
    if (tok && len < (int)sizeof options)
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
    if (cm) {
        print_table(&rep, &p, !quiet);
        const bllm_engine_result *e = &rep.engine;
        if (e->layer_nm_n) {
            printf("N:M per layer (M = %d, mean N = %d):", p.mopts.nm_m, p.mopts.nm_n);
            for (int l = 0; l < e->n_layers; l++)
                printf(" %d", e->layer_nm_n[l]);
            printf("\n");
        }
        char probe[64] = "";
        if (e->seconds_alloc > 0)
            snprintf(probe, sizeof probe, "N:M allocation probe %.1f s, ", e->seconds_alloc);
        printf("time: %.1f s in all (%sforward %.1f s, Hessians %.1f s, %s %.1f s); peak memory %.0f MiB\n",
               e->seconds + e->seconds_alloc, probe, e->seconds_forward, e->seconds_hessian, method,
               e->seconds_method, peak_rss_mib());
    }
    printf("bllm-quantize: wrote %s: %d tensors, %d matrices (%.1fM weights) in %s, %.1f MiB, in %.1f s\n", out,
           rep.n_tensors, rep.n_binarized, (double)rep.weights_binarized / 1e6, bllm_type_name(p.type),
           (double)rep.file_bytes / 1048576.0,
           cm ? rep.engine.seconds + rep.engine.seconds_alloc + rep.seconds : rep.seconds);
    if (sim)
        printf("bllm-quantize: wrote the f32 simulation to %s\n", sim);
    if (rep.n_kept)
        printf("bllm-quantize: note: %d blk.* matrices kept in %s because their shape does not fit %s (first: %s)\n",
               rep.n_kept, bllm_type_name(p.keep_type), bllm_type_name(p.type), rep.first_kept);
    bllm_quantize_report_free(&rep);
    return 0;
}
