/* bllm-info: what a .stb file holds and what it really costs. Prints the
 * metadata, then every tensor with its type, shape, bytes and bits per
 * weight computed from the bytes actually stored (a pb8 matrix's companion
 * "X.salient" counted with it), then totals: the linear layers (2-D blk.*
 * matrices with their companions) and the whole model, both over the tensor
 * bytes and over the whole file (header, metadata, tokenizer and padding
 * included). --json prints the same as one JSON object. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/format/stb.h"
#include "tools/cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: bllm-info MODEL.stb [--json] [--verify]\n"
               "  --json     one JSON object on stdout\n"
               "  --verify   check every tensor's checksum first\n");
}

static const char *meta_type_name(bllm_meta_type t)
{
    static const char *names[] = {"u8", "bool", "i32", "u32", "f32", "u64", "f64", "str", "arr", "u16"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

static bool is_companion(const bllm_stb_tensor *t)
{
    size_t n = strlen(t->name);
    return t->type == BLLM_TYPE_U8 && n > 8 && !strcmp(t->name + n - 8, ".salient");
}

static uint64_t n_weights(const bllm_stb_tensor *t)
{
    if (t->type == BLLM_TYPE_U8)
        return 0; /* raw bytes, not weights */
    uint64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= (uint64_t)t->dims[d];
    return n;
}

/* The bytes of X.salient if t is a pb8 matrix X that has one. */
static uint64_t companion_bytes(const bllm_stb_file *f, const bllm_stb_tensor *t)
{
    if (t->type != BLLM_TYPE_PB8)
        return 0;
    char name[512];
    snprintf(name, sizeof name, "%s.salient", t->name);
    const bllm_stb_tensor *c = bllm_stb_find_tensor(f, name);
    return c && is_companion(c) ? c->nbytes : 0;
}

static bool is_linear(const bllm_stb_tensor *t) { return t->ndim == 2 && !strncmp(t->name, "blk.", 4); }

/* Metadata value as text (strings shortened) or as JSON. */
static void meta_text(const bllm_stb_file *f, int i, char *buf, size_t cap)
{
    const char *key = bllm_stb_meta_key(f, i);
    bllm_meta_type t = bllm_stb_meta_type(f, i);
    switch (t) {
    case BLLM_META_STR: {
        const char *s;
        size_t len;
        bllm_stb_get_str(f, key, &s, &len);
        size_t show = len > 72 ? 72 : len;
        size_t o = 0;
        for (size_t k = 0; k < show && o + 5 < cap; k++)
            o += (size_t)snprintf(buf + o, cap - o, (unsigned char)s[k] < 32 ? "\\x%02x" : "%c",
                                  (unsigned char)s[k]);
        if (len > show)
            snprintf(buf + o, cap - o, "... (%zu bytes)", len);
        break;
    }
    case BLLM_META_ARR: {
        bllm_stb_array a;
        bllm_stb_get_array(f, key, &a);
        snprintf(buf, cap, "[%s x %llu]", meta_type_name(a.elem_type), (unsigned long long)a.count);
        break;
    }
    case BLLM_META_F32:
    case BLLM_META_F64: {
        float v;
        bllm_stb_get_f32(f, key, &v);
        snprintf(buf, cap, "%g", (double)v);
        break;
    }
    case BLLM_META_I32: {
        int32_t v;
        bllm_stb_get_i32(f, key, &v);
        snprintf(buf, cap, "%d", v);
        break;
    }
    default: {
        uint64_t v = 0;
        bllm_stb_get_u64(f, key, &v);
        snprintf(buf, cap, "%llu", (unsigned long long)v);
        break;
    }
    }
}

