// Matrix products of the model through cuBLASLt: bf16 operands, fp32 accumulation, output bf16 or
// fp32. Row-major conventions as in PyTorch: activations [N, in], weights [out, in], y = x W^T.
// The residual add is fused as the epilogue C = beta * C (beta = 1, C = D = residual stream).
// Plans (descriptors + chosen algorithm) are cached per shape, so a step never re-runs the
// heuristic and always picks the same algorithm (bitwise reproducible). When cuBLASLt offers no
// algorithm (odd leading dimensions or alignments) the classic cublasGemmEx path is used.
#pragma once
#include <cstddef>
#include <map>
#include <memory>
#include <tuple>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace gfwa::cuda {

enum class OutType { bf16, f32 };

class Matmul {
 public:
  // workspace: device memory owned by the caller (the backend's arena), >= kWorkspaceBytes.
  Matmul(void* workspace, size_t workspace_bytes);
  ~Matmul();
  Matmul(const Matmul&) = delete;
  Matmul& operator=(const Matmul&) = delete;

  static constexpr size_t kWorkspaceBytes = size_t(32) << 20;

  // y[N, out] = x[N, in] W[out, in]^T + beta * c   (c = y when null; c has y's type and shape)
  void linear(cudaStream_t s, const __nv_bfloat16* x, const __nv_bfloat16* w, void* y, OutType yt, int N, int in,
              int out, float beta = 0.0f, const void* c = nullptr);
  // dx[N, in] = dy[N, out] W[out, in] + beta * dx   (bf16 out)
  void linear_dx(cudaStream_t s, const __nv_bfloat16* dy, const __nv_bfloat16* w, __nv_bfloat16* dx, int N, int in,
                 int out, float beta = 0.0f);
  // dw[out, in] (fp32) = alpha * dy[N, out]^T x[N, in] + beta * dw
  void linear_dw(cudaStream_t s, const __nv_bfloat16* dy, const __nv_bfloat16* x, float* dw, int N, int in, int out,
                 float alpha = 1.0f, float beta = 1.0f);

  // Column-major core: D[m, n] = alpha * op(A) op(B) + beta * C, C = D when null (same layout).
  void gemm(cudaStream_t s, bool transa, bool transb, int m, int n, int k, const __nv_bfloat16* A, int lda,
            const __nv_bfloat16* B, int ldb, void* D, int ldd, OutType dt, float alpha, float beta,
            const void* C = nullptr);

 private:
  struct Plan;
  using Key = std::tuple<bool, bool, int, int, int, int, int, int, int, int, int, int, bool>;
  Plan& plan_for(const Key& key);
  void* handle_ = nullptr;         // cublasLtHandle_t
  void* blas_ = nullptr;           // cublasHandle_t, fallback path
  void* workspace_;
  size_t workspace_bytes_;
  std::map<Key, std::unique_ptr<Plan>> plans_;
};

}  // namespace gfwa::cuda
