// Activation recomputation of the cuda backend (`train.recompute`; docs/cuda_backend.md, "Activation
// recomputation"): which activations a layer keeps from its forward until its backward.
//   none       every activation the backward reads
//   selective  all but the memory-bound glue outputs (the RMSNorm outputs, the rotated q|k|v and the
//              SwiGLU output), which the backward recomputes from what is kept
//   full       the layer's input (the residual stream) only; the backward re-runs the layer's forward
// Recomputation re-runs the forward's kernels on the same inputs, so it changes no bit of the loss or
// the gradients, only memory and time. The cpu backend keeps every activation whatever the level.
#pragma once
#include <stdexcept>
#include <string>

namespace gfwa {

enum class Recompute { none, selective, full };

inline const char* recompute_name(Recompute r) {
  switch (r) {
    case Recompute::selective: return "selective";
    case Recompute::full: return "full";
    default: return "none";
  }
}

// Throws std::invalid_argument naming train.recompute and the value when it is not a level.
inline Recompute parse_recompute(const std::string& s) {
  for (Recompute r : {Recompute::none, Recompute::selective, Recompute::full})
    if (s == recompute_name(r)) return r;
  throw std::invalid_argument("train.recompute: unknown level '" + s + "' (expected none, selective or full)");
}

}  // namespace gfwa
