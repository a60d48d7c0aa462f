// Where the CUDA NSA core keeps its saved tensors and backward workspace (kernels/nsa_layout.h), checked
// without a GPU: every region 256-byte aligned, in order, disjoint and as large as its tensor; the sizes the
// cuda backend relies on (a micro-batch of B x T tokens fits the saved tensors of one sequence of B * T, and
// the workspace of the largest B and T fits every smaller one); and the split's errors.
#include <gtest/gtest.h>

#include <stdexcept>
#include <utility>
#include <vector>

#include "kernels/attention_workspace.h"
#include "kernels/nsa_layout.h"

using namespace gfwa;

namespace {

// (offset, bytes) of each region, in layout order; the next offset (or the total) bounds each.
void expect_regions(const std::vector<std::pair<size_t, size_t>>& regions, size_t total) {
  for (size_t i = 0; i < regions.size(); ++i) {
    const size_t end = i + 1 < regions.size() ? regions[i + 1].first : total;
    EXPECT_EQ(regions[i].first % 256, 0u) << "region " << i;
    EXPECT_GE(end, regions[i].first + regions[i].second) << "region " << i;
    EXPECT_LT(end, regions[i].first + regions[i].second + 256) << "region " << i;
  }
}

}  // namespace

TEST(NsaLayout, RegionsAreAlignedDisjointAndAsLargeAsTheirTensors) {
  for (const NsaShape& s : {NsaShape{2, 333, 8, 2, 64, 64, 16, 100}, NsaShape{1, 1, 3, 1, 128, 64, 1, 5},
                            NsaShape{1, 2085, 16, 1, 64, 64, 4, 256}}) {
    SCOPED_TRACE("T " + std::to_string(s.T) + " H " + std::to_string(s.H) + " Hkv " + std::to_string(s.Hkv));
    const size_t B = s.B, T = s.T, H = s.H, Hkv = s.Hkv, D = s.D, Tc = T / 64, Tb = (T + 63) / 64, S = s.top_k;
    const NsaSavedOffsets o = nsa_saved_offsets(s);
    expect_regions({{o.k_cmp, B * Tc * Hkv * D * 2}, {o.v_cmp, B * Tc * Hkv * D * 2}, {o.o_cmp, B * T * H * D * 2},
                    {o.o_sel, B * T * H * D * 2}, {o.o_win, B * T * H * D * 2}, {o.lse_cmp, B * T * H * 4},
                    {o.lse_sel, B * T * H * 4}, {o.lse_win, B * T * H * 4}, {o.idx, B * T * Hkv * S * 4}},
                   o.bytes);
    EXPECT_EQ(o.k_cmp, 0u);
    EXPECT_EQ(nsa_saved_bytes(s), o.bytes);

    const NsaSplit split;
    const NsaBwdOffsets w = nsa_bwd_offsets(s, split);
    const size_t G = H / Hkv, chunks = (T * G + 16383) / 16384, items_tokens = 8192 / G;
    const size_t items = Tb + (T * S + items_tokens - 1) / items_tokens, words = (T + 31) / 32, bh = B * Hkv;
    EXPECT_EQ(size_t(w.n_chunks), chunks);
    EXPECT_EQ(size_t(w.item_tokens), items_tokens);
    EXPECT_EQ(size_t(w.max_items), items);
    EXPECT_EQ(size_t(w.words), words);
    const size_t hd = B * T * H * D, kvd = B * T * Hkv * D, cmp = B * Tc * Hkv * D;
    expect_regions({{w.dout_cmp, hd * 2}, {w.dout_sel, hd * 2}, {w.dout_win, hd * 2}, {w.delta_cmp, B * T * H * 4},
                    {w.delta_sel, B * T * H * 4}, {w.dq_acc, hd * 4}, {w.cmp_part_k, chunks * cmp * 4},
                    {w.cmp_part_v, chunks * cmp * 4}, {w.dk_cmp, cmp * 4}, {w.dv_cmp, cmp * 4},
                    {w.bitmap, bh * Tb * words * 4}, {w.count, bh * Tb * 4}, {w.tok_off, bh * (Tb + 1) * 4},
                    {w.item_off, bh * (Tb + 1) * 4}, {w.list, bh * T * S * 4}, {w.sel_part_k, bh * items * 64 * D * 4},
                    {w.sel_part_v, bh * items * 64 * D * 4}, {w.dq_win, hd * 2}, {w.dk_win, kvd * 2},
                    {w.dv_win, kvd * 2}, {w.attn_ws, attn_bwd_workspace(s.B, s.T, s.H, s.D).bytes}},
                   w.bytes);
    EXPECT_EQ(nsa_bwd_workspace_bytes(s, split), w.bytes);
  }
}

TEST(NsaLayout, SmallerBatchesFitTheLargestOnesBuffers) {
  const NsaShape big{1, 6 * 200, 8, 2, 64, 64, 16, 100};
  for (const auto& [B, T] : {std::pair{6, 200}, std::pair{3, 400}, std::pair{2, 600}, std::pair{24, 50},
                             std::pair{5, 240}}) {
    NsaShape s = big;
    s.B = B;
    s.T = T;
    EXPECT_LE(nsa_saved_bytes(s), nsa_saved_bytes(big)) << B << " x " << T;
  }
  NsaShape most{4, 700, 8, 2, 64, 64, 16, 100};
  for (int B = 1; B <= 4; ++B)
    for (int T : {1, 63, 64, 65, 333, 700}) {
      NsaShape s = most;
      s.B = B;
      s.T = T;
      EXPECT_LE(nsa_bwd_workspace_bytes(s, NsaSplit{}), nsa_bwd_workspace_bytes(most, NsaSplit{})) << B << " x " << T;
    }
}

TEST(NsaLayout, SplitErrorsNameTheField) {
  const NsaShape s{1, 100, 4, 1, 64, 64, 16, 32};
  EXPECT_EQ(nsa_split_error(s, NsaSplit{}), "");
  EXPECT_NE(nsa_split_error(s, NsaSplit{100, 8192}).find("split.cmp_rows=100"), std::string::npos);
  EXPECT_NE(nsa_split_error(s, NsaSplit{16384, 0}).find("split.sel_rows=0"), std::string::npos);
  EXPECT_THROW(nsa_bwd_offsets(s, NsaSplit{0, 8192}), std::invalid_argument);
}
