// CPU reference of softmax + cross-entropy over the vocabulary, mean over the N = B*T rows.
//   logits, dlogits : [N, V]
//   targets         : [N] ids in [0, V) (the caller validates them)
// Row sums of exponentials and the mean are accumulated in double, in index order.
#pragma once
#include <cstdint>

namespace gfwa::cpu {

// loss[n] = -log softmax(logits[n])[targets[n]] for each of the N rows.
template <class F>
void cross_entropy_rows(const F* logits, const int32_t* targets, int N, int V, double* loss);

// Mean over rows of cross_entropy_rows.
template <class F>
double cross_entropy_forward(const F* logits, const int32_t* targets, int N, int V);

// Fused forward and backward (llm.c style; the [N, V] buffer is the largest activation, so it is
// reused): returns the mean loss and overwrites logits with
//   dlogits = (softmax(logits) - onehot(targets)) * dloss / N.
template <class F>
double cross_entropy_forward_backward(F* logits, const int32_t* targets, int N, int V, double dloss);

}  // namespace gfwa::cpu
