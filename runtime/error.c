#include "runtime/error.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[1024];

bllm_status bllm_fail(bllm_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

void bllm_clear_error(void) { last_error[0] = '\0'; }

const char *bllm_last_error(void) { return last_error; }

const char *bllm_status_name(bllm_status s)
{
    switch (s) {
    case BLLM_OK: return "ok";
    case BLLM_ERR_IO: return "I/O error";
    case BLLM_ERR_FORMAT: return "bad format";
    case BLLM_ERR_UNSUPPORTED: return "unsupported";
    case BLLM_ERR_NOMEM: return "out of memory";
    case BLLM_ERR_ARG: return "invalid argument";
    case BLLM_ERR_CONTEXT: return "context full";
    case BLLM_ERR_CHECKSUM: return "checksum mismatch";
    case BLLM_ERR_NOT_FOUND: return "not found";
    }
    return "unknown error";
}
