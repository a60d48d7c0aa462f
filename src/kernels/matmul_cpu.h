// CPU reference of the linear layer y = x W^T + b (PyTorch layout), forward and backward.
// Every projection of the decoder (q/k/v/o, gate, SwiGLU, tied classifier) goes through here.
//
// Layouts (row-major):
//   x, dx : [N, C]    N = B*T rows of C input features
//   W, dW : [OC, C]   one row per output feature
//   b, db : [OC]      optional (null = no bias)
//   y, dy : [N, OC]
// Summation order: every output element is its initial value plus the terms of the dot product in
// increasing index order (blocked over 256 indices), independent of the thread count, so results
// are bitwise deterministic for any OpenMP team size. fp32 on CPUs with AVX2+FMA runs a fused
// multiply-add kernel (chosen at run time): same order, different last-bit rounding than the
// portable kernel, so bits match across runs and thread counts of one machine type.
#pragma once

namespace gfwa::cpu {

// y = x W^T (+ b). Overwrites y.
template <class F>
void matmul_forward(F* y, const F* x, const F* W, const F* b, int N, int C, int OC);

// dx += dy W;  dW += dy^T x;  db += column sums of dy. Any of dx, dW, db may be null (skipped).
template <class F>
void matmul_backward(F* dx, F* dW, F* db, const F* dy, const F* x, const F* W, int N, int C, int OC);

}  // namespace gfwa::cpu
