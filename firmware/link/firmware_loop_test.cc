#include "firmware/link/firmware_loop.h"

#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "common/crc32c.h"
#include "firmware/testing/fake_platform.h"
#include "tests/firmware_queue_port.h"
#include "schemas/board_generated.h"

namespace wafer::fw {
namespace {

namespace wb = ::wafer::wire::board;
namespace wire = ::wafer::wire;


std::vector<std::byte> Finish(flatbuffers::FlatBufferBuilder& fbb, uint64_t id,
                              wb::BoardMessage type, flatbuffers::Offset<void> msg,
                              uint16_t major = 1) {
  wire::ProtocolVersion v(major, 3);
  fbb.Finish(wb::CreateBoardEnvelope(fbb, &v, id, type, msg), wb::BoardEnvelopeIdentifier());
  auto* p = reinterpret_cast<const std::byte*>(fbb.GetBufferPointer());
  return {p, p + fbb.GetSize()};
}

std::vector<std::byte> IdentifyFrame(uint64_t id, uint16_t major = 1) {
  flatbuffers::FlatBufferBuilder fbb;
  return Finish(fbb, id, wb::BoardMessage::Identify, wb::CreateIdentify(fbb).Union(), major);
}

class FirmwareLoopTest : public ::testing::Test {
 protected:
  FirmwareLoopTest() : loop_(std::make_unique<FirmwareLoop>(port_, fake_.platform())) {}

  // Feeds one frame, runs the loop once and returns the verified reply envelope.
  const wb::BoardEnvelope* Serve(std::vector<std::byte> frame) {
    port_.in.push_back(std::move(frame));
    EXPECT_TRUE(loop_->PollOnce(0).ok());
    EXPECT_EQ(port_.out.size(), 1u);
    reply_ = std::move(port_.out.front());
    port_.out.clear();
    flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(reply_.data()), reply_.size());
    EXPECT_TRUE(wb::VerifyBoardEnvelopeBuffer(v));
    return wb::GetBoardEnvelope(reply_.data());
  }
  void ExpectError(std::vector<std::byte> frame, wire::ErrorCode code, uint64_t tag) {
    const wb::BoardEnvelope* env = Serve(std::move(frame));
    ASSERT_EQ(env->message_type(), wb::BoardMessage::wafer_wire_ErrorReply);
    EXPECT_EQ(env->message_as_wafer_wire_ErrorReply()->code(), code);
    EXPECT_EQ(env->message_as_wafer_wire_ErrorReply()->request_tag(), tag);
    EXPECT_GT(env->message_as_wafer_wire_ErrorReply()->detail()->size(), 0u);
  }
  void ExpectStillServing() {
    const wb::BoardEnvelope* env = Serve(IdentifyFrame(4242));
    ASSERT_EQ(env->message_type(), wb::BoardMessage::IdentifyReply);
    EXPECT_EQ(env->command_id(), 4242u);
    EXPECT_EQ(env->message_as_IdentifyReply()->preset()->str(), "fake");
  }

