#ifdef GFWA_WITH_CUDA
#include "dist/nccl_library.h"

#include <dlfcn.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

#include "dist/dist_error.h"

namespace gfwa::dist {
namespace {

template <typename F>
void bind(void* lib, const std::string& path, const char* name, F& fn) {
  fn = reinterpret_cast<F>(::dlsym(lib, name));
  if (!fn) throw DistError("NCCL library " + path + " has no " + name + " (too old? gfwa needs NCCL >= 2.18)");
}

NcclApi bind_all(void* lib, const std::string& path) {
  NcclApi api;
  api.path = path;
  decltype(&ncclGetVersion) get_version = nullptr;
  bind(lib, path, "ncclGetVersion", get_version);
  bind(lib, path, "ncclGetUniqueId", api.GetUniqueId);
  bind(lib, path, "ncclCommInitRankConfig", api.CommInitRankConfig);
  bind(lib, path, "ncclCommFinalize", api.CommFinalize);
  bind(lib, path, "ncclCommDestroy", api.CommDestroy);
  bind(lib, path, "ncclCommAbort", api.CommAbort);
  bind(lib, path, "ncclCommGetAsyncError", api.CommGetAsyncError);
  bind(lib, path, "ncclGetErrorString", api.GetErrorString);
  bind(lib, path, "ncclGetLastError", api.GetLastError);
  bind(lib, path, "ncclAllReduce", api.AllReduce);
  bind(lib, path, "ncclReduceScatter", api.ReduceScatter);
  bind(lib, path, "ncclAllGather", api.AllGather);
  if (get_version(&api.version) != ncclSuccess || api.version < kMinNcclVersion)
    throw DistError("NCCL library " + path + " is version " + std::to_string(api.version) + "; gfwa needs >= " +
                    std::to_string(kMinNcclVersion));
  return api;
}

}  // namespace

void force_nvls_off() {
  const char* prev = std::getenv("NCCL_NVLS_ENABLE");
  const std::string was = prev ? prev : "";
  ::setenv("NCCL_NVLS_ENABLE", "0", 1);
  if (was == "0")
    spdlog::info("NCCL_NVLS_ENABLE=0: NVLink multicast stays off (forced by gfwa)");
  else
    spdlog::warn("NCCL_NVLS_ENABLE forced to 0 (was {}): gfwa never enables NVLink multicast",
                 prev ? "'" + was + "'" : std::string("unset"));
}

NcclApi load_nccl(const std::string& path) {
  void* lib = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* err = ::dlerror();
    throw DistError("cannot load NCCL from " + path + ": " + (err ? err : "unknown error") +
                    " (add its folder to LD_LIBRARY_PATH or set GFWA_NCCL_LIBRARY to the file)");
  }
  try {
    return bind_all(lib, path);  // the library then stays loaded for the life of the process
  } catch (...) {
    ::dlclose(lib);
    throw;
  }
}

const NcclApi& nccl() {
  static const NcclApi api = [] {
    force_nvls_off();
    const char* path = std::getenv("GFWA_NCCL_LIBRARY");
    return load_nccl(path && *path ? path : "libnccl.so.2");
  }();
  return api;
}

}  // namespace gfwa::dist
#endif
