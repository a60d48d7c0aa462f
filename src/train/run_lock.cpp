#include "train/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace gfwa {
namespace {

std::string this_host() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) return "?";
  return host;
}

// The holder's text: "pid P host H" -> "pid P on host H"; "" for an empty file.
std::string read_holder(int fd) {
  char buf[512];
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return "";
  std::string s(buf, size_t(n));
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  const size_t host = s.find(" host ");
  return host == std::string::npos ? s : s.substr(0, host) + " on" + s.substr(host);
}

}  // namespace

RunLock::RunLock(const std::string& dir) : path_(dir + "/run.lock") {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw RunLockError("cannot create " + dir + ": " + ec.message());
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd_ < 0) throw RunLockError("cannot open " + path_ + ": " + std::strerror(errno));
  int rc;
  do rc = ::flock(fd_, LOCK_EX | LOCK_NB); while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    const int err = errno;
    const std::string holder = read_holder(fd_);
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      throw RunLockError(dir + " is in use by " + (holder.empty() ? "another process" : holder) +
                         " (it holds " + path_ + "): one run per folder; wait for it to end, stop it, or give "
                         "another --out");
    throw RunLockError("cannot lock " + path_ + ": " + std::strerror(err) +
                       " (does this file system support flock? give an --out on one that does)");
  }
  stale_ = read_holder(fd_);
  const std::string me = "pid " + std::to_string(::getpid()) + " host " + this_host() + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) != ssize_t(me.size()) || ::fsync(fd_) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    throw RunLockError("cannot write " + path_ + ": " + std::strerror(err));
  }
}

RunLock::~RunLock() {
  if (fd_ < 0) return;
  if (::ftruncate(fd_, 0) == 0) ::fsync(fd_);
  ::close(fd_);  // releases the lock
}

}  // namespace gfwa
