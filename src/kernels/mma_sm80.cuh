// Warp-level tensor-core building blocks (sm_80+ instructions, used on sm_90): mma.sync m16n8k16 bf16,
// ldmatrix, cp.async, and the XOR-swizzled shared-memory tile layout they read.
//
// Fragment layouts (lane = 4*g + t, g = lane/4 "group", t = lane%4):
//   A 16x16 (row-major)  a0:(g, 2t..2t+1) a1:(g+8, 2t..) a2:(g, 8+2t..) a3:(g+8, 8+2t..)
//   B 16x8  (k x n)      b0:(k=2t..2t+1, n=g) b1:(k=8+2t.., n=g)
//   C 16x8  fp32         c0,c1:(g, 2t, 2t+1)  c2,c3:(g+8, 2t, 2t+1)
// Two C fragments side by side (n-blocks 2kk, 2kk+1) are, packed to bf16, the A fragment of k-step kk:
// this is how P and dS feed the second matmul without leaving registers.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

namespace gfwa::cuda::detail {

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Tiles of R rows x D bf16 in shared memory, row-major, 16-byte chunk c of row r stored at chunk c ^ (r & 7):
// the 8 rows one ldmatrix phase reads then sit in 8 different bank groups (D*2 bytes is a multiple of 128).
template <int D>
__device__ __forceinline__ uint32_t swz(int row, int chunk) {
  return uint32_t(row * D * 2 + ((chunk ^ (row & 7)) << 4));
}

// 16-byte global->shared copy; zero-fills the destination when !pred (rows past T must read as 0, never as
// garbage that could be NaN and survive a multiplication by a zero probability).
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool pred) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(pred ? 16 : 0));
}
__device__ __forceinline__ void cp_async4(uint32_t dst, const void* src, bool pred) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(pred ? 4 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// c += a * b, fp32 accumulate.
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// Sum over the 4 lanes that hold one accumulator row (lanes 4g .. 4g+3, the C layout above).
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// 2^x with the hardware approximation (rel. error ~2^-22; ex2(-inf) = 0).
__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Lane addresses for the three ways a swizzled tile is read (see the layouts above). Every fragment's
// 8-row groups start at a multiple of 8, so (row & 7) == (lane & 7) and the swizzle folds into a per-thread
// offset (the *_off functions, computed once) XOR (16-byte chunk step << 4): one LOP per k-step instead of a
// register per address.
// A operand: rows r0..r0+15 (r0 % 16 == 0), k columns 16*kk..16*kk+15.
template <int D>
__device__ __forceinline__ uint32_t a_off(int lane) {
  return uint32_t((lane & 15) * D * 2 + (((lane >> 4) ^ (lane & 7)) << 4));
}
template <int D>
__device__ __forceinline__ uint32_t a_addr(uint32_t base, int r0, int kk, uint32_t off) {
  return base + r0 * D * 2 + (off ^ (kk << 5));
}
// B operand stored n-major (tile rows are n, e.g. K[key][d] for Q K^T): n-blocks n0, n0+8 (n0 % 16 == 0),
// k-step kk. Result r0,r1 = (b0,b1) of n-block n0; r2,r3 of n-block n0+8.
template <int D>
__device__ __forceinline__ uint32_t bn_off(int lane) {
  return uint32_t(((lane & 7) + ((lane >> 4) << 3)) * D * 2 + ((((lane >> 3) & 1) ^ (lane & 7)) << 4));
}
template <int D>
__device__ __forceinline__ uint32_t bn_addr(uint32_t base, int n0, int kk, uint32_t off) {
  return base + n0 * D * 2 + (off ^ (kk << 5));
}
// B operand stored k-major (tile rows are k, e.g. V[key][d] for P V), read with .trans: k-step kk,
// n-blocks (columns) 16*d2, 16*d2+8. Same result order as bn_addr.
template <int D>
__device__ __forceinline__ uint32_t bk_off(int lane) {
  return uint32_t(((lane & 7) + (((lane >> 3) & 1) << 3)) * D * 2 + (((lane >> 4) ^ (lane & 7)) << 4));
}
template <int D>
__device__ __forceinline__ uint32_t bk_addr(uint32_t base, int kk, int d2, uint32_t off) {
  return base + kk * 16 * D * 2 + (off ^ (d2 << 5));
}

// Loads rows [row0, row0 + R) of a [T, *] bf16 matrix (row stride `stride` elements, D columns) into a
// swizzled tile; rows >= T are zero-filled. Thread t always copies chunk t % (D/8) of rows t / (D/8) + k*step:
// one global pointer per thread and shared offsets that are immediates (step is a multiple of 8 rows).
template <int R, int D, int NTHREADS>
__device__ __forceinline__ void load_tile_async(uint32_t dst, const __nv_bfloat16* src, int64_t stride, int row0,
                                                int T) {
  constexpr int kChunks = D / 8, kStep = NTHREADS / kChunks;
  static_assert(NTHREADS % kChunks == 0 && kStep % 8 == 0 && R % kStep == 0, "tile loader shape");
  const int c = threadIdx.x % kChunks, r = threadIdx.x / kChunks;
  const uint32_t d = dst + swz<D>(r, c);
  const __nv_bfloat16* s = src + int64_t(row0 + r) * stride + c * 8;
#pragma unroll
  for (int k = 0; k < R / kStep; ++k) {
    const bool ok = row0 + r + k * kStep < T;
    cp_async16(d + k * kStep * D * 2, ok ? s + k * kStep * stride : src, ok);
  }
}

// Loads n fp32 values x[(row0 + i) * stride], i < n, into shared memory; rows >= T read as `fill`
// (written directly, so the caller's barrier publishes them together with the copies).
__device__ __forceinline__ void load_vec_async(float* dst, const float* src, int64_t stride, int row0, int n, int T,
                                               float fill) {
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const int t = row0 + i;
    if (t < T)
      cp_async4(smem_addr(dst + i), src + t * stride, true);
    else
      dst[i] = fill;
  }
}

// Writes a warp's 16 rows (r0..r0+15) of a swizzled tile to global rows row0+r0.., skipping rows >= T.
template <int D>
__device__ __forceinline__ void store_rows16(const __nv_bfloat16* tile, __nv_bfloat16* dst, int64_t stride, int row0,
                                             int r0, int T, int lane) {
  constexpr int kChunks = D / 8;
  const char* base = reinterpret_cast<const char*>(tile);
#pragma unroll
  for (int idx = lane; idx < 16 * kChunks; idx += 32) {
    const int r = r0 + idx / kChunks, c = idx % kChunks, t = row0 + r;
    if (t < T)
      *reinterpret_cast<uint4*>(dst + t * stride + c * 8) = *reinterpret_cast<const uint4*>(base + swz<D>(r, c));
  }
}

// Stores a C fragment pair (rows g, g+8 of a 16-row block at r0, columns col, col+1) as bf16 into a tile.
template <int D>
__device__ __forceinline__ void stage_c(__nv_bfloat16* tile, int r0, int col, const float (&c)[4], float scale,
                                        int lane) {
  char* base = reinterpret_cast<char*>(tile);
  const int g = lane >> 2, r = r0 + g;
  const int off = (col & 7) * 2;
  *reinterpret_cast<uint32_t*>(base + swz<D>(r, col >> 3) + off) = pack_bf16(c[0] * scale, c[1] * scale);
  *reinterpret_cast<uint32_t*>(base + swz<D>(r + 8, col >> 3) + off) = pack_bf16(c[2] * scale, c[3] * scale);
}

}  // namespace gfwa::cuda::detail
