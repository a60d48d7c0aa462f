// `gfwa bench attention`: times the CUDA attention (forward, forward+backward) on random inputs with CUDA
// events (warm-up, then the median of --iters runs) and reports TFLOP/s in the mask-pairs convention of
// docs/gatedfwa.md section 5: fwd = 4*D*pairs*B*H, fwd+bwd = 3.5x that. --path picks the kernels, forward and
// backward (AttnParams::path); --sm90-schedule the sm90 forward's schedule; the line reports the path that ran (and
// the schedule, on sm90, auto resolved).
#ifdef GFWA_WITH_CUDA
#include <cxxopts.hpp>

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/bench_util.h"
#include "cli/commands.h"
#include "kernels/attention.h"
#include "kernels/cuda_check.h"
#include "kernels/gate.h"
#include "kernels/random_fill.cuh"

namespace gfwa {
namespace {

using bench::DevBuf;
using bench::mask_pairs;
using bench::median_ms;

int bench_attention(int argc_in, char** argv_in) {
  std::vector<std::string> args = bench::normalise_args(argc_in, argv_in);
  std::vector<char*> argp;
  for (auto& a : args) argp.push_back(a.data());
  const int argc = int(argp.size());
  char** argv = argp.data();
  cxxopts::Options opts("gfwa bench attention", "time the CUDA attention kernels");
  opts.add_options()("B", "batch", cxxopts::value<int>()->default_value("4"))(
      "H", "heads", cxxopts::value<int>()->default_value("16"))(
      "kv-heads", "K/V heads (grouped-query attention; must divide H; 0: H)",
      cxxopts::value<int>()->default_value("0"))(
      "T", "sequence length", cxxopts::value<int>()->default_value("8192"))(
      "D", "head dim (64 or 128)", cxxopts::value<int>()->default_value("128"))(
      "W", "window (ignored in full mode)", cxxopts::value<int>()->default_value("1024"))(
      "mode", "full | swa | gatedfwa", cxxopts::value<std::string>()->default_value("gatedfwa"))(
      "path", "kernels, forward and backward: auto (sm90 on compute capability 9.0, else sm80) | sm80 | sm90",
      cxxopts::value<std::string>()->default_value("auto"))(
      "sm90-schedule", "the sm90 forward's schedule: auto (per-tile for full attention at D 128, else "
      "persistent) | per-tile | persistent (docs/kernel_notes.md v7)",
      cxxopts::value<std::string>()->default_value("auto"))(
      "fwd-only", "time the forward only")("iters", "timed runs", cxxopts::value<int>()->default_value("20"))(
      "warmup", "untimed runs first", cxxopts::value<int>()->default_value("3"))("h,help", "this help");
  const auto r = opts.parse(argc, argv);
  if (r.count("help")) {
    std::printf("%s\n", opts.help().c_str());
    return 0;
  }
  const int B = r["B"].as<int>(), H = r["H"].as<int>(), T = r["T"].as<int>(), D = r["D"].as<int>();
  const int iters = r["iters"].as<int>(), warmup = r["warmup"].as<int>();
  AttnMode mode;
  if (!parse_attn_mode(r["mode"].as<std::string>(), &mode))
    throw std::invalid_argument("--mode: unknown mode '" + r["mode"].as<std::string>() + "'");
  if (!attention_kernel_mode(mode)) throw std::invalid_argument("--mode nsa: time NSA with gfwa bench nsa");
  cuda::AttnPath path;
  if (!cuda::parse_attn_path(r["path"].as<std::string>(), &path))
    throw std::invalid_argument("--path: unknown path '" + r["path"].as<std::string>() + "' (auto, sm80 or sm90)");
  cuda::Sm90FwdSchedule schedule;
  if (!cuda::parse_sm90_fwd_schedule(r["sm90-schedule"].as<std::string>(), &schedule))
    throw std::invalid_argument("--sm90-schedule: unknown schedule '" + r["sm90-schedule"].as<std::string>() +
                                "' (auto, per-tile or persistent)");
  if (iters < 1 || warmup < 0) throw std::invalid_argument("--iters must be >= 1 and --warmup >= 0");
  const int W = r["W"].as<int>(), Hkv = r["kv-heads"].as<int>() > 0 ? r["kv-heads"].as<int>() : H;
  if (H < 1 || H % Hkv != 0)
    throw std::invalid_argument("--kv-heads " + std::to_string(Hkv) + " must divide -H " + std::to_string(H));
  const bool fwd_only = r.count("fwd-only") > 0;

  // q/k/v (and their gradients) as views of one fused q | k | v buffer, as the model produces them.
  const size_t HD = size_t(H) * D, ld = size_t(cuda::qkv_row_stride(H, Hkv, D)), rows = size_t(B) * T;
  const size_t ntok = rows * H;
  cudaStream_t s;
  CUDA_CHECK(cudaStreamCreate(&s));
  DevBuf<__nv_bfloat16> qkv(rows * ld), o(rows * HD), dout(rows * HD), dqkv(rows * ld);
  DevBuf<float> hg(ntok), pre(ntok), lam(ntok), dlam(ntok), lse(ntok);
  cuda::fill_uniform_bf16(qkv.p, rows * ld, 1, -1.7f, 1.7f, s);  // unit variance
  cuda::fill_uniform_bf16(dout.p, rows * HD, 2, -1.7f, 1.7f, s);
  cuda::fill_uniform_f32(hg.p, ntok, 3, -1.f, 5.f, s);  // mostly open gates, some strong decay
  cuda::fill_uniform_f32(pre.p, ntok, 4, -1.f, 1.f, s);
  cuda::gate_forward(hg.p, pre.p, H, lam.p, B, T, H, s);

  cuda::AttnParams fwd =
      cuda::attn_params(qkv.p, qkv.p + ld - size_t(Hkv) * D, lam.p, o.p, lse.p, B, T, H, Hkv, D, W, mode);
  fwd.path = path;
  fwd.sm90_schedule = schedule;
  DevBuf<float> ws((cuda::attention_bwd_workspace_bytes(fwd) + 3) / 4);
  const cuda::AttnBwdParams p = cuda::attn_bwd_params(fwd, dout.p, dqkv.p, dlam.p, ws.p);

  const double fwd_flops =
      4.0 * D * mask_pairs(T, effective_window(mode, W, T)) * double(B) * H;
  const double fwd_ms = median_ms(warmup, iters, s, [&] { cuda::attention_forward(p, s); });
  const cuda::AttnPath ran = cuda::attention_path(fwd);
  std::printf("bench attention mode=%s path=%s", attn_mode_name(mode), cuda::attn_path_name(ran));
  if (ran == cuda::AttnPath::sm90)
    std::printf(" schedule=%s", cuda::sm90_fwd_schedule_name(cuda::sm90_fwd_schedule(fwd)));
  std::printf(" B=%d H=%d Hkv=%d T=%d D=%d W=%d fwd_ms=%.4f fwd_tflops=%.1f", B, H, Hkv, T, D, W, fwd_ms,
              fwd_flops / fwd_ms / 1e9);
  if (!fwd_only) {
    const double fb_ms = median_ms(warmup, iters, s, [&] {
      cuda::attention_forward(p, s);
      cuda::attention_backward(p, s);
    });
    std::printf(" fwdbwd_ms=%.4f fwdbwd_tflops=%.1f", fb_ms, 3.5 * fwd_flops / fb_ms / 1e9);
  }
  std::printf("\n");
  CUDA_CHECK(cudaStreamSynchronize(s));
  CUDA_CHECK(cudaStreamDestroy(s));
  return 0;
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "train") return cmd_bench_train(argc - 1, argv + 1);
  if (argc >= 2 && std::string(argv[1]) == "generate") return cmd_bench_generate(argc - 1, argv + 1);
  if (argc >= 2 && std::string(argv[1]) == "nsa") return cmd_bench_nsa(argc - 1, argv + 1);
  if (argc < 2 || std::string(argv[1]) != "attention")
    throw std::invalid_argument(
        "usage: gfwa bench attention [options] | gfwa bench nsa [options] | gfwa bench train --config FILE "
        "[options] | gfwa bench generate --config FILE [options]");
  return bench_attention(argc - 1, argv + 1);
}

}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
