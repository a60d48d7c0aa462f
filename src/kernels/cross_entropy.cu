#include "kernels/cross_entropy.cuh"

#include "kernels/cuda_check.h"
#include "kernels/device_util.cuh"

namespace gfwa::cuda {
namespace {

constexpr int kThreads = 512;

__global__ void __launch_bounds__(kThreads) softmax_xent_kernel(__nv_bfloat16* __restrict__ logits,
                                                                const int32_t* __restrict__ targets,
                                                                float* __restrict__ loss, int V, float dscale,
                                                                bool write_grad) {
  __shared__ float scratch[32];
  __nv_bfloat16* row = logits + size_t(blockIdx.x) * V;
  // Online max / sum per thread, then merged across the block.
  float m = -INFINITY, sum = 0.0f;
  for (int j = threadIdx.x; j < V; j += blockDim.x) {
    const float v = to_f(row[j]);
    if (v > m) {
      sum = sum * __expf(m - v) + 1.0f;
      m = v;
    } else {
      sum += __expf(v - m);
    }
  }
  const float M = block_max(m, scratch);
  const float S = block_sum(m == -INFINITY ? 0.0f : sum * __expf(m - M), scratch);
  const float lse = M + logf(S);
  const int t = targets[blockIdx.x];
  if (threadIdx.x == 0) loss[blockIdx.x] = lse - to_f(row[t]);
  if (!write_grad) return;
  __syncthreads();  // row[t] is read above before it is overwritten below
  for (int j = threadIdx.x; j < V; j += blockDim.x) {
    const float p = __expf(to_f(row[j]) - lse);
    row[j] = to_bf((p - (j == t ? 1.0f : 0.0f)) * dscale);
  }
}

// The common case (V % 8 == 0, V <= 8 * kMaxVec * 1024): the row is read once into registers with
// 16-byte loads, and the gradient written from them, so each logit crosses memory once each way.
constexpr int kVecThreads = 1024, kMaxVec = 8;

__global__ void __launch_bounds__(kVecThreads) softmax_xent_vec_kernel(__nv_bfloat16* __restrict__ logits,
                                                                       const int32_t* __restrict__ targets,
                                                                       float* __restrict__ loss, int V, float dscale,
                                                                       bool write_grad) {
  __shared__ float scratch[32];
  uint4* row = reinterpret_cast<uint4*>(logits + size_t(blockIdx.x) * V);
  const int nv = V / 8;
  uint4 r[kMaxVec];
  float m = -INFINITY;
#pragma unroll
  for (int k = 0; k < kMaxVec; ++k) {
    const int i = threadIdx.x + k * kVecThreads;
    if (i < nv) {
      r[k] = row[i];
      const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&r[k]);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float2 f = __bfloat1622float2(h[e]);
        m = fmaxf(m, fmaxf(f.x, f.y));
      }
    }
  }
  const float M = block_max(m, scratch);
  float sum = 0.0f;
#pragma unroll
  for (int k = 0; k < kMaxVec; ++k) {
    const int i = threadIdx.x + k * kVecThreads;
    if (i < nv) {
      const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&r[k]);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float2 f = __bfloat1622float2(h[e]);
        sum += __expf(f.x - M) + __expf(f.y - M);
      }
    }
  }
  const float lse = M + logf(block_sum(sum, scratch));
  const int t = targets[blockIdx.x];
  if (threadIdx.x == 0) loss[blockIdx.x] = lse - to_f(logits[size_t(blockIdx.x) * V + t]);
  if (!write_grad) return;
  __syncthreads();  // the target logit is read above before it is overwritten below
#pragma unroll
  for (int k = 0; k < kMaxVec; ++k) {
    const int i = threadIdx.x + k * kVecThreads;
    if (i < nv) {
      const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&r[k]);
      uint4 out;
      __nv_bfloat162* o = reinterpret_cast<__nv_bfloat162*>(&out);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float2 f = __bfloat1622float2(h[e]);
        const int j = i * 8 + 2 * e;
        o[e] = __floats2bfloat162_rn((__expf(f.x - lse) - (j == t ? 1.0f : 0.0f)) * dscale,
                                     (__expf(f.y - lse) - (j + 1 == t ? 1.0f : 0.0f)) * dscale);
      }
      row[i] = out;
    }
  }
}

__global__ void sum_kernel(const float* __restrict__ x, int n, float* __restrict__ out) {
  __shared__ float scratch[32];
  float acc = 0.0f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) acc += x[i];
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) out[0] = acc;
}

}  // namespace

void softmax_xent(cudaStream_t s, __nv_bfloat16* logits, const int32_t* targets, float* loss, int R, int V,
                  float dscale, bool write_grad) {
  if (R == 0) return;
  if (V % 8 == 0 && V <= 8 * kMaxVec * kVecThreads)
    softmax_xent_vec_kernel<<<R, kVecThreads, 0, s>>>(logits, targets, loss, V, dscale, write_grad);
  else
    softmax_xent_kernel<<<R, kThreads, 0, s>>>(logits, targets, loss, V, dscale, write_grad);
  CUDA_CHECK_LAUNCH();
}

void sum_deterministic(cudaStream_t s, const float* x, int n, float* out) {
  sum_kernel<<<1, 1024, 0, s>>>(x, n, out);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda
