// Per-PE SRAM occupancy of a wafer's usable rectangle: what each PE holds, in bytes, summed
// over every reservation placed on it. Reservations are all-or-nothing.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "firmware/hal/wafer.h"

namespace wafer::sim {

// `bytes_per_pe` on every PE of `rect`.
struct SramReservation {
  fw::hal::PeRect rect;
  uint64_t bytes_per_pe = 0;
};

// Not thread-safe.
class SramMap {
 public:
  // Forgets every reservation and sizes the map to `width` x `height` PEs of `sram_per_pe`.
  void Reset(uint32_t width, uint32_t height, uint32_t sram_per_pe);

  // Adds every reservation, or none.
  // Returns:
  //   OK                 - added.
  //   INVALID_ARGUMENT   - a rectangle is empty or reaches outside the map.
  //   RESOURCE_EXHAUSTED - some PE would hold more than sram_per_pe; `*full_pe` (if not null)
  //                        is its index (row * width + column).
  Status Reserve(std::span<const SramReservation> reservations, uint64_t* full_pe = nullptr);

  // Removes reservations added earlier by Reserve (the same list).
  void Release(std::span<const SramReservation> reservations);

  uint64_t used_bytes() const { return used_bytes_; }
  uint64_t total_bytes() const { return uint64_t{width_} * height_ * sram_per_pe_; }
  uint32_t used_at(uint32_t row, uint32_t col) const { return used_[Index(row, col)]; }
  uint32_t width() const { return width_; }
  uint32_t height() const { return height_; }

 private:
  size_t Index(uint32_t row, uint32_t col) const { return size_t{row} * width_ + col; }
  bool Inside(const fw::hal::PeRect& r) const;
  // Adds (sign > 0) or removes each reservation's bytes on its PEs, unchecked.
  void Apply(std::span<const SramReservation> reservations, int sign);

  uint32_t width_ = 0;
  uint32_t height_ = 0;
  uint32_t sram_per_pe_ = 0;
  std::vector<uint32_t> used_;  // Bytes per PE, row-major.
  uint64_t used_bytes_ = 0;
};

}  // namespace wafer::sim
