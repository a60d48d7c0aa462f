// One run per output folder. A trainer holds an exclusive flock(2) on DIR/run.lock for as long as
// it runs; the file names the holder ("pid 1234 host node7"), so a second start is refused with
// the holder's pid and host. The kernel drops the lock when the holder exits for any reason,
// kill -9 included. A clean exit empties the file, so a start that finds the lock free but the
// file naming someone knows that run ended without releasing it (killed, crashed) and says so.
// The file is never deleted: deleting it would let two starts lock two different files.
//
// Ranks: in a data-parallel launch only rank 0 takes the lock (every rank shares rank 0's folder
// and writes there only through rank 0's checkpoint protocol); a second launch into the folder
// is refused by its own rank 0. Shared file systems: flock works across hosts on NFS (Linux
// emulates it with NFS byte-range locks) and on Lustre mounted with -o flock; where locks are not
// supported, the start fails with an error that says so.
#pragma once
#include <stdexcept>
#include <string>

namespace gfwa {

class RunLockError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class RunLock {
 public:
  // Creates dir if needed and locks it; throws RunLockError "DIR is in use by pid P on host H ..."
  // when another process holds it, or naming the file and the reason when it cannot be locked.
  explicit RunLock(const std::string& dir);
  ~RunLock();  // empties the file, then releases the lock
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

  // "pid P on host H" of an earlier holder that ended without releasing the lock; "" if none.
  const std::string& stale_holder() const { return stale_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  std::string stale_;
};

}  // namespace gfwa
