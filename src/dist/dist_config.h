// The `distributed.*` keys of a run (docs/config.md): how ranks find each other and how gradients
// are shared. Defined here, below the trainer's RunConfig that embeds it, so dist/ needs nothing above.
#pragma once
#include <string>

namespace gfwa {

struct DistributedConfig {
  std::string id_exchange = "tcp";  // tcp | file
  std::string id_file = "";         // file exchange only: a path all ranks can see
  int timeout_s = 300;
  bool zero1 = false;
  int bucket_mb = 25;
};

}  // namespace gfwa
