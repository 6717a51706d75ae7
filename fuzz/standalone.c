/* A main for the harnesses where libFuzzer is not there (gcc builds, the
 * test suite): every file named (or in a folder named) is run once, then
 * mutated copies of them for the given seconds: bit flips, random bytes,
 * truncations, insertions of interesting values, splices of two inputs.
 * Deterministic for a seed. A crash or sanitizer report is the failure.
 *   usage: fuzz-X [-seconds S] [-seed N] FILE|DIR...                      */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n);

typedef struct {
    uint8_t *d;
    size_t n;
} input;

static input *inputs;
static int n_inputs, cap_inputs;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static void add_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "standalone: cannot read %s\n", path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *d = malloc(n > 0 ? (size_t)n : 1);
    if (!d || (n > 0 && fread(d, 1, (size_t)n, f) != (size_t)n)) {
        fprintf(stderr, "standalone: cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    if (n_inputs == cap_inputs) {
        cap_inputs = cap_inputs ? 2 * cap_inputs : 16;
        inputs = realloc(inputs, sizeof *inputs * (size_t)cap_inputs);
    }
    inputs[n_inputs++] = (input){d, (size_t)n};
}

static void add_path(const char *path)
{
    struct stat st;
    if (stat(path, &st)) {
        fprintf(stderr, "standalone: no %s\n", path);
        exit(2);
    }
    if (!S_ISDIR(st.st_mode)) {
        add_file(path);
        return;
    }
    DIR *dir = opendir(path);
    struct dirent *e;
    while (dir && (e = readdir(dir)))
        if (e->d_name[0] != '.') {
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            add_path(p);
        }
    if (dir)
        closedir(dir);
}

static size_t mutate(uint8_t *d, size_t n, size_t cap)
{
    static const int64_t interesting[] = {0, 1, -1, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 0x7fffffff, 0xffffffffll,
                                          (int64_t)1 << 32, INT64_MAX, INT64_MIN};
    int steps = 1 + (int)(next() % 4);
    for (int s = 0; s < steps; s++) {
        switch (next() % 6) {
        case 0: /* bit flip */
            if (n)
                d[next() % n] ^= (uint8_t)(1u << (next() % 8));
            break;
        case 1: /* random byte */
            if (n)
                d[next() % n] = (uint8_t)next();
            break;
        case 2: /* truncate */
            if (n)
                n = next() % n;
            break;
        case 3: { /* an interesting value, 1 to 8 bytes */
            int64_t v = interesting[next() % (sizeof interesting / sizeof interesting[0])];
            size_t w = 1u << (next() % 4);
            if (n >= w) {
                size_t at = next() % (n - w + 1);
                memcpy(d + at, &v, w);
            }
            break;
        }
        case 4: /* a chunk of another input spliced in */
        default: {
            const input *o = &inputs[next() % (uint64_t)n_inputs];
            if (!o->n || !n)
                break;
            size_t from = next() % o->n, len = 1 + next() % 64, at = next() % n;
            if (len > o->n - from)
                len = o->n - from;
            if (len > cap - at)
                len = cap - at;
            memcpy(d + at, o->d + from, len);
            if (at + len > n)
                n = at + len;
            break;
        }
        }
    }
    return n;
}

int main(int argc, char **argv)
{
    double seconds = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "-seed") && i + 1 < argc)
            rng ^= strtoull(argv[++i], NULL, 10) * 0x2545f4914f6cdd1dull;
        else
            add_path(argv[i]);
    }
    if (!n_inputs) {
        fprintf(stderr, "usage: %s [-seconds S] [-seed N] FILE|DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 0; i < n_inputs; i++)
        LLVMFuzzerTestOneInput(inputs[i].d, inputs[i].n);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long runs = 0;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((double)(t.tv_sec - t0.tv_sec) + 1e-9 * (double)(t.tv_nsec - t0.tv_nsec) >= seconds)
            break;
        const input *in = &inputs[next() % (uint64_t)n_inputs];
        size_t cap = in->n + 64;
        uint8_t *d = malloc(cap);
        memcpy(d, in->d, in->n);
        size_t n = mutate(d, in->n, cap);
        LLVMFuzzerTestOneInput(d, n);
        free(d);
        runs++;
    }
    printf("%s: %d seed inputs, %ld mutated runs in %.1f s, no crash\n", argv[0], n_inputs, runs, seconds);
    return 0;
}
