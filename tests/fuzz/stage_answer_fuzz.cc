// The first stage of a model split over boards reads the next board's answers (StagePipeline):
// whatever that board sends, the first board answers the host's Step with one verifiable reply
// and keeps serving. The input is the next board's answer to the Step's first pass, its
// command_id set to the one that pass carried (so that verified answers reach the decoding).
#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#include "common/crc32c.h"
#include "firmware/link/firmware_loop.h"
#include "firmware/testing/fake_platform.h"
#include "tests/firmware_queue_port.h"
#include "host/board/board_codec.h"
#include "schemas/board_generated.h"
#include "tests/fuzz/fuzz_target.h"

namespace {

namespace wb = ::wafer::wire::board;
namespace fw = ::wafer::fw;
using Frame = std::vector<std::byte>;


// Writes `id` into a verified BoardEnvelope's command_id (field 1), when the field is present.
void SetCommandId(std::vector<uint8_t>& buf, uint64_t id) {
  flatbuffers::Verifier verifier(buf.data(), buf.size());
  if (!wb::VerifyBoardEnvelopeBuffer(verifier)) return;
  const uint32_t table = flatbuffers::ReadScalar<uint32_t>(buf.data());
  const uint32_t vtable = table - flatbuffers::ReadScalar<int32_t>(buf.data() + table);
  const uint16_t vtable_size = flatbuffers::ReadScalar<uint16_t>(buf.data() + vtable);
  if (vtable_size < 4 + 2 * 2) return;
  const uint16_t field = flatbuffers::ReadScalar<uint16_t>(buf.data() + vtable + 4 + 2);
  if (field != 0) flatbuffers::WriteScalar<uint64_t>(buf.data() + table + field, id);
}

// The next board: answers the first pass with the input, then nothing.
class FuzzLink final : public fw::hal::StageLink {
 public:
  wafer::Result<uint32_t> Open(std::span<const char>) override { return 0u; }
  wafer::Status Send(uint32_t, std::span<const std::byte> frame) override {
    if (!answered) {
      sent_id = wb::GetBoardEnvelope(frame.data())->command_id();
      SetCommandId(answer, sent_id);
    }
    return wafer::OkStatus();
  }
  wafer::Result<size_t> Receive(uint32_t, std::span<std::byte> buffer, uint32_t) override {
    if (answered) return wafer::DeadlineExceeded();
    answered = true;
    std::memcpy(buffer.data(), answer.data(), std::min(buffer.size(), answer.size()));
    return answer.size();
  }
  std::vector<uint8_t> answer;
  bool answered = false;
  uint64_t sent_id = 0;
};

Frame ToFrame(const std::vector<std::byte>& f) { return f; }

struct FirstStage {
  fw::testing::FakePlatform fake;
  fw::testing::QueuePort port;
  FuzzLink link;
  std::unique_ptr<fw::FirmwareLoop> loop =
      std::make_unique<fw::FirmwareLoop>(port, fake.platform(), &link);

  FirstStage() {
    using namespace wafer::host;
    using ::wafer::DType;
    using ::wafer::ModelStage;
    using ::wafer::TensorRole;
    ModelManifest m;
    m.model_id = 1;
    m.name = std::string("m");
    m.arch.vocab_size = 64;
    m.arch.hidden_size = 4;
    m.arch.intermediate_size = 8;
    m.arch.num_layers = 2;
    m.arch.num_heads = 1;
    m.arch.num_kv_heads = 1;
    m.arch.head_dim = 4;
    m.arch.max_position = 64;
    m.tensors.push_back(TensorDesc{"t", TensorRole::kAttnNorm, 0, DType::kF32, {4}, 16,
                                   {0, 0, 1, 1}});
    m.slots = 2;
    m.context_length = 64;
    m.stage = ModelStage{0, 1, true, false};
    m.next_stage = NextStage{"inproc://next", 2, 100};
    std::vector<std::byte> bytes(16, std::byte{1});
    for (const Frame& f : {ToFrame(EncodeBoot(1)), ToFrame(EncodeBeginModel(2, m)),
                           ToFrame(EncodeWriteWeights(3, 1, 0, 0, bytes,
                                                      wafer::Crc32c(bytes))),
                           ToFrame(EncodeCommitModel(4, 1))}) {
      port.in.push_back(f);
      loop->PollOnce(0).IgnoreError();
    }
    port.out.clear();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static FirstStage* stage = new FirstStage();
  stage->link.answer.assign(data, data + size);
  stage->link.answered = false;
  wafer::host::SeqStep seq;
  seq.slot = 0;
  seq.reset = true;
  seq.input_tokens = {1, 2};
  seq.generate = 2;
  stage->port.in.push_back(wafer::host::EncodeStep(50, 1, {seq}));
  FUZZ_CHECK(stage->loop->PollOnce(0).ok());
  FUZZ_CHECK(stage->port.out.size() == 1);
  const Frame reply = std::move(stage->port.out.front());
  stage->port.out.clear();
  flatbuffers::Verifier verifier(reinterpret_cast<const uint8_t*>(reply.data()), reply.size());
  FUZZ_CHECK(wb::VerifyBoardEnvelopeBuffer(verifier));
  const wb::BoardEnvelope* env = wb::GetBoardEnvelope(reply.data());
  FUZZ_CHECK(env->command_id() == 50);
  FUZZ_CHECK(env->message_type() == wb::BoardMessage::StepReply);
  const wb::PipelineReport* p = env->message_as_StepReply()->pipeline();
  FUZZ_CHECK(p != nullptr);
  // Either the Step failed at a named later stage and produced nothing, or it has its result.
  const auto* results = env->message_as_StepReply()->results();
  FUZZ_CHECK(p->failed_stage() != 0 ? results->size() == 0 : results->size() == 1);
  return 0;
}

std::vector<std::string> FuzzSeeds() {
  namespace wire = ::wafer::wire;
  std::vector<std::string> seeds;
  auto finish = [&](flatbuffers::FlatBufferBuilder& fbb, wb::BoardMessage type,
                    flatbuffers::Offset<void> msg) {
    const wire::ProtocolVersion version(1, 5);
    wb::FinishBoardEnvelopeBuffer(fbb, wb::CreateBoardEnvelope(fbb, &version, 1, type, msg));
    seeds.emplace_back(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
  };
  {
    flatbuffers::FlatBufferBuilder fbb;
    const std::vector<uint32_t> tokens = {7};
    std::vector<flatbuffers::Offset<wb::SeqResult>> results = {
        wb::CreateSeqResultDirect(fbb, 0, &tokens, wire::ErrorCode::kNone, 3)};
    auto dt = wb::CreateDeviceTime(fbb, 1000, 600, 200, 200, 0);
    finish(fbb, wb::BoardMessage::StepReply, wb::CreateStepReplyDirect(fbb, &results, dt).Union());
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<wb::SeqResult>> results;
    const std::vector<int64_t> busy = {500, 400};
    auto report = wb::CreatePipelineReportDirect(fbb, 1, 8, &busy, 1,
                                                 wire::ErrorCode::kDataLoss, "DATA_LOSS: pe");
    finish(fbb, wb::BoardMessage::StepReply,
           wb::CreateStepReplyDirect(fbb, &results, 0, report).Union());
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    finish(fbb, wb::BoardMessage::Ack,
           wb::CreateAckDirect(fbb, wire::ErrorCode::kUnknownModel, "NOT_FOUND: unknown model")
               .Union());
  }
  return seeds;
}
