/* Small helpers shared by the command-line tools (not part of libbllm's
 * API): strict number parsing and whole-file reading with clear messages. */
#ifndef BLLM_TOOLS_CLI_H
#define BLLM_TOOLS_CLI_H

#include <stdbool.h>
#include <stddef.h>

/* First thing in main of the tools that compute: when OpenBLAS chose its
 * generic kernels on a CPU that runs better ones (runtime/blas.h), start
 * the program again, same arguments, with OPENBLAS_CORETYPE naming them.
 * Not when OPENBLAS_CORETYPE is already set (by the user, or by the first
 * start), nor under valgrind, which would not follow the new start. */
void bllm_cli_blas_core(char **argv);
/* Whole decimal string in [lo, hi]; false on garbage, overflow or range. */
bool bllm_cli_parse_int(const char *s, long lo, long hi, int *out);
/* Whole string as a finite-or-not float; false on garbage. */
bool bllm_cli_parse_float(const char *s, float *out);
/* The tools parse their options with getopt_long (opterr = 0, optstring
 * starting with ':'). For its '?' or ':' this prints "PROG: unknown option
 * 'X' (see --help)" or "PROG: option X needs a value (see --help)". */
void bllm_cli_getopt_error(const char *prog, int c, char *const *argv);
/* llama.cpp's multi-letter short options (-cnv, -np), which getopt would
 * read as a cluster (-c nv, -n p): every argument equal to `alias` becomes
 * `to`, except the value of an option that takes one (`-p -cnv` is a
 * prompt) and anything after "--". optstring and longopts as getopt_long's. */
struct option;
void bllm_cli_alias(int argc, char **argv, const char *optstring, const struct option *longopts, const char *alias,
                    const char *to);
/* "PROG: bad value 'VALUE' for --NAME[: expected EXPECTED]", NAME the long
 * option whose val is c. */
void bllm_cli_bad_value(const char *prog, const struct option *opts, int c, const char *value, const char *expected);
/* --embed-type / --head-type: "q8", "q6", "q4", "f16" or "f32" into *out (a
 * bllm_type); otherwise prints "PROG: OPTION takes q8, q6, q4 or q4nl (...), not
 * 'S'" and returns false. */
bool bllm_cli_parse_blockq(const char *prog, const char *option, const char *s, int *out);
/* --cache-type: "f16", "f32" or "q8" into a bllm_kv_type; prints why not. */
bool bllm_cli_parse_kv(const char *prog, const char *s, int *out);
/* Read a file into a NUL-terminated buffer (free() it). On failure prints
 * "PROG: cannot open|read WHAT PATH: reason" to stderr and returns NULL. */
char *bllm_cli_read_file(const char *prog, const char *what, const char *path, size_t *len);

#endif
