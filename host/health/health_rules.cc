#include "host/health/health_rules.h"

#include <cstdio>

namespace wafer::host {
namespace {

std::string Format(const char* format, double a, double b) {
  char buf[160];
  std::snprintf(buf, sizeof buf, format, a, b);
  return buf;
}

RuleResult Result(HealthRule rule, HealthLevel level, uint16_t code, std::string message) {
  return RuleResult{rule, level, level == HealthLevel::kPass ? uint16_t{0} : code,
                    std::move(message)};
}

}  // namespace

const char* HealthLevelName(HealthLevel level) {
  switch (level) {
    case HealthLevel::kPass: return "PASS";
    case HealthLevel::kWarn: return "WARN";
    case HealthLevel::kFail: return "FAIL";
  }
  return "?";
}

const char* HealthRuleName(HealthRule rule) {
  switch (rule) {
    case HealthRule::kTemperature: return "temperature";
    case HealthRule::kThrottling: return "throttling";
    case HealthRule::kEccCorrectedRate: return "ecc_corrected_rate";
    case HealthRule::kEccUncorrectable: return "ecc_uncorrectable";
    case HealthRule::kLinkCrcRate: return "link_crc_rate";
    case HealthRule::kSparePes: return "spare_pes";
    case HealthRule::kHeartbeat: return "heartbeat";
    case HealthRule::kStepErrors: return "step_errors";
    case HealthRule::kFirmwareRollback: return "firmware_rollback";
  }
  return "?";
}

const std::vector<HealthCode>& HealthCatalog() {
  using R = HealthRule;
  using L = HealthLevel;
  static const std::vector<HealthCode> kCodes = {
      {101, "TEMPERATURE_HIGH", R::kTemperature, L::kWarn,
       "check coolant flow and inlet temperature; the board throttles from here"},
      {102, "TEMPERATURE_CRITICAL", R::kTemperature, L::kFail,
       "drained and reset before it trips; if it recurs, inspect the hot region's cooling "
       "(waferctl board show)"},
      {111, "THROTTLED", R::kThrottling, L::kWarn,
       "throughput is reduced: check cooling and the power cap"},
      {112, "THROTTLED_FAIL", R::kThrottling, L::kFail,
       "drained (health.throttling_fails): check cooling and the power cap"},
      {121, "ECC_CORRECTED_RATE", R::kEccCorrectedRate, L::kWarn,
       "SRAM is wearing: watch for uncorrectable errors; plan a diagnostic sweep"},
      {122, "ECC_CORRECTED_RATE_CRITICAL", R::kEccCorrectedRate, L::kFail,
       "drained and reset; if it recurs, run diagnostics and replace the board"},
      {131, "ECC_UNCORRECTABLE", R::kEccUncorrectable, L::kFail,
       "data was lost in SRAM: drained and reset (models reload); if it recurs, run "
       "diagnostics"},
      {141, "LINK_CRC_RATE", R::kLinkCrcRate, L::kWarn,
       "the host link retries frames: check the cable and connectors"},
      {142, "LINK_CRC_RATE_CRITICAL", R::kLinkCrcRate, L::kFail,
       "drained and reset; if it recurs, replace the cable or move the board"},
      {151, "SPARES_LOW", R::kSparePes, L::kWarn,
       "few spare PEs left to replace failing ones: schedule a replacement"},
      {152, "SPARES_EXHAUSTED", R::kSparePes, L::kFail,
       "a PE failed with no spare left: drained; replace the board"},
      {161, "HEARTBEAT_MISSED", R::kHeartbeat, L::kWarn,
       "the firmware hung and was reset: collect its log (waferctl logs)"},
      {162, "HEARTBEAT_MISSES_REPEATED", R::kHeartbeat, L::kFail,
       "the firmware hangs repeatedly: drained; collect its log and update or roll back "
       "firmware"},
      {171, "STEP_ERRORS", R::kStepErrors, L::kWarn,
       "some Steps fail: see the firmware log and the daemon's log"},
      {172, "STEP_ERRORS_CRITICAL", R::kStepErrors, L::kFail,
       "many Steps fail: drained and reset"},
      {181, "FIRMWARE_ROLLBACK", R::kFirmwareRollback, L::kWarn,
       "a new firmware image failed and the previous one runs: check the image (waferctl logs)"},
  };
  return kCodes;
}

const HealthCode* FindHealthCode(uint16_t code) {
  for (const HealthCode& c : HealthCatalog()) {
    if (c.code == code) return &c;
  }
  return nullptr;
}

uint64_t BoardHealthRules::Increase(uint64_t HealthSample::*field) const {
  uint64_t sum = 0;
  for (size_t i = 1; i < window_.size(); ++i) {
    const uint64_t before = window_[i - 1].*field;
    const uint64_t now = window_[i].*field;
    sum += now >= before ? now - before : now;
  }
  return sum;
}

std::array<RuleResult, kHealthRules> BoardHealthRules::Evaluate(const HealthSample& s) {
  // Keep one sample at or before the window's start, so that a counter's growth across the start
  // is seen.
  window_.push_back(s);
  const int64_t start = s.at_ns - int64_t{config_.window_s} * 1'000'000'000;
  while (window_.size() > 2 && window_[1].at_ns <= start) window_.pop_front();

  const HealthConfig& c = config_;
  const double per_min = 60.0 / c.window_s;
  std::array<RuleResult, kHealthRules> r;

  // Sensors: PASS until the board's first readings.
  if (s.thermal_trip || s.max_temperature_c >= c.temperature_critical_c) {
    r[0] = Result(HealthRule::kTemperature, HealthLevel::kFail, 102,
                  s.thermal_trip ? "thermal trip: the board halted"
                                 : Format("hottest region %.1f C, critical at %.0f C",
                                          s.max_temperature_c, c.temperature_critical_c));
  } else if (s.max_temperature_c >= c.temperature_warn_c) {
    r[0] = Result(HealthRule::kTemperature, HealthLevel::kWarn, 101,
                  Format("hottest region %.1f C, warning at %.0f C", s.max_temperature_c,
                         c.temperature_warn_c));
  } else {
    r[0] = Result(HealthRule::kTemperature, HealthLevel::kPass, 0,
                  Format("hottest region %.1f C (warning at %.0f C)", s.max_temperature_c,
                         c.temperature_warn_c));
  }
  if (s.throttled) {
    const HealthLevel level = c.throttling_fails ? HealthLevel::kFail : HealthLevel::kWarn;
    r[1] = Result(HealthRule::kThrottling, level, c.throttling_fails ? 112 : 111,
                  "clock throttled (heat or power cap)");
  } else {
    r[1] = Result(HealthRule::kThrottling, HealthLevel::kPass, 0, "full clock");
  }

  const auto rate_rule = [&](HealthRule rule, uint64_t HealthSample::*field, uint32_t warn,
                             uint32_t fail, uint16_t warn_code, const char* what) {
    const double rate = static_cast<double>(Increase(field)) * per_min;
    const HealthLevel level = rate >= fail   ? HealthLevel::kFail
                              : rate >= warn ? HealthLevel::kWarn
                                             : HealthLevel::kPass;
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s %.1f/min over %u s (warning at %u, failure at %u)", what,
                  rate, c.window_s, warn, fail);
    return Result(rule, level, level == HealthLevel::kFail ? warn_code + 1 : warn_code, buf);
  };
  r[2] = rate_rule(HealthRule::kEccCorrectedRate, &HealthSample::ecc_corrected,
                   c.ecc_corrected_warn_per_min, c.ecc_corrected_fail_per_min, 121,
                   "corrected ECC errors");
  const uint64_t uncorrectable = Increase(&HealthSample::ecc_uncorrectable);
  r[3] = Result(HealthRule::kEccUncorrectable,
                uncorrectable > 0 ? HealthLevel::kFail : HealthLevel::kPass, 131,
                std::to_string(uncorrectable) + " uncorrectable ECC errors in the last " +
                    std::to_string(c.window_s) + " s");
  r[4] = rate_rule(HealthRule::kLinkCrcRate, &HealthSample::link_crc_errors,
                   c.link_crc_warn_per_min, c.link_crc_fail_per_min, 141, "link CRC errors");

