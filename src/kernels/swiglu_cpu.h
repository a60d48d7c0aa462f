// CPU reference of the SwiGLU gate y = SiLU(a) * b, SiLU(a) = a * sigmoid(a), elementwise over
// n = N * hidden values (a = h W1^T, b = h W3^T, all [N, hidden]).
#pragma once
#include <cstddef>

namespace gfwa::cpu {

// Overwrites y; y may alias a or b.
template <class F>
void swiglu_forward(F* y, const F* a, const F* b, size_t n);

// da += dy * b * SiLU'(a);  db += dy * SiLU(a).
template <class F>
void swiglu_backward(F* da, F* db, const F* dy, const F* a, const F* b, size_t n);

}  // namespace gfwa::cpu
