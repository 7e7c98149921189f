#include "host/board/board_codec.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>

#include "firmware/link/frame_codec.h"
#include "schemas/board_generated.h"

namespace wafer::host {
namespace {

namespace wb = ::wafer::wire::board;
namespace wire = ::wafer::wire;

Frame StepReplyFrame(uint64_t id, uint16_t major) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<uint32_t> tokens = {5, 6, 7};
  std::vector<flatbuffers::Offset<wb::SeqResult>> results = {
      wb::CreateSeqResultDirect(fbb, 3, &tokens, wire::ErrorCode::kResourceExhausted, 42)};
  auto dt = wb::CreateDeviceTime(fbb, 100, 10, 20, 0, 70);
  auto msg = wb::CreateStepReplyDirect(fbb, &results, dt);
  const wire::ProtocolVersion v(major, 0);
  wb::FinishBoardEnvelopeBuffer(
      fbb, wb::CreateBoardEnvelope(fbb, &v, id, wb::BoardMessage::StepReply, msg.Union()));
  const auto* p = reinterpret_cast<const std::byte*>(fbb.GetBufferPointer());
  return Frame(p, p + fbb.GetSize());
}

TEST(BoardCodecTest, DecodesErrorLogReplyAndClampsUnknownSeverity) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<uint64_t> args = {1, 0};
  std::vector<flatbuffers::Offset<wb::ErrorRecord>> records = {
      wb::CreateErrorRecordDirect(fbb, 9, 1234, wb::LogSeverity::kError,
                                  wb::LogCode::kImageRolledBack, &args),
      wb::CreateErrorRecordDirect(fbb, 10, 1300, static_cast<wb::LogSeverity>(200),
                                  static_cast<wb::LogCode>(999), nullptr)};
  auto msg = wb::CreateErrorLogReplyDirect(fbb, &records, 11, 3, 8);
  const wire::ProtocolVersion v(1, 0);
  wb::FinishBoardEnvelopeBuffer(
      fbb, wb::CreateBoardEnvelope(fbb, &v, 5, wb::BoardMessage::ErrorLogReply, msg.Union()));
  const auto* p = reinterpret_cast<const std::byte*>(fbb.GetBufferPointer());
  HostResult<BoardReply> r = DecodeBoardReply(std::span(p, fbb.GetSize()));
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->type, BoardReplyType::kErrorLog);
  const BoardErrorLog& log = r->error_log;
  EXPECT_EQ(log.next_sequence, 11u);
  EXPECT_EQ(log.dropped_count, 3u);
  EXPECT_EQ(log.overwritten_total, 8u);
  ASSERT_EQ(log.records.size(), 2u);
  EXPECT_EQ(log.records[0].sequence, 9u);
  EXPECT_EQ(log.records[0].timestamp_ns, 1234);
  EXPECT_EQ(log.records[0].severity, BoardLogSeverity::kError);
  EXPECT_STREQ(BoardLogCodeName(log.records[0].code), "kImageRolledBack");
  EXPECT_EQ(log.records[0].args, args);
  EXPECT_EQ(log.records[1].severity, BoardLogSeverity::kFatal);
  EXPECT_EQ(log.records[1].code, 999);
  EXPECT_STREQ(BoardLogCodeName(999), "");
  EXPECT_TRUE(log.records[1].args.empty());
}

