// waferctl: the operator's CLI for waferd. `waferctl --help` lists the commands,
// `waferctl COMMAND --help` explains one; every command that talks to the daemon takes --json.
// Exit codes (stable, for scripts; host/ctl/exit_codes.h):
//   0  success
//   1  the daemon refused or the operation failed (rejection, load error, unknown model or job)
//   2  usage error (unknown command, bad option value, missing argument)
//   3  the daemon did not answer (not running, wrong endpoint, timeout)
//   4  protocol error (an undecodable reply)
//   5  health and diag: the worst board or test warns
//   6  health and diag: a board or test fails
#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

#include "host/ctl/ctl_commands.h"

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  const wafer::host::CtlIo io{std::cout, std::cerr, isatty(STDOUT_FILENO) != 0,
                              isatty(STDERR_FILENO) != 0, isatty(STDIN_FILENO) != 0};
  return wafer::host::RunWaferctl(args, io);
}
