// The reply encoder's size bounds: every reply kind, filled to the firmware's limits, builds in
// an arena of exactly its bound (the arena traps rather than grow), and a reply past one frame
// is answered with RESOURCE_EXHAUSTED instead of being built or dropped.
#include "firmware/link/frame_codec.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "firmware/error_log.h"
#include "schemas/board_generated.h"

namespace wafer::fw {
namespace {

namespace wb = ::wafer::wire::board;
namespace wire = ::wafer::wire;

// Encodes `r` with a builder whose only memory is an arena of ReplySizeBound(r) bytes (rounded
// up to the builder's alignment); returns the verified envelope's bytes.
std::vector<std::byte> EncodeInItsBound(const Reply& r) {
  const size_t bound = ReplySizeBound(r);
  EXPECT_LE(bound, kMaxFrameBytes);
  std::vector<uint64_t> storage((bound + 7) / 8);
  ArenaAllocator allocator(std::as_writable_bytes(std::span(storage)));
  flatbuffers::FlatBufferBuilder fbb(allocator.capacity(), &allocator);
  const std::span<const std::byte> bytes = EncodeReply(fbb, r);
  EXPECT_LE(bytes.size(), bound);
  flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  EXPECT_TRUE(wb::VerifyBoardEnvelopeBuffer(v));
  return {bytes.begin(), bytes.end()};
}

const wb::BoardEnvelope* Envelope(const std::vector<std::byte>& bytes) {
  return wb::GetBoardEnvelope(bytes.data());
}

TEST(ReplySizeBoundTest, EveryReplyKindAtTheLimitsFitsItsBound) {
  const std::string long_text(400, 'x');  // Longer than the 255 characters a detail keeps.
  Reply r;
  r.command_id = 9;
  r.detail = long_text.c_str();
  r.code = StatusCode::kInternal;

  r.kind = ReplyKind::kAck;
  EXPECT_EQ(Envelope(EncodeInItsBound(r))->message_type(), wb::BoardMessage::Ack);
  r.kind = ReplyKind::kBoot;
  EXPECT_EQ(Envelope(EncodeInItsBound(r))->message_type(), wb::BoardMessage::BootReply);
  r.kind = ReplyKind::kError;
  EXPECT_EQ(Envelope(EncodeInItsBound(r))->message_type(),
            wb::BoardMessage::wafer_wire_ErrorReply);
  r.kind = ReplyKind::kHeartbeat;
  EXPECT_EQ(Envelope(EncodeInItsBound(r))->message_type(), wb::BoardMessage::wafer_wire_Heartbeat);
  r.kind = ReplyKind::kIdentify;
  r.info.board_id = long_text.c_str();
  r.info.preset = long_text.c_str();
  EXPECT_EQ(Envelope(EncodeInItsBound(r))->message_type(), wb::BoardMessage::IdentifyReply);

  // A Step at every limit: 256 sequences, kMaxStepTokens tokens and kMaxStepHiddenValues hidden
  // values between them, and a pipeline of the most stages with a long failure detail.
  std::vector<uint32_t> tokens(kMaxStepTokens, 7);
  std::vector<float> hidden(kMaxStepHiddenValues, 0.5f);
  std::vector<hal::SeqOutcome> outcomes(kMaxSeqsPerStep);
  const size_t tokens_each = kMaxStepTokens / kMaxSeqsPerStep;
  const size_t hidden_each = kMaxStepHiddenValues / kMaxSeqsPerStep;
  for (size_t i = 0; i < outcomes.size(); ++i) {
    outcomes[i].slot = static_cast<uint32_t>(i);
    outcomes[i].token_buffer = std::span(tokens).subspan(i * tokens_each, tokens_each);
    outcomes[i].token_count = static_cast<uint32_t>(tokens_each);
    outcomes[i].hidden_buffer = std::span(hidden).subspan(i * hidden_each, hidden_each);
    outcomes[i].hidden_count = static_cast<uint32_t>(hidden_each);
  }
  std::vector<int64_t> busy(kMaxPipelineStages, 1000);
  r.kind = ReplyKind::kStep;
  r.outcomes = outcomes;
  r.pipeline.present = true;
  r.pipeline.stage_busy_ns = busy;
  r.pipeline.failed_stage = 2;
  r.pipeline.failed_code = StatusCode::kUnavailable;
  r.pipeline.failed_detail = long_text.c_str();
  std::vector<std::byte> step = EncodeInItsBound(r);
  const wb::StepReply* sr = Envelope(step)->message_as_StepReply();
  ASSERT_NE(sr, nullptr);
  EXPECT_EQ(sr->results()->size(), kMaxSeqsPerStep);
  EXPECT_EQ(sr->results()->Get(255)->hidden_out()->size(), hidden_each);
  EXPECT_EQ(sr->pipeline()->stage_busy_ns()->size(), kMaxPipelineStages);

  r.kind = ReplyKind::kTelemetry;
  r.sensors.region_count = hal::kMaxRegions;
  EXPECT_EQ(Envelope(EncodeInItsBound(r))->message_as_Telemetry()->region_temp_c()->size(),
            hal::kMaxRegions);

  std::vector<LogRecord> records(kMaxLogRecordsPerReply + 5);
  for (LogRecord& rec : records) rec.arg_count = kLogArgs;
  r.kind = ReplyKind::kErrorLog;
  r.log_records = records;
  EXPECT_EQ(Envelope(EncodeInItsBound(r))->message_as_ErrorLogReply()->records()->size(),
            kMaxLogRecordsPerReply);

  std::vector<uint16_t> rows(hal::kMaxFabricRows, 1);
  std::vector<uint32_t> dropped(hal::kMaxFabricRows, 2);
  r.kind = ReplyKind::kGeometry;
  r.row_failed = rows;
  r.dropped_rows = dropped;
  EXPECT_EQ(Envelope(EncodeInItsBound(r))->message_as_GeometryReply()->dropped_rows()->size(),
            hal::kMaxFabricRows);

  std::vector<FaultRecord> faults(kMaxFaultReports + 3);
  for (FaultRecord& f : faults) f.tensor_count = kMaxRestageTensors;
  r.kind = ReplyKind::kFaults;
  r.faults = faults;
  EXPECT_EQ(Envelope(EncodeInItsBound(r))->message_as_FaultReply()->faults()->size(),
            kMaxFaultReports);

  std::vector<DiagFinding> findings(kMaxDiagFindings + 3);
  r.kind = ReplyKind::kDiagnostic;
  r.findings = findings;
  EXPECT_EQ(Envelope(EncodeInItsBound(r))->message_as_DiagnosticReply()->findings()->size(),
            kMaxDiagFindings);

  r.kind = ReplyKind::kFirmwareSlots;
  for (FirmwareSlotSummary& s : r.firmware_slots.slots) {
    s.has_signature = true;
    s.version.fill('v');
    s.version_length = kMaxImageVersionBytes;
  }
  EXPECT_EQ(Envelope(EncodeInItsBound(r))->message_as_FirmwareSlotsReply()->slots()->size(),
            hal::kFirmwareSlots);
}

// Past one frame (more hidden values than any Step may carry): an Ack of RESOURCE_EXHAUSTED for
// the same command, counted; the codec goes on encoding.
TEST(FrameCodecTest, AReplyPastOneFrameIsResourceExhausted) {
  auto codec = std::make_unique<FrameCodec>();
  std::vector<float> hidden(kMaxStepHiddenValues, 1.0f);
  std::vector<hal::SeqOutcome> outcomes(2);
  for (hal::SeqOutcome& o : outcomes) {
    o.hidden_buffer = hidden;  // 1 MB each: 2 MB in all, past the 1.5 MB frame.
    o.hidden_count = static_cast<uint32_t>(hidden.size());
  }
  Reply r;
  r.kind = ReplyKind::kStep;
  r.command_id = 77;
  r.outcomes = outcomes;
  ASSERT_GT(ReplySizeBound(r), kMaxFrameBytes);
  std::span<const std::byte> bytes = codec->Encode(r);
  flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  ASSERT_TRUE(wb::VerifyBoardEnvelopeBuffer(v));
  const wb::BoardEnvelope* env = wb::GetBoardEnvelope(bytes.data());
  EXPECT_EQ(env->command_id(), 77u);
  ASSERT_EQ(env->message_type(), wb::BoardMessage::Ack);
  EXPECT_EQ(env->message_as_Ack()->code(), wire::ErrorCode::kResourceExhausted);
  EXPECT_NE(env->message_as_Ack()->detail()->str().find("RESOURCE_EXHAUSTED"), std::string::npos);
  EXPECT_EQ(codec->replies_exhausted(), 1u);

  outcomes.resize(1);  // 1 MB: fits.
  r.outcomes = outcomes;
  bytes = codec->Encode(r);
  env = wb::GetBoardEnvelope(bytes.data());
  ASSERT_EQ(env->message_type(), wb::BoardMessage::StepReply);
  EXPECT_EQ(env->message_as_StepReply()->results()->Get(0)->hidden_out()->size(), hidden.size());
  EXPECT_EQ(codec->replies_exhausted(), 1u);
}

// Encodes `r` with a builder over a 64-byte arena.
void EncodeInSixtyFourBytes(const Reply& r) {
  alignas(8) std::array<std::byte, 64> arena{};
  ArenaAllocator allocator(arena);
  flatbuffers::FlatBufferBuilder fbb(arena.size(), &allocator);
  EncodeReply(fbb, r);
}

// The arena never grows and never falls back on the heap: a builder that needs more traps.
TEST(ArenaAllocatorDeathTest, ABuilderPastItsArenaTraps) {
  Reply r;
  r.kind = ReplyKind::kAck;
  r.detail = "a detail that does not fit sixty-four bytes together with the envelope";
  ASSERT_GT(ReplySizeBound(r), 64u);
  EXPECT_DEATH(EncodeInSixtyFourBytes(r), "");
}

}  // namespace
}  // namespace wafer::fw
