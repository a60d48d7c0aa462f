// The cuda backend's memory plan computed from shapes alone (model/cuda_memory_plan.h), on any
// machine: the figures the GPU printed for the 124m preset, each category by hand for a small
// model (per-layer gates of a pattern, token shift, grouped-query attention, Muon, ZeRO-1), the
// refusal naming the batch size that fits, and every preset fitting one H200. On the GPU, every
// CudaBackend checks its arena against this plan at construction (test_cuda_backend.cpp and every
// other cuda test exercise it).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "kernels/nsa_layout.h"
#include "model/cuda_memory_plan.h"
#include "model/zero1_shards.h"
#include "train/config_io.h"

using namespace gfwa;
namespace fs = std::filesystem;

namespace {

constexpr double kGiB = double(1ull << 30);

double gib(const CudaMemoryPlan& p, ArenaCategory c) { return double(p.arena.bytes(c)) / kGiB; }

// The plan of a shape at each train.recompute level.
struct LevelPlans {
  CudaMemoryPlan none, sel, full;
};

LevelPlans plans_by_level(CudaMemoryShape s) {
  LevelPlans p;
  s.recompute = Recompute::none;
  p.none = cuda_memory_plan(s);
  s.recompute = Recompute::selective;
  p.sel = cuda_memory_plan(s);
  s.recompute = Recompute::full;
  p.full = cuda_memory_plan(s);
  return p;
}

// Recomputation moves activations only: parameters, gradients, optimizer state and workspace stay.
void expect_only_activations_move(const LevelPlans& p) {
  for (const CudaMemoryPlan* q : {&p.sel, &p.full})
    for (ArenaCategory c : {ArenaCategory::params, ArenaCategory::grads, ArenaCategory::optimizer,
                            ArenaCategory::workspace})
      EXPECT_EQ(q->arena.bytes(c), p.none.arena.bytes(c)) << arena_category_name(c);
}

ModelConfig small(bool shift, const std::string& letters, int kv_heads = 0) {
  ModelConfig m;
  m.vocab_size = 1000;
  m.n_layers = 4;
  m.d_model = 128;
  m.n_heads = 4;
  m.n_kv_heads = kv_heads;
  m.ffn_hidden = 200;
  m.attention.mode = AttnMode::gatedfwa;
  m.attention.token_shift = shift;
  m.attention.pattern.letters = letters;
  return m;
}

}  // namespace

// docs/cuda_backend.md, "Memory plan": what the H200 printed for the 124m model at 32 x 1024; the workspace
// since grew by the sm_90a attention backward's part (0.100 GiB: kernels/attention_workspace.h) from the 1.508 printed.
TEST(CudaMemoryPlan, ReproducesThePlanTheGpuPrinted) {
  const CudaMemoryPlan p = cuda_memory_plan({ModelConfig{}, 32, 1024, 0, 0});
  EXPECT_NEAR(gib(p, ArenaCategory::params), 0.850, 5e-4);
  EXPECT_NEAR(gib(p, ArenaCategory::grads), 0.567, 5e-4);
  EXPECT_NEAR(gib(p, ArenaCategory::optimizer), 1.134, 5e-4);
  EXPECT_NEAR(gib(p, ArenaCategory::activations), 13.108, 5e-4);
  EXPECT_NEAR(gib(p, ArenaCategory::workspace), 1.508 + 0.100, 5e-4);
  EXPECT_EQ(p.logits_rows, 10624);  // 1 GiB of bf16 logits at vocab 50304, in rows of 64
}

