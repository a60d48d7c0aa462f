// Host side of the CUDA NSA core: argument checks, the saved tensors and the workspace as pointers into the
// layouts of nsa_layout.h, and the order of the launches (docs/nsa.md).
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

template <class T>
T* at(void* base, size_t offset) {
  return reinterpret_cast<T*>(static_cast<char*>(base) + offset);
}

// The backward's workspace (nsa_layout.h) as pointers.
struct BwdWork {
  bf16 *dout_cmp, *dout_sel, *dout_win;
  float *delta_cmp, *delta_sel, *dq_acc;
  float *cmp_part_k, *cmp_part_v, *dk_cmp, *dv_cmp;
  detail::SelIndex ix;
  float *sel_part_k, *sel_part_v;
  bf16 *dq_win, *dk_win, *dv_win;
  float* attn_ws;
  size_t attn_ws_bytes;
  int n_chunks;
};

BwdWork bwd_work(const NsaShape& s, const NsaSplit& split, void* base) {
  static_assert(sizeof(bf16) == 2, "nsa_layout.h counts bf16 as 2 bytes");
  const NsaBwdOffsets o = nsa_bwd_offsets(s, split);
  BwdWork w;
  w.dout_cmp = at<bf16>(base, o.dout_cmp);
  w.dout_sel = at<bf16>(base, o.dout_sel);
  w.dout_win = at<bf16>(base, o.dout_win);
  w.delta_cmp = at<float>(base, o.delta_cmp);
  w.delta_sel = at<float>(base, o.delta_sel);
  w.dq_acc = at<float>(base, o.dq_acc);
  w.n_chunks = o.n_chunks;
  w.cmp_part_k = at<float>(base, o.cmp_part_k);
  w.cmp_part_v = at<float>(base, o.cmp_part_v);
  w.dk_cmp = at<float>(base, o.dk_cmp);
  w.dv_cmp = at<float>(base, o.dv_cmp);
  detail::SelIndex& ix = w.ix;
  ix.words = o.words;
  ix.item_tokens = o.item_tokens;
  ix.max_items = o.max_items;
  ix.bitmap = at<uint32_t>(base, o.bitmap);
  ix.count = at<int>(base, o.count);
  ix.tok_off = at<int>(base, o.tok_off);
  ix.item_off = at<int>(base, o.item_off);
  ix.list = at<int>(base, o.list);
  w.sel_part_k = at<float>(base, o.sel_part_k);
  w.sel_part_v = at<float>(base, o.sel_part_v);
  w.dq_win = at<bf16>(base, o.dq_win);
  w.dk_win = at<bf16>(base, o.dk_win);
  w.dv_win = at<bf16>(base, o.dv_win);
  w.attn_ws = at<float>(base, o.attn_ws);
  w.attn_ws_bytes = o.bytes - o.attn_ws;  // the last region
  return w;
}

// The sliding branch: attention.h over the K/V heads of each group as they are (grouped-query attention).
AttnParams sliding_params(const NsaParams& p) {
  AttnParams a{};
  a.q = p.q;
  a.k = p.k;
  a.v = p.v;
  a.q_row_stride = p.q_row_stride;
  a.k_row_stride = p.k_row_stride;
  a.v_row_stride = p.v_row_stride;
  a.o_row_stride = int64_t(p.s.H) * p.s.D;
  a.lam = p.sliding == AttnMode::gatedfwa ? p.lam : nullptr;
  a.o = p.saved.o_win;
  a.lse = p.saved.lse_win;
  a.B = p.s.B;
  a.T = p.s.T;
  a.H = p.s.H;
  a.Hkv = p.s.Hkv;
  a.D = p.s.D;
  a.window = p.s.window;
  a.mode = p.sliding;
  return a;
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
}

}  // namespace

