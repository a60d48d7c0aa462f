// Classifier head on the GPU (twin of cross_entropy_cpu): softmax, cross-entropy and the logit
// gradient in one pass over a chunk of bf16 logits. The backend runs it chunk by chunk of rows, so
// logits exist only for one chunk at a time (and never in fp32).
#pragma once
#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace gfwa::cuda {

// logits: [R, V] bf16 (row stride V). loss[r] = logsumexp(logits[r]) - logits[r, targets[r]].
// When write_grad, logits[r, j] is overwritten by (softmax_j - [j == target]) * dscale.
void softmax_xent(cudaStream_t s, __nv_bfloat16* logits, const int32_t* targets, float* loss, int R, int V,
                  float dscale, bool write_grad);

// out[0] = sum of x[0 .. n), in a fixed order (one block).
void sum_deterministic(cudaStream_t s, const float* x, int n, float* out);

}  // namespace gfwa::cuda
