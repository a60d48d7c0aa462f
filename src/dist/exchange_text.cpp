#include "dist/exchange_text.h"

#include <cstdio>

namespace gfwa::dist {

std::string seconds_text(std::chrono::milliseconds t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", double(t.count()) / 1000.0);
  return buf;
}

std::string ranks_text(const std::vector<int>& ranks) {
  std::string s = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size();) {
    size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    if (i > 0) s += ", ";
    if (j - i >= 2) {
      s += std::to_string(ranks[i]) + "-" + std::to_string(ranks[j]);
    } else {
      s += std::to_string(ranks[i]);
      if (j > i) s += ", " + std::to_string(ranks[j]);
    }
    i = j + 1;
  }
  return s;
}

std::string world_mismatch_text(int rank, int world, int world0) {
  return "rank " + std::to_string(rank) + " reports world size " + std::to_string(world) + ", rank 0 has " +
         std::to_string(world0);
}

}  // namespace gfwa::dist
