#include "model/backend_factory.h"

#include <stdexcept>

#include "model/cpu_backend.h"
#include "train/config_io.h"

namespace gfwa {

std::string resolve_backend_name(const std::string& requested) {
  if (requested == "auto" || requested == "cpu") return "cpu";
  if (requested == "cuda") throw std::runtime_error("train.backend: the cuda backend is not available in this build");
  throw std::runtime_error("train.backend: unknown backend '" + requested + "' (expected auto, cpu or cuda)");
}

std::unique_ptr<Backend> make_backend(const RunConfig& cfg, int world) {
  const std::string name = resolve_backend_name(cfg.train.backend);
  check_backend_support(cfg, name, "train.backend=" + name);
  if (world != 1)
    throw std::runtime_error("train.backend: the cpu backend runs a single process (world size " +
                             std::to_string(world) + ")");
  return make_cpu_backend(cfg.model, cfg.train.batch_size, cfg.train.seq_len);
}

}  // namespace gfwa
