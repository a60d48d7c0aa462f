#include "dist/socket_io.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "dist/dist_error.h"

namespace gfwa::dist {
namespace {

int ms_until(Clock::time_point deadline) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return int(std::clamp<long long>(ms, 0, 1 << 30));
}

// true when fd is ready for `events` before the deadline
bool wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, ms_until(deadline));
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return false;
  }
}

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL, 0) | O_NONBLOCK); }

}  // namespace

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

Fd listen_any(int port, int backlog) {
  Fd fd(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int one = 1, zero = 0;
  if (fd) {
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_any;
    a.sin6_port = htons(uint16_t(port));
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fd = Fd();
  }
  if (!fd) {  // no IPv6 on this host
    fd = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) throw DistError(std::string("cannot create a socket: ") + std::strerror(errno));
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    a.sin_port = htons(uint16_t(port));
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw DistError("cannot listen on port " + std::to_string(port) + ": " + std::strerror(errno) +
                      " (another run on this node? set MASTER_PORT)");
  }
  if (::listen(fd.get(), backlog) != 0)
    throw DistError("cannot listen on port " + std::to_string(port) + ": " + std::strerror(errno));
  set_nonblocking(fd.get());
  return fd;
}

int bound_port(const Fd& fd) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&a)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&a)->sin_port);
}

Fd try_connect(const std::string& host, int port, Clock::time_point deadline, std::string* why) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc == EAI_AGAIN) {  // DNS not ready yet: retry like a refused connection
    *why = ::gai_strerror(rc);
    return Fd();
  }
  if (rc != 0) throw DistError("cannot resolve MASTER_ADDR '" + host + "': " + ::gai_strerror(rc));
  Fd out;
  for (addrinfo* ai = res; ai && !out; ai = ai->ai_next) {
    Fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd) continue;
    set_nonblocking(fd.get());
    int err = 0;
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        err = ETIMEDOUT;
        if (wait_for(fd.get(), POLLOUT, deadline)) {
          socklen_t len = sizeof err;
          ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        }
      }
    }
    if (err == 0)
      out = std::move(fd);
    else
      *why = std::strerror(err);
  }
  ::freeaddrinfo(res);
  return out;
}

Fd accept_before(const Fd& listener, Clock::time_point deadline) {
  while (wait_for(listener.get(), POLLIN, deadline)) {
    Fd c(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (c) return c;
    // EAGAIN: the peer gave up between poll and accept; anything else: try again until the deadline
  }
  return Fd();
}

Io send_all(const Fd& fd, const void* data, size_t n, Clock::time_point deadline) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::send(fd.get(), p, n, MSG_NOSIGNAL);
    if (w > 0) {
      p += w;
      n -= size_t(w);
    } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!wait_for(fd.get(), POLLOUT, deadline)) return Io::timeout;
    } else {
      return Io::closed;
    }
  }
  return Io::ok;
}

Io recv_all(const Fd& fd, void* data, size_t n, Clock::time_point deadline) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t r = ::recv(fd.get(), p, n, 0);
    if (r > 0) {
      p += r;
      n -= size_t(r);
    } else if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!wait_for(fd.get(), POLLIN, deadline)) return Io::timeout;
    } else {
      return Io::closed;
    }
  }
  return Io::ok;
}

}  // namespace gfwa::dist
