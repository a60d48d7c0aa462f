// One error type for the distributed bootstrap: launcher variables, id exchange, NCCL, shard rules.
// what() is one line naming the rank, the variable, file or address at fault.
#pragma once
#include <stdexcept>

namespace gfwa::dist {

class DistError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace gfwa::dist
