// Hopper (sm_90a) building blocks: warpgroup MMA (wgmma) with shared-memory descriptors, TMA tile loads, mbarriers,
// named barriers and setmaxnreg. Included only by the *_sm90*.cu files, which CMake builds for sm_90a alone.
//
// wgmma m64nNk16 (bf16 in, fp32 accumulate) is issued by a warpgroup (4 consecutive warps, the first a multiple of 4);
// warp w of the group owns rows 16w..16w+15 of the 64-row tile. Per thread (lane = 4g + t):
//   accumulator d[4n + e], n < N/8:  row 16w + g + 8*(e >> 1), column 8n + 2t + (e & 1)
//   A fragment from registers, k-step of 16 columns: a0 (g, 2t..2t+1), a1 (g+8, 2t..), a2 (g, 8+2t..), a3 (g+8, 8+2t..)
// the mma.sync m16n8k16 layouts of mma_sm80.cuh, so an accumulator tile packed to bf16 is the A operand of the next
// product: d[8kk .. 8kk+7] give k-step kk's {a0, a1, a2, a3}.
//
// Shared-memory operands use the 128-byte swizzle that TMA's CU_TENSOR_MAP_SWIZZLE_128B writes: a tile of rows of 64
// bf16 (128 bytes), 16-byte chunk c of row r stored at chunk c ^ (r % 8), in 1024-byte atoms of 8 rows (the atom
// must start 1024-byte aligned). Wider rows are split into 64-column slabs stored one after the other.
//   K-major operand (rows = M or N, the 64 columns = K; Q and K in Q K^T): stride byte offset (SBO) = 1024, the
//     distance between 8-row groups; leading byte offset unused (1). k-step kk of a slab starts 32*kk bytes in.
//   N-major operand (rows = K, the 64 columns = N; V in P V, transposed): SBO = 1024 between 8-row (k) groups,
//     LBO = the distance between 64-column slabs. k-step kk starts 16 rows = 2048 bytes in. A shared-memory A may be
//     stored this way too (M-major: rows = K, the 64 columns = M; imm-trans-a 1).
#pragma once
#include <cuda.h>
#include <cuda_bf16.h>

#include <cstdint>

#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#error "wgmma_sm90.cuh needs the sm_90a target (gfwa_kernels_sm90 in CMakeLists.txt)"
#endif