NsaSaved nsa_saved_layout(const NsaShape& s, void* base) {
  const NsaSavedOffsets o = nsa_saved_offsets(s);
  NsaSaved v;
  v.k_cmp = at<bf16>(base, o.k_cmp);
  v.v_cmp = at<bf16>(base, o.v_cmp);
  v.o_cmp = at<bf16>(base, o.o_cmp);
  v.o_sel = at<bf16>(base, o.o_sel);
  v.o_win = at<bf16>(base, o.o_win);
  v.lse_cmp = at<float>(base, o.lse_cmp);
  v.lse_sel = at<float>(base, o.lse_sel);
  v.lse_win = at<float>(base, o.lse_win);
  v.idx = at<int32_t>(base, o.idx);
  return v;
}

void nsa_forward(const NsaParams& p, cudaStream_t stream) {
  check_params(p);
  const NsaDims n = dims(p.s);
  const NsaSaved& sv = p.saved;
  const RowsIn q{p.q, p.q_row_stride}, k{p.k, p.k_row_stride}, v{p.v, p.v_row_stride};

  detail::launch_nsa_pool(n, k, sv.k_cmp, stream);
  detail::launch_nsa_pool(n, v, sv.v_cmp, stream);
  detail::launch_nsa_cmp_fwd(n, {q, sv.k_cmp, sv.v_cmp, sv.o_cmp, sv.lse_cmp}, stream);
  detail::launch_nsa_topk(n, {q, sv.k_cmp, sv.lse_cmp, sv.idx}, stream);
  detail::launch_nsa_sel_fwd(n, {q, k, v, sv.idx, sv.o_sel, sv.lse_sel}, stream);
  attention_forward(sliding_params(p), stream);
  detail::launch_nsa_mix(n, p.g_cmp, p.g_sel, p.g_win, sv.o_cmp, sv.o_sel, sv.o_win, p.o, p.o_row_stride, stream);
}

void nsa_backward(const NsaBwdParams& p, cudaStream_t stream) {
  check_params(p);
  const std::string split_err = nsa_split_error(p.s, p.split);
  if (!split_err.empty()) throw std::invalid_argument(split_err);
  check_ptr(p.workspace, "workspace");
  check_rows(p.dout, p.dout_row_stride, p.s.H, p.s.D, "dout");
  check_rows(p.dq, p.dq_row_stride, p.s.H, p.s.D, "dq");
  check_rows(p.dk, p.dk_row_stride, p.s.Hkv, p.s.D, "dk");
  check_rows(p.dv, p.dv_row_stride, p.s.Hkv, p.s.D, "dv");
  require(p.sliding != AttnMode::gatedfwa || p.dlam != nullptr, "the gatedfwa sliding branch needs dlam");
  require(p.dg_cmp && p.dg_sel && p.dg_win, "a gate gradient (dg_cmp, dg_sel, dg_win) is null");
  const NsaDims n = dims(p.s);
  const NsaSaved& sv = p.saved;
  const BwdWork w = bwd_work(p.s, p.split, p.workspace);
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

  // Sliding branch: attention.h; its dk, dv come summed over each group, packed [B, T, Hkv, D].
  const int64_t hd = int64_t(p.s.H) * p.s.D;
  AttnBwdParams ab{};
  static_cast<AttnParams&>(ab) = sliding_params(p);
  ab.dout = w.dout_win;
  ab.dout_row_stride = hd;
  ab.dq = w.dq_win;
  ab.dk = w.dk_win;
  ab.dv = w.dv_win;
  ab.dq_row_stride = hd;
  ab.dk_row_stride = ab.dv_row_stride = int64_t(p.s.Hkv) * p.s.D;
  ab.dlam = p.sliding == AttnMode::gatedfwa ? p.dlam : nullptr;
  ab.workspace = w.attn_ws;
  if (attention_bwd_workspace_bytes(ab) > w.attn_ws_bytes)
    throw std::logic_error("nsa: nsa_layout.h sizes the sliding branch's attention workspace below " +
                           std::to_string(attention_bwd_workspace_bytes(ab)) + " bytes");
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
