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

const char* arena_category_name(ArenaCategory c) {
  switch (c) {
    case ArenaCategory::params: return "params (bf16 copy + fp32 master)";
    case ArenaCategory::grads: return "grads (fp32)";
    case ArenaCategory::optimizer: return "optimizer (AdamW m, v)";
    case ArenaCategory::activations: return "activations (saved for backward)";
    case ArenaCategory::workspace: return "workspace (scratch, logits chunk, cuBLASLt, attention)";
    default: return "?";
  }
}

void DeviceArena::allocate() {
  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  if (total_ > free_b)
    throw std::runtime_error("cuda backend: the memory plan needs " + gib(total_) + " GiB of device memory but only " +
                             gib(free_b) + " GiB are free (reduce batch_size or seq_len)");
  CUDA_CHECK(cudaMalloc(&base_, total_));
  for (auto& s : slots_) *s.slot = static_cast<char*>(base_) + s.offset;
  slots_.clear();
}

DeviceArena::~DeviceArena() {
  if (base_) cudaFree(base_);
}

}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
