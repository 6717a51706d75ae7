/* The scalar reference kernels. Every sum runs in f32 over the columns in
 * increasing order with a separate multiply and add, so the result is fully
 * determined by IEEE arithmetic (C17 mode keeps GCC from contracting into
 * FMA, and a plain reduction is never vectorized without -ffast-math). The
 * fast kernels are tested against these. */
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/binary_scalar.h"
#include "kernels/blockq.h"

static void matmul_f32(float *y, const float *x, const void *w, int n_tok, int cols,
                       int rows, int r0, int r1)
{
    const float *wf = w;
    for (int r = r0; r < r1; r++) {
        const float *wr = wf + (size_t)r * cols;
        for (int t = 0; t < n_tok; t++) {
            const float *xt = x + (size_t)t * cols;
            float s = 0.0f;
            for (int c = 0; c < cols; c++)
                s += wr[c] * xt[c];
            y[(size_t)t * rows + r] = s;
        }
    }
}

static void matmul_f16(float *y, const float *x, const void *w, int n_tok, int cols,
                       int rows, int r0, int r1)
{
    const uint16_t *wh = w;
    for (int r = r0; r < r1; r++) {
        const uint16_t *wr = wh + (size_t)r * cols;
        for (int t = 0; t < n_tok; t++) {
            const float *xt = x + (size_t)t * cols;
            float s = 0.0f;
            for (int c = 0; c < cols; c++)
                s += bllm_f16_to_f32(wr[c]) * xt[c];
            y[(size_t)t * rows + r] = s;
        }
    }
}

static void matmul_bf16(float *y, const float *x, const void *w, int n_tok, int cols,
                        int rows, int r0, int r1)
{
    const uint16_t *wh = w;
    for (int r = r0; r < r1; r++) {
        const uint16_t *wr = wh + (size_t)r * cols;
        for (int t = 0; t < n_tok; t++) {
            const float *xt = x + (size_t)t * cols;
            float s = 0.0f;
            for (int c = 0; c < cols; c++)
                s += bllm_bf16_to_f32(wr[c]) * xt[c];
            y[(size_t)t * rows + r] = s;
        }
    }
}

static float dot_f32(const float *a, const float *b, int n)
{
    float s = 0.0f;
    for (int i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static void axpy_f32(float *y, float a, const float *x, int n)
{
    for (int i = 0; i < n; i++)
        y[i] += a * x[i];
}

static float dot_f16(const float *a, const uint16_t *b, int n)
{
    float s = 0.0f;
    for (int i = 0; i < n; i++)
        s += a[i] * bllm_f16_to_f32(b[i]);
    return s;
}

static void axpy_f16(float *y, float a, const uint16_t *x, int n)
{
    for (int i = 0; i < n; i++)
        y[i] += a * bllm_f16_to_f32(x[i]);
}

static void cvt_f16_f32(float *y, const uint16_t *x, int n)
{
    for (int i = 0; i < n; i++)
        y[i] = bllm_f16_to_f32(x[i]);
}

static void cvt_f32_f16(uint16_t *y, const float *x, int n)
{
    for (int i = 0; i < n; i++)
        y[i] = bllm_f32_to_f16(x[i]);
}

static float q8_scale(const uint8_t *blk)
{
    uint16_t h;
    memcpy(&h, blk, 2);
    return bllm_f16_to_f32(h);
}

static float dot_q8(const float *a, const uint8_t *b, int n)
{
    float s = 0.0f;
    for (int i = 0; i < n; i += 32, b += 34) {
        float bs = 0.0f;
        for (int j = 0; j < 32; j++)
            bs += a[i + j] * (float)(int8_t)b[2 + j];
        s += q8_scale(b) * bs;
    }
    return s;
}

static void axpy_q8(float *y, float a, const uint8_t *x, int n)
{
    for (int i = 0; i < n; i += 32, x += 34) {
        const float d = q8_scale(x);
        for (int j = 0; j < 32; j++)
            y[i + j] += a * (d * (float)(int8_t)x[2 + j]);
    }
}

static void cvt_q8_f32(float *y, const uint8_t *x, int n)
{
    for (int i = 0; i < n; i += 32, x += 34) {
        const float d = q8_scale(x);
        for (int j = 0; j < 32; j++)
            y[i + j] = d * (float)(int8_t)x[2 + j];
    }
}

float bllm_exp_sub_sum_scalar(float *x, int n, float max)
{
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    return sum;
}

void bllm_swiglu_scalar(float *gate, const float *up, size_t n)
{
    for (size_t i = 0; i < n; i++)
        gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/* What the forward pass did per head before the kernel existed: dot
 * products, the scaled maximum, exp_sub_sum, axpys of the values. */
void bllm_attend_f16_scalar(float *out, const float *q, int nq, int hd, const uint16_t *k, const uint16_t *v,
                            size_t stride, int n, float scale, float *scores)
{
    for (int g = 0; g < nq; g++) {
        const float *qg = q + (size_t)g * hd;
        float *s = scores + (size_t)g * n, *o = out + (size_t)g * hd;
        float maxv = -INFINITY;
        for (int j = 0; j < n; j++) {
            s[j] = dot_f16(qg, k + (size_t)j * stride, hd) * scale;
            maxv = s[j] > maxv ? s[j] : maxv;
        }
        const float inv = 1.0f / bllm_exp_sub_sum_scalar(s, n, maxv);
        memset(o, 0, (size_t)hd * sizeof *o);
        for (int j = 0; j < n; j++)
            axpy_f16(o, s[j] * inv, v + (size_t)j * stride, hd);
    }
}

static const bllm_kernel_set scalar_set = {
    .name = "scalar",
    .matmul = {
        [BLLM_TYPE_F32] = matmul_f32,
        [BLLM_TYPE_F16] = matmul_f16,
        [BLLM_TYPE_BF16] = matmul_bf16,
        /* packed binary types: kernels/binary_scalar.c */
#define SCALAR_MM(name, TYPE, KTYPE) [TYPE] = bllm_matmul_##name##_scalar,
        BLLM_TILE_TYPES(SCALAR_MM) BLLM_BLOCK_TYPES(SCALAR_MM)
#undef SCALAR_MM
        /* block-quantized rows: kernels/blockq_scalar.c */
        [BLLM_TYPE_Q8] = bllm_matmul_q8_scalar,
        [BLLM_TYPE_Q4] = bllm_matmul_q4_scalar,
        [BLLM_TYPE_Q6] = bllm_matmul_q6_scalar,
        [BLLM_TYPE_Q4NL] = bllm_matmul_q4nl_scalar,
    },
    .salient_matvec = bllm_salient_matvec, /* kernels/binary_scalar.c */
    .dot_f32 = dot_f32,
    .axpy_f32 = axpy_f32,
    .dot_f16 = dot_f16,
    .axpy_f16 = axpy_f16,
    .cvt_f16_f32 = cvt_f16_f32,
    .cvt_f32_f16 = cvt_f32_f16,
    .dot_q8 = dot_q8,
    .axpy_q8 = axpy_q8,
    .cvt_q8_f32 = cvt_q8_f32,
    .exp_sub_sum = bllm_exp_sub_sum_scalar,
    .swiglu = bllm_swiglu_scalar,
    .attend_f16 = bllm_attend_f16_scalar,
};

const bllm_kernel_set *bllm_kernels_scalar(void) { return &scalar_set; }
