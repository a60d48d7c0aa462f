// The cuda backend's device memory computed from the shapes alone, without a GPU or CUDA: every
// buffer CudaBackend::plan puts in its arena (cuda_backend.cpp), laid out by the same rule
// (arena_plan.h). The backend checks at construction that its arena equals this plan (a
// std::logic_error names both otherwise: keep the two in step), prints it and, before allocating
// anything, refuses a plan the device cannot hold with cuda_memory_plan_problem's message.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "model/arena_plan.h"
#include "model/model_config.h"
#include "model/param_layout.h"
#include "model/recompute.h"

namespace gfwa {

// Sizes the kernels fix (cuda_backend.cpp static_asserts them against the kernels' headers).
constexpr size_t kCudaBf16GroupAlign = 128;             // bf16 elements (256 bytes) per tensor group start
constexpr size_t kCudaAdamWChunkElems = 8192;           // kernels/adamw.cuh kAdamWChunk
constexpr size_t kCudaAdamWChunkBytes = 24;             // sizeof(cuda::AdamWChunk)
constexpr size_t kCudaGradNormBlocks = 1024;            // kernels/adamw.cuh kGradNormBlocks
constexpr size_t kCudaMaxPartialBlocks = 512;           // kernels/reduce.cu partial_blocks
constexpr size_t kCudaMatmulWorkspaceBytes = size_t(32) << 20;  // kernels/matmul.cuh Matmul::kWorkspaceBytes
constexpr size_t kCudaLossSlots = 256;                  // queued micro-batches' loss sums (CudaBackend::take_losses)
constexpr size_t kCudaLogitsChunkBytes = size_t(1) << 30;       // bf16 logits one classifier chunk may hold

// The bf16 parameter copy's layout: each tensor's element offset, every group 256-byte aligned
// with wq|wk|wv and w1|w3 contiguous (one GEMM operand each); `total` gets its length.
std::vector<size_t> cuda_bf16_offsets(const ParamLayout& layout, size_t* total);

struct CudaMemoryShape {
  ModelConfig model;
  int max_B = 1, max_T = 1;          // micro-batches up to max_B x max_T
  int zero1_rank = 0, zero1_world = 0;  // ZeRO-1 (zero1_world 0: whole optimizer state)
  bool muon = false;                    // optimizer.type muon: Muon's chunk lists and Newton-Schulz scratch
  Recompute recompute = Recompute::none;  // train.recompute: what each layer keeps for its backward
};

struct CudaMemoryPlan {
  ArenaPlan arena;
  int logits_rows = 0;            // rows of one classifier chunk
  size_t params = 0;              // fp32 parameters (ParamLayout::total)
  size_t activations_per_layer = 0;  // bytes one layer saves for backward (the largest layer)
};

CudaMemoryPlan cuda_memory_plan(const CudaMemoryShape& s);

// "" when the plan fits in free_bytes of device memory, else one line: the plan's parts and the
// keys that set them, with what would fit: the largest divisor of train.batch_size (a divisor keeps
// train.tokens_per_step valid), and a stronger train.recompute level with the batch size it fits at;
// or why nothing does.
std::string cuda_memory_plan_problem(const CudaMemoryShape& s, size_t free_bytes);

// The plan as printed at start: a header line, then one line per category.
std::vector<std::string> cuda_memory_plan_lines(const CudaMemoryShape& s, const CudaMemoryPlan& p);

}  // namespace gfwa
