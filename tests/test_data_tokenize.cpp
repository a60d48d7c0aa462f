// `gfwa tokenize` end to end on small files: documents in order behind <|endoftext|>, the hash and
// explicit val splits, shard sizes and byte counts, thread-count independence, removal of stale
// shards, and nothing written when an input is missing. Skips without the tokenizer files.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "data/documents.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "test_data_util.h"
#include "cli/commands.h"

using namespace gfwa;
using gfwa::testing::TempDir;
namespace fs = std::filesystem;

namespace {

int run_tokenize(std::vector<std::string> args) {
  args.insert(args.begin(), "tokenize");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return cmd_tokenize(int(args.size()), argv.data());
}

// All tokens of split's shards in order, checking each shard's header byte count.
std::vector<int32_t> read_split(const Tokenizer& tok, const fs::path& dir, const std::string& split, int* shards) {
  std::vector<int32_t> all;
  *shards = 0;
  for (int i = 0;; ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "%s_%06d.bin", split.c_str(), i);
    if (!fs::exists(dir / name)) break;
    ShardReader m((dir / name).string(), tok.vocab_size());
    std::vector<int32_t> t(size_t(m.size()));
    m.copy(0, m.size(), t.data());
    uint64_t bytes = 0;
    for (int32_t id : t)
      if (id != Tokenizer::kEndOfText) bytes += tok.token_bytes(id).size();
    EXPECT_EQ(m.info().utf8_bytes, bytes) << name;
    all.insert(all.end(), t.begin(), t.end());
    ++*shards;
  }
  return all;
}

// Splits a token stream at <|endoftext|> (which must precede every document) into texts.
std::vector<std::string> documents_of(const Tokenizer& tok, const std::vector<int32_t>& t) {
  std::vector<std::string> docs;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] == Tokenizer::kEndOfText) docs.emplace_back();
    else {
      EXPECT_FALSE(docs.empty()) << "tokens before the first <|endoftext|>";
      if (!docs.empty()) docs.back() += tok.token_bytes(t[i]);
    }
  }
  return docs;
}

class DataTokenizeTool : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!gfwa::testing::tokenizer_present())
      GTEST_SKIP() << "no " << gfwa::testing::tokenizer_dir() << "; run scripts/data/fetch_tokenizer.sh";
    tok_ = std::make_unique<Tokenizer>(gfwa::testing::tokenizer_dir());
  }
  std::unique_ptr<Tokenizer> tok_;
};

}  // namespace

TEST_F(DataTokenizeTool, HashSplitDocSepShardsAndThreads) {
  TempDir dir;
  std::vector<std::string> docs;
  std::string fortunes;
  for (int i = 0; i < 40; ++i) {
    docs.push_back("Fortune number " + std::to_string(i) + ": it's   a fine day,\nisn't it? \xc3\xa9\xff\n");
    fortunes += docs.back() + "%\n";
  }
  gfwa::testing::write_bytes(dir.file("fortunes"), fortunes);
  gfwa::testing::write_bytes(dir.file("b.txt"), "A second file.\n");
  docs.push_back("A second file.\n");
  const fs::path out1 = dir.path() / "out1", out3 = dir.path() / "out3";
  fs::create_directories(out1);
  gfwa::testing::write_bytes((out1 / "train_000099.bin").string(), "stale");
  gfwa::testing::write_bytes((out1 / "notes.txt").string(), "kept");
  for (const auto& [out, threads] : {std::pair{out1, "1"}, std::pair{out3, "3"}})
    ASSERT_EQ(run_tokenize({dir.file("fortunes"), dir.file("*.txt"), "--out", out.string(), "--doc-sep", "%",
                            "--val-fraction", "0.3", "--shard-tokens", "37", "--threads", threads,
                            "--tokenizer", gfwa::testing::tokenizer_dir()}),
              0);
  EXPECT_FALSE(fs::exists(out1 / "train_000099.bin")) << "stale shard not removed";
  EXPECT_TRUE(fs::exists(out1 / "notes.txt"));
  std::vector<std::string> want_train, want_val;
  for (const auto& d : docs) (in_val_split(d, 0.3) ? want_val : want_train).push_back(d);
  ASSERT_FALSE(want_val.empty());
  int shards = 0;
  const auto train = read_split(*tok_, out1, "train", &shards);
  EXPECT_EQ(shards, int((train.size() + 36) / 37));
  for (int i = 0; i + 1 < shards; ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "train_%06d.bin", i);
    EXPECT_EQ(read_shard_header((out1 / name).string()).tokens, 37) << name;
  }
  EXPECT_EQ(documents_of(*tok_, train), want_train);
  EXPECT_EQ(documents_of(*tok_, read_split(*tok_, out1, "val", &shards)), want_val);
  for (const auto& e : fs::directory_iterator(out3)) {
    const auto name = e.path().filename();
    EXPECT_EQ(gfwa::testing::read_bytes(e.path().string()), gfwa::testing::read_bytes((out1 / name).string())) << name;
  }
}