namespace gfwa::cuda::detail {

// Matrix descriptor, 128-byte swizzle: start address, LBO, SBO (all in 16-byte units), swizzle mode 1 in bits 62-63.
// Offsets added to a descriptor (k-steps, stages) are in 16-byte units too and never carry out of the 14-bit field
// (shared memory is < 256 KB).
__device__ __forceinline__ uint64_t smem_desc_sw128(uint32_t addr, uint32_t lbo_bytes, uint32_t sbo_bytes) {
  return uint64_t((addr & 0x3FFFF) >> 4) | (uint64_t(lbo_bytes >> 4) << 16) | (uint64_t(sbo_bytes >> 4) << 32) |
         (uint64_t(1) << 62);
}

// Orders register accesses around the asynchronous MMAs: wgmma_fence before the first wgmma that reads registers
// written since (accumulators, A fragments); commit closes a group; wait<N> returns when at most N groups are pending.
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// The compiler sees a wgmma's registers as written when it is issued; after the wait, these empty asm statements
// tie every later use to the wait (and keep the registers of an in-flight A operand from being reused before it).
template <int N>
__device__ __forceinline__ void fence_regs(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}
template <int N, int M>
__device__ __forceinline__ void fence_regs(uint32_t (&r)[N][M]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
#pragma unroll
    for (int j = 0; j < M; ++j) asm volatile("" : "+r"(r[i][j])::"memory");
}

// The accumulator operands of one wgmma: 32 fp32 registers per macro (d[base] .. d[base + 31]), and the matching
// "%0, ..., %31" / "%0, ..., %63" operand lists.
#define GFWA_WGMMA_ACC32(d, base)                                                                                  \
  "+f"(d[base + 0]), "+f"(d[base + 1]), "+f"(d[base + 2]), "+f"(d[base + 3]), "+f"(d[base + 4]), "+f"(d[base + 5]),   \
      "+f"(d[base + 6]), "+f"(d[base + 7]), "+f"(d[base + 8]), "+f"(d[base + 9]), "+f"(d[base + 10]),                \
      "+f"(d[base + 11]), "+f"(d[base + 12]), "+f"(d[base + 13]), "+f"(d[base + 14]), "+f"(d[base + 15]),            \
      "+f"(d[base + 16]), "+f"(d[base + 17]), "+f"(d[base + 18]), "+f"(d[base + 19]), "+f"(d[base + 20]),            \
      "+f"(d[base + 21]), "+f"(d[base + 22]), "+f"(d[base + 23]), "+f"(d[base + 24]), "+f"(d[base + 25]),            \
      "+f"(d[base + 26]), "+f"(d[base + 27]), "+f"(d[base + 28]), "+f"(d[base + 29]), "+f"(d[base + 30]),            \
      "+f"(d[base + 31])
// The same, output only: for the first k-step of a product that overwrites d (scale-d false), so the compiler sees d's
// old values as dead and does not keep them alive across the loop.
#define GFWA_WGMMA_OUT32(d, base)                                                                                  \
  "=f"(d[base + 0]), "=f"(d[base + 1]), "=f"(d[base + 2]), "=f"(d[base + 3]), "=f"(d[base + 4]), "=f"(d[base + 5]),   \
      "=f"(d[base + 6]), "=f"(d[base + 7]), "=f"(d[base + 8]), "=f"(d[base + 9]), "=f"(d[base + 10]),                \
      "=f"(d[base + 11]), "=f"(d[base + 12]), "=f"(d[base + 13]), "=f"(d[base + 14]), "=f"(d[base + 15]),            \
      "=f"(d[base + 16]), "=f"(d[base + 17]), "=f"(d[base + 18]), "=f"(d[base + 19]), "=f"(d[base + 20]),            \
      "=f"(d[base + 21]), "=f"(d[base + 22]), "=f"(d[base + 23]), "=f"(d[base + 24]), "=f"(d[base + 25]),            \
      "=f"(d[base + 26]), "=f"(d[base + 27]), "=f"(d[base + 28]), "=f"(d[base + 29]), "=f"(d[base + 30]),            \
      "=f"(d[base + 31])
#define GFWA_WGMMA_REGS32 \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, " \
  "%24, %25, %26, %27, %28, %29, %30, %31"
#define GFWA_WGMMA_REGS64                                                                                    \
  GFWA_WGMMA_REGS32                                                                                          \
  ", %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, " \
  "%53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"

// d (+)= A B with A (64 x 16) and B (16 x N) in shared memory; scale_d = 0 overwrites d instead of adding.
// kTransA / kTransB = 1: that operand is stored MN-major (the N-major layout above, for A too).
template <int kTransA, int kTransB>
__device__ __forceinline__ void wgmma_m64n128k16_ss(float (&d)[64], uint64_t a_desc, uint64_t b_desc, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" GFWA_WGMMA_REGS64 "}, %64, %65, p, 1, 1, %67, %68;\n}\n"
      : GFWA_WGMMA_ACC32(d, 0), GFWA_WGMMA_ACC32(d, 32)
      : "l"(a_desc), "l"(b_desc), "r"(scale_d), "n"(kTransA), "n"(kTransB));
}
template <int kTransA, int kTransB>
__device__ __forceinline__ void wgmma_m64n64k16_ss(float (&d)[32], uint64_t a_desc, uint64_t b_desc, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" GFWA_WGMMA_REGS32 "}, %32, %33, p, 1, 1, %35, %36;\n}\n"
      : GFWA_WGMMA_ACC32(d, 0)
      : "l"(a_desc), "l"(b_desc), "r"(scale_d), "n"(kTransA), "n"(kTransB));
}
// The first k-step of d = A B (scale-d false) with d as output-only operands: d's old values are dead to the compiler.
template <int kTransA, int kTransB>
__device__ __forceinline__ void wgmma_m64n128k16_ss_first(float (&d)[64], uint64_t a_desc, uint64_t b_desc) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" GFWA_WGMMA_REGS64 "}, %64, %65, p, 1, 1, %67, %68;\n}\n"
      : GFWA_WGMMA_OUT32(d, 0), GFWA_WGMMA_OUT32(d, 32)
      : "l"(a_desc), "l"(b_desc), "r"(0), "n"(kTransA), "n"(kTransB));
}
template <int kTransA, int kTransB>
__device__ __forceinline__ void wgmma_m64n64k16_ss_first(float (&d)[32], uint64_t a_desc, uint64_t b_desc) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" GFWA_WGMMA_REGS32 "}, %32, %33, p, 1, 1, %35, %36;\n}\n"
      : GFWA_WGMMA_OUT32(d, 0)
      : "l"(a_desc), "l"(b_desc), "r"(0), "n"(kTransA), "n"(kTransB));
}

