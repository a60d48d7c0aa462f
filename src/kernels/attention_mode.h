// The attention variants the project trains and compares (docs/gatedfwa.md sections 2-3). full, swa
// and gatedfwa are the modes of the attention kernels (attention.h, attention_cpu.h); nsa is a layer
// of three branches (docs/nsa.md) whose sliding branch is one of swa, gatedfwa, so no attention
// kernel takes it.
#pragma once
#include <cstddef>
#include <string>

namespace gfwa {

enum class AttnMode { full, swa, gatedfwa, nsa };

inline const char* attn_mode_name(AttnMode m) {
  switch (m) {
    case AttnMode::full: return "full";
    case AttnMode::swa: return "swa";
    case AttnMode::gatedfwa: return "gatedfwa";
    case AttnMode::nsa: return "nsa";
  }
  return "?";
}

// Returns false when `s` names no mode.
inline bool parse_attn_mode(const std::string& s, AttnMode* out) {
  if (s == "full") { *out = AttnMode::full; return true; }
  if (s == "swa") { *out = AttnMode::swa; return true; }
  if (s == "gatedfwa") { *out = AttnMode::gatedfwa; return true; }
  if (s == "nsa") { *out = AttnMode::nsa; return true; }
  return false;
}

// The value among `all` whose name(value) is `s`; false when none is (the kernels' option names: path, schedule).
template <class E, size_t N>
bool parse_by_name(const std::string& s, const E (&all)[N], const char* (*name)(E), E* out) {
  for (E e : all)
    if (s == name(e)) {
      *out = e;
      return true;
    }
  return false;
}

// A mode the attention kernels compute (not nsa).
inline bool attention_kernel_mode(AttnMode m) { return m != AttnMode::nsa; }

// Keys visible to query i: [i - W + 1, i]. Full causal attention is W = T. (nsa: its sliding branch.)
inline int effective_window(AttnMode m, int window, int T) { return m == AttnMode::full ? T : window; }

// Head dims the CUDA attention kernels are built for (attention_{fwd,bwd}_hdim{64,128}.cu): the one
// rule behind the kernel's argument check, the cuda backend and the configuration check.
inline bool cuda_attention_head_dim_supported(int D) { return D == 64 || D == 128; }

}  // namespace gfwa
