// A first-order thermal model of the wafer: power follows activity (idle power plus dynamic power
// scaled by the clock while busy), the die relaxes toward coolant_in + power * resistance with
// the preset's time constant, and the coolant warms by power / (flow * c_water) from inlet to
// outlet. Each die region may lose cooling (thermal runaway: its resistance is multiplied), and
// a region above the warning temperature throttles its clock (linearly down to half at the
// critical one); a power cap lowers every clock so busy power fits under it. Deterministic: time
// comes only from the timestamps it is given.
#pragma once

#include <cstdint>
#include <vector>

#include "wafer_model/preset.h"

namespace wafer::sim {

// Power per rail, watts. The split of idle and dynamic power between rails is a modeling
// assumption (core logic dominates dynamic power, SRAM retention a third of idle power).
struct RailPower {
  double core_w = 0;
  double sram_w = 0;
  double io_w = 0;
};

// Not thread-safe; owned by SimWafer.
class ThermalModel {
 public:
  ThermalModel(const wafer_model::Preset& preset, int64_t now_ns);

  // The wafer will be busy for `busy_ns` starting at the current model time.
  void AddBusy(int64_t busy_ns) { pending_busy_ns_ += busy_ns; }

  // Advances the model to `now_ns` (earlier times are ignored).
  void AdvanceTo(int64_t now_ns);

  double die_c() const { return die_c_; }
  double power_w() const { return power_w_; }
  double coolant_in_c() const { return preset_.coolant_in_c; }
  double coolant_out_c() const;
  double coolant_flow_kg_s() const { return preset_.coolant_flow_kg_s; }
  // Temperature of die column x (coolant flows west to east, so eastern regions run warmer),
  // without any region's runaway excess.
  double region_c(uint32_t x) const;
  // Temperature of region `region` (row-major over dies_x x dies_y), runaway included.
  double region_temp_c(uint32_t region) const;
  double max_region_c() const;
  // True when some region's clock is below nominal (temperature or power cap).
  bool throttled() const { return min_clock_ratio() < 1.0; }

  // Clock of `region` as a fraction of nominal: 0 when halted.
  double clock_ratio(uint32_t region) const;
  // The slowest region's ratio: the pipeline runs at its pace.
  double min_clock_ratio() const;
  RailPower rails() const;

  // Thermal runaway of one region: its thermal resistance times `factor` (1 restores it).
  void SetRegionCoolingFactor(uint32_t region, double factor);
  // Caps board power at `watts` (0: no cap).
  void SetPowerCap(double watts) { power_cap_w_ = watts; }
  double power_cap_w() const { return power_cap_w_; }
  // Stops (true) or restarts every clock.
  void SetHalted(bool halted) { halted_ = halted; }
  bool halted() const { return halted_; }

 private:
  void Integrate(double busy_s, double idle_s);
  // Recomputes hottest_c_; called by everything that changes a region's temperature.
  void UpdateHottest();
  double CapRatio() const;
  double BusyPower() const;

  wafer_model::Preset preset_;
  int64_t now_ns_;
  int64_t pending_busy_ns_ = 0;
  double die_c_;
  double power_w_;
  double busy_fraction_ = 0;
  std::vector<double> factor_;  // Per region.
  std::vector<double> excess_c_;  // Per region, above the uniform die temperature.
  double power_cap_w_ = 0;
  bool halted_ = false;
  double hottest_c_ = 0;  // max_region_c(), kept current.
};

}  // namespace wafer::sim
