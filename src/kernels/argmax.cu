#include "kernels/argmax.cuh"

#include "kernels/cuda_check.h"
#include "kernels/device_util.cuh"

namespace gfwa::cuda {
namespace {

constexpr int kThreads = 256;

// (value, id) pairs ordered by value, then by the lower id.
__device__ __forceinline__ bool better(float v, int j, float bv, int bj) { return v > bv || (v == bv && j < bj); }

// One block per row: each thread scans a strided slice keeping its first maximum, then a tree
// reduction over the block.
__global__ void __launch_bounds__(kThreads) argmax_kernel(const __nv_bfloat16* __restrict__ logits, int V,
                                                          int32_t* __restrict__ out) {
  __shared__ float sv[kThreads];
  __shared__ int sj[kThreads];
  const __nv_bfloat16* row = logits + size_t(blockIdx.x) * V;
  float bv = -INFINITY;
  int bj = V;  // no id yet: loses every comparison with a real one of equal value
  for (int j = threadIdx.x; j < V; j += kThreads) {
    const float v = to_f(row[j]);
    if (better(v, j, bv, bj)) {
      bv = v;
      bj = j;
    }
  }
  sv[threadIdx.x] = bv;
  sj[threadIdx.x] = bj;
  __syncthreads();
  for (int k = kThreads / 2; k > 0; k >>= 1) {
    if (threadIdx.x < k && better(sv[threadIdx.x + k], sj[threadIdx.x + k], sv[threadIdx.x], sj[threadIdx.x])) {
      sv[threadIdx.x] = sv[threadIdx.x + k];
      sj[threadIdx.x] = sj[threadIdx.x + k];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = sj[0];
}

}  // namespace

void argmax_rows(cudaStream_t s, const __nv_bfloat16* logits, int R, int V, int32_t* out) {
  if (R == 0) return;
  argmax_kernel<<<R, kThreads, 0, s>>>(logits, V, out);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda
