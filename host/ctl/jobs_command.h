// `waferctl jobs`: lists, shows and cancels the daemon's jobs over the admin socket, as a table
// and key-value lines for people or one line of JSON (--json) for scripts.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "host/client/wafer_client.h"
#include "host/ctl/ctl_output.h"
#include "host/wire/messages.h"

namespace wafer::host {

// What `waferctl jobs ...` asks for.
struct JobsCommand {
  enum class Kind { kList, kShow, kCancel };
  Kind kind = Kind::kList;
  ListJobs list;        // kList: the filters and limit.
  uint64_t job_id = 0;  // kShow, kCancel.
};

// Writes `list` as a table with a header, or as one line of JSON
// ({"ok":true,"jobs":[...],"total":N,"truncated":B}).
void RenderJobList(const JobList& list, bool as_json, std::ostream& out);

// Writes `detail` as key-value lines, or as one line of JSON. `now_unix_ms` dates the deadline
// ("in 5.0s", "passed").
void RenderJobDetail(const JobDetail& detail, bool as_json, int64_t now_unix_ms,
                     std::ostream& out);

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
