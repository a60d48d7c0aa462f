#include "kernels/adamw.cuh"

#include <algorithm>
#include <cmath>

#include "kernels/cuda_check.h"
#include "kernels/device_util.cuh"

namespace gfwa::cuda {
namespace {

// AdamWStep as the kernel reads it: fp32, bias corrections 1 - beta^t precomputed on the host.
struct AdamWArgs {
  float lr, beta1, beta2, eps, weight_decay, grad_scale;
  float bias_corr1, bias_corr2;
};

__global__ void adamw_kernel(const AdamWChunk* __restrict__ chunks, AdamWArgs a, const float* __restrict__ grad,
                             float* __restrict__ master, float* __restrict__ m, float* __restrict__ v,
                             __nv_bfloat16* __restrict__ params) {
  const AdamWChunk ch = chunks[blockIdx.x];
  const float decay = ch.decay ? a.lr * a.weight_decay : 0.0f;
  for (uint32_t k = threadIdx.x; k < ch.len; k += blockDim.x) {
    const size_t i = ch.start + k;
    const float g = grad[i] * a.grad_scale;
    const float mi = a.beta1 * m[i] + (1.0f - a.beta1) * g;
    const float vi = a.beta2 * v[i] + (1.0f - a.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float p = master[i];
    p -= decay * p;
    p -= a.lr * (mi / a.bias_corr1) / (sqrtf(vi / a.bias_corr2) + a.eps);
    master[i] = p;
    params[ch.bstart + k] = to_bf(p);
  }
}

__global__ void params_from_master_kernel(const AdamWChunk* __restrict__ chunks, const float* __restrict__ master,
                                          __nv_bfloat16* __restrict__ params) {
  const AdamWChunk ch = chunks[blockIdx.x];
  for (uint32_t k = threadIdx.x; k < ch.len; k += blockDim.x) params[ch.bstart + k] = to_bf(master[ch.start + k]);
}

__global__ void sumsq_partial_kernel(const float* __restrict__ x, size_t n, float* __restrict__ partial) {
  __shared__ float scratch[32];
  float acc = 0.0f;
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    acc += x[i] * x[i];
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ void sumsq_final_kernel(const float* __restrict__ partial, int G, double* __restrict__ out) {
  __shared__ double sh[1024];
  double acc = 0.0;
  for (int i = threadIdx.x; i < G; i += blockDim.x) acc += partial[i];
  sh[threadIdx.x] = acc;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {
    if (int(threadIdx.x) < w) sh[threadIdx.x] += sh[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[0] = sh[0];
}

}  // namespace

std::vector<AdamWChunk> adamw_chunks(const std::vector<size_t>& offsets, const std::vector<size_t>& boffsets,
                                     const std::vector<size_t>& numels, const std::vector<bool>& decay) {
  std::vector<AdamWChunk> out;
  for (size_t t = 0; t < offsets.size(); ++t)
    for (size_t k = 0; k < numels[t]; k += kAdamWChunk)
      out.push_back({offsets[t] + k, boffsets[t] + k, uint32_t(std::min<size_t>(kAdamWChunk, numels[t] - k)),
                     decay[t] ? 1u : 0u});
  return out;
}

void params_from_master(cudaStream_t s, const AdamWChunk* chunks, int n_chunks, const float* master,
                        __nv_bfloat16* params) {
  if (n_chunks == 0) return;
  params_from_master_kernel<<<n_chunks, 256, 0, s>>>(chunks, master, params);
  CUDA_CHECK_LAUNCH();
}

void adamw_step(cudaStream_t s, const AdamWChunk* chunks, int n_chunks, const AdamWStep& h, const float* grad,
                float* master, float* m, float* v, __nv_bfloat16* params) {
  if (n_chunks == 0) return;
  AdamWArgs a;
  a.lr = float(h.lr);
  a.beta1 = float(h.beta1);
  a.beta2 = float(h.beta2);
  a.eps = float(h.eps);
  a.weight_decay = float(h.weight_decay);
  a.grad_scale = float(h.grad_scale);
  a.bias_corr1 = float(1.0 - std::pow(double(a.beta1), double(h.t)));
  a.bias_corr2 = float(1.0 - std::pow(double(a.beta2), double(h.t)));
  adamw_kernel<<<n_chunks, 256, 0, s>>>(chunks, a, grad, master, m, v, params);
  CUDA_CHECK_LAUNCH();
}

void sum_squares(cudaStream_t s, const float* x, size_t n, float* partial, double* out) {
  sumsq_partial_kernel<<<kGradNormBlocks, 256, 0, s>>>(x, n, partial);
  CUDA_CHECK_LAUNCH();
  sumsq_final_kernel<<<1, 1024, 0, s>>>(partial, kGradNormBlocks, out);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda
