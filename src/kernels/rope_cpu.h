// CPU reference of rotary position embedding, half-split convention (GPT-NeoX / Llama): within each
// head of D (even) features, feature i < D/2 pairs with feature i + D/2 and the pair rotates by
// angle t * theta^(-2i/D), t = position in the sequence (0-based):
//   y[i]       = x[i] cos - x[i+D/2] sin
//   y[i+D/2]   = x[i] sin + x[i+D/2] cos
// Layout: x, y, dx, dy : [B, T, H, D]. Angles are computed in double.
#pragma once

namespace gfwa::cpu {

// Overwrites y; y may alias x.
template <class F>
void rope_forward(F* y, const F* x, int B, int T, int H, int D, double theta);

// One token per row at an explicit position (the decode step: rows of different sequences, any
// position, millions included): x, y [N, H, D], pos [N]. Same angles as rope_forward at t = pos.
template <class F>
void rope_forward_at(F* y, const F* x, const long long* pos, int N, int H, int D, double theta);

// Overwrites dx with the inverse rotation of dy; dx may alias dy.
template <class F>
void rope_backward(F* dx, const F* dy, int B, int T, int H, int D, double theta);

}  // namespace gfwa::cpu
