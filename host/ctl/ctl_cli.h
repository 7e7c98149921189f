// waferctl's command line: every command, its arguments and typed options, its --help, and
// the bash completion generated from the same definitions. The one file that uses CLI11 (which
// throws): nothing of it leaves ctl_cli.cc but these functions.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "host/ctl/ctl_options.h"

namespace wafer::host {

// Parses `args` (the words after the program name) into `options`.
// Returns:
//   std::nullopt - `options` names a command to run.
//   kExitOk      - help was asked for and printed to `out` (`--help` anywhere, or a command
//                  group such as `jobs --help`).
//   kExitUsage   - the command line is wrong; one line that says what (an unknown command with
//                  the nearest ones, an option value out of range, a missing argument) and
//                  where to read more went to `err`.
std::optional<int> ParseCommandLine(const std::vector<std::string>& args, CtlOptions* options,
                                    std::ostream& out, std::ostream& err);

// The bash completion script for waferctl, generated from the parser: commands and their
// subcommands, every option, the values of options that take one of a fixed set, and files
// where an argument is a path. `source` it, or install it as
// /usr/share/bash-completion/completions/waferctl.
std::string BashCompletionScript();

// The names among `candidates` that `word` was probably meant to be: within edit distance 2
// (1 for words of 3 letters or fewer), or starting with `word`; nearest first, at most 3.
std::vector<std::string> SuggestCommands(const std::string& word,
                                         const std::vector<std::string>& candidates);

}  // namespace wafer::host
