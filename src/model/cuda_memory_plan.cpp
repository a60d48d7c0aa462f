#include "model/cuda_memory_plan.h"

#include <algorithm>
#include <cstdio>

#include "kernels/attention_workspace.h"
#include "kernels/nsa_layout.h"
#include "model/zero1_shards.h"

namespace gfwa {
namespace {

bool ends_with(const std::string& s, const char* suffix) {
  const size_t k = std::char_traits<char>::length(suffix);
  return s.size() >= k && s.compare(s.size() - k, k, suffix) == 0;
}

size_t chunks_of(size_t numel) { return (numel + kCudaAdamWChunkElems - 1) / kCudaAdamWChunkElems; }

// What Muon adds to the optimizer state (CudaBackend::plan_muon): AdamW chunks of the other tensors
// and momentum chunks of the hidden matrices over this rank's pieces (the whole layout without
// ZeRO-1), and Newton-Schulz scratch sized by the largest hidden matrix a piece touches.
struct MuonSizes {
  size_t adamw_chunks = 0, momentum_chunks = 0, max_numel = 0, max_side = 0;
};

MuonSizes muon_sizes(const ParamLayout& layout, const CudaMemoryShape& s) {
  MuonSizes m;
  if (!s.muon) return m;
  const bool zero1 = s.zero1_world > 0;
  const ShardPlan shards = plan_shards(layout.total(), zero1 ? s.zero1_world : 1);
  for (const ShardPiece& pc : shard_pieces(layout.tensors(), shards, zero1 ? s.zero1_rank : 0)) {
    const ParamTensor& t = layout.tensors()[size_t(pc.tensor)];
    (t.hidden ? m.momentum_chunks : m.adamw_chunks) += chunks_of(pc.end - pc.begin);
    if (!t.hidden) continue;
    m.max_numel = std::max(m.max_numel, t.numel);
    m.max_side = std::max(m.max_side, size_t(std::min(t.shape[0], t.shape[1])));
  }
  return m;
}

std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / double(1ull << 30));
  return buf;
}

}  // namespace

std::vector<size_t> cuda_bf16_offsets(const ParamLayout& layout, size_t* total) {
  std::vector<size_t> out;
  size_t cur = 0;
  for (const ParamTensor& t : layout.tensors()) {
    const bool continues_group = ends_with(t.name, "attn.wk") || ends_with(t.name, "attn.wv") || ends_with(t.name, "mlp.w3");
    if (!continues_group) cur = (cur + kCudaBf16GroupAlign - 1) / kCudaBf16GroupAlign * kCudaBf16GroupAlign;
    out.push_back(cur);
    cur += t.numel;
  }
  *total = cur;
  return out;
}

