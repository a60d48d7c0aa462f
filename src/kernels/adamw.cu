#include "kernels/adamw.cuh"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/cuda_check.h"
#include "kernels/device_util.cuh"

namespace gfwa::cuda {
namespace {

// These kernels only stream memory, so their speed is the bytes each SM keeps in flight: every
// thread loads whole 16-byte groups of four fp32 values and issues kUnroll groups of every stream
// before it uses the first.
constexpr int kThreads = 256;
constexpr int kUnroll = 2;
static_assert(kAdamWChunk % (4 * kThreads * kUnroll) == 0, "a full chunk is whole rounds of groups");
constexpr int kNormThreads = 256;
constexpr int kNormUnroll = 4;

// AdamWStep as the kernel reads it: fp32, bias corrections 1 - beta^t precomputed on the host.
struct AdamWArgs {
  float lr, beta1, beta2, eps, weight_decay, grad_scale;
  float bias_corr1, bias_corr2;
};

// One element's update, the same expression (so the same bits) on the scalar and the vector path.
__device__ __forceinline__ void adamw_element(const AdamWArgs& a, float decay, float grad, float& m, float& v,
                                              float& p) {
  const float g = grad * a.grad_scale;
  const float mi = a.beta1 * m + (1.0f - a.beta1) * g;
  const float vi = a.beta2 * v + (1.0f - a.beta2) * g * g;
  m = mi;
  v = vi;
  p -= decay * p;
  p -= a.lr * (mi / a.bias_corr1) / (sqrtf(vi / a.bias_corr2) + a.eps);
}

// A chunk as the kernels walk it: the fp32 buffers are 16-byte aligned (checked on the host), so the
// elements from `head` on form whole groups of four up to `tail`; the at most 3 + 3 elements
// outside [head, tail) go one by one. The bf16 copy of a group is one 8-byte store when its start
// is 4-aligned too (fp32 and bf16 starts congruent mod 4), else four 2-byte stores.
struct ChunkSplit {
  uint32_t head, groups, tail, loose;  // loose = head + (len - tail): the one-by-one elements
  bool bf16_aligned;
  __device__ explicit ChunkSplit(const AdamWChunk& ch) {
    head = min(ch.len, uint32_t(-ch.start) & 3u);
    groups = (ch.len - head) / 4;
    tail = head + 4 * groups;
    loose = head + (ch.len - tail);
    bf16_aligned = ((ch.bstart + head) & 3u) == 0;
  }
  // The chunk index of the j-th one-by-one element, j < loose.
  __device__ uint32_t loose_index(uint32_t j) const { return j < head ? j : tail + (j - head); }
};

__device__ __forceinline__ void store_bf16x4(__nv_bfloat16* dst, float4 p, bool aligned) {
  if (aligned) {
    struct alignas(8) Bf16x4 {
      __nv_bfloat162 lo, hi;
    };
    *reinterpret_cast<Bf16x4*>(dst) = Bf16x4{__floats2bfloat162_rn(p.x, p.y), __floats2bfloat162_rn(p.z, p.w)};
  } else {
    dst[0] = to_bf(p.x);
    dst[1] = to_bf(p.y);
    dst[2] = to_bf(p.z);
    dst[3] = to_bf(p.w);
  }
}

__global__ void __launch_bounds__(kThreads) adamw_kernel(const AdamWChunk* __restrict__ chunks, AdamWArgs a,
                                                         const float* __restrict__ grad, float* __restrict__ master,
                                                         float* __restrict__ m, float* __restrict__ v,
                                                         __nv_bfloat16* __restrict__ params) {
  const AdamWChunk ch = chunks[blockIdx.x];
  const ChunkSplit cs(ch);
  const float decay = ch.decay ? a.lr * a.weight_decay : 0.0f;
  const size_t s = ch.start + cs.head;
  const float4* g4 = reinterpret_cast<const float4*>(grad + s);
  float4* p4 = reinterpret_cast<float4*>(master + s);
  float4* m4 = reinterpret_cast<float4*>(m + s);
  float4* v4 = reinterpret_cast<float4*>(v + s);
  __nv_bfloat16* b = params + ch.bstart + cs.head;
  for (uint32_t q0 = threadIdx.x; q0 < cs.groups; q0 += kThreads * kUnroll) {
    float4 gr[kUnroll], mr[kUnroll], vr[kUnroll], pr[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const uint32_t q = q0 + u * kThreads;
      if (q < cs.groups) {
        gr[u] = g4[q];
        mr[u] = m4[q];
        vr[u] = v4[q];
        pr[u] = p4[q];
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const uint32_t q = q0 + u * kThreads;
      if (q < cs.groups) {
        adamw_element(a, decay, gr[u].x, mr[u].x, vr[u].x, pr[u].x);
        adamw_element(a, decay, gr[u].y, mr[u].y, vr[u].y, pr[u].y);
        adamw_element(a, decay, gr[u].z, mr[u].z, vr[u].z, pr[u].z);
        adamw_element(a, decay, gr[u].w, mr[u].w, vr[u].w, pr[u].w);
        m4[q] = mr[u];
        v4[q] = vr[u];
        p4[q] = pr[u];
        store_bf16x4(b + 4 * size_t(q), pr[u], cs.bf16_aligned);
      }
    }
  }
  if (threadIdx.x < cs.loose) {
    const uint32_t k = cs.loose_index(threadIdx.x);
    const size_t i = ch.start + k;
    float mi = m[i], vi = v[i], p = master[i];
    adamw_element(a, decay, grad[i], mi, vi, p);
    m[i] = mi;
    v[i] = vi;
    master[i] = p;
    params[ch.bstart + k] = to_bf(p);
  }
}

__global__ void __launch_bounds__(kThreads)
    params_from_master_kernel(const AdamWChunk* __restrict__ chunks, const float* __restrict__ master,
                              __nv_bfloat16* __restrict__ params) {
  const AdamWChunk ch = chunks[blockIdx.x];
  const ChunkSplit cs(ch);
  const float4* p4 = reinterpret_cast<const float4*>(master + ch.start + cs.head);
  __nv_bfloat16* b = params + ch.bstart + cs.head;
  for (uint32_t q0 = threadIdx.x; q0 < cs.groups; q0 += kThreads * kUnroll) {
    float4 pr[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (q0 + u * kThreads < cs.groups) pr[u] = p4[q0 + u * kThreads];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (q0 + u * kThreads < cs.groups) store_bf16x4(b + 4 * size_t(q0 + u * kThreads), pr[u], cs.bf16_aligned);
  }
  if (threadIdx.x < cs.loose) {
    const uint32_t k = cs.loose_index(threadIdx.x);
    params[ch.bstart + k] = to_bf(master[ch.start + k]);
  }
}

// Thread t of the fixed grid adds the squares of groups t, t + G, t + 2G, ... (G = all threads),
// kNormUnroll loads at a time into kNormUnroll accumulators; the elements before x's first 16-byte
// boundary and after its last whole group (at most 3 + 3) go to block 0. The grouping depends on n
// and on x's address mod 16 only, so a given buffer gives the same bits on every run.
__global__ void __launch_bounds__(kNormThreads)
    sumsq_partial_kernel(const float* __restrict__ x, size_t n, float* __restrict__ partial) {
  __shared__ float scratch[32];
  const size_t lead = ((16u - (reinterpret_cast<uintptr_t>(x) & 15u)) & 15u) / 4u, head = lead < n ? lead : n;
  const size_t groups = (n - head) / 4, tail = head + 4 * groups;
  const float4* x4 = reinterpret_cast<const float4*>(x + head);
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  float acc[kNormUnroll] = {};
  for (size_t q0 = size_t(blockIdx.x) * blockDim.x + threadIdx.x; q0 < groups; q0 += stride * kNormUnroll) {
    float4 r[kNormUnroll];
#pragma unroll
    for (int u = 0; u < kNormUnroll; ++u) {
      const size_t q = q0 + u * stride;
      r[u] = q < groups ? x4[q] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
#pragma unroll
    for (int u = 0; u < kNormUnroll; ++u) acc[u] += r[u].x * r[u].x + r[u].y * r[u].y + r[u].z * r[u].z + r[u].w * r[u].w;
  }
  const size_t loose = head + (n - tail);
  if (blockIdx.x == 0 && threadIdx.x < loose) {
    const float e = x[threadIdx.x < head ? threadIdx.x : tail + (threadIdx.x - head)];
    acc[0] += e * e;
  }
  float sum = 0.0f;
#pragma unroll
  for (int u = 0; u < kNormUnroll; ++u) sum += acc[u];
  sum = block_sum(sum, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = sum;
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

// The chunk walk reads the fp32 buffers in 16-byte groups from 4-aligned indices and writes the
// bf16 copy in 8-byte ones from 4-aligned indices.
void check_aligned(const void* p, size_t bytes, const char* fn, const char* what) {
  if (reinterpret_cast<uintptr_t>(p) % bytes != 0)
    throw std::invalid_argument(std::string("cuda ") + fn + ": " + what + " is not " + std::to_string(bytes) +
                                "-byte aligned");
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
  check_aligned(master, 16, "params_from_master", "master");
  check_aligned(params, 8, "params_from_master", "params");
  params_from_master_kernel<<<n_chunks, kThreads, 0, s>>>(chunks, master, params);
  CUDA_CHECK_LAUNCH();
}

void adamw_step(cudaStream_t s, const AdamWChunk* chunks, int n_chunks, const AdamWStep& h, const float* grad,
                float* master, float* m, float* v, __nv_bfloat16* params) {
  if (n_chunks == 0) return;
  const char* fn = "adamw_step";
  check_aligned(grad, 16, fn, "grad");
  check_aligned(master, 16, fn, "master");
  check_aligned(m, 16, fn, "m");
  check_aligned(v, 16, fn, "v");
  check_aligned(params, 8, fn, "params");
  AdamWArgs a;
  a.lr = float(h.lr);
  a.beta1 = float(h.beta1);
  a.beta2 = float(h.beta2);
  a.eps = float(h.eps);
  a.weight_decay = float(h.weight_decay);
  a.grad_scale = float(h.grad_scale);
  a.bias_corr1 = float(1.0 - std::pow(double(a.beta1), double(h.t)));
  a.bias_corr2 = float(1.0 - std::pow(double(a.beta2), double(h.t)));
  adamw_kernel<<<n_chunks, kThreads, 0, s>>>(chunks, a, grad, master, m, v, params);
  CUDA_CHECK_LAUNCH();
}

void sum_squares(cudaStream_t s, const float* x, size_t n, float* partial, double* out) {
  sumsq_partial_kernel<<<kGradNormBlocks, kNormThreads, 0, s>>>(x, n, partial);
  CUDA_CHECK_LAUNCH();
  sumsq_final_kernel<<<1, 1024, 0, s>>>(partial, kGradNormBlocks, out);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda
