// One device allocation for every buffer of the cuda backend (docs/cuda_backend.md, memory plan):
// buffers are planned first (aligned offsets, tallied by category for the logged plan), then the
// arena is allocated once and every planned pointer is relocated into it.
#pragma once
#ifdef GFWA_WITH_CUDA
#include <cstddef>
#include <string>
#include <vector>

namespace gfwa {

enum class ArenaCategory { params, grads, optimizer, activations, workspace, count };
const char* arena_category_name(ArenaCategory c);

class DeviceArena {
 public:
  DeviceArena() = default;
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;
  ~DeviceArena();

  // Plans `count` elements for `ptr`, 256-byte aligned; ptr is set by allocate().
  template <class T>
  void take(T*& ptr, size_t count, ArenaCategory c) {
    const size_t off = (total_ + 255) / 256 * 256;
    total_ = off + count * sizeof(T);
    by_category_[int(c)] += count * sizeof(T);
    ptr = nullptr;
    slots_.push_back({reinterpret_cast<void**>(&ptr), off});
  }
  size_t total() const { return total_; }
  size_t bytes(ArenaCategory c) const { return by_category_[int(c)]; }
  // Throws std::runtime_error naming the required and the free GiB when the plan does not fit.
  void allocate();

 private:
  struct Slot {
    void** slot;
    size_t offset;
  };
  std::vector<Slot> slots_;
  size_t total_ = 0;
  size_t by_category_[int(ArenaCategory::count)] = {};
  void* base_ = nullptr;
};

}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
