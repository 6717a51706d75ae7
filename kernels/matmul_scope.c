/* The caller's promise that a product's input stays as it is
 * (kernels/kernels.h, bllm_matmul_scope_begin): one id per thread, read by
 * the kernels that keep work prepared from x between calls. */
#include "kernels/kernels.h"

static _Thread_local uint64_t scope_id;

void bllm_matmul_scope_begin(uint64_t id) { scope_id = id; }

void bllm_matmul_scope_end(void) { scope_id = 0; }

uint64_t bllm_matmul_scope(void) { return scope_id; }
