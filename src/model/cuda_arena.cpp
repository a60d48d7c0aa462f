#ifdef GFWA_WITH_CUDA
#include "model/cuda_arena.h"

#include <cstdio>
#include <stdexcept>

#include <cuda_runtime.h>

#include "kernels/cuda_check.h"

namespace gfwa {

namespace {

std::string gib(size_t b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", double(b) / double(1ull << 30));
  return buf;
}

}  // namespace

void DeviceArena::allocate() {
  size_t free_b = 0, device_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &device_b));
  if (total() > free_b)
    throw std::runtime_error("cuda backend: the memory plan needs " + gib(total()) + " GiB of device memory but only " +
                             gib(free_b) + " GiB are free (reduce batch_size or seq_len)");
  CUDA_CHECK(cudaMalloc(&base_, total()));
  for (auto& s : slots_) *s.slot = static_cast<char*>(base_) + s.offset;
  slots_.clear();
}

DeviceArena::~DeviceArena() {
  if (base_) cudaFree(base_);
}

}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
