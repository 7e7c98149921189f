#include "host/config/health_config.h"

#include <sstream>

#include "host/config/map_reader.h"

namespace wafer::host::config_internal {

HostStatus ParseHealthKeys(MapReader& r, HealthConfig* h) {
  const bool ok =
      r.IsMap() && r.Bool("enabled", &h->enabled) &&
      r.Uint("temperature_warn_c", &h->temperature_warn_c, 1, 200) &&
      r.Uint("temperature_critical_c", &h->temperature_critical_c, 1, 200) &&
      r.Bool("throttling_fails", &h->throttling_fails) &&
      r.Uint("ecc_corrected_warn_per_min", &h->ecc_corrected_warn_per_min, 1, 1u << 30) &&
      r.Uint("ecc_corrected_fail_per_min", &h->ecc_corrected_fail_per_min, 1, 1u << 30) &&
      r.Uint("link_crc_warn_per_min", &h->link_crc_warn_per_min, 1, 1u << 30) &&
      r.Uint("link_crc_fail_per_min", &h->link_crc_fail_per_min, 1, 1u << 30) &&
      r.Uint("spare_pes_warn", &h->spare_pes_warn, 0, 1u << 30) &&
      r.Uint("spare_pes_fail", &h->spare_pes_fail, 0, 1u << 30) &&
      r.Uint("heartbeat_misses_warn", &h->heartbeat_misses_warn, 1, 1000) &&
      r.Uint("heartbeat_misses_fail", &h->heartbeat_misses_fail, 1, 1000) &&
      r.Uint("step_errors_warn_percent", &h->step_errors_warn_percent, 1, 100) &&
      r.Uint("step_errors_fail_percent", &h->step_errors_fail_percent, 1, 100) &&
      r.Uint("step_errors_min_steps", &h->step_errors_min_steps, 1, 1u << 30) &&
      r.Uint("window_s", &h->window_s, 1, 86400) &&
      r.String("drain_mode", &h->drain_mode, false) &&
      r.Uint("recovery_backoff_ms", &h->recovery_backoff_ms, 0, 3'600'000) &&
      r.Uint("max_recoveries", &h->max_recoveries, 0, 100) &&
      r.Uint("return_after_s", &h->return_after_s, 0, 86400) && r.NoUnknownKeys();
  if (!ok) return r.error();
  // Each pair: the warning must come before the failure.
  const struct {
    const char* warn;
    uint32_t w;
    const char* fail;
    uint32_t f;
  } pairs[] = {
      {"temperature_warn_c", h->temperature_warn_c, "temperature_critical_c",
       h->temperature_critical_c},
      {"ecc_corrected_warn_per_min", h->ecc_corrected_warn_per_min, "ecc_corrected_fail_per_min",
       h->ecc_corrected_fail_per_min},
      {"link_crc_warn_per_min", h->link_crc_warn_per_min, "link_crc_fail_per_min",
       h->link_crc_fail_per_min},
      {"heartbeat_misses_warn", h->heartbeat_misses_warn, "heartbeat_misses_fail",
       h->heartbeat_misses_fail},
      {"step_errors_warn_percent", h->step_errors_warn_percent, "step_errors_fail_percent",
       h->step_errors_fail_percent},
  };
  for (const auto& p : pairs) {
    if (p.w > p.f) {
      return Error{StatusCode::kInvalidArgument,
                   std::string("health.") + p.warn + " must not be above health." + p.fail};
    }
  }
  if (h->spare_pes_fail > h->spare_pes_warn) {
    return Error{StatusCode::kInvalidArgument,
                 "health.spare_pes_fail must not be above health.spare_pes_warn"};
  }
  if (h->drain_mode != "evacuate" && h->drain_mode != "graceful") {
    return Error{StatusCode::kInvalidArgument, "health.drain_mode: must be evacuate or graceful"};
  }
  return HostOk();
}

std::string HealthDefaultYaml() {
  const HealthConfig d;
  std::ostringstream o;
  o << "health:                          # board health rules and what a FAIL does\n"
    << "  enabled: " << (d.enabled ? "true" : "false")
    << "                  # false: rules are shown, never act\n"
    << "  temperature_warn_c: " << d.temperature_warn_c << "           # hottest die region\n"
    << "  temperature_critical_c: " << d.temperature_critical_c
    << "      # FAIL: drained before it trips\n"
    << "  throttling_fails: " << (d.throttling_fails ? "true" : "false")
    << "        # throttling is WARN unless true\n"
    << "  ecc_corrected_warn_per_min: " << d.ecc_corrected_warn_per_min << "\n"
    << "  ecc_corrected_fail_per_min: " << d.ecc_corrected_fail_per_min << "\n"
    << "  link_crc_warn_per_min: " << d.link_crc_warn_per_min << "\n"
    << "  link_crc_fail_per_min: " << d.link_crc_fail_per_min << "\n"
    << "  spare_pes_warn: " << d.spare_pes_warn << "                # spare PEs left\n"
    << "  spare_pes_fail: " << d.spare_pes_fail
    << "                # judged once a PE failed at run time\n"
    << "  heartbeat_misses_warn: " << d.heartbeat_misses_warn << "         # within window_s\n"
    << "  heartbeat_misses_fail: " << d.heartbeat_misses_fail << "\n"
    << "  step_errors_warn_percent: " << d.step_errors_warn_percent << "      # of the Steps in window_s\n"
    << "  step_errors_fail_percent: " << d.step_errors_fail_percent << "\n"
    << "  step_errors_min_steps: " << d.step_errors_min_steps << "\n"
    << "  window_s: " << d.window_s << "                     # rates and counts over this window\n"
    << "  drain_mode: " << d.drain_mode
    << "             # a FAIL's drain: evacuate (jobs move) | graceful (jobs finish)\n"
    << "  recovery_backoff_ms: " << d.recovery_backoff_ms
    << "        # before the first reset; doubled after each failed one\n"
    << "  max_recoveries: " << d.max_recoveries << "                # then the board is quarantined\n"
    << "  return_after_s: " << d.return_after_s
    << "               # no FAIL this long: back in service, incident closed\n";
  return o.str();
}

}  // namespace wafer::host::config_internal
