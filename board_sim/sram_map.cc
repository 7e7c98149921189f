#include "board_sim/sram_map.h"

namespace wafer::sim {

void SramMap::Reset(uint32_t width, uint32_t height, uint32_t sram_per_pe) {
  width_ = width;
  height_ = height;
  sram_per_pe_ = sram_per_pe;
  used_.assign(size_t{width} * height, 0);
  used_bytes_ = 0;
}

bool SramMap::Inside(const fw::hal::PeRect& r) const {
  return r.w != 0 && r.h != 0 && r.x < width_ && r.y < height_ && r.w <= width_ - r.x &&
         r.h <= height_ - r.y;
}

void SramMap::Apply(std::span<const SramReservation> reservations, int sign) {
  for (const SramReservation& r : reservations) {
    const auto delta = static_cast<uint32_t>(r.bytes_per_pe);
    for (uint32_t row = r.rect.y; row < r.rect.y + r.rect.h; ++row) {
      uint32_t* pe = &used_[Index(row, r.rect.x)];
      for (uint32_t c = 0; c < r.rect.w; ++c) pe[c] = sign > 0 ? pe[c] + delta : pe[c] - delta;
    }
    const uint64_t bytes = r.bytes_per_pe * r.rect.pes();
    used_bytes_ = sign > 0 ? used_bytes_ + bytes : used_bytes_ - bytes;
  }
}

Status SramMap::Reserve(std::span<const SramReservation> reservations, uint64_t* full_pe) {
  for (const SramReservation& r : reservations) {
    if (!Inside(r.rect)) return InvalidArgument();
    if (r.bytes_per_pe > sram_per_pe_) {
      if (full_pe != nullptr) *full_pe = Index(r.rect.y, r.rect.x);
      return ResourceExhausted();
    }
  }
  // Add one reservation at a time and check the PEs it touched: overlapping reservations of the
  // same list add up, as they would in SRAM.
  for (size_t i = 0; i < reservations.size(); ++i) {
    const SramReservation& r = reservations[i];
    const auto delta = static_cast<uint32_t>(r.bytes_per_pe);
    for (uint32_t row = r.rect.y; row < r.rect.y + r.rect.h; ++row) {
      const uint32_t* pe = &used_[Index(row, r.rect.x)];
      for (uint32_t c = 0; c < r.rect.w; ++c) {
        if (pe[c] + uint64_t{delta} > sram_per_pe_) {
          Apply(reservations.first(i), -1);  // Undo what was added.
          if (full_pe != nullptr) *full_pe = Index(row, r.rect.x + c);
          return ResourceExhausted();
        }
      }
    }
    Apply(reservations.subspan(i, 1), +1);
  }
  return OkStatus();
}

void SramMap::Release(std::span<const SramReservation> reservations) {
  Apply(reservations, -1);
}

}  // namespace wafer::sim
