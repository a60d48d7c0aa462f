// CudaBackend: construction and the llm.c-style orchestration of the forward and
// backward passes over the kernels of src/kernels (cuda_backend.h: precision and memory model;
// docs/cuda_backend.md: the plan; cuda_backend_impl.h: the parts; cuda_backend_plan.cpp: its buffers).
#ifdef GFWA_WITH_CUDA
#include <algorithm>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "kernels/argmax.cuh"
#include "kernels/cross_entropy.cuh"
#include "kernels/cuda_check.h"
#include "kernels/embedding.cuh"
#include "kernels/gate.h"
#include "kernels/gate_cpu.h"
#include "kernels/gemm_swiglu.cuh"
#include "kernels/nsa_gates.cuh"
#include "kernels/qk_norm_rope.cuh"
#include "kernels/reduce.cuh"
#include "kernels/rmsnorm.cuh"
#include "kernels/swiglu.cuh"
#include "model/cuda_backend_impl.h"
#include "model/cuda_decoder.h"
#include "model/cuda_memory_plan.h"

namespace gfwa {

using namespace gfwa::cuda;

// cuda_memory_plan.h computes this backend's plan without CUDA: its copies of the kernels' sizes.
static_assert(kCudaAdamWChunkElems == kAdamWChunk && kCudaAdamWChunkBytes == sizeof(AdamWChunk) &&
              kCudaGradNormBlocks == size_t(kGradNormBlocks) && kCudaMatmulWorkspaceBytes == Matmul::kWorkspaceBytes,
              "cuda_memory_plan.h is out of step with the kernels");

CudaBackend::CudaBackend(const ModelConfig& cfg, int max_B, int max_T, const CudaDataParallel& dp, bool muon,
                         Recompute recompute)
    : cfg_(cfg),
      pl_(cfg),
      max_B_(max_B),
      max_T_(max_T),
      sync_(pl_.layout(), cfg.n_layers, dp.zero1_rank, dp.zero1_world) {
  if (max_B < 1 || max_T < 1)
    throw std::invalid_argument("cuda backend: max_B and max_T must be >= 1 (got " + std::to_string(max_B) + ", " +
                                std::to_string(max_T) + ")");
  int ndev = 0;
  if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0)
    throw std::runtime_error("cuda backend: no CUDA device is available");
  d_ = cfg.d_model;
  H_ = cfg.n_heads;
  D_ = cfg.head_dim();
  F_ = cfg.hidden();
  V_ = cfg.vocab_size;
  L_ = cfg.n_layers;
  Hkv_ = cfg.kv_heads();
  dkv_ = Hkv_ * D_;
  qkv_ld_ = d_ + 2 * dkv_;
  shift_ = cfg.attention.token_shift;
  recompute_ = recompute;
  for (int l = 0; l < L_; ++l) attn_.push_back(cfg.layer_attention(l));
  if (d_ != H_ * D_ || !cuda_attention_head_dim_supported(D_))
    throw std::invalid_argument("cuda backend: needs head_dim 64 or 128 (d_model " + std::to_string(d_) +
                                ", n_heads " + std::to_string(H_) + ")");
  if (d_ > kRmsnormMaxDim) throw std::invalid_argument("cuda backend: d_model > 4096 is not supported");
  if (cfg.n_kv_heads < 0 || H_ % Hkv_ != 0)
    throw std::invalid_argument("cuda backend: n_kv_heads " + std::to_string(cfg.n_kv_heads) + " must divide n_heads " +
                                std::to_string(H_));
  const std::string nsa_config = nsa_config_problem(cfg);
  if (!nsa_config.empty()) throw std::invalid_argument("cuda backend: " + nsa_config);
  if (cfg.any_nsa() && (cfg.attention.nsa.block != kNsaBlock || cfg.attention.nsa.top_k > kNsaMaxTopK))
    throw std::invalid_argument("cuda backend: model.attention.nsa.block " + std::to_string(cfg.attention.nsa.block) +
                                ", top_k " + std::to_string(cfg.attention.nsa.top_k) +
                                ": the NSA kernels take blocks of " + std::to_string(kNsaBlock) + " and top_k <= " +
                                std::to_string(kNsaMaxTopK));
  for (int l = 0; l < L_; ++l) {
    if (!nsa(l)) continue;
    // The saved tensors of any micro-batch of at most max_B * max_T tokens (forward-only calls may take
    // B > max_B) fit those of one sequence of that many; the backward sees B <= max_B, T <= max_T.
    nsa_saved_bytes_ = nsa_saved_bytes(cfg.nsa_shape(l, 1, max_B * max_T));
    nsa_ws_bytes_ = nsa_bwd_workspace_bytes(cfg.nsa_shape(l, max_B, max_T), NsaSplit{});
  }
  P_ = pl_.f32_total();
  if (sync_.zero1()) shard_chunks_ = pl_.shard_chunks(sync_.plan(), sync_.rank());
  muon_ = muon;
  if (muon_) plan_muon();
  const CudaMemoryShape shape{cfg, max_B, max_T, dp.zero1_rank, dp.zero1_world, muon, recompute};
  const CudaMemoryPlan expected = cuda_memory_plan(shape);
  logits_rows_ = expected.logits_rows;
  attn_ws_bytes_ = attention_bwd_workspace_bytes(attn_params(LayerActs{}, 0, max_B, max_T));

