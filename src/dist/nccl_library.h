// NCCL's entry points, loaded with dlopen on first use: `gfwa` then starts on machines without
// libnccl, which only multi-process runs need. Loading first forces NCCL_NVLS_ENABLE=0 (NVLink
// multicast can take a shared host's GPUs out of service), before NCCL reads its environment.
#pragma once
#ifdef GFWA_WITH_CUDA
#include <nccl.h>

#include <string>

namespace gfwa::dist {

struct NcclApi {
  std::string path;
  int version = 0;  // e.g. 22809 for 2.28.9
  decltype(&ncclGetUniqueId) GetUniqueId = nullptr;
  decltype(&ncclCommInitRankConfig) CommInitRankConfig = nullptr;
  decltype(&ncclCommFinalize) CommFinalize = nullptr;
  decltype(&ncclCommDestroy) CommDestroy = nullptr;
  decltype(&ncclCommAbort) CommAbort = nullptr;
  decltype(&ncclCommGetAsyncError) CommGetAsyncError = nullptr;
  decltype(&ncclGetErrorString) GetErrorString = nullptr;
  decltype(&ncclGetLastError) GetLastError = nullptr;
  decltype(&ncclAllReduce) AllReduce = nullptr;
  decltype(&ncclReduceScatter) ReduceScatter = nullptr;
  decltype(&ncclAllGather) AllGather = nullptr;
};

constexpr int kMinNcclVersion = 21800;  // 2.18: non-blocking communicators we can abort

// Loads `path` (a file name is searched like any library). Throws DistError naming the path.
NcclApi load_nccl(const std::string& path);
// The process-wide library: $GFWA_NCCL_LIBRARY if set, else libnccl.so.2. Loaded once.
const NcclApi& nccl();
// Sets NCCL_NVLS_ENABLE=0 whatever it was, and logs that it did.
void force_nvls_off();

}  // namespace gfwa::dist
#endif
