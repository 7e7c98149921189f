// Firmware A/B update on the simulated board: the firmware core with SimWafer, SimFirmwareFlash
// and the libsodium verifier (real Ed25519 keys and signatures).
#include <gtest/gtest.h>
#include <sodium.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "board_sim/board_runner.h"
#include "board_sim/sim_firmware_flash.h"
#include "board_sim/sim_wafer.h"
#include "board_sim/sodium_signature_verifier.h"
#include "common/crc32c.h"
#include "firmware/command_processor.h"
#include "firmware/firmware_slots.h"

namespace wafer::sim {
namespace {

namespace hal = ::wafer::fw::hal;
using fw::Command;
using fw::CommandKind;
using fw::Reply;

struct KeyPair {
  FirmwarePublicKey pk{};
  std::array<unsigned char, crypto_sign_SECRETKEYBYTES> sk{};
  KeyPair() {
    EXPECT_EQ(sodium_init() >= 0, true);
    crypto_sign_keypair(pk.data(), sk.data());
  }
  FirmwareSignature Sign(std::span<const std::byte> m) const {
    FirmwareSignature sig{};
    crypto_sign_detached(reinterpret_cast<unsigned char*>(sig.data()), nullptr,
                         reinterpret_cast<const unsigned char*>(m.data()), m.size(), sk.data());
    return sig;
  }
};

std::vector<std::byte> MakeImage(size_t n, const std::string& embed = "") {
  std::vector<std::byte> image(n);
  for (size_t i = 0; i < n; ++i) image[i] = std::byte((i * 31 + 7) & 0xFF);
  for (size_t i = 0; i < embed.size(); ++i) image[n / 2 + i] = std::byte(embed[i]);
  return image;
}

// How manufacture left slot 0 (FirmwareUpdateTest::factory_).
enum class Factory {
  kSignedIfKeyed,      // Signed with the board's key when it trusts one, else unsigned.
  kUnsigned,           // kFactoryImage without a trailer.
  kSignedByOtherKey,   // Signed, but not with the key the board trusts.
};

class FirmwareUpdateTest : public ::testing::Test {
 protected:
  // Builds the board. Slot 0 holds the factory image as `factory_` says.
  void Start(FaultPlan faults = {}, bool with_key = true, double defect_rate = -1) {
    HostResult<wafer_model::Preset> preset =
        wafer_model::LoadPreset("mini", WAFER_PRESET_DIR_FOR_TEST);
    ASSERT_TRUE(preset.ok()) << preset.error().ToString();
    if (defect_rate >= 0) preset->defect_rate = defect_rate;
    const auto factory = SimFirmwareFlash::factory_image();
    FirmwareSignature sig{};
    switch (factory_) {
      case Factory::kSignedIfKeyed:
        sig = key_.Sign(factory);
        ASSERT_TRUE(flash_.ProvisionFactoryImage(factory, with_key ? &sig : nullptr).ok());
        break;
      case Factory::kUnsigned:
        ASSERT_TRUE(flash_.ProvisionFactoryImage(factory, nullptr).ok());
        break;
      case Factory::kSignedByOtherKey:
        sig = KeyPair().Sign(factory);
        ASSERT_TRUE(flash_.ProvisionFactoryImage(factory, &sig).ok());
        break;
    }
    verifier_ = std::make_unique<SodiumSignatureVerifier>(
        with_key ? std::optional<FirmwarePublicKey>(key_.pk) : std::nullopt);
    SimWaferOptions options;
    options.faults = faults;
    options.firmware = &flash_;
    wafer_ = std::make_unique<SimWafer>(*preset, clock_, options);
    cp_ = std::make_unique<fw::CommandProcessor>(
        fw::Platform{*wafer_, flash_, *verifier_, clock_});
  }
  Reply Run(Command c) {
    Reply r;
    cp_->Handle(c, r);
    return r;
  }
  Reply Simple(CommandKind kind) {
    Command c;
    c.kind = kind;
    return Run(c);
  }
  // Transfers `image` into `slot` (1 unless given) in 64 KiB chunks and commits it.
  StatusCode Send(const std::vector<std::byte>& image, const FirmwareSignature& sig, uint32_t crc,
                  uint32_t slot = 1) {
    Command c;
    c.kind = CommandKind::kBeginFirmwareImage;
    c.image = fw::FirmwareImageArgs{slot, image.size(), crc, sig};
    Reply r = Run(c);
    if (r.code != StatusCode::kOk) return r.code;
    for (size_t off = 0; off < image.size(); off += 65536) {
      c = Command{};
      c.kind = CommandKind::kWriteFirmwareChunk;
      auto data = std::span<const std::byte>(image).subspan(
          off, std::min<size_t>(65536, image.size() - off));
      c.image_chunk = fw::FirmwareChunkArgs{slot, off, data, Crc32c(data)};
      r = Run(c);
      if (r.code != StatusCode::kOk) return r.code;
    }
    c = Command{};
    c.kind = CommandKind::kCommitFirmwareImage;
    c.image_slot = slot;
    return Run(c).code;
  }
  // Installs `image` in slot 1 and boots it (confirmed); slot 0 keeps the factory image.
  void Install(const std::vector<std::byte>& image) {
    ASSERT_EQ(Send(image, key_.Sign(image), Crc32c(image)), StatusCode::kOk);
    Reply boot;
    ResetAndBoot(&boot);
    ASSERT_EQ(boot.code, StatusCode::kOk) << boot.detail;
    ASSERT_EQ(ActiveSlot(), 1u);
  }
  // Flash decay: clears bit 0 of byte `offset` of `slot` (NOR programming can only clear bits).
  void ClearBit(uint32_t slot, size_t offset) {
    const std::byte b = flash_.MappedSlot(slot)[offset];
    ASSERT_NE(b & std::byte{1}, std::byte{0}) << "pick a byte with bit 0 set";
    const std::byte cleared[] = {b & ~std::byte{1}};
    ASSERT_TRUE(flash_.ProgramSlot(slot, offset, cleared).ok());
  }
  bool Logged(fw::LogCode code) {
    std::vector<fw::LogRecord> out(fw::kErrorLogCapacity);
    out.resize(cp_->error_log().Read(0, out).count);
    for (const auto& r : out) {
      if (r.code == code) return true;
    }
    return false;
  }
  uint32_t ActiveSlot() { return Simple(CommandKind::kIdentify).active_firmware_slot; }
  void ResetAndBoot(Reply* boot) {
    ASSERT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
    *boot = Simple(CommandKind::kBoot);
  }

