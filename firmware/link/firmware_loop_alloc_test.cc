// The superloop allocates nothing after init for every kind of board command: two boards'
// loops (the first hands a pipelined model's Steps to the second over a stage link, which the
// second runs as Steps with from_stage) serve a script of frames built beforehand, covering
// every command of board.fbs, an attached weight chunk and malformed frames; the allocation
// counter must not move from the first frame to the last. Part of firmware_alloc_test (the
// binary whose global allocation functions count).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <vector>

#include "common/crc32c.h"
#include "firmware/link/firmware_loop.h"
#include "firmware/testing/allocation_counter.h"
#include "firmware/testing/fake_platform.h"
#include "schemas/board_generated.h"

namespace wafer::fw {
namespace {

namespace wb = ::wafer::wire::board;
namespace wire = ::wafer::wire;

using Bytes = std::vector<std::byte>;

// One frame of the script, the attachment it arrives with, and what the reply must be.
struct Entry {
  Bytes frame;
  Bytes attachment;
  wb::BoardMessage reply_type;
  wire::ErrorCode code;  // Of an Ack, a BootReply's board state aside, or an ErrorReply.
};

// Serves the script in order and keeps the last reply in a fixed buffer: it allocates nothing
// itself once the script is built.
class ScriptPort final : public hal::HostPort {
 public:
  explicit ScriptPort(const std::vector<Entry>& script) : script_(script) {}
  Result<size_t> Receive(std::span<std::byte> buffer, int64_t) override {
    if (next_ >= script_.size()) return DeadlineExceeded();
    current_ = &script_[next_++];
    std::memcpy(buffer.data(), current_->frame.data(),
                std::min(buffer.size(), current_->frame.size()));
    return current_->frame.size();
  }
  std::span<const std::byte> attachment() const override {
    if (current_ == nullptr) return {};
    return current_->attachment;
  }
  Status Send(std::span<const std::byte> frame) override {
    last_size = frame.size();
    std::memcpy(last.data(), frame.data(), std::min(last.size(), frame.size()));
    return OkStatus();
  }
  alignas(8) std::array<std::byte, 64 << 10> last{};
  size_t last_size = 0;

 private:
  const std::vector<Entry>& script_;
  size_t next_ = 0;
  const Entry* current_ = nullptr;
};

// The next board's port: one frame in, one reply out, both in fixed buffers.
class OneFramePort final : public hal::HostPort {
 public:
  Result<size_t> Receive(std::span<std::byte> buffer, int64_t) override {
    if (in_size == 0) return DeadlineExceeded();
    std::memcpy(buffer.data(), in.data(), std::min(buffer.size(), in_size));
    const size_t n = in_size;
    in_size = 0;
    return n;
  }
  Status Send(std::span<const std::byte> frame) override {
    out_size = frame.size();
    std::memcpy(out.data(), frame.data(), std::min(out.size(), frame.size()));
    return OkStatus();
  }
  std::array<std::byte, 64 << 10> in{};
  size_t in_size = 0;
  alignas(8) std::array<std::byte, 64 << 10> out{};
  size_t out_size = 0;
};

// The inter-wafer link to the next board: a frame sent is served by that board's loop at once;
// its answer waits in the port for Receive. No queue, no allocation.
class DirectStageLink final : public hal::StageLink {
 public:
  DirectStageLink(OneFramePort& port, FirmwareLoop*& next) : port_(port), next_(next) {}
  Result<uint32_t> Open(std::span<const char>) override { return 0u; }
  Status Send(uint32_t, std::span<const std::byte> frame) override {
    if (frame.size() > port_.in.size()) return Unavailable();
    std::memcpy(port_.in.data(), frame.data(), frame.size());
    port_.in_size = frame.size();
    port_.out_size = 0;
    ++sent;
    return next_->PollOnce(0);
  }
  Result<size_t> Receive(uint32_t, std::span<std::byte> buffer, uint32_t) override {
    if (port_.out_size == 0) return DeadlineExceeded();
    std::memcpy(buffer.data(), port_.out.data(), std::min(buffer.size(), port_.out_size));
    const size_t n = port_.out_size;
    port_.out_size = 0;
    return n;
  }
  int sent = 0;

