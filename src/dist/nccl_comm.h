// One NCCL communicator over all ranks, for the data-parallel trainer: gradient all-reduce (or
// reduce-scatter + all-gather with ZeRO-1) on a stream the caller chooses, and small host
// reductions for losses and metrics. The communicator is non-blocking, so no wait is unbounded:
// init, every call and synchronize() give up after distributed.timeout_s, abort the communicator
// (ncclCommAbort) and throw a DistError naming this rank.
#pragma once
#ifdef GFWA_WITH_CUDA
#include <cuda_runtime.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "dist/collectives.h"
#include "dist/dist_config.h"
#include "dist/env.h"
#include "dist/nccl_library.h"

namespace gfwa::dist {

class NcclComm final : public Collectives {
 public:
  // A fresh NCCL unique id (128 bytes), made on rank 0 and shared with exchange_id().
  static std::vector<uint8_t> new_unique_id();

  // Joins the communicator on the current CUDA device: select it first (cuda_device_for).
  NcclComm(const DistEnv& env, const std::vector<uint8_t>& id, std::chrono::milliseconds timeout);
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  int rank() const override { return rank_; }
  int world() const override { return world_; }

  // The Collectives (dist/collectives.h); a failure or a timeout also aborts the communicator.
  void all_reduce(void* buf, size_t count, DType t, ReduceOp op, cudaStream_t stream) override;
  void reduce_scatter(const void* send, void* recv, size_t recv_count, DType t, ReduceOp op,
                      cudaStream_t stream) override;
  void all_gather(const void* send, void* recv, size_t send_count, DType t, cudaStream_t stream) override;
  void synchronize(cudaStream_t stream) override;
  void all_reduce_host(double* values, int n, ReduceOp op, cudaStream_t stream) override;

  // Tears the communicator down at once; pending collectives on every stream fail. Idempotent.
  void abort();

 private:
  void check(ncclResult_t r, const char* what);
  ncclResult_t wait_ready(const char* what);
  [[noreturn]] void fail(const std::string& message);

  const NcclApi& api_;
  ncclComm_t comm_ = nullptr;
  int rank_ = 0, world_ = 1;
  std::chrono::milliseconds timeout_;
  double* scratch_ = nullptr;  // device buffer for all_reduce_host
  int scratch_n_ = 0;
};

// Whole bootstrap of one rank: selects the GPU (cuda_device_for), rank 0 makes the id,
// exchange_id() shares it, every rank joins.
std::unique_ptr<NcclComm> init_nccl(const DistEnv& env, const DistributedConfig& cfg);

}  // namespace gfwa::dist
#endif
