// The gate's pointwise math on the GPU (gatedfwa.md section 2), shared by the training scan
// (gate.cu) and the decode step (decode.cu), so both compute the same logf. Included only from .cu files.
#pragma once

namespace gfwa::cuda {

constexpr float kBetaEps = 1e-3f;

__device__ __forceinline__ float log_sigmoid(float z) {
  return z >= 0.f ? -log1pf(expf(-z)) : z - log1pf(expf(z));
}
__device__ __forceinline__ float sigmoid(float z) {
  return z >= 0.f ? 1.f / (1.f + expf(-z)) : expf(z) / (1.f + expf(z));
}
__device__ __forceinline__ float beta_of(float pre) { return 1.f + (pre > 0.f ? pre : expm1f(pre)); }
__device__ __forceinline__ float logf_of(float hg, float pre) {
  const float beta = beta_of(pre);
  return log_sigmoid(beta * hg) / (beta + kBetaEps);
}

}  // namespace gfwa::cuda
