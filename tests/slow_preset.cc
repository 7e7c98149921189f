#include "tests/slow_preset.h"

#include <fstream>
#include <regex>

#include <gtest/gtest.h>

#include "tests/daemon_harness.h"

namespace wafer::testing {

bool WriteSlowPreset(const std::string& path, int round_trip_us) {
  std::string preset = ReadWholeFile(std::string(WAFER_PRESET_DIR) + "/mini.yaml");
  const std::regex round_trip("round_trip_us:[ \t]*[0-9.eE+]+");
  if (!std::regex_search(preset, round_trip)) {
    ADD_FAILURE() << "mini.yaml has no host.round_trip_us";
    return false;
  }
  preset = std::regex_replace(preset, round_trip,
                              "round_trip_us: " + std::to_string(round_trip_us));
  std::ofstream(path) << preset;
  return true;
}

}  // namespace wafer::testing
