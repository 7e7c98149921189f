// The board controller's NOR flash (board_map.h): the two firmware slots and the boot-control
// sector the boot ROM reads at reset.
#pragma once

#include <cstdint>

#include "firmware/bare_metal/register_bus.h"
#include "firmware/hal/firmware_flash.h"

namespace wafer::fw::board {

// Not thread-safe; driven only by the superloop.
class BoardFirmwareFlash final : public hal::FirmwareFlash {
 public:
  BoardFirmwareFlash();

  uint64_t slot_capacity() const override;
  Status EraseSlot(uint32_t slot) override;
  Status ProgramSlot(uint32_t slot, uint64_t offset, std::span<const std::byte> data) override;
  std::span<const std::byte> MappedSlot(uint32_t slot) const override;
  // A record whose magic or CRC-32C does not check (never written, or torn by a power loss
  // mid-write) reads as the factory default: slot 0 active, nothing pending.
  hal::BootControl ReadBootControl() const override;
  Status WriteBootControl(const hal::BootControl& control) override;

  // A sector erase takes the controller up to ~1 s; a program ~100 us.
  static constexpr uint32_t kTimeoutSpins = 400'000'000;

 private:
  // Runs one controller command at `address` (data for a program). OK or UNAVAILABLE.
  Status Command(uint32_t command, uintptr_t address, uint64_t data);
  Status EraseSector(uintptr_t address);
  // Programs `data` at absolute flash address `address`, double word by double word.
  Status Program(uintptr_t address, std::span<const std::byte> data);

  RegisterBus regs_;
};

}  // namespace wafer::fw::board
