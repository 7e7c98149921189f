// Test fakes for the firmware-update HAL: flash slots in fixed arrays (NOR semantics: erase sets
// 0xFF, programming can only clear bits) and a signature verifier with a toy signing rule.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "common/crc32c.h"
#include "firmware/firmware_slots.h"
#include "firmware/hal/firmware_flash.h"
#include "firmware/hal/signature_verifier.h"

namespace wafer::fw::testing {

class FakeFirmwareFlash final : public hal::FirmwareFlash {
 public:
  static constexpr size_t kSlotBytes = 4096;
  // The bytes of the factory image FakeFirmwareFlash() provisions (16 bytes, no terminator).
  static constexpr std::array<char, 16> kFactoryImage = {'f', 'a', 'k', 'e', ' ', 'f', 'a', 'c',
                                                         't', 'o', 'r', 'y', ' ', 'i', 'm', 'g'};

  // Slot 0 holds an unsigned factory image (kFactoryImage, with its correct CRC-32C) and runs:
  // what a board that trusts no key boots (see FakeSignatureVerifier::key_fused).
  FakeFirmwareFlash() { ProvisionFactoryImage(factory_image(), {}); }

  static std::span<const std::byte> factory_image() {
    return std::as_bytes(std::span(kFactoryImage));
  }

  // Manufacture: erases both slots, writes `image` into slot 0 followed, when `signature` is not
  // empty (kSignatureBytes), by the trailer Commit would write (FirmwareSlots::MakeTrailer), and
  // records it as the only image, active and settled. REQUIRES: the image and trailer fit a slot.
  void ProvisionFactoryImage(std::span<const std::byte> image,
                             std::span<const std::byte> signature) {
    for (auto& s : slots_) s.fill(std::byte{0xFF});
    std::copy(image.begin(), image.end(), slots_[0].begin());
    if (signature.size() == hal::kSignatureBytes) {
      const auto trailer = FirmwareSlots::MakeTrailer(signature.first<hal::kSignatureBytes>());
      std::copy(trailer.begin(), trailer.end(), slots_[0].begin() + image.size());
    }
    control_ = hal::BootControl{};
    control_.slots[0] = hal::SlotRecord{true, image.size(), Crc32c(image)};
  }

  uint64_t slot_capacity() const override { return kSlotBytes; }
  Status EraseSlot(uint32_t slot) override {
    if (slot >= hal::kFirmwareSlots) return OutOfRange();
    ++erases;
    slots_[slot].fill(std::byte{0xFF});
    return OkStatus();
  }
  Status ProgramSlot(uint32_t slot, uint64_t offset, std::span<const std::byte> data) override {
    if (slot >= hal::kFirmwareSlots || offset > kSlotBytes || data.size() > kSlotBytes - offset) {
      return OutOfRange();
    }
    for (size_t i = 0; i < data.size(); ++i) slots_[slot][offset + i] &= data[i];
    programmed_bytes += data.size();
    return OkStatus();
  }
  std::span<const std::byte> MappedSlot(uint32_t slot) const override {
    if (slot >= hal::kFirmwareSlots) return {};
    return slots_[slot];
  }
  hal::BootControl ReadBootControl() const override { return control_; }
  Status WriteBootControl(const hal::BootControl& control) override {
    if (fail_control_writes) return Unavailable();
    control_ = control;
    return OkStatus();
  }

  // Flips one bit of a slot behind the firmware's back (a flash fault).
  void CorruptBit(uint32_t slot, size_t offset) { slots_[slot][offset] ^= std::byte{0x01}; }

  bool fail_control_writes = false;
  int erases = 0;
  size_t programmed_bytes = 0;

 private:
  std::array<std::array<std::byte, kSlotBytes>, hal::kFirmwareSlots> slots_{};
  hal::BootControl control_;
};

// Accepts a "signature" whose first 4 bytes are the CRC-32C of the message xor `key` and whose
// other bytes are zero. Not cryptography: it only lets firmware tests tell good from bad.
//
// `key_fused` is what has_key() reports. It is false by default, so that FakeFirmwareFlash's
// unsigned factory image boots after its CRC check, as on a board without a key, and the verifier
// is consulted only for images that carry a trailer. Unlike a real keyless board, Verify applies
// the toy rule either way, so that update tests need no extra setup; tests of the rule for signed
// factory images set it (and provision a signed factory image).
class FakeSignatureVerifier final : public hal::SignatureVerifier {
 public:
  static std::array<std::byte, hal::kSignatureBytes> Sign(std::span<const std::byte> message,
                                                          uint32_t key = kKey) {
    std::array<std::byte, hal::kSignatureBytes> sig{};
    const uint32_t v = Crc32c(message) ^ key;
    for (int i = 0; i < 4; ++i) sig[i] = std::byte(v >> (8 * i));
    return sig;
  }
  Status Verify(std::span<const std::byte> message,
                std::span<const std::byte, hal::kSignatureBytes> signature) override {
    ++calls;
    const auto want = Sign(message);
    return std::equal(want.begin(), want.end(), signature.begin())
               ? OkStatus()
               : Status(StatusCode::kPermissionDenied);
  }
  bool has_key() const override { return key_fused; }
  static constexpr uint32_t kKey = 0x5EC0DE11u;
  bool key_fused = false;
  int calls = 0;
};

}  // namespace wafer::fw::testing
