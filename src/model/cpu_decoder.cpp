#include "model/cpu_decoder.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "kernels/decode_cpu.h"
#include "kernels/embedding_cpu.h"
#include "kernels/matmul_cpu.h"
#include "kernels/rmsnorm_cpu.h"
#include "kernels/swiglu_cpu.h"
#include "model/cpu_layer_params.h"

namespace gfwa {
namespace {

// Prompt tokens per forward_rows call: bounds the row buffers whatever the prompt length.
constexpr int kPrefillRows = 64;

void add_into(float* x, const float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace

CpuDecoder::CpuDecoder(const ModelConfig& cfg, const ParamLayout& layout, const std::vector<float>& params,
                       int batch, int64_t max_length)
    : Decoder(batch, decoder_max_length(cfg, max_length), cfg.vocab_size),
      cfg_(cfg),
      layout_(layout),
      params_(params),
      caps_(decoder_cache_caps(cfg, max_length)) {
  if (batch < 1) throw std::invalid_argument("decoder: batch must be >= 1 (got " + std::to_string(batch) + ")");
  const size_t B = size_t(batch), H = cfg.n_heads, Ckv = cfg.kv_dim();
  cache_.resize(size_t(cfg.n_layers));
  for (int l = 0; l < cfg.n_layers; ++l) {
    LayerCache& c = cache_[size_t(l)];
    const size_t cap = size_t(caps_[size_t(l)]);
    c.k.assign(B * Ckv * cap, 0.0f);  // [B, Hkv, cap, D]
    c.v.assign(c.k.size(), 0.0f);
    if (cfg.layer_gated(l)) {
      c.lam.assign(B * H * cap, 0.0f);
      c.lam_now.assign(B * H, 0.0);
    }
    if (cfg.attention.token_shift) {
      c.shift_k.assign(B * Ckv, 0.0f);
      c.shift_v.assign(B * Ckv, 0.0f);
    }
  }
  logits_.assign(B * size_t(cfg.vocab_size), 0.0f);
}

int64_t CpuDecoder::cache_bytes() const {
  int64_t n = 0;
  for (const LayerCache& c : cache_)
    n += int64_t(sizeof(float)) * int64_t(c.k.size() + c.v.size() + c.lam.size() + c.shift_k.size() +
                                          c.shift_v.size()) +
         int64_t(sizeof(double)) * int64_t(c.lam_now.size());
  return n;
}

void CpuDecoder::resize_rows(int N) {
  const size_t n = size_t(N), C = cfg_.d_model, H = cfg_.n_heads, FH = cfg_.hidden();
  const size_t Ckv = cfg_.kv_dim(), Hkv = cfg_.kv_heads();
  for (auto* v : {&x_, &h_, &q_, &qr_, &o_, &tmp_}) v->resize(n * C);
  for (auto* v : {&k_, &v_}) v->resize(n * Ckv);
  for (auto* v : {&pre_k_, &pre_v_}) v->resize(n * Hkv);
  for (auto* v : {&hg_, &pre_}) v->resize(n * H);
  for (auto* v : {&a1_, &a3_, &g_}) v->resize(n * FH);
  rstd_.resize(n);
}

void CpuDecoder::forward_rows(const int32_t* tokens, const int* slots, const long long* pos,
                              const uint8_t* keep, int N) {
  const int C = cfg_.d_model, H = cfg_.n_heads, FH = cfg_.hidden(), V = cfg_.vocab_size;
  const int Ckv = cfg_.kv_dim(), Hkv = cfg_.kv_heads();
  const double eps = cfg_.norm_eps;
  const bool shift = cfg_.attention.token_shift;
  const float* base = params_.data();
  resize_rows(N);
  cpu::embedding_forward(x_.data(), tokens, base + layout_.get("embed").offset, N, C);
  for (int l = 0; l < cfg_.n_layers; ++l) {
    const AttnMode mode = cfg_.layer_attention(l).mode;
    const bool gated = mode == AttnMode::gatedfwa;
    const cpu::DecodeShape shape{batch_, H, cfg_.head_dim(), caps_[size_t(l)], mode, shift, eps,
                                 double(cfg_.attention.rope_theta), Hkv};
    const CpuLayerParams<const float> P = cpu_layer_params(cfg_, layout_, base, l);
    LayerCache& lc = cache_[size_t(l)];
    const cpu::DecodeCache<float> cache{lc.k.data(), lc.v.data(), lc.lam.data(), lc.shift_k.data(),
                                        lc.shift_v.data(), lc.lam_now.data()};
    cpu::rmsnorm_forward(h_.data(), rstd_.data(), x_.data(), P.attn_norm, N, C, eps);
    cpu::matmul_forward(q_.data(), h_.data(), P.wq, (const float*)nullptr, N, C, C);
    cpu::matmul_forward(k_.data(), h_.data(), P.wk, (const float*)nullptr, N, C, Ckv);
    cpu::matmul_forward(v_.data(), h_.data(), P.wv, (const float*)nullptr, N, C, Ckv);
    if (shift) {
      cpu::matmul_forward(pre_k_.data(), h_.data(), P.shift_k, (const float*)nullptr, N, C, Hkv);
      cpu::matmul_forward(pre_v_.data(), h_.data(), P.shift_v, (const float*)nullptr, N, C, Hkv);
    }
    if (gated) {
      cpu::matmul_forward(hg_.data(), h_.data(), P.gate_w, P.gate_b, N, C, H);
      cpu::matmul_forward(pre_.data(), h_.data(), P.gate_sharp, (const float*)nullptr, N, C, H);
    }
    // Token by token: a row's query must see the keys of the rows before it and no later ones.
    for (int n = 0; n < N; ++n) {
      const size_t r = size_t(n) * C, rkv = size_t(n) * Ckv, g = size_t(n) * H, gkv = size_t(n) * Hkv;
      cpu::decode_append(shape, cache, slots[n], pos[n], &q_[r], &k_[rkv], &v_[rkv],
                         shift ? &pre_k_[gkv] : nullptr, shift ? &pre_v_[gkv] : nullptr, gated ? &hg_[g] : nullptr,
                         gated ? &pre_[g] : nullptr, P.q_norm, P.k_norm, &qr_[r]);
      cpu::decode_attention(shape, cache, slots[n], pos[n], &qr_[r], &o_[r]);
    }
    cpu::matmul_forward(tmp_.data(), o_.data(), P.wo, (const float*)nullptr, N, C, C);
    add_into(x_.data(), tmp_.data(), size_t(N) * C);
    cpu::rmsnorm_forward(h_.data(), rstd_.data(), x_.data(), P.mlp_norm, N, C, eps);
    cpu::matmul_forward(a1_.data(), h_.data(), P.w1, (const float*)nullptr, N, C, FH);
    cpu::matmul_forward(a3_.data(), h_.data(), P.w3, (const float*)nullptr, N, C, FH);
    cpu::swiglu_forward(g_.data(), a1_.data(), a3_.data(), size_t(N) * FH);
    cpu::matmul_forward(tmp_.data(), g_.data(), P.w2, (const float*)nullptr, N, FH, C);
    add_into(x_.data(), tmp_.data(), size_t(N) * C);
  }
  const float* final_norm = base + layout_.get("final_norm").offset;
  const float* embed = base + layout_.get("embed").offset;
  for (int n = 0; n < N; ++n) {
    if (!keep[n]) continue;
    float* hrow = &h_[size_t(n) * C];
    cpu::rmsnorm_forward(hrow, &rstd_[size_t(n)], &x_[size_t(n) * C], final_norm, 1, C, eps);
    cpu::matmul_forward(&logits_[size_t(slots[n]) * V], hrow, embed, (const float*)nullptr, 1, C, V);
  }
}

void CpuDecoder::prefill(int b, const int32_t* tokens, int n) {
  check_prefill(b, tokens, n);
  std::vector<int> slots(size_t(std::min(n, kPrefillRows)), b);
  std::vector<long long> pos(slots.size());
  std::vector<uint8_t> keep(slots.size());
  for (int t0 = 0; t0 < n; t0 += kPrefillRows) {
    const int rows = std::min(kPrefillRows, n - t0);
    for (int i = 0; i < rows; ++i) {
      pos[size_t(i)] = t0 + i;
      keep[size_t(i)] = t0 + i == n - 1;
    }
    forward_rows(tokens + t0, slots.data(), pos.data(), keep.data(), rows);
  }
  pos_[size_t(b)] = n;
}

void CpuDecoder::step(const int32_t* tokens) {
  check_step(tokens);
  std::vector<int> slots(static_cast<size_t>(batch_));
  std::vector<long long> pos(slots.size());
  const std::vector<uint8_t> keep(slots.size(), 1);
  for (int b = 0; b < batch_; ++b) {
    slots[size_t(b)] = b;
    pos[size_t(b)] = pos_[size_t(b)];
  }
  forward_rows(tokens, slots.data(), pos.data(), keep.data(), batch_);
  for (int64_t& p : pos_) ++p;
}

}  // namespace gfwa