// d += A B with A (64 x 16) in registers (the A fragment above) and B (16 x 128) in shared memory.
template <int kTransB>
__device__ __forceinline__ void wgmma_m64n128k16_rs(float (&d)[64], const uint32_t (&a)[4], uint64_t b_desc) {
  asm volatile("wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" GFWA_WGMMA_REGS64
               "}, {%64, %65, %66, %67}, %68, 1, 1, 1, %69;\n"
               : GFWA_WGMMA_ACC32(d, 0), GFWA_WGMMA_ACC32(d, 32)
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "n"(kTransB));
}

// d += A B with A (64 x 16) in registers and B (16 x 64) in shared memory.
template <int kTransB>
__device__ __forceinline__ void wgmma_m64n64k16_rs(float (&d)[32], const uint32_t (&a)[4], uint64_t b_desc) {
  asm volatile("wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" GFWA_WGMMA_REGS32
               "}, {%32, %33, %34, %35}, %36, 1, 1, 1, %37;\n"
               : GFWA_WGMMA_ACC32(d, 0)
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "n"(kTransB));
}

#undef GFWA_WGMMA_ACC32
#undef GFWA_WGMMA_OUT32
#undef GFWA_WGMMA_REGS32
#undef GFWA_WGMMA_REGS64

// mbarrier: init (one thread), arrive (release), arrive that also expects `bytes` of TMA writes, wait on a phase's
// parity (acquire). A barrier's phases alternate parity 0, 1, 0, ...; waiting on the parity before the first phase
// returns at once (how a producer's first pass over empty stages goes through).
__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
// No time-out: a trap on this path (or anywhere in the kernel) makes ptxas drop the setmaxnreg register budgets
// (the consumers fall back to 168 registers, spill, and serialise their wgmma: ptxas C7512).
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  uint32_t done;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  } while (!done);
}

