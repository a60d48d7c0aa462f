// Picks and builds the backend a run asks for (train.backend: auto | cpu | cuda).
#pragma once
#include <memory>
#include <string>

#include "model/backend.h"
#include "train/config.h"

namespace gfwa {

// The concrete backend for train.backend: "auto" resolves to the best one this build can run.
// Throws std::runtime_error when the requested backend is unavailable.
std::string resolve_backend_name(const std::string& requested);

// A backend for this process, sized for micro-batches of train.batch_size x train.seq_len, with
// its backend-specific config checks applied. world: number of data-parallel processes.
std::unique_ptr<Backend> make_backend(const RunConfig& cfg, int world);

}  // namespace gfwa