// Every category by hand: bf16 copy (groups 256-byte aligned), fp32 master, gradients, moments and
// AdamW chunks; per layer the bf16 activations of 5 d + 2 (d + 2 Hkv D) + 3 F columns (q | k | v raw
// and rotated are d + 2 Hkv D wide), four fp32 row statistics, the log-sum-exp, token shift's two
// fp32 [N, Hkv] and a gated layer's three fp32 [N, H] tensors; the workspace's K/V-sized buffers.
TEST(CudaMemoryPlan, EveryCategoryByHand) {
  for (int kv : {0, 2, 1})
    for (bool shift : {false, true})
      for (const char* letters : {"", "SL", "LL"}) {
        SCOPED_TRACE("n_kv_heads " + std::to_string(kv) + " shift " + (shift ? "on" : "off") + " pattern \"" +
                     letters + "\"");
        const ModelConfig m = small(shift, letters, kv);
        const CudaMemoryPlan p = cuda_memory_plan({m, 3, 40, 0, 0});
        const ParamLayout layout(m);
        const size_t P = layout.total(), N = 3 * 40, d = 128, H = 4, Hkv = kv ? kv : 4, D = 32, F = 200;
        const size_t ld = d + 2 * Hkv * D;
        size_t bf16_total = 0, chunks = 0;
        cuda_bf16_offsets(layout, &bf16_total);
        for (const ParamTensor& t : layout.tensors()) chunks += (t.numel + 8191) / 8192;
        EXPECT_EQ(layout.get("layers.0.attn.wk").shape, (std::vector<int>{int(Hkv * D), int(d)}));
        EXPECT_EQ(p.params, P);
        EXPECT_EQ(p.arena.bytes(ArenaCategory::params), 2 * bf16_total + 4 * P);
        EXPECT_EQ(p.arena.bytes(ArenaCategory::grads), 4 * P);
        EXPECT_EQ(p.arena.bytes(ArenaCategory::optimizer), 8 * P + 24 * chunks);
        int gated = 0;
        for (int l = 0; l < m.n_layers; ++l) gated += m.layer_gated(l);
        EXPECT_EQ(gated, *letters == 0 ? 4 : *letters == 'S' ? 2 : 0);
        const size_t layer = N * (2 * (5 * d + 2 * ld + 3 * F) + 4 * 4 + 4 * H + (shift ? 8 * Hkv : 0));
        EXPECT_EQ(p.arena.bytes(ArenaCategory::activations), 4 * layer + gated * 12 * N * H + N * (4 * d + 4));
        EXPECT_EQ(p.activations_per_layer, layer + (gated ? 12 * N * H : 0));
        // g, dres, dh, do; dqkv (and dqkv2 with token shift); the logits chunk and the vocabulary's
        // fp32 row; six [N] rows (loss, argmax, inputs, targets, token ids, positions), the token
        // starts and the loss sums of 256 queued micro-batches; the rmsnorm partials; the gradient norm's; five [N, H] gate
        // buffers and two [N, Hkv] shift ones; RoPE; cuBLASLt; the attention backward's workspace
        // (kernels/attention_workspace.h): delta [B, H, T] padded to 256 bytes, delta and (lam, lse) as [B, H, 128]
        // rows, one dQ block of 128 x (D + 1) floats and one ticket per (b, h) (T = 40: one query tile of 128).
        const size_t V = 1000, logits_rows = N;
        const size_t workspace = N * F * 2 + 3 * N * d * 2 + (shift ? 2 : 1) * N * ld * 2 + logits_rows * V * 2 +
                                 V * 4 + 6 * N * 4 + (N + 1) * 4 + 256 * 4 + 120 * 2 * d * 4 + 1024 * 4 + 8 +
                                 3 * N * H * 4 + 2 * N * H * 2 + 2 * N * Hkv * 2 + 40 * (D / 2) * 8 +
                                 (size_t(32) << 20) + (N * H * 4 + 255) / 256 * 256 + 3 * 3 * H * 128 * 4 +
                                 3 * H * 128 * (D + 1) * 4 + 3 * H * 4;
        EXPECT_EQ(p.arena.bytes(ArenaCategory::workspace), workspace);
        // Everything lies in one allocation, each buffer 256-byte aligned.
        size_t sum = 0;
        for (int c = 0; c < int(ArenaCategory::count); ++c) sum += p.arena.bytes(ArenaCategory(c));
        EXPECT_GE(p.arena.total(), sum);
        EXPECT_LT(p.arena.total(), sum + 256 * (60 + 25 * 4));
      }
}

