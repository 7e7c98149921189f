#include "board_sim/thermal_model.h"

#include <algorithm>
#include <cmath>

namespace wafer::sim {
namespace {
constexpr double kWaterHeatCapacity = 4186;  // J / (kg K).
}  // namespace

ThermalModel::ThermalModel(const Preset& preset, int64_t now_ns)
    : preset_(preset),
      now_ns_(now_ns),
      die_c_(preset.coolant_in_c + preset.idle_w * preset.resistance_c_per_w),
      power_w_(preset.idle_w) {}

void ThermalModel::Relax(double watts, double seconds) {
  const double target = preset_.coolant_in_c + watts * preset_.resistance_c_per_w;
  die_c_ = target + (die_c_ - target) * std::exp(-seconds / preset_.time_constant_s);
}

void ThermalModel::AdvanceTo(int64_t now_ns) {
  if (now_ns <= now_ns_) return;
  const int64_t dt = now_ns - now_ns_;
  const int64_t busy = std::min(pending_busy_ns_, dt);
  pending_busy_ns_ -= busy;
  Relax(preset_.peak_w, busy * 1e-9);
  Relax(preset_.idle_w, (dt - busy) * 1e-9);
  power_w_ = (preset_.peak_w * busy + preset_.idle_w * (dt - busy)) / double(dt);
  now_ns_ = now_ns;
}

double ThermalModel::coolant_out_c() const {
  return preset_.coolant_in_c + power_w_ / (preset_.coolant_flow_kg_s * kWaterHeatCapacity);
}

double ThermalModel::region_c(uint32_t x) const {
  const double rise = coolant_out_c() - preset_.coolant_in_c;
  return die_c_ + rise * (x + 0.5) / preset_.dies_x;
}

}  // namespace wafer::sim
