// The CudaBackend class behind make_cuda_backend (cuda_backend.h), shared by its two sources:
// cuda_backend.cpp (construction, memory plan, the llm.c-style forward and backward passes) and
// cuda_backend_state.cpp (gradient norm, AdamW and Muon steps, host copies of the state); cuda_decoder.cpp
// decodes with its parameters. Its parts:
//   DeviceArena        one allocation for every buffer (cuda_arena.h)
//   DeviceParamLayout  fp32 and bf16 offsets of every tensor, AdamW chunks (cuda_param_layout.h)
//   GradSync           buckets, comm stream and ZeRO-1 across ranks (cuda_grad_sync.h)
//   PhaseTimer         per-phase device time under GFWA_CUDA_PROFILE (cuda_phase_timer.h)
// Internal to model/: include cuda_backend.h instead.
#pragma once
#ifdef GFWA_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/adamw.cuh"
#include "kernels/attention.h"
#include "kernels/matmul.cuh"
#include "kernels/muon.cuh"
#include "kernels/nsa.h"
#include "model/backend.h"
#include "model/cuda_arena.h"
#include "model/cuda_backend.h"
#include "model/cuda_grad_sync.h"
#include "model/cuda_param_layout.h"
#include "model/cuda_phase_timer.h"
#include "model/recompute.h"

namespace gfwa {

using bf16 = __nv_bfloat16;

// One layer's activations for its backward (bf16 tensors, then fp32 row statistics and gates; an nsa
// layer keeps its gates and the NSA core's saved tensors instead of lse). Those train.recompute does not
// keep per layer point into one set that every layer shares (rec_).
struct LayerActs {
  bf16 *x, *h1, *qkv, *qkvr, *o, *xm, *h2, *u, *g;
  float *rstd1, *rstdq, *rstdk, *rstd2, *prek, *prev, *hg, *pre, *lam, *lse;
  float* nsa_gates;  // g_cmp | g_sel | g_win [3, N, H]
  char* nsa_saved;   // nsa_saved_layout of the micro-batch's shape
};

class CudaBackend final : public Backend {
 public:
  CudaBackend(const ModelConfig& cfg, int max_B, int max_T, const CudaDataParallel& dp, bool muon, Recompute recompute);
  ~CudaBackend() override;

  std::string name() const override { return "cuda"; }
  const ModelConfig& config() const override { return cfg_; }
  const ParamLayout& layout() const override { return pl_.layout(); }
  double peak_flops() const override { return 989e12; }  // H200 dense bf16
  int64_t memory_in_use() const override;                 // of the current device

  void init_params(uint64_t seed) override;
  void queue_forward_backward(const int32_t* inputs, const int32_t* targets, int B, int T, float grad_scale) override;
  double take_losses() override;
  float forward_loss(const int32_t* inputs, const int32_t* targets, int B, int T) override;
  void last_logits(const int32_t* tokens, int T, std::vector<float>& logits) override;
  std::unique_ptr<Decoder> make_decoder(int batch, int64_t max_length) override;
  void target_logprobs(const int32_t* inputs, const int32_t* targets, int B, int T, float* out,
                       int32_t* argmax) override;
  void gate_log_f(std::vector<std::vector<float>>& out) override;
  void zero_grad() override;
  double grad_norm() override;
  void adamw_update(const AdamWStep& step) override;
  void muon_update(const MuonStep& muon, const AdamWStep& adamw) override;
  void get_params(std::vector<float>& out) override;
  void set_params(const std::vector<float>& in) override;
  void get_grads(std::vector<float>& out) override;
  void get_adam_state(std::vector<float>& m, std::vector<float>& v) override;
  void set_adam_state(const std::vector<float>& m, const std::vector<float>& v) override;
  void set_communicator(dist::Collectives* comm, size_t bucket_bytes) override { sync_.connect(comm, bucket_bytes); }
  void reduce_grads_in_next_backward() override { sync_.reduce_next_backward(); }

