#include "host/ctl/jobs_tail.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "host/ctl/ctl_output.h"
#include "host/ctl/exit_codes.h"

namespace wafer::host {

int RunJobsTail(uint64_t job_id, uint64_t from_seq, bool as_json, AdminClient& admin,
                int timeout_ms, std::ostream& out, std::ostream& err) {
  using json = nlohmann::json;
  bool printed = false;
  JobState noted = JobState::kUnknown;
  JobTokens last;
  const uint32_t from = static_cast<uint32_t>(std::min<uint64_t>(from_seq, UINT32_MAX));
  HostStatus s = admin.TailJob(
      job_id, from,
      [&](const JobTokens& t) {
        last = t;
        if (t.finished) return;
        if (!t.tokens.empty()) {
          if (as_json) {
            out << DumpJson(json{{"event", "chunk"}, {"job_id", t.job_id}, {"seq", t.seq},
                                 {"tokens", t.tokens}, {"text", t.text}})
                << std::endl;
          } else if (!t.text.empty()) {
            out << t.text << std::flush;
            printed = true;
          } else {
            for (uint32_t id : t.tokens) out << id << ' ';
            out << std::flush;
            printed = true;
          }
        } else if (t.state == JobState::kQueued && noted != JobState::kQueued && !as_json) {
          err << "waferctl: job " << t.job_id << " is queued; waiting for it to run\n";
        }
        noted = t.state;
      },
      timeout_ms);
  if (!s.ok()) {
    if (printed) out << "\n";
    return RequestFailed(s.error(), as_json, out, err);
  }
  if (as_json) {
    out << DumpJson(json{{"event", "finished"}, {"job_id", last.job_id},
                         {"reason", last.finish_reason},
                         {"tokens_generated", last.tokens_generated}})
        << "\n";
  } else {
    if (printed) out << "\n";
    err << "[job " << last.job_id << ": " << last.finish_reason << ", " << last.tokens_generated
        << " tokens]\n";
  }
  return kExitOk;
}

}  // namespace wafer::host