  testing::QueuePort port_;
  testing::FakePlatform fake_;
  testing::FakeWafer& wafer_ = fake_.wafer;
  std::unique_ptr<FirmwareLoop> loop_;
  std::vector<std::byte> reply_;
};

TEST_F(FirmwareLoopTest, IdentifyRoundTrip) {
  const wb::BoardEnvelope* env = Serve(IdentifyFrame(17));
  EXPECT_EQ(env->command_id(), 17u);
  EXPECT_EQ(env->version()->major(), 1);
  ASSERT_EQ(env->message_type(), wb::BoardMessage::IdentifyReply);
  const auto* r = env->message_as_IdentifyReply();
  EXPECT_EQ(r->board_id()->str(), "fake-0");
  EXPECT_EQ(r->state(), wb::BootState::kPowerOn);
  EXPECT_EQ(r->max_chunk_bytes(), kMaxChunkBytes);
  EXPECT_EQ(r->max_step_hidden_values(), kMaxStepHiddenValues);
}

TEST_F(FirmwareLoopTest, NothingArrivedIsNotAnError) {
  EXPECT_TRUE(loop_->PollOnce(0).ok());
  EXPECT_TRUE(port_.out.empty());
}

TEST_F(FirmwareLoopTest, GarbageTruncatedWrongIdentifierWrongVersion) {
  std::vector<std::byte> garbage(64);
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = std::byte(i * 37 + 11);
  ExpectError(garbage, wire::ErrorCode::kMalformedMessage, 0);
  ExpectStillServing();

  ExpectError(std::vector<std::byte>(3), wire::ErrorCode::kMalformedMessage, 0);
  ExpectStillServing();

  std::vector<std::byte> truncated = IdentifyFrame(5);
  truncated.resize(truncated.size() - 6);
  ExpectError(truncated, wire::ErrorCode::kMalformedMessage, 0);

  std::vector<std::byte> wrong_id = IdentifyFrame(6);
  std::memcpy(wrong_id.data() + 4, "XXXX", 4);
  ExpectError(wrong_id, wire::ErrorCode::kMalformedMessage, 0);

  ExpectError(IdentifyFrame(7, /*major=*/2), wire::ErrorCode::kUnsupportedVersion, 7);
  ExpectStillServing();

  std::vector<std::byte> huge(kMaxFrameBytes + 1);
  ExpectError(huge, wire::ErrorCode::kMalformedMessage, 0);
  ExpectStillServing();
  EXPECT_EQ(loop_->stats().frames_rejected, 6u);
  EXPECT_EQ(loop_->stats().frames_received, 10u);
}

TEST_F(FirmwareLoopTest, ReplyTypeAsCommandIsWrongMessageType) {
  flatbuffers::FlatBufferBuilder fbb;
  auto ack = wb::CreateAckDirect(fbb, wire::ErrorCode::kNone, "x");
  ExpectError(Finish(fbb, 8, wb::BoardMessage::Ack, ack.Union()),
              wire::ErrorCode::kWrongMessageType, 8);
  ExpectStillServing();
}

TEST_F(FirmwareLoopTest, BadFieldsAreInvalidArgument) {
  flatbuffers::FlatBufferBuilder fbb;
  auto bm = wb::CreateBeginModelDirect(fbb, 1, "m", /*arch=*/0);
  ExpectError(Finish(fbb, 9, wb::BoardMessage::BeginModel, bm.Union()),
              wire::ErrorCode::kInvalidArgument, 9);
  fbb.Clear();
  auto sampling = wb::CreateSeqSampling(fbb, -1.0f);
  auto seq = wb::CreateSeqStep(fbb, 0, false, 0, 1, sampling);
  std::vector<flatbuffers::Offset<wb::SeqStep>> seqs = {seq};
  auto step = wb::CreateStepDirect(fbb, 1, &seqs);
  ExpectError(Finish(fbb, 10, wb::BoardMessage::Step, step.Union()),
              wire::ErrorCode::kInvalidArgument, 10);
  ExpectStillServing();
}

TEST_F(FirmwareLoopTest, CommandBeforeBootGetsTypedAckAndCrcMismatchIsDataLoss) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<uint8_t> data = {1, 2, 3, 4};
  auto ww = wb::CreateWriteWeightsDirect(fbb, 1, 0, 0, &data, 0);
  const wb::BoardEnvelope* env = Serve(Finish(fbb, 11, wb::BoardMessage::WriteWeights, ww.Union()));
  ASSERT_EQ(env->message_type(), wb::BoardMessage::Ack);
  EXPECT_EQ(env->message_as_Ack()->code(), wire::ErrorCode::kFailedPrecondition);

  fbb.Clear();
  env = Serve(Finish(fbb, 12, wb::BoardMessage::Boot, wb::CreateBoot(fbb).Union()));
  ASSERT_EQ(env->message_type(), wb::BoardMessage::BootReply);
  EXPECT_TRUE(env->message_as_BootReply()->self_test_passed());

  fbb.Clear();
  const std::vector<uint64_t> shape = {1};
  // A tensor without its placement is refused before the wafer sees it.
  std::vector<flatbuffers::Offset<wb::TensorDesc>> unplaced = {
      wb::CreateTensorDescDirect(fbb, "t", wb::TensorRole::kEmbedding, 0, wb::DType::kF32,
                                 &shape, 4)};
  auto arch = wb::CreateModelArch(fbb, 4, 4, 4, 1, 1, 1, 4);
  ExpectError(Finish(fbb, 12, wb::BoardMessage::BeginModel,
                     wb::CreateBeginModelDirect(fbb, 1, "m", arch, &unplaced, 1, 8).Union()),
              wire::ErrorCode::kInvalidArgument, 12);

