#include "kernels/matmul_cpu.h"
#include "kernels/cpu_parallel.h"

#include <algorithm>
#include <vector>

namespace gfwa::cpu {
namespace {

// A strided 2-D view: element (r, c) is p[r * rs + c * cs]. Lets one GEMM serve x W^T, dy W and
// dy^T x without materialising transposes.
template <class F>
struct View {
  const F* p;
  long rs, cs;
  F at(long r, long c) const { return p[r * rs + c * cs]; }
};

// Register tile MR x NR (NR spans 32 bytes); cache blocks MC x NC x KC. Packed panels are padded
// with zeros so the micro-kernel always runs full tiles.
template <class F>
struct Tiles {
  static constexpr int MR = 4, NR = 32 / int(sizeof(F));
  static constexpr int MC = 64, NC = 256, KC = 256;
};

template <class F>
void pack_a(F* dst, View<F> A, int m0, int mc, int k0, int kc) {
  constexpr int MR = Tiles<F>::MR;
  for (int ir = 0; ir < mc; ir += MR)
    for (int k = 0; k < kc; ++k)
      for (int i = 0; i < MR; ++i) *dst++ = ir + i < mc ? A.at(m0 + ir + i, k0 + k) : F(0);
}

template <class F>
void pack_b(F* dst, View<F> B, int k0, int kc, int n0, int nc) {
  constexpr int NR = Tiles<F>::NR;
  for (int jr = 0; jr < nc; jr += NR)
    for (int k = 0; k < kc; ++k)
      for (int j = 0; j < NR; ++j) *dst++ = jr + j < nc ? B.at(k0 + k, n0 + jr + j) : F(0);
}

// c[mr x nr] += a-panel * b-panel over kc; the accumulators stay in registers.
template <class F>
inline void micro_kernel(int kc, const F* __restrict a, const F* __restrict b, F* c, long ldc, int mr, int nr) {
  constexpr int MR = Tiles<F>::MR, NR = Tiles<F>::NR;
  F acc[MR][NR] = {};
  for (int k = 0; k < kc; ++k, a += MR, b += NR)
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] += a[i] * b[j];
  for (int i = 0; i < mr; ++i)
    for (int j = 0; j < nr; ++j) c[i * ldc + j] += acc[i][j];
}

// C[M, N] (row-major, leading dimension ldc) += A[M, K] B[K, N]. Threads split the C tiles; each
// tile walks K in order, so no reduction ever crosses threads.
template <class F>
void gemm_acc(int M, int N, int K, View<F> A, View<F> B, F* C, long ldc) {
  using T = Tiles<F>;
  const int mt = (M + T::MC - 1) / T::MC, nt = (N + T::NC - 1) / T::NC;
  const long tiles = long(mt) * nt;
#pragma omp parallel if (double(M) * N * K >= kOmpMinWork)
  {
    std::vector<F> apack(size_t(T::MC) * T::KC), bpack(size_t(T::KC) * T::NC);
    long packed_b_tile = -1;  // with a single K block, consecutive tiles of one column reuse B
#pragma omp for schedule(static)
    for (long t = 0; t < tiles; ++t) {
      const int ni = int(t / mt), mi = int(t % mt);
      const int m0 = mi * T::MC, n0 = ni * T::NC;
      const int mc = std::min(T::MC, M - m0), nc = std::min(T::NC, N - n0);
      for (int k0 = 0; k0 < K; k0 += T::KC) {
        const int kc = std::min(T::KC, K - k0);
        pack_a(apack.data(), A, m0, mc, k0, kc);
        if (K > T::KC || packed_b_tile != ni) pack_b(bpack.data(), B, k0, kc, n0, nc);
        packed_b_tile = ni;
        for (int jr = 0; jr < nc; jr += T::NR)
          for (int ir = 0; ir < mc; ir += T::MR)
            micro_kernel(kc, &apack[size_t(ir) * kc], &bpack[size_t(jr) * kc], C + long(m0 + ir) * ldc + n0 + jr,
                         ldc, std::min(T::MR, mc - ir), std::min(T::NR, nc - jr));
      }
    }
  }
}

}  // namespace

template <class F>
void matmul_forward(F* y, const F* x, const F* W, const F* b, int N, int C, int OC) {
#pragma omp parallel for schedule(static) if (long(N) * OC >= kOmpMinWork)
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < OC; ++o) y[long(n) * OC + o] = b ? b[o] : F(0);
  gemm_acc<F>(N, OC, C, {x, C, 1}, {W, 1, C}, y, OC);
}

template <class F>
void matmul_backward(F* dx, F* dW, F* db, const F* dy, const F* x, const F* W, int N, int C, int OC) {
  if (dx) gemm_acc<F>(N, C, OC, {dy, OC, 1}, {W, C, 1}, dx, C);
  if (dW) gemm_acc<F>(OC, C, N, {dy, 1, OC}, {x, C, 1}, dW, C);
  if (db) {
    // Column sums in row order; threads own disjoint column blocks.
    constexpr int kBlock = 64;
#pragma omp parallel for schedule(static) if (long(N) * OC >= kOmpMinWork)
    for (int o0 = 0; o0 < OC; o0 += kBlock) {
      const int o1 = std::min(OC, o0 + kBlock);
      for (int n = 0; n < N; ++n)
        for (int o = o0; o < o1; ++o) db[o] += dy[long(n) * OC + o];
    }
  }
}

template void matmul_forward<float>(float*, const float*, const float*, const float*, int, int, int);
template void matmul_forward<double>(double*, const double*, const double*, const double*, int, int, int);
template void matmul_backward<float>(float*, float*, float*, const float*, const float*, const float*, int, int, int);
template void matmul_backward<double>(double*, double*, double*, const double*, const double*, const double*, int,
                                      int, int);

}  // namespace gfwa::cpu
