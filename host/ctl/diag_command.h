// `waferctl diag -r 1|2|3 [--board N] [--json]`: runs diagnostics on one board or on every board
// in turn (one at a time, so the others keep serving while a level-2 or level-3 run drains its
// board), shows a progress bar on a terminal, prints each test's outcome (text, or one line of
// JSON) and exits 0 when every test passes, 5 when the worst warns, 6 when one fails.
#pragma once

#include <ostream>
#include <vector>

#include "host/client/wafer_client.h"
#include "host/wire/messages.h"

namespace wafer::host {

// Writes the reports as text (per board a header line, then a line per test with its code,
// message, action and first findings) or as one line of JSON ({"ok":true,"boards":[...]}).
void RenderDiagnostics(const std::vector<DiagnosticReport>& reports, bool as_json,
                       std::ostream& out);

// kExitOk, kExitHealthWarn or kExitHealthFail by the worst report.
int DiagnosticsExitCode(const std::vector<DiagnosticReport>& reports);

// Runs level `level` on board `board` (-1: every board the daemon has, one after another) and
// prints the reports to `out`; with `progress` (a terminal), a progress bar on `err`. Returns
// DiagnosticsExitCode, or kExitFailed (refused), kExitUnreachable, kExitProtocol.
int RunDiagCommand(int32_t board, uint32_t level, bool as_json, bool progress, AdminClient& admin,
                   int timeout_ms, std::ostream& out, std::ostream& err);

}  // namespace wafer::host
