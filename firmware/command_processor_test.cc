#include "firmware/command_processor.h"

#include <gtest/gtest.h>

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "common/crc32c.h"
#include "firmware/testing/fake_platform.h"

namespace wafer::fw {
namespace {

class CommandProcessorTest : public ::testing::Test {
 protected:
  CommandProcessorTest() : cp_(std::make_unique<CommandProcessor>(fake_.platform())) {}

  Reply Run(const Command& cmd) {
    Reply r;
    cp_->Handle(cmd, r);
    EXPECT_EQ(r.command_id, cmd.command_id);
    return r;
  }
  Reply Simple(CommandKind kind, uint32_t model_id = 0) {
    Command c;
    c.kind = kind;
    c.command_id = ++next_id_;
    c.model_id = model_id;
    return Run(c);
  }
  void BootOk() {
    Reply r = Simple(CommandKind::kBoot);
    ASSERT_EQ(r.kind, ReplyKind::kBoot);
    ASSERT_TRUE(r.self_test_passed);
    ASSERT_EQ(r.state, BootState::kReady);
  }
  // Model 7 with two tensors of 16 and 8 bytes.
  Reply Begin(uint32_t id = 7) {
    tensors_[0].byte_size = 16;
    tensors_[1].byte_size = 8;
    Command c;
    c.kind = CommandKind::kBeginModel;
    c.command_id = ++next_id_;
    c.manifest.model_id = id;
    c.manifest.tensors = tensors_;
    c.manifest.slots = 1;
    c.manifest.context_length = 16;
    return Run(c);
  }
  // Model 7 as Begin() stages it, for a 4-layer model of kHidden values per token: `stage` of
  // it, functional or shape-only.
  static constexpr uint32_t kHidden = 64;
  Reply BeginStage(const ModelStage& stage, bool shape_only = false) {
    tensors_[0].byte_size = 16;
    tensors_[1].byte_size = 8;
    Command c;
    c.kind = CommandKind::kBeginModel;
    c.command_id = ++next_id_;
    c.manifest.model_id = 7;
    c.manifest.arch.num_layers = 4;
    c.manifest.arch.hidden_size = kHidden;
    c.manifest.tensors = tensors_;
    c.manifest.slots = 4;
    c.manifest.context_length = 16;
    c.manifest.shape_only = shape_only;
    c.manifest.stage = stage;
    return Run(c);
  }
  // BeginStage, then the weights (a functional model) and CommitModel.
  void LoadStage(const ModelStage& stage, bool shape_only = false) {
    ASSERT_EQ(BeginStage(stage, shape_only).code, StatusCode::kOk);
    if (!shape_only) {
      ASSERT_EQ(Write(0, 0, Bytes(16, 1)).code, StatusCode::kOk);
      ASSERT_EQ(Write(1, 0, Bytes(8, 1)).code, StatusCode::kOk);
    }
    ASSERT_EQ(Simple(CommandKind::kCommitModel, 7).code, StatusCode::kOk);
  }
  // Steps model 7 with `seqs`.
  Reply StepWith(std::span<const hal::SeqStepView> seqs) {
    Command c;
    c.kind = CommandKind::kStep;
    c.command_id = ++next_id_;
    c.step.model_id = 7;
    c.step.seqs = seqs;
    return Run(c);
  }
  Reply Write(uint32_t tensor, uint64_t offset, std::vector<std::byte> data, int crc_delta = 0) {
    chunk_ = std::move(data);
    Command c;
    c.kind = CommandKind::kWriteWeights;
    c.command_id = ++next_id_;
    c.write.model_id = 7;
    c.write.tensor_index = tensor;
    c.write.offset = offset;
    c.write.data = chunk_;
    c.write.crc32c = Crc32c(chunk_) + crc_delta;
    return Run(c);
  }
  // Sends `image` into `slot` through the firmware-update commands, signed with the fake key.
  StatusCode SendImage(uint32_t slot, const std::vector<std::byte>& image) {
    image_ = image;
    const auto signature = testing::FakeSignatureVerifier::Sign(image_);
    Command c;
    c.kind = CommandKind::kBeginFirmwareImage;
    c.command_id = ++next_id_;
    c.image = FirmwareImageArgs{slot, image_.size(), Crc32c(image_), signature};
    if (Reply r = Run(c); r.code != StatusCode::kOk) return r.code;
    c = Command{};
    c.kind = CommandKind::kWriteFirmwareChunk;
    c.command_id = ++next_id_;
    c.image_chunk = FirmwareChunkArgs{slot, 0, image_, Crc32c(image_)};
    if (Reply r = Run(c); r.code != StatusCode::kOk) return r.code;
    c = Command{};
    c.kind = CommandKind::kCommitFirmwareImage;
    c.command_id = ++next_id_;
    c.image_slot = slot;
    return Run(c).code;
  }
  // Installs a signed image in slot 1 and boots it (Ready, confirmed): slot 1 runs, slot 0 keeps
  // the factory image.
  void InstallSlot1() {
    ASSERT_EQ(SendImage(1, Bytes(1000, 9)), StatusCode::kOk);
    ASSERT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
    BootOk();
    ASSERT_EQ(fake_.flash.ReadBootControl().active_slot, 1u);
    ASSERT_FALSE(fake_.flash.ReadBootControl().trial);
  }
  // Leaves slot 1 as the only image: erases the factory image in slot 0 (a transfer into it
  // that a reset abandons).
  void MakeSlot1TheOnlyImage() {
    InstallSlot1();
    Command c;
    c.kind = CommandKind::kBeginFirmwareImage;
    c.command_id = ++next_id_;
    const auto signature = testing::FakeSignatureVerifier::Sign(image_);
    c.image = FirmwareImageArgs{0, 100, 0, signature};
    ASSERT_EQ(Run(c).code, StatusCode::kOk);
    ASSERT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
    ASSERT_FALSE(fake_.flash.ReadBootControl().slots[0].valid);
  }
  // PE (row, col) stops holding `tensors` of model `model` (FakeWafer reports tensors 1, 3, 5,
  // ...); returns the fault records ReadFaults then holds.
  std::vector<FaultRecord> FailPe(uint32_t row, uint32_t col, uint32_t model, uint32_t tensors) {
    wafer_.pe_model_id = model;
    wafer_.pe_tensor_count = tensors;
    wafer_.events[wafer_.event_count++] = hal::HwEvent{hal::HwEventKind::kPeStopped, row, col, 1};
    Reply r = Simple(CommandKind::kReadFaults);  // Handle() polls the wafer first.
    return {r.faults.begin(), r.faults.end()};
  }
  // Steps model 7, one sequence generating one token.
  StatusCode StepOnce() {
    hal::SeqStepView seq;
    seq.generate = 1;
    return StepWith(std::span<const hal::SeqStepView>(&seq, 1)).code;
  }
  static std::vector<std::byte> Bytes(size_t n, uint8_t first) {
    std::vector<std::byte> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = std::byte(first + i);
    return v;
  }