// Mirrors CudaBackend::plan buffer by buffer, in its order (cuda_backend.cpp).
CudaMemoryPlan cuda_memory_plan(const CudaMemoryShape& s) {
  const ModelConfig& m = s.model;
  const ParamLayout layout(m);
  const size_t N = size_t(s.max_B) * size_t(s.max_T), d = m.d_model, H = m.n_heads, F = m.hidden(),
               V = m.vocab_size, D = m.head_dim(), Hkv = m.kv_heads(), ld = d + 2 * size_t(m.kv_dim());
  const bool shift = m.attention.token_shift;
  constexpr size_t bf16 = 2, f32 = 4, i32 = 4;

  CudaMemoryPlan p;
  p.params = layout.total();
  size_t bf16_total = 0;
  cuda_bf16_offsets(layout, &bf16_total);
  size_t grad_elems = p.params, moment_elems = p.params, chunks = 0, shard_chunks = 0;
  for (const ParamTensor& t : layout.tensors()) chunks += chunks_of(t.numel);
  if (s.zero1_world > 0) {
    const ShardPlan shards = plan_shards(p.params, s.zero1_world);
    grad_elems = shards.padded();
    moment_elems = shards.shard;
    for (const ShardPiece& piece : shard_pieces(layout.tensors(), shards, s.zero1_rank))
      shard_chunks += chunks_of(piece.end - piece.begin);
  }
  p.logits_rows = int(std::min<size_t>(N, std::max<size_t>(64, kCudaLogitsChunkBytes / (V * bf16) / 64 * 64)));

  ArenaPlan& a = p.arena;
  a.add(bf16_total * bf16, ArenaCategory::params);
  a.add(grad_elems * f32, ArenaCategory::params);
  a.add(grad_elems * f32, ArenaCategory::grads);
  a.add(moment_elems * f32, ArenaCategory::optimizer);
  a.add(moment_elems * f32, ArenaCategory::optimizer);
  a.add(chunks * kCudaAdamWChunkBytes, ArenaCategory::optimizer);
  a.add(shard_chunks * kCudaAdamWChunkBytes, ArenaCategory::optimizer);
  const MuonSizes mu = muon_sizes(layout, s);
  a.add(mu.adamw_chunks * kCudaAdamWChunkBytes, ArenaCategory::optimizer);
  a.add(mu.momentum_chunks * kCudaAdamWChunkBytes, ArenaCategory::optimizer);
  for (int k = 0; k < 2; ++k) a.add(mu.max_numel * bf16, ArenaCategory::optimizer);                // ns x, y
  for (int k = 0; k < 2; ++k) a.add(mu.max_side * mu.max_side * bf16, ArenaCategory::optimizer);  // ns gram, poly
  a.add(s.muon ? kCudaGradNormBlocks * f32 : 0, ArenaCategory::optimizer);                        // ns partial
  a.add(s.muon ? sizeof(double) : 0, ArenaCategory::optimizer);                                   // ns sumsq
  // NSA (CudaBackend's constructor): each nsa layer's saved tensors, sized for one sequence of N tokens (which
  // bounds every micro-batch of N tokens), and the backward's workspace for max_B x max_T.
  size_t nsa_saved = 0, nsa_ws = 0;
  bool any_attention = false;  // some layer runs the attention kernels (keeps lse), not the NSA core
  for (int l = 0; l < m.n_layers; ++l) {
    any_attention = any_attention || !m.layer_nsa(l);
    if (!m.layer_nsa(l)) continue;
    nsa_saved = nsa_saved_bytes(m.nsa_shape(l, 1, int(N)));
    nsa_ws = nsa_bwd_workspace_bytes(m.nsa_shape(l, s.max_B, s.max_T), NsaSplit{});
  }
  // A layer's fp32 tensors: rstd1 rstdq rstdk rstd2, then as its mode needs: lse, token shift's prek prev,
  // GatedFWA's hg pre lam, an nsa layer's branch gates and core's saved tensors.
  auto fp32_acts = [&](ArenaCategory c, bool lse, bool gated, bool nsa) {
    for (int k = 0; k < 4; ++k) a.add(N * f32, c);
    if (lse) a.add(N * H * f32, c);
    if (shift)
      for (int k = 0; k < 2; ++k) a.add(N * Hkv * f32, c);
    if (gated)
      for (int k = 0; k < 3; ++k) a.add(N * H * f32, c);
    if (nsa) {
      a.add(3 * N * H * f32, c);  // the gates
      a.add(nsa_saved, c);        // the core's saved tensors
    }
  };
  // Per layer what train.recompute keeps (none: all; selective: all but the glue h1 qkvr h2 g; full: x).
  const bool keep_glue = s.recompute == Recompute::none, keep_layer = s.recompute != Recompute::full;
  for (int l = 0; l < m.n_layers; ++l) {
    const ArenaCategory c = ArenaCategory::activations;
    const size_t before = a.bytes(c);
    a.add(N * d * bf16, c);  // x
    if (keep_layer) {
      if (keep_glue) a.add(N * d * bf16, c);   // h1
      a.add(N * ld * bf16, c);                 // qkv
      if (keep_glue) a.add(N * ld * bf16, c);  // qkvr
      for (int k = 0; k < 2; ++k) a.add(N * d * bf16, c);  // o xm
      if (keep_glue) a.add(N * d * bf16, c);   // h2
      a.add(N * 2 * F * bf16, c);              // u
      if (keep_glue) a.add(N * F * bf16, c);   // g
      fp32_acts(c, !m.layer_nsa(l), m.layer_gated(l), m.layer_nsa(l));
    }
    p.activations_per_layer = std::max(p.activations_per_layer, a.bytes(c) - before);
  }
  a.add(N * d * bf16, ArenaCategory::activations);  // x_final
  a.add(N * d * bf16, ArenaCategory::activations);  // hf
  a.add(N * f32, ArenaCategory::activations);       // rstdf
  // One set for what the layers do not keep (g lives in the workspace's g; selective: h2 in h1's).
  if (s.recompute != Recompute::none) {
    const ArenaCategory c = ArenaCategory::recompute;
    a.add(N * d * bf16, c);                    // h1
    if (!keep_layer) a.add(N * ld * bf16, c);  // qkv
    a.add(N * ld * bf16, c);                   // qkvr
    if (!keep_layer) {
      for (int k = 0; k < 3; ++k) a.add(N * d * bf16, c);  // o xm h2
      a.add(N * 2 * F * bf16, c);                          // u
      fp32_acts(c, any_attention, m.any_gated(), m.any_nsa());
    }
  }
  const ArenaCategory w = ArenaCategory::workspace;
  a.add(N * F * bf16, w);  // g
  for (int k = 0; k < 3; ++k) a.add(N * d * bf16, w);  // dres dh do
  a.add(N * ld * bf16, w);                             // dqkv
  if (shift) a.add(N * ld * bf16, w);                  // dqkv2
  a.add(size_t(p.logits_rows) * V * bf16, w);
  a.add(V * f32, w);  // last_logits
  a.add(N * f32, w);  // loss_rows
  a.add(N * i32, w);  // argmax_rows
  a.add(kCudaLossSlots * f32, w);  // loss_sum: one per queued micro-batch
  a.add(std::max<size_t>(1, std::min(N, kCudaMaxPartialBlocks)) * 2 * d * f32, w);  // partials
  a.add(kCudaGradNormBlocks * f32, w);                                              // norm_partials
  a.add(sizeof(double), w);                                                         // norm_out
  for (int k = 0; k < 3; ++k) a.add(N * H * f32, w);   // dlam dhg dpre
  for (int k = 0; k < 2; ++k) a.add(N * H * bf16, w);    // dhg_b dpre_b
  for (int k = 0; k < 2; ++k) a.add(N * Hkv * bf16, w);  // dsk_b dsv_b
  a.add(N * i32, w);        // inputs
  a.add(N * i32, w);        // targets
  a.add(N * i32, w);        // tok_token
  a.add((N + 1) * i32, w);  // tok_start
  a.add(N * i32, w);        // tok_pos
  a.add(size_t(s.max_T) * (D / 2) * 2 * f32, w);  // rope (float2)
  a.add(kCudaMatmulWorkspaceBytes, w);
  a.add(attn_bwd_workspace(s.max_B, s.max_T, int(H), int(D)).bytes, w);  // attention backward (either path)
  if (m.any_nsa()) {
    a.add(3 * N * H * f32, w);   // the gate projection's output
    a.add(3 * N * H * f32, w);   // the gates' gradient
    a.add(3 * N * H * bf16, w);  // the pre-activations' gradient
    a.add(nsa_ws, w);            // the core's backward
  }
  return p;
}