  fbb.Clear();
  const wb::PeRect placement(0, 0, 1, 1);
  const std::vector<wb::KvRegion> kv = {wb::KvRegion(0, wb::PeRect(0, 1, 1, 1), 64)};
  std::vector<flatbuffers::Offset<wb::TensorDesc>> tensors = {
      wb::CreateTensorDescDirect(fbb, "t", wb::TensorRole::kEmbedding, 0, wb::DType::kF32,
                                 &shape, 4, &placement)};
  arch = wb::CreateModelArch(fbb, 4, 4, 4, 1, 1, 1, 4);
  auto bm = wb::CreateBeginModelDirect(fbb, 1, "m", arch, &tensors, 1, 8, false, &kv);
  env = Serve(Finish(fbb, 13, wb::BoardMessage::BeginModel, bm.Union()));
  ASSERT_EQ(env->message_type(), wb::BoardMessage::Ack);
  EXPECT_EQ(env->message_as_Ack()->code(), wire::ErrorCode::kNone);

  fbb.Clear();
  const uint32_t bad_crc = Crc32c(std::as_bytes(std::span(data))) ^ 1;
  ww = wb::CreateWriteWeightsDirect(fbb, 1, 0, 0, &data, bad_crc);
  env = Serve(Finish(fbb, 14, wb::BoardMessage::WriteWeights, ww.Union()));
  ASSERT_EQ(env->message_type(), wb::BoardMessage::Ack);
  EXPECT_EQ(env->message_as_Ack()->code(), wire::ErrorCode::kDataLoss);
  EXPECT_EQ(std::string(env->message_as_Ack()->detail()->c_str()).rfind("DATA_LOSS", 0), 0u);
  EXPECT_EQ(wafer_.write_calls, 0);

  fbb.Clear();
  ww = wb::CreateWriteWeightsDirect(fbb, 1, 0, 2, &data, bad_crc ^ 1);
  env = Serve(Finish(fbb, 15, wb::BoardMessage::WriteWeights, ww.Union()));
  EXPECT_EQ(env->message_as_Ack()->code(), wire::ErrorCode::kOutOfRange);
  EXPECT_EQ(std::string(env->message_as_Ack()->detail()->c_str()).rfind("OUT_OF_RANGE", 0), 0u);
}