  testing::FakePlatform fake_;
  testing::FakeWafer& wafer_ = fake_.wafer;
  std::unique_ptr<CommandProcessor> cp_;
  hal::TensorSpec tensors_[2];
  std::vector<std::byte> chunk_;
  std::vector<std::byte> image_;
  uint64_t next_id_ = 0;
};

// Reads the whole error log through the ReadErrorLog command.
std::vector<LogRecord> ReadLog(CommandProcessor& cp, uint64_t from = 0) {
  Command c;
  c.kind = CommandKind::kReadErrorLog;
  c.log_from_sequence = from;
  Reply r;
  cp.Handle(c, r);
  EXPECT_EQ(r.kind, ReplyKind::kErrorLog);
  return {r.log_records.begin(), r.log_records.end()};
}

const LogRecord* FindRecord(const std::vector<LogRecord>& log, LogCode code) {
  for (const LogRecord& r : log) {
    if (r.code == code) return &r;
  }
  return nullptr;
}

TEST_F(CommandProcessorTest, IdentifyServedInPowerOn) {
  Reply r = Simple(CommandKind::kIdentify);
  EXPECT_EQ(r.kind, ReplyKind::kIdentify);
  EXPECT_EQ(r.state, BootState::kPowerOn);
  EXPECT_STREQ(r.info.preset, "fake");
}

TEST_F(CommandProcessorTest, ModelCommandsBeforeBootAreFailedPrecondition) {
  for (CommandKind k : {CommandKind::kBeginModel, CommandKind::kWriteWeights,
                        CommandKind::kCommitModel, CommandKind::kUnloadModel, CommandKind::kStep}) {
    Reply r = Simple(k);
    EXPECT_EQ(r.kind, ReplyKind::kAck);
    EXPECT_EQ(r.code, StatusCode::kFailedPrecondition);
  }
  EXPECT_EQ(wafer_.begin_calls, 0);
}

TEST_F(CommandProcessorTest, BootSelfTestFailFaultsAndOnlyResetRecovers) {
  wafer_.self_test_fails = true;
  Reply r = Simple(CommandKind::kBoot);
  EXPECT_EQ(r.kind, ReplyKind::kBoot);
  EXPECT_FALSE(r.self_test_passed);
  EXPECT_EQ(r.state, BootState::kFaulted);
  EXPECT_EQ(Simple(CommandKind::kBoot).code, StatusCode::kFailedPrecondition);
  EXPECT_EQ(Simple(CommandKind::kReadTelemetry).state, BootState::kFaulted);
  EXPECT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
  EXPECT_EQ(cp_->state(), BootState::kPowerOn);
  EXPECT_EQ(wafer_.power_cycles, 1);
  wafer_.self_test_fails = false;
  BootOk();
  BootOk();  // Idempotent.
}

TEST_F(CommandProcessorTest, StagingCommitAndStep) {
  BootOk();
  ASSERT_EQ(Begin().code, StatusCode::kOk);
  EXPECT_EQ(Write(0, 0, Bytes(10, 1)).code, StatusCode::kOk);
  EXPECT_EQ(Write(0, 10, Bytes(6, 11)).code, StatusCode::kOk);
  EXPECT_EQ(Write(1, 0, Bytes(8, 50)).code, StatusCode::kOk);
  EXPECT_EQ(Simple(CommandKind::kCommitModel, 7).code, StatusCode::kOk);
  EXPECT_EQ(wafer_.store[15], std::byte(16));
  EXPECT_EQ(wafer_.store[4096 + 7], std::byte(57));

  hal::SeqStepView seqs[2];
  uint32_t prompt[3] = {1, 2, 3};
  seqs[0].slot = 0;
  seqs[0].input_tokens = prompt;
  seqs[0].generate = 2;
  seqs[1].slot = 1;
  seqs[1].generate = 3;
  Command c;
  c.kind = CommandKind::kStep;
  c.command_id = 99;
  c.step.model_id = 7;
  c.step.seqs = seqs;
  Reply r = Run(c);
  ASSERT_EQ(r.kind, ReplyKind::kStep);
  ASSERT_EQ(r.outcomes.size(), 2u);
  EXPECT_EQ(r.outcomes[0].token_count, 2u);
  EXPECT_EQ(r.outcomes[1].token_buffer[2], 102u);
  EXPECT_EQ(r.outcomes[0].context_tokens, 5u);
  EXPECT_EQ(cp_->steps(), 1u);
  EXPECT_EQ(Simple(CommandKind::kReadTelemetry).steps, 1u);
}

TEST_F(CommandProcessorTest, CrcMismatchIsDataLossAndWritesNothing) {
  BootOk();
  ASSERT_EQ(Begin().code, StatusCode::kOk);
  Reply r = Write(0, 0, Bytes(16, 1), /*crc_delta=*/1);
  EXPECT_EQ(r.code, StatusCode::kDataLoss);
  EXPECT_EQ(wafer_.write_calls, 0);
  EXPECT_EQ(wafer_.store[0], std::byte(0));
  // Nothing counted as written either: commit still refuses.
  EXPECT_EQ(Write(1, 0, Bytes(8, 1)).code, StatusCode::kOk);
  EXPECT_EQ(Simple(CommandKind::kCommitModel, 7).code, StatusCode::kFailedPrecondition);
}

TEST_F(CommandProcessorTest, OutOfRangeChunks) {
  BootOk();
  ASSERT_EQ(Begin().code, StatusCode::kOk);
  EXPECT_EQ(Write(2, 0, Bytes(4, 1)).code, StatusCode::kOutOfRange);   // No tensor 2.
  EXPECT_EQ(Write(0, 10, Bytes(7, 1)).code, StatusCode::kOutOfRange);  // 10 + 7 > 16.
  EXPECT_EQ(Write(0, 17, Bytes(1, 1)).code, StatusCode::kOutOfRange);  // Offset past end.
  EXPECT_EQ(Write(0, ~uint64_t{0} - 1, Bytes(4, 1)).code, StatusCode::kOutOfRange);  // Overflow.
  EXPECT_EQ(Write(0, 0, {}).code, StatusCode::kOutOfRange);  // Empty chunk.
  EXPECT_EQ(wafer_.write_calls, 0);
  EXPECT_EQ(Write(0, 4, Bytes(4, 1)).code, StatusCode::kFailedPrecondition);  // A gap.
}

TEST_F(CommandProcessorTest, CommitIncompleteIsFailedPrecondition) {
  BootOk();
  ASSERT_EQ(Begin().code, StatusCode::kOk);
  EXPECT_EQ(Write(0, 0, Bytes(16, 1)).code, StatusCode::kOk);
  EXPECT_EQ(Write(1, 0, Bytes(7, 1)).code, StatusCode::kOk);  // One byte short.
  EXPECT_EQ(Simple(CommandKind::kCommitModel, 7).code, StatusCode::kFailedPrecondition);
  EXPECT_EQ(wafer_.commit_calls, 0);
  EXPECT_EQ(Write(1, 6, Bytes(2, 1)).code, StatusCode::kOk);  // Overlapping retry finishes it.
  EXPECT_EQ(Simple(CommandKind::kCommitModel, 7).code, StatusCode::kOk);
}

TEST_F(CommandProcessorTest, ModelIdsAndUnload) {
  BootOk();
  ASSERT_EQ(Begin().code, StatusCode::kOk);
  EXPECT_EQ(Begin().code, StatusCode::kAlreadyExists);
  EXPECT_EQ(Begin(8).code, StatusCode::kFailedPrecondition);  // Still staging 7.
  EXPECT_EQ(Simple(CommandKind::kCommitModel, 9).code, StatusCode::kNotFound);
  EXPECT_EQ(Simple(CommandKind::kUnloadModel, 7).code, StatusCode::kOk);
  EXPECT_EQ(wafer_.unload_calls, 1);
  EXPECT_EQ(Simple(CommandKind::kUnloadModel, 7).code, StatusCode::kNotFound);
  EXPECT_EQ(Begin(8).code, StatusCode::kOk);
}

TEST_F(CommandProcessorTest, WaferResourceExhaustedPropagates) {
  BootOk();
  wafer_.begin_status = ResourceExhausted();
  Reply r = Begin();
  EXPECT_EQ(r.code, StatusCode::kResourceExhausted);
  wafer_.begin_status = OkStatus();
  EXPECT_EQ(Begin().code, StatusCode::kOk);  // The failed attempt left no record.
}

TEST_F(CommandProcessorTest, StepOnUncommittedOrUnknownModel) {
  BootOk();
  ASSERT_EQ(Begin().code, StatusCode::kOk);
  hal::SeqStepView seq;
  seq.generate = 1;
  Command c;
  c.kind = CommandKind::kStep;
  c.step.model_id = 7;
  c.step.seqs = std::span<const hal::SeqStepView>(&seq, 1);
  EXPECT_EQ(Run(c).code, StatusCode::kFailedPrecondition);
  c.step.model_id = 3;
  EXPECT_EQ(Run(c).code, StatusCode::kNotFound);
  EXPECT_EQ(wafer_.step_calls, 0);
}

TEST_F(CommandProcessorTest, HeartbeatEchoes) {
  Command c;
  c.kind = CommandKind::kHeartbeat;
  c.heartbeat_sent_ns = 12345;
  Reply r = Run(c);
  EXPECT_EQ(r.kind, ReplyKind::kHeartbeat);
  EXPECT_EQ(r.heartbeat_sent_ns, 12345);
}

TEST_F(CommandProcessorTest, BootEdgesAndSelfTestFailureAreLogged) {
  fake_.clock.Set(42'000);
  wafer_.self_test_fails = true;
  Simple(CommandKind::kBoot);
  EXPECT_EQ(Simple(CommandKind::kBoot).code, StatusCode::kFailedPrecondition);  // Not served.
  Simple(CommandKind::kReset);
  const auto log = ReadLog(*cp_);
  ASSERT_EQ(log.size(), 5u);
  // PowerOn -> SelfTest, self-test failed, SelfTest -> Faulted, Reset, Faulted -> PowerOn.
  EXPECT_EQ(log[0].code, LogCode::kBootTransition);
  EXPECT_EQ(log[0].args[0], static_cast<uint64_t>(BootState::kPowerOn));
  EXPECT_EQ(log[0].args[1], static_cast<uint64_t>(BootState::kSelfTest));
  EXPECT_EQ(log[0].timestamp_ns, 42'000);
  EXPECT_EQ(log[1].code, LogCode::kSelfTestFailed);
  EXPECT_EQ(log[1].severity, Severity::kError);
  EXPECT_EQ(log[2].code, LogCode::kBootTransition);
  EXPECT_EQ(log[2].args[1], static_cast<uint64_t>(BootState::kFaulted));
  EXPECT_EQ(log[3].code, LogCode::kReset);
  EXPECT_EQ(log[3].args[0], static_cast<uint64_t>(BootState::kFaulted));
  EXPECT_EQ(log[4].code, LogCode::kBootTransition);
  EXPECT_EQ(log[4].args[1], static_cast<uint64_t>(BootState::kPowerOn));
  for (size_t i = 1; i < log.size(); ++i) EXPECT_EQ(log[i].sequence, log[i - 1].sequence + 1);
}

// One kBootTransition record: from, to, event.
struct Transition {
  BootState from;
  BootState to;
  BootEvent event;
  bool operator==(const Transition&) const = default;
};

std::vector<Transition> Transitions(const std::vector<LogRecord>& log) {
  std::vector<Transition> out;
  for (const LogRecord& r : log) {
    if (r.code != LogCode::kBootTransition) continue;
    out.push_back({static_cast<BootState>(r.args[0]), static_cast<BootState>(r.args[1]),
                   static_cast<BootEvent>(r.args[2])});
  }
  return out;
}

std::ostream& operator<<(std::ostream& os, const Transition& t) {
  return os << int(t.from) << "->" << int(t.to) << " on " << int(t.event);
}

using S = BootState;
using E = BootEvent;

const std::vector<Transition> kGoodBoot = {{S::kPowerOn, S::kSelfTest, E::kBoot},
                                           {S::kSelfTest, S::kVerifyImage, E::kSelfTestPassed},
                                           {S::kVerifyImage, S::kRemap, E::kImageVerified},
                                           {S::kRemap, S::kReady, E::kRemapDone}};

TEST_F(CommandProcessorTest, FactoryImageBootsThroughEveryStage) {
  BootOk();
  EXPECT_EQ(Transitions(ReadLog(*cp_)), kGoodBoot);
  // The factory image carries no signature trailer: accepted without a check (see
  // FirmwareSlots::VerifyRunning), so the verifier is not consulted.
  EXPECT_EQ(fake_.verifier.calls, 0);
  EXPECT_EQ(wafer_.harvests, 1);
  EXPECT_TRUE(cp_->Geometry().harvested);
}

TEST_F(CommandProcessorTest, GoodSignedImageIsVerifiedAtEveryBoot) {
  InstallSlot1();
  EXPECT_EQ(fake_.verifier.calls, 2);  // Commit, then the boot that confirmed it.
  ASSERT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
  const uint64_t from = cp_->error_log().next_sequence();
  BootOk();
  EXPECT_EQ(fake_.verifier.calls, 3);
  EXPECT_EQ(Transitions(ReadLog(*cp_, from)), kGoodBoot);
  EXPECT_EQ(cp_->active_firmware_slot(), 1u);
}

TEST_F(CommandProcessorTest, CorruptedTrialImageRollsBackAndBootsTheOldSlot) {
  BootOk();
  ASSERT_EQ(SendImage(1, Bytes(1000, 9)), StatusCode::kOk);
  ASSERT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
  ASSERT_TRUE(fake_.flash.ReadBootControl().trial);
  fake_.flash.CorruptBit(1, 123);  // After Commit checked it: the flash decayed.
  const uint64_t from = cp_->error_log().next_sequence();
  Reply r = Simple(CommandKind::kBoot);
  EXPECT_EQ(r.code, StatusCode::kOk) << r.detail;
  EXPECT_EQ(r.state, BootState::kReady);
  EXPECT_STREQ(r.detail, "firmware image failed verification; rolled back to the other slot");
  EXPECT_EQ(cp_->active_firmware_slot(), 0u);
  EXPECT_FALSE(fake_.flash.ReadBootControl().slots[1].valid);
  EXPECT_FALSE(fake_.flash.ReadBootControl().trial);
  const auto log = ReadLog(*cp_, from);
  const LogRecord* crc = FindRecord(log, LogCode::kImageCrcMismatch);
  ASSERT_NE(crc, nullptr);
  EXPECT_EQ(crc->severity, Severity::kError);
  EXPECT_EQ(crc->args[0], 1u);  // Slot.
  const LogRecord* rollback = FindRecord(log, LogCode::kImageRolledBack);
  ASSERT_NE(rollback, nullptr);
  EXPECT_EQ(rollback->args[0], 1u);
  EXPECT_EQ(rollback->args[1], 0u);
  std::vector<Transition> want = {{S::kPowerOn, S::kSelfTest, E::kBoot},
                                  {S::kSelfTest, S::kVerifyImage, E::kSelfTestPassed},
                                  {S::kVerifyImage, S::kFaulted, E::kImageInvalid},
                                  {S::kFaulted, S::kPowerOn, E::kReset}};
  want.insert(want.end(), kGoodBoot.begin(), kGoodBoot.end());
  EXPECT_EQ(Transitions(log), want);
  // Stays on the old image across resets.
  ASSERT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
  BootOk();
  EXPECT_EQ(cp_->active_firmware_slot(), 0u);
}

TEST_F(CommandProcessorTest, TrialImageWithADamagedSignatureRollsBack) {
  BootOk();
  const auto image = Bytes(1000, 9);
  ASSERT_EQ(SendImage(1, image), StatusCode::kOk);
  ASSERT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
  // One bit of the signature in the trailer (the image's bytes and CRC are intact).
  fake_.flash.CorruptBit(1, image.size() + FirmwareSlots::kMagicBytes + 2);
  Reply r = Simple(CommandKind::kBoot);
  EXPECT_EQ(r.state, BootState::kReady);
  EXPECT_EQ(cp_->active_firmware_slot(), 0u);
  const auto log = ReadLog(*cp_);
  EXPECT_NE(FindRecord(log, LogCode::kImageSignatureInvalid), nullptr);
  EXPECT_EQ(FindRecord(log, LogCode::kImageCrcMismatch), nullptr);
}

TEST_F(CommandProcessorTest, ADamagedTrailerIsNotTakenForAFactoryImage) {
  const auto image = Bytes(1000, 9);
  BootOk();
  ASSERT_EQ(SendImage(1, image), StatusCode::kOk);
  ASSERT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
  fake_.flash.CorruptBit(1, image.size());  // The magic.
  EXPECT_EQ(Simple(CommandKind::kBoot).state, BootState::kReady);
  EXPECT_EQ(cp_->active_firmware_slot(), 0u);  // Rolled back.
  EXPECT_NE(FindRecord(ReadLog(*cp_), LogCode::kImageSignatureInvalid), nullptr);
}

TEST_F(CommandProcessorTest, CorruptedSettledImageFallsBackToTheOtherSlot) {
  InstallSlot1();  // Slot 1 confirmed; slot 0 still holds the factory image.
  ASSERT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
  fake_.flash.CorruptBit(1, 5);
  Reply r = Simple(CommandKind::kBoot);
  EXPECT_EQ(r.code, StatusCode::kOk) << r.detail;
  EXPECT_EQ(r.state, BootState::kReady);
  EXPECT_EQ(cp_->active_firmware_slot(), 0u);
  EXPECT_FALSE(fake_.flash.ReadBootControl().slots[1].valid);
  EXPECT_NE(FindRecord(ReadLog(*cp_), LogCode::kImageRolledBack), nullptr);
}

TEST_F(CommandProcessorTest, CorruptedOnlyImageFaultsWithTheReasonLogged) {
  MakeSlot1TheOnlyImage();
  fake_.flash.CorruptBit(1, 5);
  const int cycles = wafer_.power_cycles;
  const uint64_t from = cp_->error_log().next_sequence();
  Reply r = Simple(CommandKind::kBoot);
  EXPECT_EQ(r.kind, ReplyKind::kBoot);
  EXPECT_EQ(r.code, StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.state, BootState::kFaulted);
  EXPECT_TRUE(r.self_test_passed);  // The wafer was fine; the image was not.
  EXPECT_STREQ(r.detail, "the running firmware image no longer matches its CRC-32C");
  EXPECT_EQ(wafer_.power_cycles, cycles);  // Nothing to reboot into.
  EXPECT_EQ(wafer_.harvests, 1);           // Only InstallSlot1's boot remapped.
  const auto log = ReadLog(*cp_, from);
  const LogRecord* crc = FindRecord(log, LogCode::kImageCrcMismatch);
  ASSERT_NE(crc, nullptr);
  EXPECT_EQ(crc->severity, Severity::kError);
  EXPECT_EQ(crc->args[0], 1u);
  const std::vector<Transition> want = {{S::kPowerOn, S::kSelfTest, E::kBoot},
                                        {S::kSelfTest, S::kVerifyImage, E::kSelfTestPassed},
                                        {S::kVerifyImage, S::kFaulted, E::kImageInvalid}};
  EXPECT_EQ(Transitions(log), want);
  EXPECT_FALSE(fake_.flash.ReadBootControl().slots[1].valid);
  EXPECT_EQ(Simple(CommandKind::kBeginModel).code, StatusCode::kFailedPrecondition);

  // The next boot finds no image at all.
  ASSERT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
  r = Simple(CommandKind::kBoot);
  EXPECT_EQ(r.state, BootState::kFaulted);
  EXPECT_STREQ(r.detail, "no firmware image recorded in the running slot");

  // A faulted board can be re-flashed: the new image boots on trial and is confirmed.
  ASSERT_EQ(SendImage(0, Bytes(700, 3)), StatusCode::kOk);
  ASSERT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
  BootOk();
  EXPECT_EQ(cp_->active_firmware_slot(), 0u);
  EXPECT_FALSE(fake_.flash.ReadBootControl().trial);
}

TEST_F(CommandProcessorTest, BoardWithNoImageRecordedFaults) {
  hal::BootControl control;  // No slot holds an image.
  ASSERT_TRUE(fake_.flash.WriteBootControl(control).ok());
  Reply r = Simple(CommandKind::kBoot);
  EXPECT_EQ(r.state, BootState::kFaulted);
  EXPECT_EQ(r.code, StatusCode::kFailedPrecondition);
  EXPECT_STREQ(r.detail, "no firmware image recorded in the running slot");
  const auto log = ReadLog(*cp_);
  const LogRecord* rec = FindRecord(log, LogCode::kImageOutOfRange);
  ASSERT_NE(rec, nullptr);
  EXPECT_EQ(rec->severity, Severity::kError);
  EXPECT_EQ(rec->args[2], 0u);  // Size 0: nothing there.
  EXPECT_EQ(wafer_.harvests, 0);
}

TEST_F(CommandProcessorTest, HarvestFailureFaultsWithTheReasonLogged) {
  wafer_.row_fuses.fill(3);  // Every row has more defects than its 2 spares.
  Reply r = Simple(CommandKind::kBoot);
  EXPECT_EQ(r.code, StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.state, BootState::kFaulted);
  EXPECT_STREQ(r.detail,
               "defect remap failed: no usable row (every row has more defects than spares)");
  EXPECT_EQ(wafer_.harvests, 0);  // Nothing programmed.
  EXPECT_FALSE(cp_->Geometry().harvested);
  const auto log = ReadLog(*cp_);
  const LogRecord* failed = FindRecord(log, LogCode::kSelfTestFailed);
  ASSERT_NE(failed, nullptr);
  EXPECT_EQ(failed->severity, Severity::kError);
  EXPECT_EQ(failed->args[0], static_cast<uint64_t>(StatusCode::kResourceExhausted));
  const std::vector<Transition> want = {{S::kPowerOn, S::kSelfTest, E::kBoot},
                                        {S::kSelfTest, S::kVerifyImage, E::kSelfTestPassed},
                                        {S::kVerifyImage, S::kRemap, E::kImageVerified},
                                        {S::kRemap, S::kFaulted, E::kRemapFailed}};
  EXPECT_EQ(Transitions(log), want);
  // Reset recovers once the fuses allow a rectangle.
  ASSERT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
  wafer_.row_fuses.fill(0);
  wafer_.row_fuses[3] = 3;  // One row dropped: reduced capacity, still usable.
  BootOk();
  EXPECT_EQ(cp_->Geometry().usable_height, 7u);
}

TEST_F(CommandProcessorTest, HarvestFailureOfATrialImageRollsBackThenFaults) {
  BootOk();
  ASSERT_EQ(SendImage(1, Bytes(1000, 9)), StatusCode::kOk);
  ASSERT_EQ(Simple(CommandKind::kReset).code, StatusCode::kOk);
  wafer_.row_fuses.fill(3);  // Fails under either image.
  Reply r = Simple(CommandKind::kBoot);
  EXPECT_EQ(r.state, BootState::kFaulted);
  EXPECT_EQ(cp_->active_firmware_slot(), 0u);  // The trial image was rolled back first.
  EXPECT_FALSE(fake_.flash.ReadBootControl().slots[1].valid);
  EXPECT_STREQ(r.detail,
               "defect remap failed: no usable row (every row has more defects than spares)");
}

TEST_F(CommandProcessorTest, ChunkCrcAndRangeFailuresAreLogged) {
  BootOk();
  ASSERT_EQ(Begin().code, StatusCode::kOk);
  const uint64_t from = cp_->error_log().next_sequence();
  EXPECT_EQ(Write(0, 0, Bytes(16, 1), /*crc_delta=*/1).code, StatusCode::kDataLoss);
  EXPECT_EQ(Write(0, 10, Bytes(7, 1)).code, StatusCode::kOutOfRange);
  const auto log = ReadLog(*cp_, from);
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0].code, LogCode::kChunkCrcMismatch);
  EXPECT_EQ(log[0].args[0], 7u);
  const uint32_t actual = Crc32c(Bytes(16, 1));
  EXPECT_EQ(log[0].args[3], (uint64_t{actual + 1} << 32) | actual);
  EXPECT_EQ(log[1].code, LogCode::kChunkOutOfRange);
  EXPECT_EQ(log[1].args[2], 10u);
  EXPECT_EQ(log[1].args[3], 7u);
}

TEST_F(CommandProcessorTest, StepFailuresAreLoggedBySeverity) {
  BootOk();
  hal::SeqStepView seq;
  seq.generate = 1;
  Command c;
  c.kind = CommandKind::kStep;
  c.step.model_id = 3;
  c.step.seqs = std::span<const hal::SeqStepView>(&seq, 1);
  EXPECT_EQ(Run(c).code, StatusCode::kNotFound);
  const auto records = ReadLog(*cp_);  // FindRecord points into it: keep it alive.
  const LogRecord* host_error = FindRecord(records, LogCode::kStepFailed);
  ASSERT_NE(host_error, nullptr);
  EXPECT_EQ(host_error->severity, Severity::kWarning);

  ASSERT_EQ(Begin().code, StatusCode::kOk);
  ASSERT_EQ(Write(0, 0, Bytes(16, 1)).code, StatusCode::kOk);
  ASSERT_EQ(Write(1, 0, Bytes(8, 1)).code, StatusCode::kOk);
  ASSERT_EQ(Simple(CommandKind::kCommitModel, 7).code, StatusCode::kOk);
  wafer_.step_status = Internal();
  const uint64_t from = cp_->error_log().next_sequence();
  c.step.model_id = 7;
  EXPECT_EQ(Run(c).code, StatusCode::kInternal);
  const auto log = ReadLog(*cp_, from);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].code, LogCode::kStepFailed);
  EXPECT_EQ(log[0].severity, Severity::kError);
  EXPECT_EQ(log[0].args[0], 7u);
  EXPECT_EQ(log[0].args[1], static_cast<uint64_t>(StatusCode::kInternal));
}