  // Each PE that failed since boot took a spare, while there was one.
  const uint64_t spares_left =
      s.spare_pes > s.runtime_failed_pes ? s.spare_pes - s.runtime_failed_pes : 0;
  const std::string spares = std::to_string(spares_left) + " spare PEs left, " +
                             std::to_string(s.runtime_failed_pes) + " failed since boot";
  if (s.has_telemetry && spares_left <= c.spare_pes_fail && s.runtime_failed_pes > 0) {
    r[5] = Result(HealthRule::kSparePes, HealthLevel::kFail, 152, spares);
  } else if (s.has_telemetry && spares_left <= c.spare_pes_warn) {
    r[5] = Result(HealthRule::kSparePes, HealthLevel::kWarn, 151, spares);
  } else {
    r[5] = Result(HealthRule::kSparePes, HealthLevel::kPass, 0, spares);
  }

  const uint64_t misses = Increase(&HealthSample::heartbeat_misses);
  const HealthLevel beat = misses >= c.heartbeat_misses_fail   ? HealthLevel::kFail
                           : misses >= c.heartbeat_misses_warn ? HealthLevel::kWarn
                                                               : HealthLevel::kPass;
  r[6] = Result(HealthRule::kHeartbeat, beat, beat == HealthLevel::kFail ? 162 : 161,
                std::to_string(misses) + " missed firmware heartbeats in the last " +
                    std::to_string(c.window_s) + " s");

  const uint64_t steps = Increase(&HealthSample::steps);
  const uint64_t errors = Increase(&HealthSample::step_errors);
  HealthLevel step_level = HealthLevel::kPass;
  const double percent = steps == 0 ? 0 : 100.0 * static_cast<double>(errors) / steps;
  if (steps >= c.step_errors_min_steps) {
    step_level = percent >= c.step_errors_fail_percent   ? HealthLevel::kFail
                 : percent >= c.step_errors_warn_percent ? HealthLevel::kWarn
                                                         : HealthLevel::kPass;
  }
  char step_text[160];
  std::snprintf(step_text, sizeof step_text, "%llu of %llu Steps failed (%.1f%%) in the last %u s",
                static_cast<unsigned long long>(errors), static_cast<unsigned long long>(steps),
                percent, c.window_s);
  r[7] = Result(HealthRule::kStepErrors, step_level,
                step_level == HealthLevel::kFail ? 172 : 171, step_text);

  const uint64_t rollbacks = Increase(&HealthSample::firmware_rollbacks);
  r[8] = Result(HealthRule::kFirmwareRollback,
                rollbacks > 0 ? HealthLevel::kWarn : HealthLevel::kPass, 181,
                std::to_string(rollbacks) + " firmware rollbacks in the last " +
                    std::to_string(c.window_s) + " s");
  if (!s.has_telemetry) {
    // No readings yet: the sensor rules have nothing to judge.
    for (size_t i : {0, 1, 2, 3, 4}) {
      r[i].level = HealthLevel::kPass;
      r[i].code = 0;
      r[i].message = "no readings yet";
    }
  }
  return r;
}

}  // namespace wafer::host
