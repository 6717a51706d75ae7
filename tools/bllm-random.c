/* bllm-random: a .stb model with random weights and the shape of a real one,
 * for measuring throughput without a checkpoint (docs/bench.md).
 *   bllm-random tinyllama-1.1b -o /root/.cache/bllm/bench/tinyllama-f16.stb --type f16
 * The writing is runtime/eval/random_model.c; this program checks the disk and
 * shows progress. */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "runtime/eval/random_model.h"
#include "tools/cli.h"
#include "runtime/file_io.h"
#include "runtime/format/stb.h"

#ifndef BLLM_VERSION
#define BLLM_VERSION "0.1.0"
#endif

static void usage(FILE *f)
{
    fprintf(f, "usage: bllm-random SHAPE -o OUT.stb [options]\n"
               "       bllm-random --list\n"
               "\n"
               "Writes a Llama model with the shapes of SHAPE, matrices drawn from a normal\n"
               "distribution, norm weights 1 and a placeholder tokenizer (n_vocab pieces:\n"
               "<unk> <s> </s>, byte pieces <0x00>..<0xFF>, then tokNNN). Shapes:\n");
    for (int i = 0; i < bllm_model_shape_count(); i++) {
        const bllm_model_shape *s = bllm_model_shape_at(i);
        const bllm_llama_hparams *h = &s->hp;
        fprintf(f, "  %-16s dim %u, hidden %u, %u layers, %u/%u heads, vocab %u, ctx %u%s\n", s->name, h->dim,
                h->hidden_dim, h->n_layers, h->n_heads, h->n_kv_heads, h->n_vocab, h->max_seq_len,
                s->tied ? ", tied" : "");
    }
    fprintf(f, "\n"
               "options:\n"
               "  -o, --output PATH  the .stb file to write (required)\n"
               "  -t, --type TYPE    f32, f16 (default) or bf16 for matrices; norms stay f32;\n"
               "                     or a packed binary type (b1, b1g, b1mg, rb2g, nm24, nm48,\n"
               "                     nm58, nm68, onebit, pb8) for the blk.* matrices, from a\n"
               "                     random decomposition (embedding and head then q4nl)\n"
               "  -s, --seed N       random seed (default 1); the file depends on it only\n"
               "      --std S        standard deviation of the weights (default 0.02)\n"
               "      --embed-type T the token embedding: q8, q6, q4, q4nl, f16 or f32 (default q4nl with\n"
               "                     a packed --type, else the matrices' type)\n"
               "      --head-type T  the output head likewise (a tied model's one matrix)\n"
               "      --force        replace OUT.stb if it exists\n"
               "  -q, --quiet        no progress bar\n"
               "  -l, --list         list the shapes with their sizes in each type\n"
               "  -h, --help         this text\n");
}

static void progress(void *user, int i, int n, const char *name, uint64_t done, uint64_t total)
{
    (void)user;
    int width = 24, filled = total ? (int)(width * (double)done / (double)total) : width;
    char bar[32];
    for (int k = 0; k < width; k++)
        bar[k] = k < filled ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r[%s] %4d/%-4d %9.1f/%.1f MiB  %-28.28s", bar, i, n, done / 1048576.0, total / 1048576.0,
            name);
    if (i == n)
        fputc('\n', stderr);
    fflush(stderr);
}

static bool parse_u64(const char *s, unsigned long long *v)
{
    char *end;
    errno = 0;
    *v = strtoull(s, &end, 10);
    return !errno && end != s && !*end && s[0] != '-';
}