// train.recompute by hand: selective keeps per layer x, q|k|v raw, o, xm and u (3 d + ld + 2 F bf16
// columns) with every fp32 tensor, and shares one h (h1, then h2) and one rotated q|k|v; full keeps x
// alone and shares one layer's every tensor but x and g (g is the workspace's). Nothing else changes.
TEST(CudaMemoryPlan, RecomputeKeepsWhatItsLevelSays) {
  for (int kv : {0, 1})
    for (bool shift : {false, true})
      for (const char* letters : {"", "SL", "LL"}) {
        SCOPED_TRACE("n_kv_heads " + std::to_string(kv) + " shift " + (shift ? "on" : "off") + " pattern \"" +
                     letters + "\"");
        const ModelConfig m = small(shift, letters, kv);
        const size_t N = 3 * 40, d = 128, H = 4, Hkv = kv ? kv : 4, D = 32, F = 200, ld = d + 2 * Hkv * D;
        int gated = 0;
        for (int l = 0; l < m.n_layers; ++l) gated += m.layer_gated(l);
        const size_t fp32 = N * (4 * 4 + 4 * H + (shift ? 8 * Hkv : 0)), gates = 12 * N * H;
        const size_t final_acts = N * (4 * d + 4);  // x_final, hf, rstdf
        const LevelPlans levels = plans_by_level({m, 3, 40, 0, 0});
        const CudaMemoryPlan &none = levels.none, &sel = levels.sel, &full = levels.full;
        EXPECT_EQ(none.arena.bytes(ArenaCategory::recompute), 0u);

        const size_t sel_layer = N * 2 * (3 * d + ld + 2 * F) + fp32;
        EXPECT_EQ(sel.activations_per_layer, sel_layer + (gated ? gates : 0));
        EXPECT_EQ(sel.arena.bytes(ArenaCategory::activations), 4 * sel_layer + gated * gates + final_acts);
        EXPECT_EQ(sel.arena.bytes(ArenaCategory::recompute), N * 2 * (d + ld));

        EXPECT_EQ(full.activations_per_layer, N * 2 * d);
        EXPECT_EQ(full.arena.bytes(ArenaCategory::activations), 4 * N * 2 * d + final_acts);
        EXPECT_EQ(full.arena.bytes(ArenaCategory::recompute),
                  N * 2 * (4 * d + 2 * ld + 2 * F) + fp32 + (gated ? gates : 0));

        expect_only_activations_move(levels);
        EXPECT_LT(full.arena.total(), sel.arena.total());
        EXPECT_LT(sel.arena.total(), none.arena.total());
      }
}

// What recomputation buys on the presets: on the 1.3b model full < selective < none, each level's
// activations a fraction of the one below; and 128k-token contexts (gatedfwa W 2048, the
// long-context runs of docs/benchmarks.md) fit one H200 with full recomputation only: one sequence of
// the 1.3b model (314 GiB without recomputation, 208 selective, 58 full), four of the 124m one
// (512k tokens per micro-batch: 223, 145, 37).
TEST(CudaMemoryPlan, RecomputeShrinksThePresetsAndFitsLongContexts) {
  const RunConfig c = load_config((fs::path(GFWA_SOURCE_DIR) / "configs" / "gpt1.3b_gatedfwa.json").string());
  CudaMemoryShape s{c.model, c.train.batch_size, c.train.seq_len, 0, 0};
  double gb[3], acts[3];
  for (Recompute r : {Recompute::none, Recompute::selective, Recompute::full}) {
    s.recompute = r;
    const CudaMemoryPlan p = cuda_memory_plan(s);
    gb[int(r)] = double(p.arena.total()) / kGiB;
    acts[int(r)] = gib(p, ArenaCategory::activations);
    std::printf("[ info ] gpt1.3b %d x %d, train.recompute %s: %.2f GiB (activations %.2f, recomputed %.2f)\n",
                s.max_B, s.max_T, recompute_name(r), gb[int(r)], acts[int(r)], gib(p, ArenaCategory::recompute));
  }
  EXPECT_LT(gb[2], gb[1]);
  EXPECT_LT(gb[1], gb[0]);
  EXPECT_LT(acts[1], 0.7 * acts[0]);   // the glue is over 30% of what a layer saves
  EXPECT_LT(acts[2], 0.05 * acts[0]);  // x is 1/23 of it
  for (const auto& [preset, B] : {std::pair{"gpt124m_gatedfwa.json", 4}, std::pair{"gpt1.3b_gatedfwa.json", 1}}) {
    SCOPED_TRACE(preset);
    RunConfig lc = load_config((fs::path(GFWA_SOURCE_DIR) / "configs" / preset).string());
    lc.model.attention.window = 2048;
    CudaMemoryShape t{lc.model, B, 131072, 0, 0};
    const size_t h200 = size_t(128) << 30;
    for (Recompute r : {Recompute::none, Recompute::selective, Recompute::full}) {
      t.recompute = r;
      EXPECT_EQ(cuda_memory_plan_problem(t, h200).empty(), r == Recompute::full) << recompute_name(r);
      std::printf("[ info ] %s T 131072 B %d, train.recompute %s: %.2f GiB\n", preset, B, recompute_name(r),
                  double(cuda_memory_plan(t).arena.total()) / kGiB);
    }
  }
}