// A chunk may come as the message's second frame (attached_size): checked exactly like one in
// `data` (CRC before anything is written), and any mismatch between the header and what is
// attached is refused as a typed error, never read.
TEST_F(FirmwareLoopTest, AttachedChunksAreCheckedLikeInlineOnes) {
  flatbuffers::FlatBufferBuilder fbb;
  const wb::BoardEnvelope* env = Serve(IdentifyFrame(1));
  ASSERT_EQ(env->message_type(), wb::BoardMessage::IdentifyReply);
  EXPECT_TRUE(env->message_as_IdentifyReply()->attached_weights());
  ASSERT_EQ(Serve(Finish(fbb, 2, wb::BoardMessage::Boot, wb::CreateBoot(fbb).Union()))
                ->message_type(),
            wb::BoardMessage::BootReply);
  fbb.Clear();
  const std::vector<uint64_t> shape = {2};
  const wb::PeRect placement(0, 0, 1, 1);
  const std::vector<wb::KvRegion> kv = {wb::KvRegion(0, wb::PeRect(0, 1, 1, 1), 64)};
  std::vector<flatbuffers::Offset<wb::TensorDesc>> tensors = {wb::CreateTensorDescDirect(
      fbb, "t", wb::TensorRole::kEmbedding, 0, wb::DType::kF32, &shape, 8, &placement)};
  auto arch = wb::CreateModelArch(fbb, 4, 4, 4, 1, 1, 1, 4);
  env = Serve(Finish(fbb, 3, wb::BoardMessage::BeginModel,
                     wb::CreateBeginModelDirect(fbb, 1, "m", arch, &tensors, 1, 8, false, &kv)
                         .Union()));
  ASSERT_EQ(env->message_as_Ack()->code(), wire::ErrorCode::kNone);

  const std::vector<uint8_t> data = {1, 2, 3, 4, 5, 6, 7, 8};
  const std::vector<std::byte> bytes(reinterpret_cast<const std::byte*>(data.data()),
                                     reinterpret_cast<const std::byte*>(data.data()) + 8);
  const uint32_t crc = Crc32c(bytes);
  // A header and its attachment (which may be given apart from the header's size).
  auto attached = [&](uint64_t id, uint64_t size, std::vector<std::byte> attachment,
                      uint32_t with_crc, const std::vector<uint8_t>* inline_data = nullptr) {
    fbb.Clear();
    port_.attachments.push_back(std::move(attachment));
    return Finish(fbb, id, wb::BoardMessage::WriteWeights,
                  wb::CreateWriteWeightsDirect(fbb, 1, 0, 0, inline_data, with_crc, size).Union());
  };
  ExpectError(attached(10, 8, std::vector<std::byte>(bytes.begin(), bytes.begin() + 7), crc),
              wire::ErrorCode::kInvalidArgument, 10);
  ExpectError(attached(11, 8, bytes, crc, &data), wire::ErrorCode::kInvalidArgument, 11);
  ExpectError(attached(12, 0, bytes, crc), wire::ErrorCode::kInvalidArgument, 12);
  port_.attachments.push_back(bytes);
  ExpectError(IdentifyFrame(13), wire::ErrorCode::kInvalidArgument, 13);
  EXPECT_EQ(wafer_.write_calls, 0);

  env = Serve(attached(14, 8, bytes, crc ^ 1));
  ASSERT_EQ(env->message_type(), wb::BoardMessage::Ack);
  EXPECT_EQ(env->message_as_Ack()->code(), wire::ErrorCode::kDataLoss);
  EXPECT_EQ(wafer_.write_calls, 0);

  env = Serve(attached(15, 8, bytes, crc));
  ASSERT_EQ(env->message_type(), wb::BoardMessage::Ack);
  EXPECT_EQ(env->message_as_Ack()->code(), wire::ErrorCode::kNone);
  EXPECT_EQ(wafer_.write_calls, 1);
  EXPECT_EQ(wafer_.bytes_written, 8u);
  ExpectStillServing();
}