static cJSON *meta_json(const bllm_stb_file *f, int i)
{
    const char *key = bllm_stb_meta_key(f, i);
    switch (bllm_stb_meta_type(f, i)) {
    case BLLM_META_STR: {
        const char *s;
        size_t len;
        bllm_stb_get_str(f, key, &s, &len);
        char *z = strndup(s, len);
        cJSON *j = cJSON_CreateString(z ? z : "");
        free(z);
        return j;
    }
    case BLLM_META_ARR: {
        bllm_stb_array a;
        bllm_stb_get_array(f, key, &a);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "array_of", meta_type_name(a.elem_type));
        cJSON_AddNumberToObject(j, "count", (double)a.count);
        return j;
    }
    case BLLM_META_BOOL: {
        bool v = false;
        bllm_stb_get_bool(f, key, &v);
        return cJSON_CreateBool(v);
    }
    case BLLM_META_F32:
    case BLLM_META_F64: {
        float v;
        bllm_stb_get_f32(f, key, &v);
        return cJSON_CreateNumber((double)v);
    }
    case BLLM_META_I32: {
        int32_t v;
        bllm_stb_get_i32(f, key, &v);
        return cJSON_CreateNumber(v);
    }
    default: {
        uint64_t v = 0;
        bllm_stb_get_u64(f, key, &v);
        return cJSON_CreateNumber((double)v);
    }
    }
}

typedef struct {
    uint64_t weights, bytes;
} total;

static double bpw(uint64_t bytes, uint64_t weights) { return weights ? 8.0 * (double)bytes / (double)weights : 0; }

