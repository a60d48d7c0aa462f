// The NCCL-id exchange over loopback TCP (threads and a forked process) and over a shared file:
// success for several ranks, and the failures a launch meets (timeouts, world-size mismatch,
// duplicate ranks, files of other runs), each with a message naming rank and address.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <thread>

#include "dist/dist_error.h"
#include "dist/file_exchange.h"
#include "dist/id_exchange.h"
#include "dist/socket_io.h"
#include "dist/tcp_exchange.h"

using namespace gfwa;
using namespace gfwa::dist;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> random_blob(uint64_t seed, size_t n = 128) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> b(n);
  for (auto& x : b) x = uint8_t(rng());
  return b;
}

// A port nobody listens on (bound, read, released: fine on a test host).
int free_port() {
  TcpIdServer probe(0, 2);
  return probe.port();
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const DistError& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "gfwa_dist_XXXXXX").string();
    path = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path); }
};

DistEnv env_of(int rank, int world, const std::string& run_id = "") {
  DistEnv e;
  e.rank = rank;
  e.world = world;
  e.launcher = "torchrun";
  e.master_addr = "127.0.0.1";
  e.run_id = run_id;
  return e;
}

}  // namespace

TEST(TcpExchange, EveryRankGetsRankZerosBlob) {
  for (int world : {2, 5}) {
    const auto blob = random_blob(100 + uint64_t(world));
    TcpIdServer server(0, world);
    std::vector<std::future<std::vector<uint8_t>>> peers;
    for (int r = world - 1; r >= 1; --r)  // arrive in reverse order
      peers.push_back(std::async(std::launch::async, [&, r] {
        return tcp_fetch_id("127.0.0.1", server.port(), r, world, 5s);
      }));
    server.serve(blob, 5s);
    for (auto& p : peers) EXPECT_EQ(p.get(), blob);
  }
}

TEST(TcpExchange, PeersRetryUntilRankZeroListens) {
  const int port = free_port();
  const auto blob = random_blob(7, 300);  // generic blob, not just 128 bytes
  auto peer = std::async(std::launch::async, [&] { return tcp_fetch_id("localhost", port, 1, 2, 5s); });
  std::this_thread::sleep_for(300ms);
  TcpIdServer server(port, 2);
  server.serve(blob, 5s);
  EXPECT_EQ(peer.get(), blob);
}

TEST(TcpExchange, SecondProcessOnLoopback) {
  const auto blob = random_blob(31);
  TcpIdServer server(0, 2);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // rank 1 in its own process: exit status 0 only if it got the exact blob
    int status = 3;
    try {
      status = tcp_fetch_id("127.0.0.1", server.port(), 1, 2, 5s) == blob ? 0 : 1;
    } catch (...) {
      status = 2;
    }
    ::_exit(status);
  }
  server.serve(blob, 5s);
  int status = -1;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(TcpExchange, PeerTimesOutNamingRankZerosAddress) {
  const int port = free_port();
  const auto start = std::chrono::steady_clock::now();
  const std::string err = error_of([&] { tcp_fetch_id("127.0.0.1", port, 1, 2, 300ms); });
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(contains(err, "rank 1: no answer from rank 0 at 127.0.0.1:" + std::to_string(port) + " within 0.3 s"))
      << err;
  EXPECT_TRUE(contains(err, "refused")) << err;
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 2s);
}

TEST(TcpExchange, RankZeroTimesOutNamingMissingRanks) {
  TcpIdServer server(0, 4);
  auto peer = std::async(std::launch::async, [&] { return tcp_fetch_id("127.0.0.1", server.port(), 1, 4, 5s); });
  const std::string err = error_of([&] { server.serve(random_blob(3), 500ms); });
  EXPECT_TRUE(contains(err, "rank 0: ranks 2, 3 did not connect to port " + std::to_string(server.port()) +
                                " within 0.5 s"))
      << err;
  EXPECT_EQ(peer.get(), random_blob(3));  // the rank that came was served
}

TEST(TcpExchange, WorldSizeMismatchFailsOnBothSides) {
  TcpIdServer server(0, 2);
  auto peer = std::async(std::launch::async, [&] {
    return error_of([&] { tcp_fetch_id("127.0.0.1", server.port(), 3, 4, 5s); });
  });
  const std::string err0 = error_of([&] { server.serve(random_blob(4), 5s); });
  EXPECT_EQ(err0, "rank 0: rank 3 reports world size 4, rank 0 has 2");
  const std::string err3 = peer.get();
  EXPECT_TRUE(contains(err3, "rank 3: rank 0 at 127.0.0.1:" + std::to_string(server.port()) +
                                 " refused it: rank 3 reports world size 4, rank 0 has 2"))
      << err3;
}

TEST(TcpExchange, DuplicateRankIsRefused) {
  TcpIdServer server(0, 3);
  auto serving = std::async(std::launch::async, [&] { return error_of([&] { server.serve(random_blob(5), 5s); }); });
  EXPECT_EQ(tcp_fetch_id("127.0.0.1", server.port(), 1, 3, 5s), random_blob(5));
  const std::string err = error_of([&] { tcp_fetch_id("127.0.0.1", server.port(), 1, 3, 5s); });
  EXPECT_TRUE(contains(err, "rank 1 connected twice")) << err;
  EXPECT_TRUE(contains(serving.get(), "rank 0: rank 1 connected twice"));
}

