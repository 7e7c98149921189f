#include "tests/child_process.h"

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <thread>

#include "tests/daemon_harness.h"

namespace wafer::testing {

void ChildProcess::Start(const std::vector<std::string>& argv, const std::string& log) {
  pid_ = SpawnProgram(argv, log);
}

bool ChildProcess::Alive() {
  const pid_t pid = pid_;
  if (pid <= 0) return false;
  if (waitpid(pid, &exit_status_, WNOHANG) != pid) return true;
  pid_ = -1;
  return false;
}

bool ChildProcess::Kill() {
  const pid_t pid = pid_.exchange(-1);
  if (pid <= 0) return false;
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return true;
}

bool ChildProcess::WaitExit(int ms) {
  const pid_t pid = pid_;
  if (pid <= 0) return true;
  for (int i = 0; i < ms / 10; ++i) {
    if (waitpid(pid, &exit_status_, WNOHANG) == pid) {
      pid_ = -1;
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace wafer::testing
