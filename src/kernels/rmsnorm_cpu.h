// CPU reference of RMSNorm with a learnable weight (block norms, final norm, QK-norm over the whole
// projected d before the head split).
//   x, y, dx, dy : [N, C]
//   w, dw        : [C]
//   rstd         : [N]  1 / sqrt(mean(x^2) + eps), saved by the forward for the backward
// y = x * rstd * w.
#pragma once

namespace gfwa::cpu {

// Overwrites y and rstd. y may alias x.
template <class F>
void rmsnorm_forward(F* y, F* rstd, const F* x, const F* w, int N, int C, double eps);

// dx += dL/dx (dx must not alias dy); dw += dL/dw. Row sums and the dw reduction run in a fixed
// order (dw: row order, threads own column blocks), independent of the thread count.
template <class F>
void rmsnorm_backward(F* dx, F* dw, const F* dy, const F* x, const F* w, const F* rstd, int N, int C);

}  // namespace gfwa::cpu