TEST_F(CommandProcessorTest, ReadErrorLogPagesAndReportsDrops) {
  // Fill the ring past capacity with resets in PowerOn (one record each).
  for (size_t i = 0; i < kErrorLogCapacity + 3; ++i) Simple(CommandKind::kReset);
  EXPECT_EQ(cp_->error_log().overwritten(), 3u);
  Command c;
  c.kind = CommandKind::kReadErrorLog;
  c.log_from_sequence = 1;
  c.log_max_records = 5;
  Reply r;
  cp_->Handle(c, r);
  ASSERT_EQ(r.kind, ReplyKind::kErrorLog);
  EXPECT_EQ(r.log_records.size(), 5u);
  EXPECT_EQ(r.log_dropped, cp_->error_log().overwritten());
  EXPECT_EQ(r.log_overwritten, cp_->error_log().overwritten());
  EXPECT_EQ(r.log_next_sequence, r.log_records.back().sequence + 1);
  c.log_max_records = 0;  // As many as fit one reply.
  cp_->Handle(c, r);
  EXPECT_EQ(r.log_records.size(), kMaxLogRecordsPerReply);
}

TEST_F(CommandProcessorTest, ErrorLogSurvivesReset) {
  Simple(CommandKind::kReset);
  const size_t before = ReadLog(*cp_).size();
  ASSERT_GT(before, 0u);
  Simple(CommandKind::kReset);
  EXPECT_GT(ReadLog(*cp_).size(), before);
}

