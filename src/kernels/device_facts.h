// What the kernels' launchers ask of the current GPU: compute capability (which paths may run), SM count and L2 size
// (persistent grids, tile orders). Asked once per device and kept: the launchers run per layer, and decode per token.
#pragma once
#include <cuda_runtime.h>

#include <map>
#include <mutex>

#include "kernels/cuda_check.h"

namespace gfwa::cuda {

struct DeviceFacts {
  int device = 0;
  int cc = 0;  // compute capability as major * 10 + minor
  int sms = 0, l2_bytes = 0;
};

inline DeviceFacts current_device_facts() {
  static std::mutex mu;
  static std::map<int, DeviceFacts> known;
  int dev = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  const std::lock_guard<std::mutex> lock(mu);
  const auto it = known.find(dev);
  if (it != known.end()) return it->second;
  int major = 0, minor = 0;
  DeviceFacts f;
  f.device = dev;
  CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&f.sms, cudaDevAttrMultiProcessorCount, dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&f.l2_bytes, cudaDevAttrL2CacheSize, dev));
  f.cc = major * 10 + minor;
  return known[dev] = f;
}

}  // namespace gfwa::cuda
