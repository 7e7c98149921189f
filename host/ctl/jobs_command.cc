#include "host/ctl/jobs_command.h"

#include <cstdio>
#include <ctime>

#include <nlohmann/json.hpp>

#include "host/ctl/exit_codes.h"

namespace wafer::host {
namespace {

using json = nlohmann::json;

std::string Dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string Ms(int64_t ns) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.2f ms", static_cast<double>(ns) / 1e6);
  return buffer;
}

// "2024-05-01T12:00:00.123Z".
std::string UtcTime(int64_t unix_ms) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char date[32];
  std::strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof(out), "%s.%03dZ", date, static_cast<int>(unix_ms % 1000));
  return out;
}

json SummaryJson(const JobSummary& s) {
  return json{{"job_id", s.job_id},
              {"state", JobStateName(s.state)},
              {"tenant", s.tenant},
              {"model", s.model},
              {"class", s.priority_class},
              {"priority", s.priority},
              {"queue_position",
               s.state == JobState::kQueued ? json(s.queue_position) : json(nullptr)},
              {"age_ms", s.age_ms},
              {"tokens_generated", s.tokens_generated},
              {"finish_reason",
               s.state == JobState::kFinished ? json(s.finish_reason) : json(nullptr)}};
}

}  // namespace

std::string FormatAge(uint64_t ms) {
  char out[32];
  if (ms < 1000) {
    std::snprintf(out, sizeof(out), "%llums", static_cast<unsigned long long>(ms));
  } else if (ms < 60'000) {
    std::snprintf(out, sizeof(out), "%.1fs", static_cast<double>(ms) / 1000);
  } else if (ms < 3'600'000) {
    std::snprintf(out, sizeof(out), "%llum%02llus", static_cast<unsigned long long>(ms / 60'000),
                  static_cast<unsigned long long>(ms / 1000 % 60));
  } else if (ms < 86'400'000) {
    std::snprintf(out, sizeof(out), "%lluh%02llum",
                  static_cast<unsigned long long>(ms / 3'600'000),
                  static_cast<unsigned long long>(ms / 60'000 % 60));
  } else {
    std::snprintf(out, sizeof(out), "%llud%02lluh",
                  static_cast<unsigned long long>(ms / 86'400'000),
                  static_cast<unsigned long long>(ms / 3'600'000 % 24));
  }
  return out;
}

void RenderJobList(const JobList& list, bool as_json, std::ostream& out) {
  if (as_json) {
    json jobs = json::array();
    for (const JobSummary& s : list.jobs) jobs.push_back(SummaryJson(s));
    out << Dump(json{{"ok", true},
                     {"jobs", jobs},
                     {"total", list.total},
                     {"truncated", list.truncated}})
        << "\n";
    return;
  }
  if (list.jobs.empty()) {
    out << "no jobs\n";
    return;
  }
  char line[512];
  std::snprintf(line, sizeof(line), "%-20s %-8s %-12s %-14s %-11s %3s %5s %7s %6s  %s\n", "JOB",
                "STATE", "TENANT", "MODEL", "CLASS", "PRI", "POS", "AGE", "TOKENS", "FINISH");
  out << line;
  for (const JobSummary& s : list.jobs) {
    const std::string position =
        s.state == JobState::kQueued ? std::to_string(s.queue_position) : "-";
    const std::string finish = s.state == JobState::kFinished ? s.finish_reason : "-";
    std::snprintf(line, sizeof(line), "%-20llu %-8s %-12s %-14s %-11s %3u %5s %7s %6u  %s\n",
                  static_cast<unsigned long long>(s.job_id), JobStateName(s.state),
                  s.tenant.c_str(), s.model.c_str(), s.priority_class.c_str(), s.priority,
                  position.c_str(), FormatAge(s.age_ms).c_str(), s.tokens_generated,
                  finish.c_str());
    out << line;
  }
  if (list.truncated) {
    out << "showing " << list.jobs.size() << " of " << list.total
        << " matching jobs; --limit shows more (at most " << kMaxJobListLimit << ")\n";
  }
}

void RenderJobDetail(const JobDetail& d, bool as_json, int64_t now_unix_ms, std::ostream& out) {
  const JobSummary& s = d.summary;
  const bool finished = s.state == JobState::kFinished;
  if (as_json) {
    json j = SummaryJson(s);
    j["ok"] = true;
    j["prompt_tokens"] = d.prompt_tokens;
    j["max_tokens"] = d.max_tokens;
    j["accepted_unix_ms"] = d.accepted_unix_ms;
    j["deadline_unix_ms"] = d.deadline_unix_ms == 0 ? json(nullptr) : json(d.deadline_unix_ms);
    j["ttft_target_ms"] = d.ttft_target_ms == 0 ? json(nullptr) : json(d.ttft_target_ms);
    j["first_token"] = d.first_token;
    j["ttft_ms"] = d.first_token ? json(static_cast<double>(d.ttft_ns) / 1e6) : json(nullptr);
    j["waited_ms"] = static_cast<double>(d.ttft_ns) / 1e6;
    j["queued_ms"] = static_cast<double>(d.queued_ns) / 1e6;
    j["total_ms"] = static_cast<double>(d.total_ns) / 1e6;
    j["device_ms"] = static_cast<double>(d.device_ns) / 1e6;
    j["chunks"] = d.chunks;
    j["cancel_requested"] = d.cancel_requested;
    j["error"] = ErrorCodeName(d.error_code);
    j["detail"] = d.detail;
    out << Dump(j) << "\n";
    return;
  }
  auto row = [&out](const char* key, const std::string& value) {
    char label[16];
    std::snprintf(label, sizeof(label), "  %-11s ", key);
    out << label << value << "\n";
  };
  out << "job " << s.job_id << "\n";
  std::string state = JobStateName(s.state);
  if (s.state == JobState::kQueued) {
    state += " (position " + std::to_string(s.queue_position) + ")";
  }
  if (finished) state += " (" + s.finish_reason + ")";
  row("state", state);
  row("tenant", s.tenant.empty() ? "(none)" : s.tenant);
  row("model", s.model);
  row("class", s.priority_class + " (priority " + std::to_string(s.priority) + ")");
  row("accepted", UtcTime(d.accepted_unix_ms) + " (" + FormatAge(s.age_ms) + " ago)");
  row("prompt", std::to_string(d.prompt_tokens) + " tokens; max_tokens " +
                    std::to_string(d.max_tokens));
  row("generated",
      std::to_string(s.tokens_generated) + " tokens in " + std::to_string(d.chunks) + " chunks");
  std::string deadline = "none";
  if (d.deadline_unix_ms != 0) {
    const int64_t left = static_cast<int64_t>(d.deadline_unix_ms) - now_unix_ms;
    deadline = UtcTime(static_cast<int64_t>(d.deadline_unix_ms));
    if (!finished) {
      deadline += left > 0 ? " (in " + FormatAge(static_cast<uint64_t>(left)) + ")" : " (passed)";
    }
  }
  row("deadline", deadline);
  const std::string target =
      d.ttft_target_ms == 0 ? "" : " (target " + std::to_string(d.ttft_target_ms) + " ms)";
  if (d.first_token) {
    row("ttft", Ms(d.ttft_ns) + target);
  } else if (!finished) {
    row("ttft", "no token yet; waited " + Ms(d.ttft_ns) + target);
  } else {
    row("ttft", "ended without a token" + target);
  }
  row("queued", Ms(d.queued_ns));
  row("total", Ms(d.total_ns));
  row("device", Ms(d.device_ns));
  if (d.cancel_requested) row("cancel", "requested; ends when the Step it is in returns");
  if (finished && (d.error_code != ErrorCode::kNone || !d.detail.empty())) {
    row("error", std::string(ErrorCodeName(d.error_code)) +
                     (d.detail.empty() ? "" : ": " + d.detail));
  }
}

int RunJobsCommand(const JobsCommand& command, bool as_json, AdminClient& admin, int timeout_ms,
                   std::ostream& out, std::ostream& err) {
  switch (command.kind) {
    case JobsCommand::Kind::kList: {
      JobList list;
      if (HostStatus s = admin.ListJobs(command.list, &list, timeout_ms); !s.ok()) {
        return RequestFailed(s.error(), as_json, out, err);
      }
      RenderJobList(list, as_json, out);
      return kExitOk;
    }
    case JobsCommand::Kind::kShow: {
      JobDetail detail;
      if (HostStatus s = admin.ShowJob(command.job_id, &detail, timeout_ms); !s.ok()) {
        return RequestFailed(s.error(), as_json, out, err);
      }
      const int64_t now_ms = static_cast<int64_t>(std::time(nullptr)) * 1000;
      RenderJobDetail(detail, as_json, now_ms, out);
      return kExitOk;
    }
    case JobsCommand::Kind::kCancel: {
      OperationResult r;
      HostStatus s = admin.Operate(CancelJobRequest{0, command.job_id}, nullptr, &r, timeout_ms);
      if (!s.ok()) return RequestFailed(s.error(), as_json, out, err);
      const bool ok = r.code == ErrorCode::kNone;
      if (as_json) {
        out << Dump(json{{"ok", ok},
                         {"code", ErrorCodeName(r.code)},
                         {"detail", r.detail},
                         {"elapsed_s", r.elapsed_s}})
            << "\n";
      } else if (ok) {
        out << r.detail << "\n";
      } else {
        err << "waferctl: " << ErrorCodeName(r.code) << ": " << r.detail << "\n";
      }
      return ok ? kExitOk : kExitFailed;
    }
  }
  return kExitUsage;  // Not reached: every kind is handled above.
}

}  // namespace wafer::host