// TMA: box (c0, c1, c2, c3) of a 4-d tensor map into shared memory at dst; completes `bar`'s expected bytes.
__device__ __forceinline__ void tma_load_4d(uint32_t dst, const CUtensorMap* map, uint32_t bar, int c0, int c1, int c2,
                                            int c3) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], "
      "[%6];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar)
      : "memory");
}
// TMA: box (c0, c1) of a 2-d tensor map (c0 the column, c1 the row) into shared memory at dst; completes `bar`'s
// expected bytes.
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap* map, uint32_t bar, int c0, int c1) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
          dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar)
      : "memory");
}
// L2 eviction priorities for TMA loads (createpolicy; the fraction 1.0 applies it to every line the load touches):
// evict_first for data read once (it leaves before what is re-read), evict_last for operands re-read by other tiles.
__device__ __forceinline__ uint64_t l2_evict_first_policy() {
  uint64_t p;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(p));
  return p;
}
__device__ __forceinline__ uint64_t l2_evict_last_policy() {
  uint64_t p;
  asm volatile("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;\n" : "=l"(p));
  return p;
}
// tma_load_2d with an L2 eviction policy (l2_evict_*_policy).
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap* map, uint32_t bar, int c0, int c1,
                                            uint64_t policy) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1, {%2, %3}], "
      "[%4], %5;\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar), "l"(policy)
      : "memory");
}
// Bulk copy of `bytes` (a multiple of 16, both addresses 16-byte aligned) from global to shared memory; completes
// `bar`'s expected bytes like a TMA load.
__device__ __forceinline__ void bulk_load(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst),
      "l"(__cvta_generic_to_global(src)), "r"(bytes), "r"(bar)
      : "memory");
}
// TMA: box (c0, c1) of a 2-d tensor map into the L2 only (no completion to wait for; a later load of it hits L2).
__device__ __forceinline__ void tma_prefetch_l2_2d(const CUtensorMap* map, int c0, int c1) {
  asm volatile("cp.async.bulk.prefetch.tensor.2d.L2.global.tile [%0, {%1, %2}];\n" ::"l"(
                   reinterpret_cast<uint64_t>(map)),
               "r"(c0), "r"(c1)
               : "memory");
}
__device__ __forceinline__ void tma_prefetch_map(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

// Shared memory written by ordinary stores that wgmma or a bulk copy (the async proxy) reads next: each writing thread
// fences before the barrier or arrival that publishes the writes.
__device__ __forceinline__ void fence_async_smem() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// Orders this thread's global-memory accesses across the two proxies: a bulk reduction's completed writes before the
// release of a counter, the acquire of a counter before the next bulk reduction.
__device__ __forceinline__ void fence_async_global() { asm volatile("fence.proxy.async.global;\n" ::: "memory"); }

// Bulk copies of `bytes` (a multiple of 16, both addresses 16-byte aligned) from shared to global memory, tracked as
// bulk groups of the issuing thread: store overwrites, reduce_add adds fp32 element-wise (in L2, each element once per
// copy). commit closes a group; wait_all returns when every committed group of the thread has finished writing.
__device__ __forceinline__ void bulk_store(float* dst, uint32_t src, uint32_t bytes) {
  asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;\n" ::"l"(__cvta_generic_to_global(dst)),
               "r"(src), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void bulk_reduce_add(float* dst, uint32_t src, uint32_t bytes) {
  asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n" ::"l"(
                   __cvta_generic_to_global(dst)),
               "r"(src), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void bulk_wait_all() { asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory"); }

// A counter in global memory shared by the CTAs of a launch: acquire load, release increment (GPU scope).
__device__ __forceinline__ uint32_t ld_acquire_gpu(const uint32_t* p) {
  uint32_t v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(v) : "l"(__cvta_generic_to_global(p)) : "memory");
  return v;
}
__device__ __forceinline__ void red_release_gpu_add(uint32_t* p, uint32_t v) {
  asm volatile("red.release.gpu.global.add.u32 [%0], %1;\n" ::"l"(__cvta_generic_to_global(p)), "r"(v) : "memory");
}

// Named barriers (0 is __syncthreads'): sync waits until `count` threads arrived, counting its own; arrive does not wait.
__device__ __forceinline__ void named_bar_sync(int id, int count) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}
__device__ __forceinline__ void named_bar_arrive(int id, int count) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}

// Moves registers between warpgroups (all 4 warps of one group execute the same one; the kernel needs a register
// cap at entry, __launch_bounds__(threads, 1)).
template <int N>
__device__ __forceinline__ void setmaxnreg_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N>
__device__ __forceinline__ void setmaxnreg_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}

}  // namespace gfwa::cuda::detail
