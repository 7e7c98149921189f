#include "host/boards/board_diagnostics.h"

#include <algorithm>
#include <cstdio>

namespace wafer::host {
namespace {

std::string Format(const char* format, auto... args) {
  char buffer[256];
  std::snprintf(buffer, sizeof buffer, format, args...);
  return buffer;
}

double Seconds(int64_t ns) { return static_cast<double>(ns) / 1e9; }

DiagTestResult Make(const char* name, uint16_t code, std::string message) {
  DiagTestResult r;
  r.name = name;
  r.code = code;
  r.outcome = code == 0 ? DiagOutcome::kPass : FindDiagCode(code)->outcome;
  r.message = std::move(message);
  return r;
}

DiagTestResult Skipped(const char* name, const std::string& why) {
  DiagTestResult r;
  r.name = name;
  r.outcome = DiagOutcome::kSkip;
  r.message = why;
  return r;
}

// Runs `test` of the firmware over `total` rows (regions) in bands, with progress; sums what each
// band found. A band that fails as a call ends the test FAIL with `call_failed_code`.
DiagTestResult RunFirmwareTest(BoardLink& link, const char* name, BoardDiagTest test,
                               uint32_t total, uint16_t call_failed_code,
                               const std::function<void(const DiagProgress&)>& on_progress) {
  DiagTestResult r;
  r.name = name;
  const uint32_t band = std::max<uint32_t>(1, (total + kDiagBands - 1) / kDiagBands);
  for (uint32_t first = 0; first < total; first += band) {
    const uint32_t rows = std::min(band, total - first);
    auto reply = link.RunDiagnostic(test, first, rows);
    if (!reply.ok()) {
      DiagTestResult failed = Make(name, call_failed_code,
                                   Format("the board refused or did not answer rows %u-%u: %s",
                                          first, first + rows - 1, reply.error().message.c_str()));
      failed.units_tested = r.units_tested;
      return failed;
    }
    r.units_tested += reply->units_tested;
    r.failures += reply->failures;
    r.device_ns += reply->device_ns;
    for (const BoardDiagFinding& f : reply->findings) {
      if (f.retired) ++r.retired;
      if (f.retired && !f.remapped) ++r.without_spare;
      if (r.findings.size() < kMaxFindings) r.findings.push_back(f);
    }
    if (on_progress) on_progress(DiagProgress{name, first + rows, total});
  }
  return r;
}

// Names the test's outcome after the firmware ran it: `report_code` when the test only reports
// what it found, else (a sweep that retires) `retired_code` when every failing unit was retired
// onto a spare, and `lost_code` when some PE was retired with no spare left or some failure was
// not retired: a PE already out of service with no spare (the firmware does not retire it again),
// or one past the 64 findings a band reports (a further run retires it).
void Judge(DiagTestResult& r, const char* unit, uint16_t report_code, uint16_t retired_code,
           uint16_t lost_code) {
  if (r.code != 0) return;  // The call itself failed.
  if (r.failures == 0) {
    r.message = Format("%llu %s tested, none failing", static_cast<unsigned long long>(r.units_tested),
                       unit);
    return;
  }
  uint16_t code = report_code;
  const uint64_t not_retired = r.failures > r.retired ? r.failures - r.retired : 0;
  if (retired_code != 0) {
    code = r.without_spare > 0 || not_retired > 0 ? lost_code : retired_code;
  }
  r.code = code;
  r.outcome = FindDiagCode(code)->outcome;
  r.message = Format("%llu of %llu %s failing", static_cast<unsigned long long>(r.failures),
                     static_cast<unsigned long long>(r.units_tested), unit);
  if (!r.findings.empty()) {
    const BoardDiagFinding& f = r.findings.front();
    r.message += r.name == "known_answer"
                     ? Format(" (first: region %u)", f.region)
                     : Format(" (first: row %u, PE %u, region %u)", f.row, f.pe, f.region);
  }
  if (retired_code != 0) {
    r.message += Format("; %llu retired, %llu of them without a spare; %llu not retired",
                        static_cast<unsigned long long>(r.retired),
                        static_cast<unsigned long long>(r.without_spare),
                        static_cast<unsigned long long>(not_retired));
  }
}

DiagTestResult SensorsTest(const BoardTelemetry& t, const DiagLimits& limits) {
  float hottest = 0;
  size_t region = 0;
  for (size_t i = 0; i < t.region_temp_c.size(); ++i) {
    if (t.region_temp_c[i] > hottest) {
      hottest = t.region_temp_c[i];
      region = i;
    }
  }
  const std::string readings =
      Format("hottest region %zu at %.1f C, %.0f W, coolant %.1f->%.1f C at %.2f kg/s", region,
             hottest, t.power_w, t.coolant_in_c, t.coolant_out_c, t.coolant_flow_kg_s);
  if (t.thermal_trip) return Make("sensors", 211, "thermal trip: clocks halted; " + readings);
  if (hottest >= limits.temperature_critical_c) {
    return Make("sensors", 211,
                Format("at or above the critical %.0f C: ", limits.temperature_critical_c) + readings);
  }
  if (t.coolant_flow_kg_s <= 0) return Make("sensors", 212, "no coolant flow; " + readings);
  if (hottest >= limits.temperature_warn_c) {
    return Make("sensors", 213,
                Format("at or above the warning %.0f C: ", limits.temperature_warn_c) + readings);
  }
  if (t.throttled) {
    return Make("sensors", 214,
                Format("a region runs below its nominal clock (power cap %.0f W): ", t.power_cap_w) +
                    readings);
  }
  return Make("sensors", 0, readings);
}

}  // namespace

const char* DiagOutcomeName(DiagOutcome outcome) {
  switch (outcome) {
    case DiagOutcome::kPass: return "PASS";
    case DiagOutcome::kWarn: return "WARN";
    case DiagOutcome::kFail: return "FAIL";
    case DiagOutcome::kSkip: return "SKIP";
  }
  return "UNKNOWN";
}

const std::vector<DiagCode>& DiagCatalog() {
  using enum DiagOutcome;
  static const std::vector<DiagCode> kCatalog = {
      {201, "DIAG_LINK_DOWN", "link", kFail,
       "the board does not answer on its link: check the board's process or cabling, then reset"},
      {202, "DIAG_FIRMWARE_NOT_READY", "firmware", kFail,
       "the firmware is not in its ready state: read `waferctl logs`, reset the board"},
      {211, "DIAG_TEMPERATURE_CRITICAL", "sensors", kFail,
       "a region is at its critical temperature or tripped: check cooling before a reset"},
      {212, "DIAG_NO_COOLANT_FLOW", "sensors", kFail, "no coolant flow: check the cooling loop"},
      {213, "DIAG_TEMPERATURE_HIGH", "sensors", kWarn,
       "a region runs hot: check coolant temperature and flow"},
      {214, "DIAG_THROTTLED", "sensors", kWarn,
       "the clock is below nominal (temperature or power cap): check power and cooling"},
      {221, "DIAG_HEARTBEAT_LOST", "heartbeat", kFail,
       "the firmware did not answer its heartbeat: reset the board"},
      {231, "DIAG_SRAM_UNUSED_FAILING", "sram_unused", kFail,
       "PEs no model uses have failing SRAM cells: run level 3 to retire them into the defect map"},
      {232, "DIAG_KNOWN_ANSWER_MISMATCH", "known_answer", kFail,
       "a die region computed a wrong answer: run level 3; replace the board if it persists"},
      {233, "DIAG_TEST_REFUSED", "", kFail,
       "the firmware refused or did not finish a test: read `waferctl logs`, reset and retry"},
      {241, "DIAG_SRAM_RETIRED", "sram_sweep", kWarn,
       "failing PEs were retired onto spares: capacity is intact; watch the spares left"},
      {242, "DIAG_SRAM_CAPACITY_LOST", "sram_sweep", kFail,
       "failing PEs had no spare left in their row, or were already out of service: the board "
       "lost capacity; plan a replacement (a failure past a run's 64 per band: run level 3 "
       "again)"},
      {243, "DIAG_LINK_RETIRED", "fabric_links", kWarn,
       "PEs beside failing fabric links were retired onto spares: watch the spares left"},
      {244, "DIAG_LINK_CAPACITY_LOST", "fabric_links", kFail,
       "PEs beside failing fabric links had no spare left, or were already out of service: the "
       "board lost capacity (a failure past a run's 64 per band: run level 3 again)"},
  };
  return kCatalog;
}

const DiagCode* FindDiagCode(uint16_t code) {
  for (const DiagCode& c : DiagCatalog()) {
    if (c.code == code) return &c;
  }
  return nullptr;
}

DiagReport RunBoardDiagnostics(BoardLink& link, const Clock& clock, uint32_t level,
                               const DiagLimits& limits,
                               const std::function<void(const DiagProgress&)>& on_progress) {
  DiagReport report;
  report.level = level;
  const int64_t start = clock.NowNanos();
  auto timed = [&](auto&& run) {
    const int64_t t0 = clock.NowNanos();
    DiagTestResult r = run();
    r.elapsed_s = Seconds(clock.NowNanos() - t0);
    report.tests.push_back(std::move(r));
  };

  // Level 1.
  BoardIdentity identity;
  bool ready = false;
  timed([&] {
    const int64_t t0 = clock.NowNanos();
    auto id = link.Identify();
    if (!id.ok()) return Make("link", 201, "Identify: " + id.error().message);
    identity = *id;
    return Make("link", 0,
                Format("board %s (%s) answered Identify in %.1f ms", identity.board_id.c_str(),
                       identity.preset.c_str(), Seconds(clock.NowNanos() - t0) * 1e3));
  });
  const bool linked = report.tests.back().outcome == DiagOutcome::kPass;
  timed([&] {
    if (!linked) return Skipped("firmware", "no link");
    const std::string what =
        Format("%s in slot %u, %u slots", identity.firmware_version.c_str(),
               identity.active_firmware_slot, identity.max_slots);
    if (identity.state != BoardBootState::kReady) {
      return Make("firmware", 202,
                  what + ", boot state " + BoardBootStateName(identity.state));
    }
    ready = true;
    return Make("firmware", 0, what + ", ready");
  });
  uint32_t regions = 0;  // Die regions: one temperature each.
  timed([&] {
    if (!linked) return Skipped("sensors", "no link");
    auto t = link.ReadTelemetry();
    if (!t.ok()) return Make("sensors", 201, "ReadTelemetry: " + t.error().message);
    regions = static_cast<uint32_t>(t->region_temp_c.size());
    return SensorsTest(*t, limits);
  });
  timed([&] {
    if (!linked) return Skipped("heartbeat", "no link");
    const int64_t t0 = clock.NowNanos();
    if (HostStatus s = link.Heartbeat(); !s.ok()) {
      return Make("heartbeat", 221, s.error().message);
    }
    return Make("heartbeat", 0,
                Format("answered in %.2f ms", Seconds(clock.NowNanos() - t0) * 1e3));
  });

  const uint32_t rows = identity.fabric_height;
  auto firmware_test = [&](const char* name, BoardDiagTest test, uint32_t total, const char* unit,
                           uint16_t report_code, uint16_t retired_code, uint16_t lost_code) {
    timed([&] {
      if (!ready) return Skipped(name, "the board is not ready");
      DiagTestResult r = RunFirmwareTest(link, name, test, total, 233, on_progress);
      Judge(r, unit, report_code, retired_code, lost_code);
      report.pes_retired += r.retired;
      return r;
    });
  };
  if (level == 2) {
    firmware_test("sram_unused", BoardDiagTest::kSramUnused, rows, "unused PEs", 231, 0, 0);
  }
  if (level >= 3) {
    // The sweep covers every PE, the unused ones too, and retires what it finds; the known answer
    // then checks the board as it serves from now on.
    firmware_test("sram_sweep", BoardDiagTest::kSramAll, rows, "PEs", 0, 241, 242);
    firmware_test("fabric_links", BoardDiagTest::kFabricLinks, rows, "links", 0, 243, 244);
  }
  if (level >= 2) {
    firmware_test("known_answer", BoardDiagTest::kKnownAnswer, regions, "die regions", 232, 0, 0);
  }
  for (const DiagTestResult& t : report.tests) {
    if (t.outcome != DiagOutcome::kSkip && t.outcome > report.outcome) report.outcome = t.outcome;
  }
  report.elapsed_s = Seconds(clock.NowNanos() - start);
  return report;
}

}  // namespace wafer::host
