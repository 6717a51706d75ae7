/* Every kernel set against the scalar reference and against a double
 * precision sum, for every dense weight type, on ragged shapes and row
 * sub-ranges; the rules and tolerance are tests/test_float_kernels.h's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bllm.h"
#include "kernels/kernels.h"

#include "tests/test_float_kernels.h"

static void test_dispatch(void)
{
    const char *env = getenv("BLLM_KERNELS");
    const bllm_kernel_set *active = bllm_kernels();
    const bllm_kernel_set *want = bllm_kernels_select(NULL);
    printf("BLLM_KERNELS=%s, active set: %s (bllm_kernel_name: %s)\n", env ? env : "(unset)",
           active->name, bllm_kernel_name());
    if (want && active != want) {
        printf("FAIL: bllm_kernels() is %s but bllm_kernels_select(NULL) gives %s\n",
               active->name, want->name);
        failures++;
    }
    if (strcmp(bllm_kernel_name(), active->name) != 0) {
        printf("FAIL: bllm_kernel_name() disagrees with bllm_kernels()\n");
        failures++;
    }
    if (bllm_kernels_select("scalar") != bllm_kernels_scalar()) {
        printf("FAIL: bllm_kernels_select(\"scalar\") is not the scalar set\n");
        failures++;
    }
    if (bllm_kernels_select("no-such-isa") != NULL || !strstr(bllm_last_error(), "no-such-isa")) {
        printf("FAIL: an unknown set name must give NULL and name it in the error (got '%s')\n",
               bllm_last_error());
        failures++;
    }
    /* without an override the best set is chosen: avx512 where it runs
     * (it is avx2 plus AVX-512 binary kernels), else avx2 */
    const bllm_kernel_set *avx2 = bllm_kernels_select("avx2");
    const bllm_kernel_set *avx512 = bllm_kernels_select("avx512");
    unsetenv("BLLM_KERNELS");
    const bllm_kernel_set *best = bllm_kernels_select(NULL);
    if (best != (avx512 ? avx512 : avx2 ? avx2 : bllm_kernels_scalar())) {
        printf("FAIL: default selection is %s\n", best ? best->name : "NULL");
        failures++;
    }
    setenv("BLLM_KERNELS", "scalar", 1);
    if (bllm_kernels_select(NULL) != bllm_kernels_scalar()) {
        printf("FAIL: BLLM_KERNELS=scalar is not honoured by bllm_kernels_select(NULL)\n");
        failures++;
    }
    if (env)
        setenv("BLLM_KERNELS", env, 1);
    else
        unsetenv("BLLM_KERNELS");
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_dispatch();

    const bllm_kernel_set *sets[4];
    int n_sets = 0;
    sets[n_sets++] = bllm_kernels_scalar();
    const bllm_kernel_set *avx2 = bllm_kernels_select("avx2");
    if (avx2)
        sets[n_sets++] = avx2;
    else
        printf("NOTE: avx2 set not tested here: %s\n", bllm_last_error());
    /* avx512 shares avx2's float kernels but has its own attend_f16 */
    const bllm_kernel_set *avx512 = bllm_kernels_select("avx512");
    if (avx512)
        sets[n_sets++] = avx512;
    else
        printf("NOTE: avx512 set not tested here: %s\n", bllm_last_error());
    for (int s = 0; s < n_sets; s++)
        for (int t = 0; t < BLLM_TYPE_COUNT; t++)
            if (!sets[s]->matmul[t] && (t == BLLM_TYPE_F32 || t == BLLM_TYPE_F16 ||
                                         t == BLLM_TYPE_BF16)) {
                printf("FAIL: set %s has no matmul for %s\n", sets[s]->name,
                       bllm_type_name((bllm_type)t));
                return 1;
            }

    /* ragged shapes around the AVX2 widths (8 f32, 16 f16) and tiles, a
     * Llama width and one above the column blocking */
    static const int rows_list[] = {1, 3, 7, 64, 65, 193};
    static const int cols_list[] = {1, 7, 8, 31, 64, 100, 576, 1000, 1537};
    static const int tok_list[] = {1, 2, 3, 5, 8, 17};
    static const int ns[] = {0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 100, 1000, 4097};
    test_float_matmuls(sets, n_sets, rows_list, 6, cols_list, 9, tok_list, 6);
    test_dot_axpy(sets, n_sets, ns, (int)(sizeof ns / sizeof *ns), 1);
    test_exp_swiglu(sets, n_sets, ns, (int)(sizeof ns / sizeof *ns), 1);

    printf("\n%d checks, %d failed (sets tested:", checks, failures);
    for (int s = 0; s < n_sets; s++)
        printf(" %s", sets[s]->name);
    printf(")\n");
    if (failures) {
        printf("FAILED\n");
        return 1;
    }
    return 0;
}
