// CPU reference of the token embedding (tied with the classifier: E is also the output matrix).
//   tokens : [N] ids in [0, V) (the caller validates them)
//   E, dE  : [V, C]
//   y, dy  : [N, C]
#pragma once
#include <cstdint>

namespace gfwa::cpu {

// y[n] = E[tokens[n]]. Overwrites y.
template <class F>
void embedding_forward(F* y, const int32_t* tokens, const F* E, int N, int C);

// dE[tokens[n]] += dy[n], in row order n = 0..N-1 (threads own column blocks: deterministic).
template <class F>
void embedding_backward(F* dE, const int32_t* tokens, const F* dy, int N, int C);

}  // namespace gfwa::cpu
