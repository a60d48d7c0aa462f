#include "model/zero1_shards.h"

#include <stdexcept>
#include <string>

namespace gfwa {

ShardPlan plan_shards(size_t total, int world, size_t align) {
  if (world < 1 || align == 0) throw std::invalid_argument("plan_shards: world and alignment must be positive");
  ShardPlan p;
  p.total = total;
  p.world = world;
  const size_t per_rank = (total + size_t(world) - 1) / size_t(world);
  p.shard = std::max<size_t>(1, (per_rank + align - 1) / align) * align;  // never 0: NCCL counts must be positive
  return p;
}

std::vector<ShardPiece> shard_pieces(const std::vector<ParamTensor>& tensors, const ShardPlan& plan, int rank) {
  if (rank < 0 || rank >= plan.world) throw std::out_of_range("shard_pieces: rank " + std::to_string(rank));
  const size_t lo = plan.begin(rank), hi = plan.end(rank);
  std::vector<ShardPiece> out;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const size_t b = std::max(lo, tensors[i].offset), e = std::min(hi, tensors[i].offset + tensors[i].numel);
    if (b < e) out.push_back({int(i), b, e});
  }
  return out;
}

}  // namespace gfwa
