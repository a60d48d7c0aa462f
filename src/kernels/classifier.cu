#include "kernels/classifier.cuh"

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
  softmax_xent_kernel<<<R, kThreads, 0, s>>>(logits, targets, loss, V, dscale, write_grad);
  CUDA_CHECK_LAUNCH();
}

void sum_deterministic(cudaStream_t s, const float* x, int n, float* out) {
  sum_kernel<<<1, 1024, 0, s>>>(x, n, out);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda
