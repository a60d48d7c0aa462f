// ZeRO-1 ownership: rank r owns elements [begin(r), end(r)) of the flat parameter buffer and keeps
// fp32 master weights and AdamW moments for them only. Every shard has the same padded size, so
// the gradient reduce-scatter and the parameter all-gather use one count on every rank; the flat
// buffers they touch are padded() long, the tail past total() zero.
//
// Shard sizes are multiples of kShardAlign = 128 elements: a shard then starts 256-byte aligned in
// a bf16 buffer and 512-byte aligned in an fp32 one, as aligned as a fresh cudaMalloc pointer, so
// vectorised kernels and NCCL see aligned pointers whatever the dtype; padding is < 128 * world
// elements, nothing next to a model's millions.
#pragma once
#include <algorithm>
#include <cstddef>
#include <vector>

#include "model/param_layout.h"

namespace gfwa {

constexpr size_t kShardAlign = 128;

struct ShardPlan {
  size_t total = 0;  // real elements
  int world = 1;
  size_t shard = 0;  // elements per rank, a multiple of the alignment

  size_t padded() const { return shard * size_t(world); }
  size_t begin(int r) const { return std::min(total, shard * size_t(r)); }
  size_t end(int r) const { return std::min(total, shard * size_t(r + 1)); }
  size_t owned(int r) const { return end(r) - begin(r); }  // may be 0 for tiny models
};

ShardPlan plan_shards(size_t total, int world, size_t align = kShardAlign);

// The part of one tensor inside a shard, in flat-buffer elements [begin, end): what the sharded
// AdamW needs to apply per-tensor rules (weight decay) to its shard.
struct ShardPiece {
  int tensor = 0;
  size_t begin = 0, end = 0;
};
std::vector<ShardPiece> shard_pieces(const std::vector<ParamTensor>& tensors, const ShardPlan& plan, int rank);

}  // namespace gfwa