// --- Pipeline stages: a model split by layers over several boards. ---

hal::SeqStepView Seq(uint32_t slot, std::span<const uint32_t> tokens, uint32_t generate = 0,
                     std::span<const float> hidden_in = {}) {
  hal::SeqStepView s;
  s.slot = slot;
  s.input_tokens = tokens;
  s.generate = generate;
  s.hidden_in = hidden_in;
  return s;
}

TEST_F(CommandProcessorTest, BeginModelRefusesAStageThatIsNotPartOfTheModel) {
  BootOk();
  // The model has 4 layers: no layer left, past the last, the embedding not feeding layer 0, the
  // head not reading the last layer.
  for (const ModelStage stage : {ModelStage{4, 0, false, true},
                                 ModelStage{2, 3, false, true},
                                 ModelStage{1, 0, true, true},
                                 ModelStage{0, 2, true, true}}) {
    const Reply r = BeginStage(stage);
    EXPECT_EQ(r.code, StatusCode::kInvalidArgument)
        << stage.first_layer << "+" << stage.layer_count;
    EXPECT_NE(std::string(r.detail).find("stage"), std::string::npos);
  }
  EXPECT_EQ(wafer_.begin_calls, 0);
  // A middle stage reaches the wafer as sent (layer_count 0 means the rest, here for the last).
  ASSERT_EQ(BeginStage({1, 2, false, false}).code, StatusCode::kOk);
  EXPECT_EQ(wafer_.last_stage, (ModelStage{1, 2, false, false}));
  ASSERT_EQ(Simple(CommandKind::kUnloadModel, 7).code, StatusCode::kOk);
  ASSERT_EQ(BeginStage({3, 0, false, true}).code, StatusCode::kOk);
  EXPECT_EQ(wafer_.begin_calls, 2);
}

