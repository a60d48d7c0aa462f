// SwiGLU's pointwise value on the GPU, shared by swiglu_forward (swiglu.cu) and the w13 GEMM whose epilogue applies
// it (gemm_swiglu_sm90.cu), so both give g the same bits from the same bf16 a and b. Included only from .cu files.
#pragma once

namespace gfwa::cuda {

__device__ __forceinline__ float swiglu_sigmoid(float x) { return 1.0f / (1.0f + __expf(-x)); }
// silu(a) * b in fp32, before the rounding to bf16. The fast division (2 ulp; 0 once 1 + exp(-a) passes 2^126, i.e.
// a < -87, where silu(a) * b is below 1e-36): with the IEEE division the fused GEMM's epilogue warps were its
// bottleneck (H200, 124m: 11.06 -> 5.99 ms a step for the w13 GEMM with SwiGLU).
__device__ __forceinline__ float swiglu_value(float a, float b) { return __fdividef(a, 1.0f + __expf(-a)) * b; }

}  // namespace gfwa::cuda
