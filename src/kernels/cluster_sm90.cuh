// Hopper (sm_90a) thread-block clusters: the CTA's rank, a cluster-wide barrier, an mbarrier arrive on any CTA of the
// cluster, and a TMA load multicast into several CTAs' shared memory. Companion of wgmma_sm90.cuh (mbarriers, TMA).
#pragma once
#include <cuda.h>

#include <cstdint>

#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#error "cluster_sm90.cuh needs the sm_90a target (gfwa_kernels_sm90 in CMakeLists.txt)"
#endif

namespace gfwa::cuda::detail {

__device__ __forceinline__ uint32_t cluster_ctarank() {
  uint32_t r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
  return r;
}

// Every thread of every CTA of the cluster: writes before (shared memory, mbarrier inits) are visible after.
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release;\nbarrier.cluster.wait.acquire;\n" ::: "memory");
}

// Arrive (release, cluster scope) on the mbarrier at shared::cta address `bar` of the cluster's CTA `rank` (the same
// offset in that CTA's shared memory; rank may be this CTA's own).
__device__ __forceinline__ void mbar_arrive_cluster(uint32_t bar, uint32_t rank) {
  asm volatile(
      "{\n.reg .b32 remote;\nmapa.shared::cluster.u32 remote, %0, %1;\n"
      "mbarrier.arrive.release.cluster.shared::cluster.b64 _, [remote];\n}\n" ::"r"(bar),
      "r"(rank)
      : "memory");
}

// TMA: box (c0, c1) of a 2-d tensor map into shared memory at dst in every CTA of the cluster whose bit is set in
// `mask`; each completes `bar`'s (the same offset's) expected bytes in its own CTA.
__device__ __forceinline__ void tma_load_2d_multicast(uint32_t dst, const CUtensorMap* map, uint32_t bar, int c0,
                                                      int c1, uint16_t mask) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1, {%2, "
      "%3}], [%4], %5;\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar), "h"(mask)
      : "memory");
}

}  // namespace gfwa::cuda::detail
