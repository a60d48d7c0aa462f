// Data loaders over synthetic shards whose tokens number the positions of the whole data set,
// so that every window is identified by its first token. Covers: exact resume (several ranks,
// shuffling on, save/restore at arbitrary steps), epoch rollover, rank slices of global batches,
// the val loader covering its split once, and errors that name the pattern or file.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "data/loader.h"
#include "data/shard.h"
#include "test_data_util.h"

using namespace gfwa;
using gfwa::testing::TempDir;

namespace {

constexpr int kVocab = 65536;

// Shards of the given sizes under dir/prefix_NNN.bin; token at global position p is p.
// Returns, per shard, the first global position.
std::vector<int32_t> make_shards(const TempDir& dir, const std::string& prefix, const std::vector<int>& sizes) {
  std::vector<int32_t> first;
  int32_t next = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    std::vector<int32_t> t(size_t(sizes[i]));
    first.push_back(next);
    for (auto& x : t) x = next++;
    char name[64];
    std::snprintf(name, sizeof(name), "%s_%03zu.bin", prefix.c_str(), i);
    write_shard(dir.file(name), t.data(), int64_t(t.size()), uint64_t(3 * t.size()), kVocab);
  }
  return first;
}

LoaderOptions opts(const TempDir& dir, const std::string& prefix, int B, int T, int rank, int world, bool shuffle,
                   uint64_t seed) {
  LoaderOptions o;
  o.pattern = dir.file(prefix + "_*.bin");
  o.B = B, o.T = T, o.rank = rank, o.world = world, o.shuffle = shuffle, o.seed = seed, o.vocab_size = kVocab;
  return o;
}

// One step of a loader: first token of each of the B windows, after checking the window layout.
std::vector<int32_t> step(TrainLoader& l, int B, int T) {
  std::vector<int32_t> in(3, -5), tg(7, -5);  // poisoned, wrong sizes
  l.next(in, tg);
  EXPECT_EQ(in.size(), size_t(B) * T);
  EXPECT_EQ(tg.size(), size_t(B) * T);
  std::vector<int32_t> firsts;
  for (int b = 0; b < B; ++b) {
    for (int t = 0; t < T; ++t) EXPECT_EQ(tg[b * T + t], in[b * T + t] + 1);  // consecutive tokens
    firsts.push_back(in[b * T]);
  }
  return firsts;
}

template <class Fn>
void expect_error(Fn fn, std::initializer_list<std::string> words) {
  try {
    fn();
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    for (const auto& w : words) EXPECT_NE(std::string(e.what()).find(w), std::string::npos) << "'" << w << "' not in: " << e.what();
  }
}

}  // namespace

