// A model as the daemon stages it: the opened, verified model directory and its placement.
#pragma once

#include <cstdint>
#include <string>

#include "host/loader/model_source.h"
#include "host/placement/placement_planner.h"

namespace wafer::host {

// A model directory opened and verified, and its placement over the boards it will run on.
// Shared read-only by the workers that stage it (one pipeline stage each).
struct PreparedModel {
  std::string name;
  ModelSource source;
  Plan plan;
  uint32_t slots = 0;
  uint32_t context_length = 0;
};

}  // namespace wafer::host
