// Firmware A/B slots through the command processor, with fake flash and a toy verifier.
#include "firmware/firmware_slots.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/crc32c.h"
#include "firmware/boot_state_machine.h"
#include "firmware/command_processor.h"
#include "firmware/testing/fake_platform.h"

namespace wafer::fw {
namespace {

class FirmwareSlotsTest : public ::testing::Test {
 protected:
  FirmwareSlotsTest() : cp_(std::make_unique<CommandProcessor>(fake_.platform())) {
    image_.resize(1000);
    for (size_t i = 0; i < image_.size(); ++i) image_[i] = std::byte(i * 7 + 3);
    signature_ = testing::FakeSignatureVerifier::Sign(image_);
  }

  Reply Run(Command c) {
    c.command_id = ++next_id_;
    Reply r;
    cp_->Handle(c, r);
    return r;
  }
  Reply Simple(CommandKind kind) {
    Command c;
    c.kind = kind;
    return Run(c);
  }
  StatusCode Begin(uint32_t slot, uint64_t size, uint32_t crc) {
    Command c;
    c.kind = CommandKind::kBeginFirmwareImage;
    c.image = FirmwareImageArgs{slot, size, crc, signature_};
    return Run(c).code;
  }
  StatusCode Chunk(uint32_t slot, uint64_t offset, size_t n, int crc_delta = 0) {
    Command c;
    c.kind = CommandKind::kWriteFirmwareChunk;
    const auto data = std::span<const std::byte>(image_).subspan(offset, n);
    c.image_chunk = FirmwareChunkArgs{slot, offset, data, Crc32c(data) + crc_delta};
    return Run(c).code;
  }
  StatusCode Commit(uint32_t slot) {
    Command c;
    c.kind = CommandKind::kCommitFirmwareImage;
    c.image_slot = slot;
    return Run(c).code;
  }
  // Sends the whole image into slot 1 in 400-byte chunks (the second one retried with overlap).
  StatusCode SendImage(uint32_t image_crc) {
    EXPECT_EQ(Begin(1, image_.size(), image_crc), StatusCode::kOk);
    EXPECT_EQ(Chunk(1, 0, 400), StatusCode::kOk);
    EXPECT_EQ(Chunk(1, 400, 400), StatusCode::kOk);
    EXPECT_EQ(Chunk(1, 300, 500), StatusCode::kOk);  // A retry overlapping written bytes.
    EXPECT_EQ(Chunk(1, 800, 200), StatusCode::kOk);
    return Commit(1);
  }
  uint32_t ImageCrc() const { return Crc32c(image_); }
  uint32_t ActiveSlot() { return Simple(CommandKind::kIdentify).active_firmware_slot; }
  std::vector<LogCode> LogCodes() {
    std::vector<LogRecord> out(kErrorLogCapacity);
    out.resize(cp_->error_log().Read(0, out).count);
    std::vector<LogCode> codes;
    for (const LogRecord& r : out) codes.push_back(r.code);
    return codes;
  }
  bool Logged(LogCode code) {
    for (LogCode c : LogCodes()) {
      if (c == code) return true;
    }
    return false;
  }
  // The first record with `code`, or nullptr.
  std::optional<LogRecord> Find(LogCode code) {
    std::vector<LogRecord> out(kErrorLogCapacity);
    out.resize(cp_->error_log().Read(0, out).count);
    for (const LogRecord& r : out) {
      if (r.code == code) return r;
    }
    return std::nullopt;
  }
  // A board that trusts the fake key, with its factory image signed by `key` (or unsigned).
  void KeyedBoard(bool signed_factory, uint32_t key = testing::FakeSignatureVerifier::kKey) {
    fake_.verifier.key_fused = true;
    const auto factory = testing::FakeFirmwareFlash::factory_image();
    const auto sig = testing::FakeSignatureVerifier::Sign(factory, key);
    fake_.flash.ProvisionFactoryImage(factory, signed_factory ? std::span<const std::byte>(sig)
                                                              : std::span<const std::byte>());
  }
  // Boots once, expecting the running image to fail verification with no fallback.
  void ExpectBootFaults(const char* detail) {
    const Reply r = Simple(CommandKind::kBoot);
    EXPECT_EQ(r.code, StatusCode::kFailedPrecondition);
    EXPECT_EQ(r.state, BootState::kFaulted);
    EXPECT_STREQ(r.detail, detail);
  }
  void BootOk() {
    Reply r = Simple(CommandKind::kBoot);
    ASSERT_EQ(r.code, StatusCode::kOk) << r.detail;
    ASSERT_EQ(r.state, BootState::kReady);
  }

