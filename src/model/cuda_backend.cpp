// CudaBackend: orchestration of the forward and backward passes over the kernels of src/kernels
// (see cuda_backend.h for the precision and memory model, docs/cuda_backend.md for the plan).
#ifdef GFWA_WITH_CUDA
#include "model/cuda_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <spdlog/spdlog.h>

#include "kernels/adamw.cuh"
#include "kernels/argmax.cuh"
#include "kernels/attention.h"
#include "kernels/classifier.cuh"
#include "kernels/cuda_check.h"
#include "kernels/embedding.cuh"
#include "kernels/gate_cpu.h"
#include "kernels/matmul.cuh"
#include "kernels/qk_norm_rope.cuh"
#include "kernels/reduce.cuh"
#include "kernels/rmsnorm.cuh"
#include "kernels/swiglu.cuh"
#include "model/param_init.h"
#include "model/param_layout.h"
#include "train/dist/grad_buckets.h"
#include "train/dist/nccl_comm.h"
#include "train/dist/zero1_shards.h"

namespace gfwa {
namespace {

using bf16 = __nv_bfloat16;
using namespace gfwa::cuda;

// Bytes of logits one classifier chunk may hold (bf16): bounds the largest activation.
constexpr size_t kLogitsChunkBytes = size_t(1) << 30;

enum class Category { params, grads, optimizer, activations, workspace, count };
const char* category_name(Category c) {
  switch (c) {
    case Category::params: return "params (bf16 copy + fp32 master)";
    case Category::grads: return "grads (fp32)";
    case Category::optimizer: return "optimizer (AdamW m, v)";
    case Category::activations: return "activations (saved for backward)";
    case Category::workspace: return "workspace (scratch, logits chunk, cuBLASLt, attention)";
    default: return "?";
  }
}

// One device allocation for everything: buffers are planned first (offsets), then the arena is
// allocated once and every planned pointer is relocated into it.
class Arena {
 public:
  template <class T>
  void take(T*& ptr, size_t count, Category c) {
    const size_t off = (total_ + 255) / 256 * 256;
    total_ = off + count * sizeof(T);
    by_category_[int(c)] += count * sizeof(T);
    ptr = nullptr;
    slots_.push_back({reinterpret_cast<void**>(&ptr), off});
  }
  size_t total() const { return total_; }
  size_t bytes(Category c) const { return by_category_[int(c)]; }
  void allocate() {
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    if (total_ > free_b)
      throw std::runtime_error("cuda backend: the memory plan needs " + gib(total_) + " GiB of device memory but only " +
                               gib(free_b) + " GiB are free (reduce batch_size or seq_len)");
    CUDA_CHECK(cudaMalloc(&base_, total_));
    for (auto& s : slots_) *s.slot = static_cast<char*>(base_) + s.offset;
    slots_.clear();
  }
  ~Arena() {
    if (base_) cudaFree(base_);
  }
  static std::string gib(size_t b) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f", double(b) / double(1ull << 30));
    return buf;
  }

 private:
  struct Slot {
    void** slot;
    size_t offset;
  };
  std::vector<Slot> slots_;
  size_t total_ = 0;
  size_t by_category_[int(Category::count)] = {};
  void* base_ = nullptr;
};

// Per-phase device time of the training step, on when GFWA_CUDA_PROFILE is set in the environment:
// events recorded between phases, summed per phase name, reported when the backend is destroyed.
// The first kWarmupSteps steps are left out. Off (the default), every call returns at once.
class PhaseTimer {
 public:
  PhaseTimer() : on_(std::getenv("GFWA_CUDA_PROFILE") != nullptr) {}
  ~PhaseTimer() {
    for (cudaEvent_t e : pool_) cudaEventDestroy(e);
  }
  bool on() const { return on_; }
  void begin(cudaStream_t s) {
    used_ = 0;
    mark("", s);
  }
  void mark(const char* name, cudaStream_t s) {
    if (!on_) return;
    if (used_ == pool_.size()) {
      cudaEvent_t e;
      CUDA_CHECK(cudaEventCreate(&e));
      pool_.push_back(e);
      names_.push_back("");
    }
    CUDA_CHECK(cudaEventRecord(pool_[used_], s));
    names_[used_++] = name;
  }
  void end(bool counts_as_step) {
    if (!on_ || used_ == 0) return;
    CUDA_CHECK(cudaEventSynchronize(pool_[used_ - 1]));
    for (size_t i = 1; i < used_; ++i) {
      float ms = 0.0f;
      CUDA_CHECK(cudaEventElapsedTime(&ms, pool_[i - 1], pool_[i]));
      auto it = std::find_if(total_.begin(), total_.end(), [&](const auto& p) { return p.first == names_[i]; });
      if (it == total_.end()) total_.emplace_back(names_[i], ms);
      else it->second += ms;
    }
    steps_ += counts_as_step;
    if (counts_as_step && ++seen_ <= kWarmupSteps) {  // plan creation and lazy module loading
      total_.clear();
      steps_ = 0;
    }
  }
  void report() const {
    if (!on_ || steps_ == 0) return;
    auto rows = total_;
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    double sum = 0.0;
    for (const auto& r : rows) sum += r.second;
    spdlog::info("cuda backend profile: {:.2f} ms of device time per step over {} steps", sum / steps_, steps_);
    for (const auto& r : rows)
      spdlog::info("  {:<28s} {:>9.3f} ms  {:>5.1f}%", r.first, r.second / steps_, 100.0 * r.second / sum);
  }

