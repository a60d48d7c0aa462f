// CPU reference of the GatedFWA gate path (docs/gatedfwa.md section 2 and 4), fp32-or-better.
//   hg   [B, T, H]  gate pre-activation x.Wg + bg
//   pre  [B, T, H]  sharpness pre-activation x.Wl; beta = 1 + ELU(pre)
//   logf [B, T, H]  logsigmoid(beta*hg) / (beta + 1e-3)  (<= 0)
//   lam  [B, T, H]  inclusive prefix sum of logf along T
#pragma once

namespace gfwa::cpu {

constexpr double kGateBetaEps = 1e-3;

// logf of one token and head from its two pre-activations (the training scan and the decode step).
double gate_log_forget(double hg, double pre);

template <class F>
void gate_forward(int B, int T, int H, const F* hg, const F* pre, F* logf, F* lam);

// dlam: gradient of the loss w.r.t. lam; writes dhg and dpre (overwritten).
template <class F>
void gate_backward(int B, int T, int H, const F* hg, const F* pre, const F* dlam, F* dhg, F* dpre);

}  // namespace gfwa::cpu
