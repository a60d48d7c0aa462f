// RMSNorm on the GPU (twin of rmsnorm_cpu): y = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps).
// The residual adds around it are fused into the GEMM epilogues (beta = 1) in the forward pass and
// into this backward (the input gradient is added to the residual-stream gradient in place).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace gfwa::cuda {

// x, y: [N, d] bf16; w: [d] bf16; rstd: [N] fp32 (saved for the backward).
void rmsnorm_forward(cudaStream_t s, const __nv_bfloat16* x, const __nv_bfloat16* w, __nv_bfloat16* y, float* rstd,
                     int N, int d, float eps);

// dres[n, :] += dx (or = dx when !accumulate), where dx is the input gradient for dy;
// dw_partial: [partial_blocks(N), d] fp32 partial sums of dy * xhat (finish with finish_partials).
void rmsnorm_backward(cudaStream_t s, const __nv_bfloat16* dy, const __nv_bfloat16* x, const __nv_bfloat16* w,
                      const float* rstd, __nv_bfloat16* dres, bool accumulate, float* dw_partial, int N, int d);

// Largest d the backward supports (channels held in registers).
constexpr int kRmsnormMaxDim = 4096;

}  // namespace gfwa::cuda
