/* SHA-256 as lowercase hex (what sha256sum prints), through OpenSSL: the
 * provenance of checkpoints, calibration files and quantizer inputs. */
#ifndef BLLM_SHA256_H
#define BLLM_SHA256_H

#include <stddef.h>

#include "bllm.h"

bllm_status bllm_sha256_buf(const void *data, size_t n, char hex[65]);
bllm_status bllm_sha256_file(const char *path, char hex[65]);

#endif
