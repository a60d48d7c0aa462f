#include "train/schedule.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace gfwa {

int64_t total_steps(const TrainConfig& train, int64_t tokens_per_step) {
  if (train.token_budget > 0) return (train.token_budget + tokens_per_step - 1) / tokens_per_step;
  return train.max_steps;
}

double lr_at(const ScheduleConfig& s, double peak, int64_t step, int64_t total) {
  const int64_t warmup = s.warmup_steps;
  if (step < warmup) return peak * double(step + 1) / double(warmup);
  if (s.type == "constant") return peak;

  // The decay runs over steps [start, total): the first decaying step is already below the peak and
  // the last one lands on the final value.
  int64_t start = warmup;
  if (s.type == "wsd") {
    // Rounded, not ceil'ed: 0.3f * 10 is 3.0000001 in float and must mean 3 steps.
    const int64_t decay_steps = std::max<int64_t>(1, std::llround(double(s.decay_fraction) * double(total)));
    start = std::max(warmup, total - decay_steps);
  } else if (s.type != "cosine" && s.type != "linear") {
    throw std::invalid_argument("schedule.type: unknown schedule '" + s.type + "'");
  }
  if (step < start) return peak;
  const double floor_lr = peak * s.final_lr_fraction;
  const double p = std::min(1.0, double(step + 1 - start) / double(std::max<int64_t>(1, total - start)));
  if (s.type == "cosine") return floor_lr + (peak - floor_lr) * 0.5 * (1.0 + std::cos(M_PI * p));
  return peak - (peak - floor_lr) * p;  // linear, and the decay phase of wsd
}

AdamWStep optimizer_step(const OptimizerConfig& o, double lr, double grad_norm, int64_t t) {
  AdamWStep s;
  s.lr = float(lr);
  s.beta1 = o.beta1;
  s.beta2 = o.beta2;
  s.eps = o.eps;
  s.weight_decay = o.weight_decay;
  s.grad_scale = float(clip_scale(grad_norm, o.grad_clip));
  s.t = t;
  return s;
}

MuonStep muon_step(const OptimizerConfig& o, double muon_lr, double grad_norm) {
  MuonStep s;
  s.lr = float(muon_lr);
  s.momentum = o.muon.momentum;
  s.nesterov = o.muon.nesterov;
  s.ns_steps = o.muon.ns_steps;
  s.weight_decay = o.muon.weight_decay;
  s.grad_scale = float(clip_scale(grad_norm, o.grad_clip));
  return s;
}

void apply_update(Backend& b, const OptimizerConfig& o, const ScheduleConfig& s, int64_t step, int64_t total,
                  double grad_norm, int64_t t) {
  const AdamWStep adamw = optimizer_step(o, lr_at(s, o.lr, step, total), grad_norm, t);
  if (o.type == "muon") b.muon_update(muon_step(o, lr_at(s, o.muon.lr, step, total), grad_norm), adamw);
  else if (o.type == "adamw") b.adamw_update(adamw);
  else throw std::invalid_argument("optimizer.type: unknown optimizer '" + o.type + "'");
}

}  // namespace gfwa
