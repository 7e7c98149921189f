#include "host/ctl/ctl_output.h"

#include <cstdarg>
#include <cstdio>

#include "host/ctl/exit_codes.h"

namespace wafer::host {

std::string Fmt(const char* format, ...) {
  char buffer[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buffer, sizeof(buffer), format, args);
  va_end(args);
  return buffer;
}
namespace {

using json = nlohmann::json;

// Splits AdminClient's "CODE: detail" (a refusal) into its parts.
void SplitRefusal(const std::string& error, std::string* code, std::string* detail) {
  const size_t colon = error.find(": ");
  const bool coded = colon != std::string::npos && colon > 0 &&
                     error.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ_") >= colon;
  *code = coded ? error.substr(0, colon) : "";
  *detail = coded ? error.substr(colon + 2) : error;
}

}  // namespace

std::string DumpJson(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

int RequestFailed(const Error& error, bool as_json, std::ostream& out, std::ostream& err) {
  if (error.code == StatusCode::kFailedPrecondition) {  // The daemon answered with a refusal.
    std::string code, detail;
    SplitRefusal(error.message, &code, &detail);
    if (as_json) {
      out << DumpJson(json{{"ok", false}, {"code", code}, {"detail", detail}}) << "\n";
    } else {
      err << "waferctl: " << error.message << "\n";
    }
    return kExitFailed;
  }
  if (as_json) {
    out << DumpJson(json{{"ok", false}, {"error", error.code_name()}, {"detail", error.message}})
        << "\n";
  } else if (error.code == StatusCode::kDeadlineExceeded) {
    err << "waferctl: " << error.message << "\n";  // The client's line names endpoint and wait.
  } else {
    err << "waferctl: " << error.code_name() << ": " << error.message << "\n";
  }
  return error.code == StatusCode::kDataLoss ? kExitProtocol : kExitUnreachable;
}

int ReportOperation(const HostStatus& s, const OperationResult& r, bool as_json,
                    std::ostream& out, std::ostream& err) {
  if (!s.ok()) return RequestFailed(s.error(), as_json, out, err);
  const bool ok = r.code == ErrorCode::kNone;
  if (as_json) {
    out << DumpJson(json{{"ok", ok}, {"code", ErrorCodeName(r.code)}, {"detail", r.detail},
                         {"elapsed_s", r.elapsed_s}})
        << "\n";
  } else if (ok) {
    char elapsed[32];
    std::snprintf(elapsed, sizeof(elapsed), " (%.2f s)", r.elapsed_s);
    out << r.detail << elapsed << "\n";
  } else {
    err << "waferctl: " << ErrorCodeName(r.code) << ": " << r.detail << "\n";
  }
  return ok ? kExitOk : kExitFailed;
}

}  // namespace wafer::host