  testing::FakePlatform fake_;
  std::unique_ptr<CommandProcessor> cp_;
  std::vector<std::byte> image_;
  std::array<std::byte, hal::kSignatureBytes> signature_{};
  uint64_t next_id_ = 0;
};

TEST_F(FirmwareSlotsTest, ValidImageActivatesOnResetAndBootConfirmsIt) {
  BootOk();
  ASSERT_EQ(SendImage(ImageCrc()), StatusCode::kOk);
  // The retry programmed nothing twice; Commit added the signature trailer.
  EXPECT_EQ(fake_.flash.programmed_bytes, image_.size() + FirmwareSlots::kTrailerBytes);
  EXPECT_EQ(fake_.verifier.calls, 1);
  EXPECT_TRUE(Logged(LogCode::kImageAccepted));
  EXPECT_EQ(ActiveSlot(), 0u);  // Not before a reset.
  hal::BootControl control = fake_.flash.ReadBootControl();
  EXPECT_TRUE(control.pending);
  EXPECT_TRUE(control.slots[1].valid);
  EXPECT_EQ(control.slots[1].crc32c, ImageCrc());

  EXPECT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
  EXPECT_EQ(ActiveSlot(), 1u);
  EXPECT_TRUE(fake_.flash.ReadBootControl().trial);
  EXPECT_TRUE(Logged(LogCode::kImageActivated));
  BootOk();
  control = fake_.flash.ReadBootControl();
  EXPECT_FALSE(control.trial);
  EXPECT_EQ(control.active_slot, 1u);
  EXPECT_EQ(control.fallback_slot, 0u);
  EXPECT_TRUE(Logged(LogCode::kImageConfirmed));
  // Confirmed: another reset keeps the new image.
  EXPECT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
  EXPECT_EQ(ActiveSlot(), 1u);
}

TEST_F(FirmwareSlotsTest, ReadFirmwareSlotsDescribesBothSlots) {
  // An image whose header names its version, signed as sent.
  const std::string header = "waferfw-2.1.0-rc1 build 7\n";
  for (size_t i = 0; i < header.size(); ++i) image_[i] = std::byte(header[i]);
  signature_ = testing::FakeSignatureVerifier::Sign(image_);
  BootOk();
  Reply r = Simple(CommandKind::kReadFirmwareSlots);
  ASSERT_EQ(r.kind, ReplyKind::kFirmwareSlots);
  const FirmwareSlotsSummary& before = r.firmware_slots;
  EXPECT_EQ(before.active_slot, 0u);
  EXPECT_FALSE(before.pending);
  EXPECT_FALSE(before.trial);
  EXPECT_FALSE(before.signing_key);
  EXPECT_TRUE(before.slots[0].valid);
  EXPECT_EQ(before.slots[0].size, testing::FakeFirmwareFlash::factory_image().size());
  EXPECT_FALSE(before.slots[0].has_signature);  // The fake factory image is unsigned...
  EXPECT_EQ(before.slots[0].version_length, 0u);  // ...and names no version.
  EXPECT_FALSE(before.slots[1].valid);
  EXPECT_EQ(before.slots[1].size, 0u);

  ASSERT_EQ(SendImage(ImageCrc()), StatusCode::kOk);
  r = Simple(CommandKind::kReadFirmwareSlots);
  const FirmwareSlotsSummary& after = r.firmware_slots;
  EXPECT_TRUE(after.pending);
  EXPECT_EQ(after.pending_slot, 1u);
  const FirmwareSlotSummary& slot = after.slots[1];
  EXPECT_TRUE(slot.valid);
  EXPECT_EQ(slot.size, image_.size());
  EXPECT_EQ(slot.crc32c, ImageCrc());
  EXPECT_TRUE(slot.has_signature);
  EXPECT_EQ(slot.signature, signature_);
  EXPECT_EQ(std::string(slot.version.data(), slot.version_length), "waferfw-2.1.0-rc1");
  // Served while faulted too (a host must see what it may roll back to).
  EXPECT_TRUE(IsCommandAllowed(BootState::kFaulted, CommandKind::kReadFirmwareSlots));
}

TEST_F(FirmwareSlotsTest, RollbackBootsTheOtherSlotOnTrialAndKeepsIt) {
  BootOk();
  ASSERT_EQ(SendImage(ImageCrc()), StatusCode::kOk);
  ASSERT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
  BootOk();
  ASSERT_EQ(ActiveSlot(), 1u);
  ASSERT_FALSE(fake_.flash.ReadBootControl().trial);

  Reply r = Simple(CommandKind::kRollbackFirmware);
  ASSERT_EQ(r.code, StatusCode::kOk) << r.detail;
  const std::optional<LogRecord> logged = Find(LogCode::kRollbackRequested);
  ASSERT_TRUE(logged.has_value());
  EXPECT_EQ(logged->args[0], 1u);
  EXPECT_EQ(logged->args[1], 0u);
  EXPECT_EQ(ActiveSlot(), 1u);  // Not before a reset.
  hal::BootControl control = fake_.flash.ReadBootControl();
  EXPECT_TRUE(control.pending);
  EXPECT_EQ(control.pending_slot, 0u);

  ASSERT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
  EXPECT_EQ(ActiveSlot(), 0u);
  EXPECT_TRUE(fake_.flash.ReadBootControl().trial);
  BootOk();
  control = fake_.flash.ReadBootControl();
  EXPECT_FALSE(control.trial);
  EXPECT_EQ(control.active_slot, 0u);
  EXPECT_TRUE(control.slots[1].valid);  // An operator's rollback keeps the other image.
  EXPECT_FALSE(Logged(LogCode::kImageRolledBack));  // Not a failed image.
  // And back again.
  ASSERT_EQ(Simple(CommandKind::kRollbackFirmware).code, StatusCode::kOk);
  ASSERT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
  BootOk();
  EXPECT_EQ(ActiveSlot(), 1u);
}

TEST_F(FirmwareSlotsTest, RollbackNeedsAValidOtherImageAndNothingPendingOrOnTrial) {
  BootOk();
  Reply r = Simple(CommandKind::kRollbackFirmware);
  EXPECT_EQ(r.code, StatusCode::kFailedPrecondition);
  EXPECT_STREQ(r.detail, "the other firmware slot holds no valid image");
  ASSERT_EQ(SendImage(ImageCrc()), StatusCode::kOk);
  r = Simple(CommandKind::kRollbackFirmware);
  EXPECT_EQ(r.code, StatusCode::kFailedPrecondition);
  EXPECT_STREQ(r.detail, "an image already waits for the next reset");
  ASSERT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);  // Slot 1 on trial.
  r = Simple(CommandKind::kRollbackFirmware);
  EXPECT_EQ(r.code, StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(r.detail).find("on trial"), std::string::npos) << r.detail;
  EXPECT_FALSE(Logged(LogCode::kRollbackRequested));
  // Never while a boot is in progress; a faulted board may roll back.
  EXPECT_FALSE(IsCommandAllowed(BootState::kSelfTest, CommandKind::kRollbackFirmware));
  EXPECT_TRUE(IsCommandAllowed(BootState::kFaulted, CommandKind::kRollbackFirmware));
}

TEST_F(FirmwareSlotsTest, BadImageCrcIsRefusedAndNothingActivates) {
  BootOk();
  EXPECT_EQ(SendImage(ImageCrc() ^ 1), StatusCode::kDataLoss);
  EXPECT_EQ(fake_.verifier.calls, 0);
  EXPECT_TRUE(Logged(LogCode::kImageCrcMismatch));
  EXPECT_FALSE(fake_.flash.ReadBootControl().pending);
  EXPECT_FALSE(fake_.flash.ReadBootControl().slots[1].valid);
  EXPECT_EQ(Commit(1), StatusCode::kFailedPrecondition);  // The transfer ended.
  EXPECT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
  EXPECT_EQ(ActiveSlot(), 0u);
}

TEST_F(FirmwareSlotsTest, FlashCorruptionAfterProgrammingIsCaughtByTheImageCrc) {
  BootOk();
  ASSERT_EQ(Begin(1, image_.size(), ImageCrc()), StatusCode::kOk);
  ASSERT_EQ(Chunk(1, 0, image_.size()), StatusCode::kOk);
  fake_.flash.CorruptBit(1, 17);
  EXPECT_EQ(Commit(1), StatusCode::kDataLoss);
}

TEST_F(FirmwareSlotsTest, BadChunkCrcWritesNothing) {
  BootOk();
  ASSERT_EQ(Begin(1, image_.size(), ImageCrc()), StatusCode::kOk);
  EXPECT_EQ(Chunk(1, 0, 400, 1), StatusCode::kDataLoss);
  EXPECT_EQ(fake_.flash.programmed_bytes, 0u);
  EXPECT_TRUE(Logged(LogCode::kImageChunkCrcMismatch));
  EXPECT_EQ(Chunk(1, 0, 400), StatusCode::kOk);  // The retry goes through.
}

TEST_F(FirmwareSlotsTest, BadSignatureIsRefused) {
  BootOk();
  signature_[10] ^= std::byte{0x80};
  EXPECT_EQ(SendImage(ImageCrc()), StatusCode::kPermissionDenied);
  EXPECT_EQ(fake_.verifier.calls, 1);
  EXPECT_TRUE(Logged(LogCode::kImageSignatureInvalid));
  EXPECT_FALSE(fake_.flash.ReadBootControl().slots[1].valid);
  EXPECT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
  EXPECT_EQ(ActiveSlot(), 0u);
}

TEST_F(FirmwareSlotsTest, FailedBootRollsBackToThePreviousSlot) {
  fake_.wafer.failing_slot = 1;
  BootOk();
  ASSERT_EQ(SendImage(ImageCrc()), StatusCode::kOk);
  ASSERT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
  ASSERT_EQ(ActiveSlot(), 1u);
  const int cycles = fake_.wafer.power_cycles;
  Reply r = Simple(CommandKind::kBoot);
  EXPECT_EQ(r.code, StatusCode::kOk) << r.detail;
  EXPECT_TRUE(r.self_test_passed);
  EXPECT_EQ(r.state, BootState::kReady);
  EXPECT_NE(std::string(r.detail).find("rolled back"), std::string::npos);
  EXPECT_EQ(fake_.wafer.power_cycles, cycles + 1);  // Rebooted into the old image.
  EXPECT_EQ(ActiveSlot(), 0u);
  const hal::BootControl control = fake_.flash.ReadBootControl();
  EXPECT_FALSE(control.trial);
  EXPECT_FALSE(control.slots[1].valid);  // Never tried again.
  EXPECT_TRUE(Logged(LogCode::kSelfTestFailed));
  EXPECT_TRUE(Logged(LogCode::kImageRolledBack));
  // Stays on the old image across resets.
  EXPECT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
  EXPECT_EQ(ActiveSlot(), 0u);
  BootOk();
}

TEST_F(FirmwareSlotsTest, ResetBeforeATrialImageBootsRollsBack) {
  BootOk();
  ASSERT_EQ(SendImage(ImageCrc()), StatusCode::kOk);
  ASSERT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
  ASSERT_EQ(ActiveSlot(), 1u);
  ASSERT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);  // No self-test in between.
  EXPECT_EQ(ActiveSlot(), 0u);
  EXPECT_TRUE(Logged(LogCode::kImageRolledBack));
}

