// One device allocation for every buffer of the cuda backend (docs/cuda_backend.md, memory plan):
// buffers are planned first (aligned offsets, tallied by category for the logged plan: arena_plan.h),
// then the arena is allocated once and every planned pointer is relocated into it.
#pragma once
#ifdef GFWA_WITH_CUDA
#include <cstddef>
#include <string>
#include <vector>

#include "model/arena_plan.h"

namespace gfwa {

class DeviceArena {
 public:
  DeviceArena() = default;
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;
  ~DeviceArena();

  // Plans `count` elements for `ptr`, 256-byte aligned; ptr is set by allocate().
  template <class T>
  void take(T*& ptr, size_t count, ArenaCategory c) {
    const size_t off = plan_.add(count * sizeof(T), c);
    ptr = nullptr;
    slots_.push_back({reinterpret_cast<void**>(&ptr), off});
  }
  const ArenaPlan& plan() const { return plan_; }
  size_t total() const { return plan_.total(); }
  size_t bytes(ArenaCategory c) const { return plan_.bytes(c); }
  // Throws std::runtime_error naming the required and the free GiB when the plan does not fit.
  void allocate();

 private:
  struct Slot {
    void** slot;
    size_t offset;
  };
  std::vector<Slot> slots_;
  ArenaPlan plan_;
  void* base_ = nullptr;
};

}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
