// Host side of the CUDA attention: argument checks, the choice of kernels (sm_90a or mma.sync, by the device's compute
// capability or AttnParams::path; forward and backward alike) and dispatch on the head dim.
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/attention_launch.h"
#include "kernels/attention_workspace.h"
#include "kernels/cuda_check.h"
#include "kernels/device_facts.h"

namespace gfwa::cuda {
namespace {

void require(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument("attention: " + msg);
}

// heads: H for q, o, dq, dout; Hkv for k, v, dk, dv.
void check_rows(const void* ptr, int64_t stride, int heads, const AttnParams& p, const char* name) {
  const int64_t width = int64_t(heads) * p.D;
  require(ptr != nullptr, std::string(name) + " is null");
  require(reinterpret_cast<uintptr_t>(ptr) % 16 == 0, std::string(name) + " is not 16-byte aligned");
  require(stride % 8 == 0 && stride >= width, std::string(name) + "_row_stride " + std::to_string(stride) +
                                                  " must be a multiple of 8 and >= its heads * D = " +
                                                  std::to_string(width));
}

void check(const AttnParams& p) {
  require(attention_kernel_mode(p.mode),
          std::string("mode ") + attn_mode_name(p.mode) + " is not an attention kernel's (NSA is nsa.h)");
  require(p.sm90_schedule == Sm90FwdSchedule::automatic || p.sm90_schedule == Sm90FwdSchedule::per_tile ||
              p.sm90_schedule == Sm90FwdSchedule::persistent,
          "sm90_schedule " + std::to_string(int(p.sm90_schedule)) + " unknown (auto, per-tile or persistent)");
  require(cuda_attention_head_dim_supported(p.D), "head dim D=" + std::to_string(p.D) + " unsupported (64 or 128)");
  require(p.B >= 1 && p.T >= 1 && p.H >= 1,
          "B, T, H must be >= 1 (got " + std::to_string(p.B) + ", " + std::to_string(p.T) + ", " +
              std::to_string(p.H) + ")");
  require(p.H <= 65535 && p.B <= 65535, "B and H must be <= 65535 (grid dimensions)");
  require(p.Hkv >= 1 && p.H % p.Hkv == 0,
          "the K/V heads Hkv=" + std::to_string(p.Hkv) + " must divide the query heads H=" + std::to_string(p.H));
  require(p.mode == AttnMode::full || p.window >= 1, "window W=" + std::to_string(p.window) + " must be >= 1");
  require(p.mode != AttnMode::gatedfwa || p.lam != nullptr, "gatedfwa mode needs lam");
  check_rows(p.q, p.q_row_stride, p.H, p, "q");
  check_rows(p.k, p.k_row_stride, p.Hkv, p, "k");
  check_rows(p.v, p.v_row_stride, p.Hkv, p, "v");
  check_rows(p.o, p.o_row_stride, p.H, p, "o");
  require(p.lse != nullptr, "lse is null");
}

detail::AttnConsts consts(const AttnParams& p) {
  detail::AttnConsts c;
  c.W = p.mode == AttnMode::full ? p.T : (p.window < p.T ? p.window : p.T);
  c.gated = p.mode == AttnMode::gatedfwa;
  c.grouped = p.Hkv < p.H;
  c.scale = float(1.0 / std::sqrt(double(p.D)));
  c.scale_log2 = float(1.4426950408889634 / std::sqrt(double(p.D)));
  return c;
}

}  // namespace

AttnPath attention_path(const AttnParams& p) {
  if (p.path == AttnPath::sm80) return AttnPath::sm80;
  const DeviceFacts f = current_device_facts();
  const int cc = f.cc;
  // sm_90a code (wgmma, setmaxnreg) runs on compute capability 9.0 only, not on later GPUs.
  require(p.path != AttnPath::sm90 || cc == 90,
          "path sm90 needs a compute capability 9.0 GPU; device " + std::to_string(f.device) + " is " +
              std::to_string(cc / 10) + "." + std::to_string(cc % 10));
  return cc == 90 ? AttnPath::sm90 : AttnPath::sm80;
}

size_t attention_bwd_workspace_bytes(const AttnParams& p) { return attn_bwd_workspace(p.B, p.T, p.H, p.D).bytes; }

void attention_forward(const AttnParams& p, cudaStream_t stream) {
  check(p);
  const detail::AttnConsts c = consts(p);
  if (attention_path(p) == AttnPath::sm90) {
    if (p.D == 64)
      detail::launch_attn_fwd_sm90<64>(p, c, stream);
    else
      detail::launch_attn_fwd_sm90<128>(p, c, stream);
  } else if (p.D == 64) {
    detail::launch_attn_fwd<64>(p, c, stream);
  } else {
    detail::launch_attn_fwd<128>(p, c, stream);
  }
}

void attention_backward(const AttnBwdParams& p, cudaStream_t stream) {
  check(p);
  check_rows(p.dout, p.dout_row_stride, p.H, p, "dout");
  check_rows(p.dq, p.dq_row_stride, p.H, p, "dq");
  check_rows(p.dk, p.dk_row_stride, p.Hkv, p, "dk");
  check_rows(p.dv, p.dv_row_stride, p.Hkv, p, "dv");
  require(p.mode != AttnMode::gatedfwa || p.dlam != nullptr, "gatedfwa mode needs dlam");
  require(p.workspace != nullptr && reinterpret_cast<uintptr_t>(p.workspace) % 16 == 0,
          "workspace is null or not 16-byte aligned");
  const detail::AttnConsts c = consts(p);
  if (attention_path(p) == AttnPath::sm90) {
    if (p.D == 64)
      detail::launch_attn_bwd_sm90<64>(p, c, stream);
    else
      detail::launch_attn_bwd_sm90<128>(p, c, stream);
  } else if (p.D == 64) {
    detail::launch_attn_bwd<64>(p, c, stream);
  } else {
    detail::launch_attn_bwd<128>(p, c, stream);
  }
}

}  // namespace gfwa::cuda
