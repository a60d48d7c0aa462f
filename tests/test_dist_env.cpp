// Launcher environment parsing (torchrun-style, OpenMPI, Slurm) and Slurm's compressed lists.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>

#include "dist/dist_error.h"
#include "dist/env.h"
#include "dist/slurm_lists.h"

using namespace gfwa;
using namespace gfwa::dist;

namespace {

using Vars = std::map<std::string, std::string>;

EnvLookup lookup(const Vars& vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

DistributedConfig tcp_cfg() { return DistributedConfig{}; }

DistributedConfig file_cfg(const std::string& path) {
  DistributedConfig c;
  c.id_exchange = "file";
  c.id_file = path;
  return c;
}

DistEnv parse(const Vars& vars, const DistributedConfig& cfg = tcp_cfg()) {
  const DistEnv e = read_dist_env(lookup(vars));
  check_id_exchange(e, cfg);
  return e;
}

// The error message of parse(), or "" if it succeeded.
std::string error_of(const Vars& vars, const DistributedConfig& cfg = tcp_cfg()) {
  try {
    parse(vars, cfg);
  } catch (const DistError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(DistEnv, NoLauncherIsOneProcess) {
  const DistEnv e = parse({{"PATH", "/bin"}, {"MASTER_PORT", "1234"}});
  EXPECT_EQ(e.launcher, "single");
  EXPECT_EQ(e.rank, 0);
  EXPECT_EQ(e.world, 1);
  EXPECT_EQ(e.local_rank, 0);
  EXPECT_EQ(e.local_world, 1);
  EXPECT_EQ(e.master_port, 1234);
  EXPECT_FALSE(e.distributed());
}

TEST(DistEnv, Torchrun) {
  const DistEnv e = parse({{"RANK", "5"}, {"WORLD_SIZE", "16"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "4"},
                           {"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "29400"}, {"TORCHELASTIC_RUN_ID", "abc"}});
  EXPECT_EQ(e.launcher, "torchrun");
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.world, 16);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world, 4);
  EXPECT_EQ(e.master_addr, "10.0.0.1");
  EXPECT_EQ(e.master_port, 29400);
  EXPECT_EQ(e.run_id, "torchrun-abc");
  EXPECT_TRUE(e.distributed());
}

TEST(DistEnv, TorchrunDefaults) {
  // torchrun's default run id "none" is no id; a missing port falls back to 29500, a missing
  // LOCAL_WORLD_SIZE to the world size.
  const DistEnv e = parse({{"RANK", "1"}, {"WORLD_SIZE", "3"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "h"},
                           {"TORCHELASTIC_RUN_ID", "none"}});
  EXPECT_EQ(e.run_id, "");
  EXPECT_EQ(e.master_port, kDefaultMasterPort);
  EXPECT_EQ(e.local_world, 3);
  // One process may omit LOCAL_RANK and MASTER_ADDR.
  const DistEnv one = parse({{"RANK", "0"}, {"WORLD_SIZE", "1"}});
  EXPECT_EQ(one.local_rank, 0);
  EXPECT_EQ(one.world, 1);
}

TEST(DistEnv, OpenMpi) {
  const DistEnv e = parse({{"OMPI_COMM_WORLD_RANK", "6"}, {"OMPI_COMM_WORLD_SIZE", "8"},
                           {"OMPI_COMM_WORLD_LOCAL_RANK", "2"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"},
                           {"MASTER_ADDR", "node0"}, {"PMIX_NAMESPACE", "prterun-x-123@1"}});
  EXPECT_EQ(e.launcher, "openmpi");
  EXPECT_EQ(e.rank, 6);
  EXPECT_EQ(e.world, 8);
  EXPECT_EQ(e.local_rank, 2);
  EXPECT_EQ(e.local_world, 4);
  EXPECT_EQ(e.master_addr, "node0");
  EXPECT_EQ(e.run_id, "openmpi-prterun-x-123@1");
}

TEST(DistEnv, SlurmDerivesMasterFromNodelist) {
  const Vars v{{"SLURM_PROCID", "5"},       {"SLURM_NTASKS", "12"},
               {"SLURM_LOCALID", "1"},      {"SLURM_NODEID", "1"},
               {"SLURM_STEP_TASKS_PER_NODE", "4(x2),4"}, {"SLURM_JOB_NODELIST", "gpu[07-09,11]"},
               {"SLURM_STEP_NODELIST", "gpu[08-09,11]"}, {"SLURM_JOB_ID", "123456"},
               {"SLURM_STEP_ID", "0"}};
  const DistEnv e = parse(v);
  EXPECT_EQ(e.launcher, "slurm");
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.world, 12);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world, 4);
  EXPECT_EQ(e.master_addr, "gpu08");  // the step's first node, where srun puts task 0
  EXPECT_EQ(e.master_port, kDefaultMasterPort + 456);
  EXPECT_EQ(e.run_id, "slurm-123456.0");

  Vars over = v;
  over["MASTER_ADDR"] = "10.1.2.3";
  over["MASTER_PORT"] = "4000";
  over["GFWA_RUN_ID"] = "mine";
  const DistEnv o = parse(over);
  EXPECT_EQ(o.master_addr, "10.1.2.3");
  EXPECT_EQ(o.master_port, 4000);
  EXPECT_EQ(o.run_id, "mine");

  Vars job_list = v;
  job_list.erase("SLURM_STEP_NODELIST");
  EXPECT_EQ(parse(job_list).master_addr, "gpu07");
  job_list.erase("SLURM_JOB_NODELIST");
  job_list["SLURM_NODELIST"] = "a1,b[2-3]";
  EXPECT_EQ(parse(job_list).master_addr, "a1");
}

TEST(DistEnv, PrecedenceTorchrunThenOpenMpiThenSlurm) {
  Vars v{{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}, {"SLURM_LOCALID", "0"},
         {"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
         {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}, {"MASTER_ADDR", "m"}};
  EXPECT_EQ(parse(v).launcher, "openmpi");  // mpirun inside an sbatch allocation
  EXPECT_EQ(parse(v).rank, 1);
  v["RANK"] = "2";
  v["WORLD_SIZE"] = "3";
  v["LOCAL_RANK"] = "0";
  EXPECT_EQ(parse(v).launcher, "torchrun");
  EXPECT_EQ(parse(v).rank, 2);
}

TEST(DistEnv, RandomLaunchesRoundTrip) {
  for (uint64_t seed : {11u, 12u, 13u, 14u, 15u, 16u, 17u, 18u}) {
    std::mt19937_64 rng(seed);
    const int nodes = 1 + int(rng() % 5), per_node = 1 + int(rng() % 8);
    const int world = nodes * per_node, rank = int(rng() % uint64_t(world));
    const int node = rank / per_node, local = rank % per_node;
    const std::string port = std::to_string(1024 + rng() % 60000);
    const Vars torch{{"RANK", std::to_string(rank)}, {"WORLD_SIZE", std::to_string(world)},
                     {"LOCAL_RANK", std::to_string(local)}, {"LOCAL_WORLD_SIZE", std::to_string(per_node)},
                     {"MASTER_ADDR", "h0"}, {"MASTER_PORT", port}};
    const Vars mpi{{"OMPI_COMM_WORLD_RANK", std::to_string(rank)}, {"OMPI_COMM_WORLD_SIZE", std::to_string(world)},
                   {"OMPI_COMM_WORLD_LOCAL_RANK", std::to_string(local)},
                   {"OMPI_COMM_WORLD_LOCAL_SIZE", std::to_string(per_node)}, {"MASTER_ADDR", "h0"},
                   {"MASTER_PORT", port}};
    const Vars slurm{{"SLURM_PROCID", std::to_string(rank)}, {"SLURM_NTASKS", std::to_string(world)},
                     {"SLURM_LOCALID", std::to_string(local)}, {"SLURM_NODEID", std::to_string(node)},
                     {"SLURM_TASKS_PER_NODE", std::to_string(per_node) + "(x" + std::to_string(nodes) + ")"},
                     {"SLURM_JOB_NODELIST", "h[0-" + std::to_string(nodes - 1) + "]"}, {"MASTER_PORT", port}};
    for (const Vars* v : {&torch, &mpi, &slurm}) {
      const DistEnv e = parse(*v);
      SCOPED_TRACE("seed " + std::to_string(seed) + " launcher " + e.launcher);
      EXPECT_EQ(e.rank, rank);
      EXPECT_EQ(e.world, world);
      EXPECT_EQ(e.local_rank, local);
      EXPECT_EQ(e.local_world, per_node);
      EXPECT_EQ(e.master_addr, "h0");
      EXPECT_EQ(std::to_string(e.master_port), port);
    }
  }
}

TEST(DistEnv, ErrorsNameTheVariable) {
  const Vars ok{{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "h"}};
  EXPECT_EQ(error_of(ok), "");
  auto with = [&](const std::string& k, const std::string& v) {
    Vars x = ok;
    x[k] = v;
    return x;
  };
  auto without = [&](const std::string& k) {
    Vars x = ok;
    x.erase(k);
    return x;
  };
  EXPECT_EQ(error_of(with("RANK", "3")), "RANK=3 is not less than WORLD_SIZE=2");
  EXPECT_EQ(error_of(with("RANK", "1x")), "RANK='1x' is not an integer");
  EXPECT_EQ(error_of(with("RANK", "-1")), "RANK=-1 must be at least 0");
  EXPECT_EQ(error_of(with("WORLD_SIZE", "0")), "WORLD_SIZE=0 must be at least 1");
  EXPECT_EQ(error_of(with("WORLD_SIZE", "99999999999")), "WORLD_SIZE='99999999999' is not an integer");
  EXPECT_EQ(error_of(with("LOCAL_RANK", "4")).find("LOCAL_RANK=4 is not less than"), 0u);
  EXPECT_EQ(error_of(with("LOCAL_WORLD_SIZE", "3")), "LOCAL_WORLD_SIZE=3 exceeds WORLD_SIZE=2");
  EXPECT_EQ(error_of(with("MASTER_PORT", "70000")), "MASTER_PORT=70000 is not a port (1-65535)");
  EXPECT_EQ(error_of(with("MASTER_PORT", "http")), "MASTER_PORT='http' is not an integer");
  EXPECT_NE(error_of(without("WORLD_SIZE")).find("WORLD_SIZE is not set"), std::string::npos);
  EXPECT_NE(error_of(without("RANK")).find("RANK is not set"), std::string::npos);
  EXPECT_NE(error_of(without("LOCAL_RANK")).find("LOCAL_RANK is not set (it picks this rank's GPU)"), std::string::npos);
  EXPECT_NE(error_of(with("MASTER_ADDR", "")).find("MASTER_ADDR is not set"), std::string::npos);  // empty = unset
  // The file exchange needs no MASTER_ADDR, but it needs the file.
  EXPECT_EQ(error_of(without("MASTER_ADDR"), file_cfg("/shared/id")), "");
  EXPECT_NE(error_of(without("MASTER_ADDR"), file_cfg("")).find("distributed.id_file is empty"), std::string::npos);
  DistributedConfig bad;
  bad.id_exchange = "udp";
  EXPECT_EQ(error_of(ok, bad), "distributed.id_exchange = 'udp': expected tcp or file");

  const Vars mpi{{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "2"},
                 {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}, {"MASTER_ADDR", "h"}};
  EXPECT_EQ(error_of(mpi), "OMPI_COMM_WORLD_LOCAL_RANK=2 is not less than OMPI_COMM_WORLD_LOCAL_SIZE=2");
  Vars mpi_no_master = mpi;
  mpi_no_master.erase("MASTER_ADDR");
  mpi_no_master["OMPI_COMM_WORLD_LOCAL_RANK"] = "0";
  EXPECT_NE(error_of(mpi_no_master).find("MASTER_ADDR is not set: the tcp id exchange of this 4-process openmpi run"),
            std::string::npos);

  const Vars slurm{{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "4"}, {"SLURM_LOCALID", "0"},
                   {"SLURM_JOB_NODELIST", "gpu[01-"}};
  EXPECT_NE(error_of(slurm).find("SLURM_JOB_NODELIST: "), std::string::npos);
  Vars slurm_node = slurm;
  slurm_node["SLURM_JOB_NODELIST"] = "gpu[01-02]";
  slurm_node["SLURM_NODEID"] = "2";
  slurm_node["SLURM_TASKS_PER_NODE"] = "2(x2)";
  EXPECT_EQ(error_of(slurm_node), "SLURM_NODEID=2 is not less than the 2 nodes of SLURM_TASKS_PER_NODE='2(x2)'");
  slurm_node["SLURM_NODEID"] = "0";
  slurm_node["SLURM_TASKS_PER_NODE"] = "5";
  EXPECT_EQ(error_of(slurm_node), "SLURM_TASKS_PER_NODE='5' puts 5 tasks on node 0 but SLURM_NTASKS=4");
  Vars slurm_no_ntasks = slurm_node;
  slurm_no_ntasks.erase("SLURM_NTASKS");
  EXPECT_NE(error_of(slurm_no_ntasks).find("SLURM_NTASKS is not set"), std::string::npos);
}

TEST(SlurmLists, Nodelists) {
  using V = std::vector<std::string>;
  EXPECT_EQ(expand_slurm_nodelist("gpu[01-04,07]"), (V{"gpu01", "gpu02", "gpu03", "gpu04", "gpu07"}));
  EXPECT_EQ(expand_slurm_nodelist("login1"), (V{"login1"}));
  EXPECT_EQ(expand_slurm_nodelist("a,b[1-2],c"), (V{"a", "b1", "b2", "c"}));
  EXPECT_EQ(expand_slurm_nodelist("node[8-10]"), (V{"node8", "node9", "node10"}));
  EXPECT_EQ(expand_slurm_nodelist("node[098-101]"), (V{"node098", "node099", "node100", "node101"}));
  EXPECT_EQ(expand_slurm_nodelist("r[1-2]n[08-09]-ib"), (V{"r1n08-ib", "r1n09-ib", "r2n08-ib", "r2n09-ib"}));
  EXPECT_EQ(expand_slurm_nodelist("x[3]"), (V{"x3"}));
  EXPECT_EQ(expand_slurm_nodelist("gpu[0001-1000]").size(), 1000u);
  for (const char* bad : {"", "gpu[04-01]", "gpu[01", "gpu]01", "gpu[a-b]", "gpu[1,]", "a,,b", "g[[1]]", "g[1-99999999999]"})
    EXPECT_THROW(expand_slurm_nodelist(bad), std::invalid_argument) << bad;
}

TEST(SlurmLists, TasksPerNode) {
  using V = std::vector<int>;
  EXPECT_EQ(expand_slurm_tasks_per_node("4(x2),3"), (V{4, 4, 3}));
  EXPECT_EQ(expand_slurm_tasks_per_node("8"), (V{8}));
  EXPECT_EQ(expand_slurm_tasks_per_node("1,2(x3)"), (V{1, 2, 2, 2}));
  for (const char* bad : {"", "x", "4(x)", "4(2)", "4(x2", "4,,2", "4(x0)"})
    EXPECT_THROW(expand_slurm_tasks_per_node(bad), std::invalid_argument) << bad;
}

TEST(DistEnv, CudaDevicePerRank) {
  DistEnv e;
  e.rank = 6;
  e.world = 8;
  e.local_rank = 2;
  e.local_world = 4;
  EXPECT_EQ(cuda_device_for(e, 4), 2);
  EXPECT_EQ(cuda_device_for(e, 8), 2);
  EXPECT_EQ(cuda_device_for(e, 1), 0);  // the launcher isolated one GPU per process
  try {
    cuda_device_for(e, 2);
    FAIL() << "local rank 2 placed on 2 GPUs";
  } catch (const DistError& err) {
    EXPECT_STREQ(err.what(), "rank 6: local rank 2 but only 2 GPUs visible (more processes per node than GPUs?)");
  }
  EXPECT_THROW(cuda_device_for(e, 0), DistError);
}
