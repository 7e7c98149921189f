// The slowed board preset of the tests that disturb waferd mid-stream (chaos_test,
// board_restart_test): a job streams for about a second, so a kill or a fault lands mid-stream.
#pragma once

#include <string>

namespace wafer::testing {

// The slowed preset's host round trip per Step, in microseconds.
inline constexpr int kSlowPresetRoundTripUs = 10000;

// Writes the slowed "mini" preset to `path`: wafer_model/presets/mini.yaml as shipped, but with a
// host round trip of `round_trip_us` per Step. False (with a test failure added) when mini.yaml
// has no host.round_trip_us to change.
bool WriteSlowPreset(const std::string& path, int round_trip_us = kSlowPresetRoundTripUs);

}  // namespace wafer::testing