int main(int argc, char **argv)
{
    const char *path = NULL;
    bool json = false, verify = false;
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'}, {"verify", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1;) {
        switch (c) {
        case 'j': json = true; break;
        case 'v': verify = true; break;
        case 'h': usage(stdout); return 0;
        default:
            bllm_cli_getopt_error("bllm-info", c, argv);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc)
        path = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "bllm-info: more than one MODEL given ('%s', '%s')\n", path, argv[optind]);
        usage(stderr);
        return 2;
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    bllm_stb_file *f;
    bllm_status s = bllm_stb_open(path, verify, &f);
    if (s) {
        fprintf(stderr, "bllm-info: %s: %s\n", bllm_status_name(s), bllm_last_error());
        return 1;
    }
    int nt = bllm_stb_n_tensors(f), nm = bllm_stb_n_meta(f);
    uint64_t file_bytes = bllm_stb_file_bytes(f);
    total lin = {0, 0}, all = {0, 0};
    for (int i = 0; i < nt; i++) {
        const bllm_stb_tensor *t = bllm_stb_tensor_at(f, i);
        all.bytes += t->nbytes;
        all.weights += n_weights(t);
        if (is_linear(t)) {
            lin.weights += n_weights(t);
            lin.bytes += t->nbytes + companion_bytes(f, t);
        }
    }

    if (json) {
        cJSON *root = cJSON_CreateObject(), *meta = cJSON_CreateObject(), *tens = cJSON_CreateArray();
        cJSON_AddStringToObject(root, "path", path);
        cJSON_AddNumberToObject(root, "file_bytes", (double)file_bytes);
        for (int i = 0; i < nm; i++)
            cJSON_AddItemToObject(meta, bllm_stb_meta_key(f, i), meta_json(f, i));
        cJSON_AddItemToObject(root, "metadata", meta);
        for (int i = 0; i < nt; i++) {
            const bllm_stb_tensor *t = bllm_stb_tensor_at(f, i);
            cJSON *o = cJSON_CreateObject(), *shape = cJSON_CreateArray();
            cJSON_AddStringToObject(o, "name", t->name);
            cJSON_AddStringToObject(o, "type", bllm_type_name(t->type));
            for (int d = 0; d < t->ndim; d++)
                cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->dims[d]));
            cJSON_AddItemToObject(o, "shape", shape);
            cJSON_AddNumberToObject(o, "bytes", (double)t->nbytes);
            uint64_t cb = companion_bytes(f, t);
            cJSON_AddNumberToObject(o, "companion_bytes", (double)cb);
            cJSON_AddNumberToObject(o, "weights", (double)n_weights(t));
            if (is_companion(t))
                cJSON_AddBoolToObject(o, "companion", true);
            else
                cJSON_AddNumberToObject(o, "bits_per_weight", bpw(t->nbytes + cb, n_weights(t)));
            cJSON_AddItemToArray(tens, o);
        }
        cJSON_AddItemToObject(root, "tensors", tens);
        cJSON *tot = cJSON_CreateObject(), *l = cJSON_CreateObject(), *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(l, "weights", (double)lin.weights);
        cJSON_AddNumberToObject(l, "bytes", (double)lin.bytes);
        cJSON_AddNumberToObject(l, "bits_per_weight", bpw(lin.bytes, lin.weights));
        cJSON_AddNumberToObject(a, "weights", (double)all.weights);
        cJSON_AddNumberToObject(a, "tensor_bytes", (double)all.bytes);
        cJSON_AddNumberToObject(a, "file_bytes", (double)file_bytes);
        cJSON_AddNumberToObject(a, "bits_per_weight_tensors", bpw(all.bytes, all.weights));
        cJSON_AddNumberToObject(a, "bits_per_weight_file", bpw(file_bytes, all.weights));
        cJSON_AddItemToObject(tot, "linear", l);
        cJSON_AddItemToObject(tot, "all", a);
        cJSON_AddItemToObject(root, "totals", tot);
        char *txt = cJSON_PrintUnformatted(root);
        if (txt)
            puts(txt);
        free(txt);
        cJSON_Delete(root);
        bllm_stb_close(f);
        return txt ? 0 : 1;
    }

    printf("%s: %llu bytes (%.2f MiB), %d tensors, %d metadata keys\n", path, (unsigned long long)file_bytes,
           (double)file_bytes / 1048576.0, nt, nm);
    printf("\nmetadata:\n");
    char buf[512];
    for (int i = 0; i < nm; i++) {
        meta_text(f, i, buf, sizeof buf);
        printf("  %-40s %-4s %s\n", bllm_stb_meta_key(f, i), meta_type_name(bllm_stb_meta_type(f, i)), buf);
    }
    printf("\ntensors:\n  %-36s %-7s %-16s %14s %10s\n", "name", "type", "shape", "bytes", "bits/w");
    for (int i = 0; i < nt; i++) {
        const bllm_stb_tensor *t = bllm_stb_tensor_at(f, i);
        char shape[64];
        int o = snprintf(shape, sizeof shape, "[");
        for (int d = 0; d < t->ndim; d++)
            o += snprintf(shape + o, sizeof shape - (size_t)o, "%s%lld", d ? ", " : "", (long long)t->dims[d]);
        snprintf(shape + o, sizeof shape - (size_t)o, "]");
        uint64_t cb = companion_bytes(f, t);
        if (is_companion(t))
            printf("  %-36s %-7s %-16s %14llu %10s\n", t->name, bllm_type_name(t->type), shape,
                   (unsigned long long)t->nbytes, "(with X)");
        else
            printf("  %-36s %-7s %-16s %14llu %10.4f%s\n", t->name, bllm_type_name(t->type), shape,
                   (unsigned long long)(t->nbytes + cb), bpw(t->nbytes + cb, n_weights(t)),
                   cb ? "  (incl. .salient)" : "");
    }
    printf("\ntotals:\n");
    printf("  linear layers (blk.* matrices + companions): %llu weights, %llu bytes, %.4f bits/weight\n",
           (unsigned long long)lin.weights, (unsigned long long)lin.bytes, bpw(lin.bytes, lin.weights));
    printf("  all tensors:  %llu weights, %llu bytes, %.4f bits/weight\n", (unsigned long long)all.weights,
           (unsigned long long)all.bytes, bpw(all.bytes, all.weights));
    printf("  whole file:   %llu bytes, %.4f bits/weight\n", (unsigned long long)file_bytes,
           bpw(file_bytes, all.weights));
    bllm_stb_close(f);
    return 0;
}
