// CudaBackend: gradient norm, the AdamW and Muon steps (whole, or this rank's ZeRO-1 shard) and
// the fp32 host copies of parameters, gradients and moments (cuda_backend_impl.h).
#ifdef GFWA_WITH_CUDA
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cuda_check.h"
#include "model/cuda_backend_impl.h"
#include "model/param_init.h"

namespace gfwa {

using namespace gfwa::cuda;

int64_t CudaBackend::memory_in_use() const {
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) return 0;
  return int64_t(total_b - free_b);
}

void CudaBackend::zero_grad() {
  sync_.wait();
  prof_.begin(stream_);
  CUDA_CHECK(cudaMemsetAsync(grads_, 0, sync_.grad_elems() * sizeof(float), stream_));
  prof_.mark("zero grad", stream_);
  prof_.end(false);
}

double CudaBackend::grad_norm() {
  sync_.wait();
  // ZeRO-1 (with a communicator): this rank's shard holds the averaged gradient; sum the shards'
  // squared norms across ranks.
  const size_t n = sync_.norm_count(P_);
  double ss = 0.0;
  if (n > 0) {
    prof_.begin(stream_);
    sum_squares(stream_, grads_ + sync_.norm_begin(), n, norm_partials_, norm_out_);
    prof_.mark("grad norm", stream_);
    prof_.end(false);
    CUDA_CHECK(cudaMemcpyAsync(&ss, norm_out_, sizeof(double), cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  return std::sqrt(sync_.sum_squares_across_ranks(ss));
}

void CudaBackend::adamw_update(const AdamWStep& st) {
  if (st.t < 1) throw std::invalid_argument("cuda backend adamw_update: step t must be >= 1");
  sync_.wait();
  prof_.begin(stream_);
  if (!sync_.zero1()) {
    adamw_step(stream_, chunks_dev_, int(pl_.chunks().size()), st, grads_, master_, adam_m_, adam_v_, params_);
    prof_.mark("adamw", stream_);
    prof_.end(false);
    return;
  }
  if (!sync_.connected()) throw std::logic_error("cuda backend adamw_update: ZeRO-1 needs set_communicator first");
  // Update the shard, then share it (share_master).
  const size_t off = sync_.shard_offset();
  adamw_step(stream_, shard_chunks_dev_, int(shard_chunks_.size()), st, grads_ + off, master_ + off, adam_m_, adam_v_,
             params_);
  prof_.mark("adamw (shard)", stream_);
  share_master();
  prof_.end(false);
}

void CudaBackend::share_master() {
  sync_.all_gather_shards(master_, stream_);
  prof_.mark("all-gather master", stream_);
  params_from_master(stream_, chunks_dev_, int(pl_.chunks().size()), master_, params_);
  prof_.mark("bf16 params", stream_);
  sync_.synchronize(stream_);
}

// AdamW on the other tensors and Muon's momentum on the hidden matrices (this rank's shard under
// ZeRO-1, whose update directions are then all-gathered in place of the gradients), then
// Newton-Schulz of each matrix this rank updates, whole, and the update of its part of it.
// Under ZeRO-1 a matrix that straddles two shards is orthogonalised by both ranks, from the same
// gathered values, so both apply the same result: sharding by element stays exact for Muon.
void CudaBackend::muon_update(const MuonStep& mu, const AdamWStep& st) {
  if (st.t < 1) throw std::invalid_argument("cuda backend muon_update: step t must be >= 1");
  if (!muon_) throw std::logic_error("cuda backend muon_update: the backend was built without Muon (BackendSpec::muon)");
  if (mu.ns_steps < 1) throw std::invalid_argument("cuda backend muon_update: ns_steps must be >= 1");
  sync_.wait();
  if (sync_.zero1() && !sync_.connected())
    throw std::logic_error("cuda backend muon_update: ZeRO-1 needs set_communicator first");
  prof_.begin(stream_);
  const size_t off = sync_.zero1() ? sync_.shard_offset() : 0;
  adamw_step(stream_, muon_adamw_dev_, int(muon_adamw_chunks_.size()), st, grads_ + off, master_ + off, adam_m_,
             adam_v_, params_);
  muon_momentum(stream_, muon_momentum_dev_, int(muon_momentum_chunks_.size()), mu, grads_ + off, adam_m_);
  prof_.mark("adamw + muon momentum", stream_);
  if (sync_.zero1()) {
    sync_.all_gather_shards(grads_, stream_);
    prof_.mark("all-gather muon directions", stream_);
  }
  for (const ShardPiece& pc : muon_pieces_) {
    const ParamTensor& t = pl_.layout().tensors()[size_t(pc.tensor)];
    const int rows = t.shape[0], cols = t.shape[1];
    const bf16* o = newton_schulz(stream_, *mm_, grads_ + t.offset, rows, cols, mu.ns_steps, ns_);
    muon_apply(stream_, o, master_ + t.offset, params_ + pl_.bf16_offset(pc.tensor), pc.begin - t.offset,
               pc.end - t.offset, mu, rows, cols);
  }
  prof_.mark("newton-schulz + muon update", stream_);
  if (sync_.zero1()) share_master();
  prof_.end(false);
}

void CudaBackend::download(const float* src, std::vector<float>& out) {
  out.resize(P_);
  CUDA_CHECK(cudaMemcpyAsync(out.data(), src, P_ * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::upload(const std::vector<float>& in, float* dst, const char* what) {
  if (in.size() != P_)
    throw std::invalid_argument(std::string("cuda backend ") + what + ": got " + std::to_string(in.size()) +
                                " values, the layout has " + std::to_string(P_));
  CUDA_CHECK(cudaMemcpyAsync(dst, in.data(), P_ * sizeof(float), cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::init_params(uint64_t seed) {
  std::vector<float> p(P_);
  init_parameters(cfg_, pl_.layout(), seed, p.data());
  set_params(p);
}

void CudaBackend::get_params(std::vector<float>& out) { download(master_, out); }

void CudaBackend::set_params(const std::vector<float>& in) {
  upload(in, master_, "set_params");
  params_from_master(stream_, chunks_dev_, int(pl_.chunks().size()), master_, params_);
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::get_grads(std::vector<float>& out) {
  sync_.wait();
  download(grads_, out);
}

void CudaBackend::get_adam_state(std::vector<float>& m, std::vector<float>& v) {
  if (!sync_.zero1()) {
    download(adam_m_, m);
    download(adam_v_, v);
    return;
  }
  // ZeRO-1: full-length vectors holding this rank's shard, zeros elsewhere.
  const size_t b = sync_.plan().begin(sync_.rank()), n = sync_.plan().owned(sync_.rank());
  m.assign(P_, 0.0f);
  v.assign(P_, 0.0f);
  CUDA_CHECK(cudaMemcpyAsync(m.data() + b, adam_m_, n * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaMemcpyAsync(v.data() + b, adam_v_, n * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::set_adam_state(const std::vector<float>& m, const std::vector<float>& v) {
  if (m.size() != P_ || v.size() != P_)
    throw std::invalid_argument("cuda backend set_adam_state: got " + std::to_string(m.size()) + " / " +
                                std::to_string(v.size()) + " values, the layout has " + std::to_string(P_));
  if (!sync_.zero1()) {
    upload(m, adam_m_, "set_adam_state");
    upload(v, adam_v_, "set_adam_state");
    return;
  }
  // ZeRO-1: only this rank's shard is kept.
  const size_t b = sync_.plan().begin(sync_.rank()), n = sync_.plan().owned(sync_.rank());
  CUDA_CHECK(cudaMemcpyAsync(adam_m_, m.data() + b, n * sizeof(float), cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaMemcpyAsync(adam_v_, v.data() + b, n * sizeof(float), cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