 private:
  bool on_;
  std::vector<cudaEvent_t> pool_;
  std::vector<std::string> names_;
  size_t used_ = 0;
  std::vector<std::pair<std::string, double>> total_;
  int steps_ = 0, seen_ = 0;
  static constexpr int kWarmupSteps = 2;
};

struct LayerOffsets {  // element offsets of one layer's tensors: fp32 (f) and bf16 copy (b)
  size_t attn_norm, wqkv, q_norm, k_norm, shift_k, shift_v, gate_w, gate_b, gate_sharp, wo, mlp_norm, w13, w2;
};

struct LayerActs {
  bf16 *x, *h1, *qkv, *qkvr, *o, *xm, *h2, *u, *g;
  float *rstd1, *rstdq, *rstdk, *rstd2, *prek, *prev, *hg, *pre, *lam, *lse;
};

class CudaBackend final : public Backend {
 public:
  CudaBackend(const ModelConfig& cfg, int max_B, int max_T, const CudaDataParallel& dp);
  ~CudaBackend() override;

  std::string name() const override { return "cuda"; }
  const ModelConfig& config() const override { return cfg_; }
  const ParamLayout& layout() const override { return layout_; }

  void init_params(uint64_t seed) override;
  float forward_backward(const int32_t* inputs, const int32_t* targets, int B, int T, float grad_scale) override;
  float forward_loss(const int32_t* inputs, const int32_t* targets, int B, int T) override;
  void last_logits(const int32_t* tokens, int T, std::vector<float>& logits) override;
  void target_logprobs(const int32_t* inputs, const int32_t* targets, int B, int T, float* out,
                       int32_t* argmax) override;
  void gate_log_f(std::vector<std::vector<float>>& out) override;
  void zero_grad() override;
  double grad_norm() override;
  void adamw_update(const AdamWStep& step) override;
  void get_params(std::vector<float>& out) override;
  void set_params(const std::vector<float>& in) override;
  void get_grads(std::vector<float>& out) override;
  void get_adam_state(std::vector<float>& m, std::vector<float>& v) override;
  void set_adam_state(const std::vector<float>& m, const std::vector<float>& v) override;
  void set_communicator(dist::NcclComm* comm, const DistributedConfig& cfg) override;
  void reduce_grads_in_next_backward() override { reduce_next_ = true; }

 private:
  void grads_final(const std::vector<int>& tensors);  // launches the buckets this completes
  void wait_comm();                                   // bounded wait for the gradient collectives
  void plan(Arena& a);
  void log_plan(const Arena& a) const;
  // forward_only: every activation buffer holds max_B * max_T rows, so B * T is the bound on B.
  void check_batch(const int32_t* inputs, const int32_t* targets, int B, int T, const char* what,
                   bool forward_only = false) const;
  void upload_tokens(const int32_t* inputs, const int32_t* targets, int N);
  void forward_hidden(int B, int T);  // embeddings -> final norm output hf
  void forward_layer(int l, int B, int T);
  AttnParams attn_params(const LayerActs& A, int B, int T) const;  // one layer's attention operands
  void backward_layer(int l, int B, int T);
  void classifier(int N, float grad_scale, bool backward, int32_t* argmax = nullptr);
  void download(const float* src, std::vector<float>& out);
  void upload(const std::vector<float>& in, float* dst, const char* what);

  const bf16* wb(size_t boff) const { return params_ + boff; }

  ModelConfig cfg_;
  ParamLayout layout_;
  int max_B_, max_T_;
  int d_, H_, D_, F_, V_, L_;
  bool shift_, gated_;
  size_t P_ = 0, Pb_ = 0;  // fp32 element count; bf16 copy element count (aligned layout)
  size_t embed_b_ = 0, final_norm_ = 0, final_norm_b_ = 0;
  std::vector<LayerOffsets> off_, boff_;
  std::vector<AdamWChunk> chunks_;
  int logits_rows_ = 0;

  // Data parallelism. Gradients become final per layer during backward (tensor indices by layer).
  std::vector<std::vector<int>> layer_tensors_;
  std::vector<int> final_norm_tensors_, embed_tensors_;
  dist::NcclComm* comm_ = nullptr;
  cudaStream_t comm_stream_ = nullptr;
  cudaEvent_t grads_ready_ = nullptr;
  std::vector<dist::GradBucket> buckets_;
  std::unique_ptr<dist::BucketReadiness> readiness_;
  bool reduce_next_ = false, comm_pending_ = false;
  // ZeRO-1: grads_ and master_ hold Pg_ = zplan_.padded() elements, adam_m_/adam_v_ only this
  // rank's shard (Pm_); shard_chunks_ are the AdamW chunks of the shard, fp32 starts relative to
  // shard_off_ (bf16 starts absolute). Without ZeRO-1, Pg_ = Pm_ = P_.
  bool zero1_ = false;
  dist::ShardPlan zplan_;
  int zrank_ = 0;
  size_t shard_off_ = 0, Pg_ = 0, Pm_ = 0;
  std::vector<AdamWChunk> shard_chunks_;

  cudaStream_t stream_ = nullptr;
  PhaseTimer prof_;
  Arena arena_;
  std::unique_ptr<Matmul> mm_;

