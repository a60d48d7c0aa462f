// Shared by the trainer tests: tiny token shards, a tiny model config, and readers for what a run
// leaves in its output directory.
#pragma once
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <omp.h>

#include "data/shard.h"
#include "train/config_io.h"

namespace gfwa::testing_train {

namespace fs = std::filesystem;

constexpr int kVocab = 97;

inline std::string fresh_dir(const std::string& name) {
  const auto dir = fs::temp_directory_path() / ("gfwa_train_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

// Two train shards of odd sizes and one val shard of tokens with some structure (a noisy
// repeating pattern), so the loss falls and shuffling matters.
inline void write_shards(const std::string& dir, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto make = [&](const std::string& path, int64_t n) {
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) t[size_t(i)] = int32_t(rng() % 5 == 0 ? rng() % kVocab : (i * 7) % kVocab);
    write_shard(path, t.data(), n, uint64_t(n) * 3, kVocab);
  };
  make(dir + "/train_000.bin", 301);  // 43 windows of 11: step 8 starts a new epoch
  make(dir + "/train_001.bin", 177);
  make(dir + "/val_000.bin", 611);
}

// A 2-layer GatedFWA model small enough to train for a few steps in milliseconds; accumulation 2.
inline nlohmann::json tiny_config(const std::string& data_dir) {
  return {
      {"model", {{"vocab_size", kVocab}, {"n_layers", 2}, {"d_model", 16}, {"n_heads", 2},
                 {"attention", {{"mode", "gatedfwa"}, {"window", 5}}}}},
      {"optimizer", {{"lr", 3e-3}, {"grad_clip", 0.5}}},
      {"schedule", {{"type", "cosine"}, {"warmup_steps", 2}}},
      {"train", {{"backend", "cpu"}, {"seed", 4242}, {"batch_size", 3}, {"seq_len", 11}, {"tokens_per_step", 66},
                 {"max_steps", 9}}},
      {"eval", {{"every", 4}, {"batches", 3}}},
      {"data", {{"train", data_dir + "/train_*.bin"}, {"val", data_dir + "/val_*.bin"}, {"shuffle", true}}},
      {"checkpoint", {{"every", 3}, {"keep_last", 10}}},
      {"logging", {{"every", 1}, {"level", "warn"}}},
  };
}

// The same run with optimizer.type muon (Muon on the hidden matrices, AdamW on the rest).
inline nlohmann::json muon_config(nlohmann::json j) {
  j["optimizer"]["type"] = "muon";
  j["optimizer"]["muon"] = {{"lr", 0.02}, {"momentum", 0.9}};
  return j;
}

inline RunConfig cfg_of(const nlohmann::json& j) { return config_from_json(j, "test config"); }

// Records of one type ("train", "eval", "sample") from out/metrics.jsonl, in file order.
inline std::vector<nlohmann::json> records(const std::string& out, const std::string& type) {
  std::vector<nlohmann::json> r;
  std::ifstream in(out + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.at("type") == type) r.push_back(j);
  }
  return r;
}

inline std::string file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

// A fresh folder per test with tiny shards in root_/data. One OpenMP thread: a tiny model gains
// nothing from more, and spinning workers on a loaded CI machine cost seconds (the process tests
// cover the threaded path).
class TrainFixture : public ::testing::Test {
 protected:
  explicit TrainFixture(uint64_t shard_seed) : shard_seed_(shard_seed) {}
  void SetUp() override {
    omp_set_num_threads(1);
    root_ = fresh_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    data_ = root_ + "/data";
    std::filesystem::create_directories(data_);
    write_shards(data_, shard_seed_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  std::string root_, data_;

 private:
  uint64_t shard_seed_;
};

}  // namespace gfwa::testing_train
