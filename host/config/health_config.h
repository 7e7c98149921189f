// The `health:` section of waferd.yaml: thresholds of the board health rules and what an
// incident does (host/health/). Every key optional; the defaults are the struct's.
#pragma once

#include <cstdint>
#include <string>

#include "common/error.h"

namespace wafer::host {

struct HealthConfig {
  bool enabled = true;  // false: rules are still evaluated and shown, but never act.
  // Hottest die region, degrees Celsius. The simulated presets throttle from 85 and trip (halt)
  // at 105: the critical threshold drains the board before it trips.
  uint32_t temperature_warn_c = 85;
  uint32_t temperature_critical_c = 100;
  // Throttling (clock lowered by heat or a power cap) is WARN; FAIL when this is true.
  bool throttling_fails = false;
  // Rates over `window_s`, per minute.
  uint32_t ecc_corrected_warn_per_min = 10;
  uint32_t ecc_corrected_fail_per_min = 1000;
  uint32_t link_crc_warn_per_min = 10;
  uint32_t link_crc_fail_per_min = 1000;
  // Spare PEs left (the pool that replaces a failed PE); FAIL at or below `spare_pes_fail`
  // once a PE has failed at run time (a board built without spares is judged by its failures).
  uint32_t spare_pes_warn = 4;
  uint32_t spare_pes_fail = 0;
  // Missed firmware heartbeats within `window_s` (each one takes the board offline and resets it).
  uint32_t heartbeat_misses_warn = 1;
  uint32_t heartbeat_misses_fail = 3;
  // Failed Steps, percent of the Steps within `window_s`, once at least `step_errors_min_steps`
  // ran in it.
  uint32_t step_errors_warn_percent = 1;
  uint32_t step_errors_fail_percent = 10;
  uint32_t step_errors_min_steps = 20;
  // A firmware image that rolled back to its previous slot within `window_s` is WARN (the board
  // runs, on older firmware than intended).
  uint32_t window_s = 60;

  // Incidents. A FAIL opens one: the board is drained (evacuate moves its running jobs to another
  // replica or back to the queue; graceful lets them finish there) and, after
  // `recovery_backoff_ms`, reset; each reset that does not bring every rule out of FAIL doubles
  // the wait, and after `max_recoveries` the board is quarantined (drained until an operator
  // clears it). A board whose rules have not failed for `return_after_s` returns to service by
  // itself and the incident closes.
  std::string drain_mode = "evacuate";  // evacuate | graceful
  uint32_t recovery_backoff_ms = 5000;
  uint32_t max_recoveries = 3;
  uint32_t return_after_s = 30;
};

}  // namespace wafer::host

namespace wafer::host::config_internal {
class MapReader;
// Reads the `health:` map `r` walks into `out`. Returns OK, or INVALID_ARGUMENT naming
// the key and line.
HostStatus ParseHealthKeys(MapReader& r, HealthConfig* out);
// The defaults as commented YAML, the `health:` line included.
std::string HealthDefaultYaml();
}  // namespace wafer::host::config_internal
