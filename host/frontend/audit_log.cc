#include "host/frontend/audit_log.h"

#include <ctime>

#include "common/log/log.h"

namespace wafer::host {
namespace {

constexpr const char* kEvents[] = {"admin_action", "admin_denied", "operation_done",
                                   "auth_refused", "reload"};

// Quotes a field so that one line stays one record (quotes, backslashes and controls escaped).
std::string Quoted(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

AuditLog::AuditLog(const Clock& clock, telemetry::DaemonMetrics& metrics)
    : clock_(clock), metrics_(metrics) {
  for (const char* event : kEvents) metrics_.Audit(event);
}

AuditLog::~AuditLog() {
  if (file_ != nullptr) std::fclose(file_);
}

HostStatus AuditLog::Open(const std::string& path) {
  if (path.empty()) return HostOk();
  std::FILE* file = std::fopen(path.c_str(), "a");
  if (file == nullptr) {
    return Error{StatusCode::kNotFound, "cannot open the audit log " + path + " for appending"};
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (file_ != nullptr) std::fclose(file_);
  file_ = file;
  return HostOk();
}

void AuditLog::Record(const char* event, const std::string& who, const std::string& what,
                      const std::string& outcome) {
  const int64_t ms = clock_.UnixMillis();
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &utc);
  const std::string line = std::string(stamp) + "." + std::to_string(1000 + ms % 1000).substr(1) +
                           "Z event=" + event + " who=" + Quoted(who) + " what=" + Quoted(what) +
                           " outcome=" + Quoted(outcome) + "\n";
  metrics_.Audit(event).Increment();
  std::lock_guard<std::mutex> lock(mu_);
  if (file_ != nullptr) {
    std::fputs(line.c_str(), file_);
    std::fflush(file_);
  } else {
    // Without a file of its own the record is a log line (the record's own newline dropped).
    log::Info("audit", "{}", std::string_view(line).substr(0, line.size() - 1));
  }
}

void AuditLog::RecordRepeatable(const char* event, const std::string& who,
                                const std::string& what, const std::string& outcome) {
  const int64_t now = clock_.NowNanos();
  uint64_t left_out = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (repeats_.size() >= kMaxRepeatKeys) repeats_.clear();
    Repeats& r = repeats_[std::string(event) + '\0' + who + '\0' + what + '\0' + outcome];
    if (r.last_line_ns != 0 && now - r.last_line_ns < kRepeatPeriodNs) {
      ++r.left_out;
      metrics_.Audit(event).Increment();
      return;
    }
    left_out = r.left_out;
    r = Repeats{now, 0};
  }
  Record(event, who, what,
         left_out == 0 ? outcome
                       : outcome + " (and " + std::to_string(left_out) + " more since the last line)");
}

}  // namespace wafer::host
