// The backend a run asks for, derived from its configuration: the only place that maps RunConfig
// onto model/backend_factory's BackendSpec.
#pragma once
#include <string>

#include "model/backend_factory.h"
#include "train/config.h"

namespace gfwa {

// train.backend resolved and checked against the model (ConfigError naming the key, before any
// rank waits for another), sized for train.batch_size x train.seq_len; with data_parallel and
// distributed.zero1, this rank's ZeRO-1 shard of `world`. Throws a ConfigError naming
// train.backend when the backend cannot run `world` processes.
BackendSpec backend_spec(const RunConfig& cfg, int world, int rank, bool data_parallel);

}  // namespace gfwa
