// io/files: whole-file reads and the atomic replace every writer of the project uses (checkpoint
// files, token shards, the NCCL id file): the old content or the whole new one, never a part.
#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "io/files.h"

namespace gfwa {
namespace {

namespace fs = std::filesystem;

class IoFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("gfwa_io_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  size_t entries() const { return size_t(std::distance(fs::directory_iterator(dir_), fs::directory_iterator())); }
  fs::path dir_;
};

TEST_F(IoFiles, AtomicWriteReplacesTheWholeFile) {
  const std::string path = (dir_ / "f.bin").string();
  write_file_atomic(path, "first version", 13);
  EXPECT_EQ(read_file(path), "first version");
  write_file_atomic(path, [](FileSink& f) {
    f.write("se", 2);
    f.write("cond", 4);
  });
  EXPECT_EQ(read_file(path), "second");
  EXPECT_EQ(entries(), 1u);  // no temporary file left behind
}

TEST_F(IoFiles, FailedFillKeepsTheOldFileAndLeavesNoTemporary) {
  const std::string path = (dir_ / "f.bin").string();
  write_file_atomic(path, "old", 3);
  EXPECT_THROW(write_file_atomic(path,
                                 [](FileSink& f) {
                                   f.write("partial", 7);
                                   throw std::invalid_argument("bad token");
                                 }),
               std::invalid_argument);  // the fill's own error passes through
  EXPECT_EQ(read_file(path), "old");
  EXPECT_EQ(entries(), 1u);
}

TEST_F(IoFiles, ErrorsNameThePath) {
  const std::string missing = (dir_ / "no" / "such.bin").string();
  try {
    write_file_atomic(missing, "x", 1);
    FAIL() << "wrote into a missing directory";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  try {
    read_file(missing);
    FAIL() << "read a missing file";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), missing + ": cannot open: No such file or directory");
  }
  const std::string once = (dir_ / "once.bin").string();
  write_file_synced(once, [](FileSink& f) { f.write("a", 1); });
  EXPECT_THROW(write_file_synced(once, [](FileSink& f) { f.write("b", 1); }), std::runtime_error);  // must be new
  EXPECT_EQ(read_file(once), "a");
}

}  // namespace
}  // namespace gfwa