TEST_F(FirmwareSlotsTest, RefusesTheRunningSlotBadSlotsAndSizes) {
  BootOk();
  EXPECT_EQ(Begin(0, 100, 0), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Begin(2, 100, 0), StatusCode::kOutOfRange);
  EXPECT_EQ(Begin(1, 0, 0), StatusCode::kOutOfRange);
  EXPECT_EQ(Begin(1, testing::FakeFirmwareFlash::kSlotBytes + 1, 0), StatusCode::kOutOfRange);
  EXPECT_TRUE(Logged(LogCode::kImageOutOfRange));
  EXPECT_EQ(fake_.flash.erases, 0);
  EXPECT_EQ(Chunk(1, 0, 10), StatusCode::kFailedPrecondition);  // No transfer.
}

TEST_F(FirmwareSlotsTest, ChunksOutOfRangeOrWithGapsAreRefused) {
  BootOk();
  ASSERT_EQ(Begin(1, 500, ImageCrc()), StatusCode::kOk);
  EXPECT_EQ(Chunk(1, 400, 200), StatusCode::kOutOfRange);  // Past the image's end.
  EXPECT_TRUE(Logged(LogCode::kImageOutOfRange));
  EXPECT_EQ(Chunk(1, 100, 100), StatusCode::kFailedPrecondition);  // A gap.
  EXPECT_EQ(Chunk(0, 0, 100), StatusCode::kFailedPrecondition);    // Another slot.
  EXPECT_EQ(Commit(1), StatusCode::kFailedPrecondition);            // Incomplete.
}

