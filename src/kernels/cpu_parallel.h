// Shared OpenMP threshold of the CPU references: a parallel region costs microseconds (far more
// when cores are shared), so loops with less work than this run on the calling thread. Results do
// not depend on it: every reduction has a fixed order.
#pragma once

namespace gfwa::cpu {

constexpr long kOmpMinWork = 1L << 15;  // scalar operations

}  // namespace gfwa::cpu
