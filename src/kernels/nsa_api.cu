// Host side of the CUDA NSA core: argument checks, the layouts of the saved tensors and workspaces, and the
// order of the launches (docs/nsa.md).
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/attention.h"
#include "kernels/nsa_launch.h"

namespace gfwa::cuda {
namespace {

using detail::bf16;
using detail::NsaDims;
using detail::RowsIn;

void require(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument("nsa: " + msg);
}

void check_shape(const NsaShape& s) {
  const std::string err = nsa_shape_error(s);
  if (!err.empty()) throw std::invalid_argument(err);
  require(cuda_attention_head_dim_supported(s.D), "head dim D=" + std::to_string(s.D) + " unsupported (64 or 128)");
  require(s.block == kNsaBlock,
          "block=" + std::to_string(s.block) + " unsupported: the kernels are built for " + std::to_string(kNsaBlock));
  require(s.top_k <= kNsaMaxTopK, "top_k=" + std::to_string(s.top_k) + " exceeds " + std::to_string(kNsaMaxTopK));
  require(int64_t(s.B) * s.H <= 65535, "B*H=" + std::to_string(int64_t(s.B) * s.H) + " exceeds 65535 (grid dimensions)");
}

NsaDims dims(const NsaShape& s) {
  NsaDims n;
  n.B = s.B;
  n.T = s.T;
  n.H = s.H;
  n.Hkv = s.Hkv;
  n.G = s.groups();
  n.D = s.D;
  n.Tc = s.n_cmp();
  n.Tb = s.n_blocks();
  n.S = s.top_k;
  n.scale = float(1.0 / std::sqrt(double(s.D)));
  n.scale_log2 = float(1.4426950408889634 / std::sqrt(double(s.D)));
  return n;
}

void check_rows(const void* ptr, int64_t stride, int heads, int D, const char* name) {
  require(ptr != nullptr, std::string(name) + " is null");
  require(reinterpret_cast<uintptr_t>(ptr) % 16 == 0, std::string(name) + " is not 16-byte aligned");
  require(stride % 8 == 0 && stride >= int64_t(heads) * D,
          std::string(name) + "_row_stride " + std::to_string(stride) + " must be a multiple of 8 and >= " +
              std::to_string(int64_t(heads) * D));
}

void check_ptr(const void* ptr, const char* name) {
  require(ptr != nullptr, std::string(name) + " is null");
  require(reinterpret_cast<uintptr_t>(ptr) % 16 == 0, std::string(name) + " is not 16-byte aligned");
}

// Consecutive 256-byte aligned regions from `base` (null: only counts the bytes).
class Carver {
 public:
  explicit Carver(void* base) : base_(reinterpret_cast<uintptr_t>(base)) {}
  template <class T>
  T* take(int64_t n) {
    off_ = (off_ + 255) / 256 * 256;
    T* p = reinterpret_cast<T*>(base_ + off_);
    off_ += size_t(n) * sizeof(T);
    return p;
  }
  size_t bytes() const { return off_; }

