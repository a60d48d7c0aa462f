// Error checks for CUDA runtime calls and kernel launches: every failure becomes a one-line
// std::runtime_error naming the call site. Host-includable (no device code).
#pragma once
#include <stdexcept>
#include <string>

#include <cuda_runtime.h>

namespace gfwa::cuda {

inline void check_cuda(cudaError_t e, const char* what, const char* file, int line) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("CUDA error '") + cudaGetErrorString(e) + "' in " + what + " at " + file +
                             ":" + std::to_string(line));
}

}  // namespace gfwa::cuda

#define GFWA_CUDA_CHECK(call) ::gfwa::cuda::check_cuda((call), #call, __FILE__, __LINE__)
// After a launch: catches bad launch configurations without synchronising.
#define GFWA_CUDA_LAUNCH_CHECK() ::gfwa::cuda::check_cuda(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)