// A pipeline stage's manifest and hidden states cross the link both ways, bit for bit.
TEST_F(FirmwareLoopTest, StageAndHiddenStatesCrossTheLink) {
  flatbuffers::FlatBufferBuilder fbb;
  ASSERT_EQ(Serve(Finish(fbb, 1, wb::BoardMessage::Boot, wb::CreateBoot(fbb).Union()))
                ->message_type(),
            wb::BoardMessage::BootReply);
  // Stages, writes and commits model `id` as `stage` (none: the field left out) of a 2-layer
  // model of hidden size 4, with one 16-byte tensor (the fake wafer checks no more).
  auto load = [&](uint32_t id, const ModelStage* stage) {
    fbb.Clear();
    const std::vector<uint64_t> shape = {4};
    const wb::PeRect placement(0, 0, 1, 1);
    std::vector<flatbuffers::Offset<wb::TensorDesc>> tensors = {wb::CreateTensorDescDirect(
        fbb, "t", wb::TensorRole::kAttnNorm, 1, wb::DType::kF32, &shape, 16, &placement)};
    auto arch = wb::CreateModelArch(fbb, 8, 4, 8, 2, 1, 1, 4);
    const auto st = stage == nullptr
                        ? flatbuffers::Offset<wb::ModelStage>()
                        : wb::CreateModelStage(fbb, stage->first_layer, stage->layer_count,
                                               stage->has_embedding, stage->has_head);
    auto bm = wb::CreateBeginModelDirect(fbb, id, "m", arch, &tensors, 2, 8, false, nullptr, st);
    const wb::BoardEnvelope* env =
        Serve(Finish(fbb, id * 10, wb::BoardMessage::BeginModel, bm.Union()));
    ASSERT_EQ(env->message_as_Ack()->code(), wire::ErrorCode::kNone);
    fbb.Clear();
    const std::vector<uint8_t> bytes(16, 1);
    const uint32_t crc = Crc32c(std::as_bytes(std::span(bytes)));
    env = Serve(Finish(fbb, id * 10 + 1, wb::BoardMessage::WriteWeights,
                       wb::CreateWriteWeightsDirect(fbb, id, 0, 0, &bytes, crc).Union()));
    ASSERT_EQ(env->message_as_Ack()->code(), wire::ErrorCode::kNone);
    fbb.Clear();
    env = Serve(Finish(fbb, id * 10 + 2, wb::BoardMessage::CommitModel,
                       wb::CreateCommitModel(fbb, id).Union()));
    ASSERT_EQ(env->message_as_Ack()->code(), wire::ErrorCode::kNone);
  };
  // One seq on slot 1 of two tokens.
  const std::vector<uint32_t> tokens = {3, 5};
  auto step = [&](uint32_t model, uint32_t generate, const std::vector<float>* hidden_in) {
    fbb.Clear();
    std::vector<flatbuffers::Offset<wb::SeqStep>> seqs = {
        wb::CreateSeqStepDirect(fbb, 1, false, &tokens, generate, 0, nullptr, hidden_in)};
    return Serve(Finish(fbb, model * 10 + 5, wb::BoardMessage::Step,
                        wb::CreateStepDirect(fbb, model, &seqs).Union()));
  };

  load(1, nullptr);  // No stage: the whole model.
  EXPECT_EQ(wafer_.last_stage, ModelStage{});

  const ModelStage first{0, 1, true, false}, last{1, 0, false, true};
  load(2, &first);
  EXPECT_EQ(wafer_.last_stage, first);
  const wb::BoardEnvelope* env = step(2, 0, nullptr);
  ASSERT_EQ(env->message_type(), wb::BoardMessage::StepReply);
  const wb::SeqResult* result = env->message_as_StepReply()->results()->Get(0);
  ASSERT_NE(result->hidden_out(), nullptr);
  // The fake wafer's pattern: slot + k / 4 for the 2 tokens x 4 values.
  const std::vector<float> hidden(result->hidden_out()->begin(), result->hidden_out()->end());
  ASSERT_EQ(hidden.size(), 8u);
  for (size_t k = 0; k < hidden.size(); ++k) EXPECT_EQ(hidden[k], 1.0f + k / 4.0f);

  load(3, &last);
  EXPECT_EQ(wafer_.last_stage, last);
  env = step(3, 1, &hidden);
  ASSERT_EQ(env->message_type(), wb::BoardMessage::StepReply);
  result = env->message_as_StepReply()->results()->Get(0);
  EXPECT_EQ(result->tokens()->size(), 1u);
  EXPECT_EQ(result->hidden_out(), nullptr);  // Left out when there are none.
  EXPECT_EQ(wafer_.hidden_in_values, 8u);
  const std::vector<float> short_hidden(7);
  env = step(3, 1, &short_hidden);
  ASSERT_EQ(env->message_type(), wb::BoardMessage::Ack);
  EXPECT_EQ(env->message_as_Ack()->code(), wire::ErrorCode::kInvalidArgument);
  EXPECT_NE(env->message_as_Ack()->detail()->str().find("hidden_in"), std::string::npos);
}

// Hidden states are read in place as floats: a hidden_in vector that is not 4-byte aligned in the
// frame is refused by the verifier, never read torn.
TEST_F(FirmwareLoopTest, MisalignedHiddenStatesAreMalformed) {
  flatbuffers::FlatBufferBuilder fbb;
  const std::vector<uint32_t> tokens = {1};
  const std::vector<float> hidden = {1, 2, 3, 4};
  std::vector<flatbuffers::Offset<wb::SeqStep>> seqs = {
      wb::CreateSeqStepDirect(fbb, 0, false, &tokens, 0, 0, nullptr, &hidden)};
  std::vector<std::byte> frame = Finish(fbb, 30, wb::BoardMessage::Step,
                                        wb::CreateStepDirect(fbb, 1, &seqs).Union());
  // Moves the uoffset that leads to hidden_in 2 bytes further: the length read there is 0, so
  // only the alignment check can refuse it.
  const auto* base = reinterpret_cast<const uint8_t*>(frame.data());
  const auto* vec = reinterpret_cast<const uint8_t*>(
      wb::GetBoardEnvelope(base)->message_as_Step()->seqs()->Get(0)->hidden_in());
  size_t field = 0;
  for (size_t at = 0; at + 4 <= frame.size(); at += 4) {
    uint32_t offset;
    std::memcpy(&offset, base + at, 4);
    if (base + at + offset == vec) field = at;
  }
  ASSERT_NE(field, 0u);
  uint32_t offset;
  std::memcpy(&offset, frame.data() + field, 4);
  offset += 2;
  std::memcpy(frame.data() + field, &offset, 4);
  ExpectError(frame, wire::ErrorCode::kMalformedMessage, 0);
  ExpectStillServing();
}


