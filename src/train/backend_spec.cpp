#include "train/backend_spec.h"

#include "train/config_io.h"

namespace gfwa {

BackendSpec backend_spec(const RunConfig& cfg, int world, int rank, bool data_parallel) {
  BackendSpec spec;
  spec.kind = resolve_backend_name(cfg.train.backend);
  const std::string source = "train.backend=" + spec.kind;
  check_backend_support(cfg, spec.kind, source);
  const std::string problem = data_parallel_problem(spec.kind, world);
  if (!problem.empty()) throw ConfigError(source + ": " + problem);
  spec.model = cfg.model;
  spec.max_batch = cfg.train.batch_size;
  spec.max_len = cfg.train.seq_len;
  spec.muon = cfg.optimizer.type == "muon";
  spec.recompute = parse_recompute(cfg.train.recompute);
  if (data_parallel && cfg.distributed.zero1) {
    spec.zero1_rank = rank;
    spec.zero1_world = world;
  }
  return spec;
}

}  // namespace gfwa
