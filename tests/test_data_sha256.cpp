// SHA-256 against the FIPS 180-4 / NIST example vectors, incremental updates, and file hashing.
#include <gtest/gtest.h>

#include <cstdio>
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

// The CPU-extension path (where the CPU has one; the known vectors above then go through it) against the portable
// block function on random multi-block inputs: one state, both paths, every block count up to 9.
TEST(DataSha256, ExtensionsMatchThePortableBlocks) {
  if (!sha256_uses_cpu_extensions()) GTEST_SKIP() << "this CPU has no SHA extensions: only the portable path runs";
  std::mt19937_64 rng(11);
  for (size_t blocks = 1; blocks <= 9; ++blocks) {
    std::string s(64 * blocks, '\0');
    for (auto& c : s) c = char(rng());
    Sha256 fast;
    fast.update(s.data(), s.size());  // whole blocks: no buffering, straight to the block function
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    sha256_blocks_portable(h, reinterpret_cast<const uint8_t*>(s.data()), blocks);
    // Finish the portable state with the padding block (length a multiple of 64: 0x80, zeros, bit length).
    uint8_t pad[64] = {0x80};
    const uint64_t bits = uint64_t(s.size()) * 8;
    for (int i = 0; i < 8; ++i) pad[56 + i] = uint8_t(bits >> (56 - 8 * i));
    sha256_blocks_portable(h, pad, 1);
    std::string hex;
    char b[9];
    for (uint32_t x : h) {
      std::snprintf(b, sizeof b, "%08x", x);
      hex += b;
    }
    EXPECT_EQ(fast.hex_digest(), hex) << blocks << " blocks";
  }
}
