// Why a board takes no new work: a set of reasons (operator, health incident, diagnostics), each
// with its own mode. The board is drained while any reason holds; removing one reason leaves
// the others in force, so an operator's undrain does not undo a health incident's drain.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace wafer::host {

// The order is telemetry::DaemonMetrics::DrainReasonNames()'s.
enum class DrainReason : uint8_t { kOperator, kHealthIncident, kDiagnostics };
inline constexpr size_t kDrainReasons = 3;
const char* DrainReasonName(DrainReason reason);

// kGraceful: jobs running on the board finish there; only new work stays away.
// kEvacuate: running jobs leave the board too (they are re-queued with their output so far).
enum class DrainMode : uint8_t { kGraceful, kEvacuate };
const char* DrainModeName(DrainMode mode);

// Not thread-safe; owned with its board by the step loop's thread.
class BoardDrain {
 public:
  // Sets `reason` with `mode` (a reason already held takes the new mode). Returns true when the
  // board's drain as a whole changed: it was not drained, or its mode() changed.
  bool Add(DrainReason reason, DrainMode mode);
  // Removes `reason` only. Returns true when the board's drain as a whole changed.
  bool Remove(DrainReason reason);

  bool drained() const;
  bool Has(DrainReason reason) const { return reasons_[Index(reason)].has_value(); }
  // The mode `reason` holds; kGraceful when it is not held.
  DrainMode ModeOf(DrainReason reason) const {
    return reasons_[Index(reason)].value_or(DrainMode::kGraceful);
  }
  // kEvacuate when any reason evacuates; kGraceful otherwise (and when not drained).
  DrainMode mode() const;
  // "operator (graceful), health incident (evacuate)"; empty when not drained.
  std::string Describe() const;

 private:
  static size_t Index(DrainReason reason) { return static_cast<size_t>(reason); }

  std::array<std::optional<DrainMode>, kDrainReasons> reasons_;
};

}  // namespace wafer::host
