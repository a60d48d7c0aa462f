// Shared OpenMP threshold of the CPU references: a parallel region costs microseconds on idle
// cores but milliseconds when the cores are shared (a preempted thread stalls the barrier), so
// loops with less work than ~0.3 ms run on the calling thread. Results do not depend on it: every
// reduction has a fixed order.
#pragma once

namespace gfwa::cpu {

constexpr long kOmpMinWork = 1L << 20;  // scalar operations

}  // namespace gfwa::cpu