 private:
  OneFramePort& port_;
  FirmwareLoop*& next_;
};

Bytes Finish(flatbuffers::FlatBufferBuilder& fbb, uint64_t id, wb::BoardMessage type,
             flatbuffers::Offset<void> msg, uint16_t major = 1) {
  const wire::ProtocolVersion v(major, kProtocolMinor);
  wb::FinishBoardEnvelopeBuffer(fbb, wb::CreateBoardEnvelope(fbb, &v, id, type, msg));
  const auto* p = reinterpret_cast<const std::byte*>(fbb.GetBufferPointer());
  return {p, p + fbb.GetSize()};
}

// Builds one frame with a fresh builder: `make(fbb)` returns the message.
template <typename Make>
Bytes Build(uint64_t id, wb::BoardMessage type, Make make, uint16_t major = 1) {
  flatbuffers::FlatBufferBuilder fbb;
  const flatbuffers::Offset<void> msg = make(fbb);
  return Finish(fbb, id, type, msg, major);
}

// Model `model_id` with one 64-byte tensor on a stage of a 2-layer model (hidden size 4): stage
// `b` of two, the first with the embedding and a next stage, the second with the head. With
// `whole`, the whole model on one board.
Bytes BeginModelFrame(uint64_t id, uint32_t model_id, uint32_t b, bool whole) {
  return Build(id, wb::BoardMessage::BeginModel, [&](flatbuffers::FlatBufferBuilder& fbb) {
    const std::vector<uint64_t> shape = {16};
    const wb::PeRect placement(0, b, 1, 1);
    std::vector<flatbuffers::Offset<wb::TensorDesc>> tensors = {wb::CreateTensorDescDirect(
        fbb, "t", wb::TensorRole::kAttnNorm, b, wb::DType::kF32, &shape, 64, &placement)};
    auto arch = wb::CreateModelArch(fbb, 8, 4, 8, 2, 1, 1, 4);
    auto stage = whole ? flatbuffers::Offset<wb::ModelStage>()
                       : wb::CreateModelStage(fbb, b, 1, b == 0, b == 1);
    auto next = !whole && b == 0 ? wb::CreateNextStageDirect(fbb, "inproc://next", 2, 100)
                                 : flatbuffers::Offset<wb::NextStage>();
    return wb::CreateBeginModelDirect(fbb, model_id, "m", arch, &tensors, 4, 64, false, nullptr,
                                      stage, next)
        .Union();
  });
}

// WriteWeights of `data` at `offset` of model `model_id`'s tensor 0: inline, or (`attached`)
// as the message's second frame.
Entry WriteEntry(uint64_t id, uint32_t model_id, uint64_t offset, const Bytes& data,
                 bool attached) {
  const uint32_t crc = Crc32c(data);
  Entry e;
  e.frame = Build(id, wb::BoardMessage::WriteWeights, [&](flatbuffers::FlatBufferBuilder& fbb) {
    if (attached) {
      return wb::CreateWriteWeightsDirect(fbb, model_id, 0, offset, nullptr, crc, data.size())
          .Union();
    }
    const auto* p = reinterpret_cast<const uint8_t*>(data.data());
    const std::vector<uint8_t> bytes(p, p + data.size());
    return wb::CreateWriteWeightsDirect(fbb, model_id, 0, offset, &bytes, crc).Union();
  });
  if (attached) e.attachment = data;
  e.reply_type = wb::BoardMessage::Ack;
  e.code = wire::ErrorCode::kNone;
  return e;
}

Bytes StepFrame(uint64_t id, uint32_t model_id) {
  return Build(id, wb::BoardMessage::Step, [&](flatbuffers::FlatBufferBuilder& fbb) {
    const std::vector<uint32_t> prompt = {1, 2, 3};
    std::vector<flatbuffers::Offset<wb::SeqStep>> seqs;
    for (uint32_t slot = 0; slot < 2; ++slot) {
      seqs.push_back(wb::CreateSeqStepDirect(fbb, slot, true, &prompt, 2));
    }
    return wb::CreateStepDirect(fbb, model_id, &seqs).Union();
  });
}

Entry Expect(Bytes frame, wb::BoardMessage type, wire::ErrorCode code = wire::ErrorCode::kNone) {
  return Entry{std::move(frame), {}, type, code};
}

// The code a reply carries (kNone for replies without one).
wire::ErrorCode CodeOf(const wb::BoardEnvelope* env) {
  switch (env->message_type()) {
    case wb::BoardMessage::Ack: return env->message_as_Ack()->code();
    case wb::BoardMessage::wafer_wire_ErrorReply:
      return env->message_as_wafer_wire_ErrorReply()->code();
    default: return wire::ErrorCode::kNone;
  }
}

// The detail of an Ack or ErrorReply, for failure messages.
const char* DetailOf(const wb::BoardEnvelope* env) {
  const flatbuffers::String* s = nullptr;
  if (env->message_type() == wb::BoardMessage::Ack) s = env->message_as_Ack()->detail();
  if (env->message_type() == wb::BoardMessage::wafer_wire_ErrorReply) {
    s = env->message_as_wafer_wire_ErrorReply()->detail();
  }
  return s != nullptr ? s->c_str() : "";
}

TEST(LinkLoopAllocationTest, EveryCommandKindAllocatesNothingAfterInit) {
  using M = wb::BoardMessage;
  using E = wire::ErrorCode;
  const Bytes weights(64, std::byte{3});
  const Bytes first_half(weights.begin(), weights.begin() + 32);
  const Bytes second_half(weights.begin() + 32, weights.end());
  const Bytes image(1000, std::byte{9});
  const auto signature = testing::FakeSignatureVerifier::Sign(image);
  const uint32_t image_crc = Crc32c(image);

  // Built before counting: frames are the host's work, not the firmware's.
  std::vector<Entry> script;
  uint64_t id = 100;
  auto empty = [](auto create) {
    return [create](flatbuffers::FlatBufferBuilder& fbb) { return create(fbb).Union(); };
  };
  script.push_back(Expect(Build(++id, M::Identify, empty([](auto& f) { return wb::CreateIdentify(f); })),
                          M::IdentifyReply));
  script.push_back(Expect(Build(++id, M::Boot, empty([](auto& f) { return wb::CreateBoot(f); })),
                          M::BootReply));
  // Model 9 on this board alone, its tensor in two chunks: one inline, one attached.
  script.push_back(Expect(BeginModelFrame(++id, 9, 0, /*whole=*/true), M::Ack));
  script.push_back(WriteEntry(++id, 9, 0, first_half, /*attached=*/false));
  script.push_back(WriteEntry(++id, 9, 32, second_half, /*attached=*/true));
  script.push_back(Expect(Build(++id, M::CommitModel,
                                empty([](auto& f) { return wb::CreateCommitModel(f, 9); })),
                          M::Ack));
  script.push_back(Expect(StepFrame(++id, 9), M::StepReply));
  // Model 7 pipelined: layer 0 here, layer 1 and the head on the next board.
  script.push_back(Expect(BeginModelFrame(++id, 7, 0, /*whole=*/false), M::Ack));
  script.push_back(WriteEntry(++id, 7, 0, weights, /*attached=*/false));
  script.push_back(Expect(Build(++id, M::CommitModel,
                                empty([](auto& f) { return wb::CreateCommitModel(f, 7); })),
                          M::Ack));
  script.push_back(Expect(StepFrame(++id, 7), M::StepReply));
  script.push_back(Expect(
      Build(++id, M::ReadTelemetry, empty([](auto& f) { return wb::CreateReadTelemetry(f); })),
      M::Telemetry));
  script.push_back(Expect(
      Build(++id, M::ReadErrorLog, empty([](auto& f) { return wb::CreateReadErrorLog(f, 0, 0); })),
      M::ErrorLogReply));
  script.push_back(Expect(
      Build(++id, M::ReadGeometry, empty([](auto& f) { return wb::CreateReadGeometry(f); })),
      M::GeometryReply));
  script.push_back(Expect(
      Build(++id, M::InjectFault,
            empty([](auto& f) { return wb::CreateInjectFault(f, wb::FaultKind::kLinkCrc); })),
      M::Ack));
  script.push_back(Expect(
      Build(++id, M::ReadFaults, empty([](auto& f) { return wb::CreateReadFaults(f, 0); })),
      M::FaultReply));
  script.push_back(Expect(
      Build(++id, M::RunDiagnostic,
            empty([](auto& f) { return wb::CreateRunDiagnostic(f, wb::DiagTest::kSramAll, 0, 2); })),
      M::DiagnosticReply));
  script.push_back(Expect(
      Build(++id, M::wafer_wire_Heartbeat,
            empty([](auto& f) { return wire::CreateHeartbeat(f, 1234, false); })),
      M::wafer_wire_Heartbeat));
  // A firmware update of slot 1 (it boots at the Reset below), then a rollback.
  script.push_back(Expect(Build(++id, M::ReadFirmwareSlots,
                                empty([](auto& f) { return wb::CreateReadFirmwareSlots(f); })),
                          M::FirmwareSlotsReply));
  script.push_back(Expect(
      Build(++id, M::BeginFirmwareImage,
            [&](flatbuffers::FlatBufferBuilder& f) {
              const auto* s = reinterpret_cast<const uint8_t*>(signature.data());
              const std::vector<uint8_t> sig(s, s + signature.size());
              return wb::CreateBeginFirmwareImageDirect(f, 1, image.size(), image_crc, &sig)
                  .Union();
            }),
      M::Ack));
  script.push_back(Expect(
      Build(++id, M::WriteFirmwareChunk,
            [&](flatbuffers::FlatBufferBuilder& f) {
              const auto* p = reinterpret_cast<const uint8_t*>(image.data());
              const std::vector<uint8_t> data(p, p + image.size());
              return wb::CreateWriteFirmwareChunkDirect(f, 1, 0, &data, image_crc).Union();
            }),
      M::Ack));
  script.push_back(Expect(Build(++id, M::CommitFirmwareImage,
                                empty([](auto& f) { return wb::CreateCommitFirmwareImage(f, 1); })),
                          M::Ack));
  // Refused while the new image waits for the next reset: a typed Ack all the same.
  script.push_back(Expect(Build(++id, M::RollbackFirmware,
                                empty([](auto& f) { return wb::CreateRollbackFirmware(f); })),
                          M::Ack, E::kFailedPrecondition));
  script.push_back(Expect(Build(++id, M::UnloadModel,
                                empty([](auto& f) { return wb::CreateUnloadModel(f, 9); })),
                          M::Ack));
  // Malformed frames: garbage, a wrong major version, a reply sent as a command, a field out of
  // range, an attachment to a command that takes none, a command for a model not loaded.
  Bytes garbage(64);
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = std::byte(i * 37 + 11);
  script.push_back(Expect(garbage, M::wafer_wire_ErrorReply, E::kMalformedMessage));
  script.push_back(Expect(Build(++id, M::Identify,
                                empty([](auto& f) { return wb::CreateIdentify(f); }), 2),
                          M::wafer_wire_ErrorReply, E::kUnsupportedVersion));
  script.push_back(Expect(Build(++id, M::Ack, empty([](auto& f) { return wb::CreateAck(f); })),
                          M::wafer_wire_ErrorReply, E::kWrongMessageType));
  script.push_back(Expect(
      Build(++id, M::RunDiagnostic,
            empty([](auto& f) {
              return wb::CreateRunDiagnostic(f, static_cast<wb::DiagTest>(9), 0, 1);
            })),
      M::wafer_wire_ErrorReply, E::kInvalidArgument));
  Entry stray = Expect(Build(++id, M::ReadTelemetry,
                             empty([](auto& f) { return wb::CreateReadTelemetry(f); })),
                       M::wafer_wire_ErrorReply, E::kInvalidArgument);
  stray.attachment = first_half;
  script.push_back(stray);
  script.push_back(Expect(StepFrame(++id, 9), M::Ack, E::kUnknownModel));
  script.push_back(Expect(Build(++id, M::Reset, empty([](auto& f) { return wb::CreateReset(f); })),
                          M::Ack));
  script.push_back(Expect(Build(++id, M::Boot, empty([](auto& f) { return wb::CreateBoot(f); })),
                          M::BootReply));

  // The next board: model 7's second stage, loaded before counting.
  std::vector<Entry> next_init;
  next_init.push_back(Expect(
      Build(1, M::Boot, empty([](auto& f) { return wb::CreateBoot(f); })), M::BootReply));
  next_init.push_back(Expect(BeginModelFrame(2, 7, 1, /*whole=*/false), M::Ack));
  next_init.push_back(WriteEntry(3, 7, 0, weights, /*attached=*/false));
  next_init.push_back(Expect(
      Build(4, M::CommitModel, empty([](auto& f) { return wb::CreateCommitModel(f, 7); })),
      M::Ack));

  testing::FakePlatform first_board, next_board;
  // A board that checks signatures, running a signed factory image.
  first_board.verifier.key_fused = true;
  const auto factory = testing::FakeFirmwareFlash::factory_image();
  first_board.flash.ProvisionFactoryImage(factory, testing::FakeSignatureVerifier::Sign(factory));
  ScriptPort port(script);
  OneFramePort next_port;
  FirmwareLoop* next_raw = nullptr;
  DirectStageLink link(next_port, next_raw);
  // Init: every allocation the loops make happens here.
  auto first = std::make_unique<FirmwareLoop>(port, first_board.platform(), &link);
  auto next = std::make_unique<FirmwareLoop>(next_port, next_board.platform());
  next_raw = next.get();
  for (const Entry& e : next_init) {
    std::memcpy(next_port.in.data(), e.frame.data(), e.frame.size());
    next_port.in_size = e.frame.size();
    ASSERT_TRUE(next->PollOnce(0).ok());
    const wb::BoardEnvelope* env = wb::GetBoardEnvelope(next_port.out.data());
    ASSERT_EQ(env->message_type(), e.reply_type);
    ASSERT_EQ(CodeOf(env), e.code);
  }
  next_port.out_size = 0;

  const long before = testing::Allocations();
  for (const Entry& e : script) {
    ASSERT_TRUE(first->PollOnce(0).ok());
    flatbuffers::Verifier verifier(reinterpret_cast<const uint8_t*>(port.last.data()),
                                   port.last_size);
    ASSERT_TRUE(wb::VerifyBoardEnvelopeBuffer(verifier));
    const wb::BoardEnvelope* env = wb::GetBoardEnvelope(port.last.data());
    ASSERT_EQ(env->message_type(), e.reply_type) << "command " << env->command_id();
    ASSERT_EQ(CodeOf(env), e.code) << "command " << env->command_id() << ": " << DetailOf(env);
  }
  const long allocations = testing::Allocations() - before;
  EXPECT_EQ(allocations, 0);
  EXPECT_GT(link.sent, 0);  // The pipelined Step crossed to the next board...
  EXPECT_GT(next_board.wafer.step_calls, 0);  // ...which ran it (a Step with from_stage).
  EXPECT_EQ(first->stats().frames_rejected, 5u);
  EXPECT_EQ(first->stats().replies_sent, script.size());
}

}  // namespace
}  // namespace wafer::fw
