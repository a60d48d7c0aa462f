#include "kernels/cuda_check.h"
#include "kernels/random_fill.cuh"

namespace gfwa::cuda {
namespace {

__device__ __forceinline__ float uniform01(uint64_t seed, uint64_t i) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + i;  // splitmix64 finaliser
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return float(z >> 40) * (1.f / 16777216.f);
}

template <class T>
__global__ void fill_kernel(T* x, size_t n, uint64_t seed, float lo, float hi) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    x[i] = T(lo + (hi - lo) * uniform01(seed, i));
}

template <class T>
void fill(T* x, size_t n, uint64_t seed, float lo, float hi, cudaStream_t stream) {
  if (n == 0) return;
  const size_t blocks = (n + 255) / 256;
  fill_kernel<T><<<unsigned(blocks < 65536 ? blocks : 65536), 256, 0, stream>>>(x, n, seed, lo, hi);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void fill_uniform_bf16(__nv_bfloat16* x, size_t n, uint64_t seed, float lo, float hi, cudaStream_t stream) {
  fill(x, n, seed, lo, hi, stream);
}
void fill_uniform_f32(float* x, size_t n, uint64_t seed, float lo, float hi, cudaStream_t stream) {
  fill(x, n, seed, lo, hi, stream);
}

}  // namespace gfwa::cuda
