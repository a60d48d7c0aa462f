// NSA's branch gates on the GPU (twin of nsa_gates_cpu.h, which defines the layouts): fp32 pre-activations
// [N, 3H] from the gate projection's GEMM in, fp32 gates [3, N, H] for the NSA core out; the backward writes
// the pre-activations' gradient in bf16 for the projection's weight and input GEMMs.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace gfwa::cuda {

void nsa_gates_forward(cudaStream_t s, const float* pre, int N, int H, float* g);
void nsa_gates_backward(cudaStream_t s, const float* g, const float* dg, int N, int H, __nv_bfloat16* dpre);

}  // namespace gfwa::cuda
