#include "firmware/command_processor.h"

#include <gtest/gtest.h>

#include <memory>
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

}  // namespace
}  // namespace wafer::fw
