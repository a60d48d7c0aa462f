// CUDA_CHECK: every runtime call's status, turned into an exception that names file:line and the error.
#pragma once
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace gfwa::cuda {

[[noreturn]] inline void throw_cuda_error(cudaError_t e, const char* what, const char* file, int line) {
  throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + what + ": " +
                           cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

}  // namespace gfwa::cuda

#define CUDA_CHECK(call)                                                                 \
  do {                                                                                   \
    const cudaError_t gfwa_cuda_err_ = (call);                                           \
    if (gfwa_cuda_err_ != cudaSuccess)                                                   \
      ::gfwa::cuda::throw_cuda_error(gfwa_cuda_err_, #call, __FILE__, __LINE__);         \
  } while (0)

// After a kernel launch: launch-configuration errors surface here, asynchronous faults at the next sync.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
