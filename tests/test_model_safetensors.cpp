#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "model/safetensors.h"

namespace gfwa {
namespace {
namespace fs = std::filesystem;

class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("gfwa_st_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "t.safetensors").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Two tensors: F32 [2, 3] and BF16 [4] (1.0, -2.0, 0.5, 0), and an I32 scalar.
  void write_sample() {
    write_safetensors(path_,
                      {{"b.weight", "F32", {2, 3}, f32_, sizeof f32_},
                       {"a.bias", "BF16", {4}, bf16_, sizeof bf16_},
                       {"count", "I32", {}, &i32_, sizeof i32_}},
                      {{"format", "pt"}});
  }
  std::string bytes() const {
    std::ifstream f(path_, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(f)), {});
  }
  void put(const std::string& b) const { std::ofstream(path_, std::ios::binary | std::ios::trunc) << b; }
  // A file with this header and `data` bytes of payload.
  void put_header(const std::string& header, size_t data) const {
    std::string b(8, '\0');
    for (int i = 0; i < 8; ++i) b[size_t(i)] = char(uint64_t(header.size()) >> (8 * i));
    put(b + header + std::string(data, '\0'));
  }
  void expect_error(const std::string& part) const {
    try {
      SafetensorsFile f(path_);
      ADD_FAILURE() << "no error; expected one containing: " << part;
    } catch (const SafetensorsError& e) {
      EXPECT_NE(std::string(e.what()).find(path_), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  }

  fs::path dir_;
  std::string path_;
  float f32_[6] = {1, 2, 3, 4, 5, 6};
  uint16_t bf16_[4] = {0x3f80, 0xc000, 0x3f00, 0};
  int32_t i32_ = 42;
};

TEST_F(Safetensors, RoundTripKeepsNamesShapesDtypesBytesAndMetadata) {
  write_sample();
  const SafetensorsFile f(path_);
  ASSERT_EQ(f.tensors().size(), 3u);
  const SafetensorsTensor* w = f.find("b.weight");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->dtype, "F32");
  EXPECT_EQ(w->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(w->data, f32_, sizeof f32_), 0);
  EXPECT_EQ(std::memcmp(f.find("a.bias")->data, bf16_, sizeof bf16_), 0);
  EXPECT_TRUE(f.find("count")->shape.empty());
  EXPECT_EQ(*static_cast<const int32_t*>(f.find("count")->data), 42);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.find("absent"), nullptr);
  // Tensors come back in data order, which is the order written.
  EXPECT_EQ(f.tensors()[0].name, "b.weight");
  EXPECT_EQ(f.tensors()[2].name, "count");
}

TEST_F(Safetensors, LayoutIsTheStandardOne) {
  write_sample();
  const std::string b = bytes();
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(b[size_t(i)]);
  EXPECT_EQ(n % 8, 0u);  // data 8-byte aligned
  EXPECT_EQ(b.size(), 8 + n + sizeof f32_ + sizeof bf16_ + sizeof i32_);
  const std::string header = b.substr(8, n);
  EXPECT_EQ(header.rfind("{\"__metadata__\":{\"format\":\"pt\"},\"a.bias\":{\"data_offsets\":[24,32]", 0), 0u) << header;
  EXPECT_EQ(std::memcmp(b.data() + 8 + n, f32_, sizeof f32_), 0);
  const std::string first = b;
  write_sample();
  EXPECT_EQ(bytes(), first);  // deterministic
  EXPECT_FALSE(fs::exists(path_ + ".tmp-" + std::to_string(::getpid())));
}

TEST_F(Safetensors, TruncatedFileIsRefused) {
  write_sample();
  const std::string b = bytes();
  put(b.substr(0, b.size() - 3));
  expect_error("truncated");
  put(b.substr(0, 5));
  expect_error("not a safetensors file");
  put(b.substr(0, 40));  // inside the header
  expect_error("exceeds the file");
}

TEST_F(Safetensors, CorruptHeaderIsRefused) {
  write_sample();
  std::string b = bytes();
  b[9] = '#';
  put(b);
  expect_error("header is not valid JSON");
  put_header("[1, 2]", 0);
  expect_error("not a JSON object");
  put_header(R"({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}})", 4);
  expect_error("shape [2] of F32 does not fit its 4 bytes");
  put_header(R"({"x": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}})", 4);
  expect_error("unknown dtype Q7");
  put_header(R"({"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4);
  expect_error("not a non-negative integer");
  put_header(R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}})", 4);
  expect_error("is not [begin, end]");
  put_header(R"({"x": {"shape": [1], "data_offsets": [0, 4]}})", 4);
  expect_error("\"dtype\" missing");
}

TEST_F(Safetensors, OverlapsHolesAndTrailingBytesAreRefused) {
  put_header(R"({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
             R"( "y": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 8);
  expect_error("tensor y starts at data byte 4, expected 8");
  put_header(R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 8);
  expect_error("tensor x starts at data byte 4, expected 0");
  put_header(R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 12);
  expect_error("8 bytes after the last tensor");
}

TEST_F(Safetensors, WriterRefusesInconsistentTensors) {
  const float x[2] = {1, 2};
  EXPECT_THROW(write_safetensors(path_, {{"x", "F32", {3}, x, sizeof x}}, {}), SafetensorsError);
  EXPECT_THROW(write_safetensors(path_, {{"x", "F32", {2}, x, sizeof x}, {"x", "F32", {2}, x, sizeof x}}, {}),
               SafetensorsError);
  EXPECT_THROW(write_safetensors(path_, {{"x", "Q7", {2}, x, sizeof x}}, {}), SafetensorsError);
  EXPECT_FALSE(fs::exists(path_));
}

}  // namespace
}  // namespace gfwa