 private:
  uintptr_t base_;
  size_t off_ = 0;
};

int64_t rows_hd(const NsaShape& s) { return int64_t(s.B) * s.T * s.H * s.D; }

NsaSaved carve_saved(const NsaShape& s, Carver& c) {
  const int64_t cmp = int64_t(s.B) * s.n_cmp() * s.Hkv * s.D, rows = int64_t(s.B) * s.T * s.H;
  NsaSaved v;
  v.k_cmp = c.take<bf16>(cmp);
  v.v_cmp = c.take<bf16>(cmp);
  v.o_cmp = c.take<bf16>(rows_hd(s));
  v.o_sel = c.take<bf16>(rows_hd(s));
  v.o_win = c.take<bf16>(rows_hd(s));
  v.lse_cmp = c.take<float>(rows);
  v.lse_sel = c.take<float>(rows);
  v.lse_win = c.take<float>(rows);
  v.idx = c.take<int32_t>(int64_t(s.B) * s.T * s.Hkv * s.top_k);
  return v;
}

// The forward's workspace: K and V repeated per query head for the sliding branch.
struct FwdWork {
  bf16 *k_exp, *v_exp;
};
FwdWork carve_fwd(const NsaShape& s, Carver& c) {
  FwdWork w;
  w.k_exp = c.take<bf16>(rows_hd(s));
  w.v_exp = c.take<bf16>(rows_hd(s));
  return w;
}

struct BwdWork {
  bf16 *dout_cmp, *dout_sel, *dout_win;
  float *delta_cmp, *delta_sel, *dq_acc;
  float *cmp_part_k, *cmp_part_v, *dk_cmp, *dv_cmp;
  detail::SelIndex ix;
  float *sel_part_k, *sel_part_v;
  bf16 *k_exp, *v_exp, *dq_win, *dk_win, *dv_win;
  float* attn_ws;
  int n_chunks;
};

AttnParams sliding_params(const NsaParams& p, const bf16* k_exp, const bf16* v_exp) {
  const int64_t hd = int64_t(p.s.H) * p.s.D;
  AttnParams a{};
  a.q = p.q;
  a.k = k_exp;
  a.v = v_exp;
  a.q_row_stride = p.q_row_stride;
  a.k_row_stride = a.v_row_stride = a.o_row_stride = hd;
  a.lam = p.sliding == AttnMode::gatedfwa ? p.lam : nullptr;
  a.o = p.saved.o_win;
  a.lse = p.saved.lse_win;
  a.B = p.s.B;
  a.T = p.s.T;
  a.H = p.s.H;
  a.Hkv = p.s.H;  // K/V expanded per query head (k_exp, v_exp)
  a.D = p.s.D;
  a.window = p.s.window;
  a.mode = p.sliding;
  return a;
}

BwdWork carve_bwd(const NsaShape& s, const NsaSplit& split, Carver& c) {
  const int64_t bh = int64_t(s.B) * s.Hkv, rows = int64_t(s.B) * s.T * s.H, cmp = int64_t(s.B) * s.n_cmp() * s.Hkv * s.D;
  BwdWork w;
  w.dout_cmp = c.take<bf16>(rows_hd(s));
  w.dout_sel = c.take<bf16>(rows_hd(s));
  w.dout_win = c.take<bf16>(rows_hd(s));
  w.delta_cmp = c.take<float>(rows);
  w.delta_sel = c.take<float>(rows);
  w.dq_acc = c.take<float>(rows_hd(s));
  w.n_chunks = int((int64_t(s.T) * s.groups() + split.cmp_rows - 1) / split.cmp_rows);
  w.cmp_part_k = c.take<float>(w.n_chunks * cmp);
  w.cmp_part_v = c.take<float>(w.n_chunks * cmp);
  w.dk_cmp = c.take<float>(cmp);
  w.dv_cmp = c.take<float>(cmp);
  detail::SelIndex& ix = w.ix;
  ix.words = (s.T + 31) / 32;
  ix.item_tokens = split.sel_rows >= s.groups() ? split.sel_rows / s.groups() : 1;
  ix.max_items = int(s.n_blocks() + (int64_t(s.T) * s.top_k + ix.item_tokens - 1) / ix.item_tokens);
  ix.bitmap = c.take<uint32_t>(bh * s.n_blocks() * ix.words);
  ix.count = c.take<int>(bh * s.n_blocks());
  ix.tok_off = c.take<int>(bh * (s.n_blocks() + 1));
  ix.item_off = c.take<int>(bh * (s.n_blocks() + 1));
  ix.list = c.take<int>(bh * s.T * s.top_k);
  w.sel_part_k = c.take<float>(bh * ix.max_items * kNsaBlock * s.D);
  w.sel_part_v = c.take<float>(bh * ix.max_items * kNsaBlock * s.D);
  w.k_exp = c.take<bf16>(rows_hd(s));
  w.v_exp = c.take<bf16>(rows_hd(s));
  w.dq_win = c.take<bf16>(rows_hd(s));
  w.dk_win = c.take<bf16>(rows_hd(s));
  w.dv_win = c.take<bf16>(rows_hd(s));
  AttnParams shape{};
  shape.B = s.B;
  shape.T = s.T;
  shape.H = s.H;
  shape.Hkv = s.H;
  shape.D = s.D;
  w.attn_ws = c.take<float>(int64_t(attention_bwd_workspace_bytes(shape) / sizeof(float)));
  return w;
}

void check_split(const NsaShape& s, const NsaSplit& split) {
  require(split.cmp_rows >= 64 && split.cmp_rows % 64 == 0,
          "split.cmp_rows=" + std::to_string(split.cmp_rows) + " must be a positive multiple of 64");
  require((int64_t(s.T) * s.groups() + split.cmp_rows - 1) / split.cmp_rows <= 65535,
          "split.cmp_rows=" + std::to_string(split.cmp_rows) + " makes more than 65535 chunks (grid dimension)");
  require(split.sel_rows >= 1, "split.sel_rows=" + std::to_string(split.sel_rows) + " must be >= 1");
}

void check_params(const NsaParams& p) {
  check_shape(p.s);
  require(p.sliding == AttnMode::swa || p.sliding == AttnMode::gatedfwa,
          std::string("the sliding branch must be swa or gatedfwa (got ") + attn_mode_name(p.sliding) + ")");
  require(p.sliding != AttnMode::gatedfwa || p.lam != nullptr, "the gatedfwa sliding branch needs lam");
  check_rows(p.q, p.q_row_stride, p.s.H, p.s.D, "q");
  check_rows(p.k, p.k_row_stride, p.s.Hkv, p.s.D, "k");
  check_rows(p.v, p.v_row_stride, p.s.Hkv, p.s.D, "v");
  check_rows(p.o, p.o_row_stride, p.s.H, p.s.D, "o");
  for (const void* g : {static_cast<const void*>(p.g_cmp), static_cast<const void*>(p.g_sel),
                        static_cast<const void*>(p.g_win)})
    require(g != nullptr, "a gate (g_cmp, g_sel, g_win) is null");
  check_ptr(p.saved.k_cmp, "saved.k_cmp");
  check_ptr(p.saved.idx, "saved.idx");
  check_ptr(p.workspace, "workspace");
}

}  // namespace

size_t nsa_saved_bytes(const NsaShape& s) {
  Carver c(nullptr);
  carve_saved(s, c);
  return c.bytes();
}

NsaSaved nsa_saved_layout(const NsaShape& s, void* base) {
  Carver c(base);
  return carve_saved(s, c);
}

size_t nsa_fwd_workspace_bytes(const NsaShape& s) {
  Carver c(nullptr);
  carve_fwd(s, c);
  return c.bytes();
}

size_t nsa_bwd_workspace_bytes(const NsaShape& s, const NsaSplit& split) {
  check_split(s, split);
  Carver c(nullptr);
  carve_bwd(s, split, c);
  return c.bytes();
}

void nsa_forward(const NsaParams& p, cudaStream_t stream) {
  check_params(p);
  const NsaDims n = dims(p.s);
  const NsaSaved& sv = p.saved;
  Carver c(p.workspace);
  const FwdWork w = carve_fwd(p.s, c);
  const RowsIn q{p.q, p.q_row_stride}, k{p.k, p.k_row_stride}, v{p.v, p.v_row_stride};

  detail::launch_nsa_pool(n, k, sv.k_cmp, stream);
  detail::launch_nsa_pool(n, v, sv.v_cmp, stream);
  detail::launch_nsa_cmp_fwd(n, {q, sv.k_cmp, sv.v_cmp, sv.o_cmp, sv.lse_cmp}, stream);
  detail::launch_nsa_topk(n, {q, sv.k_cmp, sv.lse_cmp, sv.idx}, stream);
  detail::launch_nsa_sel_fwd(n, {q, k, v, sv.idx, sv.o_sel, sv.lse_sel}, stream);
  detail::launch_nsa_expand_kv(n, k, w.k_exp, stream);
  detail::launch_nsa_expand_kv(n, v, w.v_exp, stream);
  attention_forward(sliding_params(p, w.k_exp, w.v_exp), stream);
  detail::launch_nsa_mix(n, p.g_cmp, p.g_sel, p.g_win, sv.o_cmp, sv.o_sel, sv.o_win, p.o, p.o_row_stride, stream);
}

void nsa_backward(const NsaBwdParams& p, cudaStream_t stream) {
  check_params(p);
  check_split(p.s, p.split);
  check_rows(p.dout, p.dout_row_stride, p.s.H, p.s.D, "dout");
  check_rows(p.dq, p.dq_row_stride, p.s.H, p.s.D, "dq");
  check_rows(p.dk, p.dk_row_stride, p.s.Hkv, p.s.D, "dk");
  check_rows(p.dv, p.dv_row_stride, p.s.Hkv, p.s.D, "dv");
  require(p.sliding != AttnMode::gatedfwa || p.dlam != nullptr, "the gatedfwa sliding branch needs dlam");
  require(p.dg_cmp && p.dg_sel && p.dg_win, "a gate gradient (dg_cmp, dg_sel, dg_win) is null");
  const NsaDims n = dims(p.s);
  const NsaSaved& sv = p.saved;
  Carver c(p.workspace);
  const BwdWork w = carve_bwd(p.s, p.split, c);
  const RowsIn q{p.q, p.q_row_stride}, k{p.k, p.k_row_stride}, v{p.v, p.v_row_stride};

  detail::MixBwdArgs mb;
  mb.dout = {p.dout, p.dout_row_stride};
  mb.g_cmp = p.g_cmp;
  mb.g_sel = p.g_sel;
  mb.g_win = p.g_win;
  mb.o_cmp = sv.o_cmp;
  mb.o_sel = sv.o_sel;
  mb.o_win = sv.o_win;
  mb.dg_cmp = p.dg_cmp;
  mb.dg_sel = p.dg_sel;
  mb.dg_win = p.dg_win;
  mb.dout_cmp = w.dout_cmp;
  mb.dout_sel = w.dout_sel;
  mb.dout_win = w.dout_win;
  mb.delta_cmp = w.delta_cmp;
  mb.delta_sel = w.delta_sel;
  detail::launch_nsa_mix_bwd(n, mb, stream);

  // Sliding branch: attention.h on K/V repeated per query head; dk, dv per query head, summed below.
  detail::launch_nsa_expand_kv(n, k, w.k_exp, stream);
  detail::launch_nsa_expand_kv(n, v, w.v_exp, stream);
  const int64_t hd = int64_t(p.s.H) * p.s.D;
  AttnBwdParams ab{};
  static_cast<AttnParams&>(ab) = sliding_params(p, w.k_exp, w.v_exp);
  ab.dout = w.dout_win;
  ab.dout_row_stride = hd;
  ab.dq = w.dq_win;
  ab.dk = w.dk_win;
  ab.dv = w.dv_win;
  ab.dq_row_stride = ab.dk_row_stride = ab.dv_row_stride = hd;
  ab.dlam = p.sliding == AttnMode::gatedfwa ? p.dlam : nullptr;
  ab.workspace = w.attn_ws;
  attention_backward(ab, stream);

  detail::CmpBwdArgs cb;
  cb.q = q;
  cb.k_cmp = sv.k_cmp;
  cb.v_cmp = sv.v_cmp;
  cb.dout = w.dout_cmp;
  cb.lse = sv.lse_cmp;
  cb.delta = w.delta_cmp;
  cb.dq = w.dq_acc;
  cb.part_k = w.cmp_part_k;
  cb.part_v = w.cmp_part_v;
  cb.chunk_rows = p.split.cmp_rows;
  cb.n_chunks = w.n_chunks;
  cb.dk_cmp = w.dk_cmp;
  cb.dv_cmp = w.dv_cmp;
  detail::launch_nsa_cmp_bwd(n, cb, stream);

  detail::launch_nsa_sel_index(n, sv.idx, w.ix, stream);
  detail::SelBwdArgs sb;
  sb.q = q;
  sb.k = k;
  sb.v = v;
  sb.idx = sv.idx;
  sb.dout = w.dout_sel;
  sb.lse = sv.lse_sel;
  sb.delta = w.delta_sel;
  sb.dq = w.dq_acc;
  sb.ix = w.ix;
  sb.part_k = w.sel_part_k;
  sb.part_v = w.sel_part_v;
  detail::launch_nsa_sel_bwd(n, sb, stream);

  detail::GradSumArgs gs;
  gs.dq_acc = w.dq_acc;
  gs.dq_win = w.dq_win;
  gs.dk_win = w.dk_win;
  gs.dv_win = w.dv_win;
  gs.dk_cmp = w.dk_cmp;
  gs.dv_cmp = w.dv_cmp;
  gs.part_k = w.sel_part_k;
  gs.part_v = w.sel_part_v;
  gs.item_off = w.ix.item_off;
  gs.max_items = w.ix.max_items;
  gs.dq = p.dq;
  gs.dk = p.dk;
  gs.dv = p.dv;
  gs.dq_stride = p.dq_row_stride;
  gs.dk_stride = p.dk_row_stride;
  gs.dv_stride = p.dv_row_stride;
  detail::launch_nsa_grad_sum(n, gs, stream);
}

}  // namespace gfwa::cuda