int main(int argc, char **argv)
{
    bllm_cli_blas_core(argv);
    const char *shape_name = NULL, *out = NULL, *type_s = "f16";
    unsigned long long seed = 1;
    float std = 0.02f;
    bool quiet = false, list = false, force = false;
    bllm_type embed_type = BLLM_TYPE_COUNT, head_type = BLLM_TYPE_COUNT;
    enum { O_FORCE = 256, O_STD, O_EMBED, O_HEAD };
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},      {"type", required_argument, NULL, 't'},
        {"seed", required_argument, NULL, 's'},        {"std", required_argument, NULL, O_STD},
        {"embed-type", required_argument, NULL, O_EMBED}, {"head-type", required_argument, NULL, O_HEAD},
        {"quiet", no_argument, NULL, 'q'},             {"list", no_argument, NULL, 'l'},
        {"force", no_argument, NULL, O_FORCE},         {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":o:t:s:qlh", opts, NULL)) != -1;) {
        const char *v = optarg;
        switch (c) {
        case 'h': usage(stdout); return 0;
        case 'q': quiet = true; break;
        case 'l': list = true; break;
        case O_FORCE: force = true; break;
        case 'o': out = v; break;
        case 't': type_s = v; break;
        case 's':
            if (!parse_u64(v, &seed)) {
                fprintf(stderr, "bllm-random: bad seed '%s' (a non-negative integer)\n", v);
                return 2;
            }
            break;
        case O_EMBED:
        case O_HEAD: {
            int bt;
            if (!bllm_cli_parse_blockq("bllm-random", c == O_EMBED ? "--embed-type" : "--head-type", v, &bt))
                return 2;
            *(c == O_EMBED ? &embed_type : &head_type) = (bllm_type)bt;
            break;
        }
        case O_STD: {
            char *end;
            std = strtof(v, &end);
            if (end == v || *end || !(std > 0 && std <= 1)) {
                fprintf(stderr, "bllm-random: bad --std '%s' (a number in (0, 1])\n", v);
                return 2;
            }
            break;
        }
        default: bllm_cli_getopt_error("bllm-random", c, argv); return 2;
        }
    }
    if (optind < argc)
        shape_name = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "bllm-random: more than one SHAPE given ('%s', '%s')\n", shape_name, argv[optind]);
        return 2;
    }
    bllm_type type;
    if (!bllm_type_from_name(type_s, &type) || !(type == BLLM_TYPE_F32 || type == BLLM_TYPE_F16 ||
                                                  type == BLLM_TYPE_BF16 || bllm_type_is_packed(type))) {
        fprintf(stderr, "bllm-random: unknown --type '%s' (f32, f16, bf16, b1, b1g, b1mg, rb2g, nm24, nm48, "
                        "nm58, nm68, onebit or pb8)\n", type_s);
        return 2;
    }
    if (list) {
        printf("%-16s %14s %12s %12s %12s %12s\n", "shape", "params", "f32 MiB", "f16 MiB", "b1g MiB", "pb8 MiB");
        for (int i = 0; i < bllm_model_shape_count(); i++) {
            const bllm_model_shape *s = bllm_model_shape_at(i);
            int n = bllm_llama_tensor_list(&s->hp, s->tied, NULL, 0);
            bllm_llama_tensor_desc *d = malloc((size_t)n * sizeof *d);
            if (!d) {
                fprintf(stderr, "bllm-random: out of memory\n");
                return 1;
            }
            bllm_llama_tensor_list(&s->hp, s->tied, d, n);
            unsigned long long params = 0;
            for (int k = 0; k < n; k++)
                params += (unsigned long long)d[k].dims[0] * (unsigned long long)(d[k].ndim == 2 ? d[k].dims[1] : 1);
            free(d);
            printf("%-16s %14llu %12.1f %12.1f %12.1f %12.1f\n", s->name, params,
                   bllm_llama_tensor_bytes(&s->hp, s->tied, BLLM_TYPE_F32) / 1048576.0,
                   bllm_llama_tensor_bytes(&s->hp, s->tied, BLLM_TYPE_F16) / 1048576.0,
                   bllm_llama_tensor_bytes(&s->hp, s->tied, BLLM_TYPE_B1G) / 1048576.0,
                   bllm_llama_tensor_bytes(&s->hp, s->tied, BLLM_TYPE_PB8) / 1048576.0);
        }
        return 0;
    }
    if (!shape_name || !out) {
        fprintf(stderr, "bllm-random: %s; see --help\n", !shape_name ? "no SHAPE given" : "no output given (-o OUT.stb)");
        return 2;
    }
    const bllm_model_shape *shape = bllm_model_shape_find(shape_name);
    if (!shape) {
        fprintf(stderr, "bllm-random: %s\n", bllm_last_error());
        return 2;
    }

    if (bllm_check_output(out, NULL, 0, force)) {
        fprintf(stderr, "bllm-random: %s\n", bllm_last_error());
        return 1;
    }
    /* Refuse up front rather than fill the disk and fail at 90%. */
    uint64_t need = bllm_llama_tensor_bytes(&shape->hp, shape->tied, type) + (16u << 20);
    char *dir_buf = strdup(out);
    struct statvfs vfs;
    if (dir_buf && statvfs(dirname(dir_buf), &vfs) == 0) {
        uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
        if (avail < need) {
            fprintf(stderr, "bllm-random: %s needs %.1f GiB but only %.1f GiB are free there\n", out,
                    need / 1073741824.0, avail / 1073741824.0);
            free(dir_buf);
            return 1;
        }
    }
    free(dir_buf);

    char created[64];
    snprintf(created, sizeof created, "bllm-random %s", BLLM_VERSION);
    bllm_random_model_params p = {
        .type = type,
        .seed = seed,
        .std = std,
        .created_by = created,
        .keep_existing = !force,
        .embed_type = embed_type,
        .head_type = head_type,
        .progress = quiet || !isatty(2) ? NULL : progress,
    };
    bllm_status s = bllm_random_model_write(shape, &p, out);
    if (s) {
        fprintf(stderr, "\nbllm-random: %s: %s: %s\n", out, bllm_status_name(s), bllm_last_error());
        return 1;
    }
    if (!quiet)
        printf("bllm-random: wrote %s: %s, %s %smatrices, seed %llu, std %g\n", out, shape->name, type_s,
               bllm_type_is_packed(type) ? "blk.* " : "", seed, (double)std);
    return 0;
}
