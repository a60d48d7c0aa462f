// Whether a process id names a running process, for the temporary folders that writers name after
// their pid (checkpoint and tokenize staging): those of dead writers are stale and may go.
#pragma once
#include <signal.h>
#include <unistd.h>

#include <cerrno>

namespace gfwa {

// True for this process and for any live one, including those of other users (EPERM).
inline bool pid_alive(long pid) {
  if (pid <= 0) return false;
  if (pid == long(::getpid())) return true;
  return ::kill(pid_t(pid), 0) == 0 || errno == EPERM;
}

}  // namespace gfwa
