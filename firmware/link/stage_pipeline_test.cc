// Two boards' firmware, the first handing its hidden states to the second over a stage link
// (board.fbs NextStage): a Step sent to the first runs every token through both.
#include "firmware/link/stage_pipeline.h"

#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#include "common/crc32c.h"
#include "firmware/link/firmware_loop.h"
#include "firmware/testing/fake_platform.h"
#include "tests/firmware_queue_port.h"
#include "schemas/board_generated.h"

namespace wafer::fw {
namespace {

namespace wb = ::wafer::wire::board;
namespace wire = ::wafer::wire;

using Frame = std::vector<std::byte>;


// The inter-wafer link to one next board: a frame sent is served by that board's loop at once
// and its answer queued, unless the link drops frames (a board that does not answer).
class LoopbackStageLink final : public hal::StageLink {
 public:
  LoopbackStageLink(testing::QueuePort& next_port, FirmwareLoop*& next)
      : port_(next_port), next_(next) {}
  Result<uint32_t> Open(std::span<const char> endpoint) override {
    opened.assign(endpoint.begin(), endpoint.end());
    return 0u;
  }
  Status Send(uint32_t, std::span<const std::byte> frame) override {
    ++sent;
    if (drop) return OkStatus();
    port_.in.emplace_back(frame.begin(), frame.end());
    if (!next_->PollOnce(0).ok()) return Unavailable();
    while (!port_.out.empty()) {
      answers.push_back(std::move(port_.out.front()));
      port_.out.pop_front();
    }
    return OkStatus();
  }
  Result<size_t> Receive(uint32_t, std::span<std::byte> buffer, uint32_t) override {
    if (answers.empty()) return DeadlineExceeded();
    Frame f = std::move(answers.front());
    answers.pop_front();
    std::memcpy(buffer.data(), f.data(), std::min(buffer.size(), f.size()));
    return f.size();
  }
  std::string opened;
  int sent = 0;
  bool drop = false;
  std::deque<Frame> answers;

 private:
  testing::QueuePort& port_;
  FirmwareLoop*& next_;
};

Frame Finish(flatbuffers::FlatBufferBuilder& fbb, uint64_t id, wb::BoardMessage type,
             flatbuffers::Offset<void> msg) {
  wire::ProtocolVersion v(1, 5);
  fbb.Finish(wb::CreateBoardEnvelope(fbb, &v, id, type, msg), wb::BoardEnvelopeIdentifier());
  auto* p = reinterpret_cast<const std::byte*>(fbb.GetBufferPointer());
  return {p, p + fbb.GetSize()};
}

class StagePipelineTest : public ::testing::Test {
 protected:
  StagePipelineTest()
      : link_(second_port_, second_raw_),
        first_(std::make_unique<FirmwareLoop>(first_port_, first_fake_.platform(), &link_)),
        second_(std::make_unique<FirmwareLoop>(second_port_, second_fake_.platform())) {
    second_raw_ = second_.get();
  }

  const wb::BoardEnvelope* Serve(FirmwareLoop& loop, testing::QueuePort& port, Frame frame) {
    port.in.push_back(std::move(frame));
    EXPECT_TRUE(loop.PollOnce(0).ok());
    EXPECT_EQ(port.out.size(), 1u);
    reply_ = std::move(port.out.front());
    port.out.clear();
    flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(reply_.data()), reply_.size());
    EXPECT_TRUE(wb::VerifyBoardEnvelopeBuffer(v));
    return wb::GetBoardEnvelope(reply_.data());
  }

