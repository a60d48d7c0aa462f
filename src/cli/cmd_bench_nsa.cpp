// `gfwa bench nsa`: times the CUDA NSA core (kernels/nsa.h, docs/nsa.md) forward and forward+backward on
// random inputs, timed as `gfwa bench attention` is. TFLOP/s count the (query, key) pairs of the three
// branches per query head (compressed keys seen + selected tokens seen + window) in the convention of
// docs/gatedfwa.md section 5: fwd = 4*D*pairs*B*H, fwd+bwd = 3.5x that; the selection, pooling and gating
// work is not counted.
#ifdef GFWA_WITH_CUDA
#include <cxxopts.hpp>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/bench_util.h"
#include "cli/commands.h"
#include "kernels/cuda_check.h"
#include "kernels/gate.h"
#include "kernels/nsa.h"
#include "kernels/random_fill.cuh"

namespace gfwa {

int cmd_bench_nsa(int argc_in, char** argv_in) {
  std::vector<std::string> args = bench::normalise_args(argc_in, argv_in);
  std::vector<char*> argp;
  for (auto& a : args) argp.push_back(a.data());
  cxxopts::Options opts("gfwa bench nsa", "time the CUDA NSA core");
  opts.add_options()("B", "batch", cxxopts::value<int>()->default_value("1"))(
      "H", "query heads", cxxopts::value<int>()->default_value("16"))(
      "Hkv", "K/V heads (divides H)", cxxopts::value<int>()->default_value("1"))(
      "T", "sequence length", cxxopts::value<int>()->default_value("8192"))(
      "D", "head dim (64 or 128)", cxxopts::value<int>()->default_value("64"))(
      "W", "window of the sliding branch", cxxopts::value<int>()->default_value("512"))(
      "top-k", "selected blocks per query group", cxxopts::value<int>()->default_value("16"))(
      "sliding", "swa | gatedfwa", cxxopts::value<std::string>()->default_value("gatedfwa"))(
      "fwd-only", "time the forward only")("iters", "timed runs", cxxopts::value<int>()->default_value("10"))(
      "warmup", "untimed runs first", cxxopts::value<int>()->default_value("2"))("h,help", "this help");
  const auto r = opts.parse(int(argp.size()), argp.data());
  if (r.count("help")) {
    std::printf("%s\n", opts.help().c_str());
    return 0;
  }
  const NsaShape s{r["B"].as<int>(),     r["T"].as<int>(), r["H"].as<int>(),     r["Hkv"].as<int>(),
                   r["D"].as<int>(),     kNsaBlock,  r["top-k"].as<int>(), r["W"].as<int>()};
  const int iters = r["iters"].as<int>(), warmup = r["warmup"].as<int>();
  AttnMode sliding;
  if (!parse_attn_mode(r["sliding"].as<std::string>(), &sliding) ||
      (sliding != AttnMode::swa && sliding != AttnMode::gatedfwa))
    throw std::invalid_argument("--sliding: expected swa or gatedfwa, got '" + r["sliding"].as<std::string>() + "'");
  if (iters < 1 || warmup < 0) throw std::invalid_argument("--iters must be >= 1 and --warmup >= 0");
  const std::string err = nsa_shape_error(s);
  if (!err.empty()) throw std::invalid_argument(err);
  const bool fwd_only = r.count("fwd-only") > 0;

  // q | k | v as views of one fused [B, T, H + 2*Hkv, D] buffer, as a grouped-query projection writes them.
  const size_t row = size_t(s.H + 2 * s.Hkv) * s.D, rows = size_t(s.B) * s.T, ntok = rows * s.H;
  cudaStream_t st;
  CUDA_CHECK(cudaStreamCreate(&st));
  bench::DevBuf<__nv_bfloat16> qkv(rows * row), dqkv(rows * row), o(ntok * s.D), dout(ntok * s.D);
  bench::DevBuf<float> gates(3 * ntok), dgates(3 * ntok), hg(ntok), pre(ntok), lam(ntok), dlam(ntok);
  cuda::fill_uniform_bf16(qkv.p, rows * row, 1, -1.7f, 1.7f, st);  // unit variance
  cuda::fill_uniform_bf16(dout.p, ntok * s.D, 2, -1.7f, 1.7f, st);
  cuda::fill_uniform_f32(gates.p, 3 * ntok, 3, 0.f, 1.f, st);
  cuda::fill_uniform_f32(hg.p, ntok, 4, -1.f, 5.f, st);  // mostly open gates, some strong decay
  cuda::fill_uniform_f32(pre.p, ntok, 5, -1.f, 1.f, st);
  cuda::gate_forward(hg.p, pre.p, lam.p, s.B, s.T, s.H, st);
  const NsaSplit split;
  bench::DevBuf<char> saved(nsa_saved_bytes(s)), ws(nsa_bwd_workspace_bytes(s, split));

  cuda::NsaBwdParams p{};
  p.s = s;
  p.sliding = sliding;
  p.q = qkv.p;
  p.k = qkv.p + size_t(s.H) * s.D;
  p.v = p.k + size_t(s.Hkv) * s.D;
  p.q_row_stride = p.k_row_stride = p.v_row_stride = int64_t(row);
  p.lam = sliding == AttnMode::gatedfwa ? lam.p : nullptr;
  p.g_cmp = gates.p;
  p.g_sel = gates.p + ntok;
  p.g_win = gates.p + 2 * ntok;
  p.o = o.p;
  p.o_row_stride = int64_t(s.H) * s.D;
  p.saved = cuda::nsa_saved_layout(s, saved.p);
  p.workspace = ws.p;
  p.dout = dout.p;
  p.dout_row_stride = p.o_row_stride;
  p.dq = dqkv.p;
  p.dk = dqkv.p + size_t(s.H) * s.D;
  p.dv = p.dk + size_t(s.Hkv) * s.D;
  p.dq_row_stride = p.dk_row_stride = p.dv_row_stride = int64_t(row);
  p.dlam = sliding == AttnMode::gatedfwa ? dlam.p : nullptr;
  p.dg_cmp = dgates.p;
  p.dg_sel = dgates.p + ntok;
  p.dg_win = dgates.p + 2 * ntok;
  p.split = split;

  const double fwd_flops = 4.0 * s.D * nsa_pairs(s) * double(s.B) * s.H;
  const double fwd_ms = bench::median_ms(warmup, iters, st, [&] { cuda::nsa_forward(p, st); });
  std::printf("bench nsa sliding=%s B=%d H=%d Hkv=%d T=%d D=%d W=%d top_k=%d fwd_ms=%.4f fwd_tflops=%.1f",
              attn_mode_name(sliding), s.B, s.H, s.Hkv, s.T, s.D, s.window, s.top_k, fwd_ms,
              fwd_flops / fwd_ms / 1e9);
  if (!fwd_only) {
    const double fb_ms = bench::median_ms(warmup, iters, st, [&] {
      cuda::nsa_forward(p, st);
      cuda::nsa_backward(p, st);
    });
    std::printf(" fwdbwd_ms=%.4f fwdbwd_tflops=%.1f", fb_ms, 3.5 * fwd_flops / fb_ms / 1e9);
  }
  std::printf("\n");
  CUDA_CHECK(cudaStreamSynchronize(st));
  CUDA_CHECK(cudaStreamDestroy(st));
  return 0;
}

}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
