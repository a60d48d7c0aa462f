#ifdef GFWA_WITH_CUDA
#include "model/cuda_decoder.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include <spdlog/spdlog.h>

#include "kernels/cuda_check.h"
#include "kernels/embedding.cuh"
#include "kernels/reduce.cuh"
#include "kernels/rmsnorm.cuh"
#include "kernels/swiglu.cuh"
#include "model/cuda_backend_impl.h"

namespace gfwa {

using namespace gfwa::cuda;

CudaDecoder::CudaDecoder(CudaBackend& be, int batch, int64_t max_length)
    : Decoder(batch, decoder_max_length(be.cfg_, max_length), be.V_), be_(be) {
  const ModelConfig& cfg = be.cfg_;
  if (batch < 1) throw std::invalid_argument("decoder: batch must be >= 1 (got " + std::to_string(batch) + ")");
  const std::vector<int> caps = decoder_cache_caps(cfg, max_length);
  size_t ws_floats = 0;
  for (int l = 0; l < be.L_; ++l) {
    dims_.push_back(DecodeDims{batch, be.H_, be.D_, caps[size_t(l)], be.attn_[size_t(l)].mode, be.shift_, cfg.norm_eps,
                               cfg.attention.rope_theta, be.Hkv_});
    check_decode_dims(dims_.back());
    ws_floats = std::max(ws_floats, decode_attention_workspace_floats(dims_.back()));
  }
  const size_t B = size_t(batch), H = be.H_, Hkv = be.Hkv_, d = be.d_, dkv = be.dkv_, F = be.F_, V = be.V_;
  const ArenaCategory kv = ArenaCategory::activations, w = ArenaCategory::workspace;
  cache_.assign(size_t(be.L_), DecodeCacheDev{});
  for (int l = 0; l < be.L_; ++l) {
    DecodeCacheDev& c = cache_[size_t(l)];
    const size_t cap = size_t(caps[size_t(l)]);
    arena_.take(c.k, B * dkv * cap, kv);  // [B, Hkv, cap, D]
    arena_.take(c.v, B * dkv * cap, kv);
    if (be.gated(l)) {
      arena_.take(c.lam, B * H * cap, kv);
      arena_.take(c.lam_now, B * H, kv);
    }
    if (be.shift_) {
      arena_.take(c.shift_k, B * dkv, kv);
      arena_.take(c.shift_v, B * dkv, kv);
    }
  }
  cache_bytes_ = int64_t(arena_.bytes(kv));
  arena_.take(x_, B * d, w);
  arena_.take(h_, B * d, w);
  arena_.take(qkv_, B * size_t(be.qkv_ld_), w);
  arena_.take(q_, B * d, w);
  arena_.take(o_, B * d, w);
  arena_.take(xm_, B * d, w);
  arena_.take(u_, B * 2 * F, w);
  arena_.take(g_, B * F, w);
  arena_.take(rstd_, B, w);
  arena_.take(prek_, B * Hkv, w);
  arena_.take(prev_, B * Hkv, w);
  arena_.take(hg_, B * H, w);
  arena_.take(pre_, B * H, w);
  arena_.take(logits_dev_, B * V, w);
  arena_.take(ws_, ws_floats, w);
  arena_.take(tokens_dev_, B, w);
  arena_.take(ids_dev_, B, w);
  arena_.take(pos_dev_, B, w);
  arena_.allocate();
  CUDA_CHECK(cudaMemsetAsync(pos_dev_, 0, B * sizeof(int64_t), be_.stream_));
  logits_.assign(B * V, 0.0f);
}

CudaDecoder::~CudaDecoder() {
  if (graph_) cudaGraphExecDestroy(graph_);
  cudaStreamSynchronize(be_.stream_);
}

void CudaDecoder::prefill(int b, const int32_t* tokens, int n) {
  check_prefill(b, tokens, n);
  CudaBackend& be = be_;
  be.check_batch(tokens, nullptr, 1, n, "prefill");
  be.upload_tokens(tokens, nullptr, n);
  const int d = be.d_;
  // Each layer's cache is filled as soon as its forward is done: under train.recompute the layers
  // share one set of buffers, which the next layer overwrites.
  be.forward_hidden(1, n, [&](int l) {
    const LayerActs& A = be.acts_[size_t(l)];
    const AttnParams p = be.attn_params(A, l, 1, n);
    decode_fill(be.stream_, dims_[size_t(l)], cache_[size_t(l)], b, n, p.k, p.v, A.qkv + d, A.qkv + d + be.dkv_,
                be.qkv_ld_, be.gated(l) ? A.lam : nullptr);
  });
  be.mm_->linear(be.stream_, be.hf_ + size_t(n - 1) * d, be.wb(be.pl_.embed_bf16()), logits_dev_ + size_t(b) * be.V_,
                 OutType::f32, 1, d, be.V_);
  const int64_t pos = n;
  CUDA_CHECK(cudaMemcpyAsync(pos_dev_ + b, &pos, sizeof pos, cudaMemcpyHostToDevice, be.stream_));
  CUDA_CHECK(cudaStreamSynchronize(be.stream_));  // `pos` lives on this frame
  pos_[size_t(b)] = n;
  logits_fresh_ = false;
}

void CudaDecoder::run_step() {
  CudaBackend& be = be_;
  cudaStream_t s = be.stream_;
  const int B = batch_, d = be.d_, H = be.H_, Hkv = be.Hkv_, F = be.F_;
  const float eps = be.cfg_.norm_eps;
  embedding_forward(s, tokens_dev_, be.wb(be.pl_.embed_bf16()), x_, B, d);
  for (int l = 0; l < be.L_; ++l) {
    const LayerOffsets& o = be.pl_.f32(l);
    const LayerOffsets& w = be.pl_.bf16(l);
    rmsnorm_forward(s, x_, be.wb(w.attn_norm), h_, rstd_, B, d, eps);
    be.mm_->linear(s, h_, be.wb(w.wqkv), qkv_, OutType::bf16, B, d, be.qkv_ld_);
    if (be.shift_) {
      be.mm_->linear(s, h_, be.wb(w.shift_k), prek_, OutType::f32, B, d, Hkv);
      be.mm_->linear(s, h_, be.wb(w.shift_v), prev_, OutType::f32, B, d, Hkv);
    }
    const bool gated = be.gated(l);
    if (gated) {
      broadcast_rows(s, be.master_ + o.gate_b, B, H, hg_);  // fp32 bias, as the training forward
      be.mm_->linear(s, h_, be.wb(w.gate_w), hg_, OutType::f32, B, d, H, 1.0f);
      be.mm_->linear(s, h_, be.wb(w.gate_sharp), pre_, OutType::f32, B, d, H);
    }
    decode_append(s, dims_[size_t(l)], cache_[size_t(l)], pos_dev_, qkv_, be.shift_ ? prek_ : nullptr,
                  be.shift_ ? prev_ : nullptr, gated ? hg_ : nullptr, gated ? pre_ : nullptr, be.wb(w.q_norm),
                  be.wb(w.k_norm), q_);
    decode_attention(s, dims_[size_t(l)], cache_[size_t(l)], pos_dev_, q_, o_, ws_);
    be.mm_->linear(s, o_, be.wb(w.wo), xm_, OutType::bf16, B, d, d, 1.0f, x_);  // xm = x + o Wo^T
    rmsnorm_forward(s, xm_, be.wb(w.mlp_norm), h_, rstd_, B, d, eps);
    be.mm_->linear(s, h_, be.wb(w.w13), u_, OutType::bf16, B, d, 2 * F);
    swiglu_forward(s, u_, g_, B, F);
    be.mm_->linear(s, g_, be.wb(w.w2), x_, OutType::bf16, B, F, d, 1.0f, xm_);  // x = xm + g W2^T
  }
  rmsnorm_forward(s, x_, be.wb(be.pl_.final_norm_bf16()), h_, rstd_, B, d, eps);
  be.mm_->linear(s, h_, be.wb(be.pl_.embed_bf16()), logits_dev_, OutType::f32, B, d, be.V_);
  decode_advance(s, pos_dev_, B);
}

void CudaDecoder::step(const int32_t* tokens) {
  check_step(tokens);
  cudaStream_t s = be_.stream_;
  CUDA_CHECK(cudaMemcpyAsync(tokens_dev_, tokens, size_t(batch_) * sizeof(int32_t), cudaMemcpyHostToDevice, s));
  // The first step runs as is (GEMM plans are made on the host then); the second is captured
  // into a graph, which every later step replays. A step that cannot be captured stays eager.
  if (steps_ == 1) {
    cudaGraph_t g = nullptr;
    std::string why;
    CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    try {
      run_step();
    } catch (const std::exception& e) {
      why = e.what();
    }
    const cudaError_t end = cudaStreamEndCapture(s, &g);
    if (why.empty() && end != cudaSuccess) why = cudaGetErrorString(end);
    if (why.empty() && cudaGraphInstantiate(&graph_, g, 0) != cudaSuccess) why = "instantiation failed";
    if (g) cudaGraphDestroy(g);
    if (!why.empty()) {
      cudaGetLastError();
      graph_ = nullptr;
      spdlog::warn("decoder: the step could not be captured as a CUDA graph ({}); it runs eagerly", why);
    }
  }
  if (graph_)
    CUDA_CHECK(cudaGraphLaunch(graph_, s));
  else
    run_step();
  CUDA_CHECK(cudaStreamSynchronize(s));  // the host's token array is reused by the caller
  for (int64_t& p : pos_) ++p;
  ++steps_;
  logits_fresh_ = false;
}

const std::vector<float>& CudaDecoder::logits() {
  if (!logits_fresh_) {
    CUDA_CHECK(cudaMemcpyAsync(logits_.data(), logits_dev_, logits_.size() * sizeof(float), cudaMemcpyDeviceToHost,
                               be_.stream_));
    CUDA_CHECK(cudaStreamSynchronize(be_.stream_));
    logits_fresh_ = true;
  }
  return logits_;
}

void CudaDecoder::greedy(int limit, int32_t* ids) {
  argmax_rows(be_.stream_, logits_dev_, batch_, be_.V_, limit, ids_dev_);
  CUDA_CHECK(cudaMemcpyAsync(ids, ids_dev_, size_t(batch_) * sizeof(int32_t), cudaMemcpyDeviceToHost, be_.stream_));
  CUDA_CHECK(cudaStreamSynchronize(be_.stream_));
}

}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