TEST_F(DataTokenizeTool, ExplicitValFilesAndFailureWritesNothing) {
  TempDir dir;
  gfwa::testing::write_bytes(dir.file("a.txt"), "Alpha text.");
  gfwa::testing::write_bytes(dir.file("b.txt"), "Beta text.");
  const fs::path out = dir.path() / "out";
  ASSERT_EQ(run_tokenize({dir.file("*.txt"), "--val", dir.file("b.txt"), "--out", out.string(), "--tokenizer",
                          gfwa::testing::tokenizer_dir()}),
            0);
  int shards = 0;
  EXPECT_EQ(documents_of(*tok_, read_split(*tok_, out, "train", &shards)), std::vector<std::string>{"Alpha text."});
  EXPECT_EQ(documents_of(*tok_, read_split(*tok_, out, "val", &shards)), std::vector<std::string>{"Beta text."});
  const auto before = gfwa::testing::read_bytes((out / "train_000000.bin").string());
  try {
    run_tokenize({dir.file("a.txt"), dir.file("missing.txt"), "--out", out.string(), "--tokenizer",
                  gfwa::testing::tokenizer_dir()});
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(dir.file("missing.txt")), std::string::npos) << e.what();
  }
  EXPECT_THROW(run_tokenize({dir.file("*.none"), "--out", out.string()}), std::runtime_error);
  EXPECT_THROW(run_tokenize({dir.file("a.txt"), "--out", out.string(), "--val", dir.file("b.txt"), "--val-fraction",
                             "0.5"}),
               std::runtime_error);
  size_t entries = 0;
  for (auto it = fs::directory_iterator(out); it != fs::directory_iterator(); ++it) ++entries;
  EXPECT_EQ(entries, 2u) << "a failed run left files behind";
  EXPECT_EQ(gfwa::testing::read_bytes((out / "train_000000.bin").string()), before);
}

namespace {

std::string tokenize_error(std::vector<std::string> args) {
  try {
    run_tokenize(std::move(args));
  } catch (const std::exception& e) {
    return e.what();
  }
  ADD_FAILURE() << "no exception";
  return "";
}

bool has_staging(const fs::path& out) {
  for (const auto& e : fs::directory_iterator(out))
    if (e.path().filename().string().rfind(".tokenize.tmp", 0) == 0) return true;
  return false;
}

}  // namespace

// Issue 20: a FIFO, a directory or a device given as input is "not a regular file", not missing.
TEST_F(DataTokenizeTool, InputsThatAreNotRegularFilesAreNamedSo) {
  TempDir dir;
  ASSERT_EQ(::mkfifo(dir.file("pipe.txt").c_str(), 0644), 0);
  fs::create_directories(dir.file("folder.txt"));
  const std::string out = dir.file("out");
  for (const std::string& input : {dir.file("pipe.txt"), dir.file("folder.txt"), std::string("/dev/null")}) {
    const std::string msg = tokenize_error({input, "--out", out, "--tokenizer", gfwa::testing::tokenizer_dir()});
    EXPECT_NE(msg.find(input + ": not a regular file"), std::string::npos) << msg;
  }
  EXPECT_NE(tokenize_error({dir.file("none.txt"), "--out", out}).find(dir.file("none.txt") + ": no such file"),
            std::string::npos);
}

// Issue 20: an absurd --threads is refused with a clear message (it used to abort the process in
// std::terminate, leaving its staging folder), and staging folders of dead runs are removed.
TEST_F(DataTokenizeTool, ThreadLimitAndStagingFoldersOfDeadRuns) {
  TempDir dir;
  gfwa::testing::write_bytes(dir.file("a.txt"), "Alpha text.");
  const fs::path out = dir.path() / "out";
  fs::create_directories(out);
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  const fs::path stale = out / (".tokenize.tmp" + std::to_string(dead));
  fs::create_directories(stale);
  gfwa::testing::write_bytes((stale / "train_000000.bin").string(), "partial");
  const std::string msg = tokenize_error({dir.file("a.txt"), "--out", out.string(), "--threads", "100000",
                                          "--tokenizer", gfwa::testing::tokenizer_dir()});
  EXPECT_NE(msg.find("--threads 100000"), std::string::npos) << msg;
  ASSERT_EQ(run_tokenize({dir.file("a.txt"), "--out", out.string(), "--threads", "3", "--tokenizer",
                          gfwa::testing::tokenizer_dir()}),
            0);
  EXPECT_FALSE(has_staging(out));
}
