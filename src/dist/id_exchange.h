// Shares rank 0's opaque blob (the 128-byte NCCL unique id) with every rank, by the method that
// distributed.id_exchange names (tcp | file), within distributed.timeout_s.
#pragma once
#include <cstdint>
#include <vector>

#include "dist/dist_config.h"
#include "dist/env.h"

namespace gfwa::dist {

// Rank 0 passes its blob; every rank gets it back. A 1-process run returns at once.
std::vector<uint8_t> exchange_id(const DistEnv& env, const DistributedConfig& cfg, const std::vector<uint8_t>& blob);

}  // namespace gfwa::dist
