// A Step of a model pipelined over boards (board.fbs NextStage), run by its boards without the
// host in between. The first stage embeds and runs its layers for a micro-batch, hands the
// hidden states to the next board as a Step (from_stage) over the inter-wafer link and, while
// that micro-batch is on the later stages, runs the next one. The last stage samples; its
// tokens come back, the first stage embeds them for the next pass, and so on until every
// sequence has its `generate` tokens, stopped, or filled its context. A middle stage runs its
// layers on what it receives, hands the result on and answers with what came back.
//
// Modeled time: each stage's wafer is one resource. The first stage keeps the timeline from
// what each answer reports (every later stage's compute, and the hops): a micro-batch's pass
// starts on a stage when both the stage is free and the micro-batch's input has arrived (on the
// first stage: its previous tokens are back). The Step's device time is the end of its last
// pass plus its host I/O; compute, fabric and inter-wafer terms are summed over the stages, so
// with micro-batches overlapping the total is less than the terms' sum.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include <flatbuffers/flatbuffers.h>

#include "firmware/command.h"
#include "firmware/command_processor.h"
#include "firmware/hal/stage_link.h"
#include "firmware/link/arena_allocator.h"

namespace wafer::fw {

// An upper bound of the bytes a FlatBufferBuilder needs for the Step EncodeForwardStep builds
// from `seqs` (see fb_bound).
size_t ForwardStepSizeBound(std::span<const hal::SeqStepView> seqs);

// Encodes the Step (from_stage) a stage hands its next stage: `seqs` (at most kMaxSeqsPerStep)
// with their hidden states, sampling and generate, without stop tokens. Clears `fbb` first; the
// bytes stay valid until its next use. REQUIRES fbb to have room for ForwardStepSizeBound(seqs)
// bytes: StagePipeline checks; public so that tests can build it in an arena of its bound.
std::span<const std::byte> EncodeForwardStep(flatbuffers::FlatBufferBuilder& fbb,
                                             uint64_t command_id, uint32_t model_id,
                                             std::span<const hal::SeqStepView> seqs);

// Not thread-safe; owned by the superloop. Large (a frame buffer, the builder's arena of one
// frame and a step's tokens): allocate it once at init. Runs without allocating.
class StagePipeline {
 public:
  // `processor` and `link` (nullptr: the board has no inter-wafer link) outlive this.
  StagePipeline(CommandProcessor& processor, hal::StageLink* link);

  // Runs `cmd` (a Step of a model whose stage on this board has a next stage, `next`) through
  // the pipeline and fills `reply`: a StepReply with PipelineReport, whose failed_stage names a
  // later stage that failed; or, when this board's own stage failed, the Ack a Step on a single
  // board would get.
  void Run(const Command& cmd, const CommandProcessor::NextStageInfo& next, Reply& reply);

  // Answers from a next stage dropped because they belonged to a pass given up on.
  uint64_t stale_answers() const { return stale_answers_; }

 private:
  // One sequence of the Step the first stage runs.
  struct Seq {
    uint32_t micro_batch = 0;
    uint32_t rounds = 0;     // Passes sent so far.
    uint32_t generated = 0;  // Tokens in tokens_[token_offset...].
    uint32_t token_offset = 0;
    uint32_t last_token = 0;  // Input of the next pass.
    uint32_t context_tokens = 0;
    bool active = true;
    bool in_flight = false;  // In the micro-batch's pass on the later stages.
    StatusCode code = StatusCode::kOk;
  };
  // A later stage's answer, decoded.
  struct Answer {
    StatusCode failed_code = StatusCode::kOk;  // kOk: the stages answered.
    uint32_t failed_stage = 0;                 // 1: the next board.
    const char* detail = "";
    DeviceTime time;
  };

  void RunFirst(const Command& cmd, const CommandProcessor::NextStageInfo& next, Reply& reply);
  void RunMiddle(const Command& cmd, Reply& reply);
  // Runs this board's layers for the active seqs of micro-batch `m` and sends the rest on.
  // Returns false when this board's stage failed (`status_`, `detail_`) or the link did.
  bool SendPass(const Command& cmd, uint32_t m);
  // Encodes and sends the Step of the first `count` seqs of views_ (their hidden_in points into
  // this stage's outcomes, valid until its next RunStage). Returns false, with the failure
  // recorded (Fail), when that Step would not fit one frame (RESOURCE_EXHAUSTED) or the link is
  // down (UNAVAILABLE).
  bool Forward(uint32_t model_id, size_t count);
  // Receives the answer to command `command_id`, dropping older ones; fills `answer` and
  // leaves the StepReply's results in `results_` (nullptr when the stage failed).
  void Receive(uint64_t command_id, uint32_t expected_results, Answer& answer);
  void Fail(uint32_t stage, StatusCode code, const char* detail);
  void FillPipeline(Reply& reply, uint32_t passes);

  CommandProcessor& processor_;
  hal::StageLink* link_;
  uint32_t link_handle_ = 0;
  uint32_t timeout_ms_ = 0;
  uint32_t stages_ = 0;
  uint64_t next_command_id_ = 1;
  uint64_t stale_answers_ = 0;

  // The pass under way.
  std::array<Seq, kMaxSeqsPerStep> seqs_{};
  std::array<hal::SeqStepView, kMaxSeqsPerStep> views_{};
  std::array<uint32_t, kMaxSeqsPerStep> view_seq_{};  // views_[j] is seqs_[view_seq_[j]].
  std::array<hal::SeqOutcome, kMaxSeqsPerStep> outcomes_{};
  std::array<uint32_t, kMaxStepTokens> tokens_{};
  std::array<int64_t, kMaxPipelineStages> busy_ns_{};
  std::array<int64_t, kMaxPipelineStages> ready_ns_{};  // Per micro-batch: its tokens are back.
  std::array<int64_t, kMaxPipelineStages> sent_ns_{};   // Per micro-batch: handed on.
  std::array<uint64_t, kMaxPipelineStages> in_flight_id_{};  // Per micro-batch; 0: none.
  int64_t first_free_ns_ = 0;  // This stage's wafer is free.
  std::array<int64_t, kMaxPipelineStages> stage_free_ns_{};  // Each later stage is free.
  std::array<int64_t, kMaxPipelineStages> answer_busy_ns_{};  // The last answer's, by stage.
  DeviceTime sum_;  // Terms summed over the stages.
  uint64_t hidden_values_ = 0;
  Status status_;
  const char* detail_ = "";
  uint32_t failed_stage_ = 0;
  StatusCode failed_code_ = StatusCode::kOk;
  std::array<char, 200> failed_detail_{};

  const void* results_ = nullptr;  // The answer's results vector (schema type), in rx_.
  // The builder's only memory: declared before it, so it outlives it.
  alignas(8) std::array<std::byte, kMaxFrameBytes> arena_{};
  ArenaAllocator allocator_;
  flatbuffers::FlatBufferBuilder fbb_;
  alignas(16) std::array<std::byte, kMaxFrameBytes> rx_{};
};

}  // namespace wafer::fw