  // Boots both boards and loads model 7 over them (hidden size 4, 2 layers): the first runs
  // layer 0 with the embedding and hands on to "inproc://next"; the second runs layer 1 and
  // the head.
  void LoadPipeline() {
    for (int b = 0; b < 2; ++b) {
      FirmwareLoop& loop = b == 0 ? *first_ : *second_;
      testing::QueuePort& port = b == 0 ? first_port_ : second_port_;
      flatbuffers::FlatBufferBuilder fbb;
      ASSERT_EQ(Serve(loop, port, Finish(fbb, 1, wb::BoardMessage::Boot,
                                         wb::CreateBoot(fbb).Union()))->message_type(),
                wb::BoardMessage::BootReply);
      fbb.Clear();
      const std::vector<uint64_t> shape = {4};
      const wb::PeRect placement(0, 0, 1, 1);
      std::vector<flatbuffers::Offset<wb::TensorDesc>> tensors = {wb::CreateTensorDescDirect(
          fbb, "t", wb::TensorRole::kAttnNorm, static_cast<uint32_t>(b), wb::DType::kF32, &shape,
          16, &placement)};
      auto arch = wb::CreateModelArch(fbb, 8, 4, 8, 2, 1, 1, 4);
      auto stage = wb::CreateModelStage(fbb, static_cast<uint32_t>(b), 1, b == 0, b == 1);
      auto next = b == 0 ? wb::CreateNextStageDirect(fbb, "inproc://next", 2, 100)
                         : flatbuffers::Offset<wb::NextStage>();
      auto bm = wb::CreateBeginModelDirect(fbb, 7, "m", arch, &tensors, 4, 64, false, nullptr,
                                           stage, next);
      const wb::BoardEnvelope* env =
          Serve(loop, port, Finish(fbb, 2, wb::BoardMessage::BeginModel, bm.Union()));
      ASSERT_EQ(env->message_as_Ack()->code(), wire::ErrorCode::kNone);
      fbb.Clear();
      const std::vector<uint8_t> bytes(16, 1);
      const uint32_t crc = Crc32c(std::as_bytes(std::span(bytes)));
      env = Serve(loop, port, Finish(fbb, 3, wb::BoardMessage::WriteWeights,
                                     wb::CreateWriteWeightsDirect(fbb, 7, 0, 0, &bytes, crc).Union()));
      ASSERT_EQ(env->message_as_Ack()->code(), wire::ErrorCode::kNone);
      fbb.Clear();
      env = Serve(loop, port, Finish(fbb, 4, wb::BoardMessage::CommitModel,
                                     wb::CreateCommitModel(fbb, 7).Union()));
      ASSERT_EQ(env->message_as_Ack()->code(), wire::ErrorCode::kNone);
    }
  }

  struct SeqSpec {
    uint32_t slot;
    std::vector<uint32_t> input;
    uint32_t generate;
    std::vector<uint32_t> stops;
  };
  const wb::BoardEnvelope* Step(const std::vector<SeqSpec>& specs) {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<wb::SeqStep>> seqs;
    for (const SeqSpec& s : specs) {
      seqs.push_back(wb::CreateSeqStepDirect(fbb, s.slot, true, &s.input, s.generate, 0,
                                             &s.stops, nullptr));
    }
    return Serve(*first_, first_port_, Finish(fbb, 50, wb::BoardMessage::Step,
                                              wb::CreateStepDirect(fbb, 7, &seqs).Union()));
  }

