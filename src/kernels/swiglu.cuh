// SwiGLU on the GPU (twin of swiglu_cpu). The fused W1|W3 projection gives u = [a | b] per row
// (u: [N, 2F]); g = silu(a) * b (g: [N, F]). The backward overwrites u with du = [da | db], since u
// is not needed after it (g is recomputed for the W2 weight gradient instead of being stored).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace gfwa::cuda {

void swiglu_forward(cudaStream_t s, const __nv_bfloat16* u, __nv_bfloat16* g, int N, int F);
// In place: u[n, :] <- [dg * b * silu'(a) | dg * silu(a)] (swiglu_math.cuh's swiglu_grad; gemm_swiglu_backward
// computes the same from dres and W2 with dg on chip)
void swiglu_backward(cudaStream_t s, const __nv_bfloat16* dg, __nv_bfloat16* u, int N, int F);

}  // namespace gfwa::cuda
