// Device-side random fills for benchmarks (a counter hash, so 100M-element inputs cost no host time).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace gfwa::cuda {

// x[i] = uniform in [lo, hi), from (seed, i).
void fill_uniform_bf16(__nv_bfloat16* x, size_t n, uint64_t seed, float lo, float hi, cudaStream_t stream);
void fill_uniform_f32(float* x, size_t n, uint64_t seed, float lo, float hi, cudaStream_t stream);

}  // namespace gfwa::cuda
