// One Muon update as every layer sees it: the trainer fills it (train/schedule.h: muon_step), a
// backend takes it together with the AdamW step of the other tensors (Backend::muon_update) and
// both kernels apply it (muon_cpu.h, muon.cuh).
//
// For one hidden weight matrix W [rows, cols] with gradient G and momentum buffer M:
//   g = G * grad_scale;  M = momentum * M + g;  U = nesterov ? g + momentum * M : M
//   O = NewtonSchulz(U)                       (ns_steps quintic iterations, below)
//   W = W - lr * weight_decay * W - lr * muon_shape_scale(rows, cols) * O
#pragma once
#include <algorithm>
#include <cmath>

namespace gfwa {

struct MuonStep {
  double lr;            // the scheduled optimizer.muon.lr, before the shape scale
  double momentum;
  bool nesterov;
  int ns_steps;         // Newton-Schulz iterations
  double weight_decay;  // decoupled, with the Muon lr: W *= 1 - lr * weight_decay
  double grad_scale;    // multiplies every gradient first (clipping: clip_scale), as in AdamWStep
};

// Newton-Schulz: X0 = U / (||U||_F + kNsEps), so every singular value lies in (0, 1]; then
//   A = X X^T;  X = kNsA X + (kNsB A + kNsC A A) X
// applies p(s) = kNsA s + kNsB s^3 + kNsC s^5 to each singular value s while keeping the singular
// vectors: X tends to U's orthogonal factor (U V^T of its SVD). These are Keller Jordan's quintic
// coefficients (modded-nanogpt, 2024), tuned for a steep slope p'(0) = 3.4445 while the iterates
// stay bounded: small singular values grow about 3.4x per step, and 5 steps bring every normalised
// s >= 2e-3 into [0.68, 1.21] instead of converging to exactly 1. The optimizer needs a direction
// whose singular values are all near 1, not an exact orthogonal matrix, and the bf16 GEMMs of the
// GPU path could not resolve more anyway; the classic cubic (1.5, -0.5, 0) converges to 1 but
// needs many more steps from small s. The kernels round the constants to their arithmetic (fp32
// on the GPU and in the cpu backend).
constexpr double kNsA = 3.4445, kNsB = -4.7750, kNsC = 2.0315;
constexpr double kNsEps = 1e-7;

// The shape-dependent learning-rate scale: sqrt(max(1, rows / cols)) for a [rows, cols] = [out, in]
// weight. An orthogonalised update has spectral norm ~1 whatever the shape, so its per-element RMS
// is ~1/sqrt(max(rows, cols)); the scale lifts tall matrices (the SwiGLU w1 and w3, [4d, d]) to the
// per-element step of square ones, as in the reference Muon (modded-nanogpt), so one
// optimizer.muon.lr suits every hidden matrix of a model.
inline double muon_shape_scale(int rows, int cols) { return std::sqrt(std::max(1.0, double(rows) / double(cols))); }

}  // namespace gfwa
