// `waferctl health [BOARD] [--json]`: each board's health rules, its open incident and the
// latest closed ones, as text for people or one line of JSON for scripts, with an exit code a
// script can act on (0 every board passes, 5 the worst warns, 6 the worst fails).
#pragma once

#include <ostream>

#include "host/client/wafer_client.h"
#include "host/wire/messages.h"

namespace wafer::host {

// Writes `reply` as text (a header line per board, its open incident, then its rules) or as one
// line of JSON ({"ok":true,"boards":[...]}); `now_unix_ms` dates the incidents.
void RenderHealth(const HealthReply& reply, bool as_json, int64_t now_unix_ms, std::ostream& out);

// The exit code for `reply`: kExitOk, kExitHealthWarn or kExitHealthFail by the worst board.
int HealthExitCode(const HealthReply& reply);

// Asks `admin` for board `board`'s health (-1: every board) and prints it. Returns
// HealthExitCode, or kExitFailed (refused: a board not configured), kExitUnreachable,
// kExitProtocol.
int RunHealthCommand(int32_t board, bool as_json, AdminClient& admin, int timeout_ms,
                     std::ostream& out, std::ostream& err);

}  // namespace wafer::host
