// Blocking-free TCP helpers for the id exchange: every call takes a deadline, none can hang.
#pragma once
#include <chrono>
#include <cstddef>
#include <string>

namespace gfwa::dist {

using Clock = std::chrono::steady_clock;

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() {
    const int f = fd_;
    fd_ = -1;
    return f;
  }

 private:
  int fd_ = -1;
};

// Non-blocking listening socket on every local address (IPv6 dual-stack when available); port 0
// picks a free one. Throws DistError naming the port.
Fd listen_any(int port, int backlog);
int bound_port(const Fd& fd);

// One attempt at every address of host:port. Returns an empty Fd when nothing answered yet (the
// reason in *why); throws DistError when the host name cannot be resolved at all.
Fd try_connect(const std::string& host, int port, Clock::time_point deadline, std::string* why);

// Accepted connection, or an empty Fd when none is pending before the deadline.
Fd accept_before(const Fd& listener, Clock::time_point deadline);

enum class Io { ok, timeout, closed };
Io send_all(const Fd& fd, const void* data, size_t n, Clock::time_point deadline);
Io recv_all(const Fd& fd, void* data, size_t n, Clock::time_point deadline);

}  // namespace gfwa::dist
