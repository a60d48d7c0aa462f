// Learning-rate schedules: linear warmup, then cosine | linear | constant | wsd (warmup-stable-decay).
// Steps are 0-based; the update of step s uses lr_at(s). Warmup reaches the peak at step warmup-1;
// the decaying schedules reach final_lr_fraction * peak exactly at the last step (total - 1).
// The optimizer steps they feed (AdamW, Muon) and the update a backend applies are here too.
#pragma once
#include <cstdint>

#include "kernels/adamw_step.h"
#include "kernels/muon_step.h"
#include "model/backend.h"
#include "train/config.h"

namespace gfwa {

// Number of optimizer steps of a run: ceil(token_budget / tokens_per_step) when a token budget is
// set, else train.max_steps. tokens_per_step is the resolved value (never 0).
int64_t total_steps(const TrainConfig& train, int64_t tokens_per_step);

// The learning rate of 0-based step `step` in a run of `total` steps with peak `peak`.
double lr_at(const ScheduleConfig& s, double peak, int64_t step, int64_t total);

// The AdamW update of one step from optimizer.*, the scheduled lr and the global gradient norm
// (clipped to optimizer.grad_clip). Every value is rounded to fp32 first, as the cuda kernel reads
// it, so both backends apply the same numbers.
AdamWStep optimizer_step(const OptimizerConfig& o, double lr, double grad_norm, int64_t t);

// The Muon update of one step (optimizer.type muon) from optimizer.muon.*, its scheduled lr and the
// global gradient norm, clipped and rounded to fp32 as optimizer_step does.
MuonStep muon_step(const OptimizerConfig& o, double muon_lr, double grad_norm);

// Applies update number t (1-based) at 0-based step `step` of `total`: AdamW on every tensor at the
// scheduled optimizer.lr or, with optimizer.type muon, Muon on the hidden matrices at the
// scheduled optimizer.muon.lr (the same schedule shapes both) and AdamW on the other tensors.
void apply_update(Backend& b, const OptimizerConfig& o, const ScheduleConfig& s, int64_t step, int64_t total,
                  double grad_norm, int64_t t);

}  // namespace gfwa
