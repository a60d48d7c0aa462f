// Fused AdamW on the GPU (twin of adamw_cpu): one pass over the flat fp32 gradient, master
// weights and moments, writing the bf16 parameter copy used by the forward pass. Decoupled weight
// decay applies per tensor (ParamTensor::decay), so the flat buffer is cut into chunks that each
// lie inside one tensor and carry its decay flag. The bf16 copy may use other (aligned) tensor
// offsets than the fp32 buffers: each chunk carries both starts.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "kernels/adamw_step.h"

namespace gfwa::cuda {

struct AdamWChunk {
  uint64_t start;   // into the fp32 buffers (ParamLayout offsets)
  uint64_t bstart;  // into the bf16 copy
  uint32_t len;
  uint32_t decay;
};

// Chunks of at most kAdamWChunk elements, each inside one [offset, offset + numel) range.
constexpr uint32_t kAdamWChunk = 8192;
std::vector<AdamWChunk> adamw_chunks(const std::vector<size_t>& offsets, const std::vector<size_t>& boffsets,
                                     const std::vector<size_t>& numels, const std::vector<bool>& decay);

// One AdamW step (adamw_step.h; the math of adamw_cpu.h in fp32) over the chunks. The fp32
// buffers must be 16-byte aligned and params 8-byte aligned (std::invalid_argument otherwise):
// each chunk is read in 16-byte groups, its at most 3 + 3 elements off the 4-element grid one by one.
void adamw_step(cudaStream_t s, const AdamWChunk* chunks, int n_chunks, const AdamWStep& h, const float* grad,
                float* master, float* m, float* v, __nv_bfloat16* params);

// params[bstart + k] = bf16(master[start + k]) over all chunks (after set_params); the same
// alignment as adamw_step.
void params_from_master(cudaStream_t s, const AdamWChunk* chunks, int n_chunks, const float* master,
                        __nv_bfloat16* params);

// Deterministic sum of squares of x[0 .. n) (any float pointer): partial sums in a fixed grid, then
// one block in double; the grouping depends only on n and x's address mod 16, so the same buffer
// gives the same bits on every run. `partial` holds kGradNormBlocks floats; the result lands in
// out[0] (device).
constexpr int kGradNormBlocks = 1024;
void sum_squares(cudaStream_t s, const float* x, size_t n, float* partial, double* out);

}  // namespace gfwa::cuda
