#include "kernels/muon.cuh"

#include <algorithm>
#include <utility>

#include "kernels/cuda_check.h"
#include "kernels/device_util.cuh"

namespace gfwa::cuda {
namespace {

constexpr int kThreads = 256;
constexpr size_t kMaxBlocks = 4096;  // grid-stride loops beyond

int blocks_for(size_t n) { return int(std::max<size_t>(1, std::min(kMaxBlocks, (n + kThreads - 1) / kThreads))); }

__global__ void momentum_kernel(const AdamWChunk* __restrict__ chunks, float mu, float scale, bool nesterov,
                                float* __restrict__ grad, float* __restrict__ buf) {
  const AdamWChunk ch = chunks[blockIdx.x];
  for (uint32_t k = threadIdx.x; k < ch.len; k += blockDim.x) {
    const size_t i = ch.start + k;
    const float g = grad[i] * scale;
    const float b = mu * buf[i] + g;
    buf[i] = b;
    grad[i] = nesterov ? g + mu * b : b;
  }
}

// x = bf16(u / (||u||_F + eps)), the norm from the sum of squares on the device.
__global__ void normalize_kernel(const float* __restrict__ u, size_t n, const double* __restrict__ sumsq, float eps,
                                 __nv_bfloat16* __restrict__ x) {
  const float inv = 1.0f / (float(sqrt(*sumsq)) + eps);
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    x[i] = to_bf(u[i] * inv);
}

__global__ void apply_kernel(const __nv_bfloat16* __restrict__ o, float* __restrict__ master,
                             __nv_bfloat16* __restrict__ params, size_t lo, size_t hi, float decay, float step) {
  for (size_t k = lo + size_t(blockIdx.x) * blockDim.x + threadIdx.x; k < hi; k += size_t(gridDim.x) * blockDim.x) {
    float p = master[k];
    p -= decay * p;
    p -= step * to_f(o[k]);
    master[k] = p;
    params[k] = to_bf(p);
  }
}

}  // namespace

void muon_momentum(cudaStream_t s, const AdamWChunk* chunks, int n_chunks, const MuonStep& h, float* grad,
                   float* buf) {
  if (n_chunks == 0) return;
  momentum_kernel<<<n_chunks, kThreads, 0, s>>>(chunks, float(h.momentum), float(h.grad_scale), h.nesterov, grad, buf);
  CUDA_CHECK_LAUNCH();
}

const __nv_bfloat16* newton_schulz(cudaStream_t s, Matmul& mm, const float* u, int rows, int cols, int steps,
                                   const NsScratch& w) {
  const size_t n = size_t(rows) * size_t(cols);
  sum_squares(s, u, n, w.partial, w.sumsq);
  normalize_kernel<<<blocks_for(n), kThreads, 0, s>>>(u, n, w.sumsq, float(kNsEps), w.x);
  CUDA_CHECK_LAUNCH();
  // The row-major rows x cols buffer is, column-major, Z = W^T (cols x rows, leading dimension
  // cols). Wide W (rows <= cols) iterates X = W = Z^T; tall W iterates X = W^T = Z.
  const bool tall = rows > cols;
  const int m = tall ? cols : rows;  // the Gram matrix is m x m
  const OutType bf = OutType::bf16;
  __nv_bfloat16 *x = w.x, *y = w.y;
  for (int it = 0; it < steps; ++it) {
    if (tall)  // A = Z Z^T
      mm.gemm(s, false, true, cols, cols, rows, x, cols, x, cols, w.gram, cols, bf, 1.0f, 0.0f);
    else  // A = Z^T Z
      mm.gemm(s, true, false, rows, rows, cols, x, cols, x, cols, w.gram, rows, bf, 1.0f, 0.0f);
    // poly = c A A + b A
    mm.gemm(s, false, false, m, m, m, w.gram, m, w.gram, m, w.poly, m, bf, float(kNsC), float(kNsB), w.gram);
    if (tall)  // X' = a X + poly X with X = Z
      mm.gemm(s, false, false, cols, rows, cols, w.poly, cols, x, cols, y, cols, bf, 1.0f, float(kNsA), x);
    else  // X' = a X + poly X with X = Z^T, i.e. Z' = a Z + Z poly^T
      mm.gemm(s, false, true, cols, rows, rows, x, cols, w.poly, rows, y, cols, bf, 1.0f, float(kNsA), x);
    std::swap(x, y);
  }
  return x;
}

void muon_apply(cudaStream_t s, const __nv_bfloat16* o, float* master, __nv_bfloat16* params, size_t lo, size_t hi,
                const MuonStep& h, int rows, int cols) {
  if (hi <= lo) return;
  const float decay = float(h.lr * h.weight_decay), step = float(h.lr * muon_shape_scale(rows, cols));
  apply_kernel<<<blocks_for(hi - lo), kThreads, 0, s>>>(o, master, params, lo, hi, decay, step);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda
