// Shape of one NSA attention core (docs/nsa.md), shared by the CPU reference (nsa_cpu.h) and the CUDA
// kernels (nsa.h): the three branches read one set of K/V heads, grouped as in grouped-query attention.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>

namespace gfwa {

// The block size and the largest top_k the CUDA kernels (nsa.h) are built for: the one rule behind their
// argument check, the cuda backend and the configuration check. The CPU reference takes any.
constexpr int kNsaBlock = 64;
constexpr int kNsaMaxTopK = 64;

struct NsaShape {
  int B, T;
  int H;       // query heads
  int Hkv;     // K/V heads; divides H. Query head h belongs to group h / (H / Hkv).
  int D;       // head dim
  int block;   // tokens per block: the compression pool and the unit of selection (NSA: 64)
  int top_k;   // blocks each query group selects, its own block included (NSA: 16)
  int window;  // keys of the sliding branch, the query itself included

  int groups() const { return H / Hkv; }                       // G: query heads per K/V head
  int n_cmp() const { return T / block; }                      // complete blocks: compressed keys
  int n_blocks() const { return (T + block - 1) / block; }     // all blocks, the partial last one included
};

// Empty when `s` is a valid shape, else what is wrong, naming the field and its value.
inline std::string nsa_shape_error(const NsaShape& s) {
  auto bad = [](const char* field, int v, const char* rule) {
    return std::string("nsa: ") + field + "=" + std::to_string(v) + " " + rule;
  };
  if (s.B < 1) return bad("B", s.B, "must be >= 1");
  if (s.T < 1) return bad("T", s.T, "must be >= 1");
  if (s.H < 1) return bad("H", s.H, "must be >= 1");
  if (s.Hkv < 1 || s.H % s.Hkv != 0)
    return bad("Hkv", s.Hkv, ("must divide H=" + std::to_string(s.H)).c_str());
  if (s.D < 1) return bad("D", s.D, "must be >= 1");
  if (s.block < 1) return bad("block", s.block, "must be >= 1");
  if (s.top_k < 1) return bad("top_k", s.top_k, "must be >= 1");
  if (s.window < 1) return bad("window", s.window, "must be >= 1");
  return {};
}

// (query, key) pairs of one query head over the T queries, the three branches together: compressed keys
// c < (t + 1) / block, the selected blocks' tokens up to t (top_k blocks at most, the own block partial),
// and the window. The FLOP convention of docs/gatedfwa.md section 5 (bench nsa, the MFU of nsa layers).
inline double nsa_pairs(const NsaShape& s) {
  const int64_t T = s.T, W = std::min<int64_t>(s.window, T);
  double p = double(T * W - W * (W - 1) / 2);
  for (int64_t t = 0; t < T; ++t) {
    const int64_t blocks = std::min<int64_t>(s.top_k, t / s.block + 1);
    p += double((t + 1) / s.block) + double((blocks - 1) * s.block + t % s.block + 1);
  }
  return p;
}

}  // namespace gfwa
