// Token shards: round trips in both token widths, the UTF-8 byte count slot, llm.c layout, and
// every malformed file refused with a message naming the file and the problem.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "data/shard.h"
#include "test_data_util.h"

using namespace gfwa;
using gfwa::testing::read_bytes;
using gfwa::testing::TempDir;
using gfwa::testing::write_bytes;

namespace {

std::vector<int32_t> random_tokens(size_t n, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = int32_t(rng() % uint64_t(vocab));
  return t;
}

std::string header_bytes(int32_t magic, int32_t version, int32_t n) {
  std::vector<int32_t> h(256, 0);
  h[0] = magic, h[1] = version, h[2] = n;
  return std::string(reinterpret_cast<const char*>(h.data()), 1024);
}

// Expects fn to throw a runtime_error mentioning path and every one of words.
template <class Fn>
void expect_error(Fn fn, const std::string& path, std::initializer_list<const char*> words) {
  try {
    fn();
    ADD_FAILURE() << "no exception for " << path;
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    for (const char* w : words) EXPECT_NE(msg.find(w), std::string::npos) << "'" << w << "' not in: " << msg;
  }
}

}  // namespace

TEST(DataShard, RoundTripUint16) {
  TempDir dir;
  for (size_t n : {1u, 2u, 777u, 70001u}) {
    const auto tokens = random_tokens(n, 50257, n);
    const std::string path = dir.file("s" + std::to_string(n) + ".bin");
    write_shard(path, tokens.data(), int64_t(n), 123456789012ull + n, 50257);
    EXPECT_EQ(std::filesystem::file_size(path), 1024 + 2 * n);
    const std::string raw = read_bytes(path);
    int32_t h[5];
    std::memcpy(h, raw.data(), sizeof(h));
    EXPECT_EQ(h[0], 20240520);
    EXPECT_EQ(h[1], 1);
    EXPECT_EQ(h[2], int32_t(n));
    const ShardInfo info = read_shard_header(path);
    EXPECT_EQ(info.tokens, int64_t(n));
    EXPECT_EQ(info.token_size, 2);
    EXPECT_EQ(info.utf8_bytes, 123456789012ull + n);
    ShardReader m(path, 50257);
    std::vector<int32_t> back(n, -7);
    m.copy(0, int64_t(n), back.data());
    EXPECT_EQ(back, tokens);
    if (n > 10) {
      std::vector<int32_t> mid(5, -7);
      m.copy(3, 5, mid.data());
      EXPECT_EQ(mid, std::vector<int32_t>(tokens.begin() + 3, tokens.begin() + 8));
    }
    EXPECT_THROW(m.copy(int64_t(n) - 1, 2, back.data()), std::runtime_error);
  }
  EXPECT_TRUE(std::filesystem::directory_iterator(dir.path()) != std::filesystem::directory_iterator());
  for (auto& e : std::filesystem::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().extension(), ".bin") << "leftover temp file " << e.path();
}

TEST(DataShard, RoundTripUint32) {
  TempDir dir;
  const int vocab = 128256;
  const auto tokens = random_tokens(4099, vocab, 11);
  const std::string path = dir.file("wide.bin");
  write_shard(path, tokens.data(), int64_t(tokens.size()), 0, vocab);
  EXPECT_EQ(std::filesystem::file_size(path), 1024 + 4 * tokens.size());
  const ShardInfo info = read_shard_header(path);
  EXPECT_EQ(info.token_size, 4);
  EXPECT_EQ(info.utf8_bytes, 0u);
  ShardReader m(path, vocab);
  std::vector<int32_t> back(tokens.size(), -1);
  m.copy(0, int64_t(back.size()), back.data());
  EXPECT_EQ(back, tokens);
  expect_error([&] { ShardReader small(path, 65536); }, path, {"token id", ">= vocab size 65536"});
}

TEST(DataShard, WriterRefusesBadInputAndLeavesNothing) {
  TempDir dir;
  const std::string path = dir.file("bad.bin");
  std::vector<int32_t> t = {1, 2, 50257, 3};
  expect_error([&] { write_shard(path, t.data(), 4, 0, 50257); }, path, {"token 50257", "index 2"});
  t[2] = -1;
  expect_error([&] { write_shard(path, t.data(), 4, 0, 50257); }, path, {"token -1"});
  expect_error([&] { write_shard(path, t.data(), 0, 0, 50257); }, path, {"empty"});
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
  t[2] = 5;
  write_shard(path, t.data(), 4, 0, 50257);  // overwrites atomically
  write_shard(path, t.data(), 3, 0, 50257);
  EXPECT_EQ(read_shard_header(path).tokens, 3);
}

TEST(DataShard, ReaderNamesFileAndProblem) {
  TempDir dir;
  auto make = [&](const std::string& name, const std::string& bytes) {
    write_bytes(dir.file(name), bytes);
    return dir.file(name);
  };
  const std::string body4(8, '\x01');  // 4 uint16 tokens of value 257
  std::string p;
  p = make("magic.bin", header_bytes(12345, 1, 4) + body4);
  expect_error([&] { read_shard_header(p); }, p, {"magic 12345"});
  p = make("version.bin", header_bytes(20240520, 7, 4) + body4);
  expect_error([&] { read_shard_header(p); }, p, {"version 7"});
  p = make("version32.bin", header_bytes(20240801, 1, 2) + body4);
  expect_error([&] { read_shard_header(p); }, p, {"version 1"});
  p = make("truncated.bin", header_bytes(20240520, 1, 5) + body4);
  expect_error([&] { read_shard_header(p); }, p, {"truncated", "5 tokens"});
  p = make("longer.bin", header_bytes(20240520, 1, 3) + body4);
  expect_error([&] { read_shard_header(p); }, p, {"size mismatch", "3 tokens"});
  p = make("empty.bin", header_bytes(20240520, 1, 0));
  expect_error([&] { read_shard_header(p); }, p, {"empty shard"});
  p = make("negative.bin", header_bytes(20240520, 1, -4) + body4);
  expect_error([&] { read_shard_header(p); }, p, {"negative"});
  p = make("short.bin", std::string(100, '\0'));
  expect_error([&] { read_shard_header(p); }, p, {"truncated", "header"});
  p = make("zero.bin", "");
  expect_error([&] { read_shard_header(p); }, p, {"truncated"});
  p = make("oov.bin", header_bytes(20240520, 1, 4) + body4);
  EXPECT_NO_THROW(read_shard_header(p));
  expect_error([&] { ShardReader m(p, 257); }, p, {"token id 257", "index 0", ">= vocab size 257"});
  EXPECT_NO_THROW(ShardReader(p, 258));
  p = dir.file("missing.bin");
  expect_error([&] { read_shard_header(p); }, p, {"cannot open"});
  p = dir.path().string();
  expect_error([&] { read_shard_header(p); }, p, {});
}
