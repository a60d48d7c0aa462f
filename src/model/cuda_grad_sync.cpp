#ifdef GFWA_WITH_CUDA
#include "model/cuda_grad_sync.h"

#include <stdexcept>
#include <string>

#include <spdlog/spdlog.h>

#include "kernels/cuda_check.h"

namespace gfwa {

GradSync::GradSync(const ParamLayout& layout, int n_layers, int zero1_rank, int zero1_world) : layout_(layout) {
  const size_t P = layout.total();
  grad_elems_ = moment_elems_ = P;
  if (zero1_world > 0) {
    zero1_ = true;
    rank_ = zero1_rank;
    plan_ = plan_shards(P, zero1_world);
    shard_offset_ = plan_.shard * size_t(rank_);
    grad_elems_ = plan_.padded();
    moment_elems_ = plan_.shard;
  }
  layer_tensors_.assign(size_t(n_layers), {});
  for (size_t i = 0; i < layout.tensors().size(); ++i) {
    const std::string& n = layout.tensors()[i].name;
    if (n.rfind("layers.", 0) == 0) layer_tensors_.at(std::stoul(n.substr(7))).push_back(int(i));
    else if (n == "final_norm") final_norm_tensors_.push_back(int(i));
    else embed_tensors_.push_back(int(i));  // the embedding: its gradient is final last
  }
}

GradSync::~GradSync() {
  if (comm_stream_) cudaStreamSynchronize(comm_stream_);
  if (grads_ready_) cudaEventDestroy(grads_ready_);
  if (comm_stream_) cudaStreamDestroy(comm_stream_);
}

void GradSync::connect(dist::Collectives* comm, size_t bucket_bytes) {
  if (!comm) throw std::invalid_argument("cuda backend set_communicator: no communicator");
  if (comm_) throw std::logic_error("cuda backend set_communicator: a communicator is already set");
  if (zero1_ && (comm->world() != plan_.world || comm->rank() != rank_))
    throw std::logic_error("cuda backend set_communicator: the rank or world size differs from the ZeRO-1 shape the "
                           "backend was built for (BackendSpec zero1_rank, zero1_world)");
  buckets_ = plan_grad_buckets(layout_.tensors(), bucket_bytes, sizeof(float));
  readiness_ = std::make_unique<BucketReadiness>(buckets_, layout_.tensors().size());
  CUDA_CHECK(cudaStreamCreateWithFlags(&comm_stream_, cudaStreamNonBlocking));
  CUDA_CHECK(cudaEventCreateWithFlags(&grads_ready_, cudaEventDisableTiming));
  comm_ = comm;
  if (zero1_)
    spdlog::info("ZeRO-1: rank {} of {} updates elements [{}, {}) of {} (shard {})", rank_, plan_.world,
                 plan_.begin(rank_), plan_.end(rank_), layout_.total(), plan_.shard);
  else
    spdlog::info("gradient all-reduce in {} buckets of up to {} MiB", buckets_.size(), bucket_bytes >> 20);
}

void GradSync::begin_backward() {
  wait();
  reducing_ = comm_ && reduce_next_;
  reduce_next_ = false;
  bucketed_ = reducing_ && !zero1_;
  if (bucketed_) readiness_->reset();
}

void GradSync::grads_final(const std::vector<int>& tensors, cudaStream_t s, float* grads) {
  if (!bucketed_) return;
  std::vector<int> launch;
  for (int t : tensors)
    for (int b : readiness_->mark_ready(t)) launch.push_back(b);
  if (launch.empty()) return;
  CUDA_CHECK(cudaEventRecord(grads_ready_, s));
  CUDA_CHECK(cudaStreamWaitEvent(comm_stream_, grads_ready_, 0));
  for (int b : launch) {
    const GradBucket& k = buckets_[size_t(b)];
    comm_->all_reduce(grads + k.begin, k.end - k.begin, dist::DType::f32, dist::ReduceOp::avg, comm_stream_);
  }
}

void GradSync::end_backward(cudaStream_t s, float* grads) {
  if (bucketed_) {
    grads_final(embed_tensors_, s, grads);
    if (!readiness_->all_released()) throw std::logic_error("cuda backend: a gradient bucket was never launched");
  } else if (reducing_) {  // ZeRO-1: rank r receives the average of its shard, after the whole backward
    CUDA_CHECK(cudaEventRecord(grads_ready_, s));
    CUDA_CHECK(cudaStreamWaitEvent(comm_stream_, grads_ready_, 0));
    comm_->reduce_scatter(grads, grads + shard_offset_, plan_.shard, dist::DType::f32, dist::ReduceOp::avg,
                          comm_stream_);
  }
  pending_ = reducing_;
}

void GradSync::wait() {
  if (!pending_) return;
  pending_ = false;
  comm_->synchronize(comm_stream_);
}

double GradSync::sum_squares_across_ranks(double local) {
  if (sharded()) comm_->all_reduce_host(&local, 1, dist::ReduceOp::sum, comm_stream_);
  return local;
}

void GradSync::all_gather_shards(float* buf, cudaStream_t s) {
  comm_->all_gather(buf + shard_offset_, buf, plan_.shard, dist::DType::f32, s);
}

void GradSync::synchronize(cudaStream_t s) { comm_->synchronize(s); }

}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
