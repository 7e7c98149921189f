// What the step loop asks of the loader (host/loader/loader.h) and what it answers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "host/loader/prepared_model.h"
#include "host/placement/placement_planner.h"
#include "host/placement/row_gaps.h"

namespace wafer::host {

// To the loader: open and verify `path`, then plan the model over `boards` boards
// of `geometry` inside the first of `gaps` (rows free on every one of those boards) that holds
// it. The answer is a PrepareDone.
struct PrepareWork {
  uint32_t model_id = 0;
  std::string name;  // Empty: the directory's base name.
  std::string path;
  uint32_t slots = 0;
  uint32_t context_length = 0;  // 0: the model's maximum.
  std::vector<uint32_t> boards;  // Daemon board indices, pipeline order (for messages).
  BoardGeometry geometry;        // The smallest of those boards.
  std::vector<RowBand> gaps;
  bool spread = false;           // Take every row of the gap (config `placement: spread`).
};

struct PrepareDone {
  uint32_t model_id = 0;
  Status status;
  std::string detail;
  std::shared_ptr<const PreparedModel> model;  // On success.
  RowBand rows;  // The band the plan takes on every board (the tallest board's share).
};

}  // namespace wafer::host
