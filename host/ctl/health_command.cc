#include "host/ctl/health_command.h"

#include <cstdio>
#include <ctime>

#include <nlohmann/json.hpp>

#include "host/ctl/exit_codes.h"
#include "host/ctl/jobs_command.h"

namespace wafer::host {
namespace {

using nlohmann::json;

const char* LevelName(WireHealthLevel level) {
  switch (level) {
    case WireHealthLevel::kPass: return "PASS";
    case WireHealthLevel::kWarn: return "WARN";
    case WireHealthLevel::kFail: return "FAIL";
  }
  return "FAIL";
}

std::string UtcText(int64_t unix_ms) {
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

json IncidentJson(const HealthIncidentInfo& i) {
  return json{{"id", i.id},
              {"board", i.board},
              {"code", i.code},
              {"code_name", i.code_name},
              {"message", i.message},
              {"state", i.state},
              {"opened_unix_ms", i.opened_unix_ms},
              {"closed_unix_ms", i.closed_unix_ms},
              {"recoveries", i.recoveries},
              {"last_action", i.last_action},
              {"action", i.action}};
}

void IncidentText(const HealthIncidentInfo& i, int64_t now_unix_ms, std::ostream& out) {
  out << "  incident " << i.id << ": " << i.code << " " << i.code_name << ", " << i.state;
  if (i.closed_unix_ms == 0) {
    out << " since " << UtcText(i.opened_unix_ms) << " ("
        << FormatAge(static_cast<uint64_t>(std::max<int64_t>(0, now_unix_ms - i.opened_unix_ms)))
        << " ago)";
  } else {
    out << " " << UtcText(i.closed_unix_ms) << " (open "
        << FormatAge(static_cast<uint64_t>(std::max<int64_t>(0, i.closed_unix_ms -
                                                                  i.opened_unix_ms)))
        << ")";
  }
  out << ", resets " << i.recoveries << "\n";
  out << "    " << i.message << "\n";
  out << "    done: " << i.last_action << "\n";
  if (i.closed_unix_ms == 0) out << "    to do: " << i.action << "\n";
}

}  // namespace

int HealthExitCode(const HealthReply& reply) {
  WireHealthLevel worst = WireHealthLevel::kPass;
  for (const BoardHealthInfo& b : reply.boards) worst = std::max(worst, b.level);
  switch (worst) {
    case WireHealthLevel::kPass: return kExitOk;
    case WireHealthLevel::kWarn: return kExitHealthWarn;
    case WireHealthLevel::kFail: return kExitHealthFail;
  }
  return kExitHealthFail;
}

void RenderHealth(const HealthReply& reply, bool as_json, int64_t now_unix_ms,
                  std::ostream& out) {
  if (as_json) {
    json boards = json::array();
    for (const BoardHealthInfo& b : reply.boards) {
      json rules = json::array();
      for (const HealthRuleState& r : b.rules) {
        rules.push_back({{"rule", r.rule},
                         {"level", LevelName(r.level)},
                         {"code", r.code},
                         {"code_name", r.code_name},
                         {"message", r.message},
                         {"action", r.action}});
      }
      json closed = json::array();
      for (const HealthIncidentInfo& i : b.closed) closed.push_back(IncidentJson(i));
      boards.push_back({{"board", b.board},
                        {"level", LevelName(b.level)},
                        {"evaluated", b.evaluated},
                        {"drain", b.drain},
                        {"rules", rules},
                        {"incident", b.open ? IncidentJson(*b.open) : json(nullptr)},
                        {"closed", closed}});
    }
    out << json{{"ok", true}, {"boards", boards}}.dump(-1, ' ', false,
                                                       json::error_handler_t::replace)
        << "\n";
    return;
  }
  for (const BoardHealthInfo& b : reply.boards) {
    out << "board " << b.board << ": " << LevelName(b.level)
        << (b.evaluated ? "" : " (no readings yet)")
        << (b.drain.empty() ? "" : ", drained: " + b.drain) << "\n";
    if (b.open) IncidentText(*b.open, now_unix_ms, out);
    for (const HealthRuleState& r : b.rules) {
      char line[96];
      std::snprintf(line, sizeof line, "  %-18s %-4s %5s  ", r.rule.c_str(), LevelName(r.level),
                    r.code == 0 ? "" : std::to_string(r.code).c_str());
      out << line << r.message << "\n";
    }
    if (!b.closed.empty()) {
      out << "  closed incidents (newest first):\n";
      for (const HealthIncidentInfo& i : b.closed) IncidentText(i, now_unix_ms, out);
    }
  }
}

int RunHealthCommand(int32_t board, bool as_json, AdminClient& admin, int timeout_ms,
                     std::ostream& out, std::ostream& err) {
  HealthReply reply;
  const HostStatus s = admin.QueryHealth(board, &reply, timeout_ms);
  if (!s.ok()) {
    const int code = s.code() == StatusCode::kFailedPrecondition ? kExitFailed
                     : s.code() == StatusCode::kDataLoss          ? kExitProtocol
                                                                  : kExitUnreachable;
    if (as_json) {
      out << json{{"ok", false}, {"error", s.error().code_name()}, {"detail", s.error().message}}
                 .dump(-1, ' ', false, json::error_handler_t::replace)
          << "\n";
    } else {
      err << "waferctl: " << s.error().ToString() << "\n";
    }
    return code;
  }
  const auto now_ms = static_cast<int64_t>(std::time(nullptr)) * 1000;
  RenderHealth(reply, as_json, now_ms, out);
  return HealthExitCode(reply);
}

}  // namespace wafer::host
