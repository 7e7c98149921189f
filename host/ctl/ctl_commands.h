// waferctl as a function: parses the command line (ctl_cli.h) and runs the command against the
// daemon's admin or job socket, printing to the given streams. waferctl_main.cc calls it with
// the process's arguments and terminal; tests call it with string streams.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "host/ctl/ctl_options.h"

namespace wafer::host {

// Where a command prints, and what it may assume of the terminal.
struct CtlIo {
  std::ostream& out;
  std::ostream& err;
  bool out_tty = false;    // stdout is a terminal (board show's colours).
  bool err_tty = false;    // stderr is a terminal (progress bars redraw in place).
  bool stdin_tty = false;  // stdin is a terminal (top reads keys from it).
};

// Runs waferctl with `args` (the words after the program name). Returns its exit code
// (host/ctl/exit_codes.h).
int RunWaferctl(const std::vector<std::string>& args, const CtlIo& io);

// Runs the command `options` names. Same exit codes.
int RunCommand(const CtlOptions& options, const CtlIo& io);

}  // namespace wafer::host
