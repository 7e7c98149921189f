#include "board_sim/fabric_map.h"

#include <algorithm>
#include <cmath>

namespace wafer::sim {
namespace {

uint64_t SplitMix(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

FabricMap::FabricMap(const wafer_model::Preset& preset, uint64_t seed)
    : rows_(preset.physical_rows),
      cols_(preset.physical_cols),
      spare_cols_(preset.spare_cols_per_row),
      fused_(rows_, 0),
      dead_(rows_, 0),
      used_spares_(rows_, 0),
      boot_defects_(rows_, 0) {
  // Geometric skipping: draw the gap to the next defective PE instead of one number per PE.
  if (preset.defect_rate <= 0) return;
  uint64_t state = seed ^ 0xD1B54A32D192ED03ull;
  const double log_keep = std::log1p(-preset.defect_rate);
  const uint64_t total = uint64_t{rows_} * cols_;
  uint64_t at = 0;
  for (;;) {
    const double u = (static_cast<double>(SplitMix(state) >> 11) + 0.5) * 0x1.0p-53;
    at += static_cast<uint64_t>(std::floor(std::log(u) / log_keep));
    if (at >= total) break;
    ++fused_[at / cols_];
    ++fused_total_;
    ++at;
  }
}

fw::hal::PhysicalGeometry FabricMap::geometry() const {
  return fw::hal::PhysicalGeometry{rows_, cols_, spare_cols_};
}

uint32_t FabricMap::Defects(uint32_t row) const {
  return row < rows_ ? fused_[row] + dead_[row] : 0;
}

Status FabricMap::Program(std::span<const uint32_t> row_map) {
  if (row_map.size() != rows_) return InvalidArgument();
  std::vector<uint32_t> usable;
  for (uint32_t r = 0; r < rows_; ++r) {
    if (row_map[r] == fw::hal::kRowDropped) continue;
    if (row_map[r] != usable.size() || Defects(r) > spare_cols_) return InvalidArgument();
    usable.push_back(r);
  }
  if (usable.empty()) return InvalidArgument();
  usable_to_phys_ = std::move(usable);
  std::fill(used_spares_.begin(), used_spares_.end(), 0);
  for (uint32_t r = 0; r < rows_; ++r) boot_defects_[r] = Defects(r);
  unmapped_dead_.clear();
  programmed_ = true;
  return OkStatus();
}

void FabricMap::Unprogram() {
  programmed_ = false;
  usable_to_phys_.clear();
  unmapped_dead_.clear();
  std::fill(used_spares_.begin(), used_spares_.end(), 0);
}

uint32_t FabricMap::usable_height() const {
  return programmed_ ? static_cast<uint32_t>(usable_to_phys_.size()) : rows_;
}

bool FabricMap::InRect(uint32_t row, uint32_t col) const {
  return programmed_ && row < usable_to_phys_.size() && col < usable_width();
}

uint32_t FabricMap::spares_left(uint32_t usable_row) const {
  if (!programmed_ || usable_row >= usable_to_phys_.size()) return 0;
  const uint32_t r = usable_to_phys_[usable_row];
  const uint32_t used = boot_defects_[r] + used_spares_[r];
  return used >= spare_cols_ ? 0 : spare_cols_ - used;
}

Status FabricMap::KillPe(uint32_t row, uint32_t col) {
  if (!programmed_) return FailedPrecondition();
  if (!InRect(row, col)) return OutOfRange();
  if (IsDead(row, col)) return OkStatus();
  ++dead_[usable_to_phys_[row]];  // The next self-test finds it.
  unmapped_dead_.push_back(uint64_t{row} * usable_width() + col);
  return OkStatus();
}

Status FabricMap::Remap(uint32_t row, uint32_t col) {
  if (!programmed_) return FailedPrecondition();
  if (!InRect(row, col)) return OutOfRange();
  if (spares_left(row) == 0) return ResourceExhausted();
  ++used_spares_[usable_to_phys_[row]];
  const uint64_t key = uint64_t{row} * usable_width() + col;
  auto it = std::find(unmapped_dead_.begin(), unmapped_dead_.end(), key);
  if (it != unmapped_dead_.end()) unmapped_dead_.erase(it);
  return OkStatus();
}

bool FabricMap::IsDead(uint32_t row, uint32_t col) const {
  const uint64_t key = uint64_t{row} * usable_width() + col;
  return std::find(unmapped_dead_.begin(), unmapped_dead_.end(), key) != unmapped_dead_.end();
}

std::vector<FabricMap::Pe> FabricMap::DeadPes() const {
  std::vector<uint64_t> keys = unmapped_dead_;
  std::sort(keys.begin(), keys.end());
  std::vector<Pe> out;
  out.reserve(keys.size());
  for (uint64_t k : keys) {
    out.push_back(Pe{static_cast<uint32_t>(k / usable_width()),
                     static_cast<uint32_t>(k % usable_width())});
  }
  return out;
}

}  // namespace wafer::sim
