// Diagnostics of one board (`waferctl diag`), in three levels like DCGM's run levels:
//   1 (seconds; the board keeps serving): the link answers, the firmware is ready (its version
//     and slot), the sensors are in range, the firmware's heartbeat comes back.
//   2 (the board drained first): level 1, then the firmware's March pattern test of the SRAM of
//     every PE no model uses, and its known-answer kernel on every die region.
//   3 (the board drained first): level 1, the full sweep of every PE's SRAM (transparent: the
//     models' data stays; it covers the unused PEs too) and every fabric link, row band by row
//     band with progress, then the known-answer kernel. PEs the sweep finds failing are retired
//     by the firmware into the board's defect map and replaced by spares, so the known answer
//     checks the board as it will serve; a model that had data on a retired PE is repaired
//     before its next step (the fault-report path).
// Each test ends PASS, WARN, FAIL or SKIP with a code from a small catalog (2xx; health's rules
// are 1xx). The drain is the caller's (the admin front end's); this runs the tests.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "host/board/board_link.h"

namespace wafer::host {

enum class DiagOutcome : uint8_t { kPass = 0, kWarn = 1, kFail = 2, kSkip = 3 };
const char* DiagOutcomeName(DiagOutcome outcome);  // "PASS", "WARN", "FAIL", "SKIP"

// One entry of the catalog: what a test's WARN or FAIL means and what to do about it.
struct DiagCode {
  uint16_t code = 0;
  const char* name = "";
  const char* test = "";
  DiagOutcome outcome = DiagOutcome::kPass;
  const char* action = "";
};
// Every code, by number (the README prints the same table).
const std::vector<DiagCode>& DiagCatalog();
// The catalog entry of `code`; nullptr for an unknown one.
const DiagCode* FindDiagCode(uint16_t code);

struct DiagTestResult {
  std::string name;  // "link", "firmware", "sensors", "heartbeat", "sram_unused", ...
  DiagOutcome outcome = DiagOutcome::kPass;
  uint16_t code = 0;  // DiagCatalog; 0 for PASS and SKIP.
  std::string message;
  uint64_t units_tested = 0;  // PEs, links or regions (the firmware's tests).
  uint64_t failures = 0;
  std::vector<BoardDiagFinding> findings;  // The first ones, at most kMaxFindings.
  uint64_t retired = 0;                    // PEs the test retired (level 3).
  uint64_t without_spare = 0;              // Of those, PEs no spare replaced (capacity lost).
  double elapsed_s = 0;
  int64_t device_ns = 0;  // Modeled time on the wafer (the firmware's tests).
};

struct DiagReport {
  uint32_t level = 1;
  DiagOutcome outcome = DiagOutcome::kPass;  // The worst test's (SKIP counts as PASS).
  std::vector<DiagTestResult> tests;         // In the order they ran.
  uint64_t pes_retired = 0;
  double elapsed_s = 0;
};

// Sensor limits the sensors test checks (health's temperature thresholds).
struct DiagLimits {
  float temperature_warn_c = 85;
  float temperature_critical_c = 100;
};

struct DiagProgress {
  std::string test;
  uint64_t done = 0;   // Rows (or regions) tested so far.
  uint64_t total = 0;
};

inline constexpr size_t kMaxFindings = 64;
// The sweeps go row band by row band: about this many bands per test, for progress.
inline constexpr uint32_t kDiagBands = 32;

// The tests of `level` (1, 2 or 3) in order on `link`. Calls `on_progress` after each band of the firmware's
// tests. Never fails as a call: a test that cannot run is FAIL (link, firmware) and the tests
// that needed it are SKIP.
DiagReport RunBoardDiagnostics(BoardLink& link, const Clock& clock, uint32_t level,
                               const DiagLimits& limits,
                               const std::function<void(const DiagProgress&)>& on_progress);

}  // namespace wafer::host
