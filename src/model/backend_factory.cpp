#include "model/backend_factory.h"

#include <stdexcept>

#include "kernels/attention_mode.h"
#include "model/cpu_backend.h"
#include "model/cuda_backend.h"

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

std::string model_support_problem(const std::string& kind, const ModelConfig& model) {
  const int hd = model.head_dim();
  if (kind != "cuda" || cuda_attention_head_dim_supported(hd)) return "";
  return "head_dim = d_model / n_heads = " + std::to_string(model.d_model) + " / " + std::to_string(model.n_heads) +
         " = " + std::to_string(hd) +
         " is not supported by the GPU path (train.backend cuda supports head_dim 64 and 128)";
}

KeyProblem nsa_support_problem(const std::string& kind, const ModelConfig& model) {
  if (kind != "cuda" || !model.any_nsa()) return {};
  const NsaConfig& n = model.attention.nsa;
  if (n.block != kNsaBlock)
    return {"model.attention.nsa.block", "must be " + std::to_string(kNsaBlock) +
                                             " with train.backend cuda (the block size its NSA kernels are built " +
                                             "for; got " + std::to_string(n.block) + ")"};
  if (n.top_k > kNsaMaxTopK)
    return {"model.attention.nsa.top_k", "must be <= " + std::to_string(kNsaMaxTopK) +
                                             " with train.backend cuda (its NSA kernels' limit; got " +
                                             std::to_string(n.top_k) + ")"};
  return {};
}

std::string data_parallel_problem(const std::string& kind, int world) {
  if (kind != "cpu" || world <= 1) return "";
  return "data-parallel training (" + std::to_string(world) +
         " processes) needs the cuda backend; run the cpu backend as a single process";
}

std::unique_ptr<Backend> make_backend(const BackendSpec& spec) {
  const std::string name = resolve_backend_name(spec.kind);
  std::string problem = model_support_problem(name, spec.model);
  const KeyProblem nsa = nsa_support_problem(name, spec.model);
  if (problem.empty() && !nsa.problem.empty()) problem = nsa.key + ": " + nsa.problem;
  if (problem.empty()) problem = data_parallel_problem(name, spec.zero1_world);
  if (!problem.empty()) throw std::invalid_argument("train.backend=" + name + ": " + problem);
#ifdef GFWA_WITH_CUDA
  if (name == "cuda") {
    CudaDataParallel dp;
    dp.zero1_rank = spec.zero1_rank;
    dp.zero1_world = spec.zero1_world;
    return make_cuda_backend(spec.model, spec.max_batch, spec.max_len, dp, spec.muon, spec.recompute);
  }
#endif
  return make_cpu_backend(spec.model, spec.max_batch, spec.max_len);
}

}  // namespace gfwa
