#include "runtime/quant/topk.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"

/* The k-th largest (k >= 1) of a[0..n), reordering a (quickselect with a
 * median-of-three pivot, so sorted input stays linear). */
static float kth_largest(float *a, ptrdiff_t n, ptrdiff_t k)
{
    ptrdiff_t lo = 0, hi = n - 1, want = k - 1;
    while (lo < hi) {
        ptrdiff_t mid = lo + (hi - lo) / 2;
        float x = a[lo], y = a[mid], z = a[hi];
        float pivot = x > y ? (y > z ? y : (x > z ? z : x)) : (x > z ? x : (y > z ? z : y));
        ptrdiff_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] > pivot)
                i++;
            while (a[j] < pivot)
                j--;
            if (i <= j) {
                float t = a[i];
                a[i] = a[j], a[j] = t;
                i++, j--;
            }
        }
        if (want <= j)
            hi = j;
        else if (want >= i)
            lo = i;
        else
            return a[want];
    }
    return a[want];
}

bllm_status bllm_topk_mask(const float *score, size_t n, size_t k, uint8_t *sel)
{
    if (k == 0)
        return BLLM_OK;
    if (k > n)
        k = n;
    float *tmp = malloc(n * sizeof *tmp);
    if (!tmp)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory selecting the top %zu of %zu values", k, n);
    memcpy(tmp, score, n * sizeof *tmp);
    float t = kth_largest(tmp, (ptrdiff_t)n, (ptrdiff_t)k);
    free(tmp);
    size_t taken = 0;
    for (size_t i = 0; i < n; i++)
        if (score[i] > t)
            sel[i] = 1, taken++;
    for (size_t i = 0; i < n && taken < k; i++)
        if (score[i] == t)
            sel[i] = 1, taken++;
    return BLLM_OK;
}
