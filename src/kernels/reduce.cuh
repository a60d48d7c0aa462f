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

// out[n, c0 + c] = bias[c] for c < C, and 0 in the row's other columns (rows of ld >= c0 + C floats): the
// bias term of a projection whose GEMM then accumulates with beta = 1 (its columns c0.., of a packed output).
void broadcast_rows(cudaStream_t s, const float* bias, int N, int C, int c0, int ld, float* out);
// out[r, c] = bf16(in[r, c]) for r < rows, c < cols; rows of in_ld and out_ld elements (a GEMM operand's columns).
void f32_to_bf16_rows(cudaStream_t s, const float* in, int in_ld, __nv_bfloat16* out, int out_ld, int rows, int cols);
// out[i] += in[i]  (a weight gradient formed apart, added to the accumulating fp32 gradient)
void add_f32(cudaStream_t s, const float* in, float* out, size_t n);
void bf16_to_f32(cudaStream_t s, const __nv_bfloat16* in, float* out, size_t n);

}  // namespace gfwa::cuda
