// `waferctl jobs`: lists, shows and cancels the daemon's jobs over the admin socket, as a table
// and key-value lines for people or one line of JSON (--json) for scripts.
#pragma once

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "host/client/wafer_client.h"
#include "host/wire/messages.h"

namespace wafer::host {

// What `waferctl jobs ...` asks for.
struct JobsCommand {
  enum class Kind { kList, kShow, kCancel };
  Kind kind = Kind::kList;
  ListJobs list;        // kList: the filters and limit.
  uint64_t job_id = 0;  // kShow, kCancel.
};

// Parses the words after "jobs" (none or "list"; "show ID"; "cancel ID") and the flags
// (--tenant T, --state queued|running|finished|unfinished|all, --limit 1..10000; only for the
// list). False with `error` (one line, for a usage error) when they do not fit.
bool ParseJobsCommand(const std::vector<std::string>& words,
                      const std::map<std::string, std::string>& flags, JobsCommand* out,
                      std::string* error);

// Writes `list` as a table with a header, or as one line of JSON
// ({"ok":true,"jobs":[...],"total":N,"truncated":B}).
void RenderJobList(const JobList& list, bool as_json, std::ostream& out);

// Writes `detail` as key-value lines, or as one line of JSON. `now_unix_ms` dates the deadline
// ("in 5.0s", "passed").
void RenderJobDetail(const JobDetail& detail, bool as_json, int64_t now_unix_ms,
                     std::ostream& out);

// Prints why a request to the daemon got no answer of its kind (`s` and `error`, the client's
// last_error()) and returns the exit code: kExitFailed when the daemon refused (with --json,
// {"ok":false,"code":...,"detail":...}), kExitUnreachable or kExitProtocol otherwise
// ({"ok":false,"error":...,"detail":...}).
int RequestFailed(Status s, const std::string& error, bool as_json, std::ostream& out,
                  std::ostream& err);

// "850ms", "12.3s", "5m02s", "3h04m", "2d03h".
std::string FormatAge(uint64_t ms);

// Runs `command` against `admin` and prints the result to `out` (complaints to `err`, or as
// JSON to `out` with `as_json`). Returns waferctl's exit code (host/ctl/exit_codes.h):
// kExitOk; kExitFailed when the daemon refused (an unknown job, a cancel a viewer may not make,
// a filter out of range); kExitUnreachable when it did not answer; kExitProtocol for an
// undecodable reply.
int RunJobsCommand(const JobsCommand& command, bool as_json, AdminClient& admin, int timeout_ms,
                   std::ostream& out, std::ostream& err);

}  // namespace wafer::host