  KeyPair key_;
  Factory factory_ = Factory::kSignedIfKeyed;
  FakeClock clock_;
  SimFirmwareFlash flash_;
  std::unique_ptr<SodiumSignatureVerifier> verifier_;
  std::unique_ptr<SimWafer> wafer_;
  std::unique_ptr<fw::CommandProcessor> cp_;
};

TEST_F(FirmwareUpdateTest, FactoryImageRunsFromSlot0) {
  Start();
  EXPECT_EQ(ActiveSlot(), 0u);
  const hal::BootControl c = flash_.ReadBootControl();
  EXPECT_TRUE(c.slots[0].valid);
  EXPECT_EQ(c.slots[0].size, SimFirmwareFlash::kFactoryImage.size());
  EXPECT_EQ(c.slots[0].crc32c,
            Crc32c(flash_.MappedSlot(0).first(SimFirmwareFlash::kFactoryImage.size())));
  EXPECT_FALSE(c.slots[1].valid);
  // Manufacture signed it with the board's key, in the trailer layout Commit writes.
  const auto sig = key_.Sign(SimFirmwareFlash::factory_image());
  const auto want = fw::FirmwareSlots::MakeTrailer(sig);
  EXPECT_TRUE(std::equal(want.begin(), want.end(),
                         flash_.MappedSlot(0).begin() + SimFirmwareFlash::kFactoryImage.size()));
  const Reply boot = Simple(CommandKind::kBoot);
  EXPECT_EQ(boot.code, StatusCode::kOk) << boot.detail;
  EXPECT_EQ(boot.state, fw::BootState::kReady);
  EXPECT_FALSE(Logged(fw::LogCode::kImageSignatureInvalid));
}

TEST_F(FirmwareUpdateTest, FreshFlashHoldsAnUnsignedFactoryImage) {
  const SimFirmwareFlash fresh;
  const auto slot = fresh.MappedSlot(0);
  const auto image = SimFirmwareFlash::factory_image();
  EXPECT_TRUE(std::equal(image.begin(), image.end(), slot.begin()));
  EXPECT_TRUE(std::all_of(slot.begin() + image.size(),
                          slot.begin() + image.size() + fw::FirmwareSlots::kTrailerBytes,
                          [](std::byte b) { return b == std::byte{0xFF}; }));
  EXPECT_EQ(fresh.ReadBootControl().slots[0].crc32c, Crc32c(image));
  // Signed at construction: the trailer follows the image.
  const FirmwareSignature sig = key_.Sign(image);
  const SimFirmwareFlash signed_flash(SimFirmwareFlash::kDefaultSlotBytes, sig);
  const auto trailer = fw::FirmwareSlots::MakeTrailer(sig);
  EXPECT_TRUE(std::equal(trailer.begin(), trailer.end(),
                         signed_flash.MappedSlot(0).begin() + image.size()));
  // A slot too small for the image and its trailer gets no image at all.
  SimFirmwareFlash tiny(image.size() + 10);
  EXPECT_TRUE(tiny.ReadBootControl().slots[0].valid);  // Unsigned: it fits.
  EXPECT_EQ(tiny.ProvisionFactoryImage(image, &sig).code(), StatusCode::kOutOfRange);
  EXPECT_FALSE(tiny.ReadBootControl().slots[0].valid);
}

TEST_F(FirmwareUpdateTest, KeyedBoardRefusesAnUnsignedFactoryImage) {
  factory_ = Factory::kUnsigned;
  Start();
  const Reply boot = Simple(CommandKind::kBoot);
  EXPECT_EQ(boot.code, StatusCode::kFailedPrecondition);
  EXPECT_EQ(boot.state, fw::BootState::kFaulted);
  EXPECT_STREQ(boot.detail,
               "the running firmware image carries no signature, but the board trusts a "
               "signing key");
  EXPECT_TRUE(Logged(fw::LogCode::kImageSignatureInvalid));
  EXPECT_FALSE(Logged(fw::LogCode::kImageCrcMismatch));
  // Only a signed image installed through the update brings the board up.
  const auto image = MakeImage(4000);
  ASSERT_EQ(Send(image, key_.Sign(image), Crc32c(image)), StatusCode::kOk);
  Reply again;
  ResetAndBoot(&again);
  EXPECT_EQ(again.code, StatusCode::kOk) << again.detail;
  EXPECT_EQ(ActiveSlot(), 1u);
}

TEST_F(FirmwareUpdateTest, KeyedBoardRefusesAFactoryImageSignedWithAnotherKey) {
  factory_ = Factory::kSignedByOtherKey;
  Start();
  const Reply boot = Simple(CommandKind::kBoot);
  EXPECT_EQ(boot.state, fw::BootState::kFaulted);
  EXPECT_STREQ(boot.detail,
               "the running firmware image's signature does not verify (or its trailer is "
               "damaged)");
  EXPECT_TRUE(Logged(fw::LogCode::kImageSignatureInvalid));
}

TEST_F(FirmwareUpdateTest, FactoryImageBitRotFallsBackToTheOtherSlot) {
  Start();
  const auto image = MakeImage(5000);
  ASSERT_EQ(Send(image, key_.Sign(image), Crc32c(image)), StatusCode::kOk);  // Slot 1, pending.
  ClearBit(0, 0);  // 'w' has bit 0 set.
  const Reply boot = Simple(CommandKind::kBoot);
  EXPECT_EQ(boot.code, StatusCode::kOk) << boot.detail;
  EXPECT_EQ(boot.state, fw::BootState::kReady);
  EXPECT_STREQ(boot.detail, "firmware image failed verification; rolled back to the other slot");
  EXPECT_EQ(ActiveSlot(), 1u);
  EXPECT_FALSE(flash_.ReadBootControl().slots[0].valid);
  EXPECT_TRUE(Logged(fw::LogCode::kImageCrcMismatch));
  EXPECT_TRUE(Logged(fw::LogCode::kImageRolledBack));
}

TEST_F(FirmwareUpdateTest, FactoryImageBitRotIsCaughtByItsCrc) {
  Start();
  ClearBit(0, 0);  // 'w' has bit 0 set.
  const Reply boot = Simple(CommandKind::kBoot);
  EXPECT_EQ(boot.code, StatusCode::kFailedPrecondition);
  EXPECT_EQ(boot.state, fw::BootState::kFaulted);
  EXPECT_STREQ(boot.detail, "the running firmware image no longer matches its CRC-32C");
  EXPECT_TRUE(Logged(fw::LogCode::kImageCrcMismatch));
  EXPECT_FALSE(Logged(fw::LogCode::kImageSignatureInvalid));
}

TEST_F(FirmwareUpdateTest, SignedImageActivatesOnReset) {
  Start();
  ASSERT_EQ(Simple(CommandKind::kBoot).code, StatusCode::kOk);
  const auto image = MakeImage(200'000);
  ASSERT_EQ(Send(image, key_.Sign(image), Crc32c(image)), StatusCode::kOk);
  Reply boot;
  ResetAndBoot(&boot);
  EXPECT_EQ(boot.code, StatusCode::kOk) << boot.detail;
  EXPECT_EQ(ActiveSlot(), 1u);
  EXPECT_TRUE(Logged(fw::LogCode::kImageConfirmed));
  EXPECT_TRUE(std::equal(image.begin(), image.end(), flash_.MappedSlot(1).begin()));
}

TEST_F(FirmwareUpdateTest, BadCrcIsRefused) {
  Start();
  const auto image = MakeImage(1000);
  EXPECT_EQ(Send(image, key_.Sign(image), Crc32c(image) + 1), StatusCode::kDataLoss);
  Reply boot;
  ResetAndBoot(&boot);
  EXPECT_EQ(ActiveSlot(), 0u);
}

TEST_F(FirmwareUpdateTest, ImageSignedWithAnotherKeyIsRefused) {
  Start();
  const KeyPair other;
  const auto image = MakeImage(1000);
  EXPECT_EQ(Send(image, other.Sign(image), Crc32c(image)), StatusCode::kPermissionDenied);
  EXPECT_TRUE(Logged(fw::LogCode::kImageSignatureInvalid));
  // A signature of different bytes with the right key is refused too.
  auto tampered = image;
  const auto sig = key_.Sign(image);
  tampered[3] ^= std::byte{1};
  EXPECT_EQ(Send(tampered, sig, Crc32c(tampered)), StatusCode::kPermissionDenied);
  Reply boot;
  ResetAndBoot(&boot);
  EXPECT_EQ(ActiveSlot(), 0u);
}

TEST_F(FirmwareUpdateTest, BoardWithoutAKeyRefusesEveryImage) {
  Start({}, /*with_key=*/false);
  const auto image = MakeImage(1000);
  EXPECT_EQ(Send(image, key_.Sign(image), Crc32c(image)), StatusCode::kPermissionDenied);
}

TEST_F(FirmwareUpdateTest, ImageThatFailsSelfTestRollsBack) {
  Start();
  const auto image = MakeImage(5000, std::string(SimWafer::kFailSelfTestMarker));
  ASSERT_EQ(Send(image, key_.Sign(image), Crc32c(image)), StatusCode::kOk);
  Reply boot;
  ResetAndBoot(&boot);
  EXPECT_EQ(boot.code, StatusCode::kOk);
  EXPECT_EQ(boot.state, fw::BootState::kReady);
  EXPECT_EQ(ActiveSlot(), 0u);
  EXPECT_FALSE(flash_.ReadBootControl().slots[1].valid);
  EXPECT_TRUE(Logged(fw::LogCode::kSelfTestFailed));
  EXPECT_TRUE(Logged(fw::LogCode::kImageRolledBack));
}

TEST_F(FirmwareUpdateTest, FaultPlanFailsTheTrialBootAndRollsBack) {
  FaultPlan faults;
  faults.fail_trial_boot = true;
  Start(faults);
  ASSERT_EQ(Simple(CommandKind::kBoot).code, StatusCode::kOk);  // Not on trial: passes.
  const auto image = MakeImage(1000);
  ASSERT_EQ(Send(image, key_.Sign(image), Crc32c(image)), StatusCode::kOk);
  Reply boot;
  ResetAndBoot(&boot);
  EXPECT_EQ(boot.code, StatusCode::kOk);
  EXPECT_EQ(ActiveSlot(), 0u);
  EXPECT_TRUE(Logged(fw::LogCode::kImageRolledBack));
}

TEST_F(FirmwareUpdateTest, BoardWithoutAKeyBootsItsFactoryImageAfterItsCrc) {
  // A board that trusts no key cannot check a signature: its unsigned factory image boots once
  // its CRC matches (see FirmwareSlots::VerifyRunning).
  Start({}, /*with_key=*/false);
  const Reply boot = Simple(CommandKind::kBoot);
  EXPECT_EQ(boot.code, StatusCode::kOk) << boot.detail;
  EXPECT_EQ(boot.state, fw::BootState::kReady);
  EXPECT_FALSE(Logged(fw::LogCode::kImageSignatureInvalid));
}

TEST_F(FirmwareUpdateTest, BoardWithoutAKeyStillChecksItsFactoryImageCrc) {
  Start({}, /*with_key=*/false);
  ClearBit(0, 6);  // 'w' has bit 0 set.
  const Reply boot = Simple(CommandKind::kBoot);
  EXPECT_EQ(boot.state, fw::BootState::kFaulted);
  EXPECT_STREQ(boot.detail, "the running firmware image no longer matches its CRC-32C");
  EXPECT_TRUE(Logged(fw::LogCode::kImageCrcMismatch));
}

TEST_F(FirmwareUpdateTest, GoodImageBootsThroughVerificationToReady) {
  Start();
  const auto image = MakeImage(200'000);
  Install(image);
  // Its trailer holds the real Ed25519 signature, checked again at every boot.
  const auto trailer = flash_.MappedSlot(1).subspan(image.size(), fw::FirmwareSlots::kTrailerBytes);
  const auto sig = key_.Sign(image);
  EXPECT_TRUE(std::equal(sig.begin(), sig.end(), trailer.begin() + fw::FirmwareSlots::kMagicBytes));
  Reply boot;
  ResetAndBoot(&boot);
  EXPECT_EQ(boot.code, StatusCode::kOk) << boot.detail;
  EXPECT_EQ(boot.state, fw::BootState::kReady);
  EXPECT_EQ(ActiveSlot(), 1u);
  EXPECT_FALSE(Logged(fw::LogCode::kImageRolledBack));
}

TEST_F(FirmwareUpdateTest, CorruptedTrialImageRollsBackToTheOldSlot) {
  Start();
  ASSERT_EQ(Simple(CommandKind::kBoot).code, StatusCode::kOk);
  const auto image = MakeImage(5000);
  ASSERT_EQ(Send(image, key_.Sign(image), Crc32c(image)), StatusCode::kOk);
  ASSERT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
  ASSERT_EQ(ActiveSlot(), 1u);  // On trial.
  ClearBit(1, 0);
  const Reply boot = Simple(CommandKind::kBoot);
  EXPECT_EQ(boot.code, StatusCode::kOk) << boot.detail;
  EXPECT_EQ(boot.state, fw::BootState::kReady);
  EXPECT_STREQ(boot.detail, "firmware image failed verification; rolled back to the other slot");
  EXPECT_EQ(ActiveSlot(), 0u);
  EXPECT_FALSE(flash_.ReadBootControl().slots[1].valid);
  EXPECT_TRUE(Logged(fw::LogCode::kImageCrcMismatch));
  EXPECT_TRUE(Logged(fw::LogCode::kImageRolledBack));
}

TEST_F(FirmwareUpdateTest, ImageWhoseSignatureNoLongerVerifiesRollsBack) {
  Start();
  const auto image = MakeImage(5000);
  Install(image);
  // A flipped signature bit: the bytes and their CRC are intact, the Ed25519 check fails.
  size_t at = image.size() + fw::FirmwareSlots::kMagicBytes;
  while ((flash_.MappedSlot(1)[at] & std::byte{1}) == std::byte{0}) ++at;
  ClearBit(1, at);
  Reply boot;
  ResetAndBoot(&boot);
  EXPECT_EQ(boot.state, fw::BootState::kReady);
  EXPECT_EQ(ActiveSlot(), 0u);  // The factory image in the other slot.
  EXPECT_TRUE(Logged(fw::LogCode::kImageSignatureInvalid));
}

TEST_F(FirmwareUpdateTest, CorruptedOnlyImageFaultsWithTheErrorLogged) {
  Start();
  const auto image = MakeImage(5000);
  Install(image);
  // Erase the factory image: a transfer into slot 0 that a reset abandons.
  Command begin;
  begin.kind = CommandKind::kBeginFirmwareImage;
  // The args borrow the signature's bytes: it must outlive the command (ASan caught a temporary).
  const FirmwareSignature signature = key_.Sign(image);
  begin.image = fw::FirmwareImageArgs{0, 100, 0, signature};
  ASSERT_EQ(Run(begin).code, StatusCode::kOk);
  ASSERT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
  ASSERT_FALSE(flash_.ReadBootControl().slots[0].valid);
  ClearBit(1, 0);
  const Reply boot = Simple(CommandKind::kBoot);
  EXPECT_EQ(boot.code, StatusCode::kFailedPrecondition);
  EXPECT_EQ(boot.state, fw::BootState::kFaulted);
  EXPECT_STREQ(boot.detail, "the running firmware image no longer matches its CRC-32C");
  EXPECT_TRUE(Logged(fw::LogCode::kImageCrcMismatch));
  EXPECT_EQ(Simple(CommandKind::kIdentify).state, fw::BootState::kFaulted);
  // Re-flashing the faulted board brings it back.
  const auto fresh = MakeImage(3000, "fresh");
  ASSERT_EQ(Send(fresh, key_.Sign(fresh), Crc32c(fresh), /*slot=*/0), StatusCode::kOk);
  Reply again;
  ResetAndBoot(&again);
  EXPECT_EQ(again.code, StatusCode::kOk) << again.detail;
  EXPECT_EQ(ActiveSlot(), 0u);
}

TEST_F(FirmwareUpdateTest, HarvestFailureFaults) {
  // Nearly every PE defective: every row has more defects than its 4 spares.
  Start({}, true, /*defect_rate=*/0.9);
  const Reply boot = Simple(CommandKind::kBoot);
  EXPECT_EQ(boot.code, StatusCode::kFailedPrecondition);
  EXPECT_EQ(boot.state, fw::BootState::kFaulted);
  EXPECT_TRUE(boot.self_test_passed);
  EXPECT_STREQ(boot.detail,
               "defect remap failed: no usable row (every row has more defects than spares)");
  EXPECT_TRUE(Logged(fw::LogCode::kSelfTestFailed));
  EXPECT_FALSE(Logged(fw::LogCode::kFabricHarvested));
}

TEST(EmbeddedBoardTest, FactorySignatureWithoutAKeyIsRefused) {
  zmq::context_t context(1);
  BoardOptions options;
  options.preset_dir = WAFER_PRESET_DIR_FOR_TEST;
  options.factory_image_signature = FirmwareSignature{};
  auto board = StartEmbeddedBoard(context, "inproc://no-key", options);
  EXPECT_EQ(board.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(board.ok() ? std::string() : board.error().message,
            "a factory image signature needs a firmware public key");
}

TEST(FirmwareSignatureTest, ParsesHexOnly) {
  const std::string good = std::string(126, '0') + "7f";
  ASSERT_TRUE(ParseFirmwareSignature(good).ok());
  EXPECT_EQ((*ParseFirmwareSignature(good))[63], std::byte{0x7F});
  EXPECT_FALSE(ParseFirmwareSignature(std::string(64, 'a')).ok());  // A key, not a signature.
  EXPECT_FALSE(ParseFirmwareSignature(std::string(126, 'a') + "zz").ok());
  EXPECT_FALSE(ParseFirmwareSignature("").ok());
}

TEST(FirmwarePublicKeyTest, ParsesHexOnly) {
  const std::string good(64, 'a');
  ASSERT_TRUE(ParseFirmwarePublicKey(good).ok());
  EXPECT_EQ((*ParseFirmwarePublicKey(good))[31], 0xAA);
  EXPECT_FALSE(ParseFirmwarePublicKey(std::string(63, 'a')).ok());
  EXPECT_FALSE(ParseFirmwarePublicKey(std::string(62, 'a') + "zz").ok());
  EXPECT_FALSE(ParseFirmwarePublicKey("").ok());
}

}  // namespace
}  // namespace wafer::sim