// NSA layers: each keeps its gates [3, N, H] fp32 and the core's saved tensors (nsa_layout.h, sized for one
// sequence of N tokens, which bounds every micro-batch of N tokens) in place of the log-sum-exp; the
// workspace adds the gate projection's output and the gates' gradient (fp32 [N, 3H] each), the
// pre-activations' gradient (bf16) and the core's backward workspace for max_B x max_T. The parameters add
// each nsa layer's gate projection [3H, d]; a model without nsa layers plans none of it.
TEST(CudaMemoryPlan, NsaLayersAddTheirGatesSavedTensorsAndWorkspace) {
  for (AttnMode sliding : {AttnMode::swa, AttnMode::gatedfwa}) {
    SCOPED_TRACE(attn_mode_name(sliding));
    ModelConfig m = small(false, "SL", 1);  // S L S L
    m.attention.mode = sliding;
    const CudaMemoryPlan base = cuda_memory_plan({m, 3, 200, 0, 0});
    m.attention.mode = AttnMode::nsa;
    m.attention.nsa.sliding = sliding;
    const CudaMemoryPlan p = cuda_memory_plan({m, 3, 200, 0, 0});
    const size_t N = 600, H = 4, d = 128;
    const size_t saved = nsa_saved_bytes(m.nsa_shape(0, 1, int(N)));
    EXPECT_GE(saved, nsa_saved_bytes(m.nsa_shape(0, 3, 200)));
    const size_t ws = nsa_bwd_workspace_bytes(m.nsa_shape(0, 3, 200), NsaSplit{});
    EXPECT_EQ(p.params, base.params + 2 * 3 * H * d);
    EXPECT_EQ(p.arena.bytes(ArenaCategory::activations),
              base.arena.bytes(ArenaCategory::activations) + 2 * (3 * N * H * 4 + saved - N * H * 4));
    EXPECT_EQ(p.activations_per_layer, base.activations_per_layer + 3 * N * H * 4 + saved - N * H * 4);
    EXPECT_EQ(p.arena.bytes(ArenaCategory::workspace),
              base.arena.bytes(ArenaCategory::workspace) + 3 * N * H * (4 + 4 + 2) + ws);
  }
}