TEST(DataLoader, UnshuffledIsFileOrder) {
  TempDir dir;
  const auto first = make_shards(dir, "train", {50, 9, 33});  // 9 tokens hold one window of T+1 = 8
  const int T = 7;
  TrainLoader l(opts(dir, "train", 2, T, 0, 1, false, 0));
  EXPECT_EQ(l.windows_per_epoch(), 7 + 1 + 4);
  std::vector<int32_t> want;
  for (int e = 0; e < 2; ++e) {
    for (int w = 0; w < 7; ++w) want.push_back(first[0] + w * T);
    want.push_back(first[1]);
    for (int w = 0; w < 4; ++w) want.push_back(first[2] + w * T);
  }
  std::vector<int32_t> got;
  for (int s = 0; s < 12; ++s) {
    auto f = step(l, 2, T);
    got.insert(got.end(), f.begin(), f.end());
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(l.epoch(), 2);
}

TEST(DataLoader, RanksSliceTheGlobalBatchAndEpochsArePermutations) {
  TempDir dir;
  make_shards(dir, "train", {301, 97, 1000, 5, 640});
  for (uint64_t seed : {0u, 17u}) {
    const int B = 3, T = 11, W = 3;
    TrainLoader global(opts(dir, "train", B * W, T, 0, 1, true, seed));
    std::vector<std::unique_ptr<TrainLoader>> ranks;
    for (int r = 0; r < W; ++r) ranks.push_back(std::make_unique<TrainLoader>(opts(dir, "train", B, T, r, W, true, seed)));
    const int64_t per_epoch = global.windows_per_epoch();
    std::vector<int32_t> stream;
    while (int64_t(stream.size()) < 3 * per_epoch) {
      std::vector<int32_t> merged;
      for (auto& r : ranks) {
        auto f = step(*r, B, T);
        merged.insert(merged.end(), f.begin(), f.end());
      }
      EXPECT_EQ(merged, step(global, B * W, T));  // rank r holds slice r of the global batch
      stream.insert(stream.end(), merged.begin(), merged.end());
      for (auto& r : ranks) EXPECT_EQ(r->epoch(), global.epoch());
    }
    // each epoch: every window exactly once, in a different order each epoch
    std::vector<std::vector<int32_t>> epochs;
    for (int e = 0; e < 3; ++e) {
      std::vector<int32_t> ep(stream.begin() + e * per_epoch, stream.begin() + (e + 1) * per_epoch);
      epochs.push_back(ep);
      std::sort(ep.begin(), ep.end());
      EXPECT_TRUE(std::adjacent_find(ep.begin(), ep.end()) == ep.end()) << "window repeated in epoch " << e;
      EXPECT_EQ(int64_t(ep.size()), per_epoch);
    }
    EXPECT_NE(epochs[0], epochs[1]);
    EXPECT_NE(epochs[1], epochs[2]);
    std::vector<int32_t> a = epochs[0], b = epochs[1];
    std::sort(a.begin(), a.end()), std::sort(b.begin(), b.end());
    EXPECT_EQ(a, b);
  }
}

TEST(DataLoader, ResumeAtArbitraryStepsMatchesUninterrupted) {
  TempDir dir;
  make_shards(dir, "train", {257, 1001, 64, 513, 333});
  const int B = 2, T = 13, W = 3, steps = 90;  // 90 steps of 6 windows: about 4 epochs
  for (uint64_t seed : {1u, 2024u}) {
    std::vector<std::vector<int32_t>> straight(W);
    for (int r = 0; r < W; ++r) {
      TrainLoader l(opts(dir, "train", B, T, r, W, true, seed));
      for (int s = 0; s < steps; ++s) {
        auto f = step(l, B, T);
        straight[r].insert(straight[r].end(), f.begin(), f.end());
      }
    }
    // Interrupted: every few steps rank 0's state is saved, all loaders are destroyed, and fresh
    // loaders for every rank restore that state (through a JSON text round trip).
    std::mt19937_64 rng(seed);
    std::vector<std::vector<int32_t>> resumed(W);
    std::vector<std::unique_ptr<TrainLoader>> ls(W);
    for (int r = 0; r < W; ++r) ls[r] = std::make_unique<TrainLoader>(opts(dir, "train", B, T, r, W, true, seed));
    for (int s = 0; s < steps; ++s) {
      if (rng() % 7 == 0) {
        const std::string saved = ls[0]->state().dump();
        for (int r = 1; r < W; ++r) EXPECT_EQ(ls[r]->state().dump(), saved);  // state is rank-free
        for (int r = 0; r < W; ++r) {
          ls[r] = std::make_unique<TrainLoader>(opts(dir, "train", B, T, r, W, true, seed));
          ls[r]->restore(nlohmann::json::parse(saved));
        }
      }
      for (int r = 0; r < W; ++r) {
        auto f = step(*ls[r], B, T);
        resumed[r].insert(resumed[r].end(), f.begin(), f.end());
      }
    }
    EXPECT_EQ(resumed, straight);
    EXPECT_GE(ls[0]->epoch(), 3);
  }
}

TEST(DataLoader, RestoreRefusesStateOfOtherShardsOrOptions) {
  TempDir dir, other;
  make_shards(dir, "train", {200, 300});
  make_shards(other, "train", {200, 301});
  TrainLoader l(opts(dir, "train", 2, 8, 0, 1, true, 5));
  for (int i = 0; i < 5; ++i) step(l, 2, 8);
  const nlohmann::json good = l.state();
  const std::string before = good.dump();
  auto refused = [&](nlohmann::json st, const std::string& word) {
    expect_error([&] { l.restore(st); }, {dir.file("train_*.bin"), word});
    EXPECT_EQ(l.state().dump(), before) << "a refused restore changed the loader";
  };
  nlohmann::json st = good;
  st["T"] = 9;
  refused(st, "T 9");
  st = good, st["seed"] = 6;
  refused(st, "seed");
  st = good, st["shuffle"] = false;
  refused(st, "shuffle");
  st = good, st["cursor"] = 10000;
  refused(st, "cursor");
  st = good, st["shard_order"] = {7, 8};
  refused(st, "shard_order");
  st = good, st.erase("epoch");
  refused(st, "epoch");
  refused(TrainLoader(opts(other, "train", 2, 8, 0, 1, true, 5)).state(), "shard 1");
  TrainLoader fresh(opts(dir, "train", 2, 8, 0, 1, true, 5));
  fresh.restore(good);
  EXPECT_EQ(step(fresh, 2, 8), step(l, 2, 8));
}

TEST(DataLoader, ValCoversSplitOnceAcrossRanks) {
  TempDir dir;
  const auto first = make_shards(dir, "val", {100, 7, 250, 61});
  const int B = 2, T = 6, W = 3;
  // windows per shard: 16, 1, 41, 10 = 68; global batch 6 -> 11 batches, 2 windows left out
  std::vector<int32_t> expected;
  const int sizes[] = {100, 7, 250, 61};
  for (int s = 0; s < 4; ++s)
    for (int w = 0; w < (sizes[s] - 1) / T; ++w) expected.push_back(first[s] + w * T);
  std::vector<std::vector<int32_t>> per_rank(W);
  for (int r = 0; r < W; ++r) {
    ValLoader v(opts(dir, "val", B, T, r, W, false, 0));
    EXPECT_EQ(v.batches(), 11);
    EXPECT_EQ(v.total_tokens(), 100 + 7 + 250 + 61);
    EXPECT_EQ(v.total_utf8_bytes(), 3 * (100 + 7 + 250 + 61));
    for (int pass = 0; pass < 2; ++pass) {
      std::vector<int32_t> in(1, -1), tg;
      std::vector<int32_t> firsts;
      while (v.next(in, tg)) {
        ASSERT_EQ(in.size(), size_t(B * T));
        for (int b = 0; b < B; ++b) {
          for (int t = 0; t < T; ++t) EXPECT_EQ(tg[b * T + t], in[b * T + t] + 1);
          firsts.push_back(in[b * T]);
        }
      }
      EXPECT_EQ(int64_t(firsts.size()), v.batches() * B);
      if (pass == 0) per_rank[r] = firsts;
      else EXPECT_EQ(firsts, per_rank[r]) << "reset() must replay the same windows";
      v.reset();
    }
  }
  std::vector<int32_t> merged;
  for (int b = 0; b < 11; ++b)
    for (int r = 0; r < W; ++r) merged.insert(merged.end(), per_rank[r].begin() + b * B, per_rank[r].begin() + (b + 1) * B);
  EXPECT_EQ(merged, std::vector<int32_t>(expected.begin(), expected.begin() + 66));
  expect_error([&] { ValLoader v(opts(dir, "val", 40, T, 0, 2, false, 0)); }, {dir.file("val_*.bin"), "global batch"});
}

TEST(DataLoader, ErrorsNamePatternOrFile) {
  TempDir dir;
  expect_error([&] { TrainLoader l(opts(dir, "nothing", 1, 4, 0, 1, true, 0)); }, {dir.file("nothing_*.bin"), "no files"});
  expect_error([&] { ValLoader l(opts(dir, "nothing", 1, 4, 0, 1, true, 0)); }, {"no files"});
  make_shards(dir, "tiny", {4});
  expect_error([&] { TrainLoader l(opts(dir, "tiny", 1, 4, 0, 1, true, 0)); }, {"T+1 = 5"});
  expect_error([&] { TrainLoader l(opts(dir, "tiny", 1, 2, 3, 3, true, 0)); }, {"rank = 3"});
  expect_error([&] { TrainLoader l(opts(dir, "tiny", 0, 2, 0, 1, true, 0)); }, {"B = 0"});
  // a corrupt shard among good ones is named at construction
  make_shards(dir, "mix", {50, 50});
  gfwa::testing::write_bytes(dir.file("mix_002.bin"), std::string(2000, '\x07'));
  expect_error([&] { TrainLoader l(opts(dir, "mix", 1, 4, 0, 1, true, 0)); }, {dir.file("mix_002.bin"), "magic"});
  // an out-of-vocabulary token is found when the shard is first read
  std::vector<int32_t> t(40, 3);
  t[17] = 60000;
  write_shard(dir.file("oov_000.bin"), t.data(), 40, 0, kVocab);
  LoaderOptions o = opts(dir, "oov", 1, 4, 0, 1, true, 0);
  o.vocab_size = 50257;
  TrainLoader l(o);
  std::vector<int32_t> in, tg;
  expect_error([&] { l.next(in, tg); }, {dir.file("oov_000.bin"), "token id 60000", "index 17"});
  ValLoader v(o);
  expect_error([&] { v.next(in, tg); }, {dir.file("oov_000.bin"), "token id 60000"});
}

// Issue 20: a FIFO named like a shard is refused as "not a regular file" instead of blocking the
// open forever. Run in a child process that the test kills after 10 s, so that a hang fails.
TEST(DataLoader, FifoNamedLikeAShardDoesNotHang) {
  TempDir dir;
  make_shards(dir, "pipe", {50});
  ASSERT_EQ(::mkfifo(dir.file("pipe_001.bin").c_str(), 0644), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    try {
      TrainLoader l(opts(dir, "pipe", 1, 4, 0, 1, false, 0));
    } catch (const std::runtime_error& e) {
      const std::string msg = e.what();
      ::_exit(msg.find(dir.file("pipe_001.bin") + ": not a regular file") != std::string::npos ? 0 : 3);
    }
    ::_exit(4);
  }
  int status = 0;
  for (int i = 0; i < 1000 && ::waitpid(child, &status, WNOHANG) == 0; ++i) ::usleep(10000);
  if (::waitpid(child, &status, WNOHANG) == 0) {
    ::kill(child, SIGKILL);
    ::waitpid(child, &status, 0);
    FAIL() << "opening a FIFO named like a shard hung";
  }
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "wrong or no error for the FIFO";
}

// Issue 20: a shard truncated while it is being read fails the read with a ShardReadError naming
// the shard (a memory map would have died of SIGBUS); the loader's position stays where the last
// complete batch left it.
TEST(DataLoader, ShardTruncatedWhileReadingIsAShardReadError) {
  TempDir dir;
  make_shards(dir, "cut", {4001});
  TrainLoader l(opts(dir, "cut", 2, 8, 0, 1, false, 0));
  std::vector<int32_t> in, tg;
  l.next(in, tg);
  const auto before = l.state();
  std::filesystem::resize_file(dir.file("cut_000.bin"), 1024 + 2 * 20);
  bool thrown = false;
  for (int i = 0; i < 5 && !thrown; ++i) {
    try {
      l.next(in, tg);
    } catch (const ShardReadError& e) {
      thrown = true;
      EXPECT_NE(std::string(e.what()).find(dir.file("cut_000.bin") + ": "), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
    }
  }
  EXPECT_TRUE(thrown);
  EXPECT_EQ(l.state(), before);
}
