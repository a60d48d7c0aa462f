// How much memory this process may still take on the host, for the cpu backend's memory plan.
#pragma once
#include <cstdint>

namespace gfwa {

// MemAvailable of /proc/meminfo, capped by the cgroup (v2) limit less what the cgroup already
// uses; the physical memory when /proc/meminfo cannot be read.
double host_memory_available_bytes();

}  // namespace gfwa
