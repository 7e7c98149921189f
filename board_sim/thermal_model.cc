#include "board_sim/thermal_model.h"

#include <algorithm>
#include <cmath>

namespace wafer::sim {
namespace {
constexpr double kWaterHeatCapacity = 4186;  // J / (kg K).
constexpr double kMinThrottle = 0.5;         // Clock fraction at the critical temperature.
constexpr double kMinCapRatio = 0.1;         // A cap below idle power still leaves this clock.
constexpr int kMaxSubsteps = 2000;
}  // namespace

ThermalModel::ThermalModel(const wafer_model::Preset& preset, int64_t now_ns)
    : preset_(preset),
      now_ns_(now_ns),
      die_c_(preset.coolant_in_c + preset.idle_w * preset.resistance_c_per_w),
      power_w_(preset.idle_w),
      factor_(preset.regions(), 1.0),
      excess_c_(preset.regions(), 0.0) {
  UpdateHottest();
}

void ThermalModel::UpdateHottest() {
  hottest_c_ = die_c_;
  for (uint32_t i = 0; i < preset_.regions(); ++i) hottest_c_ = std::max(hottest_c_, region_temp_c(i));
}

double ThermalModel::CapRatio() const {
  if (power_cap_w_ <= 0) return 1.0;
  const double dynamic = preset_.peak_w - preset_.idle_w;
  if (dynamic <= 0) return 1.0;
  return std::clamp((power_cap_w_ - preset_.idle_w) / dynamic, kMinCapRatio, 1.0);
}

double ThermalModel::clock_ratio(uint32_t region) const {
  if (halted_) return 0;
  double ratio = CapRatio();
  const double t = region_temp_c(region);
  if (t > preset_.warn_c) {
    const double over = (t - preset_.warn_c) / (preset_.critical_c - preset_.warn_c);
    ratio = std::min(ratio, std::clamp(1.0 - (1.0 - kMinThrottle) * over, kMinThrottle, 1.0));
  }
  return ratio;
}

// The minimum of clock_ratio over the regions, which falls as a region's temperature rises: the
// hottest region's (kept by UpdateHottest, as each RunStep asks for it).
double ThermalModel::min_clock_ratio() const {
  if (preset_.regions() == 0) return 1.0;
  if (halted_) return 0;
  double ratio = CapRatio();
  if (hottest_c_ > preset_.warn_c) {
    const double over = (hottest_c_ - preset_.warn_c) / (preset_.critical_c - preset_.warn_c);
    ratio = std::min(ratio, std::clamp(1.0 - (1.0 - kMinThrottle) * over, kMinThrottle, 1.0));
  }
  return ratio;
}

// Dynamic power follows the clock (at fixed voltage, P_dyn ~ f).
double ThermalModel::BusyPower() const {
  return preset_.idle_w + (preset_.peak_w - preset_.idle_w) * min_clock_ratio();
}

void ThermalModel::Integrate(double busy_s, double idle_s) {
  const double total = busy_s + idle_s;
  if (total <= 0) return;
  const double watts = busy_s / total * BusyPower() + idle_s / total * preset_.idle_w;
  const double decay = std::exp(-total / preset_.time_constant_s);
  const double target = preset_.coolant_in_c + watts * preset_.resistance_c_per_w;
  die_c_ = target + (die_c_ - target) * decay;
  for (size_t i = 0; i < factor_.size(); ++i) {
    const double excess_target = watts * preset_.resistance_c_per_w * (factor_[i] - 1.0);
    excess_c_[i] = excess_target + (excess_c_[i] - excess_target) * decay;
  }
  power_w_ = watts;
  busy_fraction_ = busy_s / total;
  UpdateHottest();
}

void ThermalModel::AdvanceTo(int64_t now_ns) {
  if (now_ns <= now_ns_) return;
  const int64_t dt = now_ns - now_ns_;
  const int64_t busy = halted_ ? 0 : std::min(pending_busy_ns_, dt);
  pending_busy_ns_ = halted_ ? 0 : pending_busy_ns_ - busy;
  // Sub-steps of at most a twentieth of the time constant, so throttling feeds back on power;
  // busy time is spread evenly over the interval.
  const double dt_s = dt * 1e-9;
  const int steps = static_cast<int>(std::clamp(
      std::ceil(dt_s / (preset_.time_constant_s / 20)), 1.0, double(kMaxSubsteps)));
  const double busy_s = busy * 1e-9 / steps;
  const double idle_s = (dt - busy) * 1e-9 / steps;
  double energy = 0;
  for (int i = 0; i < steps; ++i) {
    Integrate(busy_s, idle_s);
    energy += power_w_ * (busy_s + idle_s);
  }
  power_w_ = energy / dt_s;
  busy_fraction_ = double(busy) / double(dt);
  UpdateHottest();
  now_ns_ = now_ns;
}

double ThermalModel::coolant_out_c() const {
  return preset_.coolant_in_c + power_w_ / (preset_.coolant_flow_kg_s * kWaterHeatCapacity);
}

double ThermalModel::region_c(uint32_t x) const {
  const double rise = coolant_out_c() - preset_.coolant_in_c;
  return die_c_ + rise * (x + 0.5) / preset_.dies_x;
}

double ThermalModel::region_temp_c(uint32_t region) const {
  if (region >= excess_c_.size()) return die_c_;
  return region_c(region % preset_.dies_x) + excess_c_[region];
}

double ThermalModel::max_region_c() const { return hottest_c_; }

void ThermalModel::SetRegionCoolingFactor(uint32_t region, double factor) {
  if (region < factor_.size()) factor_[region] = factor > 1.0 ? factor : 1.0;
  UpdateHottest();
}

RailPower ThermalModel::rails() const {
  const double dynamic = std::max(0.0, power_w_ - preset_.idle_w);
  const double idle = power_w_ - dynamic;
  RailPower r;
  r.core_w = 0.55 * idle + 0.80 * dynamic;
  r.sram_w = 0.35 * idle + 0.15 * dynamic;
  r.io_w = 0.10 * idle + 0.05 * dynamic;
  return r;
}

}  // namespace wafer::sim
