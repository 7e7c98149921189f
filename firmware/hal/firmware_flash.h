// The flash that holds the board's two firmware image slots (A/B) and the boot-control record
// the boot ROM reads at reset. A narrow interface: the simulator keeps it in host memory, a test
// fake in fixed arrays, a real driver in the MCU's memory-mapped NOR flash.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "common/status.h"

namespace wafer::fw::hal {

inline constexpr uint32_t kFirmwareSlots = 2;

// What the boot control knows about one slot's image.
struct SlotRecord {
  bool valid = false;  // A complete image whose CRC-32C and signature were checked.
  uint64_t size = 0;
  uint32_t crc32c = 0;
};

// The record that decides which slot runs. Written as a whole (one flash sector, atomically).
struct BootControl {
  uint32_t active_slot = 0;    // The slot running now.
  uint32_t fallback_slot = 0;  // Where to return when a trial boot fails.
  bool pending = false;        // `pending_slot` holds an accepted image for the next reset.
  uint32_t pending_slot = 0;
  bool trial = false;          // `active_slot` has not passed a self-test yet.
  std::array<SlotRecord, kFirmwareSlots> slots{};
};

// Not thread-safe; driven only by the firmware's superloop.
class FirmwareFlash {
 public:
  virtual ~FirmwareFlash() = default;

  // Bytes each slot holds.
  virtual uint64_t slot_capacity() const = 0;

  // Erases a whole slot. OK, OUT_OF_RANGE (no such slot) or UNAVAILABLE (the flash failed).
  virtual Status EraseSlot(uint32_t slot) = 0;

  // Programs `data` at `offset` of an erased slot.
  // Returns OK, OUT_OF_RANGE (slot or range outside the slot) or UNAVAILABLE.
  virtual Status ProgramSlot(uint32_t slot, uint64_t offset, std::span<const std::byte> data) = 0;

  // The slot's contents, memory-mapped: slot_capacity() bytes, valid until the next Erase or
  // Program. Empty for a slot that does not exist.
  virtual std::span<const std::byte> MappedSlot(uint32_t slot) const = 0;

  virtual BootControl ReadBootControl() const = 0;

  // Replaces the boot-control record. OK or UNAVAILABLE.
  virtual Status WriteBootControl(const BootControl& control) = 0;
};

}  // namespace wafer::fw::hal
