#include "tools/cli.h"

#include "bllm.h"
#include "runtime/blas.h"
#include "runtime/file_io.h"
#include "runtime/format/types.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void bllm_cli_blas_core(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE"))
        return;
    const char *preload = getenv("LD_PRELOAD");
    if (preload && strstr(preload, "vgpreload"))
        return;
    const char *core = bllm_blas_better_core();
    if (!core || setenv("OPENBLAS_CORETYPE", core, 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE"); /* no exec: go on with the generic kernels */
}

bool bllm_cli_parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

bool bllm_cli_parse_float(const char *s, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || *end || end == s)
        return false;
    *out = v;
    return true;
}

void bllm_cli_getopt_error(const char *prog, int c, char *const *argv)
{
    const char *a = argv[optind - 1];
    if (c == ':')
        fprintf(stderr, "%s: option %s needs a value (see --help)\n", prog, a);
    else if (optopt > 0 && optopt < 128 && a[0] == '-' && a[1] != '-')
        fprintf(stderr, "%s: unknown option '-%c' (see --help)\n", prog, optopt);
    else
        fprintf(stderr, "%s: unknown option '%s' (see --help)\n", prog, a);
}

/* Does argument a (an option, not "--") take the next argument as its
 * value? Short clusters: the first letter that takes a value takes the
 * rest of the cluster, or the next argument when it is the last. */
static bool takes_next(const char *a, const char *optstring, const struct option *longopts)
{
    if (a[1] == '-') { /* the name, or an unambiguous prefix of it, as getopt_long takes */
        size_t n = strcspn(a + 2, "=");
        if (a[2 + n] == '=')
            return false;
        const struct option *hit = NULL;
        int prefixes = 0;
        for (const struct option *o = longopts; o && o->name; o++)
            if (!strncmp(o->name, a + 2, n)) {
                if (strlen(o->name) == n)
                    return o->has_arg == required_argument;
                hit = o, prefixes++;
            }
        return prefixes == 1 && hit->has_arg == required_argument;
    }
    for (const char *c = a + 1; *c; c++) {
        const char *at = *c != ':' ? strchr(optstring, *c) : NULL;
        if (at && at[1] == ':')
            return c[1] == '\0' && at[2] != ':'; /* "x::" takes an attached value only */
    }
    return false;
}

void bllm_cli_alias(int argc, char **argv, const char *optstring, const struct option *longopts, const char *alias,
                    const char *to)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            return;
        if (!strcmp(argv[i], alias))
            argv[i] = (char *)to;
        else if (argv[i][0] == '-' && argv[i][1] && takes_next(argv[i], optstring, longopts))
            i++;
    }
}

void bllm_cli_bad_value(const char *prog, const struct option *opts, int c, const char *value, const char *expected)
{
    const char *name = "?";
    for (; opts->name; opts++)
        if (opts->val == c) {
            name = opts->name;
            break;
        }
    fprintf(stderr, "%s: bad value '%s' for --%s%s%s\n", prog, value, name, expected ? ": expected " : "",
            expected ? expected : "");
}

bool bllm_cli_parse_blockq(const char *prog, const char *option, const char *s, int *out)
{
    bllm_type t;
    if (!bllm_type_from_name(s, &t) || !(bllm_type_is_blockq(t) || t == BLLM_TYPE_F16 || t == BLLM_TYPE_F32)) {
        fprintf(stderr, "%s: %s takes q8, q6, q4 or q4nl (or f16, f32 to keep floats), not '%s'\n", prog, option, s);
        return false;
    }
    *out = (int)t;
    return true;
}

bool bllm_cli_parse_kv(const char *prog, const char *s, int *out)
{
    if (!strcmp(s, "f16") || !strcmp(s, "f32") || !strcmp(s, "q8")) {
        *out = s[0] == 'q' ? BLLM_KV_Q8 : s[1] == '1' ? BLLM_KV_F16 : BLLM_KV_F32;
        return true;
    }
    fprintf(stderr, "%s: --cache-type takes f16, f32 or q8, not '%s'\n", prog, s);
    return false;
}

char *bllm_cli_read_file(const char *prog, const char *what, const char *path, size_t *len)
{
    FILE *f;
    if (bllm_fopen_input(path, what, &f)) {
        fprintf(stderr, "%s: %s\n", prog, bllm_last_error());
        return NULL;
    }
    size_t cap = 1 << 16, n = 0, r;
    char *buf = malloc(cap + 1);
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *b = realloc(buf, 2 * cap + 1);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
    }
    bool err = ferror(f);
    fclose(f);
    if (!buf || err) {
        fprintf(stderr, "%s: cannot read %s %s: %s\n", prog, what, path, buf ? "read error" : "out of memory");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}
