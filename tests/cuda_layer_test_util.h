// Extra helpers of the layer and backend GPU tests, on top of cuda_test_util.h (device check and
// skip macro): device arrays built from host vectors and poisoned with NaN, bf16-rounded random
// inputs, and the relative L2 error of any pair of containers.
#pragma once
#ifdef GFWA_WITH_CUDA
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include "cuda_test_util.h"
#include "kernels/cuda_check.h"

namespace gfwa::test {

// A device array of T; poison() fills every byte with 0xFF (NaN in fp32 and bf16).
template <class T>
class DeviceArray {
 public:
  explicit DeviceArray(size_t n) : n_(n) { CUDA_CHECK(cudaMalloc(&p_, std::max<size_t>(n, 1) * sizeof(T))); }
  explicit DeviceArray(const std::vector<T>& h) : DeviceArray(h.size()) { upload(h); }
  ~DeviceArray() { cudaFree(p_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  T* get() { return p_; }
  size_t size() const { return n_; }
  void upload(const std::vector<T>& h) {
    CUDA_CHECK(cudaMemcpy(p_, h.data(), n_ * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> h(n_);
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(h.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }
  void poison() { CUDA_CHECK(cudaMemset(p_, 0xFF, n_ * sizeof(T))); }

 private:
  T* p_ = nullptr;
  size_t n_;
};

inline __nv_bfloat16 to_bf16(float x) { return __float2bfloat16_rn(x); }
inline float from_bf16(__nv_bfloat16 x) { return __bfloat162float(x); }

inline std::vector<__nv_bfloat16> to_bf16(const std::vector<float>& x) {
  std::vector<__nv_bfloat16> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = to_bf16(x[i]);
  return y;
}
// The raw 16-bit patterns, for bit-for-bit comparisons.
inline std::vector<uint16_t> bits(const std::vector<__nv_bfloat16>& v) {
  std::vector<uint16_t> b(v.size());
  std::memcpy(b.data(), v.data(), v.size() * 2);
  return b;
}
inline std::vector<double> to_double(const std::vector<__nv_bfloat16>& x) {
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = from_bf16(x[i]);
  return y;
}
inline std::vector<double> to_double(const std::vector<float>& x) { return std::vector<double>(x.begin(), x.end()); }

// Normal(0, std) values already rounded to bf16, so both sides see the same inputs.
inline std::vector<float> random_bf16_values(size_t n, uint64_t seed, double std = 1.0, double mean = 0.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> dist(mean, std);
  std::vector<float> x(n);
  for (auto& v : x) v = from_bf16(to_bf16(float(dist(rng))));
  return x;
}

inline std::vector<int32_t> random_ids(size_t n, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> dist(0, vocab - 1);
  std::vector<int32_t> x(n);
  for (auto& v : x) v = dist(rng);
  return x;
}

// ||got - ref|| / ||ref|| for any element types; infinite when got holds a NaN (an unwritten, poisoned element).
template <class A, class B>
double rel_err(const A& got, const B& ref) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double g = double(got[i]), r = double(ref[i]);
    if (!std::isfinite(g)) return INFINITY;
    num += (g - r) * (g - r);
    den += r * r;
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

}  // namespace gfwa::test
#endif  // GFWA_WITH_CUDA
