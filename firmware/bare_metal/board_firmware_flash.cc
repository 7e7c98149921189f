#include "firmware/bare_metal/board_firmware_flash.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <type_traits>

#include "common/crc32c.h"
#include "firmware/bare_metal/board_map.h"

namespace wafer::fw::board {
namespace {

// The boot-control sector: a magic word, the record as laid out in memory (the boot ROM is
// built with the same compiler and ABI), and the CRC-32C of both.
constexpr uint32_t kBootControlMagic = 0x5746'4243u;  // "WFBC".
struct StoredBootControl {
  uint32_t magic = kBootControlMagic;
  hal::BootControl control;
  uint32_t crc32c = 0;
};
static_assert(std::is_trivially_copyable_v<StoredBootControl>);
static_assert(sizeof(StoredBootControl) <= kFlashSectorBytes);

uint32_t CrcOf(const StoredBootControl& s) {
  return Crc32c(std::span(reinterpret_cast<const std::byte*>(&s),
                          offsetof(StoredBootControl, crc32c)));
}

}  // namespace

BoardFirmwareFlash::BoardFirmwareFlash() : regs_(kFlashCtrlBase) {}

uint64_t BoardFirmwareFlash::slot_capacity() const { return kSlotBytes; }

Status BoardFirmwareFlash::Command(uint32_t command, uintptr_t address, uint64_t data) {
  regs_.Write<flash::kAddress>(static_cast<uint32_t>(address));
  regs_.Write<flash::kData0>(static_cast<uint32_t>(data));
  regs_.Write<flash::kData1>(static_cast<uint32_t>(data >> 32));
  regs_.Write<flash::kKey>(flash::kUnlockKey);
  regs_.Write<flash::kCommand>(command);
  uint32_t status = 0;
  const bool done = SpinUntil(
      [&] {
        status = regs_.Read<flash::kStatus>();
        return (status & flash::kStatusBusy) == 0;
      },
      kTimeoutSpins);
  return done && (status & flash::kStatusError) == 0 ? OkStatus() : Unavailable();
}

Status BoardFirmwareFlash::EraseSector(uintptr_t address) {
  return Command(flash::kCommandEraseSector, address, 0);
}

Status BoardFirmwareFlash::Program(uintptr_t address, std::span<const std::byte> data) {
  size_t done = 0;
  while (done < data.size()) {
    // The double word holding `address + done`, with 0xFF (leave as is) outside `data`.
    const uintptr_t at = address + done;
    const uintptr_t word = at & ~uintptr_t{7};
    std::array<std::byte, 8> bytes;
    bytes.fill(std::byte{0xFF});
    const size_t first = at - word;
    const size_t n = std::min<size_t>(8 - first, data.size() - done);
    std::memcpy(bytes.data() + first, data.data() + done, n);
    uint64_t value;
    std::memcpy(&value, bytes.data(), 8);
    if (Status s = Command(flash::kCommandProgram, word, value); !s.ok()) return s;
    done += n;
  }
  return OkStatus();
}

Status BoardFirmwareFlash::EraseSlot(uint32_t slot) {
  if (slot >= hal::kFirmwareSlots) return OutOfRange();
  for (size_t off = 0; off < kSlotBytes; off += kFlashSectorBytes) {
    if (Status s = EraseSector(kSlotBase[slot] + off); !s.ok()) return s;
  }
  return OkStatus();
}

Status BoardFirmwareFlash::ProgramSlot(uint32_t slot, uint64_t offset,
                                       std::span<const std::byte> data) {
  if (slot >= hal::kFirmwareSlots || offset > kSlotBytes || data.size() > kSlotBytes - offset) {
    return OutOfRange();
  }
  return Program(kSlotBase[slot] + offset, data);
}

std::span<const std::byte> BoardFirmwareFlash::MappedSlot(uint32_t slot) const {
  if (slot >= hal::kFirmwareSlots) return {};
  return {reinterpret_cast<const std::byte*>(kSlotBase[slot]), kSlotBytes};
}

hal::BootControl BoardFirmwareFlash::ReadBootControl() const {
  StoredBootControl stored;
  std::memcpy(&stored, reinterpret_cast<const void*>(kBootControlBase), sizeof(stored));
  if (stored.magic != kBootControlMagic || stored.crc32c != CrcOf(stored)) {
    return hal::BootControl{};
  }
  return stored.control;
}

Status BoardFirmwareFlash::WriteBootControl(const hal::BootControl& control) {
  // The CRC covers the bytes as they are programmed, padding included, and a read checks the
  // same bytes: whatever the padding holds, the two agree.
  StoredBootControl stored;
  stored.magic = kBootControlMagic;
  stored.control = control;
  stored.crc32c = CrcOf(stored);
  if (Status s = EraseSector(kBootControlBase); !s.ok()) return s;
  return Program(kBootControlBase,
                 std::span(reinterpret_cast<const std::byte*>(&stored), sizeof(stored)));
}

}  // namespace wafer::fw::board