 private:
  friend class CudaDecoder;  // prefills with forward_hidden and steps with the same parameters and GEMMs
  void plan(DeviceArena& a);  // every buffer; cuda_memory_plan.cpp mirrors it without CUDA
  void share_recomputed();    // after allocation: the layers' pointers to what they do not keep (rec_)
  void plan_muon();  // Muon's chunk lists, matrices and scratch sizes (before plan)
  // ZeRO-1 after the shard's update: every rank gets every shard's fp32 master weights (the
  // forward reads fp32 gate biases from them, and get_params stays local) and refreshes its bf16
  // copy; waits for the all-gather.
  void share_master();
  // forward_only: every activation buffer holds max_B * max_T rows, so B * T is the bound on B.
  void check_batch(const int32_t* inputs, const int32_t* targets, int B, int T, const char* what,
                   bool forward_only = false) const;
  void upload_tokens(const int32_t* inputs, const int32_t* targets, int N);
  // Embeddings -> final norm output hf; after_layer(l), when given, runs once layer l's forward is
  // done, while its activations are in place (those recomputation shares are overwritten by the next).
  void forward_hidden(int B, int T, const std::function<void(int)>& after_layer = {});
  // output false: all but the w2 GEMM that writes the next layer's input (full recomputation).
  void forward_layer(int l, int B, int T, bool output = true);
  // The glue kernels of the forward that selective recomputation re-runs in the backward (one
  // definition for both, so the recomputed bits are the forward's).
  void attn_norm(const LayerActs& A, int l, int N);
  void mlp_norm(const LayerActs& A, int l, int N);
  void qk_norm_rope(const LayerActs& A, int l, int B, int T);
  cuda::AttnParams attn_params(const LayerActs& A, int l, int B, int T) const;  // layer l's attention operands
  cuda::NsaParams nsa_params(const LayerActs& A, int l, int B, int T) const;   // an nsa layer's core operands
  bool gated(int l) const { return cfg_.layer_gated(l); }  // GatedFWA's gates (gatedfwa, or nsa's sliding branch)
  bool nsa(int l) const { return attn_[size_t(l)].mode == AttnMode::nsa; }
  void backward_layer(int l, int B, int T);
  // Writes the N rows' summed loss to loss_sum_[slot].
  void classifier(int N, float grad_scale, bool backward, int32_t* argmax = nullptr, int slot = 0);
  void download(const float* src, std::vector<float>& out);
  void upload(const std::vector<float>& in, float* dst, const char* what);

  const bf16* wb(size_t boff) const { return params_ + boff; }

  ModelConfig cfg_;
  DeviceParamLayout pl_;
  int max_B_, max_T_;
  int d_, H_, D_, F_, V_, L_;
  int Hkv_, dkv_, qkv_ld_;  // K/V heads, their width Hkv*D, and the fused q | k | v row width d + 2*dkv
  bool shift_;
  Recompute recompute_;
  std::vector<LayerAttention> attn_;  // each layer's mode and window (model.attention.pattern)
  size_t P_ = 0;  // fp32 elements of the layout
  std::vector<cuda::AdamWChunk> shard_chunks_;  // ZeRO-1: AdamW chunks of this rank's shard
  // Muon (built with it): AdamW chunks of the other tensors and momentum chunks of the hidden
  // matrices, over this rank's shard under ZeRO-1 (shard-relative fp32 starts) or the whole layout;
  // the matrices this rank orthogonalises with the element range it updates of each (all of every
  // hidden matrix, or under ZeRO-1 those its shard touches, each whole, and its part of them).
  bool muon_ = false;
  std::vector<cuda::AdamWChunk> muon_adamw_chunks_, muon_momentum_chunks_;
  std::vector<ShardPiece> muon_pieces_;
  size_t ns_max_numel_ = 0, ns_max_side_ = 0;
  int logits_rows_ = 0;

  cudaStream_t stream_ = nullptr;
  PhaseTimer prof_;
  DeviceArena arena_;
  GradSync sync_;  // after the arena: its collectives finish before the buffers are freed
  std::unique_ptr<cuda::Matmul> mm_;

  // arena buffers
  bf16* params_;
  float *master_, *grads_, *adam_m_, *adam_v_;
  cuda::AdamWChunk *chunks_dev_, *shard_chunks_dev_, *muon_adamw_dev_, *muon_momentum_dev_;
  cuda::NsScratch ns_{};
  std::vector<LayerActs> acts_;
  LayerActs rec_{};  // the shared set (train.recompute selective or full); its g is g_
  bf16 *x_final_, *hf_;
  float* rstdf_;
  bf16 *g_, *dres_, *dh_, *do_, *dqkv_, *dqkv2_, *logits_;
  float *dlam_, *dhg_, *dpre_, *loss_rows_, *loss_sum_, *partials_, *norm_partials_, *last_logits_;
  double* norm_out_;
  bf16 *dhg_b_, *dpre_b_, *dsk_b_, *dsv_b_;
  int32_t *inputs_, *targets_, *tok_token_, *tok_start_, *tok_pos_, *argmax_rows_;
  int last_B_ = 0, last_T_ = 0;  // shape of the latest forward pass (gate_log_f)
  int n_unique_ = 0;
  std::vector<int> queued_rows_;  // rows (B * T) of each queued micro-batch, its loss sum in loss_sum_[i]
  double taken_losses_ = 0;       // the losses of earlier micro-batches of this step, when the slots filled up
  int free_loss_slot();           // the slot after the queued micro-batches' (summing them first when full)
  float2* rope_;
  char* matmul_ws_;
  float* attn_ws_;
  size_t attn_ws_bytes_ = 0;
  // nsa layers (any): the gate projection's output [N, 3H], the gates' gradient [3, N, H] and the
  // pre-activations' in bf16 [N, 3H], the core's backward workspace; each layer's saved tensors' size.
  float *nsa_pre_ = nullptr, *nsa_dg_ = nullptr;
  bf16* nsa_dpre_b_ = nullptr;
  char* nsa_ws_ = nullptr;
  size_t nsa_ws_bytes_ = 0, nsa_saved_bytes_ = 0;
};

}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
