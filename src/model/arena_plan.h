// The layout rule of the cuda backend's one device allocation, as plain host arithmetic (no CUDA):
// buffers one after another, each 256-byte aligned, tallied by category for the printed plan.
// DeviceArena (cuda_arena.h) lays its buffers out with it; cuda_memory_plan.h computes the same
// plan from the shapes alone, so that it can be printed, checked and tested without a GPU.
#pragma once
#include <cstddef>

namespace gfwa {

enum class ArenaCategory { params, grads, optimizer, activations, recompute, workspace, count };

inline const char* arena_category_name(ArenaCategory c) {
  switch (c) {
    case ArenaCategory::params: return "params (bf16 copy + fp32 master)";
    case ArenaCategory::grads: return "grads (fp32)";
    case ArenaCategory::optimizer: return "optimizer (AdamW m, v; Muon scratch)";
    case ArenaCategory::activations: return "activations (saved for backward)";
    case ArenaCategory::recompute: return "recomputed activations (one layer, train.recompute)";
    case ArenaCategory::workspace: return "workspace (scratch, logits chunk, cuBLASLt, attention)";
    default: return "?";
  }
}

class ArenaPlan {
 public:
  static constexpr size_t kAlign = 256;

  // Places `bytes` after everything planned so far; returns its offset.
  size_t add(size_t bytes, ArenaCategory c) {
    const size_t off = (total_ + kAlign - 1) / kAlign * kAlign;
    total_ = off + bytes;
    by_category_[int(c)] += bytes;
    return off;
  }
  size_t total() const { return total_; }  // alignment gaps included
  size_t bytes(ArenaCategory c) const { return by_category_[int(c)]; }
  bool operator==(const ArenaPlan& o) const {
    for (int c = 0; c < int(ArenaCategory::count); ++c)
      if (by_category_[c] != o.by_category_[c]) return false;
    return total_ == o.total_;
  }
  bool operator!=(const ArenaPlan& o) const { return !(*this == o); }

 private:
  size_t total_ = 0;
  size_t by_category_[int(ArenaCategory::count)] = {};
};

}  // namespace gfwa
