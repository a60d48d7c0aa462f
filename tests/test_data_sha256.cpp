// SHA-256 against the FIPS 180-4 / NIST example vectors, incremental updates, and file hashing.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "data/sha256.h"
#include "test_data_util.h"

using namespace gfwa;

TEST(DataSha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(DataSha256, IncrementalEqualsOneShot) {
  std::mt19937_64 rng(7);
  for (size_t n : {0u, 1u, 55u, 56u, 63u, 64u, 65u, 119u, 1000u, 4097u}) {
    std::string s(n, '\0');
    for (auto& c : s) c = char(rng());
    Sha256 h;
    for (size_t pos = 0; pos < n;) {
      size_t take = std::min<size_t>(n - pos, rng() % 70);
      h.update(s.data() + pos, take);
      pos += take;
    }
    EXPECT_EQ(h.hex_digest(), sha256_hex(s)) << "n=" << n;
  }
}

TEST(DataSha256, FileAndMissingFile) {
  gfwa::testing::TempDir dir;
  gfwa::testing::write_bytes(dir.file("x"), "abc");
  EXPECT_EQ(sha256_file_hex(dir.file("x")), sha256_hex("abc"));
  try {
    sha256_file_hex(dir.file("missing"));
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(dir.file("missing")), std::string::npos) << e.what();
  }
}
