#include "host/boards/board_drain.h"

namespace wafer::host {

const char* DrainReasonName(DrainReason reason) {
  switch (reason) {
    case DrainReason::kOperator: return "operator";
    case DrainReason::kHealthIncident: return "health incident";
    case DrainReason::kDiagnostics: return "diagnostics";
  }
  return "unknown";
}

const char* DrainModeName(DrainMode mode) {
  switch (mode) {
    case DrainMode::kGraceful: return "graceful";
    case DrainMode::kEvacuate: return "evacuate";
  }
  return "unknown";
}

bool BoardDrain::Add(DrainReason reason, DrainMode mode) {
  const bool was_drained = drained();
  const DrainMode was_mode = this->mode();
  reasons_[Index(reason)] = mode;
  return !was_drained || was_mode != this->mode();
}

bool BoardDrain::Remove(DrainReason reason) {
  if (!Has(reason)) return false;
  const DrainMode was_mode = mode();
  reasons_[Index(reason)].reset();
  return !drained() || was_mode != mode();
}

bool BoardDrain::drained() const {
  for (const auto& r : reasons_) {
    if (r) return true;
  }
  return false;
}

DrainMode BoardDrain::mode() const {
  for (const auto& r : reasons_) {
    if (r == DrainMode::kEvacuate) return DrainMode::kEvacuate;
  }
  return DrainMode::kGraceful;
}

std::string BoardDrain::Describe() const {
  std::string out;
  for (size_t i = 0; i < kDrainReasons; ++i) {
    if (!reasons_[i]) continue;
    if (!out.empty()) out += ", ";
    out += DrainReasonName(static_cast<DrainReason>(i));
    out += " (";
    out += DrainModeName(*reasons_[i]);
    out += ")";
  }
  return out;
}

}  // namespace wafer::host
