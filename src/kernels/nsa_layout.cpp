#include "kernels/nsa_layout.h"

#include "kernels/attention_workspace.h"

#include <cstdint>
#include <stdexcept>

namespace gfwa {
namespace {

constexpr size_t kBf16 = 2, kF32 = 4, kI32 = 4;

// Consecutive 256-byte aligned regions: each take returns its offset.
class Carver {
 public:
  size_t take(int64_t n, size_t elem) {
    off_ = (off_ + 255) / 256 * 256;
    const size_t at = off_;
    off_ += size_t(n) * elem;
    return at;
  }
  size_t bytes() const { return off_; }

 private:
  size_t off_ = 0;
};

int64_t rows_hd(const NsaShape& s) { return int64_t(s.B) * s.T * s.H * s.D; }

}  // namespace

std::string nsa_split_error(const NsaShape& s, const NsaSplit& split) {
  if (split.cmp_rows < 64 || split.cmp_rows % 64 != 0)
    return "nsa: split.cmp_rows=" + std::to_string(split.cmp_rows) + " must be a positive multiple of 64";
  if ((int64_t(s.T) * s.groups() + split.cmp_rows - 1) / split.cmp_rows > 65535)
    return "nsa: split.cmp_rows=" + std::to_string(split.cmp_rows) + " makes more than 65535 chunks (grid dimension)";
  if (split.sel_rows < 1) return "nsa: split.sel_rows=" + std::to_string(split.sel_rows) + " must be >= 1";
  return {};
}

NsaSavedOffsets nsa_saved_offsets(const NsaShape& s) {
  const int64_t cmp = int64_t(s.B) * s.n_cmp() * s.Hkv * s.D, rows = int64_t(s.B) * s.T * s.H;
  Carver c;
  NsaSavedOffsets o;
  o.k_cmp = c.take(cmp, kBf16);
  o.v_cmp = c.take(cmp, kBf16);
  o.o_cmp = c.take(rows_hd(s), kBf16);
  o.o_sel = c.take(rows_hd(s), kBf16);
  o.o_win = c.take(rows_hd(s), kBf16);
  o.lse_cmp = c.take(rows, kF32);
  o.lse_sel = c.take(rows, kF32);
  o.lse_win = c.take(rows, kF32);
  o.idx = c.take(int64_t(s.B) * s.T * s.Hkv * s.top_k, kI32);
  o.bytes = c.bytes();
  return o;
}

NsaBwdOffsets nsa_bwd_offsets(const NsaShape& s, const NsaSplit& split) {
  const std::string err = nsa_split_error(s, split);
  if (!err.empty()) throw std::invalid_argument(err);
  const int64_t bh = int64_t(s.B) * s.Hkv, rows = int64_t(s.B) * s.T * s.H;
  const int64_t cmp = int64_t(s.B) * s.n_cmp() * s.Hkv * s.D, rows_kv = int64_t(s.B) * s.T * s.Hkv * s.D;
  Carver c;
  NsaBwdOffsets o;
  o.dout_cmp = c.take(rows_hd(s), kBf16);
  o.dout_sel = c.take(rows_hd(s), kBf16);
  o.dout_win = c.take(rows_hd(s), kBf16);
  o.delta_cmp = c.take(rows, kF32);
  o.delta_sel = c.take(rows, kF32);
  o.dq_acc = c.take(rows_hd(s), kF32);
  o.n_chunks = int((int64_t(s.T) * s.groups() + split.cmp_rows - 1) / split.cmp_rows);
  o.cmp_part_k = c.take(o.n_chunks * cmp, kF32);
  o.cmp_part_v = c.take(o.n_chunks * cmp, kF32);
  o.dk_cmp = c.take(cmp, kF32);
  o.dv_cmp = c.take(cmp, kF32);
  o.words = (s.T + 31) / 32;
  o.item_tokens = split.sel_rows >= s.groups() ? split.sel_rows / s.groups() : 1;
  o.max_items = int(s.n_blocks() + (int64_t(s.T) * s.top_k + o.item_tokens - 1) / o.item_tokens);
  o.bitmap = c.take(bh * s.n_blocks() * o.words, kI32);
  o.count = c.take(bh * s.n_blocks(), kI32);
  o.tok_off = c.take(bh * (s.n_blocks() + 1), kI32);
  o.item_off = c.take(bh * (s.n_blocks() + 1), kI32);
  o.list = c.take(bh * s.T * s.top_k, kI32);
  o.sel_part_k = c.take(bh * o.max_items * s.block * s.D, kF32);
  o.sel_part_v = c.take(bh * o.max_items * s.block * s.D, kF32);
  o.dq_win = c.take(rows_hd(s), kBf16);
  o.dk_win = c.take(rows_kv, kBf16);
  o.dv_win = c.take(rows_kv, kBf16);
  o.attn_ws = c.take(int64_t(attn_bwd_workspace(s.B, s.T, s.H, s.D).bytes), 1);  // the sliding branch's attention backward
  o.bytes = c.bytes();
  return o;
}

}  // namespace gfwa
