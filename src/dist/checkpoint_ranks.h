// Per-rank state in a checkpoint of a data-parallel run. Rank 0 writes the model (parameters and
// resolved config); every rank writes its own file with its optimizer shard (ZeRO-1: master weights
// and AdamW moments of its ShardPlan range) and its data-loader position. Shards and loader slices
// depend on the world size, so a checkpoint resumes only with the world size that wrote it.
#pragma once
#include <string>

namespace gfwa::dist {

// "rank-00003-of-00004": the stem of rank 3's file in a 4-rank checkpoint.
std::string rank_state_name(int rank, int world);

// Throws DistError unless `world` equals the world size that wrote `checkpoint`.
void require_same_world(const std::string& checkpoint, int saved_world, int world);

}  // namespace gfwa::dist