  plan(arena_);
  if (arena_.plan() != expected.arena)
    throw std::logic_error("cuda backend: the arena (" + std::to_string(arena_.total()) +
                           " bytes) differs from cuda_memory_plan (" + std::to_string(expected.arena.total()) +
                           " bytes): keep cuda_memory_plan.cpp in step with CudaBackend::plan");
  for (const std::string& line : cuda_memory_plan_lines(shape, expected)) spdlog::info("{}", line);
  size_t free_b = 0, device_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &device_b));
  const std::string problem = cuda_memory_plan_problem(shape, free_b);
  if (!problem.empty()) throw std::runtime_error(problem);
  arena_.allocate();
  share_recomputed();
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  mm_ = std::make_unique<Matmul>(matmul_ws_, Matmul::kWorkspaceBytes);

  CUDA_CHECK(cudaMemcpyAsync(chunks_dev_, pl_.chunks().data(), pl_.chunks().size() * sizeof(AdamWChunk),
                             cudaMemcpyHostToDevice, stream_));
  for (const auto& [dev, host] : {std::make_pair(shard_chunks_dev_, &shard_chunks_),
                                   std::make_pair(muon_adamw_dev_, &muon_adamw_chunks_),
                                   std::make_pair(muon_momentum_dev_, &muon_momentum_chunks_)})
    if (!host->empty())
      CUDA_CHECK(cudaMemcpyAsync(dev, host->data(), host->size() * sizeof(AdamWChunk), cudaMemcpyHostToDevice, stream_));
  const std::vector<float> rope = rope_table(max_T, D_, cfg.attention.rope_theta);
  CUDA_CHECK(cudaMemcpyAsync(rope_, rope.data(), rope.size() * sizeof(float), cudaMemcpyHostToDevice, stream_));
  // Padding of the bf16 copy stays zero; moments start at zero as in the cpu backend.
  CUDA_CHECK(cudaMemsetAsync(params_, 0, pl_.bf16_total() * sizeof(bf16), stream_));
  CUDA_CHECK(cudaMemsetAsync(master_, 0, sync_.grad_elems() * sizeof(float), stream_));
  CUDA_CHECK(cudaMemsetAsync(adam_m_, 0, sync_.moment_elems() * sizeof(float), stream_));
  CUDA_CHECK(cudaMemsetAsync(adam_v_, 0, sync_.moment_elems() * sizeof(float), stream_));
  CUDA_CHECK(cudaMemsetAsync(grads_, 0, sync_.grad_elems() * sizeof(float), stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

CudaBackend::~CudaBackend() {
  if (stream_) cudaStreamSynchronize(stream_);
  prof_.report();
  mm_.reset();
  if (stream_) cudaStreamDestroy(stream_);
}

void CudaBackend::check_batch(const int32_t* inputs, const int32_t* targets, int B, int T, const char* what,
                              bool forward_only) const {
  const bool fits = forward_only ? size_t(B) * size_t(T) <= size_t(max_B_) * size_t(max_T_) : B <= max_B_;
  if (B < 1 || T < 1 || !fits || T > max_T_)
    throw std::invalid_argument(std::string("cuda backend ") + what + ": batch " + std::to_string(B) + " x " +
                                std::to_string(T) + " outside the planned 1.." + std::to_string(max_B_) + " x 1.." +
                                std::to_string(max_T_) + (forward_only ? " (forward only: B*T tokens at most)" : ""));
  const size_t N = size_t(B) * T;
  for (const int32_t* ids : {inputs, targets}) {
    if (!ids) continue;
    for (size_t n = 0; n < N; ++n)
      if (ids[n] < 0 || ids[n] >= V_)
        throw std::out_of_range(std::string("cuda backend ") + what + ": token id " + std::to_string(ids[n]) +
                                " at position " + std::to_string(n) + " outside [0, " + std::to_string(V_) + ")");
  }
}

void CudaBackend::upload_tokens(const int32_t* inputs, const int32_t* targets, int N) {
  CUDA_CHECK(cudaMemcpyAsync(inputs_, inputs, size_t(N) * 4, cudaMemcpyHostToDevice, stream_));
  if (targets)
    CUDA_CHECK(cudaMemcpyAsync(targets_, targets, size_t(N) * 4, cudaMemcpyHostToDevice, stream_));
}

// q and k (normed, rotated) and v are views into [N, d + 2*dkv] buffers (q | k | v); v is the rotated
// buffer's copy when token shift is on (shifted v), else the raw projection. Layer l's mode and window.
AttnParams CudaBackend::attn_params(const LayerActs& A, int l, int B, int T) const {
  const bf16* v = (shift_ ? A.qkvr : A.qkv) + d_ + dkv_;
  const LayerAttention& a = attn_[size_t(l)];
  return cuda::attn_params(A.qkvr, v, gated(l) ? A.lam : nullptr, A.o, A.lse, B, T, H_, Hkv_, D_, a.window, a.mode);
}

void CudaBackend::attn_norm(const LayerActs& A, int l, int N) {
  rmsnorm_forward(stream_, A.x, wb(pl_.bf16(l).attn_norm), A.h1, A.rstd1, N, d_, cfg_.norm_eps);
  prof_.mark("rmsnorm fwd", stream_);
}

void CudaBackend::mlp_norm(const LayerActs& A, int l, int N) {
  rmsnorm_forward(stream_, A.xm, wb(pl_.bf16(l).mlp_norm), A.h2, A.rstd2, N, d_, cfg_.norm_eps);
  prof_.mark("rmsnorm fwd", stream_);
}

void CudaBackend::qk_norm_rope(const LayerActs& A, int l, int B, int T) {
  const LayerOffsets& b = pl_.bf16(l);
  const SkinnyProjections& k = pl_.skinny(l).cols;  // token shift's prek and prev: columns of A.skinny
  const QkvShape sh{B, T, H_, D_, cfg_.norm_eps, Hkv_, k.width};
  qk_norm_rope_forward(stream_, sh, A.qkv, shift_ ? A.skinny + k.shift_k : nullptr,
                       shift_ ? A.skinny + k.shift_v : nullptr, wb(b.q_norm), wb(b.k_norm), rope_, A.qkvr, A.rstdq,
                       A.rstdk);
  prof_.mark("qk-norm+rope fwd", stream_);
}

// The NSA core over attn_params' q, k, v views: lam of the gatedfwa sliding branch, the layer's gates, o,
// and the saved tensors laid out for this micro-batch's shape in the layer's region.
NsaParams CudaBackend::nsa_params(const LayerActs& A, int l, int B, int T) const {
  const AttnParams a = attn_params(A, l, B, T);
  NsaParams p{};
  p.s = cfg_.nsa_shape(l, B, T);
  if (nsa_saved_bytes(p.s) > nsa_saved_bytes_)
    throw std::logic_error("cuda backend: the NSA saved tensors of " + std::to_string(B) + " x " + std::to_string(T) +
                           " exceed their planned region");
  p.sliding = cfg_.attention.nsa.sliding;
  p.q = a.q;
  p.k = a.k;
  p.v = a.v;
  p.q_row_stride = a.q_row_stride;
  p.k_row_stride = a.k_row_stride;
  p.v_row_stride = a.v_row_stride;
  p.lam = gated(l) ? A.lam : nullptr;
  const size_t NH = size_t(B) * T * H_;
  p.g_cmp = A.nsa_gates;
  p.g_sel = A.nsa_gates + NH;
  p.g_win = A.nsa_gates + 2 * NH;
  p.o = A.o;
  p.o_row_stride = d_;
  p.saved = nsa_saved_layout(p.s, A.nsa_saved);
  return p;
}

void CudaBackend::forward_layer(int l, int B, int T, bool output) {
  const int N = B * T, d = d_, H = H_;
  const LayerActs& A = acts_[l];
  const LayerOffsets& o = pl_.f32(l);
  const LayerOffsets& b = pl_.bf16(l);
  bf16* xout = l + 1 < L_ ? acts_[l + 1].x : x_final_;
  cudaStream_t s = stream_;
  attn_norm(A, l, N);
  mm_->linear(s, A.h1, wb(b.wqkv), A.qkv, OutType::bf16, N, d, qkv_ld_);
  prof_.mark("gemm qkv fwd", s);
  // The skinny projections: one fp32 GEMM into [N, W] rows, onto gate_b's broadcast (zeros elsewhere).
  const LayerSkinny& k = pl_.skinny(l);
  const int W = k.cols.width;
  if (W > 0) {
    if (gated(l)) broadcast_rows(s, master_ + o.gate_b, N, H, k.cols.gate_w, W, A.skinny);
    mm_->linear(s, A.h1, wb(k.bf16), A.skinny, OutType::f32, N, d, W, gated(l) ? 1.0f : 0.0f);
    prof_.mark("gate+shift proj fwd", s);
  }
  if (gated(l)) gate_forward(A.skinny + k.cols.gate_w, A.skinny + k.cols.gate_sharp, W, A.lam, B, T, H, s);
  prof_.mark("gate scan fwd", s);
  if (nsa(l)) {
    nsa_gates_forward(s, A.skinny + k.cols.nsa_gate, W, N, H, A.nsa_gates);
    prof_.mark("nsa gates fwd", s);
  }
  qk_norm_rope(A, l, B, T);
  if (nsa(l)) {
    nsa_forward(nsa_params(A, l, B, T), s);
    prof_.mark("nsa fwd", s);
  } else {
    attention_forward(attn_params(A, l, B, T), s);
    prof_.mark("attention fwd", s);
  }
  mm_->linear(s, A.o, wb(b.wo), A.xm, OutType::bf16, N, d, d, 1.0f, A.x);  // xm = x + o Wo^T
  prof_.mark("gemm wo fwd", s);
  mlp_norm(A, l, N);
  // u = h2 W13^T and g = swiglu(u): in one sm_90a kernel where the shape allows (g from the rounded u, the bits of
  // swiglu_forward, so selective recomputation's swiglu_forward reproduces them), else cuBLAS then swiglu_forward.
  if (gemm_swiglu_eligible(N, d, F_)) {
    gemm_swiglu_forward(s, A.h2, wb(b.w13), A.u, A.g, N, d, F_);
    prof_.mark("gemm w13+swiglu fwd", s);
  } else {
    mm_->linear(s, A.h2, wb(b.w13), A.u, OutType::bf16, N, d, 2 * F_);
    prof_.mark("gemm w13 fwd", s);
    swiglu_forward(s, A.u, A.g, N, F_);
    prof_.mark("swiglu fwd", s);
  }
  if (!output) return;
  mm_->linear(s, A.g, wb(b.w2), xout, OutType::bf16, N, F_, d, 1.0f, A.xm);  // x' = xm + g W2^T
  prof_.mark("gemm w2 fwd", s);
}

void CudaBackend::forward_hidden(int B, int T, const std::function<void(int)>& after_layer) {
  const int N = B * T;
  last_B_ = B;
  last_T_ = T;
  embedding_forward(stream_, inputs_, wb(pl_.embed_bf16()), L_ > 0 ? acts_[0].x : x_final_, N, d_);
  prof_.mark("embedding fwd", stream_);
  for (int l = 0; l < L_; ++l) {
    forward_layer(l, B, T);
    if (after_layer) after_layer(l);
  }
  rmsnorm_forward(stream_, x_final_, wb(pl_.final_norm_bf16()), hf_, rstdf_, N, d_, cfg_.norm_eps);
  prof_.mark("rmsnorm fwd", stream_);
}

// Loss of the N rows (summed on the device into loss_sum_); with backward, also the logits
// gradient, its product into dh_ (d hf) and the tied embedding's classifier gradient; with
// argmax (forward only), each row's arg max.
void CudaBackend::classifier(int N, float grad_scale, bool backward, int32_t* argmax, int slot) {
  for (int c0 = 0; c0 < N; c0 += logits_rows_) {
    const int r = std::min(logits_rows_, N - c0);
    const bf16* h = hf_ + size_t(c0) * d_;
    mm_->linear(stream_, h, wb(pl_.embed_bf16()), logits_, OutType::bf16, r, d_, V_);
    prof_.mark("gemm classifier fwd", stream_);
    softmax_xent(stream_, logits_, targets_ + c0, loss_rows_ + c0, r, V_, grad_scale / float(N), backward);
    prof_.mark("softmax+xent", stream_);
    if (argmax) argmax_rows(stream_, logits_, r, V_, argmax + c0);
    if (!backward) continue;
    mm_->linear_dx(stream_, logits_, wb(pl_.embed_bf16()), dh_ + size_t(c0) * d_, r, d_, V_);
    prof_.mark("gemm classifier dX", stream_);
    mm_->linear_dw(stream_, logits_, h, grads_, r, d_, V_);  // "embed" is at offset 0
    prof_.mark("gemm classifier dW", stream_);
  }
  sum_deterministic(stream_, loss_rows_, N, loss_sum_ + slot);
}

void CudaBackend::backward_layer(int l, int B, int T) {
  const int N = B * T, d = d_, H = H_, Hkv = Hkv_, F = F_, G = partial_blocks(N);
  const LayerActs& A = acts_[l];
  const LayerOffsets& o = pl_.f32(l);
  const LayerOffsets& b = pl_.bf16(l);
  cudaStream_t s = stream_;
  // Recomputation runs the forward's kernels on the inputs they had (kept, or recomputed first), so
  // its values are the forward's bits. Full: the layer's forward again from its kept input x (the
  // last layer's activations are still in the shared set, nothing ran over them since the forward).
  const bool glue = recompute_ == Recompute::selective;
  prof_.set_prefix("recompute: ");
  if (recompute_ == Recompute::full && l + 1 < L_) forward_layer(l, B, T, false);
  if (glue) {  // g into g_, which w2's dX overwrites only after w2's dW has read it; h2 into h1's buffer
    swiglu_forward(s, A.u, A.g, N, F);
    prof_.mark("swiglu fwd", s);
    mlp_norm(A, l, N);
  }
  prof_.set_prefix("");
  // MLP; dres_ holds the gradient of the layer output.
  mm_->linear_dw(s, dres_, A.g, grads_ + o.w2, N, F, d);
  prof_.mark("gemm w2 dW", s);
  // du over u: dg = dres W2 and SwiGLU's backward in one sm_90a kernel where the forward takes its fused kernel (dg
  // stays on chip; same bits as swiglu_backward of a bf16 dg), else cuBLAS's dg into g_ (read by w2's dW above
  // under recomputation, no longer needed) then swiglu_backward.
  if (gemm_swiglu_eligible(N, d, F)) {
    gemm_swiglu_backward(s, dres_, wb(b.w2), A.u, N, d, F);
    prof_.mark("gemm w2 dX+swiglu bwd", s);
  } else {
    mm_->linear_dx(s, dres_, wb(b.w2), g_, N, F, d);
    prof_.mark("gemm w2 dX", s);
    swiglu_backward(s, g_, A.u, N, F);
    prof_.mark("swiglu bwd", s);
  }
  mm_->linear_dw(s, A.u, A.h2, grads_ + o.w13, N, d, 2 * F);
  prof_.mark("gemm w13 dW", s);
  mm_->linear_dx(s, A.u, wb(b.w13), dh_, N, d, 2 * F);
  prof_.mark("gemm w13 dX", s);
  rmsnorm_backward(s, dh_, A.xm, wb(b.mlp_norm), A.rstd2, dres_, true, partials_, N, d);
  finish_partials(s, partials_, G, d, grads_ + o.mlp_norm, true);
  prof_.mark("rmsnorm bwd", s);
  // Attention.
  mm_->linear_dw(s, dres_, A.o, grads_ + o.wo, N, d, d);
  prof_.mark("gemm wo dW", s);
  mm_->linear_dx(s, dres_, wb(b.wo), do_, N, d, d);
  prof_.mark("gemm wo dX", s);
  if (glue) {
    prof_.set_prefix("recompute: ");
    qk_norm_rope(A, l, B, T);
    prof_.set_prefix("");
  }
  if (nsa(l)) {
    NsaBwdParams bp{};
    static_cast<NsaParams&>(bp) = nsa_params(A, l, B, T);
    bp.dout = do_;
    bp.dout_row_stride = d;
    bp.dq = dqkv_;  // the q | k | v parts of the fused rows, as attn_bwd_params places them
    bp.dk = dqkv_ + d;
    bp.dv = dqkv_ + d + dkv_;
    bp.dq_row_stride = bp.dk_row_stride = bp.dv_row_stride = qkv_ld_;
    bp.dlam = gated(l) ? dlam_ : nullptr;
    const size_t NH = size_t(N) * H;
    bp.dg_cmp = nsa_dg_;
    bp.dg_sel = nsa_dg_ + NH;
    bp.dg_win = nsa_dg_ + 2 * NH;
    bp.workspace = nsa_ws_;
    if (nsa_bwd_workspace_bytes(bp.s, bp.split) > nsa_ws_bytes_)
      throw std::logic_error("cuda backend: the NSA backward workspace of " + std::to_string(B) + " x " +
                             std::to_string(T) + " exceeds its planned region");
    nsa_backward(bp, s);
    prof_.mark("nsa bwd", s);
  } else {
    attention_backward(attn_bwd_params(attn_params(A, l, B, T), do_, dqkv_, gated(l) ? dlam_ : nullptr, attn_ws_),
                       s);
    prof_.mark("attention bwd", s);
  }
  const LayerSkinny& k = pl_.skinny(l);
  const int W = k.cols.width;
  const QkvShape sh{B, T, H, D_, cfg_.norm_eps, Hkv, W};
  qk_norm_rope_backward(s, sh, dqkv_, A.qkv, shift_ ? A.skinny + k.cols.shift_k : nullptr, wb(b.q_norm),
                        wb(b.k_norm), rope_, A.rstdq, A.rstdk, shift_ ? dqkv2_ : dqkv_, dqkv_ + d, partials_);
  finish_partials(s, partials_, G, d + dkv_, grads_ + o.q_norm, true);  // q_norm | k_norm are adjacent
  prof_.mark("qk-norm+rope bwd", s);
  const bf16* draw = dqkv_;
  if (shift_) {
    token_shift_backward(s, sh, A.qkv, A.skinny + k.cols.shift_k, A.skinny + k.cols.shift_v, dqkv_ + d, dqkv2_ + d,
                         dskinny_ + k.cols.shift_k, dskinny_ + k.cols.shift_v);
    draw = dqkv2_;
  }
  prof_.mark("token shift bwd", s);
  if (glue) {  // h1 (over h2, read for the last time by w13's dW)
    prof_.set_prefix("recompute: ");
    attn_norm(A, l, N);
    prof_.set_prefix("");
  }
  mm_->linear_dw(s, draw, A.h1, grads_ + o.wqkv, N, d, qkv_ld_);
  prof_.mark("gemm qkv dW", s);
  mm_->linear_dx(s, draw, wb(b.wqkv), dh_, N, d, qkv_ld_);
  prof_.mark("gemm qkv dX", s);
  // The skinny projections' output gradients into their columns of dskinny_ (token shift's above), then one
  // weight-gradient GEMM, whose rows are added to the fp32 tensors they belong to, and one input-gradient GEMM.
  if (nsa(l)) {
    nsa_gates_backward(s, A.nsa_gates, nsa_dg_, N, H, dskinny_ + k.cols.nsa_gate, W);
    prof_.mark("nsa gates bwd", s);
  }
  if (gated(l)) {
    gate_backward(A.skinny + k.cols.gate_w, A.skinny + k.cols.gate_sharp, W, dlam_, dhg_, dpre_, B, T, H, s);
    prof_.mark("gate scan bwd", s);
    colsum_partials(s, dhg_, N, H, partials_);
    finish_partials(s, partials_, G, H, grads_ + o.gate_b, true);
    f32_to_bf16_rows(s, dhg_, H, dskinny_ + k.cols.gate_w, W, N, H);
    f32_to_bf16_rows(s, dpre_, H, dskinny_ + k.cols.gate_sharp, W, N, H);
  }
  if (W > 0) {
    mm_->linear_dw(s, dskinny_, A.h1, skinny_dw_, N, d, W, 1.0f, 0.0f);
    for (const SkinnyRun& r : k.runs) add_f32(s, skinny_dw_ + size_t(r.row) * d, grads_ + r.f32, size_t(r.rows) * d);
    mm_->linear_dx(s, dskinny_, wb(k.bf16), dh_, N, d, W, 1.0f);
  }
  prof_.mark("gate+shift proj bwd", s);
  rmsnorm_backward(s, dh_, A.x, wb(b.attn_norm), A.rstd1, dres_, true, partials_, N, d);
  finish_partials(s, partials_, G, d, grads_ + o.attn_norm, true);
  prof_.mark("rmsnorm bwd", s);
}

void CudaBackend::queue_forward_backward(const int32_t* inputs, const int32_t* targets, int B, int T,
                                         float grad_scale) {
  check_batch(inputs, targets, B, T, "forward_backward");
  sync_.begin_backward();
  const int N = B * T;
  const TokenIndex ix = make_token_index(inputs, N, V_);
  upload_tokens(inputs, targets, N);
  n_unique_ = int(ix.token.size());
  CUDA_CHECK(cudaMemcpyAsync(tok_token_, ix.token.data(), ix.token.size() * 4, cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaMemcpyAsync(tok_start_, ix.start.data(), ix.start.size() * 4, cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaMemcpyAsync(tok_pos_, ix.pos.data(), ix.pos.size() * 4, cudaMemcpyHostToDevice, stream_));
  prof_.begin(stream_);
  forward_hidden(B, T);
  classifier(N, grad_scale, true, nullptr, free_loss_slot());
  rmsnorm_backward(stream_, dh_, x_final_, wb(pl_.final_norm_bf16()), rstdf_, dres_, false, partials_, N, d_);
  finish_partials(stream_, partials_, partial_blocks(N), d_, grads_ + pl_.final_norm_f32(), true);
  prof_.mark("rmsnorm bwd", stream_);
  sync_.final_norm_done(stream_, grads_);
  for (int l = L_ - 1; l >= 0; --l) {
    backward_layer(l, B, T);
    sync_.layer_done(l, stream_, grads_);
  }
  embedding_backward(stream_, dres_, tok_token_, tok_start_, tok_pos_, n_unique_, grads_, d_);
  prof_.mark("embedding bwd", stream_);
  sync_.end_backward(stream_, grads_);
  queued_rows_.push_back(N);
  prof_.end(true);
}

int CudaBackend::free_loss_slot() {
  if (queued_rows_.size() == kCudaLossSlots) taken_losses_ = take_losses();  // every slot used: sum them so far
  return int(queued_rows_.size());
}

double CudaBackend::take_losses() {
  std::vector<float> sums(queued_rows_.size());
  if (!sums.empty()) CUDA_CHECK(cudaMemcpyAsync(sums.data(), loss_sum_, sums.size() * 4, cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  double total = taken_losses_;  // the same order as one sum over every micro-batch
  taken_losses_ = 0;
  for (size_t i = 0; i < sums.size(); ++i) total += double(sums[i] / float(queued_rows_[i]));
  queued_rows_.clear();
  return total;
}

float CudaBackend::forward_loss(const int32_t* inputs, const int32_t* targets, int B, int T) {
  check_batch(inputs, targets, B, T, "forward_loss");
  const int N = B * T;
  upload_tokens(inputs, targets, N);
  prof_.begin(stream_);
  forward_hidden(B, T);
  const int slot = free_loss_slot();
  classifier(N, 1.0f, false, nullptr, slot);
  float loss = 0.0f;
  CUDA_CHECK(cudaMemcpyAsync(&loss, loss_sum_ + slot, 4, cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  prof_.end(false);
  return loss / float(N);
}

// log f from the saved fp32 gate pre-activations, through the CPU twin of the gate kernel (the
// device keeps only the prefix sums, whose differences lose digits at long T).
void CudaBackend::gate_log_f(std::vector<std::vector<float>>& out) {
  if (!cfg_.any_gated())
    throw std::logic_error("gate_log_f: the model has no gates (no layer is gatedfwa or nsa with a gatedfwa "
                               "sliding branch)");
  if (last_B_ == 0) throw std::logic_error("gate_log_f: no forward pass yet");
  const size_t n = size_t(last_B_) * last_T_ * H_;
  std::vector<float> hg(n), pre(n), lam(n);
  out.resize(size_t(L_));
  auto copy = [&](int l) {
    if (!gated(l)) {
      out[size_t(l)].clear();
      return;
    }
    const SkinnyProjections& k = pl_.skinny(l).cols;  // hg and pre: H of each row's W columns
    for (const auto& [dst, col] : {std::make_pair(hg.data(), k.gate_w), std::make_pair(pre.data(), k.gate_sharp)})
      CUDA_CHECK(cudaMemcpy2DAsync(dst, size_t(H_) * 4, acts_[l].skinny + col, size_t(k.width) * 4, size_t(H_) * 4,
                                   size_t(last_B_) * last_T_, cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    out[size_t(l)].resize(n);
    cpu::gate_forward(last_B_, last_T_, H_, hg.data(), pre.data(), out[size_t(l)].data(), lam.data());
  };
  // Under full recomputation the layers share one skinny buffer (hg, pre): the latest forward pass runs again
  // (the same tokens are still on the device) and each layer's are copied once it is done.
  if (recompute_ == Recompute::full) {
    prof_.begin(stream_);
    forward_hidden(last_B_, last_T_, copy);
    prof_.end(false);
    return;
  }
  for (int l = 0; l < L_; ++l) copy(l);
}

void CudaBackend::last_logits(const int32_t* tokens, int T, std::vector<float>& logits) {
  check_batch(tokens, nullptr, 1, T, "last_logits");
  upload_tokens(tokens, nullptr, T);
  prof_.begin(stream_);
  forward_hidden(1, T);
  mm_->linear(stream_, hf_ + size_t(T - 1) * d_, wb(pl_.embed_bf16()), last_logits_, OutType::f32, 1, d_, V_);
  logits.resize(V_);
  CUDA_CHECK(cudaMemcpyAsync(logits.data(), last_logits_, size_t(V_) * 4, cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  prof_.end(false);
}

std::unique_ptr<Decoder> CudaBackend::make_decoder(int batch, int64_t max_length) {
  return std::make_unique<CudaDecoder>(*this, batch, max_length);
}

// The forward of forward_loss; the classifier's per-row losses are the negated log-probabilities
// (and, when asked, each row's arg max).
void CudaBackend::target_logprobs(const int32_t* inputs, const int32_t* targets, int B, int T, float* out,
                                  int32_t* argmax) {
  check_batch(inputs, targets, B, T, "target_logprobs", true);
  const int N = B * T;
  upload_tokens(inputs, targets, N);
  prof_.begin(stream_);
  forward_hidden(B, T);
  classifier(N, 1.0f, false, argmax ? argmax_rows_ : nullptr, free_loss_slot());
  CUDA_CHECK(cudaMemcpyAsync(out, loss_rows_, size_t(N) * 4, cudaMemcpyDeviceToHost, stream_));
  if (argmax) CUDA_CHECK(cudaMemcpyAsync(argmax, argmax_rows_, size_t(N) * 4, cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  prof_.end(false);
  for (int n = 0; n < N; ++n) out[n] = -out[n];
}

std::unique_ptr<Backend> make_cuda_backend(const ModelConfig& cfg, int max_B, int max_T,
                                           const CudaDataParallel& dp, bool muon, Recompute recompute) {
  return std::make_unique<CudaBackend>(cfg, max_B, max_T, dp, muon, recompute);
}

}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
