// Deterministic column reductions and small conversions. Weight gradients of norms and biases are
// sums over all tokens; they are formed as per-block partial sums in a fixed row order, then summed
// over the blocks in a fixed order: no float atomics, the same bits on every run.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace gfwa::cuda {

// Number of row blocks used for partial sums of N rows (fixed for a given N).
int partial_blocks(int N);

// partial[g, c] = sum of in[n, c] over the rows of block g (rows split as in partial_blocks).
void colsum_partials(cudaStream_t s, const float* in, int N, int C, float* partial);
// dst[c] (+)= sum_g partial[g, c]
void finish_partials(cudaStream_t s, const float* partial, int G, int C, float* dst, bool accumulate);

// out[n, h] = bias[h]  (the bias term of a projection whose GEMM then accumulates with beta = 1)
void broadcast_rows(cudaStream_t s, const float* bias, int N, int C, float* out);
void f32_to_bf16(cudaStream_t s, const float* in, __nv_bfloat16* out, size_t n);
void bf16_to_f32(cudaStream_t s, const __nv_bfloat16* in, float* out, size_t n);

}  // namespace gfwa::cuda
