// Gate scan (docs/gatedfwa.md sections 2 and 4): lam = inclusive prefix sum of logf along T, and its backward
// (reverse scan + chain rule). One CTA per (b, h); each thread owns a contiguous chunk of T. Two passes
// over the chunk (sum, then scan from the chunk's offset) with a block scan of the chunk sums in between;
// the running sums are double, so a 32k-token prefix keeps fp32 accuracy in what is stored.
#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/cuda_check.h"
#include "kernels/gate.h"
#include "kernels/gate_math.cuh"

namespace gfwa::cuda {
namespace {

constexpr int kGateThreads = 256;

// Exclusive (reverse=false) or reverse-exclusive (sum of later threads) scan of one double per thread.
template <bool kReverse>
__device__ double block_exclusive_scan(double x, double* buf) {
  const int tid = threadIdx.x;
  buf[tid] = x;
  __syncthreads();
  for (int off = 1; off < kGateThreads; off <<= 1) {
    const int src = kReverse ? tid + off : tid - off;
    const double add = (src >= 0 && src < kGateThreads) ? buf[src] : 0.0;
    __syncthreads();
    buf[tid] += add;
    __syncthreads();
  }
  return buf[tid] - x;
}

__global__ void __launch_bounds__(kGateThreads)
    gate_fwd_kernel(const float* hg, const float* pre, int ld, float* lam, int T, int H) {
  __shared__ double buf[kGateThreads];
  const int b = blockIdx.x / H, h = blockIdx.x % H;
  const int chunk = (T + kGateThreads - 1) / kGateThreads;
  const int t0 = min(T, threadIdx.x * chunk), t1 = min(T, t0 + chunk);
  const int64_t base = int64_t(b) * T * H + h, in_base = int64_t(b) * T * ld + h;  // lam dense, hg and pre in rows of ld
  double sum = 0.0;
  for (int t = t0; t < t1; ++t) sum += logf_of(hg[in_base + int64_t(t) * ld], pre[in_base + int64_t(t) * ld]);
  double run = block_exclusive_scan<false>(sum, buf);
  for (int t = t0; t < t1; ++t) {
    const int64_t j = in_base + int64_t(t) * ld;
    run += logf_of(hg[j], pre[j]);
    lam[base + int64_t(t) * H] = float(run);
  }
}

__global__ void __launch_bounds__(kGateThreads) gate_bwd_kernel(const float* hg, const float* pre, int ld,
                                                               const float* dlam, float* dhg, float* dpre, int T,
                                                               int H) {
  __shared__ double buf[kGateThreads];
  const int b = blockIdx.x / H, h = blockIdx.x % H;
  const int chunk = (T + kGateThreads - 1) / kGateThreads;
  const int t0 = min(T, threadIdx.x * chunk), t1 = min(T, t0 + chunk);
  const int64_t base = int64_t(b) * T * H + h, in_base = int64_t(b) * T * ld + h;
  double sum = 0.0;
  for (int t = t0; t < t1; ++t) sum += dlam[base + int64_t(t) * H];
  double suffix = block_exclusive_scan<true>(sum, buf);  // dlam summed over all later chunks
  for (int t = t1 - 1; t >= t0; --t) {
    const int64_t i = base + int64_t(t) * H;
    suffix += dlam[i];  // dlogf[t] = sum_{s >= t} dlam[s]
    const int64_t j = in_base + int64_t(t) * ld;
    const float p = pre[j], g = hg[j];
    const float beta = beta_of(p), den = beta + kBetaEps, z = beta * g;
    const float sneg = sigmoid(-z);
    const float dlf_dhg = sneg * beta / den;
    const float dlf_dbeta = sneg * g / den - log_sigmoid(z) / (den * den);
    const float dbeta_dpre = p > 0.f ? 1.f : expf(p);
    const float s = float(suffix);
    dhg[i] = s * dlf_dhg;
    dpre[i] = s * dlf_dbeta * dbeta_dpre;
  }
}

void check_gate_shape(int B, int T, int H, int ld) {
  if (B < 1 || T < 1 || H < 1 || ld < H || int64_t(B) * H > 2147483647)
    throw std::invalid_argument("gate: bad shape B=" + std::to_string(B) + " T=" + std::to_string(T) +
                                " H=" + std::to_string(H) + " ld=" + std::to_string(ld));
}

}  // namespace

void gate_forward(const float* hg, const float* pre, int ld, float* lam, int B, int T, int H, cudaStream_t stream) {
  check_gate_shape(B, T, H, ld);
  gate_fwd_kernel<<<B * H, kGateThreads, 0, stream>>>(hg, pre, ld, lam, T, H);
  CUDA_CHECK_LAUNCH();
}

void gate_backward(const float* hg, const float* pre, int ld, const float* dlam, float* dhg, float* dpre, int B,
                   int T, int H, cudaStream_t stream) {
  check_gate_shape(B, T, H, ld);
  gate_bwd_kernel<<<B * H, kGateThreads, 0, stream>>>(hg, pre, ld, dlam, dhg, dpre, T, H);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda
