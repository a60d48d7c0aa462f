// The skinny projections' packing (model/skinny_projections.h) and the bf16 layout that makes each layer's
// one GEMM operand (cuda_bf16_offsets), on any machine: the columns per layer (token shift, GatedFWA's gate,
// NSA's branch gates, over a pattern and grouped-query heads), the parts contiguous in the bf16 copy in
// column order with gate_b apart, every tensor disjoint, and the fp32 runs the packed weight gradient's rows
// are added to: each packed row lands on its own tensor's row in ParamLayout.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "model/cuda_memory_plan.h"
#include "model/param_layout.h"
#include "model/skinny_projections.h"
#include "model_test_params.h"

using namespace gfwa;

namespace {

// Two layers of two query heads (model_test_params.h); pattern "SL": the mode's layer, then a full one.
ModelConfig config(AttnMode mode, bool shift, const char* letters, int kv_heads, AttnMode sliding) {
  ModelConfig m = test::small_config(mode, shift, 64, kv_heads);
  m.attention.pattern.letters = letters;
  m.attention.nsa.sliding = sliding;
  return m;
}

// Each part's name with its column and rows in layer l's packed operand (absent parts left out).
std::vector<std::pair<std::string, std::pair<int, int>>> parts(const ModelConfig& m, int l) {
  const SkinnyProjections p = skinny_projections(m, l);
  const int H = m.n_heads, Hkv = m.kv_heads();
  std::vector<std::pair<std::string, std::pair<int, int>>> out;
  for (const auto& [name, col, rows] : {std::tuple{"attn.shift_k", p.shift_k, Hkv}, std::tuple{"attn.shift_v", p.shift_v, Hkv},
                                        std::tuple{"attn.gate_w", p.gate_w, H}, std::tuple{"attn.gate_sharp", p.gate_sharp, H},
                                        std::tuple{"attn.nsa_gate", p.nsa_gate, 3 * H}})
    if (col >= 0) out.push_back({"layers." + std::to_string(l) + "." + name, {col, rows}});
  return out;
}

}  // namespace

TEST(SkinnyProjections, ColumnsFollowTheLayersParts) {
  const ModelConfig m = config(AttnMode::nsa, true, "SL", 1, AttnMode::gatedfwa);  // layers nsa, full
  const SkinnyProjections nsa = skinny_projections(m, 0), full = skinny_projections(m, 1);
  EXPECT_EQ(nsa.shift_k, 0);
  EXPECT_EQ(nsa.shift_v, 1);
  EXPECT_EQ(nsa.gate_w, 2);
  EXPECT_EQ(nsa.gate_sharp, 4);
  EXPECT_EQ(nsa.nsa_gate, 6);
  EXPECT_EQ(nsa.width, 12);
  EXPECT_EQ(full.shift_k, 0);
  EXPECT_EQ(full.shift_v, 1);
  EXPECT_EQ(full.gate_w, -1);
  EXPECT_EQ(full.gate_sharp, -1);
  EXPECT_EQ(full.nsa_gate, -1);
  EXPECT_EQ(full.width, 2);
  EXPECT_EQ(max_skinny_width(m), 12);
  const SkinnyProjections swa_nsa = skinny_projections(config(AttnMode::nsa, false, "", 0, AttnMode::swa), 0);
  EXPECT_EQ(swa_nsa.gate_w, -1);
  EXPECT_EQ(swa_nsa.nsa_gate, 0);
  EXPECT_EQ(swa_nsa.width, 6);
  EXPECT_EQ(max_skinny_width(config(AttnMode::full, false, "", 0, AttnMode::gatedfwa)), 0);
  for (const char* name : {"layers.1.attn.shift_k", "layers.0.attn.shift_v", "layers.1.attn.gate_w",
                           "layers.1.attn.gate_sharp", "layers.0.attn.nsa_gate"})
    EXPECT_TRUE(is_skinny_projection(name)) << name;
  for (const char* name : {"layers.1.attn.gate_b", "layers.0.attn.wk", "layers.0.attn.k_norm", "embed"})
    EXPECT_FALSE(is_skinny_projection(name)) << name;
}

TEST(SkinnyProjections, Bf16CopyKeepsThemOneOperandAndGradientRunsHitTheirTensors) {
  for (AttnMode mode : {AttnMode::gatedfwa, AttnMode::nsa, AttnMode::full})
    for (AttnMode sliding : {AttnMode::gatedfwa, AttnMode::swa})
      for (bool shift : {false, true})
        for (const char* letters : {"", "SL"})
          for (int kv : {0, 1}) {
            if (mode != AttnMode::nsa && sliding == AttnMode::swa) continue;
            const ModelConfig m = config(mode, shift, letters, kv, sliding);
            SCOPED_TRACE(std::string(attn_mode_name(mode)) + " sliding " + attn_mode_name(sliding) + " shift " +
                         (shift ? "on" : "off") + " pattern \"" + letters + "\" n_kv_heads " + std::to_string(kv));
            const ParamLayout layout(m);
            size_t total = 0;
            const std::vector<size_t> off = cuda_bf16_offsets(layout, &total);
            const auto& ts = layout.tensors();
            auto bf16_of = [&](const std::string& name) {
              for (size_t i = 0; i < ts.size(); ++i)
                if (ts[i].name == name) return off[i];
              ADD_FAILURE() << "no tensor " << name;
              return size_t(0);
            };
            // Disjoint and inside the copy.
            std::vector<std::pair<size_t, size_t>> spans;
            for (size_t i = 0; i < ts.size(); ++i) spans.push_back({off[i], off[i] + ts[i].numel});
            std::sort(spans.begin(), spans.end());
            for (size_t i = 1; i < spans.size(); ++i) EXPECT_LE(spans[i - 1].second, spans[i].first);
            EXPECT_LE(spans.back().second, total);
            const size_t d = size_t(m.d_model);
            for (int l = 0; l < m.n_layers; ++l) {
              const auto ps = parts(m, l);
              const SkinnyProjections p = skinny_projections(m, l);
              if (ps.empty()) {
                EXPECT_EQ(p.width, 0);
                EXPECT_TRUE(skinny_f32_runs(m, layout, l).empty());
                continue;
              }
              const size_t start = bf16_of(ps.front().first);
              EXPECT_EQ(start % kCudaBf16GroupAlign, 0u);
              int rows = 0;
              for (const auto& [name, cr] : ps) {
                EXPECT_EQ(bf16_of(name), start + size_t(cr.first) * d) << name;
                EXPECT_EQ(cr.first, rows) << name;
                rows += cr.second;
              }
              EXPECT_EQ(rows, p.width);
              // Every packed row through the runs onto its own tensor's row in the fp32 layout.
              const std::vector<SkinnyRun> runs = skinny_f32_runs(m, layout, l);
              EXPECT_EQ(runs.size(), p.gate_w >= 0 ? 2u : 1u);  // gate_b splits gate_w from gate_sharp
              int next = 0;
              for (const SkinnyRun& r : runs) {
                EXPECT_EQ(r.row, next);
                next += r.rows;
              }
              EXPECT_EQ(next, p.width);
              for (const auto& [name, cr] : ps)
                for (int row = cr.first; row < cr.first + cr.second; ++row) {
                  const auto run = std::find_if(runs.begin(), runs.end(),
                                                [&](const SkinnyRun& r) { return row >= r.row && row < r.row + r.rows; });
                  ASSERT_NE(run, runs.end());
                  EXPECT_EQ(run->f32 + size_t(row - run->row) * d, layout.get(name).offset + size_t(row - cr.first) * d)
                      << name << " row " << row;
                }
            }
          }
}
