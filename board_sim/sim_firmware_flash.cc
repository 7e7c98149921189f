#include "board_sim/sim_firmware_flash.h"

#include <algorithm>
#include <cstring>

#include <sodium.h>

#include "common/crc32c.h"
#include "firmware/firmware_slots.h"

namespace wafer::sim {

Result<FirmwareSignature> ParseFirmwareSignature(const std::string& hex) {
  FirmwareSignature sig{};
  size_t len = 0;
  const char* end = nullptr;
  if (hex.size() != 2 * sig.size() ||
      sodium_hex2bin(reinterpret_cast<unsigned char*>(sig.data()), sig.size(), hex.data(),
                     hex.size(), nullptr, &len, &end) != 0 ||
      len != sig.size() || end != hex.data() + hex.size()) {
    return InvalidArgument();
  }
  return sig;
}

SimFirmwareFlash::SimFirmwareFlash(uint64_t slot_bytes) : slot_bytes_(slot_bytes) {
  ProvisionFactoryImage(factory_image(), nullptr).IgnoreError();  // Too small: no image.
}

SimFirmwareFlash::SimFirmwareFlash(uint64_t slot_bytes, const FirmwareSignature& factory_signature)
    : slot_bytes_(slot_bytes) {
  ProvisionFactoryImage(factory_image(), &factory_signature).IgnoreError();  // Too small: none.
}

Status SimFirmwareFlash::ProvisionFactoryImage(std::span<const std::byte> image,
                                               const FirmwareSignature* signature) {
  for (auto& s : slots_) s.assign(slot_bytes_, std::byte{0xFF});
  control_ = fw::hal::BootControl{};
  const uint64_t trailer_bytes = signature != nullptr ? fw::FirmwareSlots::kTrailerBytes : 0;
  if (image.empty() || image.size() > slot_bytes_ || trailer_bytes > slot_bytes_ - image.size()) {
    return OutOfRange();
  }
  std::memcpy(slots_[0].data(), image.data(), image.size());
  if (signature != nullptr) {
    const auto trailer = fw::FirmwareSlots::MakeTrailer(*signature);
    std::memcpy(slots_[0].data() + image.size(), trailer.data(), trailer.size());
  }
  control_.slots[0] = fw::hal::SlotRecord{true, image.size(), Crc32c(image)};
  return OkStatus();
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