TEST(TcpExchange, StrayConnectionsAreIgnored) {
  TcpIdServer server(0, 2);
  auto serving = std::async(std::launch::async, [&] { server.serve(random_blob(6), 5s); });
  {  // something else on the port: garbage, then a hang-up
    std::string why;
    Fd c = try_connect("127.0.0.1", server.port(), Clock::now() + 1s, &why);
    ASSERT_TRUE(c) << why;
    const char junk[20] = "GET / HTTP/1.0\r\n\r\n";
    ::send(c.get(), junk, sizeof junk, MSG_NOSIGNAL);
  }
  EXPECT_EQ(tcp_fetch_id("127.0.0.1", server.port(), 1, 2, 5s), random_blob(6));
  serving.get();
}

TEST(IdExchange, DispatchesOnConfig) {
  const auto blob = random_blob(8);
  DistributedConfig cfg;
  EXPECT_EQ(exchange_id(env_of(0, 1), cfg, blob), blob);  // one process: nothing to exchange

  cfg.timeout_s = 5;
  const int port = free_port();
  DistEnv e0 = env_of(0, 3), e1 = env_of(1, 3), e2 = env_of(2, 3);
  for (DistEnv* e : {&e0, &e1, &e2}) e->master_port = port;
  auto r1 = std::async(std::launch::async, [&] { return exchange_id(e1, cfg, {}); });
  auto r2 = std::async(std::launch::async, [&] { return exchange_id(e2, cfg, {}); });
  EXPECT_EQ(exchange_id(e0, cfg, blob), blob);
  EXPECT_EQ(r1.get(), blob);
  EXPECT_EQ(r2.get(), blob);

  cfg.timeout_s = 0;
  EXPECT_EQ(error_of([&] { exchange_id(e1, cfg, {}); }), "distributed.timeout_s = 0: must be positive");
}

TEST(FileExchange, EveryRankGetsRankZerosBlobAndFilesAreRemoved) {
  TempDir dir;
  const std::string path = (dir.path / "nccl.id").string();
  const auto blob = random_blob(9);
  DistributedConfig cfg;
  cfg.id_exchange = "file";
  cfg.id_file = path;
  cfg.timeout_s = 5;
  std::vector<std::future<std::vector<uint8_t>>> peers;
  for (int r = 1; r < 4; ++r)
    peers.push_back(std::async(std::launch::async, [&, r] { return exchange_id(env_of(r, 4, "job7"), cfg, {}); }));
  std::this_thread::sleep_for(50ms);  // peers poll before the file exists
  EXPECT_EQ(exchange_id(env_of(0, 4, "job7"), cfg, blob), blob);
  for (auto& p : peers) EXPECT_EQ(p.get(), blob);
  EXPECT_TRUE(fs::is_empty(dir.path));
}

TEST(FileExchange, FileOfAnotherRunIsIgnored) {
  TempDir dir;
  const std::string path = (dir.path / "id").string();
  auto old_rank0 = std::async(std::launch::async, [&] {
    return error_of([&] { file_exchange_id(env_of(0, 2, "old-run"), path, random_blob(10), 400ms); });
  });
  const std::string err = error_of([&] { file_exchange_id(env_of(1, 2, "new-run"), path, {}, 400ms); });
  EXPECT_EQ(err, "rank 1: no id file from rank 0 at " + path + " within 0.4 s (ignored one left by another run)");
  EXPECT_EQ(old_rank0.get(), "rank 0: rank 1 did not read the id file " + path +
                                 " within 0.4 s (not started, or " + path + " is not on a file system they share?)");
  EXPECT_FALSE(fs::exists(path));  // rank 0 cleans up after a timeout too
}

TEST(FileExchange, FileOlderThanTheTimeoutIsStale) {
  // Without a run id, age decides: rank 0 of a live run cannot have written it before the timeout.
  TempDir dir;
  const std::string path = (dir.path / "id").string(), saved = path + ".saved";
  auto rank0 = std::async(std::launch::async, [&] {
    return error_of([&] { file_exchange_id(env_of(0, 2), path, random_blob(11), 300ms); });
  });
  while (!fs::exists(path)) std::this_thread::sleep_for(1ms);
  fs::copy_file(path, saved);
  EXPECT_TRUE(contains(rank0.get(), "did not read the id file"));
  std::this_thread::sleep_for(350ms);
  fs::rename(saved, path);  // a crashed run's leftover, now older than a 300 ms timeout
  const std::string err = error_of([&] { file_exchange_id(env_of(1, 2), path, {}, 300ms); });
  EXPECT_TRUE(contains(err, "(ignored one left by another run)")) << err;
}

TEST(FileExchange, WorldMismatchAndForeignFile) {
  TempDir dir;
  const std::string path = (dir.path / "id").string();
  auto rank0 = std::async(std::launch::async, [&] {
    return error_of([&] { file_exchange_id(env_of(0, 2, "r"), path, random_blob(12), 500ms); });
  });
  const std::string err = error_of([&] { file_exchange_id(env_of(2, 3, "r"), path, {}, 2s); });
  EXPECT_EQ(err, "rank 2: rank 2 reports world size 3, rank 0 has 2 (id file " + path + ")");
  rank0.get();

  std::ofstream(path) << "not an id\n";
  EXPECT_EQ(error_of([&] { file_exchange_id(env_of(1, 2), path, {}, 1s); }),
            "rank 1: " + path + " is not a gfwa id file (distributed.id_file points at another file?)");

  const std::string missing_dir = (dir.path / "no" / "such" / "id").string();
  EXPECT_TRUE(contains(error_of([&] { file_exchange_id(env_of(0, 2), missing_dir, random_blob(1), 1s); }),
                       "rank 0: cannot write " + missing_dir));
}
