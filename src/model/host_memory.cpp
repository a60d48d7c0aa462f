#include "model/host_memory.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>

namespace gfwa {
namespace {

// The first number in a file ("max" and unreadable files: -1).
double number_in_file(const char* path) {
  std::ifstream f(path);
  double v = -1;
  if (!(f >> v)) return -1;
  return v;
}

double mem_available() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  double kib = 0;
  std::string unit;
  while (f >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024;
  return double(::sysconf(_SC_PHYS_PAGES)) * double(::sysconf(_SC_PAGE_SIZE));
}

}  // namespace

double host_memory_available_bytes() {
  double avail = mem_available();
  const double limit = number_in_file("/sys/fs/cgroup/memory.max");
  if (limit > 0) avail = std::min(avail, std::max(0.0, limit - std::max(0.0, number_in_file("/sys/fs/cgroup/memory.current"))));
  return avail;
}

}  // namespace gfwa