TEST_F(FirmwareSlotsTest, AFaultedBoardCanBeReflashedButNotDuringSelfTest) {
  fake_.wafer.self_test_fails = true;
  EXPECT_EQ(Simple(CommandKind::kBoot).state, BootState::kFaulted);
  EXPECT_EQ(SendImage(ImageCrc()), StatusCode::kOk);
  EXPECT_FALSE(IsCommandAllowed(BootState::kSelfTest, CommandKind::kBeginFirmwareImage));
  EXPECT_TRUE(IsCommandAllowed(BootState::kPowerOn, CommandKind::kWriteFirmwareChunk));
}

TEST_F(FirmwareSlotsTest, NewTransferIntoAPendingSlotCancelsIt) {
  BootOk();
  ASSERT_EQ(SendImage(ImageCrc()), StatusCode::kOk);
  ASSERT_EQ(Begin(1, image_.size(), ImageCrc()), StatusCode::kOk);
  EXPECT_FALSE(fake_.flash.ReadBootControl().pending);
  EXPECT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
  EXPECT_EQ(ActiveSlot(), 0u);
}

// The factory image is verified at boot like any other: its CRC always, its signature whenever
// the board trusts a key.

constexpr char kCrcDetail[] = "the running firmware image no longer matches its CRC-32C";
constexpr char kUnsignedDetail[] =
    "the running firmware image carries no signature, but the board trusts a signing key";
