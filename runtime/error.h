/* Error reporting inside libbllm: set a thread-local message and return the
 * status, so callers write `return bllm_fail(BLLM_ERR_FORMAT, "...", ...)`. */
#ifndef BLLM_ERROR_H
#define BLLM_ERROR_H

#include "bllm.h"

#if defined(__GNUC__)
#define BLLM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define BLLM_PRINTF(a, b)
#endif

bllm_status bllm_fail(bllm_status status, const char *fmt, ...) BLLM_PRINTF(2, 3);
void bllm_clear_error(void);

#endif