  // arena buffers
  bf16* params_;
  float *master_, *grads_, *adam_m_, *adam_v_;
  AdamWChunk *chunks_dev_, *shard_chunks_dev_;
  std::vector<LayerActs> acts_;
  bf16 *x_final_, *hf_;
  float* rstdf_;
  bf16 *g_, *dres_, *dh_, *do_, *dqkv_, *dqkv2_, *logits_;
  float *dlam_, *dhg_, *dpre_, *loss_rows_, *loss_sum_, *partials_, *norm_partials_, *last_logits_;
  double* norm_out_;
  bf16 *dhg_b_, *dpre_b_, *dsk_b_, *dsv_b_;
  int32_t *inputs_, *targets_, *tok_token_, *tok_start_, *tok_pos_, *argmax_rows_;
  int last_B_ = 0, last_T_ = 0;  // shape of the latest forward pass (gate_log_f)
  int n_unique_ = 0;
  float2* rope_;
  char* matmul_ws_;
  float* attn_ws_;
  size_t attn_ws_bytes_ = 0;
};

bool name_continues_group(const std::string& n) {
  auto ends = [&](const char* s) {
    const size_t k = std::char_traits<char>::length(s);
    return n.size() >= k && n.compare(n.size() - k, k, s) == 0;
  };
  return ends("attn.wk") || ends("attn.wv") || ends("mlp.w3");
}

CudaBackend::CudaBackend(const ModelConfig& cfg, int max_B, int max_T, const CudaDataParallel& dp)
    : cfg_(cfg), layout_(cfg), max_B_(max_B), max_T_(max_T) {
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
  shift_ = cfg.attention.token_shift;
  gated_ = cfg.attention.mode == AttnMode::gatedfwa;
  if (d_ % 8 != 0 || (D_ != 64 && D_ != 128) || d_ != H_ * D_)
    throw std::invalid_argument("cuda backend: needs d_model % 8 == 0 and head_dim 64 or 128 (d_model " +
                                std::to_string(d_) + ", n_heads " + std::to_string(H_) + ")");
  if (d_ > kRmsnormMaxDim) throw std::invalid_argument("cuda backend: d_model > 4096 is not supported");

  // bf16 copy: every tensor group starts 256-byte aligned (fast GEMM paths); wq|wk|wv and w1|w3
  // stay contiguous so each group is one GEMM operand.
  P_ = layout_.total();
  std::vector<size_t> offs, boffs, numels;
  std::vector<bool> decay;
  std::vector<size_t> bof(layout_.tensors().size());
  size_t cur = 0;
  for (size_t i = 0; i < layout_.tensors().size(); ++i) {
    const ParamTensor& t = layout_.tensors()[i];
    if (!name_continues_group(t.name)) cur = (cur + 127) / 128 * 128;
    bof[i] = cur;
    cur += t.numel;
    offs.push_back(t.offset);
    boffs.push_back(bof[i]);
    numels.push_back(t.numel);
    decay.push_back(t.decay);
  }
  Pb_ = cur;
  chunks_ = adamw_chunks(offs, boffs, numels, decay);
  Pg_ = Pm_ = P_;
  if (dp.zero1_world > 0) {
    zero1_ = true;
    zrank_ = dp.zero1_rank;
    zplan_ = dist::plan_shards(P_, dp.zero1_world);
    shard_off_ = zplan_.shard * size_t(zrank_);
    Pg_ = zplan_.padded();
    Pm_ = zplan_.shard;
    std::vector<size_t> so, sb, sn;
    std::vector<bool> sd;
    for (const auto& pc : dist::shard_pieces(layout_.tensors(), zplan_, zrank_)) {
      const ParamTensor& t = layout_.tensors()[size_t(pc.tensor)];
      so.push_back(pc.begin - shard_off_);
      sb.push_back(bof[size_t(pc.tensor)] + (pc.begin - t.offset));
      sn.push_back(pc.end - pc.begin);
      sd.push_back(t.decay);
    }
    shard_chunks_ = adamw_chunks(so, sb, sn, sd);
  }
  layer_tensors_.assign(size_t(L_), {});
  for (size_t i = 0; i < layout_.tensors().size(); ++i) {
    const std::string& n = layout_.tensors()[i].name;
    if (n.rfind("layers.", 0) == 0) layer_tensors_.at(std::stoul(n.substr(7))).push_back(int(i));
    else if (n == "final_norm") final_norm_tensors_.push_back(int(i));
    else embed_tensors_.push_back(int(i));  // the embedding: its gradient is final last
  }
  auto find = [&](const std::string& n, bool b) {
    const auto& ts = layout_.tensors();
    for (size_t i = 0; i < ts.size(); ++i)
      if (ts[i].name == n) return b ? bof[i] : ts[i].offset;
    if (b) throw std::out_of_range("no parameter tensor named '" + n + "'");
    return layout_.get(n).offset;  // throws, naming the tensor
  };
  embed_b_ = find("embed", true);
  final_norm_ = find("final_norm", false);
  final_norm_b_ = find("final_norm", true);
  for (int l = 0; l < L_; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    for (int b = 0; b < 2; ++b) {
      LayerOffsets o{};
      o.attn_norm = find(p + "attn_norm", b);
      o.wqkv = find(p + "attn.wq", b);
      o.q_norm = find(p + "attn.q_norm", b);
      o.k_norm = find(p + "attn.k_norm", b);
      if (shift_) {
        o.shift_k = find(p + "attn.shift_k", b);
        o.shift_v = find(p + "attn.shift_v", b);
      }
      if (gated_) {
        o.gate_w = find(p + "attn.gate_w", b);
        o.gate_b = find(p + "attn.gate_b", b);
        o.gate_sharp = find(p + "attn.gate_sharp", b);
      }
      o.wo = find(p + "attn.wo", b);
      o.mlp_norm = find(p + "mlp_norm", b);
      o.w13 = find(p + "mlp.w1", b);
      o.w2 = find(p + "mlp.w2", b);
      (b ? boff_ : off_).push_back(o);
    }
  }
  const size_t N = size_t(max_B) * max_T;
  logits_rows_ = int(std::min<size_t>(N, std::max<size_t>(64, kLogitsChunkBytes / (size_t(V_) * 2) / 64 * 64)));

  attn_ws_bytes_ = attention_bwd_workspace_bytes(attn_params(LayerActs{}, max_B, max_T));

  plan(arena_);
  log_plan(arena_);
  arena_.allocate();
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  mm_ = std::make_unique<Matmul>(matmul_ws_, Matmul::kWorkspaceBytes);

  CUDA_CHECK(cudaMemcpyAsync(chunks_dev_, chunks_.data(), chunks_.size() * sizeof(AdamWChunk),
                                  cudaMemcpyHostToDevice, stream_));
  if (!shard_chunks_.empty())
    CUDA_CHECK(cudaMemcpyAsync(shard_chunks_dev_, shard_chunks_.data(), shard_chunks_.size() * sizeof(AdamWChunk),
                               cudaMemcpyHostToDevice, stream_));
  const std::vector<float> rope = rope_table(max_T, D_, cfg.attention.rope_theta);
  CUDA_CHECK(cudaMemcpyAsync(rope_, rope.data(), rope.size() * sizeof(float), cudaMemcpyHostToDevice, stream_));
  // Padding of the bf16 copy stays zero; moments start at zero as in the cpu backend.
  CUDA_CHECK(cudaMemsetAsync(params_, 0, Pb_ * sizeof(bf16), stream_));
  CUDA_CHECK(cudaMemsetAsync(master_, 0, Pg_ * sizeof(float), stream_));
  CUDA_CHECK(cudaMemsetAsync(adam_m_, 0, Pm_ * sizeof(float), stream_));
  CUDA_CHECK(cudaMemsetAsync(adam_v_, 0, Pm_ * sizeof(float), stream_));
  CUDA_CHECK(cudaMemsetAsync(grads_, 0, Pg_ * sizeof(float), stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

CudaBackend::~CudaBackend() {
  if (comm_stream_) cudaStreamSynchronize(comm_stream_);
  if (grads_ready_) cudaEventDestroy(grads_ready_);
  if (comm_stream_) cudaStreamDestroy(comm_stream_);
  if (stream_) cudaStreamSynchronize(stream_);
  prof_.report();
  mm_.reset();
  if (stream_) cudaStreamDestroy(stream_);
}

void CudaBackend::plan(Arena& a) {
  const size_t N = size_t(max_B_) * max_T_, d = d_, H = H_, F = F_;
  a.take(params_, Pb_, Category::params);
  a.take(master_, Pg_, Category::params);
  a.take(grads_, Pg_, Category::grads);
  a.take(adam_m_, Pm_, Category::optimizer);
  a.take(adam_v_, Pm_, Category::optimizer);
  a.take(chunks_dev_, chunks_.size(), Category::optimizer);
  a.take(shard_chunks_dev_, shard_chunks_.size(), Category::optimizer);
  acts_.assign(L_, LayerActs{});
  for (auto& A : acts_) {
    const Category c = Category::activations;
    a.take(A.x, N * d, c);
    a.take(A.h1, N * d, c);
    a.take(A.qkv, N * 3 * d, c);
    a.take(A.qkvr, N * 3 * d, c);
    a.take(A.o, N * d, c);
    a.take(A.xm, N * d, c);
    a.take(A.h2, N * d, c);
    a.take(A.u, N * 2 * F, c);
    a.take(A.g, N * F, c);
    a.take(A.rstd1, N, c);
    a.take(A.rstdq, N, c);
    a.take(A.rstdk, N, c);
    a.take(A.rstd2, N, c);
    a.take(A.lse, N * H, c);
    if (shift_) {
      a.take(A.prek, N * H, c);
      a.take(A.prev, N * H, c);
    }
    if (gated_) {
      a.take(A.hg, N * H, c);
      a.take(A.pre, N * H, c);
      a.take(A.lam, N * H, c);
    }
  }
  a.take(x_final_, N * d, Category::activations);
  a.take(hf_, N * d, Category::activations);
  a.take(rstdf_, N, Category::activations);
  const Category w = Category::workspace;
  a.take(g_, N * F, w);
  a.take(dres_, N * d, w);
  a.take(dh_, N * d, w);
  a.take(do_, N * d, w);
  a.take(dqkv_, N * 3 * d, w);
  dqkv2_ = nullptr;
  if (shift_) a.take(dqkv2_, N * 3 * d, w);
  a.take(logits_, size_t(logits_rows_) * V_, w);
  a.take(last_logits_, size_t(V_), w);
  a.take(loss_rows_, N, w);
  a.take(argmax_rows_, N, w);
  a.take(loss_sum_, 1, w);
  a.take(partials_, size_t(partial_blocks(int(N))) * 2 * d, w);
  a.take(norm_partials_, kGradNormBlocks, w);
  a.take(norm_out_, 1, w);
  a.take(dlam_, N * H, w);
  a.take(dhg_, N * H, w);
  a.take(dpre_, N * H, w);
  a.take(dhg_b_, N * H, w);
  a.take(dpre_b_, N * H, w);
  a.take(dsk_b_, N * H, w);
  a.take(dsv_b_, N * H, w);
  a.take(inputs_, N, w);
  a.take(targets_, N, w);
  a.take(tok_token_, N, w);
  a.take(tok_start_, N + 1, w);
  a.take(tok_pos_, N, w);
  a.take(rope_, size_t(max_T_) * (D_ / 2), w);
  a.take(matmul_ws_, Matmul::kWorkspaceBytes, w);
  a.take(attn_ws_, (attn_ws_bytes_ + 3) / 4, w);
}


void CudaBackend::log_plan(const Arena& a) const {
  spdlog::info("cuda backend memory plan: {:.3f} GiB for {} params, micro-batch up to {} x {}, logits chunk {} rows",
               double(a.total()) / double(1ull << 30), P_, max_B_, max_T_, logits_rows_);
  for (int c = 0; c < int(Category::count); ++c)
    spdlog::info("  {:<58s} {:>10.3f} GiB", category_name(Category(c)),
                 double(a.bytes(Category(c))) / double(1ull << 30));
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

// q and k (normed, rotated) and v are views into [N, 3d] buffers; v is the rotated buffer's copy
// when token shift is on (shifted v), else the raw projection.
AttnParams CudaBackend::attn_params(const LayerActs& A, int B, int T) const {
  const int d = d_;
  AttnParams p{};
  p.q = A.qkvr;
  p.k = A.qkvr + d;
  p.v = shift_ ? A.qkvr + 2 * d : A.qkv + 2 * d;
  p.q_row_stride = p.k_row_stride = p.v_row_stride = 3 * d;
  p.o_row_stride = d;
  p.lam = gated_ ? A.lam : nullptr;
  p.o = A.o;
  p.lse = A.lse;
  p.B = B;
  p.T = T;
  p.H = H_;
  p.D = D_;
  p.window = cfg_.attention.window;
  p.mode = cfg_.attention.mode;
  return p;
}

void CudaBackend::forward_layer(int l, int B, int T) {
  const int N = B * T, d = d_, H = H_;
  const LayerActs& A = acts_[l];
  const LayerOffsets& o = off_[l];
  const LayerOffsets& b = boff_[l];
  bf16* xout = l + 1 < L_ ? acts_[l + 1].x : x_final_;
  cudaStream_t s = stream_;
  rmsnorm_forward(s, A.x, wb(b.attn_norm), A.h1, A.rstd1, N, d, cfg_.norm_eps);
  prof_.mark("rmsnorm fwd", s);
  mm_->linear(s, A.h1, wb(b.wqkv), A.qkv, OutType::bf16, N, d, 3 * d);
  prof_.mark("gemm qkv fwd", s);
  if (shift_) {
    mm_->linear(s, A.h1, wb(b.shift_k), A.prek, OutType::f32, N, d, H);
    mm_->linear(s, A.h1, wb(b.shift_v), A.prev, OutType::f32, N, d, H);
  }
  if (gated_) {
    broadcast_rows(s, master_ + o.gate_b, N, H, A.hg);  // fp32 bias, then the GEMM accumulates
    mm_->linear(s, A.h1, wb(b.gate_w), A.hg, OutType::f32, N, d, H, 1.0f);
    mm_->linear(s, A.h1, wb(b.gate_sharp), A.pre, OutType::f32, N, d, H);
    prof_.mark("gate+shift proj fwd", s);
    gate_forward(A.hg, A.pre, A.lam, B, T, H, s);
  }
  prof_.mark("gate scan fwd", s);
  const QkvShape sh{B, T, H, D_, cfg_.norm_eps};
  qk_norm_rope_forward(s, sh, A.qkv, shift_ ? A.prek : nullptr, shift_ ? A.prev : nullptr, wb(b.q_norm),
                       wb(b.k_norm), rope_, A.qkvr, A.rstdq, A.rstdk);
  prof_.mark("qk-norm+rope fwd", s);
  const AttnParams p = attn_params(A, B, T);
  attention_forward(p, s);
  prof_.mark("attention fwd", s);
  mm_->linear(s, A.o, wb(b.wo), A.xm, OutType::bf16, N, d, d, 1.0f, A.x);  // xm = x + o Wo^T
  prof_.mark("gemm wo fwd", s);
  rmsnorm_forward(s, A.xm, wb(b.mlp_norm), A.h2, A.rstd2, N, d, cfg_.norm_eps);
  prof_.mark("rmsnorm fwd", s);
  mm_->linear(s, A.h2, wb(b.w13), A.u, OutType::bf16, N, d, 2 * F_);
  prof_.mark("gemm w13 fwd", s);
  swiglu_forward(s, A.u, A.g, N, F_);
  prof_.mark("swiglu fwd", s);
  mm_->linear(s, A.g, wb(b.w2), xout, OutType::bf16, N, F_, d, 1.0f, A.xm);  // x' = xm + g W2^T
  prof_.mark("gemm w2 fwd", s);
}

void CudaBackend::forward_hidden(int B, int T) {
  const int N = B * T;
  last_B_ = B;
  last_T_ = T;
  embedding_forward(stream_, inputs_, wb(embed_b_), L_ > 0 ? acts_[0].x : x_final_, N, d_);
  prof_.mark("embedding fwd", stream_);
  for (int l = 0; l < L_; ++l) forward_layer(l, B, T);
  rmsnorm_forward(stream_, x_final_, wb(final_norm_b_), hf_, rstdf_, N, d_, cfg_.norm_eps);
  prof_.mark("rmsnorm fwd", stream_);
}

// Loss of the N rows (summed on the device into loss_sum_); with backward, also the logits
// gradient, its product into dh_ (d hf) and the tied embedding's classifier gradient; with
// argmax (forward only), each row's arg max.
void CudaBackend::classifier(int N, float grad_scale, bool backward, int32_t* argmax) {
  for (int c0 = 0; c0 < N; c0 += logits_rows_) {
    const int r = std::min(logits_rows_, N - c0);
    const bf16* h = hf_ + size_t(c0) * d_;
    mm_->linear(stream_, h, wb(embed_b_), logits_, OutType::bf16, r, d_, V_);
    prof_.mark("gemm classifier fwd", stream_);
    softmax_xent(stream_, logits_, targets_ + c0, loss_rows_ + c0, r, V_, grad_scale / float(N), backward);
    prof_.mark("softmax+xent", stream_);
    if (argmax) argmax_rows(stream_, logits_, r, V_, argmax + c0);
    if (!backward) continue;
    mm_->linear_dx(stream_, logits_, wb(embed_b_), dh_ + size_t(c0) * d_, r, d_, V_);
    prof_.mark("gemm classifier dX", stream_);
    mm_->linear_dw(stream_, logits_, h, grads_, r, d_, V_);  // "embed" is at offset 0
    prof_.mark("gemm classifier dW", stream_);
  }
  sum_deterministic(stream_, loss_rows_, N, loss_sum_);
}

void CudaBackend::backward_layer(int l, int B, int T) {
  const int N = B * T, d = d_, H = H_, F = F_, G = partial_blocks(N);
  const LayerActs& A = acts_[l];
  const LayerOffsets& o = off_[l];
  const LayerOffsets& b = boff_[l];
  cudaStream_t s = stream_;
  // MLP; dres_ holds the gradient of the layer output.
  mm_->linear_dw(s, dres_, A.g, grads_ + o.w2, N, F, d);
  prof_.mark("gemm w2 dW", s);
  mm_->linear_dx(s, dres_, wb(b.w2), g_, N, F, d);
  prof_.mark("gemm w2 dX", s);
  swiglu_backward(s, g_, A.u, N, F);
  prof_.mark("swiglu bwd", s);
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
  AttnBwdParams p{};
  static_cast<AttnParams&>(p) = attn_params(A, B, T);
  p.dout = do_;
  p.dout_row_stride = d;
  p.dq = dqkv_;
  p.dk = dqkv_ + d;
  p.dv = dqkv_ + 2 * d;
  p.dq_row_stride = p.dk_row_stride = p.dv_row_stride = 3 * d;
  p.dlam = gated_ ? dlam_ : nullptr;
  p.workspace = attn_ws_;
  attention_backward(p, s);
  prof_.mark("attention bwd", s);
  const QkvShape sh{B, T, H, D_, cfg_.norm_eps};
  qk_norm_rope_backward(s, sh, dqkv_, A.qkv, shift_ ? A.prek : nullptr, wb(b.q_norm), wb(b.k_norm), rope_, A.rstdq,
                        A.rstdk, shift_ ? dqkv2_ : dqkv_, dqkv_ + d, partials_);
  finish_partials(s, partials_, G, 2 * d, grads_ + o.q_norm, true);  // q_norm | k_norm are adjacent
  prof_.mark("qk-norm+rope bwd", s);
  const bf16* draw = dqkv_;
  if (shift_) {
    token_shift_backward(s, sh, A.qkv, A.prek, A.prev, dqkv_ + d, dqkv2_ + d, dsk_b_, dsv_b_);
    draw = dqkv2_;
  }
  prof_.mark("token shift bwd", s);
  mm_->linear_dw(s, draw, A.h1, grads_ + o.wqkv, N, d, 3 * d);
  prof_.mark("gemm qkv dW", s);
  mm_->linear_dx(s, draw, wb(b.wqkv), dh_, N, d, 3 * d);
  prof_.mark("gemm qkv dX", s);
  if (shift_) {
    mm_->linear_dw(s, dsk_b_, A.h1, grads_ + o.shift_k, N, d, H);
    mm_->linear_dx(s, dsk_b_, wb(b.shift_k), dh_, N, d, H, 1.0f);
    mm_->linear_dw(s, dsv_b_, A.h1, grads_ + o.shift_v, N, d, H);
    mm_->linear_dx(s, dsv_b_, wb(b.shift_v), dh_, N, d, H, 1.0f);
  }
  if (gated_) {
    prof_.mark("gate+shift proj bwd", s);
    gate_backward(A.hg, A.pre, dlam_, dhg_, dpre_, B, T, H, s);
    prof_.mark("gate scan bwd", s);
    colsum_partials(s, dhg_, N, H, partials_);
    finish_partials(s, partials_, G, H, grads_ + o.gate_b, true);
    f32_to_bf16(s, dhg_, dhg_b_, size_t(N) * H);
    f32_to_bf16(s, dpre_, dpre_b_, size_t(N) * H);
    mm_->linear_dw(s, dhg_b_, A.h1, grads_ + o.gate_w, N, d, H);
    mm_->linear_dx(s, dhg_b_, wb(b.gate_w), dh_, N, d, H, 1.0f);
    mm_->linear_dw(s, dpre_b_, A.h1, grads_ + o.gate_sharp, N, d, H);
    mm_->linear_dx(s, dpre_b_, wb(b.gate_sharp), dh_, N, d, H, 1.0f);
  }
  prof_.mark("gate+shift proj bwd", s);
  rmsnorm_backward(s, dh_, A.x, wb(b.attn_norm), A.rstd1, dres_, true, partials_, N, d);
  finish_partials(s, partials_, G, d, grads_ + o.attn_norm, true);
  prof_.mark("rmsnorm bwd", s);
}

float CudaBackend::forward_backward(const int32_t* inputs, const int32_t* targets, int B, int T, float grad_scale) {
  check_batch(inputs, targets, B, T, "forward_backward");
  wait_comm();
  const bool reduce = comm_ && reduce_next_;
  reduce_next_ = false;
  const bool bucketed = reduce && !zero1_;
  if (bucketed) readiness_->reset();
  const int N = B * T;
  const TokenIndex ix = make_token_index(inputs, N, V_);
  upload_tokens(inputs, targets, N);
  n_unique_ = int(ix.token.size());
  CUDA_CHECK(cudaMemcpyAsync(tok_token_, ix.token.data(), ix.token.size() * 4, cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaMemcpyAsync(tok_start_, ix.start.data(), ix.start.size() * 4, cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaMemcpyAsync(tok_pos_, ix.pos.data(), ix.pos.size() * 4, cudaMemcpyHostToDevice, stream_));
  prof_.begin(stream_);
  forward_hidden(B, T);
  classifier(N, grad_scale, true);
  rmsnorm_backward(stream_, dh_, x_final_, wb(final_norm_b_), rstdf_, dres_, false, partials_, N, d_);
  finish_partials(stream_, partials_, partial_blocks(N), d_, grads_ + final_norm_, true);
  prof_.mark("rmsnorm bwd", stream_);
  if (bucketed) grads_final(final_norm_tensors_);
  for (int l = L_ - 1; l >= 0; --l) {
    backward_layer(l, B, T);
    if (bucketed) grads_final(layer_tensors_[size_t(l)]);
  }
  embedding_backward(stream_, dres_, tok_token_, tok_start_, tok_pos_, n_unique_, grads_, d_);
  prof_.mark("embedding bwd", stream_);
  if (bucketed) {
    grads_final(embed_tensors_);
    if (!readiness_->all_released()) throw std::logic_error("cuda backend: a gradient bucket was never launched");
  } else if (reduce) {  // ZeRO-1: rank r receives the average of its shard, after the whole backward
    CUDA_CHECK(cudaEventRecord(grads_ready_, stream_));
    CUDA_CHECK(cudaStreamWaitEvent(comm_stream_, grads_ready_, 0));
    comm_->reduce_scatter(grads_, grads_ + shard_off_, zplan_.shard, dist::DType::f32, dist::ReduceOp::avg,
                          comm_stream_);
  }
  comm_pending_ = reduce;
  float loss = 0.0f;
  CUDA_CHECK(cudaMemcpyAsync(&loss, loss_sum_, 4, cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  prof_.end(true);
  return loss / float(N);
}

float CudaBackend::forward_loss(const int32_t* inputs, const int32_t* targets, int B, int T) {
  check_batch(inputs, targets, B, T, "forward_loss");
  const int N = B * T;
  upload_tokens(inputs, targets, N);
  prof_.begin(stream_);
  forward_hidden(B, T);
  classifier(N, 1.0f, false);
  float loss = 0.0f;
  CUDA_CHECK(cudaMemcpyAsync(&loss, loss_sum_, 4, cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  prof_.end(false);
  return loss / float(N);
}

// log f from the saved fp32 gate pre-activations, through the CPU twin of the gate kernel (the
// device keeps only the prefix sums, whose differences lose digits at long T).
void CudaBackend::gate_log_f(std::vector<std::vector<float>>& out) {
  if (!gated_) throw std::logic_error("gate_log_f: the model has no gates (model.attention.mode is not gatedfwa)");
  if (last_B_ == 0) throw std::logic_error("gate_log_f: no forward pass yet");
  const size_t n = size_t(last_B_) * last_T_ * H_;
  std::vector<float> hg(n), pre(n), lam(n);
  out.resize(size_t(L_));
  for (int l = 0; l < L_; ++l) {
    CUDA_CHECK(cudaMemcpyAsync(hg.data(), acts_[l].hg, n * 4, cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaMemcpyAsync(pre.data(), acts_[l].pre, n * 4, cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    out[size_t(l)].resize(n);
    cpu::gate_forward(last_B_, last_T_, H_, hg.data(), pre.data(), out[size_t(l)].data(), lam.data());
  }
}

void CudaBackend::last_logits(const int32_t* tokens, int T, std::vector<float>& logits) {
  check_batch(tokens, nullptr, 1, T, "last_logits");
  upload_tokens(tokens, nullptr, T);
  prof_.begin(stream_);
  forward_hidden(1, T);
  mm_->linear(stream_, hf_ + size_t(T - 1) * d_, wb(embed_b_), last_logits_, OutType::f32, 1, d_, V_);
  logits.resize(V_);
  CUDA_CHECK(cudaMemcpyAsync(logits.data(), last_logits_, size_t(V_) * 4, cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  prof_.end(false);
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
  classifier(N, 1.0f, false, argmax ? argmax_rows_ : nullptr);
  CUDA_CHECK(cudaMemcpyAsync(out, loss_rows_, size_t(N) * 4, cudaMemcpyDeviceToHost, stream_));
  if (argmax) CUDA_CHECK(cudaMemcpyAsync(argmax, argmax_rows_, size_t(N) * 4, cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  prof_.end(false);
  for (int n = 0; n < N; ++n) out[n] = -out[n];
}

void CudaBackend::grads_final(const std::vector<int>& tensors) {
  std::vector<int> launch;
  for (int t : tensors)
    for (int b : readiness_->mark_ready(t)) launch.push_back(b);
  if (launch.empty()) return;
  CUDA_CHECK(cudaEventRecord(grads_ready_, stream_));
  CUDA_CHECK(cudaStreamWaitEvent(comm_stream_, grads_ready_, 0));
  for (int b : launch) {
    const dist::GradBucket& k = buckets_[size_t(b)];
    comm_->all_reduce(grads_ + k.begin, k.end - k.begin, dist::DType::f32, dist::ReduceOp::avg, comm_stream_);
  }
}

void CudaBackend::wait_comm() {
  if (!comm_pending_) return;
  comm_pending_ = false;
  comm_->synchronize(comm_stream_);
}

void CudaBackend::set_communicator(dist::NcclComm* comm, const DistributedConfig& cfg) {
  if (!comm) throw std::invalid_argument("cuda backend set_communicator: no communicator");
  if (comm_) throw std::logic_error("cuda backend set_communicator: a communicator is already set");
  if (cfg.zero1 != zero1_ || (zero1_ && (comm->world() != zplan_.world || comm->rank() != zrank_)))
    throw std::logic_error("cuda backend set_communicator: distributed.zero1 or the rank differs from the shape the "
                           "backend was built for (make_backend with data_parallel)");
  buckets_ = dist::plan_grad_buckets(layout_, cfg, sizeof(float));
  readiness_ = std::make_unique<dist::BucketReadiness>(buckets_, layout_.tensors().size());
  CUDA_CHECK(cudaStreamCreateWithFlags(&comm_stream_, cudaStreamNonBlocking));
  CUDA_CHECK(cudaEventCreateWithFlags(&grads_ready_, cudaEventDisableTiming));
  comm_ = comm;
  if (zero1_)
    spdlog::info("ZeRO-1: rank {} of {} updates elements [{}, {}) of {} (shard {})", zrank_, zplan_.world,
                 zplan_.begin(zrank_), zplan_.end(zrank_), P_, zplan_.shard);
  else
    spdlog::info("gradient all-reduce in {} buckets of up to {} MiB", buckets_.size(), cfg.bucket_mb);
}

void CudaBackend::zero_grad() {
  wait_comm();
  prof_.begin(stream_);
  CUDA_CHECK(cudaMemsetAsync(grads_, 0, Pg_ * sizeof(float), stream_));
  prof_.mark("zero grad", stream_);
  prof_.end(false);
}

double CudaBackend::grad_norm() {
  wait_comm();
  // ZeRO-1 (with a communicator): this rank's shard holds the averaged gradient; sum the shards'
  // squared norms across ranks.
  const bool sharded = zero1_ && comm_;
  const size_t n = sharded ? zplan_.owned(zrank_) : P_;
  double ss = 0.0;
  if (n > 0) {
    prof_.begin(stream_);
    sum_squares(stream_, grads_ + (sharded ? shard_off_ : 0), n, norm_partials_, norm_out_);
    prof_.mark("grad norm", stream_);
    prof_.end(false);
    CUDA_CHECK(cudaMemcpyAsync(&ss, norm_out_, sizeof(double), cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  if (sharded) comm_->all_reduce_host(&ss, 1, dist::ReduceOp::sum, comm_stream_);
  return std::sqrt(ss);
}

void CudaBackend::adamw_update(const AdamWStep& st) {
  if (st.t < 1) throw std::invalid_argument("cuda backend adamw_update: step t must be >= 1");
  AdamWArgs a;
  a.lr = st.lr;
  a.beta1 = st.beta1;
  a.beta2 = st.beta2;
  a.eps = st.eps;
  a.weight_decay = st.weight_decay;
  a.grad_scale = st.grad_scale;
  a.bias_corr1 = float(1.0 - std::pow(double(st.beta1), double(st.t)));
  a.bias_corr2 = float(1.0 - std::pow(double(st.beta2), double(st.t)));
  wait_comm();
  prof_.begin(stream_);
  if (!zero1_) {
    adamw_step(stream_, chunks_dev_, int(chunks_.size()), a, grads_, master_, adam_m_, adam_v_, params_);
    prof_.mark("adamw", stream_);
    prof_.end(false);
    return;
  }
  if (!comm_) throw std::logic_error("cuda backend adamw_update: ZeRO-1 needs set_communicator first");
  // Update the shard, then every rank gets every shard's fp32 master weights (the forward reads
  // fp32 gate biases from them, and get_params stays local) and refreshes its bf16 copy.
  adamw_step(stream_, shard_chunks_dev_, int(shard_chunks_.size()), a, grads_ + shard_off_, master_ + shard_off_,
             adam_m_, adam_v_, params_);
  prof_.mark("adamw (shard)", stream_);
  comm_->all_gather(master_ + shard_off_, master_, zplan_.shard, dist::DType::f32, stream_);
  prof_.mark("all-gather master", stream_);
  params_from_master(stream_, chunks_dev_, int(chunks_.size()), master_, params_);
  prof_.mark("bf16 params", stream_);
  comm_->synchronize(stream_);
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
  init_parameters(cfg_, layout_, seed, p.data());
  set_params(p);
}

void CudaBackend::get_params(std::vector<float>& out) { download(master_, out); }

void CudaBackend::set_params(const std::vector<float>& in) {
  upload(in, master_, "set_params");
  params_from_master(stream_, chunks_dev_, int(chunks_.size()), master_, params_);
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::get_grads(std::vector<float>& out) {
  wait_comm();
  download(grads_, out);
}

void CudaBackend::get_adam_state(std::vector<float>& m, std::vector<float>& v) {
  if (!zero1_) {
    download(adam_m_, m);
    download(adam_v_, v);
    return;
  }
  // ZeRO-1: full-length vectors holding this rank's shard, zeros elsewhere.
  const size_t b = zplan_.begin(zrank_), n = zplan_.owned(zrank_);
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
  if (!zero1_) {
    upload(m, adam_m_, "set_adam_state");
    upload(v, adam_v_, "set_adam_state");
    return;
  }
  const size_t b = zplan_.begin(zrank_), n = zplan_.owned(zrank_);  // ZeRO-1: only this rank's shard is kept
  CUDA_CHECK(cudaMemcpyAsync(adam_m_, m.data() + b, n * sizeof(float), cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaMemcpyAsync(adam_v_, v.data() + b, n * sizeof(float), cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(const ModelConfig& cfg, int max_B, int max_T,
                                           const CudaDataParallel& dp) {
  return std::make_unique<CudaBackend>(cfg, max_B, max_T, dp);
}

}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
