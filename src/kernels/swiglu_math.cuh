// SwiGLU's pointwise math on the GPU, one definition for the standalone kernels (swiglu.cu) and the GEMMs that apply it
// in their epilogues (gemm_swiglu_sm90.cu: the value; gemm_swiglu_bwd_sm90.cu: the gradient), so both give the same
// bits from the same bf16 inputs. Included only from .cu files.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

namespace gfwa::cuda {

// The fast division (2 ulp; 0 once 1 + exp(-x) passes 2^126, i.e. x < -87): with the IEEE division the fused w13
// GEMM's epilogue warps were its bottleneck (H200, 124m: 11.06 -> 5.99 ms a step for the w13 GEMM with SwiGLU).
__device__ __forceinline__ float swiglu_sigmoid(float x) { return __fdividef(1.0f, 1.0f + __expf(-x)); }
// silu(a) * b in fp32, before the rounding to bf16.
__device__ __forceinline__ float swiglu_value(float a, float b) { return __fdividef(a, 1.0f + __expf(-a)) * b; }
// The gradients of g = silu(a) * b from dg, before the rounding to bf16: da = dg b s (1 + a (1 - s)), db = dg a s,
// s = sigmoid(a). The one add is an explicit FMA, so no caller's compilation can contract the expression differently.
__device__ __forceinline__ void swiglu_grad(float a, float b, float dg, float& da, float& db) {
  const float s = swiglu_sigmoid(a);
  da = dg * b * s * __fmaf_rn(a, 1.0f - s, 1.0f);
  db = dg * a * s;
}
// The same for the 8 columns in 16 bytes of a, b and dg (bf16), rounded to bf16 into da8 and db8.
__device__ __forceinline__ void swiglu_grad8(const uint4& a8, const uint4& b8, const uint4& dg8, uint4& da8,
                                             uint4& db8) {
  const __nv_bfloat162* a2 = reinterpret_cast<const __nv_bfloat162*>(&a8);
  const __nv_bfloat162* b2 = reinterpret_cast<const __nv_bfloat162*>(&b8);
  const __nv_bfloat162* d2 = reinterpret_cast<const __nv_bfloat162*>(&dg8);
  __nv_bfloat162* da2 = reinterpret_cast<__nv_bfloat162*>(&da8);
  __nv_bfloat162* db2 = reinterpret_cast<__nv_bfloat162*>(&db8);
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    const float2 a = __bfloat1622float2(a2[e]), b = __bfloat1622float2(b2[e]), d = __bfloat1622float2(d2[e]);
    float dax, dbx, day, dby;
    swiglu_grad(a.x, b.x, d.x, dax, dbx);
    swiglu_grad(a.y, b.y, d.y, day, dby);
    da2[e] = __floats2bfloat162_rn(dax, day);
    db2[e] = __floats2bfloat162_rn(dbx, dby);
  }
}

}  // namespace gfwa::cuda
