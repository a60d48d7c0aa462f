// The MLP's GEMMs with SwiGLU in their epilogues (sm_90a; docs/cuda_backend.md, "SwiGLU in the w13 GEMM's epilogue"
// and "SwiGLU backward in the w2 dX GEMM's epilogue").
//
// Forward: from x [N, d] and W13 [2F, d] (rows 0..F-1 W1, F..2F-1 W3, row-major bf16) one kernel writes
//   u[N, 2F] = x W13^T                 (bf16, what Matmul::linear writes: fp32 accumulation, one rounding)
//   g[N, F]  = silu(a) * b             (a, b = u's two halves of the row, the ROUNDED bf16 values)
// with g computed by swiglu_forward's expression (swiglu_math.cuh), so g is bit for bit swiglu_forward(u). The
// backward reads u and g as before. The backend uses it on compute capability 9.0 for eligible shapes (d >= 768: below
// it the kernel is correct but not measured); elsewhere it runs Matmul::linear + swiglu_forward.
//
// Backward: from dres [N, d] (the gradient of the MLP's output), W2 [d, F] (row-major bf16, Linear's [out, in]) and
// u = [a | b] [N, 2F] one kernel computes
//   dg[N, F] = dres W2                 (fp32 accumulation, rounded to bf16: Matmul::linear_dx's dg; never stored)
//   da, db   = swiglu_backward's values from that dg and u's a, b, written over a and b
// so u holds du = [da | db] afterwards, as after Matmul::linear_dx + swiglu_backward (bit for bit given the same bf16
// dg: swiglu_math.cuh). The backend uses it where it uses the forward kernel (gemm_swiglu_eligible).
//
// Both: fixed tile-to-CTA mapping, no split-K, no atomics: bitwise repeatable.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace gfwa::cuda {

// The shapes the kernels take: N >= 1, d % 64 == 0 (64-column k-slabs), F % 128 == 0 (128-column tiles of g).
bool gemm_swiglu_shape_ok(int N, int d, int F);
// The fused kernels are used from d_model 768 up, the smallest width at which the forward was measured (H200, per
// training step, docs/cuda_backend.md): 124m (d 768, F 3072, N 32768, 12 layers) 5.99 ms against 7.32 ms for cuBLAS +
// swiglu_forward; 1.3b (d 2048) 41.7 against 43.4 ms before the epilogue's division got cheaper. The backward, measured
// at the same two widths, is faster at both: 4.43 against 3.01 + 2.83 ms (124m), 26.1 against 20.9 + 7.5 ms (1.3b).
constexpr int kGemmSwigluMinD = 768;
// The backend's test for both kernels: gemm_swiglu_shape_ok, d >= kGemmSwigluMinD, and the current device is compute
// capability 9.0 (where sm_90a code runs).
bool gemm_swiglu_eligible(int N, int d, int F);

// u and g as above; x, w13, u, g 16-byte aligned. Throws std::invalid_argument (naming the argument) on a null or
// misaligned pointer or a shape gemm_swiglu_shape_ok refuses, std::runtime_error off compute capability 9.0.
void gemm_swiglu_forward(cudaStream_t s, const __nv_bfloat16* x, const __nv_bfloat16* w13, __nv_bfloat16* u,
                         __nv_bfloat16* g, int N, int d, int F);

// du = [da | db] over u = [a | b] as above; dres, w2, u 16-byte aligned. Throws like gemm_swiglu_forward.
void gemm_swiglu_backward(cudaStream_t s, const __nv_bfloat16* dres, const __nv_bfloat16* w2, __nv_bfloat16* u, int N,
                          int d, int F);

namespace detail {
// gemm_swiglu_sm90.cu: the launch, after gemm_swiglu_forward's checks. sms and l2_bytes: the device's.
void launch_gemm_swiglu_sm90(cudaStream_t s, const __nv_bfloat16* x, const __nv_bfloat16* w13, __nv_bfloat16* u,
                             __nv_bfloat16* g, int N, int d, int F, int sms, int l2_bytes);
// gemm_swiglu_bwd_sm90.cu: the launch, after gemm_swiglu_backward's checks.
void launch_gemm_swiglu_bwd_sm90(cudaStream_t s, const __nv_bfloat16* dres, const __nv_bfloat16* w2,
                                 __nv_bfloat16* u, int N, int d, int F, int sms, int l2_bytes);
}  // namespace detail

}  // namespace gfwa::cuda
