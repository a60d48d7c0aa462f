// The gradient-sync part of the cuda backend (docs/distributed.md): which gradients are averaged
// across ranks and when, through the dist::Collectives the trainer hands over.
//   Without ZeRO-1: backward finishes gradients layer by layer (final_norm and the last layer
//   first, the embedding last); each bucket of plan_grad_buckets is all-reduced on a stream of its
//   own as soon as all its tensors are final, overlapping the rest of backward.
//   ZeRO-1: after backward, one reduce-scatter leaves each rank the average of its shard; the
//   optimizer updates the shard and an all-gather shares the fp32 master weights again.
// It also fixes the sizes of the flat fp32 buffers, which ZeRO-1 pads to whole shards.
#pragma once
#ifdef GFWA_WITH_CUDA
#include <cuda_runtime.h>

#include <cstddef>
#include <memory>
#include <vector>

#include "dist/collectives.h"
#include "model/grad_buckets.h"
#include "model/param_layout.h"
#include "model/zero1_shards.h"

namespace gfwa {

class GradSync {
 public:
  // zero1_world 0: no ZeRO-1 (full moments on every rank).
  GradSync(const ParamLayout& layout, int n_layers, int zero1_rank, int zero1_world);
  ~GradSync();  // waits for the collectives still running
  GradSync(const GradSync&) = delete;
  GradSync& operator=(const GradSync&) = delete;

  bool zero1() const { return zero1_; }
  bool connected() const { return comm_ != nullptr; }
  const ShardPlan& plan() const { return plan_; }
  int rank() const { return rank_; }
  // Elements of the gradient and master-weight buffers (padded to whole shards under ZeRO-1), of
  // each AdamW moment buffer (this rank's shard under ZeRO-1), and where the shard starts.
  size_t grad_elems() const { return grad_elems_; }
  size_t moment_elems() const { return moment_elems_; }
  size_t shard_offset() const { return shard_offset_; }

  // Backend::set_communicator: comm must match the ZeRO-1 shape given at construction.
  void connect(dist::Collectives* comm, size_t bucket_bytes);
  void reduce_next_backward() { reduce_next_ = true; }

  // One backward pass, on the backend's stream s, over the gradient buffer `grads`: begin (waits
  // for the previous collectives), then each group of tensors as backward finishes it, then end.
  void begin_backward();
  void final_norm_done(cudaStream_t s, float* grads) { grads_final(final_norm_tensors_, s, grads); }
  void layer_done(int layer, cudaStream_t s, float* grads) { grads_final(layer_tensors_[size_t(layer)], s, grads); }
  void end_backward(cudaStream_t s, float* grads);

  // Waits (bounded) for this step's gradient collectives; before anything reads the gradients.
  void wait();
  // The gradient range whose squared norm this rank sums: its shard once ZeRO-1 has reduced it,
  // else everything; sum_squares_across_ranks then adds the ranks' sums (identity otherwise).
  size_t norm_begin() const { return sharded() ? shard_offset_ : 0; }
  size_t norm_count(size_t total) const { return sharded() ? plan_.owned(rank_) : total; }
  double sum_squares_across_ranks(double local);
  // ZeRO-1: every rank gets every rank's shard of the padded fp32 buffer `buf` (in place), on s:
  // the master weights after the shard's update; Muon's update directions before Newton-Schulz.
  void all_gather_shards(float* buf, cudaStream_t s);
  void synchronize(cudaStream_t s);

 private:
  bool sharded() const { return zero1_ && comm_; }
  void grads_final(const std::vector<int>& tensors, cudaStream_t s, float* grads);

  const ParamLayout& layout_;
  std::vector<std::vector<int>> layer_tensors_;  // tensor indices whose gradients a layer finishes
  std::vector<int> final_norm_tensors_, embed_tensors_;
  bool zero1_ = false;
  ShardPlan plan_;
  int rank_ = 0;
  size_t shard_offset_ = 0, grad_elems_ = 0, moment_elems_ = 0;

  dist::Collectives* comm_ = nullptr;
  cudaStream_t comm_stream_ = nullptr;
  cudaEvent_t grads_ready_ = nullptr;
  std::vector<GradBucket> buckets_;
  std::unique_ptr<BucketReadiness> readiness_;
  bool reduce_next_ = false, reducing_ = false, bucketed_ = false, pending_ = false;
};

}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