TEST_F(CommandProcessorTest, StageWithoutTheHeadGeneratesNothingAndReturnsHiddenStates) {
  BootOk();
  LoadStage({0, 2, true, false});
  std::vector<uint32_t> a = {1, 2, 3}, b = {4};
  hal::SeqStepView seqs[2];
  seqs[0] = Seq(0, a);
  seqs[1] = Seq(1, b);
  Reply r = StepWith(seqs);
  ASSERT_EQ(r.kind, ReplyKind::kStep);
  // Each seq got a hidden buffer of its own: input tokens * hidden values, filled by the wafer.
  ASSERT_EQ(r.outcomes[0].hidden_count, 3 * kHidden);
  ASSERT_EQ(r.outcomes[1].hidden_count, kHidden);
  EXPECT_EQ(r.outcomes[0].hidden_buffer.size(), 3 * kHidden);
  EXPECT_EQ(r.outcomes[0].hidden_buffer[3 * kHidden - 1], (3 * kHidden - 1) / 4.0f);
  EXPECT_EQ(r.outcomes[1].hidden_buffer[0], 1.0f);
  EXPECT_EQ(r.outcomes[0].token_count, 0u);

  seqs[1].generate = 1;
  r = StepWith(seqs);
  EXPECT_EQ(r.code, StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(r.detail).find("head"), std::string::npos);
  seqs[1].generate = 0;
  std::vector<float> hidden(kHidden);
  seqs[1].hidden_in = hidden;  // The stage embeds its tokens.
  EXPECT_EQ(StepWith(seqs).code, StatusCode::kInvalidArgument);
  EXPECT_EQ(wafer_.step_calls, 1);
}

TEST_F(CommandProcessorTest, StageWithoutTheEmbeddingTakesHiddenStatesAndOneToken) {
  BootOk();
  LoadStage({2, 0, false, true});
  std::vector<uint32_t> tokens = {5, 6};
  std::vector<float> hidden(2 * kHidden, 0.25f);
  hal::SeqStepView seq = Seq(2, tokens, 1, hidden);
  Reply r = StepWith(std::span(&seq, 1));
  ASSERT_EQ(r.kind, ReplyKind::kStep);
  EXPECT_EQ(r.outcomes[0].token_count, 1u);
  EXPECT_EQ(r.outcomes[0].hidden_count, 0u);  // The head stage hands nothing on.
  EXPECT_EQ(wafer_.hidden_in_values, 2 * kHidden);

  seq.generate = 2;  // It cannot embed the token it sampled to feed it back.
  r = StepWith(std::span(&seq, 1));
  EXPECT_EQ(r.code, StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(r.detail).find("embedding"), std::string::npos);
  seq.generate = 1;
  seq.hidden_in = std::span(hidden).first(2 * kHidden - 1);
  r = StepWith(std::span(&seq, 1));
  EXPECT_EQ(r.code, StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(r.detail).find("hidden_in"), std::string::npos);
  seq.hidden_in = {};
  EXPECT_EQ(StepWith(std::span(&seq, 1)).code, StatusCode::kInvalidArgument);
  EXPECT_EQ(wafer_.step_calls, 1);
}

