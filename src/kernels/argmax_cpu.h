// CPU reference of the row arg max (twin of argmax.cuh): the most likely id of each position, for
// per-position accuracy. Ties go to the lowest id, as in greedy sampling (train/evaluate.h).
#pragma once
#include <cstdint>

namespace gfwa::cpu {

// logits [N, V]; out[n] = the lowest j with logits[n, j] == max_k logits[n, k].
template <class F>
void argmax_rows(const F* logits, int N, int V, int32_t* out);

}  // namespace gfwa::cpu
