// The training loop behind `gfwa train` (docs/training.md): gradient accumulation, schedule,
// clipping, AdamW, evaluation, samples, logging, checkpoints, resume and preemption.
#pragma once
#include <string>

#include "train/config.h"

namespace gfwa {

struct TrainOptions {
  std::string out_dir;  // config.json, train.log, metrics.jsonl and checkpoints/ go here
  // "" starts fresh; "auto" resumes from the newest valid checkpoint under out_dir/checkpoints (or
  // starts fresh when there is no checkpoint at all; invalid ones only are refused); anything else is a checkpoint directory, or a directory of
  // them whose newest valid one is used.
  std::string resume;
};

constexpr int kExitDataError = 74;  // EX_IOERR: a shard could not be read mid-run; checkpoint written

// Runs to the end of the schedule and returns 0, returns kExitPreempted after a stop signal, or
// kExitDataError when a training shard could not be read part-way (truncated or changed while in
// use; checkpoint of the last complete step written). Throws on errors, including max_bad_steps
// non-finite steps in a row, a second run into the same out_dir (RunLockError), and a --resume
// auto whose folder holds only invalid checkpoints.
int train(const RunConfig& cfg, const TrainOptions& opt);

}  // namespace gfwa