constexpr char kSignatureDetail[] =
    "the running firmware image's signature does not verify (or its trailer is damaged)";

TEST_F(FirmwareSlotsTest, BoardWithoutAKeyBootsItsUnsignedFactoryImageAfterItsCrc) {
  ASSERT_FALSE(fake_.verifier.has_key());
  BootOk();
  EXPECT_EQ(ActiveSlot(), 0u);
  EXPECT_EQ(fake_.verifier.calls, 0);  // Nothing to check a signature against.
  EXPECT_FALSE(Logged(LogCode::kImageCrcMismatch));
  EXPECT_FALSE(Logged(LogCode::kImageSignatureInvalid));
}

TEST_F(FirmwareSlotsTest, FactoryImageBitRotFaultsWhenNoOtherImageExists) {
  fake_.flash.CorruptBit(0, 3);
  ExpectBootFaults(kCrcDetail);
  const auto crc = Find(LogCode::kImageCrcMismatch);
  ASSERT_TRUE(crc.has_value());
  EXPECT_EQ(crc->severity, Severity::kError);
  EXPECT_EQ(crc->args[0], 0u);  // Slot.
  EXPECT_EQ(crc->args[1], Crc32c(testing::FakeFirmwareFlash::factory_image()));  // Recorded.
  EXPECT_NE(crc->args[2], crc->args[1]);                                         // Actual.
  EXPECT_FALSE(fake_.flash.ReadBootControl().slots[0].valid);  // Never booted again.
  EXPECT_EQ(fake_.verifier.calls, 0);  // The CRC failed first.
  // The faulted board can still be re-flashed into its other slot, and boots that.
  ASSERT_EQ(SendImage(ImageCrc()), StatusCode::kOk);
  ASSERT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
  BootOk();
  EXPECT_EQ(ActiveSlot(), 1u);
}

