/* Exposes the half-precision conversions of runtime/format/types.c to
 * test_types_conv.py, which checks them against numpy:
 *   types-dump f16-to-f32 | bf16-to-f32   all 65536 inputs, writes f32 bits
 *   types-dump f32-to-f16 | f32-to-bf16   reads f32 bits from stdin, writes
 *                                          16-bit results
 * All data is raw little-endian binary. */
#include <stdio.h>
#include <string.h>

#include "runtime/format/types.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: types-dump f16-to-f32|bf16-to-f32|f32-to-f16|f32-to-bf16\n");
        return 2;
    }
    const char *mode = argv[1];
    if (!strcmp(mode, "f16-to-f32") || !strcmp(mode, "bf16-to-f32")) {
        int bf = mode[0] == 'b';
        for (uint32_t h = 0; h < 65536; h++) {
            float f = bf ? bllm_bf16_to_f32((uint16_t)h) : bllm_f16_to_f32((uint16_t)h);
            if (fwrite(&f, 4, 1, stdout) != 1)
                return 1;
        }
        return fflush(stdout) != 0;
    }
    if (!strcmp(mode, "f32-to-f16") || !strcmp(mode, "f32-to-bf16")) {
        int bf = !strcmp(mode, "f32-to-bf16");
        float f;
        while (fread(&f, 4, 1, stdin) == 1) {
            uint16_t h = bf ? bllm_f32_to_bf16(f) : bllm_f32_to_f16(f);
            if (fwrite(&h, 2, 1, stdout) != 1)
                return 1;
        }
        return ferror(stdin) || fflush(stdout) != 0;
    }
    fprintf(stderr, "types-dump: unknown mode '%s'\n", mode);
    return 2;
}