TEST(BoardCodecTest, PermissionDeniedAndOutOfRangeHaveWireCodes) {
  EXPECT_EQ(StatusFromWire(static_cast<uint16_t>(wire::ErrorCode::kPermissionDenied)).code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(StatusFromWire(static_cast<uint16_t>(wire::ErrorCode::kOutOfRange)).code(),
            StatusCode::kOutOfRange);
  EXPECT_EQ(StatusFromWire(static_cast<uint16_t>(wire::ErrorCode::kInternal)).code(),
            StatusCode::kInternal);
}

TEST(BoardCodecTest, FirmwareCommandsEncodeWhatTheBoardDecodes) {
  const std::vector<std::byte> sig(64, std::byte{7});
  const std::vector<std::byte> data = {std::byte{1}, std::byte{2}, std::byte{3}};
  const Frame begin = EncodeBeginFirmwareImage(3, 1, 4096, 0xABCD, sig);
  const auto* env = wb::GetBoardEnvelope(begin.data());
  ASSERT_EQ(env->message_type(), wb::BoardMessage::BeginFirmwareImage);
  EXPECT_EQ(env->message_as_BeginFirmwareImage()->size(), 4096u);
  EXPECT_EQ(env->message_as_BeginFirmwareImage()->signature()->size(), 64u);
  const Frame chunk = EncodeWriteFirmwareChunk(4, 1, 100, data, 0x1234);
  env = wb::GetBoardEnvelope(chunk.data());
  ASSERT_EQ(env->message_type(), wb::BoardMessage::WriteFirmwareChunk);
  EXPECT_EQ(env->message_as_WriteFirmwareChunk()->offset(), 100u);
  EXPECT_EQ(env->message_as_WriteFirmwareChunk()->crc32c(), 0x1234u);
  const Frame read = EncodeReadErrorLog(5, 42, 7);
  env = wb::GetBoardEnvelope(read.data());
  ASSERT_EQ(env->message_type(), wb::BoardMessage::ReadErrorLog);
  EXPECT_EQ(env->message_as_ReadErrorLog()->from_sequence(), 42u);
}

TEST(BoardCodecTest, DecodesStepReplyFromUnalignedMemory) {
  const Frame f = StepReplyFrame(77, 1);
  std::vector<std::byte> shifted(f.size() + 1);
  std::memcpy(shifted.data() + 1, f.data(), f.size());
  HostResult<BoardReply> r = DecodeBoardReply(std::span(shifted).subspan(1));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->command_id, 77u);
  EXPECT_EQ(r->type, BoardReplyType::kStep);
  ASSERT_EQ(r->step.results.size(), 1u);
  EXPECT_EQ(r->step.results[0].tokens, (std::vector<uint32_t>{5, 6, 7}));
  EXPECT_EQ(r->step.results[0].status.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(r->step.results[0].context_tokens, 42u);
  EXPECT_EQ(r->step.device_time.total_ns, 100);
  EXPECT_EQ(r->step.device_time.host_io_ns, 70);
}

TEST(BoardCodecTest, RejectsBadReplies) {
  HostResult<BoardReply> old_version = DecodeBoardReply(StepReplyFrame(1, 2));
  ASSERT_EQ(old_version.code(), StatusCode::kDataLoss);
  EXPECT_NE(old_version.error().message.find("version"), std::string::npos);
  Frame garbage(40, std::byte{0x5a});
  EXPECT_EQ(DecodeBoardReply(garbage).code(), StatusCode::kDataLoss);
  Frame truncated = StepReplyFrame(1, 1);
  truncated.resize(truncated.size() / 2);
  EXPECT_EQ(DecodeBoardReply(truncated).code(), StatusCode::kDataLoss);
  // A command is not a reply.
  EXPECT_EQ(DecodeBoardReply(EncodeIdentify(3)).code(), StatusCode::kDataLoss);
}

TEST(BoardCodecTest, EncodedCommandsVerify) {
  ModelManifest m;
  m.model_id = 9;
  m.name = "tiny";
  m.arch.vocab_size = 64;
  m.arch.rope_scaling.factor = 8;
  m.tensors.push_back(TensorDesc{"w", TensorRole::kWq, 1, DType::kBF16, {4, 8}, 64, {3, 4, 5, 6}});
  m.kv_regions.push_back(KvRegion{1, {0, 10, 128, 2}, 512});
  m.slots = 2;
  m.context_length = 16;
  const Frame f = EncodeBeginModel(5, m);
  flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(f.data()), f.size());
  ASSERT_TRUE(wb::VerifyBoardEnvelopeBuffer(v));
  const auto* env = wb::GetBoardEnvelope(f.data());
  EXPECT_EQ(env->command_id(), 5u);
  EXPECT_EQ(env->version()->major(), 1);
  const auto* bm = env->message_as_BeginModel();
  ASSERT_NE(bm, nullptr);
  EXPECT_EQ(bm->tensors()->Get(0)->role(), wb::TensorRole::kWq);
  EXPECT_EQ(bm->tensors()->Get(0)->dtype(), wb::DType::kBF16);
  EXPECT_EQ(bm->tensors()->Get(0)->shape()->Get(1), 8u);
  const wb::PeRect* placement = bm->tensors()->Get(0)->placement();
  ASSERT_NE(placement, nullptr);
  EXPECT_EQ(placement->x(), 3u);
  EXPECT_EQ(placement->y(), 4u);
  EXPECT_EQ(placement->w(), 5u);
  EXPECT_EQ(placement->h(), 6u);
  ASSERT_EQ(bm->kv_regions()->size(), 1u);
  EXPECT_EQ(bm->kv_regions()->Get(0)->layer(), 1u);
  EXPECT_EQ(bm->kv_regions()->Get(0)->rect().y(), 10u);
  EXPECT_EQ(bm->kv_regions()->Get(0)->rect().w(), 128u);
  EXPECT_EQ(bm->kv_regions()->Get(0)->bytes_per_pe(), 512u);
  EXPECT_FLOAT_EQ(bm->arch()->rope_scaling()->factor(), 8);
}

