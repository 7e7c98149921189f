// Board health rules: what a board's readings say about it, as PASS, WARN or FAIL per rule, each
// with a code from a small catalog (in the spirit of NVIDIA's XID table: a number, a name, what
// it means and what to do). Plain logic over samples: no sockets, time from the samples.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "host/config/health_config.h"

namespace wafer::host {

enum class HealthLevel : uint8_t { kPass = 0, kWarn = 1, kFail = 2 };
const char* HealthLevelName(HealthLevel level);  // "PASS", "WARN", "FAIL"

enum class HealthRule : uint8_t {
  kTemperature,
  kThrottling,
  kEccCorrectedRate,
  kEccUncorrectable,
  kLinkCrcRate,
  kSparePes,
  kHeartbeat,
  kStepErrors,
  kFirmwareRollback,
};
inline constexpr size_t kHealthRules = 9;
const char* HealthRuleName(HealthRule rule);  // "temperature", "throttling", ...

// One entry of the catalog: what a WARN or FAIL of a rule means and what to do about it.
struct HealthCode {
  uint16_t code = 0;  // 0: none (PASS).
  const char* name = "";
  HealthRule rule = HealthRule::kTemperature;
  HealthLevel level = HealthLevel::kPass;
  const char* action = "";
};
// Every code, by number (the README prints the same table).
const std::vector<HealthCode>& HealthCatalog();
// The catalog entry of `code`; nullptr for an unknown one.
const HealthCode* FindHealthCode(uint16_t code);

// One board's readings at `at_ns`, as the daemon last heard them. The board's own counters
// (ECC, link CRC) restart from 0 when it resets; the daemon's (heartbeats, steps, rollbacks)
// never go down.
struct HealthSample {
  int64_t at_ns = 0;
  bool has_telemetry = false;  // False until the board's first readings: sensor rules PASS.
  float max_temperature_c = 0;
  bool throttled = false;
  bool thermal_trip = false;
  uint64_t ecc_corrected = 0;
  uint64_t ecc_uncorrectable = 0;
  uint64_t link_crc_errors = 0;
  uint64_t spare_pes = 0;           // At the last boot.
  uint64_t runtime_failed_pes = 0;  // Since the last boot (each takes a spare when one is left).
  uint64_t heartbeat_misses = 0;
  uint64_t steps = 0;
  uint64_t step_errors = 0;
  uint64_t firmware_rollbacks = 0;
  // The board was ready (booted, not being reset) when the daemon heard this. Only a ready
  // board's passing readings count toward its return to service (HealthMonitor).
  bool ready = true;
};

// What one rule says now.
struct RuleResult {
  HealthRule rule = HealthRule::kTemperature;
  HealthLevel level = HealthLevel::kPass;
  uint16_t code = 0;     // HealthCatalog; 0 for PASS.
  std::string message;   // What was seen, with the numbers and the threshold.
};

// The rules of one board. Not thread-safe.
class BoardHealthRules {
 public:
  explicit BoardHealthRules(const HealthConfig& config) : config_(config) {}

  // Adds a sample (times must not go backwards) and returns every rule's result, in HealthRule
  // order. Rates and counts look at the samples of the last window_s.
  std::array<RuleResult, kHealthRules> Evaluate(const HealthSample& sample);

 private:
  // How much `field` grew over the window: the sum of each step's increase, where a drop (the
  // board restarted its counter) counts the new value as the increase.
  uint64_t Increase(uint64_t HealthSample::*field) const;

  const HealthConfig& config_;
  std::deque<HealthSample> window_;  // Oldest first; the first may be older than the window.
};

}  // namespace wafer::host