TEST_F(FirmwareSlotsTest, FactoryImageBitRotFallsBackToTheOtherSlot) {
  ASSERT_EQ(SendImage(ImageCrc()), StatusCode::kOk);  // Slot 1 holds an accepted image.
  fake_.flash.CorruptBit(0, 9);
  const Reply r = Simple(CommandKind::kBoot);
  EXPECT_EQ(r.code, StatusCode::kOk) << r.detail;
  EXPECT_EQ(r.state, BootState::kReady);
  EXPECT_STREQ(r.detail, "firmware image failed verification; rolled back to the other slot");
  EXPECT_EQ(ActiveSlot(), 1u);
  EXPECT_FALSE(fake_.flash.ReadBootControl().slots[0].valid);
  EXPECT_TRUE(Logged(LogCode::kImageCrcMismatch));
  const auto rollback = Find(LogCode::kImageRolledBack);
  ASSERT_TRUE(rollback.has_value());
  EXPECT_EQ(rollback->args[0], 0u);
  EXPECT_EQ(rollback->args[1], 1u);
}

TEST_F(FirmwareSlotsTest, KeyedBoardBootsItsSignedFactoryImage) {
  KeyedBoard(/*signed_factory=*/true);
  BootOk();
  EXPECT_EQ(ActiveSlot(), 0u);
  EXPECT_EQ(fake_.verifier.calls, 1);  // The factory image's signature, checked at boot.
  EXPECT_FALSE(Logged(LogCode::kImageSignatureInvalid));
  // At every boot.
  ASSERT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
  BootOk();
  EXPECT_EQ(fake_.verifier.calls, 2);
}

TEST_F(FirmwareSlotsTest, KeyedBoardRefusesAnUnsignedFactoryImage) {
  KeyedBoard(/*signed_factory=*/false);
  ExpectBootFaults(kUnsignedDetail);
  const auto bad = Find(LogCode::kImageSignatureInvalid);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->severity, Severity::kError);
  EXPECT_EQ(bad->args[0], 0u);
  EXPECT_EQ(bad->args[1], testing::FakeFirmwareFlash::kFactoryImage.size());
  EXPECT_FALSE(Logged(LogCode::kImageCrcMismatch));  // The bytes were intact.
  EXPECT_EQ(fake_.verifier.calls, 0);
}

