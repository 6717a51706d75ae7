/* Clock and summary statistics for benchmarks. */
#include "runtime/eval/bench.h"

#include <math.h>
#include <time.h>

double bllm_time_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

bllm_stats bllm_stats_of(const double *x, int n)
{
    bllm_stats s = {.n = n > 0 ? n : 0};
    if (n <= 0)
        return s;
    double sum = 0;
    s.min = s.max = x[0];
    for (int i = 0; i < n; i++) {
        sum += x[i];
        s.min = x[i] < s.min ? x[i] : s.min;
        s.max = x[i] > s.max ? x[i] : s.max;
    }
    s.mean = sum / n;
    if (n > 1) {
        /* two passes: the samples are close together, so a one-pass sum of
         * squares would cancel badly */
        double ss = 0;
        for (int i = 0; i < n; i++)
            ss += (x[i] - s.mean) * (x[i] - s.mean);
        s.sd = sqrt(ss / (n - 1));
    }
    return s;
}
