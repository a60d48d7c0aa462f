// Host side of the GEMMs with SwiGLU (gemm_swiglu.cuh): shape rules, argument checks and the device facts the launches
// need; the kernels and their launches are in gemm_swiglu_sm90.cu and gemm_swiglu_bwd_sm90.cu (built for sm_90a only).
#include "kernels/gemm_swiglu.cuh"

#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/device_facts.h"

namespace gfwa::cuda {
namespace {

void require_aligned(const void* p, const char* call, const char* name) {
  if (p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 != 0)
    throw std::invalid_argument(std::string(call) + ": " + name +
                                (p == nullptr ? " is null" : " is not 16-byte aligned"));
}

void require_shape(int N, int d, int F, const char* call) {
  if (!gemm_swiglu_shape_ok(N, d, F))
    throw std::invalid_argument(std::string(call) + ": shape N " + std::to_string(N) + ", d " + std::to_string(d) +
                                ", F " + std::to_string(F) + " unsupported (N >= 1, d % 64 == 0, F % 128 == 0)");
}

// The device's facts, after checking that it runs sm_90a code.
DeviceFacts require_sm90(const char* call) {
  const DeviceFacts f = current_device_facts();
  if (f.cc != 90)
    throw std::runtime_error(std::string(call) + ": needs a compute capability 9.0 GPU (sm_90a code); this device is " +
                             std::to_string(f.cc / 10) + "." + std::to_string(f.cc % 10));
  return f;
}

}  // namespace

bool gemm_swiglu_shape_ok(int N, int d, int F) {
  // The tile index (128 rows x 128 columns of g) is an int in the kernel, stepped by the grid size.
  return N >= 1 && d >= 64 && d % 64 == 0 && F >= 128 && F % 128 == 0 &&
         (int64_t(N) + 127) / 128 * (F / 128) <= (int64_t(1) << 30);
}

bool gemm_swiglu_eligible(int N, int d, int F) {
  return d >= kGemmSwigluMinD && gemm_swiglu_shape_ok(N, d, F) && current_device_facts().cc == 90;
}

void gemm_swiglu_forward(cudaStream_t s, const __nv_bfloat16* x, const __nv_bfloat16* w13, __nv_bfloat16* u,
                         __nv_bfloat16* g, int N, int d, int F) {
  constexpr const char* call = "gemm_swiglu_forward";
  require_shape(N, d, F, call);
  require_aligned(x, call, "x");
  require_aligned(w13, call, "w13");
  require_aligned(u, call, "u");
  require_aligned(g, call, "g");
  const DeviceFacts f = require_sm90(call);
  detail::launch_gemm_swiglu_sm90(s, x, w13, u, g, N, d, F, f.sms, f.l2_bytes);
}

void gemm_swiglu_backward(cudaStream_t s, const __nv_bfloat16* dres, const __nv_bfloat16* w2, __nv_bfloat16* u, int N,
                          int d, int F) {
  constexpr const char* call = "gemm_swiglu_backward";
  require_shape(N, d, F, call);
  require_aligned(dres, call, "dres");
  require_aligned(w2, call, "w2");
  require_aligned(u, call, "u");
  const DeviceFacts f = require_sm90(call);
  detail::launch_gemm_swiglu_bwd_sm90(s, dres, w2, u, N, d, F, f.sms, f.l2_bytes);
}

}  // namespace gfwa::cuda