TEST(BoardCodecTest, StatusFromWire) {
  EXPECT_TRUE(StatusFromWire(0).ok());
  EXPECT_EQ(StatusFromWire(static_cast<uint16_t>(wire::ErrorCode::kInvalidArgument)).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(StatusFromWire(static_cast<uint16_t>(wire::ErrorCode::kUnknownModel)).code(),
            StatusCode::kNotFound);
  EXPECT_EQ(StatusFromWire(9999).code(), StatusCode::kInternal);
}

// The firmware's side of the link, to round-trip frames through both codecs.
class FirmwareCodec {
 public:
  FirmwareCodec() : codec_(std::make_unique<fw::FrameCodec>()) {}

  // Decodes a host command as the board does (from 8-byte aligned storage, which `frame` is
  // copied into and the command's spans point into).
  fw::Command Decode(const Frame& frame) {
    storage_.assign(frame.size() / 8 + 1, 0);
    std::memcpy(storage_.data(), frame.data(), frame.size());
    fw::Command cmd;
    fw::Reply error;
    EXPECT_TRUE(codec_->Decode({reinterpret_cast<const std::byte*>(storage_.data()), frame.size()},
                               cmd, error))
        << error.detail;
    return cmd;
  }
  // Encodes a board reply and decodes it as the host does.
  BoardReply RoundTrip(const fw::Reply& reply) {
    HostResult<BoardReply> r = DecodeBoardReply(codec_->Encode(reply));
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? *r : BoardReply{};
  }

 private:
  std::unique_ptr<fw::FrameCodec> codec_;
  std::vector<uint64_t> storage_;
};

TEST(BoardCodecTest, StageRoundTripsAndAbsentMeansTheWholeModel) {
  FirmwareCodec board;
  ModelManifest m;
  m.model_id = 4;
  m.arch.num_layers = 80;
  m.tensors.push_back(TensorDesc{"w", TensorRole::kWq, 41, DType::kBF16, {4, 8}, 64, {0, 0, 1, 1}});
  m.stage = ModelStage{40, 20, false, false};
  fw::Command cmd = board.Decode(EncodeBeginModel(1, m));
  ASSERT_EQ(cmd.kind, fw::CommandKind::kBeginModel);
  EXPECT_EQ(cmd.manifest.stage, (ModelStage{40, 20, false, false}));
  EXPECT_EQ(cmd.manifest.tensors[0].layer, 41u);  // Layer indices stay global.
  m.stage = ModelStage{60, 0, false, true};
  EXPECT_EQ(board.Decode(EncodeBeginModel(2, m)).manifest.stage,
            (ModelStage{60, 0, false, true}));

  // A host that predates stages sends none: the board reads the whole model.
  flatbuffers::FlatBufferBuilder fbb;
  auto arch = wb::CreateModelArch(fbb);
  const wire::ProtocolVersion v(1, 0);
  wb::FinishBoardEnvelopeBuffer(
      fbb, wb::CreateBoardEnvelope(fbb, &v, 3, wb::BoardMessage::BeginModel,
                                   wb::CreateBeginModelDirect(fbb, 5, "old", arch).Union()));
  const auto* p = reinterpret_cast<const std::byte*>(fbb.GetBufferPointer());
  EXPECT_EQ(board.Decode(Frame(p, p + fbb.GetSize())).manifest.stage, ModelStage{});
}

TEST(BoardCodecTest, HiddenStatesRoundTripBitForBit) {
  FirmwareCodec board;
  // Values a 16-bit or text encoding would change: the float32 bits must arrive unchanged.
  const std::vector<float> hidden = {1.0f / 3, -0.0f, 1e-42f, 65504.5f, -2.5e30f, 7.0f};
  SeqStep first;
  first.slot = 2;
  first.input_tokens = {9, 10, 11};
  first.generate = 1;
  first.hidden_in = hidden;
  SeqStep second;  // A stage with the embedding: no hidden states at all.
  second.slot = 3;
  second.input_tokens = {1};
  fw::Command cmd = board.Decode(EncodeStep(8, 6, {first, second}));
  ASSERT_EQ(cmd.kind, fw::CommandKind::kStep);
  ASSERT_EQ(cmd.step.seqs.size(), 2u);
  const std::span<const float> in = cmd.step.seqs[0].hidden_in;
  ASSERT_EQ(in.size(), hidden.size());
  EXPECT_EQ(std::memcmp(in.data(), hidden.data(), hidden.size() * sizeof(float)), 0);
  EXPECT_TRUE(cmd.step.seqs[1].hidden_in.empty());

  std::vector<float> out = hidden;
  std::array<fw::hal::SeqOutcome, 2> outcomes{};
  outcomes[0].slot = 2;
  outcomes[0].hidden_buffer = out;
  outcomes[0].hidden_count = static_cast<uint32_t>(out.size());
  outcomes[0].context_tokens = 3;
  outcomes[1].slot = 3;
  fw::Reply reply;
  reply.kind = fw::ReplyKind::kStep;
  reply.outcomes = outcomes;
  const BoardReply r = board.RoundTrip(reply);
  ASSERT_EQ(r.step.results.size(), 2u);
  ASSERT_EQ(r.step.results[0].hidden_out.size(), hidden.size());
  EXPECT_EQ(std::memcmp(r.step.results[0].hidden_out.data(), hidden.data(),
                        hidden.size() * sizeof(float)),
            0);
  EXPECT_TRUE(r.step.results[1].hidden_out.empty());
}

TEST(BoardCodecTest, IdentifyReportsTheHiddenStateLimit) {
  FirmwareCodec board;
  fw::Reply reply;
  reply.kind = fw::ReplyKind::kIdentify;
  EXPECT_EQ(board.RoundTrip(reply).identity.max_step_hidden_values, fw::kMaxStepHiddenValues);
}

TEST(BoardCodecTest, MisalignedHiddenStatesAreDataLoss) {
  // A StepReply whose hidden_out vector starts 2 bytes off a float boundary (a hostile or broken
  // board): the verifier refuses it rather than the host reading torn floats.
  const std::vector<float> hidden = {1, 2, 3, 4};
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<uint32_t> tokens;
  std::vector<flatbuffers::Offset<wb::SeqResult>> results = {wb::CreateSeqResultDirect(
      fbb, 0, &tokens, wire::ErrorCode::kNone, 4, &hidden)};
  auto msg = wb::CreateStepReplyDirect(fbb, &results);
  const wire::ProtocolVersion v(1, 0);
  wb::FinishBoardEnvelopeBuffer(
      fbb, wb::CreateBoardEnvelope(fbb, &v, 1, wb::BoardMessage::StepReply, msg.Union()));
  Frame f(reinterpret_cast<const std::byte*>(fbb.GetBufferPointer()),
          reinterpret_cast<const std::byte*>(fbb.GetBufferPointer()) + fbb.GetSize());
  HostResult<BoardReply> intact = DecodeBoardReply(f);
  ASSERT_TRUE(intact.ok()) << intact.error().message;
  // Point the SeqResult's hidden_out offset (the uoffset that leads from where it is stored to
  // the vector) 2 bytes further: still inside the buffer, no longer float-aligned.
  const auto* base = reinterpret_cast<const uint8_t*>(f.data());
  const auto* vec = reinterpret_cast<const uint8_t*>(
      wb::GetBoardEnvelope(base)->message_as_StepReply()->results()->Get(0)->hidden_out());
  size_t field = 0;
  for (size_t at = 0; at + 4 <= f.size(); at += 4) {
    uint32_t offset;
    std::memcpy(&offset, base + at, 4);
    if (base + at + offset == vec) field = at;
  }
  ASSERT_NE(field, 0u);
  uint32_t offset;
  std::memcpy(&offset, f.data() + field, 4);
  offset += 2;
  std::memcpy(f.data() + field, &offset, 4);
  EXPECT_EQ(DecodeBoardReply(f).code(), StatusCode::kDataLoss);
}

TEST(BoardCodecTest, FirmwareSlotsAndRollbackCrossBothCodecs) {
  FirmwareCodec board;
  EXPECT_EQ(board.Decode(EncodeReadFirmwareSlots(8)).kind, fw::CommandKind::kReadFirmwareSlots);
  EXPECT_EQ(board.Decode(EncodeRollbackFirmware(9)).kind, fw::CommandKind::kRollbackFirmware);

  fw::Reply reply;
  reply.kind = fw::ReplyKind::kFirmwareSlots;
  reply.command_id = 8;
  fw::FirmwareSlotsSummary& f = reply.firmware_slots;
  f.active_slot = 1;
  f.fallback_slot = 0;
  f.pending = true;
  f.pending_slot = 0;
  f.trial = false;
  f.signing_key = true;
  f.slots[0].valid = true;
  f.slots[0].size = 28;
  f.slots[0].crc32c = 0xCAFE;
  f.slots[0].has_signature = true;
  f.slots[0].signature.fill(std::byte{0x42});
  const std::string version = "waferfw-1.0.0";
  std::memcpy(f.slots[0].version.data(), version.data(), version.size());
  f.slots[0].version_length = static_cast<uint32_t>(version.size());
  const BoardReply r = board.RoundTrip(reply);
  ASSERT_EQ(r.type, BoardReplyType::kFirmwareSlots);
  EXPECT_EQ(r.firmware_slots.active_slot, 1u);
  EXPECT_TRUE(r.firmware_slots.pending);
  EXPECT_EQ(r.firmware_slots.pending_slot, 0u);
  EXPECT_TRUE(r.firmware_slots.signing_key);
  ASSERT_EQ(r.firmware_slots.slots.size(), 2u);
  const BoardFirmwareSlot& slot = r.firmware_slots.slots[0];
  EXPECT_EQ(slot.slot, 0u);
  EXPECT_TRUE(slot.valid);
  EXPECT_EQ(slot.size, 28u);
  EXPECT_EQ(slot.crc32c, 0xCAFEu);
  EXPECT_TRUE(slot.has_signature);
  EXPECT_EQ(slot.signature, std::vector<uint8_t>(64, 0x42));
  EXPECT_EQ(slot.version, "waferfw-1.0.0");
  EXPECT_EQ(r.firmware_slots.slots[1].slot, 1u);
  EXPECT_FALSE(r.firmware_slots.slots[1].valid);
  EXPECT_TRUE(r.firmware_slots.slots[1].signature.empty());  // No trailer, no bytes.
}

}  // namespace
}  // namespace wafer::host
