// The `cuda` backend: the whole training step on one GPU, in parity with the cpu backend.
// bf16 parameters (a copy in a 256-byte-aligned layout), activations and activation gradients;
// fp32 master weights, parameter gradients (accumulated directly by the GEMM epilogues) and AdamW
// moments (or Muon momentum), all in ParamLayout order, so checkpoints move between backends unchanged.
// Device memory is one arena planned at construction (the plan is logged); construction throws
// std::runtime_error naming the required size when it does not fit.
// Declared in every build; defined only when built with CUDA (GFWA_WITH_CUDA).
#pragma once
#include <memory>

#include "model/backend.h"
#include "model/model_config.h"
#include "model/recompute.h"

namespace gfwa {

// ZeRO-1 shape, fixed at construction because it sizes the optimizer buffers: zero1_world 0 keeps
// full AdamW moments; otherwise this rank keeps moments for its shard of plan_shards(total, world).
struct CudaDataParallel {
  int zero1_rank = 0;
  int zero1_world = 0;
};

// Buffers are sized for micro-batches up to max_B x max_T (forward_backward with B <= max_B,
// T <= max_T); with `muon`, also for Muon's Newton-Schulz (muon_update needs it); `recompute` sets
// which activations each layer keeps for its backward (model/recompute.h). Throws when no CUDA
// device is usable or the model does not fit in its memory.
std::unique_ptr<Backend> make_cuda_backend(const ModelConfig& cfg, int max_B, int max_T,
                                           const CudaDataParallel& dp = {}, bool muon = false,
                                           Recompute recompute = Recompute::none);

}  // namespace gfwa
