#include "dist/group.h"

#include "dist/dist_error.h"

#ifdef GFWA_WITH_CUDA
#include <cuda_runtime.h>

#include "dist/nccl_comm.h"
#endif

namespace gfwa::dist {

bool any_rank(Group& g, bool mine) {
  double v = mine ? 1.0 : 0.0;
  g.sum(&v, 1);
  return v > 0.5;
}

bool all_ranks(Group& g, bool mine) {
  double v = mine ? 1.0 : 0.0;
  g.sum(&v, 1);
  return v > double(g.world()) - 0.5;
}

bool wants_data_parallel(const DistEnv& env) {
  return env.world > 1 || (!env.launcher.empty() && env.launcher != "single");
}

#ifdef GFWA_WITH_CUDA
namespace {

// Host sums run on a stream of their own, after the backend's collectives of the step.
class NcclGroup final : public Group {
 public:
  NcclGroup(const DistEnv& env, const DistributedConfig& cfg) : comm_(init_nccl(env, cfg)) {
    if (cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking) != cudaSuccess)
      throw DistError("rank " + std::to_string(env.rank) + ": cannot create a CUDA stream for host reductions");
  }
  ~NcclGroup() override {
    comm_.reset();
    if (stream_) cudaStreamDestroy(stream_);
  }
  int rank() const override { return comm_->rank(); }
  int world() const override { return comm_->world(); }
  void sum(double* values, int n) override { comm_->all_reduce_host(values, n, ReduceOp::sum, stream_); }
  Collectives* collectives() override { return comm_.get(); }

 private:
  std::unique_ptr<NcclComm> comm_;
  cudaStream_t stream_ = nullptr;
};

}  // namespace

std::unique_ptr<Group> join_group(const DistEnv& env, const DistributedConfig& cfg) {
  return std::make_unique<NcclGroup>(env, cfg);
}
#else
std::unique_ptr<Group> join_group(const DistEnv& env, const DistributedConfig&) {
  throw DistError("rank " + std::to_string(env.rank) + ": data-parallel training (" + env.launcher + ", " +
                  std::to_string(env.world) + " processes) needs a build with CUDA and NCCL");
}
#endif

}  // namespace gfwa::dist
