#include "kernels/embedding.cuh"

#include <stdexcept>
#include <string>

#include "kernels/cuda_check.h"
#include "kernels/device_util.cuh"

namespace gfwa::cuda {
namespace {

// 16-byte copies when rows allow it (d % 8 == 0), single elements otherwise.
__global__ void embedding_forward_vec(const int32_t* __restrict__ ids, const uint4* __restrict__ table,
                                      uint4* __restrict__ x, int N, int d8) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= size_t(N) * d8) return;
  const size_t n = i / d8, c = i % d8;
  x[i] = table[size_t(ids[n]) * d8 + c];
}

__global__ void embedding_forward_scalar(const int32_t* __restrict__ ids, const __nv_bfloat16* __restrict__ table,
                                         __nv_bfloat16* __restrict__ x, int N, int d) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= size_t(N) * d) return;
  const size_t n = i / d, c = i % d;
  x[i] = table[size_t(ids[n]) * d + c];
}

__global__ void embedding_backward_kernel(const __nv_bfloat16* __restrict__ dx, const int32_t* __restrict__ token,
                                          const int32_t* __restrict__ start, const int32_t* __restrict__ pos,
                                          float* __restrict__ dtable, int d) {
  const int u = blockIdx.x;
  const int p0 = start[u], p1 = start[u + 1];
  float* row = dtable + size_t(token[u]) * d;
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    float acc = 0.0f;
    for (int p = p0; p < p1; ++p) acc += to_f(dx[size_t(pos[p]) * d + c]);
    row[c] += acc;
  }
}

}  // namespace

TokenIndex make_token_index(const int32_t* ids, int N, int vocab) {
  std::vector<int32_t> count(size_t(vocab) + 1, 0);
  for (int n = 0; n < N; ++n) {
    if (ids[n] < 0 || ids[n] >= vocab)
      throw std::out_of_range("token id " + std::to_string(ids[n]) + " at position " + std::to_string(n) +
                              " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    ++count[size_t(ids[n]) + 1];
  }
  TokenIndex ix;
  std::vector<int32_t> first(size_t(vocab) + 1, 0);
  for (int v = 0; v < vocab; ++v) first[v + 1] = first[v] + count[v + 1];
  ix.pos.resize(N);
  std::vector<int32_t> fill(first.begin(), first.end() - 1);
  for (int n = 0; n < N; ++n) ix.pos[fill[ids[n]]++] = n;   // stable: positions stay increasing
  for (int v = 0; v < vocab; ++v)
    if (count[v + 1] > 0) {
      ix.token.push_back(v);
      ix.start.push_back(first[v]);
    }
  ix.start.push_back(N);
  return ix;
}

void embedding_forward(cudaStream_t s, const int32_t* ids, const __nv_bfloat16* table, __nv_bfloat16* x, int N,
                       int d) {
  if (N == 0) return;
  if (d % 8 == 0) {
    const size_t n = size_t(N) * (d / 8);
    embedding_forward_vec<<<ceil_div(n, 256), 256, 0, s>>>(ids, reinterpret_cast<const uint4*>(table),
                                                           reinterpret_cast<uint4*>(x), N, d / 8);
  } else {
    embedding_forward_scalar<<<ceil_div(size_t(N) * d, 256), 256, 0, s>>>(ids, table, x, N, d);
  }
  CUDA_CHECK_LAUNCH();
}

void embedding_backward(cudaStream_t s, const __nv_bfloat16* dx, const int32_t* token, const int32_t* start,
                        const int32_t* pos, int n_unique, float* dtable, int d) {
  if (n_unique == 0) return;
  embedding_backward_kernel<<<n_unique, d >= 256 ? 256 : ((d + 31) / 32) * 32, 0, s>>>(dx, token, start, pos,
                                                                                        dtable, d);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda
