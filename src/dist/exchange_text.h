// Wording shared by the id exchanges' error messages.
#pragma once
#include <chrono>
#include <string>
#include <vector>

namespace gfwa::dist {

// 300000 ms -> "300 s", 250 ms -> "0.25 s"
std::string seconds_text(std::chrono::milliseconds t);
// {2} -> "rank 2"; {2, 3} -> "ranks 2, 3"; {1, 2, 3, 4, 9} -> "ranks 1-4, 9" (ascending input)
std::string ranks_text(const std::vector<int>& ranks);
// "rank 3 reports world size 4, rank 0 has 2"
std::string world_mismatch_text(int rank, int world, int world0);

}  // namespace gfwa::dist
