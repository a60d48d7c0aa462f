#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "train/checkpoint.h"

namespace gfwa {
namespace {
namespace fs = std::filesystem;

std::string fresh_dir(const std::string& name) {
  const auto dir = fs::temp_directory_path() / ("gfwa_ckpt_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

CheckpointData random_data(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d;
  CheckpointData c;
  c.config = {{"model", {{"d_model", 48}}}, {"seed", seed}};
  c.state = {{"step", seed}, {"rng", "1 2 3"}, {"loader", {{"pos", 17}}}};
  for (auto* v : {&c.params, &c.adam_m, &c.adam_v}) {
    v->resize(n);
    for (auto& x : *v) x = d(rng);
  }
  return c;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

void expect_same(const CheckpointData& got, const CheckpointData& want) {
  EXPECT_TRUE(same_bits(got.params, want.params));
  EXPECT_TRUE(same_bits(got.adam_m, want.adam_m));
  EXPECT_TRUE(same_bits(got.adam_v, want.adam_v));
  EXPECT_EQ(got.config, want.config);
  for (const auto& [k, v] : want.state.items()) EXPECT_EQ(got.state.at(k), v) << k;
}

void flip_byte(const std::string& path, size_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(std::streamoff(offset));
  char c = 0;
  f.read(&c, 1);
  c ^= 0x01;  // keeps a JSON digit a digit: only the checksum can notice
  f.seekp(std::streamoff(offset));
  f.write(&c, 1);
}

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(TrainCheckpoint, DirectoryNames) {
  EXPECT_EQ(checkpoint_dir_name(1234), "step_00001234");
  EXPECT_EQ(checkpoint_dir_name(123456789), "step_123456789");
}

TEST(TrainCheckpoint, RoundTripIsBitExactAndLatestWins) {
  const std::string root = fresh_dir("roundtrip");
  const auto a = random_data(1237, 11), b = random_data(1237, 12);
  EXPECT_EQ(save_checkpoint(root, 5, a), root + "/step_00000005");
  EXPECT_EQ(save_checkpoint(root, 12, b), root + "/step_00000012");
  EXPECT_EQ(entries(root), (std::vector<std::string>{"step_00000005", "step_00000012"}));
  expect_same(load_checkpoint(root + "/step_00000005"), a);
  expect_same(load_checkpoint(root + "/step_00000012"), b);
  EXPECT_EQ(find_latest_valid(root), root + "/step_00000012");
  EXPECT_EQ(find_latest_valid(root + "/nothing_here"), std::nullopt);
  fs::remove_all(root);
}

TEST(TrainCheckpoint, SavingTheSameStepAgainReplacesIt) {
  const std::string root = fresh_dir("replace");
  const auto a = random_data(301, 21), b = random_data(301, 22);
  save_checkpoint(root, 7, a);
  save_checkpoint(root, 7, b);
  EXPECT_EQ(entries(root), (std::vector<std::string>{"step_00000007"}));
  expect_same(load_checkpoint(root + "/step_00000007"), b);
  fs::remove_all(root);
}

TEST(TrainCheckpoint, FlippedByteInAnyFileIsDetectedAndSkipped) {
  const std::string root = fresh_dir("flip");
  const auto a = random_data(999, 31);
  save_checkpoint(root, 1, a);
  const std::string newest = root + "/step_00000002";
  int case_no = 0;
  for (const char* file : {"model.bin", "optimizer.bin", "config.json", "state.json"}) {
    save_checkpoint(root, 2, random_data(999, 32));
    ASSERT_EQ(find_latest_valid(root), newest);
    // A byte inside a value (not whitespace) somewhere past the start; varied per file.
    const std::string path = newest + "/" + file;
    size_t off = (37 + 101 * size_t(case_no++)) % size_t(fs::file_size(path));
    if (std::string(file) == "state.json") {
      std::ifstream f(path);
      std::string text((std::istreambuf_iterator<char>(f)), {});
      off = text.find("\"step\": ") + 8;  // the step value's first digit
    }
    flip_byte(path, off);
    EXPECT_NE(checkpoint_problem(newest), "") << file;
    EXPECT_EQ(find_latest_valid(root), root + "/step_00000001") << file;
    try {
      load_checkpoint(newest);
      ADD_FAILURE() << "corrupted " << file << " loaded";
    } catch (const CheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find(newest), std::string::npos) << e.what();
    }
  }
  expect_same(load_checkpoint(root + "/step_00000001"), a);
  fs::remove_all(root);
}

TEST(TrainCheckpoint, MissingOrTruncatedFilesAreSkipped) {
  const std::string root = fresh_dir("partial");
  save_checkpoint(root, 3, random_data(64, 41));
  save_checkpoint(root, 4, random_data(64, 42));
  fs::resize_file(root + "/step_00000004/optimizer.bin", 100);
  EXPECT_NE(checkpoint_problem(root + "/step_00000004").find("optimizer.bin"), std::string::npos);
  EXPECT_EQ(find_latest_valid(root), root + "/step_00000003");
  fs::remove(root + "/step_00000003/model.bin");
  EXPECT_NE(checkpoint_problem(root + "/step_00000003").find("model.bin"), std::string::npos);
  EXPECT_EQ(find_latest_valid(root), std::nullopt);
  fs::remove_all(root);
}

TEST(TrainCheckpoint, InjectedWriteFailureKeepsThePreviousCheckpoint) {
  const std::string root = fresh_dir("enospc");
  const auto a = random_data(2001, 51);
  save_checkpoint(root, 10, a);
  for (int64_t after : {0, 5000, 8004 + 3000, 3 * 8004 + 20}) {  // in model.bin, optimizer.bin, json
    inject_checkpoint_write_fault(after);
    try {
      save_checkpoint(root, 20, random_data(2001, 52));
      ADD_FAILURE() << "save succeeded despite the fault after " << after << " bytes";
    } catch (const CheckpointError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(root + "/.tmp-step_00000020"), std::string::npos) << msg;
      EXPECT_NE(msg.find(std::strerror(ENOSPC)), std::string::npos) << msg;
    }
    inject_checkpoint_write_fault(-1);
    EXPECT_EQ(entries(root), (std::vector<std::string>{"step_00000010"})) << after;
  }
  EXPECT_EQ(find_latest_valid(root), root + "/step_00000010");
  expect_same(load_checkpoint(root + "/step_00000010"), a);
  fs::remove_all(root);
}

TEST(TrainCheckpoint, PruneKeepsTheLastKAndEveryMth) {
  const std::string root = fresh_dir("prune");
  for (int s = 1; s <= 10; ++s) save_checkpoint(root, s, random_data(8, uint64_t(s)));
  prune_checkpoints(root, 3, 4);
  EXPECT_EQ(entries(root), (std::vector<std::string>{"step_00000004", "step_00000008", "step_00000009",
                                                      "step_00000010"}));
  prune_checkpoints(root, 0, 0);  // the newest always stays
  EXPECT_EQ(entries(root), (std::vector<std::string>{"step_00000010"}));
  fs::remove_all(root);
}

// Issue 20: pruning counts only valid checkpoints. A corrupt newest one is moved aside (renamed,
// never deleted), and the good one before it stays even with keep_last = 1.
TEST(TrainCheckpoint, PruneCountsOnlyValidOnesAndSetsCorruptOnesAside) {
  const std::string root = fresh_dir("prune_corrupt");
  for (int s = 1; s <= 4; ++s) save_checkpoint(root, s, random_data(8, uint64_t(s)));
  flip_byte(root + "/step_00000004/model.bin", 5);
  prune_checkpoints(root, 1, 0);
  EXPECT_EQ(entries(root), (std::vector<std::string>{"invalid-step_00000004", "step_00000003"}));
  EXPECT_TRUE(checkpoint_problem(root + "/step_00000003").empty());
  // A second corrupt copy of the same step gets a name of its own.
  save_checkpoint(root, 4, random_data(8, 4));
  flip_byte(root + "/step_00000004/model.bin", 5);
  prune_checkpoints(root, 1, 0);
  EXPECT_EQ(entries(root), (std::vector<std::string>{"invalid-step_00000004", "invalid-step_00000004-2",
                                                      "step_00000003"}));
  fs::remove_all(root);
}

// Directories found valid are remembered, so that a save re-reads none of the checkpoints it keeps.
TEST(TrainCheckpoint, PruneTrustsVerifiedDirectories) {
  const std::string root = fresh_dir("prune_verified");
  for (int s = 1; s <= 3; ++s) save_checkpoint(root, s, random_data(8, uint64_t(s)));
  std::set<std::string> verified;
  prune_checkpoints(root, 2, 0, verified);
  EXPECT_EQ(verified, (std::set<std::string>{root + "/step_00000002", root + "/step_00000003"}));
  flip_byte(root + "/step_00000003/model.bin", 5);  // not re-read: it is known valid
  prune_checkpoints(root, 2, 0, verified);
  EXPECT_EQ(entries(root), (std::vector<std::string>{"step_00000002", "step_00000003"}));
  fs::remove_all(root);
}

// The newest valid checkpoint, the invalid ones newer than it, and those set aside earlier.
TEST(TrainCheckpoint, ScanReportsInvalidCheckpoints) {
  const std::string root = fresh_dir("scan");
  for (int s = 1; s <= 3; ++s) save_checkpoint(root, s, random_data(8, uint64_t(s)));
  flip_byte(root + "/step_00000003/model.bin", 5);
  fs::create_directories(root + "/invalid-step_00000009");
  const CheckpointScan scan = scan_checkpoints(root);
  EXPECT_EQ(scan.latest, root + "/step_00000002");
  ASSERT_EQ(scan.invalid.size(), 1u);
  EXPECT_EQ(scan.invalid[0].first, root + "/step_00000003");
  EXPECT_NE(scan.invalid[0].second.find("model.bin"), std::string::npos) << scan.invalid[0].second;
  EXPECT_EQ(scan.set_aside, std::vector<std::string>{root + "/invalid-step_00000009"});
  fs::remove_all(root);
}

// A writer killed (SIGKILL) in the middle of a save leaves the previous checkpoint usable, and the
// next save cleans up its temporary directory.
TEST(TrainCheckpoint, SigkillDuringSaveLeavesThePreviousOneUsable) {
  const std::string root = fresh_dir("sigkill");
  const auto a = random_data(50000, 61);
  save_checkpoint(root, 1, a);
  const size_t stall_at = 200000 + 77777;  // inside optimizer.bin
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    inject_checkpoint_write_fault(int64_t(stall_at), WriteFault::stall);
    try {
      save_checkpoint(root, 2, random_data(50000, 62));
    } catch (...) {
    }
    ::_exit(3);  // never reached while the stall works
  }
  const std::string tmp = root + "/.tmp-step_00000002-" + std::to_string(pid);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::error_code ec;
  const size_t stalled_size = stall_at - 200000;  // model.bin holds the first 200000 bytes
  while (std::chrono::steady_clock::now() < deadline) {
    const auto size = fs::file_size(tmp + "/optimizer.bin", ec);
    if (!ec && size >= stalled_size) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(fs::file_size(tmp + "/optimizer.bin", ec), stalled_size);
  ::kill(pid, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "writer exited with " << status;

  EXPECT_TRUE(fs::exists(tmp));
  EXPECT_EQ(find_latest_valid(root), root + "/step_00000001");
  expect_same(load_checkpoint(root + "/step_00000001"), a);
  const auto b = random_data(50000, 63);
  save_checkpoint(root, 2, b);
  EXPECT_EQ(entries(root), (std::vector<std::string>{"step_00000001", "step_00000002"}));
  expect_same(load_checkpoint(root + "/step_00000002"), b);
  fs::remove_all(root);
}

// A real full disk: a 256 KiB tmpfs in a private mount namespace (child process). Skips when the
// system does not allow mounting.
TEST(TrainCheckpoint, FullTmpfsFailsTheSaveAndKeepsTheOldCheckpoint) {
  const std::string base = fresh_dir("tmpfs");
  const std::string report = base + "/report.txt";
  const std::string mnt = base + "/mnt";
  fs::create_directories(mnt);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const uid_t uid = ::getuid();
    const gid_t gid = ::getgid();
    if (::unshare(uid == 0 ? CLONE_NEWNS : CLONE_NEWUSER | CLONE_NEWNS) != 0) ::_exit(77);
    if (uid != 0) {
      std::ofstream("/proc/self/setgroups") << "deny";
      std::ofstream("/proc/self/uid_map") << "0 " << uid << " 1";
      std::ofstream("/proc/self/gid_map") << "0 " << gid << " 1";
    }
    ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr);
    if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=256k") != 0) ::_exit(77);
    std::ofstream out(report);
    const auto small = random_data(4000, 71);  // 48 KB
    save_checkpoint(mnt, 1, small);
    try {
      save_checkpoint(mnt, 2, random_data(40000, 72));  // 480 KB: does not fit
      out << "the oversized save succeeded";
      ::_exit(1);
    } catch (const CheckpointError& e) {
      const std::string msg = e.what();
      if (msg.find(mnt + "/.tmp-step_00000002") == std::string::npos || msg.find(std::strerror(ENOSPC)) == std::string::npos) {
        out << "unclear error: " << msg;
        ::_exit(1);
      }
    }
    if (entries(mnt) != std::vector<std::string>{"step_00000001"}) {
      out << "leftovers after the failed save";
      ::_exit(1);
    }
    if (find_latest_valid(mnt) != mnt + "/step_00000001" || !same_bits(load_checkpoint(mnt + "/step_00000001").params, small.params)) {
      out << "the old checkpoint is no longer valid";
      ::_exit(1);
    }
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "child died with " << status;
  if (WEXITSTATUS(status) == 77) {
    fs::remove_all(base);
    GTEST_SKIP() << "mounting a tmpfs is not permitted here";
  }
  std::ifstream in(report);
  std::string why((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(WEXITSTATUS(status), 0) << why;
  fs::remove_all(base);
}

}  // namespace
}  // namespace gfwa