TEST_F(FirmwareSlotsTest, KeyedBoardWithAnUnsignedFactoryImageFallsBackToASignedImage) {
  KeyedBoard(/*signed_factory=*/false);
  ASSERT_EQ(SendImage(ImageCrc()), StatusCode::kOk);  // Slot 1: signed, accepted.
  const Reply r = Simple(CommandKind::kBoot);
  EXPECT_EQ(r.code, StatusCode::kOk) << r.detail;
  EXPECT_EQ(r.state, BootState::kReady);
  EXPECT_EQ(ActiveSlot(), 1u);
  EXPECT_TRUE(Logged(LogCode::kImageSignatureInvalid));
  EXPECT_TRUE(Logged(LogCode::kImageRolledBack));
}

TEST_F(FirmwareSlotsTest, KeyedBoardRefusesAFactoryImageSignedWithAnotherKey) {
  KeyedBoard(/*signed_factory=*/true, /*key=*/testing::FakeSignatureVerifier::kKey ^ 1);
  ExpectBootFaults(kSignatureDetail);
  EXPECT_TRUE(Logged(LogCode::kImageSignatureInvalid));
  EXPECT_EQ(fake_.verifier.calls, 1);
}

TEST_F(FirmwareSlotsTest, KeyedBoardRefusesAFactoryImageWithADamagedTrailer) {
  KeyedBoard(/*signed_factory=*/true);
  fake_.flash.CorruptBit(0, testing::FakeFirmwareFlash::kFactoryImage.size());  // The magic.
  ExpectBootFaults(kSignatureDetail);
  EXPECT_TRUE(Logged(LogCode::kImageSignatureInvalid));
}

TEST_F(FirmwareSlotsTest, SignedFactoryImageBitRotIsACrcFailureNotASignatureOne) {
  KeyedBoard(/*signed_factory=*/true);
  fake_.flash.CorruptBit(0, 0);
  ExpectBootFaults(kCrcDetail);
  EXPECT_TRUE(Logged(LogCode::kImageCrcMismatch));
  EXPECT_FALSE(Logged(LogCode::kImageSignatureInvalid));
  EXPECT_EQ(fake_.verifier.calls, 0);
}

// VerifyRunning's own codes, without the boot around it.
class VerifyRunningTest : public ::testing::Test {
 protected:
  Status Verify() {
    const char* detail = "";
    return slots_.VerifyRunning(detail);
  }
  FakeClock clock_;
  ErrorLog log_{clock_};
  testing::FakeFirmwareFlash flash_;
  testing::FakeSignatureVerifier verifier_;
  FirmwareSlots slots_{flash_, verifier_, log_};
};

TEST_F(VerifyRunningTest, FactoryImageCrcIsDataLossWithOrWithoutAKey) {
  EXPECT_TRUE(Verify().ok());
  flash_.CorruptBit(0, 1);
  EXPECT_EQ(Verify().code(), StatusCode::kDataLoss);
  verifier_.key_fused = true;
  EXPECT_EQ(Verify().code(), StatusCode::kDataLoss);
}

TEST_F(VerifyRunningTest, UnsignedImageIsPermissionDeniedOnlyOnAKeyedBoard) {
  EXPECT_TRUE(Verify().ok());
  verifier_.key_fused = true;
  EXPECT_EQ(Verify().code(), StatusCode::kPermissionDenied);
  const auto factory = testing::FakeFirmwareFlash::factory_image();
  flash_.ProvisionFactoryImage(factory, testing::FakeSignatureVerifier::Sign(factory));
  EXPECT_TRUE(Verify().ok());
}

TEST_F(VerifyRunningTest, AnImageWithNoRoomForATrailerIsUnsigned) {
  std::vector<std::byte> image(testing::FakeFirmwareFlash::kSlotBytes - 10, std::byte{0x5A});
  flash_.ProvisionFactoryImage(image, {});
  EXPECT_TRUE(Verify().ok());  // No key: its CRC is all there is to check.
  verifier_.key_fused = true;
  EXPECT_EQ(Verify().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(verifier_.calls, 0);
}

}  // namespace
}  // namespace wafer::fw