  testing::QueuePort first_port_, second_port_;
  testing::FakePlatform first_fake_, second_fake_;
  FirmwareLoop* second_raw_ = nullptr;
  LoopbackStageLink link_;
  std::unique_ptr<FirmwareLoop> first_;
  std::unique_ptr<FirmwareLoop> second_;
  Frame reply_;
};

// The fake wafer samples slot * 100 for every pass (its first token each time): slot 1's stop
// token 100 ends it after one token; slot 2's prefill chunk generates nothing.
TEST_F(StagePipelineTest, EveryTokenRunsThroughBothBoardsWithoutTheHost) {
  LoadPipeline();
  const wb::BoardEnvelope* env = Step({{0, {3, 5}, 5, {}}, {1, {4}, 4, {100}}, {2, {6, 7, 8}, 0, {}}});
  ASSERT_EQ(env->message_type(), wb::BoardMessage::StepReply);
  EXPECT_EQ(env->command_id(), 50u);
  const wb::StepReply* r = env->message_as_StepReply();
  ASSERT_EQ(r->results()->size(), 3u);
  const std::vector<uint32_t> slot0(r->results()->Get(0)->tokens()->begin(),
                                    r->results()->Get(0)->tokens()->end());
  EXPECT_EQ(slot0, std::vector<uint32_t>(5, 0));
  ASSERT_EQ(r->results()->Get(1)->tokens()->size(), 1u);
  EXPECT_EQ(r->results()->Get(1)->tokens()->Get(0), 100u);
  EXPECT_EQ(r->results()->Get(2)->tokens()->size(), 0u);
  EXPECT_EQ(link_.opened, "inproc://next");

  ASSERT_NE(r->pipeline(), nullptr);
  EXPECT_EQ(r->pipeline()->failed_stage(), 0u);
  EXPECT_EQ(r->pipeline()->passes(), 5u);
  // Two micro-batches (two stages): {slot 0, slot 1} and {slot 2}. Passes handed on: the first
  // micro-batch 5 times (slot 1 stopped after the first), the second once.
  EXPECT_EQ(link_.sent, 6);
  EXPECT_EQ(second_fake_.wafer.step_calls, 6);
  EXPECT_EQ(first_fake_.wafer.step_calls, 6);
  // Hidden states (4 per input token): pass 1 carries 2 + 1 + 3 input tokens, passes 2-5 one.
  EXPECT_EQ(second_fake_.wafer.hidden_in_values, 4u * (6 + 4));
  EXPECT_EQ(r->pipeline()->hidden_values(), 4u * (6 + 4));
  ASSERT_EQ(r->pipeline()->stage_busy_ns()->size(), 2u);
  // The fake wafers take 1 us per pass: 6 each.
  EXPECT_EQ(r->pipeline()->stage_busy_ns()->Get(0), 6000);
  EXPECT_EQ(r->pipeline()->stage_busy_ns()->Get(1), 6000);
  // The micro-batches overlap: the Step's time is less than both boards' sum, but at least the
  // longest chain of one micro-batch (5 passes through both boards).
  EXPECT_LT(r->device_time()->total_ns(), 12000);
  EXPECT_GE(r->device_time()->total_ns(), 10000);
  EXPECT_EQ(r->device_time()->compute_ns(), 12000);
}

TEST_F(StagePipelineTest, ALaterStageThatFailsIsNamedAndTheStepProducesNothing) {
  LoadPipeline();
  second_fake_.wafer.step_status = DataLoss();
  const wb::BoardEnvelope* env = Step({{0, {3}, 4, {}}});
  ASSERT_EQ(env->message_type(), wb::BoardMessage::StepReply);
  const wb::StepReply* r = env->message_as_StepReply();
  EXPECT_EQ(r->results()->size(), 0u);
  ASSERT_NE(r->pipeline(), nullptr);
  EXPECT_EQ(r->pipeline()->failed_stage(), 1u);
  EXPECT_EQ(r->pipeline()->failed_code(), wire::ErrorCode::kDataLoss);
  EXPECT_EQ(r->pipeline()->failed_detail()->str().rfind("DATA_LOSS: ", 0), 0u)
      << r->pipeline()->failed_detail()->str();
}

TEST_F(StagePipelineTest, ANextStageThatDoesNotAnswerIsUnavailable) {
  LoadPipeline();
  link_.drop = true;
  const wb::BoardEnvelope* env = Step({{0, {3}, 4, {}}});
  ASSERT_EQ(env->message_type(), wb::BoardMessage::StepReply);
  const wb::StepReply* r = env->message_as_StepReply();
  EXPECT_EQ(r->results()->size(), 0u);
  EXPECT_EQ(r->pipeline()->failed_stage(), 1u);
  EXPECT_EQ(r->pipeline()->failed_code(), wire::ErrorCode::kBoardUnavailable);
  EXPECT_NE(r->pipeline()->failed_detail()->str().find("did not answer"), std::string::npos);

  // The next Step finds the link answering again; the late answer of the pass given up on is
  // not there to confuse it (a dropped frame never reached the board).
  link_.drop = false;
  env = Step({{1, {3}, 2, {}}});
  ASSERT_EQ(env->message_type(), wb::BoardMessage::StepReply);
  EXPECT_EQ(env->message_as_StepReply()->pipeline()->failed_stage(), 0u);
  ASSERT_EQ(env->message_as_StepReply()->results()->size(), 1u);
  EXPECT_EQ(env->message_as_StepReply()->results()->Get(0)->tokens()->size(), 2u);
}

// A stale answer (of a pass given up on) waiting on the link is dropped, not taken as the
// answer to the next pass.
TEST_F(StagePipelineTest, AStaleAnswerIsDropped) {
  LoadPipeline();
  // Serve one pass ahead of time by hand: an answer to command 0, which no pass sent.
  flatbuffers::FlatBufferBuilder fbb;
  auto ack = wb::CreateAckDirect(fbb, wire::ErrorCode::kBoardUnavailable, "old");
  link_.answers.push_back(Finish(fbb, 0, wb::BoardMessage::Ack, ack.Union()));
  const wb::BoardEnvelope* env = Step({{0, {3}, 3, {}}});
  ASSERT_EQ(env->message_type(), wb::BoardMessage::StepReply);
  EXPECT_EQ(env->message_as_StepReply()->pipeline()->failed_stage(), 0u);
  EXPECT_EQ(env->message_as_StepReply()->results()->Get(0)->tokens()->size(), 3u);
}

TEST_F(StagePipelineTest, ANextStageOnTheHeadStageIsRefused) {
  flatbuffers::FlatBufferBuilder fbb;
  ASSERT_EQ(Serve(*first_, first_port_,
                  Finish(fbb, 1, wb::BoardMessage::Boot, wb::CreateBoot(fbb).Union()))
                ->message_type(),
            wb::BoardMessage::BootReply);
  fbb.Clear();
  const std::vector<uint64_t> shape = {4};
  const wb::PeRect placement(0, 0, 1, 1);
  std::vector<flatbuffers::Offset<wb::TensorDesc>> tensors = {wb::CreateTensorDescDirect(
      fbb, "t", wb::TensorRole::kAttnNorm, 1, wb::DType::kF32, &shape, 16, &placement)};
  auto arch = wb::CreateModelArch(fbb, 8, 4, 8, 2, 1, 1, 4);
  auto stage = wb::CreateModelStage(fbb, 1, 1, false, true);
  auto next = wb::CreateNextStageDirect(fbb, "inproc://next", 2, 100);
  auto bm = wb::CreateBeginModelDirect(fbb, 7, "m", arch, &tensors, 4, 64, false, nullptr, stage,
                                       next);
  const wb::BoardEnvelope* env =
      Serve(*first_, first_port_, Finish(fbb, 2, wb::BoardMessage::BeginModel, bm.Union()));
  EXPECT_EQ(env->message_as_Ack()->code(), wire::ErrorCode::kInvalidArgument);
  EXPECT_NE(env->message_as_Ack()->detail()->str().find("last"), std::string::npos);
}

// The Step a stage hands on, at the firmware's limits (every sequence, every input token and
// hidden value a Step may carry), builds in an arena of exactly its bound and fits one frame.
TEST(ForwardStepTest, AStepAtTheLimitsFitsItsBound) {
  std::vector<uint32_t> tokens(kMaxStepTokens, 5);
  std::vector<float> hidden(kMaxStepHiddenValues, 0.25f);
  std::vector<hal::SeqStepView> seqs(kMaxSeqsPerStep);
  const size_t tokens_each = kMaxStepTokens / kMaxSeqsPerStep;
  const size_t hidden_each = kMaxStepHiddenValues / kMaxSeqsPerStep;
  for (size_t i = 0; i < seqs.size(); ++i) {
    seqs[i].slot = static_cast<uint32_t>(i);
    seqs[i].input_tokens = std::span(tokens).subspan(i * tokens_each, tokens_each);
    seqs[i].hidden_in = std::span(hidden).subspan(i * hidden_each, hidden_each);
    seqs[i].generate = 1;
    seqs[i].sampling.temperature = 0.5f;
  }
  const size_t bound = ForwardStepSizeBound(seqs);
  EXPECT_LE(bound, kMaxFrameBytes);
  std::vector<uint64_t> storage((bound + 7) / 8);
  ArenaAllocator allocator(std::as_writable_bytes(std::span(storage)));
  flatbuffers::FlatBufferBuilder fbb(allocator.capacity(), &allocator);
  const std::span<const std::byte> frame = EncodeForwardStep(fbb, 12, 7, seqs);
  EXPECT_LE(frame.size(), bound);
  flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(frame.data()), frame.size());
  ASSERT_TRUE(wb::VerifyBoardEnvelopeBuffer(v));
  const wb::BoardEnvelope* env = wb::GetBoardEnvelope(frame.data());
  EXPECT_EQ(env->command_id(), 12u);
  const wb::Step* step = env->message_as_Step();
  ASSERT_NE(step, nullptr);
  EXPECT_TRUE(step->from_stage());
  ASSERT_EQ(step->seqs()->size(), kMaxSeqsPerStep);
  EXPECT_EQ(step->seqs()->Get(255)->hidden_in()->size(), hidden_each);
  EXPECT_EQ(step->seqs()->Get(255)->input_tokens()->size(), tokens_each);
}

}  // namespace
}  // namespace wafer::fw
