// Shared by the kernel benchmarks (`gfwa bench attention`, `gfwa bench nsa`): device buffers, CUDA-event
// timing, and the --B 4 spelling of one-letter options. CUDA builds only.
#pragma once
#ifdef GFWA_WITH_CUDA
#include <cuda_runtime.h>

#include <algorithm>
#include <string>
#include <vector>

#include "kernels/cuda_check.h"

namespace gfwa::bench {

template <class T>
struct DevBuf {
  T* p = nullptr;
  explicit DevBuf(size_t n) { CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T))); }
  ~DevBuf() { cudaFree(p); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
};

// (query, key) pairs of causal attention over the last W keys (W >= T: full causal).
inline double mask_pairs(int64_t T, int64_t W) {
  return double(W < T ? T * W - W * (W - 1) / 2 : T * (T + 1) / 2);
}

// Median over `iters` timed calls of f (after `warmup` untimed ones), in milliseconds.
template <class F>
double median_ms(int warmup, int iters, cudaStream_t s, F&& f) {
  for (int i = 0; i < warmup; ++i) f();
  cudaEvent_t a, b;
  CUDA_CHECK(cudaEventCreate(&a));
  CUDA_CHECK(cudaEventCreate(&b));
  std::vector<float> ms(iters);
  for (int i = 0; i < iters; ++i) {
    CUDA_CHECK(cudaEventRecord(a, s));
    f();
    CUDA_CHECK(cudaEventRecord(b, s));
    CUDA_CHECK(cudaEventSynchronize(b));
    CUDA_CHECK(cudaEventElapsedTime(&ms[i], a, b));
  }
  CUDA_CHECK(cudaEventDestroy(a));
  CUDA_CHECK(cudaEventDestroy(b));
  std::sort(ms.begin(), ms.end());
  return ms[iters / 2];
}

// cxxopts reads one-letter names as short options only; accept the documented --B 4 / --B=4 spelling too.
inline std::vector<std::string> normalise_args(int argc, char** argv) {
  std::vector<std::string> out;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.size() >= 3 && a[0] == '-' && a[1] == '-' && (a.size() == 3 || a[3] == '=')) {
      out.push_back(a.substr(1, 2));
      if (a.size() > 4) out.push_back(a.substr(4));
    } else {
      out.push_back(a);
    }
  }
  return out;
}

}  // namespace gfwa::bench
#endif  // GFWA_WITH_CUDA