// train.recompute with nsa layers: selective drops the same glue from an nsa layer (the NSA core reads
// the rotated q|k|v, recomputed before its backward) and keeps its branch gates and the core's saved
// tensors per layer; full keeps x alone and the shared set holds what any layer needs: lse if some layer
// runs the attention kernels, GatedFWA's gates if some layer is gated, the nsa gates and saved tensors if
// some layer is nsa. Uniform nsa (each sliding branch) and nsa beside gatedfwa in both orders.
TEST(CudaMemoryPlan, RecomputeKeepsOrSharesTheNsaTensors) {
  const LayerAttention nsa{AttnMode::nsa, 0}, gfwa{AttnMode::gatedfwa, 0};
  struct Case {
    const char* name;
    AttnMode sliding;
    std::vector<LayerAttention> layers;  // empty: every layer nsa
  };
  for (const Case& k : {Case{"nsa, swa sliding", AttnMode::swa, {}}, Case{"nsa, gatedfwa sliding", AttnMode::gatedfwa, {}},
                        Case{"nsa gatedfwa nsa gatedfwa", AttnMode::gatedfwa, {nsa, gfwa, nsa, gfwa}},
                        Case{"gatedfwa nsa (swa sliding) x 2", AttnMode::swa, {gfwa, nsa, gfwa, nsa}}})
    for (bool shift : {false, true}) {
      SCOPED_TRACE(std::string(k.name) + (shift ? ", token shift" : ""));
      ModelConfig m = small(shift, "", 1);
      m.attention.mode = AttnMode::nsa;
      m.attention.nsa.sliding = k.sliding;
      m.attention.pattern.layers = k.layers;
      const size_t N = 3 * 200, d = 128, H = 4, Hkv = 1, F = 200, ld = d + 2 * Hkv * 32;
      const size_t saved = nsa_saved_bytes(m.nsa_shape(0, 1, int(N)));
      bool lse = false, gated = false;
      for (int l = 0; l < m.n_layers; ++l) {
        lse = lse || !m.layer_nsa(l);
        gated = gated || m.layer_gated(l);
      }
      EXPECT_EQ(lse, !k.layers.empty());
      const LevelPlans levels = plans_by_level({m, 3, 200, 0, 0});
      const CudaMemoryPlan &none = levels.none, &sel = levels.sel, &full = levels.full;
      const size_t glue = N * 2 * (2 * d + ld + F);  // h1 h2 qkvr g
      const size_t final_acts = N * (4 * d + 4);
      EXPECT_EQ(sel.activations_per_layer, none.activations_per_layer - glue);
      EXPECT_EQ(sel.arena.bytes(ArenaCategory::activations), none.arena.bytes(ArenaCategory::activations) - 4 * glue);
      EXPECT_EQ(sel.arena.bytes(ArenaCategory::recompute), N * 2 * (d + ld));
      EXPECT_EQ(full.activations_per_layer, N * 2 * d);
      EXPECT_EQ(full.arena.bytes(ArenaCategory::activations), 4 * N * 2 * d + final_acts);
      const size_t shared_fp32 = N * (4 * 4 + (lse ? 4 * H : 0) + (shift ? 8 * Hkv : 0)) + (gated ? 12 * N * H : 0) +
                                 12 * N * H + saved;
      EXPECT_EQ(full.arena.bytes(ArenaCategory::recompute), N * 2 * (4 * d + 2 * ld + 2 * F) + shared_fp32);
      expect_only_activations_move(levels);
    }
}