TEST_F(CommandProcessorTest, ShapeOnlyStagesCarryNoHiddenStates) {
  BootOk();
  LoadStage({1, 0, false, true}, /*shape_only=*/true);
  std::vector<uint32_t> tokens = {5, 6};
  std::vector<float> hidden(2 * kHidden);
  hal::SeqStepView seq = Seq(0, tokens, 1);
  Reply r = StepWith(std::span(&seq, 1));
  ASSERT_EQ(r.kind, ReplyKind::kStep);
  EXPECT_EQ(r.outcomes[0].hidden_buffer.size(), 0u);
  seq.hidden_in = hidden;
  EXPECT_EQ(StepWith(std::span(&seq, 1)).code, StatusCode::kInvalidArgument);
  EXPECT_EQ(wafer_.step_calls, 1);
}

TEST_F(CommandProcessorTest, HiddenStatesInOrOutAreBoundedPerStep) {
  BootOk();
  LoadStage({1, 2, false, false});
  constexpr size_t kFullRows = kMaxStepHiddenValues / kHidden;
  std::vector<uint32_t> many(kFullRows, 1), one = {1};
  std::vector<float> hidden_many(kFullRows * kHidden), hidden_one(kHidden);
  hal::SeqStepView seqs[2];
  seqs[0] = Seq(0, many, 0, hidden_many);
  seqs[1] = Seq(1, one, 0, hidden_one);
  // Exactly the limit in and out: served, and the whole buffer is handed out.
  Reply r = StepWith(std::span(seqs, 1));
  ASSERT_EQ(r.kind, ReplyKind::kStep);
  EXPECT_EQ(r.outcomes[0].hidden_count, kMaxStepHiddenValues);
  // One token more: over the limit.
  r = StepWith(seqs);
  EXPECT_EQ(r.code, StatusCode::kResourceExhausted);
  EXPECT_NE(std::string(r.detail).find("hidden"), std::string::npos);
  EXPECT_EQ(wafer_.step_calls, 1);

  // A stage with the embedding but without the head: the hidden states out alone are bounded.
  ASSERT_EQ(Simple(CommandKind::kUnloadModel, 7).code, StatusCode::kOk);
  LoadStage({0, 1, true, false});
  seqs[0].hidden_in = {};
  seqs[1].hidden_in = {};
  EXPECT_EQ(StepWith(seqs).code, StatusCode::kResourceExhausted);
  EXPECT_EQ(StepWith(std::span(seqs, 1)).kind, ReplyKind::kStep);
  EXPECT_EQ(wafer_.step_calls, 2);
}


// --- Repair in place after a PE fault. ---

TEST_F(CommandProcessorTest, RepairRewritesOnlyTheLostTensorsThenCommitClearsDataLoss) {
  BootOk();
  LoadStage(ModelStage{});
  const std::vector<FaultRecord> faults = FailPe(0, 0, 7, 1);
  ASSERT_EQ(faults.size(), 1u);
  ASSERT_EQ(faults[0].tensor_count, 1u);
  ASSERT_EQ(faults[0].tensors[0], 1u);  // Tensor 1 (8 bytes) is lost.
  EXPECT_EQ(StepOnce(), StatusCode::kDataLoss);

  // Nothing rewritten yet: the repair's commit refuses and says why.
  const int commits = wafer_.commit_calls;
  Reply r = Simple(CommandKind::kCommitModel, 7);
  EXPECT_EQ(r.code, StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(r.detail).find("not fully rewritten"), std::string::npos) << r.detail;
  EXPECT_EQ(wafer_.commit_calls, commits);
  // Tensor 0 was not lost: a repair does not touch it.
  r = Write(0, 0, Bytes(16, 1));
  EXPECT_EQ(r.code, StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(r.detail).find("not lost"), std::string::npos) << r.detail;
  // The lost tensor is written in order, CRC checked, as in staging.
  EXPECT_EQ(Write(1, 4, Bytes(4, 5)).code, StatusCode::kFailedPrecondition);  // A gap.
  EXPECT_EQ(Write(1, 0, Bytes(4, 1), /*crc_delta=*/1).code, StatusCode::kDataLoss);
  EXPECT_EQ(Write(1, 6, Bytes(4, 1)).code, StatusCode::kOutOfRange);  // Past its end.
  EXPECT_EQ(Write(2, 0, Bytes(4, 1)).code, StatusCode::kOutOfRange);  // No tensor 2.
  ASSERT_EQ(Write(1, 0, Bytes(4, 60)).code, StatusCode::kOk);
  EXPECT_EQ(Simple(CommandKind::kCommitModel, 7).code, StatusCode::kFailedPrecondition);
  EXPECT_EQ(StepOnce(), StatusCode::kDataLoss);
  ASSERT_EQ(Write(1, 4, Bytes(4, 64)).code, StatusCode::kOk);
  EXPECT_EQ(wafer_.store[4096 + 7], std::byte(67));  // The wafer got the new bytes.

  const uint64_t from = cp_->error_log().next_sequence();
  ASSERT_EQ(Simple(CommandKind::kCommitModel, 7).code, StatusCode::kOk);
  EXPECT_EQ(wafer_.commit_calls, commits + 1);  // The wafer installs the rewritten tensor.
  const auto log = ReadLog(*cp_, from);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].code, LogCode::kModelRepaired);
  EXPECT_EQ(log[0].severity, Severity::kInfo);
  EXPECT_EQ(log[0].args[0], 7u);
  EXPECT_EQ(log[0].args[1], 1u);  // One tensor ...
  EXPECT_EQ(log[0].args[2], 8u);  // ... of 8 bytes.
  EXPECT_EQ(StepOnce(), StatusCode::kOk);

  // Repaired: the model is an ordinary committed one again.
  EXPECT_EQ(Simple(CommandKind::kCommitModel, 7).code, StatusCode::kFailedPrecondition);
  EXPECT_EQ(Write(1, 0, Bytes(8, 1)).code, StatusCode::kFailedPrecondition);
}

TEST_F(CommandProcessorTest, AFaultDuringTheRepairStartsItsTensorsOver) {
  BootOk();
  LoadStage(ModelStage{});
  ASSERT_EQ(FailPe(0, 0, 7, 1).size(), 1u);
  ASSERT_EQ(Write(1, 0, Bytes(8, 1)).code, StatusCode::kOk);
  // The same tensor is lost again before the commit: the bytes written so far do not count.
  ASSERT_EQ(FailPe(1, 0, 7, 1).size(), 2u);
  EXPECT_EQ(Simple(CommandKind::kCommitModel, 7).code, StatusCode::kFailedPrecondition);
  EXPECT_EQ(Write(1, 4, Bytes(4, 1)).code, StatusCode::kFailedPrecondition);  // From 0 again.
  ASSERT_EQ(Write(1, 0, Bytes(8, 1)).code, StatusCode::kOk);
  EXPECT_EQ(Simple(CommandKind::kCommitModel, 7).code, StatusCode::kOk);
  EXPECT_EQ(StepOnce(), StatusCode::kOk);
}

TEST_F(CommandProcessorTest, AFaultWhileStagingIsRepairedAfterTheCommit) {
  BootOk();
  ASSERT_EQ(Begin().code, StatusCode::kOk);
  ASSERT_EQ(Write(1, 0, Bytes(8, 1)).code, StatusCode::kOk);
  ASSERT_EQ(FailPe(0, 0, 7, 1).size(), 1u);
  ASSERT_EQ(Write(0, 0, Bytes(16, 1)).code, StatusCode::kOk);
  ASSERT_EQ(Simple(CommandKind::kCommitModel, 7).code, StatusCode::kOk);  // Staging completes.
  EXPECT_EQ(StepOnce(), StatusCode::kDataLoss);
  ASSERT_EQ(Write(1, 0, Bytes(8, 1)).code, StatusCode::kOk);
  ASSERT_EQ(Simple(CommandKind::kCommitModel, 7).code, StatusCode::kOk);
  EXPECT_EQ(StepOnce(), StatusCode::kOk);
}

