#include "model/backend_factory.h"

#include <stdexcept>

#include "model/cpu_backend.h"
#include "model/cuda_backend.h"
#include "train/config_io.h"

#ifdef GFWA_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace gfwa {

namespace {

bool cuda_device_present() {
#ifdef GFWA_WITH_CUDA
  int n = 0;
  const bool ok = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  if (!ok) cudaGetLastError();  // a failed query must not linger as the next call's error
  return ok;
#else
  return false;
#endif
}

}  // namespace

std::string resolve_backend_name(const std::string& requested) {
  if (requested == "auto") return cuda_device_present() ? "cuda" : "cpu";
  if (requested == "cpu") return "cpu";
  if (requested == "cuda") {
#ifdef GFWA_WITH_CUDA
    return "cuda";
#else
    throw std::runtime_error("train.backend: the cuda backend is not available in this build (built without CUDA)");
#endif
  }
  throw std::runtime_error("train.backend: unknown backend '" + requested + "' (expected auto, cpu or cuda)");
}

void refuse_cpu_data_parallel(const std::string& backend, int world) {
  if (backend == "cpu" && world > 1)
    throw std::runtime_error("train.backend=cpu: data-parallel training (" + std::to_string(world) +
                             " processes) needs the cuda backend; run the cpu backend as a single process");
}

std::unique_ptr<Backend> make_backend(const RunConfig& cfg, int world, int rank, bool data_parallel) {
  const std::string name = resolve_backend_name(cfg.train.backend);
  check_backend_support(cfg, name, "train.backend=" + name);
  refuse_cpu_data_parallel(name, world);
#ifdef GFWA_WITH_CUDA
  if (name == "cuda") {
    CudaDataParallel dp;
    if (data_parallel && cfg.distributed.zero1) {
      dp.zero1_rank = rank;
      dp.zero1_world = world;
    }
    return make_cuda_backend(cfg.model, cfg.train.batch_size, cfg.train.seq_len, dp);
  }
#else
  (void)rank;
  (void)data_parallel;
#endif
  return make_cpu_backend(cfg.model, cfg.train.batch_size, cfg.train.seq_len);
}

}  // namespace gfwa