// RunDiagnostic in, DiagnosticReply out, every field; bad test values and a reply sent as a
// command are refused by the codec.
TEST_F(FirmwareLoopTest, DiagnosticCrossesTheLink) {
  flatbuffers::FlatBufferBuilder fbb;
  ASSERT_EQ(Serve(Finish(fbb, 1, wb::BoardMessage::Boot, wb::CreateBoot(fbb).Union()))
                ->message_type(),
            wb::BoardMessage::BootReply);
  wafer_.sram_hits[0] = hal::DiagHit{2, 5, 0xBFF8, 3, false};
  wafer_.sram_hits[1] = hal::DiagHit{4, 0, 0, 1, true};
  wafer_.sram_hit_count = 2;

  fbb.Clear();
  auto run = wb::CreateRunDiagnostic(fbb, wb::DiagTest::kSramAll, 1, 6);
  const wb::BoardEnvelope* env = Serve(Finish(fbb, 21, wb::BoardMessage::RunDiagnostic,
                                              run.Union()));
  EXPECT_EQ(env->command_id(), 21u);
  EXPECT_EQ(env->version()->minor(), kProtocolMinor);  // Diagnostics came with minor 4.
  ASSERT_EQ(env->message_type(), wb::BoardMessage::DiagnosticReply);
  const wb::DiagnosticReply* r = env->message_as_DiagnosticReply();
  EXPECT_EQ(r->test(), wb::DiagTest::kSramAll);
  EXPECT_EQ(r->first_row(), 1u);
  EXPECT_EQ(r->row_count(), 6u);
  EXPECT_EQ(r->units_tested(), 48u);
  EXPECT_EQ(r->failures(), 2u);
  EXPECT_EQ(r->device_ns(), 1000);
  ASSERT_NE(r->findings(), nullptr);
  ASSERT_EQ(r->findings()->size(), 2u);
  const wb::DiagFinding* f = r->findings()->Get(0);
  EXPECT_EQ(f->row(), 2u);
  EXPECT_EQ(f->pe(), 5u);
  EXPECT_EQ(f->region(), 3u);
  EXPECT_EQ(f->detail(), 0xBFF8u);
  EXPECT_TRUE(f->retired());
  EXPECT_TRUE(f->remapped());
  f = r->findings()->Get(1);
  EXPECT_EQ(f->row(), 4u);
  EXPECT_EQ(f->region(), 1u);
  EXPECT_FALSE(f->retired());
  EXPECT_FALSE(f->remapped());

  // A refusal is an Ack with the code.
  fbb.Clear();
  run = wb::CreateRunDiagnostic(fbb, wb::DiagTest::kKnownAnswer, 0, 0);
  env = Serve(Finish(fbb, 22, wb::BoardMessage::RunDiagnostic, run.Union()));
  ASSERT_EQ(env->message_type(), wb::BoardMessage::Ack);
  EXPECT_EQ(env->message_as_Ack()->code(), wire::ErrorCode::kInvalidArgument);

  fbb.Clear();
  run = wb::CreateRunDiagnostic(fbb, static_cast<wb::DiagTest>(9), 0, 1);
  ExpectError(Finish(fbb, 23, wb::BoardMessage::RunDiagnostic, run.Union()),
              wire::ErrorCode::kInvalidArgument, 23);
  fbb.Clear();
  auto reply = wb::CreateDiagnosticReply(fbb, wb::DiagTest::kSramAll);
  ExpectError(Finish(fbb, 24, wb::BoardMessage::DiagnosticReply, reply.Union()),
              wire::ErrorCode::kWrongMessageType, 24);
  ExpectStillServing();
}

}  // namespace
}  // namespace wafer::fw
