// Which sequences ride in a board's next Step and what each one carries: a prefill chunk (at
// most prefill_chunk_tokens, within the pipeline's hidden-state budget) or one decode token with
// the tokens it may generate. Plain logic over the job table: no sockets, no boards, time from
// the injected Clock.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "common/clock.h"
#include "host/board/board_types.h"
#include "host/jobs/job_table.h"

namespace wafer::host {

struct StepPlannerOptions {
  uint32_t max_batch = 256;             // Sequences per Step.
  uint32_t steps_in_flight = 2;         // Per board.
  uint32_t prefill_chunk_tokens = 512;  // Prompt tokens per sequence per Step.
  uint32_t decode_tokens_per_step = 8;  // Tokens one single-board Step may generate per sequence.
};

// The model a step is planned for.
struct StepTarget {
  uint64_t serial = 0;  // Recorded on each planned job (JobRecord::step_serial).
  size_t stages = 1;    // Boards in its pipeline.
  // The first board runs each Step through the pipeline itself (direct hand-off, board.fbs
  // NextStage), its micro-batches keeping the stages busy: planned as for one board. False for
  // a pipeline the step loop relays: one token per sequence per Step, and the running sequences
  // split into steps_in_flight x stages groups so that every stage has a Step.
  bool passes_on_board = false;
  // Input tokens (prefill and decode) the step may carry in all: the boards' hidden-state limit
  // for a pipelined model with real weights; UINT64_MAX when nothing bounds it.
  uint64_t token_budget = UINT64_MAX;
  // What the boards take in one Step (IdentifyReply): sequences, generated tokens summed over
  // them, and the frame's bytes, which the planner estimates per sequence (kSeqOverheadBytes plus
  // 4 bytes per input and stop token, plus `hidden_bytes_per_token` per input token for a
  // pipeline's later stages) above kFrameOverheadBytes. A Step is never planned past them.
  uint32_t max_seqs = UINT32_MAX;
  uint64_t max_generate = UINT64_MAX;
  uint64_t max_frame_bytes = UINT64_MAX;
  uint32_t hidden_bytes_per_token = 0;
};

// Not thread-safe; owned by the step loop's thread.
class StepPlanner {
 public:
  // REQUIRES: `jobs` and `clock` outlive the planner.
  StepPlanner(const StepPlannerOptions& options, JobTable& jobs, const Clock& clock);

  // Plans one step over `running` (a model's running jobs, in serving order). With several
  // steps in flight per board the running jobs are split between them, so that the board
  // computes one group while the previous group's tokens stream; a pipelined model keeps a
  // group on every stage. Jobs already in flight are skipped. The jobs planned are marked in
  // flight with `target.serial` and move to the back of `running`, so every job gets its turn.
  // Fills `seqs` (reusing its entries' buffers) and `job_ids` (parallel); returns how many
  // sequences were planned (0: nothing to run, `running` unchanged).
  // A job whose sequence alone would not fit an empty Step's frame can never be sent: it is
  // left out and appended to `unfit` (the caller ends it).
  size_t Plan(const StepTarget& target, std::deque<uint64_t>& running,
              std::vector<SeqStep>* seqs, std::vector<uint64_t>* job_ids,
              std::vector<uint64_t>* unfit);

  // Bytes a Step's frame holds beyond its sequences, and each sequence beyond its vectors (the
  // firmware's own allowances, command.h: generous for the FlatBuffers tables and padding).
  static constexpr uint64_t kFrameOverheadBytes = 4096;
  static constexpr uint64_t kSeqOverheadBytes = 256;

  // Keeps a finished step's sequence vector for reuse by a later Plan (at most a few are kept).
  void Recycle(std::vector<SeqStep>&& seqs);
  // A vector for the next step's sequences: a recycled one when there is one.
  std::vector<SeqStep> TakeSeqs();

 private:
  static constexpr size_t kMaxSpareSeqs = 16;

  const StepPlannerOptions options_;
  JobTable& jobs_;
  const Clock& clock_;
  std::vector<std::vector<SeqStep>> spare_seqs_;
  std::vector<uint64_t> waiting_;  // Running jobs left out of a step; keeps its capacity.
};

}  // namespace wafer::host
