// The training loop behind `gfwa train` (docs/training.md): gradient accumulation, schedule,
// clipping, AdamW, evaluation, samples, logging, checkpoints, resume and preemption.
#pragma once
#include <string>

#include "train/config.h"

namespace gfwa {

struct TrainOptions {
  std::string out_dir;  // config.json, train.log, metrics.jsonl and checkpoints/ go here
  // "" starts fresh; "auto" resumes from the newest valid checkpoint under out_dir/checkpoints (or
  // starts fresh when there is none); anything else is a checkpoint directory, or a directory of
  // them whose newest valid one is used.
  std::string resume;
};

// Runs to the end of the schedule and returns 0, or returns kExitPreempted after a stop signal
// (checkpoint written). Throws on errors, including max_bad_steps non-finite steps in a row.
int train(const RunConfig& cfg, const TrainOptions& opt);

}  // namespace gfwa
