#include "kernels/matmul_cpu.h"
#include "kernels/cpu_parallel.h"

#include <algorithm>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#define GFWA_MATMUL_AVX2 1
#endif

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

// Portable micro-kernel: an MR x NR register tile (NR spans 32 bytes), c += a-panel * b-panel.
template <class F>
struct GenericKernel {
  static constexpr int MR = 4, NR = 32 / int(sizeof(F));
  static void run(int kc, const F* __restrict a, const F* __restrict b, F* c, long ldc, int mr, int nr) {
    F acc[MR][NR] = {};
    for (int k = 0; k < kc; ++k, a += MR, b += NR)
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) acc[i][j] += a[i] * b[j];
    for (int i = 0; i < mr; ++i)
      for (int j = 0; j < nr; ++j) c[i * ldc + j] += acc[i][j];
  }
};

#ifdef GFWA_MATMUL_AVX2
// fp32 micro-kernel for AVX2+FMA CPUs (chosen at run time): 6 x 16 tile = 12 ymm accumulators,
// ~2.6x the portable kernel on the classifier GEMM. Fused multiply-adds round differently from
// the portable kernel, so results are bitwise reproducible per machine type, not across them.
struct Avx2Kernel {
  static constexpr int MR = 6, NR = 16;
  typedef float v8 __attribute__((vector_size(32)));
  __attribute__((target("avx2,fma"))) static void run(int kc, const float* __restrict a, const float* __restrict b,
                                                       float* c, long ldc, int mr, int nr) {
    v8 acc[MR][2] = {};
    for (int k = 0; k < kc; ++k, a += MR, b += NR) {
      v8 b0, b1;
      __builtin_memcpy(&b0, b, sizeof(v8));
      __builtin_memcpy(&b1, b + 8, sizeof(v8));
      for (int i = 0; i < MR; ++i) {
        const v8 ai = {a[i], a[i], a[i], a[i], a[i], a[i], a[i], a[i]};
        acc[i][0] += ai * b0;
        acc[i][1] += ai * b1;
      }
    }
    if (mr == MR && nr == NR) {  // full tile: vector read-modify-write of C
      for (int i = 0; i < MR; ++i)
        for (int h = 0; h < 2; ++h) {
          v8 cv;
          __builtin_memcpy(&cv, c + i * ldc + 8 * h, sizeof(v8));
          cv += acc[i][h];
          __builtin_memcpy(c + i * ldc + 8 * h, &cv, sizeof(v8));
        }
      return;
    }
    for (int i = 0; i < mr; ++i)
      for (int j = 0; j < nr; ++j) c[i * ldc + j] += acc[i][j / 8][j % 8];
  }
};

bool cpu_has_avx2_fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}
#endif

// Cache blocks MC x NC x KC around the micro-kernel; packed panels are padded with zeros so the
// kernel always runs full tiles.
template <class K>
struct Blocks {
  static constexpr int MC = 16 * K::MR, NC = 256, KC = 256;
};

template <class K, class F>
void pack_a(F* dst, View<F> A, int m0, int mc, int k0, int kc) {
  for (int ir = 0; ir < mc; ir += K::MR)
    for (int k = 0; k < kc; ++k)
      for (int i = 0; i < K::MR; ++i) *dst++ = ir + i < mc ? A.at(m0 + ir + i, k0 + k) : F(0);
}

template <class K, class F>
void pack_b(F* dst, View<F> B, int k0, int kc, int n0, int nc) {
  for (int jr = 0; jr < nc; jr += K::NR)
    for (int k = 0; k < kc; ++k)
      for (int j = 0; j < K::NR; ++j) *dst++ = jr + j < nc ? B.at(k0 + k, n0 + jr + j) : F(0);
}

// C[M, N] (row-major, leading dimension ldc) += A[M, K] B[K, N]. B is packed once for all tiles
// (into a per-thread workspace that is kept between calls: the classifier's B is 25 MB), then
// threads split the C tiles; each tile walks K in order, so no reduction ever crosses threads.
template <class Kern, class F>
void gemm_acc_with(int M, int N, int K, View<F> A, View<F> B, F* C, long ldc) {
  using T = Blocks<Kern>;
  const int mt = (M + T::MC - 1) / T::MC, nt = (N + T::NC - 1) / T::NC, kt = (K + T::KC - 1) / T::KC;
  const int ncp = std::min(T::NC, (N + Kern::NR - 1) / Kern::NR * Kern::NR);  // padded column-tile width
  static thread_local std::vector<F> bpack;
  bpack.resize(size_t(nt) * K * ncp);
  F* const bp = bpack.data();
  auto b_block = [&](int ni, int k0) { return bp + (size_t(ni) * K + k0) * ncp; };
#pragma omp parallel if (double(M) * N * K >= kOmpMinWork)
  {
#pragma omp for schedule(static)
    for (long t = 0; t < long(nt) * kt; ++t) {
      const int ni = int(t / kt), k0 = int(t % kt) * T::KC;
      pack_b<Kern>(b_block(ni, k0), B, k0, std::min(T::KC, K - k0), ni * T::NC, std::min(T::NC, N - ni * T::NC));
    }
    static thread_local std::vector<F> apack;  // pack_a writes every element, padding included
    apack.resize(size_t(T::MC) * T::KC);
#pragma omp for schedule(static)
    for (long t = 0; t < long(mt) * nt; ++t) {
      const int ni = int(t / mt), mi = int(t % mt);
      const int m0 = mi * T::MC, n0 = ni * T::NC;
      const int mc = std::min(T::MC, M - m0), nc = std::min(T::NC, N - n0);
      for (int k0 = 0; k0 < K; k0 += T::KC) {
        const int kc = std::min(T::KC, K - k0);
        pack_a<Kern>(apack.data(), A, m0, mc, k0, kc);
        const F* bb = b_block(ni, k0);
        for (int jr = 0; jr < nc; jr += Kern::NR)
          for (int ir = 0; ir < mc; ir += Kern::MR)
            Kern::run(kc, &apack[size_t(ir) * kc], bb + size_t(jr) * kc, C + long(m0 + ir) * ldc + n0 + jr, ldc,
                      std::min(Kern::MR, mc - ir), std::min(Kern::NR, nc - jr));
      }
    }
  }
}

template <class F>
void gemm_acc(int M, int N, int K, View<F> A, View<F> B, F* C, long ldc) {
#ifdef GFWA_MATMUL_AVX2
  if constexpr (sizeof(F) == sizeof(float)) {
    if (cpu_has_avx2_fma()) return gemm_acc_with<Avx2Kernel>(M, N, K, A, B, C, ldc);
  }
#endif
  gemm_acc_with<GenericKernel<F>>(M, N, K, A, B, C, ldc);
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