// optimizer.type muon (CudaBackend::plan_muon): the AdamW chunks of the other tensors and the
// momentum chunks of the hidden matrices (together as many as the chunks of the whole layout, or of
// a ZeRO-1 shard), and Newton-Schulz scratch: two bf16 copies of the largest hidden matrix the rank
// updates (whole: w1, w3, w2 of 200 x 128; a shard's may be the 128 x 128 wq or wo), two of the
// smaller side squared (128 for every hidden matrix here), the norm's 1024 partial sums and a double.
// Nothing else changes; an AdamW run plans none of it (the entries are empty).
TEST(CudaMemoryPlan, MuonAddsItsChunkListsAndScratch) {
  for (int kv : {0, 1}) {
    SCOPED_TRACE("n_kv_heads " + std::to_string(kv));
    const ModelConfig m = small(true, "SL", kv);
    const ParamLayout layout(m);
    for (int world : {0, 4})
      for (int rank = 0; rank < std::max(world, 1); ++rank) {
        SCOPED_TRACE("ZeRO-1 world " + std::to_string(world) + " rank " + std::to_string(rank));
        CudaMemoryShape s{m, 2, 16, rank, world, false};
        const CudaMemoryPlan adamw = cuda_memory_plan(s);
        s.muon = true;
        const CudaMemoryPlan muon = cuda_memory_plan(s);
        // The chunks AdamW walks (the whole layout's or the shard's) and the hidden matrices touched.
        const ShardPlan shards = plan_shards(layout.total(), std::max(world, 1));
        size_t chunks = 0, largest = 0;
        for (const ShardPiece& pc : shard_pieces(layout.tensors(), shards, rank)) {
          chunks += (pc.end - pc.begin + 8191) / 8192;
          const ParamTensor& t = layout.tensors()[size_t(pc.tensor)];
          if (t.hidden) largest = std::max(largest, t.numel);
        }
        if (world == 0) {
          EXPECT_EQ(largest, size_t(200 * 128));
        }
        EXPECT_TRUE(largest == size_t(200 * 128) || largest == size_t(128 * 128)) << largest;
        const size_t scratch = 2 * 2 * largest + 2 * 2 * 128 * 128 + 1024 * 4 + 8;
        EXPECT_EQ(muon.arena.bytes(ArenaCategory::optimizer),
                  adamw.arena.bytes(ArenaCategory::optimizer) + 24 * chunks + scratch);
        for (ArenaCategory c : {ArenaCategory::params, ArenaCategory::grads, ArenaCategory::activations,
                                ArenaCategory::workspace})
          EXPECT_EQ(muon.arena.bytes(c), adamw.arena.bytes(c));
      }
  }
}

// ZeRO-1: moments for one shard, gradients and master weights padded to whole shards.
TEST(CudaMemoryPlan, Zero1ShardsTheOptimizerState) {
  const ModelConfig m = small(true, "");
  const size_t P = ParamLayout(m).total();
  const ShardPlan shards = plan_shards(P, 4);
  const CudaMemoryPlan whole = cuda_memory_plan({m, 2, 16, 0, 0});
  for (int rank = 0; rank < 4; ++rank) {
    const CudaMemoryPlan p = cuda_memory_plan({m, 2, 16, rank, 4});
    EXPECT_EQ(p.arena.bytes(ArenaCategory::grads), 4 * shards.padded());
    EXPECT_GE(p.arena.bytes(ArenaCategory::optimizer), 8 * shards.shard);
    EXPECT_LT(p.arena.bytes(ArenaCategory::optimizer), whole.arena.bytes(ArenaCategory::optimizer) / 3);
    EXPECT_EQ(p.arena.bytes(ArenaCategory::activations), whole.arena.bytes(ArenaCategory::activations));
  }
}

// The refusal: the plan's parts and keys, and the largest divisor of the batch size that fits
// (train.tokens_per_step, a multiple of 64 x 1024 here, is then a multiple of it too).
TEST(CudaMemoryPlan, RefusalNamesTheBatchSizeThatFits) {
  const CudaMemoryShape s{ModelConfig{}, 64, 1024, 0, 0};
  const size_t need = cuda_memory_plan(s).arena.total();
  EXPECT_EQ(cuda_memory_plan_problem(s, need), "");
  for (const auto& [fits, divisor] : {std::pair{1, 1}, std::pair{17, 16}, std::pair{63, 32}}) {
    CudaMemoryShape f = s;
    f.max_B = fits;
    const size_t free_bytes = cuda_memory_plan(f).arena.total() + 1000;  // B fits, B + 1 does not
    const std::string msg = cuda_memory_plan_problem(s, free_bytes);
    SCOPED_TRACE(msg);
    EXPECT_EQ(msg.rfind("cuda backend: the memory plan needs ", 0), 0u);
    for (const char* part : {"model.d_model 768", "model.n_layers 12", "MLP width 3072", "model.vocab_size 50304",
                             "train.batch_size 64 x train.seq_len 1024", "per layer"})
      EXPECT_NE(msg.find(part), std::string::npos) << part;
    EXPECT_NE(msg.find("train.batch_size " + std::to_string(divisor) + " fits: lower it to that"), std::string::npos);
  }
  const size_t weights = cuda_memory_plan({ModelConfig{}, 1, 1, 0, 0}).arena.total();
  EXPECT_NE(cuda_memory_plan_problem(s, weights + 1000)
                .find("Not even train.batch_size 1 fits, with train.recompute full either: lower train.seq_len"),
            std::string::npos);
  EXPECT_NE(cuda_memory_plan_problem(s, weights / 2).find("The model alone does not fit: a smaller model, or several "
                                                          "GPUs with distributed.zero1"),
            std::string::npos);
}