std::vector<std::string> cuda_memory_plan_lines(const CudaMemoryShape& s, const CudaMemoryPlan& p) {
  std::vector<std::string> out;
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "cuda backend memory plan: %.3f GiB for %zu params, micro-batch up to %d x %d, train.recompute %s, "
                "logits chunk %d rows",
                double(p.arena.total()) / double(1ull << 30), p.params, s.max_B, s.max_T, recompute_name(s.recompute),
                p.logits_rows);
  out.push_back(buf);
  for (int c = 0; c < int(ArenaCategory::count); ++c) {
    std::snprintf(buf, sizeof buf, "  %-58s %10.3f GiB", arena_category_name(ArenaCategory(c)),
                  double(p.arena.bytes(ArenaCategory(c))) / double(1ull << 30));
    out.push_back(buf);
  }
  return out;
}

std::string cuda_memory_plan_problem(const CudaMemoryShape& s, size_t free_bytes) {
  const CudaMemoryPlan p = cuda_memory_plan(s);
  if (p.arena.total() <= free_bytes) return "";
  const ArenaPlan& a = p.arena;
  const ModelConfig& m = s.model;
  const double state = double(a.bytes(ArenaCategory::params) + a.bytes(ArenaCategory::grads) +
                              a.bytes(ArenaCategory::optimizer));
  const std::string B = std::to_string(s.max_B), T = std::to_string(s.max_T);
  const size_t recomputed = a.bytes(ArenaCategory::recompute);
  std::string msg = "cuda backend: the memory plan needs " + gib(double(a.total())) + ", more than the " +
                    gib(double(free_bytes)) + " free on the device: parameters, gradients and optimizer state " +
                    gib(state) + " (model.d_model " + std::to_string(m.d_model) + ", model.n_layers " +
                    std::to_string(m.n_layers) + ", MLP width " + std::to_string(m.hidden()) + ", model.vocab_size " +
                    std::to_string(m.vocab_size) + (s.zero1_world > 0 ? ", ZeRO-1 over " + std::to_string(s.zero1_world) + " ranks" : "") +
                    "); activations " + gib(double(a.bytes(ArenaCategory::activations))) + " (" +
                    gib(double(p.activations_per_layer)) + " per layer with train.recompute " +
                    recompute_name(s.recompute) + ")" +
                    (recomputed > 0 ? ", one layer's recomputed activations " + gib(double(recomputed)) : "") +
                    " and workspace " + gib(double(a.bytes(ArenaCategory::workspace))) +
                    " for micro-batches of train.batch_size " + B + " x train.seq_len " + T + ". ";
  // The largest divisor of the batch size that fits: train.tokens_per_step, a multiple of the batch
  // size, stays a multiple of it, so gradient accumulation keeps the tokens per step. Then each
  // stronger recomputation level that fits a larger batch, the lightest one that fits the whole
  // batch last.
  auto largest_batch = [&](Recompute r) {
    CudaMemoryShape t = s;
    t.recompute = r;
    for (int b = s.max_B; b >= 1; --b) {
      if (s.max_B % b != 0) continue;
      t.max_B = b;
      if (cuda_memory_plan(t).arena.total() <= free_bytes) return b;
    }
    return 0;
  };
  std::vector<std::string> ways;
  bool recomputation = false;
  int best = largest_batch(s.recompute);
  if (best > 0)
    ways.push_back("train.batch_size " + std::to_string(best) + " fits: lower it to that (train.tokens_per_step " +
                   "keeps the tokens per step through gradient accumulation)");
  for (Recompute r : {Recompute::selective, Recompute::full}) {
    if (r <= s.recompute || best == s.max_B) continue;
    const int b = largest_batch(r);
    if (b <= best) continue;
    best = b;
    recomputation = true;
    ways.push_back("set train.recompute " + std::string(recompute_name(r)) + ", which fits " +
                   (b == s.max_B ? "this batch size" : "train.batch_size " + std::to_string(b)));
  }
  if (!ways.empty()) {
    std::string out = msg;
    for (const std::string& w : ways) out += w + "; or ";
    out += "lower train.seq_len";
    if (recomputation) out += ". Recomputation changes no bit of the results, only the time of a step";
    return out;
  }
  CudaMemoryShape t = s;
  t.max_B = 1;
  t.max_T = 1;
  if (cuda_memory_plan(t).arena.total() <= free_bytes)
    return msg + "Not even train.batch_size 1 fits" +
           (s.recompute == Recompute::full ? "" : std::string(", with train.recompute full either")) +
           ": lower train.seq_len (or the model's size)";
  return msg + "The model alone does not fit: a smaller model" +
         (s.zero1_world > 0 ? std::string(", or more ranks for ZeRO-1") : std::string(", or several GPUs with distributed.zero1"));
}

}  // namespace gfwa
