// The simulated wafer's PE array: the manufacturing defect map (its "fuses", drawn from the
// preset's defect rate and the board's seed), the row shifters the firmware programs at boot,
// and the spares consumed by runtime remaps.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "wafer_model/preset.h"
#include "common/status.h"
#include "firmware/hal/wafer.h"

namespace wafer::sim {

// Not thread-safe; owned by SimWafer.
class FabricMap {
 public:
  // Draws each PE's manufacturing defect independently with probability preset.defect_rate from
  // a generator seeded by `seed`: the same preset and seed give the same fuses.
  FabricMap(const wafer_model::Preset& preset, uint64_t seed);

  fw::hal::PhysicalGeometry geometry() const;

  // Defective PEs of physical row `row` as the self-test sees them: the fuses plus PEs that
  // died at run time (they stay dead across power cycles). 0 for a row out of range.
  uint32_t Defects(uint32_t row) const;
  uint64_t fused_defects() const { return fused_total_; }

  // See hal::Wafer::ProgramHarvest.
  Status Program(std::span<const uint32_t> row_map);
  // Forgets the harvest (power cycle); runtime-dead PEs stay dead.
  void Unprogram();

  bool programmed() const { return programmed_; }
  uint32_t usable_width() const { return cols_ - spare_cols_; }
  // Kept rows once programmed; the nominal row count before.
  uint32_t usable_height() const;
  uint64_t usable_pes() const { return uint64_t{usable_width()} * usable_height(); }

  // Marks usable PE (row, col) dead (it stays dead across power cycles).
  // OUT_OF_RANGE outside the programmed rectangle; FAILED_PRECONDITION before Program.
  Status KillPe(uint32_t row, uint32_t col);
  // Shifts usable PE (row, col) onto a spare of its physical row.
  // OK, RESOURCE_EXHAUSTED (no spare left), OUT_OF_RANGE, FAILED_PRECONDITION (not programmed).
  Status Remap(uint32_t row, uint32_t col);
  // Spares still free in the physical row behind usable row `row`.
  uint32_t spares_left(uint32_t usable_row) const;
  // True when usable PE (row, col) is dead and was not remapped.
  bool IsDead(uint32_t row, uint32_t col) const;
  // Usable coordinates of every dead PE that was not remapped, row-major.
  struct Pe {
    uint32_t row = 0;
    uint32_t col = 0;
  };
  std::vector<Pe> DeadPes() const;
  // The physical row behind usable row `row`. REQUIRES: programmed(), row < usable_height().
  uint32_t physical_row(uint32_t row) const { return usable_to_phys_[row]; }

 private:
  bool InRect(uint32_t row, uint32_t col) const;

  uint32_t rows_;
  uint32_t cols_;
  uint32_t spare_cols_;
  std::vector<uint32_t> fused_;        // Per physical row.
  std::vector<uint32_t> dead_;         // Per physical row: died at run time.
  std::vector<uint32_t> used_spares_;  // Per physical row: runtime remaps since Program.
  std::vector<uint32_t> boot_defects_;  // Per physical row: Defects() when programmed.
  std::vector<uint32_t> usable_to_phys_;
  std::vector<uint64_t> unmapped_dead_;  // row * width + col of dead PEs without a spare.
  uint64_t fused_total_ = 0;
  bool programmed_ = false;
};

}  // namespace wafer::sim
