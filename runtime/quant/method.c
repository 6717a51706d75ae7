#include "runtime/quant/method.h"

#include <string.h>

void bllm_method_options_default(bllm_method_options *o)
{
    memset(o, 0, sizeof *o);
    o->percdamp = 0.01;
    o->block = 128;
    o->salient_frac = 0.1f;
    o->max_salient_cols = 49;
    o->intra_block = true;
    o->onebit_fit_iters = 10;
    o->nm_n = 4;
    o->nm_m = 8;
}

static const bllm_method methods[] = {
    {"pb-llm", BLLM_TYPE_PB8, bllm_method_pbllm},
    {"billm", BLLM_TYPE_BILLM, bllm_method_billm},
    {"stbllm", BLLM_TYPE_STBLLM, bllm_method_stbllm},
    {"pbs2p", BLLM_TYPE_STBLLM, bllm_method_pbs2p},
    {"onebit", BLLM_TYPE_ONEBIT, bllm_method_onebit},
};

const bllm_method *bllm_method_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof methods / sizeof methods[0]; i++)
        if (!strcmp(methods[i].name, name))
            return &methods[i];
    return NULL;
}
