#include "board_sim/sim_firmware_flash.h"

#include <algorithm>
#include <cstring>

#include "common/crc32c.h"

namespace wafer::sim {

SimFirmwareFlash::SimFirmwareFlash(uint64_t slot_bytes) : slot_bytes_(slot_bytes) {
  for (auto& s : slots_) s.assign(slot_bytes_, std::byte{0xFF});
  const auto factory = std::as_bytes(std::span(kFactoryImage.data(), kFactoryImage.size()));
  const size_t n = std::min<size_t>(factory.size(), slot_bytes_);
  std::memcpy(slots_[0].data(), factory.data(), n);
  control_.slots[0] = fw::hal::SlotRecord{true, n, Crc32c(factory.first(n))};
}

Status SimFirmwareFlash::EraseSlot(uint32_t slot) {
  if (slot >= slots_.size()) return OutOfRange();
  std::fill(slots_[slot].begin(), slots_[slot].end(), std::byte{0xFF});
  return OkStatus();
}

Status SimFirmwareFlash::ProgramSlot(uint32_t slot, uint64_t offset,
                                     std::span<const std::byte> data) {
  if (slot >= slots_.size() || offset > slot_bytes_ || data.size() > slot_bytes_ - offset) {
    return OutOfRange();
  }
  std::byte* p = slots_[slot].data() + offset;
  for (size_t i = 0; i < data.size(); ++i) p[i] &= data[i];
  return OkStatus();
}

std::span<const std::byte> SimFirmwareFlash::MappedSlot(uint32_t slot) const {
  if (slot >= slots_.size()) return {};
  return slots_[slot];
}

Status SimFirmwareFlash::WriteBootControl(const fw::hal::BootControl& control) {
  if (control.active_slot >= slots_.size() || control.fallback_slot >= slots_.size() ||
      control.pending_slot >= slots_.size()) {
    return InvalidArgument();
  }
  control_ = control;
  return OkStatus();
}

}  // namespace wafer::sim
