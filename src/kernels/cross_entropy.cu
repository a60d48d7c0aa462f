#include "kernels/cross_entropy.cuh"

#include "kernels/cuda_check.h"
#include "kernels/device_util.cuh"
#include "kernels/mma_sm80.cuh"

namespace gfwa::cuda {
namespace {

constexpr int kThreads = 512;
constexpr float kLog2e = 1.4426950408889634f;

// The logit gradient of the 8 logits in v, columns j0 .. j0 + 7: (softmax - [j == t]) * dscale, with
// lsel = logsumexp * log2(e) (exp(x - lse) = 2^(x log2e - lsel): one FMA and one ex2 per logit).
__device__ __forceinline__ uint4 xent_grad8(const uint4& v, int j0, int t, float lsel, float dscale) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
  uint4 out;
  __nv_bfloat162* o = reinterpret_cast<__nv_bfloat162*>(&out);
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    const float2 f = __bfloat1622float2(h[e]);
    const int j = j0 + 2 * e;
    o[e] = __floats2bfloat162_rn((detail::exp2_approx(fmaf(f.x, kLog2e, -lsel)) - (j == t ? 1.0f : 0.0f)) * dscale,
                                 (detail::exp2_approx(fmaf(f.y, kLog2e, -lsel)) - (j + 1 == t ? 1.0f : 0.0f)) * dscale);
  }
  return out;
}

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

// Rows too long for softmax_xent_smem_kernel (V % 8 == 0, V <= 8 * kMaxVec * 1024): the row is read once
// into registers with 16-byte loads, and the gradient written from them, so each logit crosses memory
// once each way.
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
  const float lsel = lse * kLog2e;
#pragma unroll
  for (int k = 0; k < kMaxVec; ++k) {
    const int i = threadIdx.x + k * kVecThreads;
    if (i < nv) row[i] = xent_grad8(r[k], i * 8, t, lsel, dscale);
  }
}

// The common case on sm_80+ (V % 8 == 0, two rows' worth of bf16 fitting in an SM's shared memory: V <=
// ~57k on H100/H200): the row is staged in shared memory by 16-byte cp.async, so one read of each logit
// crosses memory, with a whole row per block in flight and no registers held for it. Two 512-thread
// blocks per SM: while one block waits for its row, the other takes its exps and stores its gradient,
// which a 1024-thread block holding the row in registers (one row per SM) could not overlap. Each
// thread reads back only the vectors it copied itself, so only the reductions need barriers.
constexpr int kSmemThreads = 512;

// f(x) for each logit x of the 16-byte vectors this thread copied (vectors threadIdx.x + k * kSmemThreads).
template <class F>
__device__ __forceinline__ void for_own_logits(const uint4* srow, int nv, F f) {
#pragma unroll 4
  for (int i = threadIdx.x; i < nv; i += kSmemThreads) {
    const uint4 v = srow[i];
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 x = __bfloat1622float2(h[e]);
      f(x.x);
      f(x.y);
    }
  }
}

__global__ void __launch_bounds__(kSmemThreads, 2) softmax_xent_smem_kernel(__nv_bfloat16* __restrict__ logits,
                                                                         const int32_t* __restrict__ targets,
                                                                         float* __restrict__ loss, int V, float dscale,
                                                                         bool write_grad) {
  extern __shared__ uint4 srow[];  // [V / 8]
  __shared__ float scratch[32];
  uint4* row = reinterpret_cast<uint4*>(logits + size_t(blockIdx.x) * V);
  const int nv = V / 8;
  for (int i = threadIdx.x; i < nv; i += kSmemThreads) detail::cp_async16(detail::smem_addr(srow + i), row + i, true);
  detail::cp_async_commit();
  const int t = targets[blockIdx.x];
  detail::cp_async_wait<0>();
  float m = -INFINITY;
  for_own_logits(srow, nv, [&](float x) { m = fmaxf(m, x); });
  const float ml = m * kLog2e;
  float sum = 0.0f;
  for_own_logits(srow, nv, [&](float x) { sum += detail::exp2_approx(fmaf(x, kLog2e, -ml)); });
  const float M = block_max(m, scratch);  // its barriers also publish every thread's copied vectors
  const float S = block_sum(m == -INFINITY ? 0.0f : sum * detail::exp2_approx((m - M) * kLog2e), scratch);
  const float lse = M + logf(S);
  if (threadIdx.x == 0) loss[blockIdx.x] = lse - to_f(reinterpret_cast<const __nv_bfloat16*>(srow)[t]);
  if (!write_grad) return;
  const float lsel = lse * kLog2e;
#pragma unroll 4
  for (int i = threadIdx.x; i < nv; i += kSmemThreads) row[i] = xent_grad8(srow[i], i * 8, t, lsel, dscale);
}

// Whether two rows of V bf16 logits (plus each block's reserved and static shared memory) fit in one
// SM of the current device, so that softmax_xent_smem_kernel runs two blocks per SM.
bool two_rows_fit_in_smem(int V) {
  int dev = 0, per_sm = 0, per_block = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&per_block, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  const size_t row = size_t(V) * sizeof(__nv_bfloat16), overhead = 2048;  // reserved 1 KB + scratch, rounded up
  return row <= size_t(per_block) && 2 * (row + overhead) <= size_t(per_sm);
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
  if (V % 8 == 0 && two_rows_fit_in_smem(V)) {
    const int smem = V * int(sizeof(__nv_bfloat16));
    CUDA_CHECK(cudaFuncSetAttribute(softmax_xent_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    CUDA_CHECK(cudaFuncSetAttribute(softmax_xent_smem_kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                    int(cudaSharedmemCarveoutMaxShared)));
    softmax_xent_smem_kernel<<<R, kSmemThreads, smem, s>>>(logits, targets, loss, V, dscale, write_grad);
  } else if (V % 8 == 0 && V <= 8 * kMaxVec * kVecThreads)
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
