// CPU reference of NSA's branch gates (docs/nsa.md, "The layer"). The layer's gate projection gives per token
// pre [N, 3H], column 3h + b for query head h and branch b (0 compressed, 1 selected, 2 sliding): the (head,
// branch) order of the NSA layers of flash-linear-attention (g_proj, then a view as [..., H, 3]). The gates
// are their sigmoids, laid out for the NSA core as g [3, N, H]: g_cmp = g, g_sel = g + N*H, g_win = g + 2*N*H.
// CUDA twin: nsa_gates.cuh.
#pragma once

namespace gfwa::cpu {

// g = sigmoid(pre), transposed as above; overwritten.
template <class F>
void nsa_gates_forward(const F* pre, int N, int H, F* g);

// dpre[n, 3h + b] = dg_b[n, h] * g_b * (1 - g_b), with dg laid out as g; overwritten.
template <class F>
void nsa_gates_backward(const F* g, const F* dg, int N, int H, F* dpre);

}  // namespace gfwa::cpu
