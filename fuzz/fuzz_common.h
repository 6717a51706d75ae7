/* What the harnesses share: turning the fuzzer's bytes into files, since
 * every reader takes a path (docs/robustness.md, "Fuzzing"). Each harness
 * defines LLVMFuzzerTestOneInput; libFuzzer (fuzz/run.sh) or the standalone
 * driver (fuzz/standalone.c, used by the test suite) calls it. */
#ifndef BLLM_FUZZ_COMMON_H
#define BLLM_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* A private directory for this process, made on first use. */
const char *fuzz_dir(void);
/* Write n bytes to fuzz_dir()/name; returns the path (static per name
 * slot, overwritten by the next call with the same name), NULL on error. */
const char *fuzz_file(const char *name, const uint8_t *data, size_t n);
/* Split data at the separator "\n--8<--\n" into at most max parts; returns
 * the count. Harnesses whose input is several files take them this way. */
int fuzz_split(const uint8_t *data, size_t n, const uint8_t **part, size_t *len, int max);

/* Dequantize every tensor of at most a million values of an opened
 * importer source (the importers' read paths). */
struct bllm_source;
void fuzz_read_source(struct bllm_source *s);

#define FUZZ_SEPARATOR "\n--8<--\n"

#endif
