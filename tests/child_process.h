// A guard for a program that a test starts and may kill -9 at any moment (waferd, wafer-sim):
// whatever happens to the test, the process does not outlive the guard.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <string>
#include <vector>

namespace wafer::testing {

// One process at a time, started with SpawnProgram() (tests/daemon_harness.h). The destructor
// kills (SIGKILL) and reaps it by PID, also when the test fails; a guard can start a new process
// once the last one has ended. Start, Alive, Kill and WaitExit belong to one thread at a time;
// pid() may be read by any thread (a watchdog may kill by it).
class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() { Kill(); }

  // Starts `argv` with stdout and stderr in `log`, without waiting.
  // REQUIRES: no process of this guard is running (Kill() or an end seen by Alive()/WaitExit()).
  void Start(const std::vector<std::string>& argv, const std::string& log);
  // The running process's PID; <= 0 when none runs (or fork failed).
  pid_t pid() const { return pid_; }
  // False when no process was started, or it has ended by itself (then it is reaped, and
  // exit_status() says how it ended).
  bool Alive();
  // The waitpid() status of the process that Alive() or WaitExit() saw end.
  int exit_status() const { return exit_status_; }
  // SIGKILL, then reap. False when no process was running.
  bool Kill();
  // Waits up to `ms` for the process to end by itself; true (and reaped) if it did, or if none
  // was running.
  bool WaitExit(int ms);

 private:
  std::atomic<pid_t> pid_{-1};
  int exit_status_ = 0;
};

}  // namespace wafer::testing
