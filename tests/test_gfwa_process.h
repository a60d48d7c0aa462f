// Runs the gfwa binary of this build from a test: arguments, stdout/stderr files, exit status.
#pragma once
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace gfwa::testing_process {

inline const std::string kGfwa = std::string(GFWA_BINARY_DIR) + "/gfwa";

// Starts gfwa with args; stdout goes to log, stderr too unless err names another file. Two OpenMP
// threads, waiting passively, so the threaded code is what resumes bit-identically, without
// spinning on a loaded machine. `env`: more variables, "NAME=VALUE".
inline pid_t spawn(const std::vector<std::string>& args, const std::string& log, const std::string& err = "",
                   const std::vector<std::string>& env = {}) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(err.empty() ? fd : ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 2);
    ::setenv("OMP_NUM_THREADS", "2", 1);
    ::setenv("OMP_WAIT_POLICY", "passive", 1);
    for (const auto& kv : env) ::putenv(const_cast<char*>(kv.c_str()));
    std::vector<char*> argv{const_cast<char*>(kGfwa.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(kGfwa.c_str(), argv.data());
    ::_exit(127);
  }
  return pid;
}

inline int exit_status(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + WTERMSIG(status);
}

inline int run_gfwa(const std::vector<std::string>& args, const std::string& log, const std::string& err = "",
                    const std::vector<std::string>& env = {}) {
  return exit_status(spawn(args, log, err, env));
}

}  // namespace gfwa::testing_process
