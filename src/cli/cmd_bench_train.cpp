// `gfwa bench train`: times whole training steps (forward, backward, grad norm, optimizer step) of the cuda
// backend on random tokens for the model and micro-batch of a run configuration, and reports
// tokens/s, ms/step (median), model TFLOP/s, MFU and device memory. FLOPs per token, peak and
// memory are the trainer's (train/metrics.h, Backend, docs/gatedfwa.md section 5); bench_py/e2e_anchor.py counts
// the same FLOPs up to its rounding of the mean context (T/2 for (T+1)/2), under 0.1%.
#ifdef GFWA_WITH_CUDA
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <cuda_runtime.h>
#include <cxxopts.hpp>

#include "cli/commands.h"
#include "model/cuda_backend.h"
#include "train/config_cli.h"
#include "train/config_io.h"
#include "train/metrics.h"
#include "train/schedule.h"

namespace gfwa {

int cmd_bench_train(int argc, char** argv) {
  cxxopts::Options options("gfwa bench train", "Time training steps of the cuda backend on random tokens.");
  add_config_options(options);
  options.add_options()("steps", "timed steps", cxxopts::value<int>()->default_value("10"), "N")(
      "warmup", "untimed steps first", cxxopts::value<int>()->default_value("3"), "N")("h,help", "show this help");
  const auto parsed = options.parse(argc, argv);
  if (parsed.count("help")) {
    std::printf("%s", options.help().c_str());
    return 0;
  }
  if (!parsed.unmatched().empty()) throw std::runtime_error("unexpected argument '" + parsed.unmatched().front() + "'");
  const int steps = parsed["steps"].as<int>(), warmup = parsed["warmup"].as<int>();
  if (steps < 1 || warmup < 0) throw std::invalid_argument("--steps must be >= 1 and --warmup >= 0");
  const RunConfig rc = load_config_from_cli(parsed);
  check_backend_support(rc, "cuda", parsed.count("config") ? parsed["config"].as<std::string>() : "defaults");
  const ModelConfig& mc = rc.model;
  const int B = rc.train.batch_size, T = rc.train.seq_len;

  const Recompute recompute = parse_recompute(rc.train.recompute);
  auto be = make_cuda_backend(mc, B, T, {}, rc.optimizer.type == "muon", recompute);
  be->init_params(rc.train.seed);
  std::mt19937_64 rng(rc.train.seed);
  std::vector<std::vector<int32_t>> data(4, std::vector<int32_t>(size_t(B) * (T + 1)));
  for (auto& seq : data)
    for (auto& t : seq) t = int32_t(rng() % uint64_t(std::min(mc.vocab_size, 50257)));
  std::vector<int32_t> in(size_t(B) * T), tg(size_t(B) * T);
  std::vector<double> ms;
  float loss = 0.0f;
  for (int s = 0; s < warmup + steps; ++s) {
    const auto& seq = data[s % data.size()];
    for (int b = 0; b < B; ++b)
      for (int t = 0; t < T; ++t) {
        in[size_t(b) * T + t] = seq[size_t(b) * (T + 1) + t];
        tg[size_t(b) * T + t] = seq[size_t(b) * (T + 1) + t + 1];
      }
    const auto t0 = std::chrono::steady_clock::now();
    be->zero_grad();
    loss = be->forward_backward(in.data(), tg.data(), B, T, 1.0f);
    const double norm = be->grad_norm();
    apply_update(*be, rc.optimizer, rc.schedule, s, warmup + steps, norm, s + 1);
    if (cudaDeviceSynchronize() != cudaSuccess) throw std::runtime_error("bench train: CUDA error during a step");
    const double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (s >= warmup) ms.push_back(dt);
  }
  std::sort(ms.begin(), ms.end());
  const double med = ms[ms.size() / 2];
  const double nparam = double(be->layout().total());
  const double flops_tok = flops_per_token(mc, int64_t(nparam), T);
  const double tps = double(B) * T / (med / 1e3);
  const double tflops = tps * flops_tok / 1e12;
  const std::string pattern = mc.attention.pattern.empty() ? "" : " layers=" + attention_pattern_text(mc);
  std::printf("bench train: mode=%s%s T=%d B=%d W=%d recompute=%s params=%.1fM step=%.2fms tok/s=%.0f TFLOP/s=%.1f "
              "MFU=%.1f%% loss=%.3f mem=%.1fGiB\n",
              attn_mode_name(mc.attention.mode), pattern.c_str(), T, B, mc.attention.window, recompute_name(recompute),
              nparam / 1e6, med, tps, tflops,
              100.0 * tflops * 1e12 / be->peak_flops(), loss, double(be->memory_in_use()) / double(1ull << 30));
  return 0;
}

}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
