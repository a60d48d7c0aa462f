// One AdamW update as every layer sees it: the trainer fills it (train/schedule.h: optimizer_step),
// a backend takes it (Backend::adamw_update) and both kernels apply it (adamw_cpu.h, adamw.cuh).
#pragma once
#include <cstdint>

namespace gfwa {

// The cpu kernel computes in double, the cuda kernel in float (it rounds the values first).
struct AdamWStep {
  double lr;
  double beta1, beta2, eps, weight_decay;  // decoupled weight decay, on tensors marked for it
  double grad_scale;  // multiplies every gradient before the update (clipping: clip_scale)
  int64_t t;          // 1-based step count for bias correction
};

// Gradient clipping factor min(1, max_norm / norm); max_norm <= 0 disables clipping.
inline double clip_scale(double norm, double max_norm) {
  return max_norm > 0.0 && norm > max_norm ? max_norm / norm : 1.0;
}

}  // namespace gfwa