TEST_F(CommandProcessorTest, ShapeOnlyRepairIsTheCommitAlone) {
  BootOk();
  LoadStage(ModelStage{}, /*shape_only=*/true);
  ASSERT_EQ(FailPe(0, 0, 7, 1).size(), 1u);
  EXPECT_EQ(StepOnce(), StatusCode::kDataLoss);
  Reply r = Write(1, 0, Bytes(8, 1));
  EXPECT_EQ(r.code, StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(r.detail).find("shape-only"), std::string::npos) << r.detail;
  ASSERT_EQ(Simple(CommandKind::kCommitModel, 7).code, StatusCode::kOk);
  EXPECT_EQ(StepOnce(), StatusCode::kOk);
}

TEST_F(CommandProcessorTest, APeLostWithoutASpareCannotBeRepairedInPlace) {
  BootOk();
  LoadStage(ModelStage{});
  // Row 0 has two spares: the third PE that fails there finds none.
  ASSERT_EQ(FailPe(0, 0, 7, 1).size(), 1u);
  ASSERT_EQ(FailPe(0, 1, 7, 1).size(), 2u);
  const std::vector<FaultRecord> faults = FailPe(0, 2, 7, 1);
  ASSERT_EQ(faults.size(), 3u);
  EXPECT_FALSE(faults[2].remapped);
  ASSERT_EQ(Write(1, 0, Bytes(8, 1)).code, StatusCode::kOk);
  Reply r = Simple(CommandKind::kCommitModel, 7);
  EXPECT_EQ(r.code, StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(r.detail).find("no spare"), std::string::npos) << r.detail;
  EXPECT_EQ(StepOnce(), StatusCode::kDataLoss);
  // Unloading and loading it again is the way out.
  ASSERT_EQ(Simple(CommandKind::kUnloadModel, 7).code, StatusCode::kOk);
  LoadStage(ModelStage{});
  EXPECT_EQ(StepOnce(), StatusCode::kOk);
}

TEST_F(CommandProcessorTest, ATruncatedFaultReportCannotBeRepairedInPlace) {
  BootOk();
  LoadStage(ModelStage{});
  // The PE held more tensors than a report lists: the host cannot learn them all.
  const std::vector<FaultRecord> faults = FailPe(0, 0, 7, kMaxRestageTensors + 1);
  ASSERT_EQ(faults.size(), 1u);
  EXPECT_EQ(faults[0].tensor_count, kMaxRestageTensors);
  ASSERT_EQ(Write(1, 0, Bytes(8, 1)).code, StatusCode::kOk);
  Reply r = Simple(CommandKind::kCommitModel, 7);
  EXPECT_EQ(r.code, StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(r.detail).find("reload"), std::string::npos) << r.detail;
}

TEST_F(CommandProcessorTest, ARepairOfAModelThatLostNothingIsRefused) {
  BootOk();
  LoadStage(ModelStage{});
  ASSERT_EQ(FailPe(0, 0, 9, 1).size(), 1u);  // Another model's PE.
  EXPECT_EQ(StepOnce(), StatusCode::kOk);
  EXPECT_EQ(Write(1, 0, Bytes(8, 1)).code, StatusCode::kFailedPrecondition);
  EXPECT_EQ(Simple(CommandKind::kCommitModel, 7).code, StatusCode::kFailedPrecondition);
}


// --- Diagnostics. ---

Reply RunDiag(CommandProcessor& cp, DiagTest test, uint32_t first, uint32_t count) {
  Command c;
  c.kind = CommandKind::kRunDiagnostic;
  c.command_id = 99;
  c.diagnostic = DiagnosticArgs{test, first, count};
  Reply r;
  cp.Handle(c, r);
  return r;
}

TEST_F(CommandProcessorTest, DiagnosticsNeedAReadyBoardAndValidArguments) {
  // Before the boot: refused with the processor's Ack convention, the wafer untouched.
  Reply r = RunDiag(*cp_, DiagTest::kSramAll, 0, 8);
  EXPECT_EQ(r.kind, ReplyKind::kAck);
  EXPECT_EQ(r.code, StatusCode::kFailedPrecondition);
  BootOk();
  r = RunDiag(*cp_, DiagTest::kNone, 0, 8);
  EXPECT_EQ(r.kind, ReplyKind::kAck);
  EXPECT_EQ(r.code, StatusCode::kInvalidArgument);
  r = RunDiag(*cp_, DiagTest::kSramUnused, 0, 0);
  EXPECT_EQ(r.kind, ReplyKind::kAck);
  EXPECT_EQ(r.code, StatusCode::kInvalidArgument);
  EXPECT_EQ(RunDiag(*cp_, DiagTest::kKnownAnswer, 0, 0).code, StatusCode::kInvalidArgument);
  EXPECT_EQ(wafer_.sram_tests + wafer_.link_tests + wafer_.kat_runs, 0);
  // Past the last row (region): the wafer's OUT_OF_RANGE, with a detail.
  r = RunDiag(*cp_, DiagTest::kFabricLinks, 8, 1);
  EXPECT_EQ(r.kind, ReplyKind::kAck);
  EXPECT_EQ(r.code, StatusCode::kOutOfRange);
  EXPECT_NE(std::string(r.detail).find("row"), std::string::npos) << r.detail;
  EXPECT_EQ(RunDiag(*cp_, DiagTest::kKnownAnswer, 2, 1).code, StatusCode::kOutOfRange);
  // A faulted board (thermal trip) refuses too.
  wafer_.hot_region_c = 200;
  r = RunDiag(*cp_, DiagTest::kSramAll, 0, 8);
  EXPECT_EQ(r.code, StatusCode::kFailedPrecondition);
  EXPECT_EQ(cp_->state(), BootState::kFaulted);
  EXPECT_EQ(wafer_.retires, 0);
  EXPECT_EQ(FindRecord(ReadLog(*cp_), LogCode::kDiagnosticRun), nullptr);
}

