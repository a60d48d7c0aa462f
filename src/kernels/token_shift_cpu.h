// CPU reference of the data-dependent token shift on K or V (docs/gatedfwa.md section 3), per head h:
//   a[t,h] = sigmoid(x_t . ws[h,:]),   y_t = a_t * k_t + (1 - a_t) * k_{t-1},   k_{-1} = 0
// x is the normalised block input h (the one that feeds Wk/Wv); k is the projected key or value.
// Layouts:
//   x, dx  : [B, T, C]
//   ws, dws: [H, C]      one gate vector per head (PyTorch [out, in])
//   k, y   : [B, T, H, D]  (dk, dy likewise)
//   a      : [B, T, H]   gates saved by the forward
#pragma once

namespace gfwa::cpu {

// Overwrites y and a; y must not alias k.
template <class F>
void token_shift_forward(F* y, F* a, const F* k, const F* x, const F* ws, int B, int T, int H, int D, int C);

// dk += dL/dk, dx += dL/dx, dws += dL/dws (fixed-order reductions; threads own disjoint outputs).
template <class F>
void token_shift_backward(F* dk, F* dx, F* dws, const F* dy, const F* a, const F* k, const F* x, const F* ws, int B,
                          int T, int H, int D, int C);

}  // namespace gfwa::cpu
