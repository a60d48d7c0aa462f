#include "kernels/matmul.cuh"

#include <algorithm>
#include <stdexcept>
#include <string>

#include <cublasLt.h>
#include <cublas_v2.h>

#include "kernels/cuda_check.h"

namespace gfwa::cuda {
namespace {

void check_blas(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cuBLAS error ") + std::to_string(int(st)) + " in " + what);
}

// Largest power of two (<= 256) dividing the address: what cuBLASLt may assume about it.
int alignment_of(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  int al = 256;
  while (al > 1 && (a % al) != 0) al /= 2;
  return al;
}

}  // namespace

struct Matmul::Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool use_lt = false;
  ~Plan() {
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

Matmul::Matmul(void* workspace, size_t workspace_bytes) : workspace_(workspace), workspace_bytes_(workspace_bytes) {
  cublasLtHandle_t h;
  check_blas(cublasLtCreate(&h), "cublasLtCreate");
  handle_ = h;
  cublasHandle_t b;
  check_blas(cublasCreate(&b), "cublasCreate");
  blas_ = b;
  check_blas(cublasSetWorkspace(b, workspace, workspace_bytes), "cublasSetWorkspace");
}

Matmul::~Matmul() {
  plans_.clear();
  cublasDestroy(static_cast<cublasHandle_t>(blas_));
  cublasLtDestroy(static_cast<cublasLtHandle_t>(handle_));
}

Matmul::Plan& Matmul::plan_for(const Key& key) {
  auto it = plans_.find(key);
  if (it != plans_.end()) return *it->second;
  const auto [ta, tb, m, n, k, lda, ldb, ldd, al_a, al_b, al_d, out_f32, has_beta] = key;
  (void)has_beta;
  auto p = std::make_unique<Plan>();
  const cudaDataType_t dt = out_f32 ? CUDA_R_32F : CUDA_R_16BF;
  check_blas(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
  const cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  check_blas(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof(opa)), "TRANSA");
  check_blas(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof(opb)), "TRANSB");
  check_blas(cublasLtMatrixLayoutCreate(&p->a, CUDA_R_16BF, ta ? k : m, ta ? m : k, lda), "layout A");
  check_blas(cublasLtMatrixLayoutCreate(&p->b, CUDA_R_16BF, tb ? n : k, tb ? k : n, ldb), "layout B");
  check_blas(cublasLtMatrixLayoutCreate(&p->d, dt, m, n, ldd), "layout D");
  cublasLtMatmulPreference_t pref;
  check_blas(cublasLtMatmulPreferenceCreate(&pref), "preference");
  uint64_t ws = workspace_bytes_;
  uint32_t ua = al_a, ub = al_b, ud = al_d;
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &ua, sizeof(ua));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ub, sizeof(ub));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ud, sizeof(ud));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ud, sizeof(ud));
  cublasLtMatmulHeuristicResult_t res{};
  int count = 0;
  const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(static_cast<cublasLtHandle_t>(handle_), p->desc, p->a,
                                                           p->b, p->d, p->d, pref, 1, &res, &count);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st == CUBLAS_STATUS_SUCCESS && count > 0) {
    p->algo = res.algo;
    p->use_lt = true;
  }
  return *plans_.emplace(key, std::move(p)).first->second;
}

void Matmul::gemm(cudaStream_t s, bool transa, bool transb, int m, int n, int k, const __nv_bfloat16* A, int lda,
                  const __nv_bfloat16* B, int ldb, void* D, int ldd, OutType dt, float alpha, float beta,
                  const void* C) {
  if (m <= 0 || n <= 0) return;
  const bool f32 = dt == OutType::f32;
  if (C == nullptr || beta == 0.0f) C = D;
  const Key key{transa, transb, m, n, k, lda, ldb, ldd, alignment_of(A), alignment_of(B), std::min(alignment_of(D), alignment_of(C)), f32,
                beta != 0.0f};
  Plan& p = plan_for(key);
  if (p.use_lt) {
    auto h = static_cast<cublasLtHandle_t>(handle_);
    check_blas(cublasLtMatmul(h, p.desc, &alpha, A, p.a, B, p.b, &beta, C, p.d, D, p.d, &p.algo, workspace_,
                              workspace_bytes_, s),
               "cublasLtMatmul");
    return;
  }
  if (C != D)  // the classic API accumulates in place only
    CUDA_CHECK(cudaMemcpy2DAsync(D, size_t(ldd) * (f32 ? 4 : 2), C, size_t(ldd) * (f32 ? 4 : 2),
                                      size_t(m) * (f32 ? 4 : 2), n, cudaMemcpyDeviceToDevice, s));
  auto b = static_cast<cublasHandle_t>(blas_);
  check_blas(cublasSetStream(b, s), "cublasSetStream");
  check_blas(cublasGemmEx(b, transa ? CUBLAS_OP_T : CUBLAS_OP_N, transb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, &alpha, A,
                          CUDA_R_16BF, lda, B, CUDA_R_16BF, ldb, &beta, D, f32 ? CUDA_R_32F : CUDA_R_16BF, ldd,
                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
             "cublasGemmEx");
}

void Matmul::linear(cudaStream_t s, const __nv_bfloat16* x, const __nv_bfloat16* w, void* y, OutType yt, int N,
                    int in, int out, float beta, const void* c) {
  gemm(s, true, false, out, N, in, w, in, x, in, y, out, yt, 1.0f, beta, c);
}

void Matmul::linear_dx(cudaStream_t s, const __nv_bfloat16* dy, const __nv_bfloat16* w, __nv_bfloat16* dx, int N,
                       int in, int out, float beta) {
  gemm(s, false, false, in, N, out, w, in, dy, out, dx, in, OutType::bf16, 1.0f, beta);
}

void Matmul::linear_dw(cudaStream_t s, const __nv_bfloat16* dy, const __nv_bfloat16* x, float* dw, int N, int in,
                       int out, float alpha, float beta) {
  gemm(s, false, true, in, out, N, x, in, dy, out, dw, in, OutType::f32, alpha, beta);
}

}  // namespace gfwa::cuda