TEST_F(CommandProcessorTest, SramAllRetiresAndRemapsWhatItFinds) {
  BootOk();
  LoadStage(ModelStage{});
  const uint16_t row_failed_before = Simple(CommandKind::kReadGeometry).row_failed[2];
  const GeometrySummary before = cp_->Geometry();
  wafer_.pe_model_id = 7;  // The PE held tensor 1 of model 7.
  wafer_.pe_tensor_count = 1;
  wafer_.sram_hits[0] = hal::DiagHit{2, 3, 0x40, 1, false};
  wafer_.sram_hit_count = 1;

  Reply r = RunDiag(*cp_, DiagTest::kSramAll, 0, 100);  // Clipped to the 8 rows.
  ASSERT_EQ(r.kind, ReplyKind::kDiagnostic) << r.detail;
  EXPECT_EQ(r.command_id, 99u);
  EXPECT_EQ(r.diagnostic.test, DiagTest::kSramAll);
  EXPECT_EQ(r.diagnostic.first_row, 0u);
  EXPECT_EQ(r.diagnostic.row_count, 8u);
  EXPECT_EQ(r.diagnostic.units_tested, 64u);
  EXPECT_EQ(r.diagnostic.failures, 1u);
  EXPECT_FALSE(wafer_.last_unused_only);  // Every PE, transparently.
  ASSERT_EQ(r.findings.size(), 1u);
  const DiagFinding f = r.findings[0];
  EXPECT_EQ(f.row, 2u);
  EXPECT_EQ(f.pe, 3u);
  EXPECT_EQ(f.region, 1u);
  EXPECT_EQ(f.detail, 0x40u);
  EXPECT_TRUE(f.retired);
  EXPECT_TRUE(f.remapped);

  // Retired in the wafer's defect map, then the PE-fault path: remap, counts, report, data lost.
  EXPECT_EQ(wafer_.retires, 1);
  EXPECT_EQ(wafer_.last_retired_row, 2u);
  EXPECT_EQ(wafer_.last_retired_col, 3u);
  EXPECT_EQ(wafer_.remaps, 1);
  const GeometrySummary after = cp_->Geometry();
  EXPECT_EQ(after.failed_pes, before.failed_pes + 1);
  EXPECT_EQ(after.runtime_remaps, before.runtime_remaps + 1);
  EXPECT_EQ(Simple(CommandKind::kReadGeometry).row_failed[2], row_failed_before + 1);
  Reply faults = Simple(CommandKind::kReadFaults);
  ASSERT_EQ(faults.faults.size(), 1u);
  EXPECT_EQ(faults.faults[0].kind, hal::FaultKind::kSramStuckBit);
  EXPECT_EQ(faults.faults[0].row, 2u);
  EXPECT_EQ(faults.faults[0].pe, 3u);
  EXPECT_TRUE(faults.faults[0].remapped);
  EXPECT_EQ(faults.faults[0].model_id, 7u);
  ASSERT_EQ(faults.faults[0].tensor_count, 1u);
  EXPECT_EQ(faults.faults[0].tensors[0], 1u);
  EXPECT_EQ(StepOnce(), StatusCode::kDataLoss);  // The host repairs it as after any PE fault.

  const auto log = ReadLog(*cp_);
  ASSERT_NE(FindRecord(log, LogCode::kPeFailed), nullptr);
  const LogRecord* run = FindRecord(log, LogCode::kDiagnosticRun);
  ASSERT_NE(run, nullptr);
  EXPECT_EQ(run->severity, Severity::kWarning);
  EXPECT_EQ(run->args[0], static_cast<uint64_t>(DiagTest::kSramAll));
  EXPECT_EQ(run->args[1], 0u);
  EXPECT_EQ(run->args[2], 8u);
  EXPECT_EQ(run->args[3], 1u);
}

TEST_F(CommandProcessorTest, LinkTestRetiresTheLeavingPeOnceAndNotForADeadNeighbour) {
  BootOk();
  wafer_.link_hits[0] = hal::DiagHit{1, 4, 0, 0, false};  // East of (1, 4).
  wafer_.link_hits[1] = hal::DiagHit{1, 4, 1, 0, false};  // South of (1, 4).
  wafer_.link_hits[2] = hal::DiagHit{5, 0, 0, 2, true};   // Into a PE that died without a spare.
  wafer_.link_hit_count = 3;
  Reply r = RunDiag(*cp_, DiagTest::kFabricLinks, 1, 5);
  ASSERT_EQ(r.kind, ReplyKind::kDiagnostic) << r.detail;
  EXPECT_EQ(r.diagnostic.row_count, 5u);
  EXPECT_EQ(r.diagnostic.units_tested, 5u * 15);
  EXPECT_EQ(r.diagnostic.failures, 3u);
  ASSERT_EQ(r.findings.size(), 3u);
  EXPECT_TRUE(r.findings[0].retired);
  EXPECT_TRUE(r.findings[1].retired);  // The same PE: retired once, reported twice.
  EXPECT_EQ(r.findings[1].detail, 1u);
  EXPECT_FALSE(r.findings[2].retired);
  EXPECT_FALSE(r.findings[2].remapped);
  EXPECT_EQ(r.findings[2].region, 2u);
  EXPECT_EQ(wafer_.retires, 1);
  EXPECT_EQ(wafer_.remaps, 1);
  Reply faults = Simple(CommandKind::kReadFaults);
  ASSERT_EQ(faults.faults.size(), 1u);
  EXPECT_EQ(faults.faults[0].kind, hal::FaultKind::kFabricLink);
  EXPECT_EQ(faults.faults[0].model_id, 0u);  // Nothing lived there.
  EXPECT_EQ(cp_->Geometry().runtime_failed, 1u);

  // Rows 1..5 hold none of the hits beyond them; a run past them finds nothing.
  r = RunDiag(*cp_, DiagTest::kFabricLinks, 6, 2);
  EXPECT_EQ(r.diagnostic.failures, 0u);
  EXPECT_EQ(r.findings.size(), 0u);
}

TEST_F(CommandProcessorTest, ARetireTheWaferRefusesIsReportedNotRetired) {
  BootOk();
  wafer_.sram_hits[0] = hal::DiagHit{0, 0, 8, 0, false};
  wafer_.sram_hit_count = 1;
  wafer_.retire_status = Internal();
  Reply r = RunDiag(*cp_, DiagTest::kSramAll, 0, 1);
  ASSERT_EQ(r.kind, ReplyKind::kDiagnostic);
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_FALSE(r.findings[0].retired);
  EXPECT_EQ(wafer_.remaps, 0);
  EXPECT_EQ(Simple(CommandKind::kReadFaults).faults.size(), 0u);
}

TEST_F(CommandProcessorTest, SramUnusedAndKnownAnswerOnlyReport) {
  BootOk();
  wafer_.sram_hits[0] = hal::DiagHit{3, 1, 0x100, 0, false};
  wafer_.sram_hit_count = 1;
  Reply r = RunDiag(*cp_, DiagTest::kSramUnused, 0, 8);
  ASSERT_EQ(r.kind, ReplyKind::kDiagnostic);
  EXPECT_TRUE(wafer_.last_unused_only);
  EXPECT_EQ(r.diagnostic.failures, 1u);
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_FALSE(r.findings[0].retired);
  EXPECT_EQ(r.findings[0].detail, 0x100u);

  // Two regions: region 1 answers wrong; the count is clipped to the board's regions.
  wafer_.kat_error[1] = 5;
  r = RunDiag(*cp_, DiagTest::kKnownAnswer, 0, 1000);
  ASSERT_EQ(r.kind, ReplyKind::kDiagnostic);
  EXPECT_EQ(r.diagnostic.test, DiagTest::kKnownAnswer);
  EXPECT_EQ(r.diagnostic.row_count, 2u);
  EXPECT_EQ(r.diagnostic.units_tested, 2u);
  EXPECT_EQ(r.diagnostic.failures, 1u);
  EXPECT_EQ(r.diagnostic.device_ns, 200);
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_EQ(r.findings[0].region, 1u);
  EXPECT_EQ(r.findings[0].row, 0u);
  EXPECT_EQ(r.findings[0].detail,
            testing::FakeWafer::kKatPes * hal::KnownAnswerPerPe() + 5);
  EXPECT_FALSE(r.findings[0].retired);

  // A region whose clock is stopped fails the test.
  wafer_.kat_error[1] = 0;
  wafer_.kat_stopped_region = 0;
  r = RunDiag(*cp_, DiagTest::kKnownAnswer, 0, 2);
  EXPECT_EQ(r.diagnostic.failures, 1u);
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_EQ(r.findings[0].region, 0u);
  EXPECT_EQ(r.findings[0].detail, 0u);

  EXPECT_EQ(wafer_.retires, 0);
  EXPECT_EQ(Simple(CommandKind::kReadFaults).faults.size(), 0u);
  EXPECT_EQ(cp_->Geometry().runtime_failed, 0u);
  // A clean run logs nothing (a sweep is dozens of runs; the ring keeps what matters).
  wafer_.kat_stopped_region = -1;
  const uint64_t from = cp_->error_log().next_sequence();
  r = RunDiag(*cp_, DiagTest::kKnownAnswer, 1, 1);
  EXPECT_EQ(r.diagnostic.failures, 0u);
  EXPECT_EQ(ReadLog(*cp_, from).size(), 0u);
}

}  // namespace
}  // namespace wafer::fw
