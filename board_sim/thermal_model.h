// A first-order thermal model of the wafer: power follows activity (peak while busy, idle
// otherwise), the die relaxes toward coolant_in + power * resistance with the preset's time
// constant, and the coolant warms by power / (flow * c_water) from inlet to outlet. Deterministic:
// time comes only from the timestamps it is given.
#pragma once

#include <cstdint>

#include "board_sim/preset.h"

namespace wafer::sim {

// Not thread-safe; owned by SimWafer.
class ThermalModel {
 public:
  ThermalModel(const Preset& preset, int64_t now_ns);

  // The wafer will be busy for `busy_ns` starting at the current model time.
  void AddBusy(int64_t busy_ns) { pending_busy_ns_ += busy_ns; }

  // Advances the model to `now_ns` (earlier times are ignored).
  void AdvanceTo(int64_t now_ns);

  double die_c() const { return die_c_; }
  double power_w() const { return power_w_; }
  double coolant_in_c() const { return preset_.coolant_in_c; }
  double coolant_out_c() const;
  // Temperature of die region (x, y): coolant flows west to east, so eastern regions run warmer.
  double region_c(uint32_t x) const;
  bool throttled() const { return die_c_ > preset_.warn_c; }

 private:
  void Relax(double watts, double seconds);

  Preset preset_;
  int64_t now_ns_;
  int64_t pending_busy_ns_ = 0;
  double die_c_;
  double power_w_;
};

}  // namespace wafer::sim
