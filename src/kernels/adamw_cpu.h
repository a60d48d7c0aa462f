// CPU reference of the optimizer side: AdamW update of one parameter tensor and the global
// gradient norm (the clipping factor is clip_scale in adamw_step.h).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/adamw_step.h"

namespace gfwa::cpu {

// One AdamW step over n elements (decoupled weight decay, bias-corrected moments):
//   g = grad * grad_scale;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//   p -= lr * ( (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps) + (decay ? wd * p : 0) )
// Element math in double; p, m, v are overwritten, grad is only read.
template <class F>
void adamw_update(F* p, const F* grad, F* m, F* v, size_t n, const AdamWStep& h, bool decay);

// Sum of squares of n values, in double, over fixed 4096-element chunks summed in order:
// identical for every thread count.
template <class F>
double sum_squares(const F* x, size_t n);

}  // namespace gfwa::cpu
