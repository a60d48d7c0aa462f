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

// Throws the clear refusal of data parallelism (world > 1) on the cpu backend.
void refuse_cpu_data_parallel(const std::string& backend, int world);

// A backend for this process, sized for micro-batches of train.batch_size x train.seq_len, with
// its backend-specific config checks applied. world, rank: this process in a data-parallel run;
// data_parallel: it will get a communicator (then distributed.zero1 sizes the optimizer shards).
// Data parallelism needs the cuda backend: the cpu backend with world > 1 is refused.
std::unique_ptr<Backend> make_backend(const RunConfig& cfg, int world, int rank = 0, bool data_parallel = false);

}  // namespace gfwa
