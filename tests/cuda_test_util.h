// Helpers shared by the GPU tests: device check, RAII device buffers, bf16 rounding, error norms.
#pragma once
#ifdef GFWA_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cuda_check.h"

namespace gfwa::test {

inline bool cuda_device_present() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

// The current device is compute capability 9.0 (where the sm_90a kernels run: AttnPath::sm90).
inline bool cuda_device_is_sm90() {
  int dev = 0, major = 0, minor = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
  return major == 9 && minor == 0;
}

#define GFWA_SKIP_WITHOUT_GPU()                    \
  do {                                             \
    if (!::gfwa::test::cuda_device_present()) {    \
      GTEST_SKIP() << "no CUDA device present";    \
    }                                              \
  } while (0)

template <class T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n) : n_(n) { CUDA_CHECK(cudaMalloc(&p_, n * sizeof(T) + 16)); }
  ~DeviceBuffer() { cudaFree(p_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  T* get() const { return p_; }
  size_t size() const { return n_; }
  void upload(const std::vector<T>& h) { CUDA_CHECK(cudaMemcpy(p_, h.data(), n_ * sizeof(T), cudaMemcpyHostToDevice)); }
  std::vector<T> download() const {
    std::vector<T> h(n_);
    CUDA_CHECK(cudaMemcpy(h.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }
  void poison() { CUDA_CHECK(cudaMemset(p_, 0xFF, n_ * sizeof(T))); }  // all-ones bits: NaN in bf16 and fp32

 private:
  T* p_ = nullptr;
  size_t n_;
};

// ||a - b|| / ||b||, NaN if any element of a is not finite (an unwritten, poisoned output).
inline double rel_l2(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return NAN;
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

// ||a - b|| <= rtol * ||b|| + atol * sqrt(n): the absolute floor covers references that are exactly 0
// (W = 1 makes dS vanish) where any rounding is an infinite relative error.
inline bool close_l2(const std::vector<double>& a, const std::vector<double>& b, double rtol, double atol) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return false;
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num) <= rtol * std::sqrt(den) + atol * std::sqrt(double(a.size()));
}

}  // namespace gfwa::test
#endif  // GFWA_WITH_CUDA
