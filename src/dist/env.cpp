#include "dist/env.h"

#include <charconv>
#include <cstdlib>

#include "dist/dist_error.h"
#include "dist/slurm_lists.h"

namespace gfwa::dist {
namespace {

// Variable names of one launcher, so errors name exactly what the user set.
struct Names {
  const char* launcher;
  const char* rank;
  const char* world;
  const char* local_rank;
  const char* local_world;  // nullptr: the launcher has no such variable
};

constexpr Names kTorchrun{"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"};
constexpr Names kOpenMpi{"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                         "OMPI_COMM_WORLD_LOCAL_SIZE"};
constexpr Names kSlurm{"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", nullptr};

class Reader {
 public:
  explicit Reader(const EnvLookup& env) : env_(env) {}

  std::optional<std::string> get(const std::string& name) const {
    auto v = env_(name);
    if (v && v->empty()) v.reset();
    return v;
  }
  bool has(const std::string& name) const { return get(name).has_value(); }

  std::optional<int> opt_int(const std::string& name, int min) const {
    const auto v = get(name);
    if (!v) return std::nullopt;
    int x = 0;
    const char* end = v->data() + v->size();
    const auto [p, ec] = std::from_chars(v->data(), end, x);
    if (ec != std::errc() || p != end) throw DistError(name + "='" + *v + "' is not an integer");
    if (x < min) throw DistError(name + "=" + *v + " must be at least " + std::to_string(min));
    return x;
  }

  int req_int(const std::string& name, int min, const std::string& why) const {
    const auto v = opt_int(name, min);
    if (!v) throw DistError(name + " is not set (" + why + ")");
    return *v;
  }

 private:
  const EnvLookup& env_;
};

void check_less(int a, const char* a_name, int b, const char* b_name) {
  if (a >= b)
    throw DistError(std::string(a_name) + "=" + std::to_string(a) + " is not less than " + b_name + "=" +
                    std::to_string(b));
}

DistEnv read_ranks(const Reader& r, const Names& n) {
  const std::string why = std::string("set by ") + n.launcher + " together with " +
                          (r.has(n.rank) ? n.rank : n.world);
  DistEnv e;
  e.launcher = n.launcher;
  e.rank = r.req_int(n.rank, 0, why);
  e.world = r.req_int(n.world, 1, why);
  check_less(e.rank, n.rank, e.world, n.world);
  // Guessing the local rank could put two processes on one GPU, so only a 1-process run may omit it.
  if (e.world == 1)
    e.local_rank = r.opt_int(n.local_rank, 0).value_or(0);
  else
    e.local_rank = r.req_int(n.local_rank, 0, "it picks this rank's GPU");
  e.local_world = e.world;
  if (n.local_world) e.local_world = r.opt_int(n.local_world, 1).value_or(e.world);
  check_less(e.local_rank, n.local_rank, e.local_world, n.local_world ? n.local_world : n.world);
  if (e.local_world > e.world)
    throw DistError(std::string(n.local_world) + "=" + std::to_string(e.local_world) + " exceeds " + n.world + "=" +
                    std::to_string(e.world));
  return e;
}

std::string first_set(const Reader& r, std::initializer_list<const char*> names, std::string* which = nullptr) {
  for (const char* name : names)
    if (auto v = r.get(name)) {
      if (which) *which = name;
      return *v;
    }
  return "";
}

void read_slurm_extras(const Reader& r, DistEnv& e) {
  std::string var;
  const std::string per_node = first_set(r, {"SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE"}, &var);
  const auto node = r.opt_int("SLURM_NODEID", 0);
  if (!per_node.empty() && node) {
    std::vector<int> counts;
    try {
      counts = expand_slurm_tasks_per_node(per_node);
    } catch (const std::invalid_argument& err) {
      throw DistError(var + ": " + err.what());
    }
    if (*node >= int(counts.size()))
      throw DistError("SLURM_NODEID=" + std::to_string(*node) + " is not less than the " +
                      std::to_string(counts.size()) + " nodes of " + var + "='" + per_node + "'");
    e.local_world = counts[size_t(*node)];
    if (e.local_world > e.world)
      throw DistError(var + "='" + per_node + "' puts " + std::to_string(e.local_world) + " tasks on node " +
                      std::to_string(*node) + " but SLURM_NTASKS=" + std::to_string(e.world));
    check_less(e.local_rank, "SLURM_LOCALID", e.local_world, var.c_str());
  }
  if (e.master_addr.empty()) {
    const std::string list = first_set(r, {"SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST"}, &var);
    if (!list.empty()) {
      try {
        e.master_addr = expand_slurm_nodelist(list).front();
      } catch (const std::invalid_argument& err) {
        throw DistError(var + ": " + err.what());
      }
    }
  }
  const auto job = r.get("SLURM_JOB_ID");
  if (job) e.run_id = "slurm-" + *job + "." + r.get("SLURM_STEP_ID").value_or("");
}

}  // namespace

std::optional<std::string> process_env(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (!v) return std::nullopt;
  return std::string(v);
}

DistEnv read_dist_env(const EnvLookup& env) {
  const Reader r(env);
  DistEnv e;
  const auto master_addr = r.get("MASTER_ADDR");
  const auto master_port = r.opt_int("MASTER_PORT", 1);
  if (master_port && *master_port > 65535) throw DistError("MASTER_PORT=" + std::to_string(*master_port) + " is not a port (1-65535)");

  if (r.has("RANK") || r.has("WORLD_SIZE")) {
    e = read_ranks(r, kTorchrun);
    const auto id = r.get("TORCHELASTIC_RUN_ID");
    if (id && *id != "none") e.run_id = "torchrun-" + *id;  // "none" is torchrun's default, not an id
  } else if (r.has("OMPI_COMM_WORLD_RANK") || r.has("OMPI_COMM_WORLD_SIZE")) {
    e = read_ranks(r, kOpenMpi);
    const std::string id = first_set(r, {"PMIX_NAMESPACE", "OMPI_MCA_ess_base_jobid", "OMPI_MCA_orte_ess_jobid"});
    if (!id.empty()) e.run_id = "openmpi-" + id;
  } else if (r.has("SLURM_PROCID")) {
    e = read_ranks(r, kSlurm);
    e.master_addr = master_addr.value_or("");
    read_slurm_extras(r, e);
  } else {
    e.launcher = "single";
  }
  if (auto id = r.get("GFWA_RUN_ID")) e.run_id = *id;
  if (e.master_addr.empty()) e.master_addr = master_addr.value_or("");

  if (e.launcher == "slurm" && !master_port) {
    // Jobs sharing a node must not collide on one port; every rank of a job derives the same one.
    const auto job = r.opt_int("SLURM_JOB_ID", 0);
    e.master_port = kDefaultMasterPort + (job ? *job % 1000 : 0);
  } else {
    e.master_port = master_port.value_or(kDefaultMasterPort);
  }

  return e;
}

void check_id_exchange(const DistEnv& e, const DistributedConfig& cfg) {
  const bool tcp = cfg.id_exchange == "tcp";
  if (!tcp && cfg.id_exchange != "file")
    throw DistError("distributed.id_exchange = '" + cfg.id_exchange + "': expected tcp or file");
  if (e.world > 1 && tcp && e.master_addr.empty())
    throw DistError("MASTER_ADDR is not set: the tcp id exchange of this " + std::to_string(e.world) + "-process " +
                    e.launcher + " run needs rank 0's host (or set distributed.id_exchange = file)");
  if (e.world > 1 && !tcp && cfg.id_file.empty())
    throw DistError("distributed.id_file is empty: the file id exchange needs a path that every rank can see");
}

int cuda_device_for(const DistEnv& env, int visible) {
  if (visible < 1) throw DistError("rank " + std::to_string(env.rank) + ": no CUDA device visible");
  if (visible == 1) return 0;
  if (env.local_rank >= visible)
    throw DistError("rank " + std::to_string(env.rank) + ": local rank " + std::to_string(env.local_rank) + " but only " +
                    std::to_string(visible) + " GPUs visible (more processes per node than GPUs?)");
  return env.local_rank;
}

}  // namespace gfwa::dist
