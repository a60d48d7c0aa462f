// CudaBackend's buffers: every arena region in plan order (cuda_memory_plan.cpp mirrors it without CUDA),
// what train.recompute shares between layers, and Muon's chunk lists and scratch sizes.
#ifdef GFWA_WITH_CUDA
#include <algorithm>

#include "kernels/adamw.cuh"
#include "kernels/reduce.cuh"
#include "model/cuda_backend_impl.h"
#include "model/cuda_memory_plan.h"

namespace gfwa {

using namespace gfwa::cuda;

void CudaBackend::plan(DeviceArena& a) {
  const size_t N = size_t(max_B_) * max_T_, d = d_, H = H_, F = F_, ld = qkv_ld_;
  a.take(params_, pl_.bf16_total(), ArenaCategory::params);
  a.take(master_, sync_.grad_elems(), ArenaCategory::params);
  a.take(grads_, sync_.grad_elems(), ArenaCategory::grads);
  a.take(adam_m_, sync_.moment_elems(), ArenaCategory::optimizer);
  a.take(adam_v_, sync_.moment_elems(), ArenaCategory::optimizer);
  a.take(chunks_dev_, pl_.chunks().size(), ArenaCategory::optimizer);
  a.take(shard_chunks_dev_, shard_chunks_.size(), ArenaCategory::optimizer);
  a.take(muon_adamw_dev_, muon_adamw_chunks_.size(), ArenaCategory::optimizer);
  a.take(muon_momentum_dev_, muon_momentum_chunks_.size(), ArenaCategory::optimizer);
  a.take(ns_.x, ns_max_numel_, ArenaCategory::optimizer);
  a.take(ns_.y, ns_max_numel_, ArenaCategory::optimizer);
  a.take(ns_.gram, ns_max_side_ * ns_max_side_, ArenaCategory::optimizer);
  a.take(ns_.poly, ns_max_side_ * ns_max_side_, ArenaCategory::optimizer);
  a.take(ns_.partial, muon_ ? size_t(kGradNormBlocks) : 0, ArenaCategory::optimizer);
  a.take(ns_.sumsq, muon_ ? 1 : 0, ArenaCategory::optimizer);
  // A layer's fp32 tensors: row statistics, then as the layer's mode needs: log-sum-exp (the attention
  // kernels'), the skinny projections' outputs (`skinny` columns a row), GatedFWA's lam, and the NSA
  // layer's branch gates and core's saved tensors.
  auto fp32_acts = [&](LayerActs& A, ArenaCategory c, bool has_lse, size_t skinny, bool has_gates, bool has_nsa) {
    a.take(A.rstd1, N, c);
    a.take(A.rstdq, N, c);
    a.take(A.rstdk, N, c);
    a.take(A.rstd2, N, c);
    if (has_lse) a.take(A.lse, N * H, c);
    a.take(A.skinny, N * skinny, c);
    if (has_gates) a.take(A.lam, N * H, c);
    if (has_nsa) {
      a.take(A.nsa_gates, 3 * N * H, c);
      a.take(A.nsa_saved, nsa_saved_bytes_, c);
    }
  };
  // Per layer what train.recompute keeps (none: all; selective: all but the glue h1 qkvr h2 g; full: x).
  const bool keep_glue = recompute_ == Recompute::none, keep_layer = recompute_ != Recompute::full;
  bool any_attention = false;  // some layer runs the attention kernels (keeps lse), not the NSA core
  acts_.assign(L_, LayerActs{});
  for (int l = 0; l < L_; ++l) {
    any_attention = any_attention || !nsa(l);
    LayerActs& A = acts_[size_t(l)];
    const ArenaCategory c = ArenaCategory::activations;
    a.take(A.x, N * d, c);
    if (!keep_layer) continue;
    if (keep_glue) a.take(A.h1, N * d, c);
    a.take(A.qkv, N * ld, c);
    if (keep_glue) a.take(A.qkvr, N * ld, c);
    a.take(A.o, N * d, c);
    a.take(A.xm, N * d, c);
    if (keep_glue) a.take(A.h2, N * d, c);
    a.take(A.u, N * 2 * F, c);
    if (keep_glue) a.take(A.g, N * F, c);
    fp32_acts(A, c, !nsa(l), size_t(pl_.skinny(l).cols.width), gated(l), nsa(l));
  }
  a.take(x_final_, N * d, ArenaCategory::activations);
  a.take(hf_, N * d, ArenaCategory::activations);
  a.take(rstdf_, N, ArenaCategory::activations);
  // One set for what the layers do not keep (share_recomputed points them at it).
  rec_ = LayerActs{};
  if (recompute_ != Recompute::none) {
    const ArenaCategory c = ArenaCategory::recompute;
    a.take(rec_.h1, N * d, c);
    if (!keep_layer) a.take(rec_.qkv, N * ld, c);
    a.take(rec_.qkvr, N * ld, c);
    if (!keep_layer) {
      a.take(rec_.o, N * d, c);
      a.take(rec_.xm, N * d, c);
      a.take(rec_.h2, N * d, c);
      a.take(rec_.u, N * 2 * F, c);
      fp32_acts(rec_, c, any_attention, size_t(max_skinny_width(cfg_)), cfg_.any_gated(), cfg_.any_nsa());
    }
  }
  const ArenaCategory w = ArenaCategory::workspace;
  a.take(g_, N * F, w);
  a.take(dres_, N * d, w);
  a.take(dh_, N * d, w);
  a.take(do_, N * d, w);
  a.take(dqkv_, N * ld, w);
  dqkv2_ = nullptr;
  if (shift_) a.take(dqkv2_, N * ld, w);
  a.take(logits_, size_t(logits_rows_) * V_, w);
  a.take(last_logits_, size_t(V_), w);
  a.take(loss_rows_, N, w);
  a.take(argmax_rows_, N, w);
  a.take(loss_sum_, kCudaLossSlots, w);
  a.take(partials_, size_t(partial_blocks(int(N))) * 2 * d, w);
  a.take(norm_partials_, kGradNormBlocks, w);
  a.take(norm_out_, 1, w);
  a.take(dlam_, N * H, w);
  a.take(dhg_, N * H, w);
  a.take(dpre_, N * H, w);
  const size_t skinny = size_t(max_skinny_width(cfg_));
  a.take(dskinny_, N * skinny, w);
  a.take(skinny_dw_, skinny * d, w);
  a.take(inputs_, N, w);
  a.take(targets_, N, w);
  a.take(tok_token_, N, w);
  a.take(tok_start_, N + 1, w);
  a.take(tok_pos_, N, w);
  a.take(rope_, size_t(max_T_) * (D_ / 2), w);
  a.take(matmul_ws_, Matmul::kWorkspaceBytes, w);
  a.take(attn_ws_, (attn_ws_bytes_ + 3) / 4, w);
  if (cfg_.any_nsa()) {
    a.take(nsa_dg_, 3 * N * H, w);
    a.take(nsa_ws_, nsa_ws_bytes_, w);
  }
}

// g is the workspace's g_, which the backward overwrites (with dg) only after the w2 weight gradient
// has read g; under selective recomputation h1 and h2 share a buffer, each recomputed before its use.
void CudaBackend::share_recomputed() {
  if (recompute_ == Recompute::none) return;
  rec_.g = g_;
  if (recompute_ == Recompute::selective) rec_.h2 = rec_.h1;
  for (LayerActs& A : acts_) {
    for (bf16* LayerActs::*f : {&LayerActs::h1, &LayerActs::qkv, &LayerActs::qkvr, &LayerActs::o, &LayerActs::xm,
                                &LayerActs::h2, &LayerActs::u, &LayerActs::g})
      if (!(A.*f)) A.*f = rec_.*f;
    for (float* LayerActs::*f : {&LayerActs::rstd1, &LayerActs::rstdq, &LayerActs::rstdk, &LayerActs::rstd2,
                                 &LayerActs::skinny, &LayerActs::lam, &LayerActs::lse, &LayerActs::nsa_gates})
      if (!(A.*f)) A.*f = rec_.*f;
    if (!A.nsa_saved) A.nsa_saved = rec_.nsa_saved;
  }
}

void CudaBackend::plan_muon() {
  using Tensors = DeviceParamLayout::Tensors;
  const auto& ts = pl_.layout().tensors();
  if (sync_.zero1()) {
    muon_adamw_chunks_ = pl_.shard_chunks(sync_.plan(), sync_.rank(), Tensors::not_hidden);
    muon_momentum_chunks_ = pl_.shard_chunks(sync_.plan(), sync_.rank(), Tensors::hidden);
    for (const ShardPiece& pc : shard_pieces(ts, sync_.plan(), sync_.rank()))
      if (ts[size_t(pc.tensor)].hidden) muon_pieces_.push_back(pc);
  } else {
    muon_adamw_chunks_ = pl_.chunks(Tensors::not_hidden);
    muon_momentum_chunks_ = pl_.chunks(Tensors::hidden);
    for (size_t i = 0; i < ts.size(); ++i)
      if (ts[i].hidden) muon_pieces_.push_back({int(i), ts[i].offset, ts[i].offset + ts[i].numel});
  }
  for (const ShardPiece& pc : muon_pieces_) {
    const ParamTensor& t = ts[size_t(pc.tensor)];
    ns_max_numel_ = std::max(ns_max_numel_, t.numel);
    ns_max_side_ = std::max(ns_max_side_, size_t(std::min(t.shape[0], t.shape[1])));
  }
}

}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
