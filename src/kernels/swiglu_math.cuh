// SwiGLU's pointwise value on the GPU, shared by swiglu_forward (swiglu.cu) and the w13 GEMM whose epilogue applies
// it (gemm_swiglu_sm90.cu), so both give g the same bits from the same bf16 a and b. Included only from .cu files.
#pragma once

namespace gfwa::cuda {

__device__ __forceinline__ float swiglu_sigmoid(float x) { return 1.0f / (1.0f + __expf(-x)); }
// silu(a) * b in fp32, before the rounding to bf16.
__device__ __forceinline__ float swiglu_value(float a, float b) { return a * swiglu_sigmoid(a) * b; }

}  // namespace gfwa::cuda