// The refusal names the recomputation levels that would fit: the lightest that fits the whole batch,
// or each that fits a larger batch than the level below; never one at or below the configured level.
TEST(CudaMemoryPlan, RefusalNamesTheRecomputationThatFits) {
  CudaMemoryShape s{ModelConfig{}, 64, 1024, 0, 0};
  auto need = [&](Recompute r, int B) {
    CudaMemoryShape t = s;
    t.recompute = r;
    t.max_B = B;
    return cuda_memory_plan(t).arena.total();
  };
  // Selective fits all 64 sequences: named alone, after the batch size that fits without it.
  std::string msg = cuda_memory_plan_problem(s, need(Recompute::selective, 64));
  EXPECT_NE(msg.find("train.batch_size 32 fits: lower it to that"), std::string::npos) << msg;
  EXPECT_NE(msg.find("or set train.recompute selective, which fits this batch size"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("train.recompute full"), std::string::npos) << msg;
  // Only full fits 64 (7.6 GiB); selective fits 32 (12.3) where none fits 16 (10.4; 32: 17.2).
  ASSERT_GT(need(Recompute::selective, 32), need(Recompute::none, 16));
  ASSERT_LT(need(Recompute::selective, 32), need(Recompute::none, 32));
  ASSERT_LT(need(Recompute::full, 64), need(Recompute::selective, 32));
  msg = cuda_memory_plan_problem(s, need(Recompute::selective, 32));
  EXPECT_NE(msg.find("train.batch_size 16 fits: lower it to that"), std::string::npos) << msg;
  EXPECT_NE(msg.find("or set train.recompute selective, which fits train.batch_size 32"), std::string::npos) << msg;
  EXPECT_NE(msg.find("or set train.recompute full, which fits this batch size"), std::string::npos) << msg;
  // Configured with selective, only full is named; configured with full, none.
  s.recompute = Recompute::selective;
  msg = cuda_memory_plan_problem(s, need(Recompute::full, 64));
  EXPECT_NE(msg.find("with train.recompute selective)"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("set train.recompute selective"), std::string::npos) << msg;
  EXPECT_NE(msg.find("or set train.recompute full, which fits this batch size"), std::string::npos) << msg;
  s.recompute = Recompute::full;
  msg = cuda_memory_plan_problem(s, need(Recompute::full, 64) - 1);
  EXPECT_NE(msg.find("train.batch_size 32 fits: lower it to that"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("set train.recompute"), std::string::npos) << msg;
}

// Every preset the cuda backend trains fits one H200 (139 GiB usable) with room to spare for the
// CUDA context, cuBLASLt and NCCL: the plan stays under 128 GiB.
TEST(CudaMemoryPlan, EveryPresetFitsOneH200) {
  for (const auto& entry : fs::directory_iterator(fs::path(GFWA_SOURCE_DIR) / "configs")) {
    if (entry.path().extension() != ".json") continue;
    SCOPED_TRACE(entry.path().string());
    const RunConfig c = load_config(entry.path().string());
    const CudaMemoryPlan p = cuda_memory_plan({c.model, c.train.batch_size, c.train.seq_len, 0, 0});
    EXPECT_LT(double(p.arena.total()) / kGiB, 128.0);
    EXPECT_EQ(cuda_memory_plan_problem({c.model, c.train.batch_size, c.train.seq_len, 0, 0}, size_t(128) << 30), "");
  }
}
