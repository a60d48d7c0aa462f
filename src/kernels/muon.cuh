// Muon on the GPU (twin of muon_cpu.h; muon_step.h has the math and the constants): the momentum
// step over chunks of the flat fp32 buffers, the Newton-Schulz orthogonalisation of one matrix in
// bf16 through cuBLASLt (Matmul: bf16 operands, fp32 accumulation, bf16 results), and the update
// of the fp32 master weights and their bf16 copy.
#pragma once
#include <cstddef>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "kernels/adamw.cuh"
#include "kernels/matmul.cuh"
#include "kernels/muon_step.h"

namespace gfwa::cuda {

// Over the chunks (their fp32 start and length; the bf16 start and decay flag are not used):
// g = grad * grad_scale;  buf = momentum * buf + g;  grad = nesterov ? g + momentum * buf : buf
// (the update direction replaces the gradient in place).
void muon_momentum(cudaStream_t s, const AdamWChunk* chunks, int n_chunks, const MuonStep& h, float* grad,
                   float* buf);

// Device scratch of newton_schulz, planned by the caller for its largest matrix (max_numel
// elements) and its largest smaller side (max_side).
struct NsScratch {
  __nv_bfloat16 *x, *y;        // max_numel each: the iterate and the next one
  __nv_bfloat16 *gram, *poly;  // max_side^2 each: A = X X^T and b A + c A A
  float* partial;              // kGradNormBlocks: the Frobenius norm's partial sums
  double* sumsq;               // 1
};

// Newton-Schulz of the row-major rows x cols fp32 matrix u, `steps` iterations: returns the bf16
// result (w.x or w.y), row-major like u. A tall matrix is iterated as its transpose (the buffer
// read column-major), so the Gram matrix is always the smaller one; no transpose is copied.
const __nv_bfloat16* newton_schulz(cudaStream_t s, Matmul& mm, const float* u, int rows, int cols, int steps,
                                   const NsScratch& w);

// For k in [lo, hi) of one rows x cols matrix: master[k] -= lr * weight_decay * master[k], then
// master[k] -= lr * muon_shape_scale(rows, cols) * o[k]; params[k] = bf16(master[k]).
void muon_apply(cudaStream_t s, const __nv_bfloat16* o, float* master, __nv_bfloat16* params, size_t lo, size_t hi,
                const MuonStep& h, int rows, int cols);

}  // namespace gfwa::cuda
