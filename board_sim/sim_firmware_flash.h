// The simulated board's firmware flash: two image slots and the boot-control record, in host
// memory. Slot 0 starts with a valid factory image and runs.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "firmware/hal/firmware_flash.h"

namespace wafer::sim {

// Not thread-safe; owned by the board thread.
class SimFirmwareFlash final : public fw::hal::FirmwareFlash {
 public:
  static constexpr uint64_t kDefaultSlotBytes = 4u << 20;
  // What slot 0 holds at power-up.
  static constexpr std::string_view kFactoryImage = "waferfw-1.0.0 factory image\n";

  explicit SimFirmwareFlash(uint64_t slot_bytes = kDefaultSlotBytes);

  uint64_t slot_capacity() const override { return slot_bytes_; }
  Status EraseSlot(uint32_t slot) override;
  // NOR semantics: programming clears bits (new = old & data); erase sets them.
  Status ProgramSlot(uint32_t slot, uint64_t offset, std::span<const std::byte> data) override;
  std::span<const std::byte> MappedSlot(uint32_t slot) const override;
  fw::hal::BootControl ReadBootControl() const override { return control_; }
  Status WriteBootControl(const fw::hal::BootControl& control) override;

 private:
  uint64_t slot_bytes_;
  std::array<std::vector<std::byte>, fw::hal::kFirmwareSlots> slots_;
  fw::hal::BootControl control_;
};

}  // namespace wafer::sim
