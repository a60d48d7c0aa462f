#include "dist/checkpoint_ranks.h"

#include <cstdio>

#include "dist/dist_error.h"

namespace gfwa::dist {

std::string rank_state_name(int rank, int world) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "rank-%05d-of-%05d", rank, world);
  return buf;
}

void require_same_world(const std::string& checkpoint, int saved_world, int world) {
  if (saved_world == world) return;
  throw DistError("checkpoint " + checkpoint + " was written by " + std::to_string(saved_world) +
                  (saved_world == 1 ? " rank" : " ranks") + ", this run has " + std::to_string(world) +
                  ": resume it with " + std::to_string(saved_world) +
                  (saved_world == 1 ? " process" : " processes") +
                  " (optimizer shards and data-loader slices are per rank; resharding is not supported)");
}

}  // namespace gfwa::dist
